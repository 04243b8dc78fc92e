"""Workers killed and brokers restarted mid-wave, on the real services: every message owed goes out, once.

Real PostgreSQL, a real broker, the emulator behind both SDKs, and two Celery worker
processes (``celery -A celery_app worker -c 1``), each in its own process group so SIGKILL takes the pool too.
The test process plays beat: it calls ``notifier.distributed.tick`` every 2 s and publishes the chunks on the
broker. Leases are short (15 s sending, 20 s queued) so recovery happens within the test.

The brokers are these tests' own, never the machine's shared ones: a redis-server started on a random port
(the one the restart test kills) and a RabbitMQ vhost created for the module and deleted after it.

Every scenario sends a wave to NOTIFIER_CRASH_RECIPIENTS recipients (5,000 by default: 10,000 messages, an email
and a push each, 10 chunks a channel, so each fault lands with most of the wave still to go; the README's figures
are for 20,000); the whole file takes a little over two minutes on two cores.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier import distributed
from notifier.audience import import_audience
from notifier.campaign import parse_campaign
from notifier.config import load_settings
from notifier.emulator.process import EmulatorProcess, run_emulator
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignState, DeliveryRow, DeliveryState, SkipReason
from notifier.ledger.states import OPEN_STATES
from notifier.planner import plan_zone
from notifier.render import Content
from notifier.reports import DeliveryAudit, audit
from tests.conftest import TEST_SECRETS, shipped_catalogs_as, wave_now, wave_spec
from tests.services import free_port, state_counts, uncertain_count, wait_for, write_audience

if TYPE_CHECKING:
    from tests.conftest import SharedLedger

pytestmark = pytest.mark.crash

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN_ID = "crash-wave"
CHUNK = 500
WAVE = int(os.environ.get("NOTIFIER_CRASH_RECIPIENTS", "5000"))
LEASE_SECONDS = 15
QUEUE_LEASE_SECONDS = 20
TICK_SECONDS = 2.0
SETTLE_TIMEOUT = 150.0
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"  # the shared server; these tests use a vhost of their own
FAULTS: dict[str, Any] = {  # a little latency on push, so a wave lasts long enough to hit it mid-way
    "sendgrid": {"429": 0, "500": 0, "503": 0, "drop": 0, "latency_ms": 0},
    "fcm": {"429": 0, "500": 0, "503": 0, "drop": 0, "latency_ms": 2, "unregistered_tokens": [],
            "invalid_tokens": [], "sender_mismatch_tokens": []},
}



# --- the services: emulator, broker, workers -------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator of this module's own: its log holds one wave at a time."""
    with run_emulator(tmp_path_factory.mktemp("crash-emulator")) as emu:
        yield emu


@dataclass
class OwnRedis:
    """A redis-server of these tests' own (random port, nothing on disk): killing it touches no one else's."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def up(self) -> bool:
        """One quick ping, no retries (redis-py retries with backoff by default)."""
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        if not self.port:
            self.port = free_port()
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly",
                 "no", "--dir", str(self.workdir)], stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.up, 30, f"our redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """SIGKILL: everything in it is lost, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None

    def restart(self) -> float:
        """Kill it and start it again on the same port; seconds it was down."""
        began = time.monotonic()
        self.kill()
        wait_for(lambda: not self.up(), 30, "our Redis did not stop")
        self.start()
        return time.monotonic() - began


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}"


@pytest.fixture(scope="module")
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of these tests' own on the shared server, deleted with everything in it afterwards."""
    name = f"notifier-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{RABBITMQ}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)



def empty_broker(url: str) -> None:
    """Forget chunks an earlier test left behind: their ids would mean other rows in this test's schema."""
    if url.startswith("redis"):
        redis.Redis.from_url(url).flushdb()
        return
    app = Celery("crash-purge", broker=url, set_as_current=False)
    with app.connection_for_write() as conn:
        for queue in distributed.QUEUES:
            channel = conn.channel()
            with contextlib.suppress(Exception):  # the queue does not exist yet (NOT_FOUND closes the channel)
                channel.queue_purge(queue)
            with contextlib.suppress(Exception):
                channel.close()
    app.close()


