"""A bounce spike on PostgreSQL: SendGrid posts many signed batches at once, each bouncing the same addresses in
another order. Through the real app on uvicorn, every batch is applied (no deadlock, so no 503 and no retry
storm), every event is kept once, every address suppressed once, and the counts the batches report add up."""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

from notifier.config import Settings
from notifier.ledger.db import make_engine, session_factory
from notifier.ledger.models import DeliveryEvent, Suppression
from notifier.web import create_app
from notifier.web.app import running
from tests.conftest import PG_URL, SharedLedger
from tests.test_webhooks_sendgrid import KEY, public_b64, sg, signature_headers

pytestmark = pytest.mark.postgres

THREADS, BATCHES, ADDRESSES = 8, 20, 50


def deadlocks() -> int:
    """The deadlocks PostgreSQL has counted in this database (read on a connection of its own, so a fresh
    snapshot of the statistics)."""
    eng = make_engine(PG_URL)
    try:
        with eng.connect() as conn:
            return int(conn.execute(text("SELECT deadlocks FROM pg_stat_database "
                                         "WHERE datname = current_database()")).scalar_one())
    finally:
        eng.dispose()


def wait_until_gone(application_name: str) -> None:
    """Wait for the backends of ``application_name`` to exit: a backend flushes its statistics (the deadlocks it
    detected) when it exits at the latest."""
    eng = make_engine(PG_URL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with eng.connect() as conn:
                if not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                                    {"n": application_name}).scalar_one():
                    break
            time.sleep(0.05)
        time.sleep(0.5)  # the exit's flush and the removal from pg_stat_activity are not ordered
    finally:
        eng.dispose()


def bounce_batch(thread: int, n: int, addresses: list[str]) -> bytes:
    """The same addresses hard-bounced, in an order of this batch's own, with event ids of its own."""
    order = addresses[:]
    random.Random(thread * 1000 + n).shuffle(order)
    return httpx.Request("POST", "/", json=[sg(f"spike-{thread}-{n}-{i}", "bounce", email=address, type="bounce")
                                            for i, address in enumerate(order)]).content


def test_a_bounce_spike_of_concurrent_batches_in_different_orders_deadlocks_nowhere(
        postgres_ledger: SharedLedger) -> None:
    addresses = [f"spike{i}@example.com" for i in range(ADDRESSES)]
    name = f"notifier-spike-{uuid.uuid4().hex[:8]}"
    eng: Engine = make_engine(postgres_ledger.url, connect_args={"application_name": name}, pool_size=THREADS)
    app = create_app(Settings(sendgrid_webhook_key=public_b64(KEY)), session_factory(eng))
    before = deadlocks()
    answers: list[tuple[int, dict[str, Any]]] = []

    def sender(base: str, thread: int) -> list[tuple[int, dict[str, Any]]]:
        got = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for n in range(BATCHES):
                body = bounce_batch(thread, n, addresses)
                response = client.post("/webhooks/sendgrid", content=body, headers=signature_headers(body))
                got.append((response.status_code, response.json()))
        return got

    try:
        with running(app) as base, ThreadPoolExecutor(THREADS) as pool:
            for got in pool.map(lambda t: sender(base, t), range(THREADS)):
                answers.extend(got)
    finally:
        eng.dispose()
    wait_until_gone(name)
    after = deadlocks()

    statuses = [status for status, _ in answers]
    assert len(statuses) == THREADS * BATCHES
    failed = sum(status >= 500 for status in statuses)
    assert (failed, after - before) == (0, 0), f"{failed} answers >= 500, {after - before} deadlocks"
    assert set(statuses) == {200}
    with postgres_ledger.sessions() as s:
        events = s.scalar(select(func.count()).select_from(DeliveryEvent)) or 0
        distinct = s.scalar(select(func.count(func.distinct(DeliveryEvent.provider_event_id)))) or 0
        entries = s.execute(select(Suppression.digest, Suppression.scope, Suppression.reason)).all()
    assert events == distinct == THREADS * BATCHES * ADDRESSES
    assert len(entries) == ADDRESSES and {(scope, reason) for _, scope, reason in entries} == {("all", "bounced")}
    assert sum(report["new"] for _, report in answers) == THREADS * BATCHES * ADDRESSES
    assert sum(report["suppressed"] for _, report in answers) == ADDRESSES  # each address added by one batch only
