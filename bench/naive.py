"""The naive baseline of ``python -m bench``: the obvious design, run on a sample, so our throughput has a yardstick.

The obvious design is one Celery task per recipient and channel, each rendering from scratch and making one SDK
call (``bench/naive_app.py``). This module runs it against the ledger the orchestrator imported and the emulator it
started: it starts Celery workers of its own, publishes the sample's email tasks and then its push tasks (two phases,
so each rate is clean), times each phase from its first publish to its last outcome in ``naive_sends``, and reads
the workers' peak memory before it stops them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, exists, func, insert, select

from bench import naive_app
from bench.naive_app import QUEUE, QUEUED, naive_sends
from notifier.errors import NotifierError
from notifier.ledger.db import make_engine
from notifier.ledger.models import PushToken, Recipient

ROOT = Path(__file__).resolve().parent.parent


class BaselineError(NotifierError):
    """The naive baseline could not run to the end (a worker died or never came up, or outcomes stopped coming)."""


@dataclass(frozen=True)
class Baseline:
    """What the naive design managed on the sample: messages per second per channel, and its workers' memory."""

    email_per_s: float  # emails of the sample / seconds from the first email task published to the last recorded
    push_per_s: float  # push messages (one per recipient, one request per token) / seconds, likewise
    emails: int  # email tasks: the sample's recipients with an address
    pushes: int  # push tasks: the sample's recipients with an active token
    worker_peak_rss_mb: float  # the largest VmHWM among the workers, in MiB


@dataclass(frozen=True)
class _Sample:
    emails: list[int]  # recipient seqs with an address
    pushes: list[int]  # recipient seqs with an active token


def naive_baseline(database_url: str, broker_url: str, emulator_url: str, credentials: Path, sample: int,
                   workers: int = 2) -> Baseline:
    """Run the naive design on the first ``sample`` recipients by seq: its email and push rates, and its memory."""
    engine = make_engine(database_url)
    logs = Path(tempfile.mkdtemp(prefix="naive-workers-"))
    procs: list[subprocess.Popen[bytes]] = []
    naive_app.app.conf.broker_url = broker_url  # the orchestrator's Redis: publishing, pings and the purge use it
    try:
        chosen = _prepare(engine, sample)
        with naive_app.app.connection_for_write() as conn:
            conn.default_channel.queue_declare(QUEUE, durable=True, auto_delete=False)
            conn.default_channel.queue_purge(QUEUE)
        env = {**os.environ, "NAIVE_DATABASE_URL": database_url, "NAIVE_BROKER_URL": broker_url,
               "NAIVE_EMULATOR_URL": emulator_url, "NAIVE_CREDENTIALS": str(credentials), "NAIVE_ROOT": str(ROOT)}
        procs = [_start_worker(i, env, logs) for i in range(workers)]
        _wait_ready(procs, logs)
        email_s = _phase(engine, procs, "email", chosen.emails, logs)
        push_s = _phase(engine, procs, "push", chosen.pushes, logs)
        peak = max(_peak_rss_mb(p.pid) for p in procs)
    finally:
        _stop(procs)
        engine.dispose()
    shutil.rmtree(logs, ignore_errors=True)  # kept when something failed: the error names it
    return Baseline(email_per_s=_rate(len(chosen.emails), email_s), push_per_s=_rate(len(chosen.pushes), push_s),
                    emails=len(chosen.emails), pushes=len(chosen.pushes), worker_peak_rss_mb=peak)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if n and seconds > 0 else 0.0


def _prepare(engine: Engine, sample: int) -> _Sample:
    """A fresh ``naive_sends`` with one queued row per task of the sample: email for an address, push for a token."""
    has_token = exists().where(PushToken.recipient_seq == Recipient.seq, PushToken.active)
    query = select(Recipient.seq, Recipient.email.is_not(None), has_token).order_by(Recipient.seq).limit(sample)
    naive_sends.create(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(naive_sends.delete())
        rows = conn.execute(query).all()
        chosen = _Sample([seq for seq, email, _ in rows if email], [seq for seq, _, token in rows if token])
        tasks = [(seq, "email") for seq in chosen.emails] + [(seq, "push") for seq in chosen.pushes]
        if tasks:
            conn.execute(insert(naive_sends), [{"recipient_seq": seq, "channel": channel, "status": QUEUED}
                                               for seq, channel in tasks])
    return chosen


def _start_worker(i: int, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    """One solo worker process: it runs one task at a time, so its pid is the process whose memory we read."""
    with (logs / f"worker-{i}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.naive_app", "worker", "--pool=solo", "-Q", QUEUE,
             "-n", f"naive{i}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-l", "WARNING"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _check_alive(procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    for p in procs:
        if p.poll() is not None:
            raise BaselineError(f"a naive worker exited with code {p.returncode}; see {logs}")


def _wait_ready(procs: list[subprocess.Popen[bytes]], logs: Path, timeout: float = 60) -> None:
    """Until every worker answers a ping (each has connected, imported its SDKs and fetched its access token)."""
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(procs, logs)
        if len(naive_app.app.control.ping(timeout=0.5)) >= len(procs):
            return
        if time.monotonic() > deadline:
            raise BaselineError(f"the naive workers did not answer a ping within {timeout:g} s; see {logs}")


def _phase(engine: Engine, procs: list[subprocess.Popen[bytes]], channel: str, seqs: list[int], logs: Path) -> float:
    """Publish one task per recipient of ``seqs`` and wait for every outcome: seconds from first publish to last."""
    if not seqs:
        return 0.0
    began = datetime.now(UTC)
    with naive_app.app.producer_or_acquire() as producer:
        for seq in seqs:
            naive_app.send.apply_async((seq, channel), queue=QUEUE, producer=producer)
    pending = select(func.count()).select_from(naive_sends).where(naive_sends.c.channel == channel,
                                                                  naive_sends.c.status == QUEUED)
    last = select(func.max(naive_sends.c.at)).where(naive_sends.c.channel == channel)
    limit, left, moved = 60.0, len(seqs), time.monotonic()
    while left:
        time.sleep(0.05)
        _check_alive(procs, logs)
        with engine.connect() as conn:
            now_left = int(conn.execute(pending).scalar_one())
        if now_left < left:
            left, moved = now_left, time.monotonic()
        elif time.monotonic() - moved > limit:
            raise BaselineError(f"naive {channel}: {left} outcomes still missing after {limit:g} s without progress; "
                                f"see {logs}")
    with engine.connect() as conn:
        ended = conn.execute(last).scalar_one()
    return (ended - began).total_seconds()


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB; 0 where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every worker (Celery's warm shutdown), then SIGKILL to any still running after 10 s."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
