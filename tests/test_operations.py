"""Everyday operations keep the promise: a deploy's SIGTERM and a ledger that goes away for ten seconds, tried on the
real ``notifier dispatch`` process, the real SDKs against the emulator, and PostgreSQL.

Each scenario sends a wave to NOTIFIER_OPS_RECIPIENTS recipients (1,000 by default: an email and a push each), with
latency on push so that a push batch of 500 is in flight for seconds, and ends with an audit of the ledger against
what the emulator accepted: every message once, none missing, none uncertain.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience import import_audience
from notifier.campaign import parse_campaign
from notifier.config import load_settings
from notifier.emulator.process import EmulatorProcess
from notifier.ledger import queries
from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
from notifier.ledger.models import DeliveryState
from notifier.ledger.states import OPEN_STATES
from notifier.planner import plan_zone
from notifier.render import Content
from notifier.reports import DeliveryAudit, audit
from tests.conftest import NO_FAULTS, TEST_SECRETS, shipped_catalogs_as, wave_now, wave_spec
from tests.services import Dispatch, OwnPostgres, state_counts, uncertain_count, wait_for, write_audience

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

CAMPAIGN_ID = "ops-wave"
RECIPIENTS = int(os.environ.get("NOTIFIER_OPS_RECIPIENTS", "1000"))
BATCH = 500


def slow_push(latency_ms: int) -> dict[str, Any]:
    return {"sendgrid": dict(NO_FAULTS["sendgrid"]), "fcm": {**NO_FAULTS["fcm"], "latency_ms": latency_ms}}


@dataclass
class Wave:
    """A wave scheduled in a ledger, and the settings a ``notifier dispatch`` process needs to send it."""

    sessions: sessionmaker[Session]
    emulator: EmulatorProcess
    env: dict[str, str]
    logs: Path

    def counts(self, channel: str | None = None) -> Counter[str]:
        return state_counts(self.sessions, channel)

    def uncertain(self) -> int:
        return uncertain_count(self.sessions)

    def audit(self) -> DeliveryAudit:
        with self.sessions() as s:
            return audit(s, CAMPAIGN_ID, self.emulator.messages())

    def dispatch(self, name: str, *args: str) -> Dispatch:
        return Dispatch(self.env, self.logs / f"{name}.log", *args)


def schedule_wave(engine: Engine, url: str, emulator: EmulatorProcess, tmp_path: Path, *, lease: int) -> Wave:
    """Import RECIPIENTS recipients, schedule a wave due now, and describe the dispatcher's environment."""
    env = {
        **os.environ, "PYTHONUNBUFFERED": "1",
        "NOTIFIER_DATABASE_URL": url, "NOTIFIER_TRANSPORT": "providers", "SENDGRID_API_KEY": "SG.ops-test",
        "NOTIFIER_SECRET_KEY": TEST_SECRETS["secret_key"], "NOTIFIER_PUBLIC_URL": TEST_SECRETS["public_url"],
        "NOTIFIER_SENDGRID_HOST": emulator.url, "NOTIFIER_FCM_ENDPOINT": emulator.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(emulator.credentials), "NOTIFIER_LEASE_SECONDS": str(lease),
        "NOTIFIER_BATCH_SIZE": str(BATCH), "NOTIFIER_PUSH_CONCURRENCY": "50",
        "NOTIFIER_LOCALES_DIR": str(shipped_catalogs_as(tmp_path / "locales", CAMPAIGN_ID)),
    }
    sessions = session_factory(engine)
    now = wave_now()
    report = import_audience(sessions, write_audience(tmp_path / "audience.csv", RECIPIENTS), now=now)
    assert (report.accepted, report.rejected) == (RECIPIENTS, 0)
    spec = wave_spec(now, CAMPAIGN_ID, on_uncertain="resend")
    campaign = parse_campaign(spec, source=str(tmp_path / f"{CAMPAIGN_ID}.yaml"))
    settings = load_settings({"NOTIFIER_LOCALES_DIR": env["NOTIFIER_LOCALES_DIR"]})
    with transaction(sessions) as s:
        queries.schedule(s, campaign, spec, now, Content.of(campaign, settings.templates_dir, settings.locales_dir),
                         plan_zone)
    logs = tmp_path / "logs"
    logs.mkdir()
    return Wave(sessions, emulator, env, logs)


def settled(wave: Wave) -> bool:
    counts = wave.counts()
    return counts.total() == 2 * RECIPIENTS and not any(counts[s] for s in OPEN_STATES)