class Fleet:
    """Celery worker processes, each the leader of its own process group (the prefork pool goes with it)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        celery = Path(sys.executable).with_name("celery")
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [str(celery), "-A", "celery_app", "worker", "-Q", ",".join(distributed.QUEUES), "-c", "1",
                 "--pool", "prefork", "--loglevel", "WARNING", "-n", f"{name}@%h"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        """SIGKILL: no warm shutdown, no ack, no outcome recorded for the chunk in hand."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        """After the test: SIGKILL every group. The wave is settled by then (or the test failed), so no chunk is in
        hand for a warm shutdown to finish, and an idle worker's warm one takes 2-3 s; the broker is emptied after."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)
        for process in self.processes.values():
            process.wait(timeout=10)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
                         for p in sorted(self.logs.glob("w*.log")))


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


# --- one wave on the fleet -------------------------------------------------------------------------------


@dataclass
class Wave:
    """A scheduled wave, the workers sending it, and the test process publishing its ticks."""

    broker: str
    recipients: int
    ledger: SharedLedger
    emulator: EmulatorProcess
    fleet: Fleet
    publisher: Celery
    started: float = field(default_factory=time.monotonic)
    ticks: int = 0

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.ledger.sessions

    @property
    def expected(self) -> int:
        return 2 * self.recipients  # an email and a push each

    def publish(self, channel: str, ids: list[int]) -> None:
        self.publisher.send_task("notifier.send_chunk", args=(ids,), queue=channel)

    def tick(self) -> dict[str, Any]:
        self.ticks += 1
        return distributed.tick(self.publish)

    def counts(self) -> Counter[str]:
        return state_counts(self.sessions)

    def drive(self, watch: Callable[[], None] = lambda: None, timeout: float = SETTLE_TIMEOUT) -> float:
        """Tick every 2 s until every row is settled (none pending, queued or sending); ``watch`` runs in between."""
        deadline = time.monotonic() + timeout
        next_tick = 0.0
        counts: Counter[str] = Counter()
        while time.monotonic() < deadline:
            if time.monotonic() >= next_tick:
                self.tick()
                next_tick = time.monotonic() + TICK_SECONDS
                counts = self.counts()
                if counts.total() == self.expected and not any(counts[s] for s in OPEN_STATES):
                    return time.monotonic() - self.started
            watch()
            time.sleep(0.1)
        raise AssertionError(f"the wave did not settle in {timeout:.0f} s: {dict(counts)}\n{self.fleet.log_tail()}")

    def pushes_accepted(self) -> int:
        return int(self.emulator.stats()["pushes_accepted"])

    def held_by(self, worker: str) -> set[int]:
        """Rows a worker holds in ``sending`` (its lease owner is ``task-id@<name>@host:pid``)."""
        with self.sessions() as s:
            return set(s.scalars(select(DeliveryRow.id).where(DeliveryRow.state == DeliveryState.SENDING,
                                                              DeliveryRow.lease_owner.like(f"%@{worker}@%"))))

    def uncertain(self) -> int:
        return uncertain_count(self.sessions)

    def audit(self) -> DeliveryAudit:
        with self.sessions() as s:
            return audit(s, CAMPAIGN_ID, self.emulator.messages())


