"""The naive baseline of ``python -m bench`` runs end to end: real workers, a Redis of its own, the emulator."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from bench.naive import naive_baseline
from bench.naive_app import naive_sends
from notifier.audience import import_audience
from notifier.emulator.process import EmulatorProcess, run_emulator
from notifier.ledger.models import PushToken, Recipient
from tests.conftest import SharedLedger

ROOT = Path(__file__).resolve().parent.parent
DEMO_AUDIENCE = ROOT / "notifier" / "demo" / "audience.csv"
SAMPLE = 40


@pytest.fixture
def own_redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own on a random port, nothing on disk; never the shared one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (tmp_path / "redis.log").open("wb") as log:
        server = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp_path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "our redis-server did not start"
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait(timeout=30)


@pytest.fixture
def naive_emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """An emulator of this test's own, so its counters hold only the baseline's messages."""
    with run_emulator(tmp_path) as emu:
        yield emu


@pytest.fixture
def ledger(postgres_ledger: SharedLedger) -> Iterator[SharedLedger]:
    """The shared PostgreSQL ledger (workers are other processes), without the baseline's table afterwards."""
    try:
        yield postgres_ledger
    finally:
        naive_sends.drop(postgres_ledger.engine, checkfirst=True)


@pytest.mark.postgres
def test_naive_baseline_sends_one_message_per_recipient_and_channel(
        tmp_path: Path, own_redis_url: str, naive_emulator: EmulatorProcess, ledger: SharedLedger) -> None:
    audience = tmp_path / "audience.csv"  # the demo audience's first rows: every locale, some without email or token
    audience.write_text("".join(DEMO_AUDIENCE.read_text().splitlines(keepends=True)[:SAMPLE + 11]))
    import_audience(ledger.sessions, audience, now=datetime(2024, 9, 1, tzinfo=UTC))

    baseline = naive_baseline(ledger.url, own_redis_url, naive_emulator.url, naive_emulator.credentials, SAMPLE)

    with ledger.engine.connect() as conn:
        statuses = dict(conn.execute(select(naive_sends.c.status, func.count()).group_by(naive_sends.c.status)).all())
        first = select(Recipient.seq).order_by(Recipient.seq).limit(SAMPLE).scalar_subquery()
        tokens = conn.execute(select(func.count()).select_from(PushToken).where(
            PushToken.recipient_seq.in_(first), PushToken.active)).scalar_one()
    stats = naive_emulator.stats()
    assert 0 < baseline.emails <= SAMPLE and 0 < baseline.pushes <= SAMPLE
    assert statuses == {"sent": baseline.emails + baseline.pushes}
    assert stats["emails_accepted"] == baseline.emails  # one SendGrid request and one recipient per task
    assert stats["pushes_accepted"] == tokens  # one FCM request per active token
    assert baseline.email_per_s > 0 and baseline.push_per_s > 0
    assert baseline.worker_peak_rss_mb > 20