def assert_every_message_once(wave: Wave) -> DeliveryAudit:
    counts, result = wave.counts(), wave.audit()
    assert counts == {DeliveryState.SENT: 2 * RECIPIENTS}, counts
    assert (result.duplicates, result.missing, result.unexpected) == (0, 0, 0), result
    assert result.accepted == {"email": RECIPIENTS, "push": RECIPIENTS}
    assert wave.uncertain() == 0
    return result


# --- a deploy stops the dispatcher -----------------------------------------------------------------------


def test_sigterm_mid_batch_finishes_and_records_the_batch_in_flight_then_exits_0(
        postgres_ledger: Any, fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    """systemd, Docker and Kubernetes stop a service with SIGTERM: the push batch in flight is sent and recorded,
    nothing more is claimed, the process exits 0 and leaves no row ``sending`` (on main: exit 143 at once, 500 rows
    left sending, 256 of them sent again after the lease)."""
    wave = schedule_wave(postgres_ledger.engine, postgres_ledger.url, fresh_emulator, tmp_path, lease=300)
    fresh_emulator.set_faults(slow_push(1000))  # 500 pushes at 50 at a time: ten seconds in flight
    daemon = wave.dispatch("first", "--interval", "1")
    try:
        wait_for(lambda: wave.counts("push")[DeliveryState.SENDING] > 0
                 and fresh_emulator.stats()["pushes_accepted"] >= 50, 90,
                 "no push batch was in flight with part of it sent")
        accepted_at_signal = fresh_emulator.stats()["pushes_accepted"]
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(60)
    finally:
        daemon.kill()
    output = daemon.output()
    counts = wave.counts()
    assert code == 0, output[-3000:]
    assert counts[DeliveryState.SENDING] == 0, counts
    assert "stopping once the batch in flight is sent and recorded" in output
    assert "stopped: nothing in flight" in output
    assert counts[DeliveryState.SENT] >= RECIPIENTS + accepted_at_signal  # the emails, and the whole push batch
    assert counts[DeliveryState.PENDING] > 0  # what was never claimed waits for the next dispatcher

    fresh_emulator.set_faults(slow_push(0))
    rest = wave.dispatch("second", "--once")
    assert rest.wait(120) == 0, rest.output()[-3000:]
    assert_every_message_once(wave)


# --- the ledger goes away for ten seconds ------------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A PostgreSQL cluster of this test's own: the test stops it, never the shared one. (Its folder is not under
    pytest's, which only root may enter: the server runs as the postgres user.)"""
    workdir = Path(tempfile.mkdtemp(prefix="notifier-own-postgres-"))
    server = OwnPostgres(workdir)
    try:
        server.init()
        yield server
    finally:
        if server.up():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_ledger_outage_while_a_push_batch_is_in_flight_keeps_its_outcomes_and_sends_nothing_twice(
        own_postgres: OwnPostgres, fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    """PostgreSQL is unreachable for ten seconds while 500 pushes are with FCM: their outcomes (sent, with FCM's
    message names) are held and recorded when the ledger is back, before anything new is claimed (on main they were
    dropped, "a step after the send failed (500 rows)", and the 500 went out again after the lease)."""
    engine = make_engine(own_postgres.url)
    upgrade(engine)
    wave = schedule_wave(engine, own_postgres.url, fresh_emulator, tmp_path, lease=20)
    fresh_emulator.set_faults(slow_push(500))  # a push batch of 500 is in flight for about five seconds
    daemon = wave.dispatch("daemon", "--interval", "1")
    try:
        wait_for(lambda: wave.counts("push")[DeliveryState.SENDING] > 0
                 and fresh_emulator.stats()["pushes_accepted"] > 0, 90, "no push batch went in flight")
        engine.dispose()
        own_postgres.stop()
        wait_for(lambda: fresh_emulator.stats()["pushes_accepted"] >= BATCH, 60,
                 "the batch in flight did not reach FCM while the ledger was down")
        time.sleep(10)
        own_postgres.start()
        wait_for(lambda: settled(wave), 180, f"the wave did not settle: {dict(wave.counts())}")
    finally:
        daemon.signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        finally:
            daemon.kill()
            engine.dispose()
    assert_every_message_once(wave)
    output = daemon.output()
    assert "the ledger is unreachable while recording 500 outcomes" in output, output[-3000:]
    assert "the ledger is back: recording 500 outcomes done" in output
    assert "a step after the send failed" not in output