@pytest.fixture
def start_wave(postgres_ledger: SharedLedger, crash_emulator: EmulatorProcess, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, int], Wave]]:
    """Import an audience, schedule the wave, start workers w1 and w2; stops them and empties the broker after."""
    waves: list[Wave] = []

    def start(broker: str, recipients: int) -> Wave:
        env = {
            "NOTIFIER_DATABASE_URL": postgres_ledger.url, "NOTIFIER_BROKER_URL": broker,
            "NOTIFIER_TRANSPORT": "providers", "SENDGRID_API_KEY": "SG.crash-test",
            "NOTIFIER_SECRET_KEY": TEST_SECRETS["secret_key"], "NOTIFIER_PUBLIC_URL": TEST_SECRETS["public_url"],
            "NOTIFIER_SENDGRID_HOST": crash_emulator.url, "NOTIFIER_FCM_ENDPOINT": crash_emulator.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(crash_emulator.credentials),
            "NOTIFIER_LEASE_SECONDS": str(LEASE_SECONDS), "NOTIFIER_QUEUE_LEASE_SECONDS": str(QUEUE_LEASE_SECONDS),
            "NOTIFIER_CHUNK_SIZE": str(CHUNK),
            # the wave is its own gettext domain: the shipped catalogs under its id, for this process and the workers
            "NOTIFIER_LOCALES_DIR": str(shipped_catalogs_as(tmp_path / "locales", CAMPAIGN_ID)),
        }
        for name, value in env.items():  # the tick in this process reads the same settings
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(distributed, "_dispatchers", {})
        empty_broker(broker)
        crash_emulator.reset()
        crash_emulator.set_faults(FAULTS)

        now = wave_now()
        report = import_audience(postgres_ledger.sessions, write_audience(tmp_path / "audience.csv", recipients),
                                 now=now)
        assert (report.accepted, report.rejected) == (recipients, 0)
        spec = wave_spec(now, CAMPAIGN_ID)
        campaign = parse_campaign(spec, source=str(tmp_path / "crash-wave.yaml"))
        settings = load_settings()
        with transaction(postgres_ledger.sessions) as s:
            queries.schedule(s, campaign, spec, now, Content.of(campaign, settings.templates_dir,
                                                                 settings.locales_dir), plan_zone)

        publisher = Celery("crash-beat", set_as_current=False)
        publisher.conf.update(distributed.celery_config(settings))
        fleet = Fleet({**os.environ, **env, "PYTHONUNBUFFERED": "1"}, tmp_path)
        wave = Wave(broker, recipients, postgres_ledger, crash_emulator, fleet, publisher)
        waves.append(wave)
        for name in ("w1", "w2"):
            fleet.start(name)
        wait_for_workers(publisher, ["w1", "w2"], fleet)
        wave.started = time.monotonic()
        return wave

    yield start
    for wave in waves:
        wave.fleet.stop()
        wave.publisher.close()
        empty_broker(wave.broker)
    if distributed._dispatchers:
        built = distributed.dispatcher()
        built.close()
        built.sessions.kw["bind"].dispose()


def wait_for_workers(app: Celery, names: list[str], fleet: Fleet, seconds: float = 90) -> None:
    """Until every worker answers a ping over the broker (it consumes its queues by then)."""
    host = socket.gethostname()
    wanted = {f"{n}@{host}" for n in names}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            answered = {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
        except Exception:  # kombu's global producer pool may still hold a connection to a restarted Redis
            answered = set()
        if wanted <= answered:
            return
        time.sleep(0.5)
    raise AssertionError(f"workers {sorted(wanted)} did not answer within {seconds:.0f} s\n{fleet.log_tail()}")


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n{line}")


# --- killing a worker mid-wave ---------------------------------------------------------------------------


@dataclass
class Kill:
    """SIGKILL worker w1 once the emulator took ``after`` pushes and w1 holds rows, then start it again; once
    more (up to ``attempts``) if w1 had just finished its chunk when the signal landed."""

    wave: Wave
    after: int
    attempts: int = 3
    kills: int = 0
    in_flight: set[int] = field(default_factory=set)  # rows w1 held in ``sending`` when it died

    def __call__(self) -> None:
        if self.in_flight or self.kills >= self.attempts:
            return
        if self.wave.pushes_accepted() < self.after or not self.wave.held_by("w1"):
            return
        self.wave.fleet.kill("w1")
        self.kills += 1
        self.in_flight = self.wave.held_by("w1")  # frozen now: they can only become uncertain
        time.sleep(2)
        self.wave.fleet.start("w1")


def kill_a_worker_mid_wave(wave: Wave, capsys: pytest.CaptureFixture[str], label: str) -> None:
    kill = Kill(wave, after=wave.recipients // 5)

    seconds = wave.drive(kill)

    assert kill.in_flight, f"no kill landed mid-chunk ({kill.kills} tried) before the wave ended"
    counts, result, uncertain = wave.counts(), wave.audit(), wave.uncertain()
    report(capsys, f"crash[{label}]: sent={counts[DeliveryState.SENT]} duplicates={result.duplicates} "
                   f"uncertain={uncertain} kills={kill.kills} in_flight_at_kill={len(kill.in_flight)} "
                   f"seconds={seconds:.0f}")
    assert counts == {DeliveryState.SENT: wave.expected}  # none pending, queued, sending, failed or skipped
    assert (result.missing, result.unexpected) == (0, 0)
    assert result.sent_rows == result.accepted == {"email": wave.recipients, "push": wave.recipients}
    assert result.duplicates <= uncertain <= CHUNK * kill.kills  # a kill costs at most the chunk in hand
    assert uncertain >= len(kill.in_flight)


def test_killing_a_worker_mid_wave_on_redis_resends_only_its_chunk(
        start_wave: Callable[[str, int], Wave], own_redis: OwnRedis, capsys: pytest.CaptureFixture[str]) -> None:
    kill_a_worker_mid_wave(start_wave(own_redis.url, WAVE), capsys, "redis")


def test_killing_a_worker_mid_wave_on_rabbitmq_resends_only_its_chunk(
        start_wave: Callable[[str, int], Wave], rabbitmq_vhost: str, capsys: pytest.CaptureFixture[str]) -> None:
    kill_a_worker_mid_wave(start_wave(rabbitmq_vhost, WAVE), capsys, "rabbitmq")


# --- losing the broker -----------------------------------------------------------------------------------


@dataclass
class BrokerRestart:
    """Restart Redis (losing every chunk in it) once the emulator took ``after`` pushes and chunks are queued."""

    wave: Wave
    server: OwnRedis
    after: int
    queued_at_restart: int = 0
    down_seconds: float = 0.0
    done: bool = False

    def __call__(self) -> None:
        if self.done or self.wave.pushes_accepted() < self.after:
            return
        queued = self.wave.counts()[DeliveryState.QUEUED]
        if not queued:
            return
        self.queued_at_restart = queued
        self.down_seconds = self.server.restart()
        self.done = True


def test_a_redis_restart_mid_wave_loses_chunks_but_no_message(
        start_wave: Callable[[str, int], Wave], own_redis: OwnRedis, capsys: pytest.CaptureFixture[str]) -> None:
    wave = start_wave(own_redis.url, WAVE)
    restart = BrokerRestart(wave, own_redis, after=wave.recipients // 10)

    seconds = wave.drive(restart)

    assert restart.done, "the wave ended before Redis could be restarted with chunks queued"
    counts, result, uncertain = wave.counts(), wave.audit(), wave.uncertain()
    report(capsys, f"crash[redis-restart]: sent={counts[DeliveryState.SENT]} duplicates={result.duplicates} "
                   f"uncertain={uncertain} queued_at_restart={restart.queued_at_restart} "
                   f"down={restart.down_seconds:.1f}s seconds={seconds:.0f}")
    assert counts == {DeliveryState.SENT: wave.expected}
    assert (result.missing, result.unexpected) == (0, 0)
    assert result.duplicates <= uncertain


# --- cancelling mid-wave ---------------------------------------------------------------------------------


@dataclass
class Cancel:
    """Cancel the campaign once the emulator took ``after`` pushes; note what was in flight at that instant."""

    wave: Wave
    after: int
    sending: set[int] = field(default_factory=set)
    sent: set[int] = field(default_factory=set)
    accepted: dict[str, int] = field(default_factory=dict)  # the emulator's log lengths right after the commit
    done: bool = False

    def __call__(self) -> None:
        if self.done or self.wave.pushes_accepted() < self.after:
            return
        with transaction(self.wave.sessions) as s:
            queries.set_state(s, CAMPAIGN_ID, CampaignState.CANCELLED, datetime.now(UTC))
            # After the UPDATE: rows leased before it are sending; none can be leased until this commits.
            self.sending = set(s.scalars(select(DeliveryRow.id).where(DeliveryRow.state == DeliveryState.SENDING)))
            self.sent = set(s.scalars(select(DeliveryRow.id).where(DeliveryRow.state == DeliveryState.SENT)))
        stats = self.wave.emulator.stats()
        self.accepted = {"email": stats["emails_accepted"], "push": stats["pushes_accepted"]}
        self.done = True


def test_cancelling_mid_wave_sends_nothing_that_was_not_already_in_flight(
        start_wave: Callable[[str, int], Wave], own_redis: OwnRedis, capsys: pytest.CaptureFixture[str]) -> None:
    wave = start_wave(own_redis.url, WAVE)
    cancel = Cancel(wave, after=wave.recipients // 5)

    seconds = wave.drive(cancel)

    assert cancel.done, "the wave ended before it could be cancelled"
    later: Counter[str] = Counter()
    after_cancel: set[int] = set()
    for kind, entry in wave.emulator.messages():
        later[kind] += 1
        if later[kind] > cancel.accepted[kind]:
            after_cancel.add(int((entry.get("custom_args") or entry.get("data"))["delivery_id"]))
    with wave.sessions() as s:
        rows = {r.id: (r.state, r.skip_reason) for r in s.scalars(select(DeliveryRow))}
    sent = {i for i, (state, _) in rows.items() if state == DeliveryState.SENT}
    result = wave.audit()
    report(capsys, f"crash[cancel]: sent={len(sent)} sent_before_cancel={len(cancel.sent)} "
                   f"in_flight_at_cancel={len(cancel.sending)} accepted_after_cancel={len(after_cancel)} "
                   f"skipped={len(rows) - len(sent)} duplicates={result.duplicates} seconds={seconds:.0f}")
    assert len(rows) == wave.expected
    assert after_cancel <= cancel.sending  # nothing pending or queued at the cancel went out after it
    assert len(cancel.sending) <= 2 * CHUNK  # two workers, one chunk each
    assert cancel.sent <= sent <= cancel.sent | cancel.sending
    assert {rows[i] for i in rows.keys() - sent} <= {(DeliveryState.SKIPPED, SkipReason.CANCELLED)}
    assert len(sent) < wave.expected
    assert result.exactly_once, result


# --- a deploy's warm shutdown mid-wave ---------------------------------------------------------------------


@dataclass
class Term:
    """SIGTERM worker w1 (its main process as Docker does, or its whole process group as systemd's default
    KillMode does) once the emulator took ``after`` pushes and w1 holds rows; wait for its warm shutdown, then
    start it again. Once more (up to ``attempts``) if w1 had just finished its chunk when the signal landed."""

    wave: Wave
    after: int
    group: bool
    attempts: int = 3
    terms: int = 0
    in_flight: set[int] = field(default_factory=set)  # rows w1 held in ``sending`` when the signal landed
    exit_codes: list[int] = field(default_factory=list)
    shutdown_seconds: float = 0.0

    def __call__(self) -> None:
        if self.in_flight or self.terms >= self.attempts:
            return
        if self.wave.pushes_accepted() < self.after or not self.wave.held_by("w1"):
            return
        process = self.wave.fleet.processes["w1"]
        began = time.monotonic()
        if self.group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        self.terms += 1
        self.in_flight = self.wave.held_by("w1")
        self.exit_codes.append(process.wait(timeout=60))  # warm: the chunk in hand is finished first
        self.shutdown_seconds = time.monotonic() - began
        self.wave.fleet.start("w1")


@pytest.mark.parametrize("group", [False, True], ids=["main-process", "process-group"])
def test_a_warm_shutdown_mid_wave_finishes_the_chunk_in_hand_and_sends_nothing_twice(
        start_wave: Callable[[str, int], Wave], own_redis: OwnRedis, capsys: pytest.CaptureFixture[str],
        group: bool) -> None:
    wave = start_wave(own_redis.url, WAVE)
    term = Term(wave, after=wave.recipients // 5, group=group)

    seconds = wave.drive(term)

    assert term.in_flight, f"no SIGTERM landed mid-chunk ({term.terms} tried) before the wave ended"
    counts, result, uncertain = wave.counts(), wave.audit(), wave.uncertain()
    report(capsys, f"crash[sigterm-{'group' if group else 'main'}]: sent={counts[DeliveryState.SENT]} "
                   f"duplicates={result.duplicates} uncertain={uncertain} in_flight_at_signal={len(term.in_flight)} "
                   f"exit={term.exit_codes} shutdown={term.shutdown_seconds:.1f}s seconds={seconds:.0f}")
    assert term.exit_codes == [0] * term.terms
    assert counts == {DeliveryState.SENT: wave.expected}
    assert (result.duplicates, result.missing, result.unexpected, uncertain) == (0, 0, 0, 0)
    assert result.sent_rows == result.accepted == {"email": wave.recipients, "push": wave.recipients}
