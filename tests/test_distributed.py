"""The distributed tick and chunk tasks in process, on SQLite and PostgreSQL: the ledger decides what is owed.

No worker processes here (tests/test_crash.py kills real ones): ``enqueue`` publishes to a list, ``run_chunk``
sends through the outbox, and the clock is a parameter, so a lapsed lease is a later ``now``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from notifier import distributed
from notifier.channels.base import Channel, Message
from notifier.channels.pacing import RedisRateLimiter
from notifier.config import Settings
from notifier.dispatch import Dispatcher
from notifier.events import SendResult
from notifier.ledger import claims, queries
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignState, DeliveryState, SkipReason
from notifier.render import Renderer
from notifier.reports import campaign_status
from tests.conftest import shipped_catalogs_as, wave_spec
from tests.waves import QUEUE_LEASE, AddRecipient, Published, Schedule, delivery_rows, schedule_wave

CAMPAIGN_ID = "flash-wave"
REDIS_URL = os.environ.get("NOTIFIER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


def outbox_files(outbox: Path) -> list[str]:
    return sorted(p.name for p in outbox.rglob("*") if p.is_file())


def set_state(sessions: sessionmaker[Session], state: CampaignState, now: datetime,
              campaign_id: str = CAMPAIGN_ID) -> None:
    with transaction(sessions) as s:
        queries.set_state(s, campaign_id, state, now)


def ids_of(published: Published, channel: str | None = None) -> list[int]:
    return sorted(i for ch, ids in published for i in ids if channel in (None, ch))


# From tests/waves.py: the fixtures outbox, now, and dispatcher and worker_environment (both on these locales).


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """The shipped catalogs, also as the wave campaign's own (its gettext domain is its id)."""
    return shipped_catalogs_as(tmp_path / "locales", CAMPAIGN_ID)


@pytest.fixture
def wave(add_recipient: AddRecipient, schedule_campaign: Schedule, now: datetime, locales: Path) -> None:
    schedule_wave(add_recipient, schedule_campaign, now, CAMPAIGN_ID, locales)


def enqueue(dispatcher: Dispatcher, at: datetime, chunk_size: int = 2) -> tuple[Published, dict[str, int]]:
    published: Published = []
    report = dispatcher.enqueue(at, lambda channel, ids: published.append((channel, ids)), chunk_size)
    return published, report.recovered


# --- enqueue ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("wave")
def test_enqueue_marks_due_rows_queued_and_publishes_chunks_of_ids_per_channel(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, now: datetime) -> None:
    published, _ = enqueue(dispatcher, now, chunk_size=2)

    rows = delivery_rows(sessions)
    assert [ch for ch, _ in published] == ["email", "email", "push", "push"]
    assert [len(ids) for _, ids in published] == [2, 1, 2, 1]
    for channel, ids in published:
        assert all(type(i) is int for i in ids)
        assert json.loads(json.dumps(ids)) == ids  # the task payload: ledger ids, nothing personal
        assert {rows[i].channel for i in ids} == {channel}
    assert ids_of(published) == sorted(rows)
    assert {r.state for r in rows.values()} == {DeliveryState.QUEUED}
    assert {r.lease_until for r in rows.values()} == {now + timedelta(seconds=QUEUE_LEASE)}
    assert {r.attempts for r in rows.values()} == {0}  # queued is not an attempt; leasing is

    again, _ = enqueue(dispatcher, now + timedelta(seconds=30))
    assert again == []  # queued rows wait for their chunk until the queue lease runs out


def test_enqueue_publishes_nothing_before_the_wave_is_due(
        add_recipient: AddRecipient, schedule_campaign: Schedule, dispatcher: Dispatcher, now: datetime,
        locales: Path) -> None:
    add_recipient("ana", tokens=["ana-phone"])
    schedule_campaign(now, wave_spec(now + timedelta(minutes=10), CAMPAIGN_ID), locales_dir=locales)

    published, _ = enqueue(dispatcher, now)

    assert published == []


@pytest.mark.usefixtures("wave", "worker_environment")
def test_tick_reads_the_environment_and_returns_counts_only(outbox: Path, now: datetime) -> None:
    published: Published = []
    counts = distributed.tick(lambda channel, ids: published.append((channel, ids)), at=now)
    sent = [distributed.run_chunk(ids, "worker-1", at=now) for _, ids in published]

    assert counts == {"queued": 6, "chunks": 4, "materialized": 6, "recovered": {}, "refused": []}
    assert json.loads(json.dumps(counts)) == counts
    assert sent == [{"sent": 2}, {"sent": 1}, {"sent": 2}, {"sent": 1}]
    assert len(outbox_files(outbox)) == 6


# --- run_chunk -------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("wave")
def test_run_chunk_sends_the_rows_still_queued_and_a_redelivered_chunk_sends_nothing(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path, now: datetime) -> None:
    published, _ = enqueue(dispatcher, now, chunk_size=10)
    (_, emails), (_, pushes) = published

    assert dispatcher.run_chunk(emails, "worker-1", now) == {"sent": 3}
    assert dispatcher.run_chunk(emails, "worker-2", now) == {}  # the broker delivered it twice
    assert dispatcher.run_chunk(pushes, "worker-2", now) == {"sent": 3}
    assert dispatcher.run_chunk(pushes, "worker-1", now) == {}

    rows = delivery_rows(sessions)
    assert {(r.state, r.attempts, r.lease_until, r.lease_owner) for r in rows.values()} == {
        (DeliveryState.SENT, 1, None, None)}
    assert len(outbox_files(outbox)) == 6


@pytest.mark.usefixtures("wave")
def test_run_chunk_sends_only_rows_of_its_chunk_that_are_still_queued(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path, now: datetime) -> None:
    published, _ = enqueue(dispatcher, now, chunk_size=10)
    emails = published[0][1]
    assert dispatcher.run_chunk(emails[:1], "worker-1", now) == {"sent": 1}

    assert dispatcher.run_chunk(emails, "worker-2", now) == {"sent": 2}

    assert outbox_files(outbox) == sorted(f"{i}.eml" for i in emails)


@pytest.mark.usefixtures("wave")
def test_a_chunk_of_a_paused_campaign_goes_back_to_pending_and_resuming_sends_it(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path, now: datetime) -> None:
    published, _ = enqueue(dispatcher, now, chunk_size=10)
    set_state(sessions, CampaignState.PAUSED, now)

    assert [dispatcher.run_chunk(ids, "worker-1", now) for _, ids in published] == [{}, {}]
    assert {(r.state, r.lease_until) for r in delivery_rows(sessions).values()} == {(DeliveryState.PENDING, None)}
    assert outbox_files(outbox) == []
    assert enqueue(dispatcher, now)[0] == []  # paused: nothing is handed out

    set_state(sessions, CampaignState.SCHEDULED, now)
    republished, _ = enqueue(dispatcher, now, chunk_size=10)

    assert ids_of(republished) == ids_of(published)
    assert [dispatcher.run_chunk(ids, "worker-1", now) for _, ids in republished] == [{"sent": 3}, {"sent": 3}]
    assert len(outbox_files(outbox)) == 6


@pytest.mark.usefixtures("wave")
def test_cancel_skips_pending_and_queued_rows_and_a_chunk_published_before_sends_nothing(
        add_recipient: AddRecipient, sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path,
        now: datetime) -> None:
    published, _ = enqueue(dispatcher, now, chunk_size=10)
    add_recipient("dee", tokens=["dee-phone"])  # joined before the wave: materialized by the next tick
    dispatcher.prepare(now)
    before = delivery_rows(sessions)
    assert sorted(r.state for r in before.values()) == [DeliveryState.PENDING] * 2 + [DeliveryState.QUEUED] * 6

    set_state(sessions, CampaignState.CANCELLED, now)

    assert [dispatcher.run_chunk(ids, "worker-1", now) for _, ids in published] == [{}, {}]
    assert {(r.state, r.skip_reason) for r in delivery_rows(sessions).values()} == {
        (DeliveryState.SKIPPED, SkipReason.CANCELLED)}
    assert outbox_files(outbox) == []
    assert enqueue(dispatcher, now + timedelta(hours=1))[0] == []


class CancelledWhileSending(Channel):
    """A busy provider (429): while the request is in flight, someone cancels the campaign."""

    name = "email"

    def __init__(self, sessions: sessionmaker[Session], now: datetime) -> None:
        super().__init__()
        self.sessions, self.now = sessions, now

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        set_state(self.sessions, CampaignState.CANCELLED, self.now)
        return [SendResult.retry(m.delivery_id, "sendgrid 429: busy", retry_after=1) for m in batch]


def test_a_row_in_flight_at_the_cancel_that_comes_back_for_a_retry_is_skipped_not_left_pending(
        add_recipient: AddRecipient, schedule_campaign: Schedule, sessions: sessionmaker[Session],
        now: datetime, locales: Path) -> None:
    for who in ("ana", "ben"):
        add_recipient(who)  # email only
    schedule_campaign(now, wave_spec(now, CAMPAIGN_ID), locales_dir=locales)
    settings = Settings(locales_dir=locales)
    dispatcher = Dispatcher(sessions, {"email": CancelledWhileSending(sessions, now)},
                            Renderer(settings.templates_dir, settings.locales_dir), settings, simulated_clock=True)
    published, _ = enqueue(dispatcher, now, chunk_size=10)

    dispatcher.run_chunk(published[0][1], "worker-1", now)
    enqueue(dispatcher, now + timedelta(seconds=5))

    assert {(r.state, r.skip_reason) for r in delivery_rows(sessions).values()} == {
        (DeliveryState.SKIPPED, SkipReason.CANCELLED)}


# --- lost chunks and dead workers ------------------------------------------------------------------------


@pytest.mark.usefixtures("wave")
def test_a_chunk_the_broker_lost_is_queued_again_when_its_lease_runs_out_and_sent_once(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path, now: datetime) -> None:
    lost, _ = enqueue(dispatcher, now, chunk_size=10)  # published, never delivered
    assert enqueue(dispatcher, now + timedelta(seconds=QUEUE_LEASE - 1))[0] == []

    later = now + timedelta(seconds=QUEUE_LEASE + 1)
    again, _ = enqueue(dispatcher, later, chunk_size=10)

    assert again == lost  # the same ids, per channel
    assert {r.lease_until for r in delivery_rows(sessions).values()} == {later + timedelta(seconds=QUEUE_LEASE)}
    assert [dispatcher.run_chunk(ids, "worker-1", later) for _, ids in again] == [{"sent": 3}, {"sent": 3}]
    assert [dispatcher.run_chunk(ids, "worker-2", later) for _, ids in lost] == [{}, {}]  # it turned up after all
    assert len(outbox_files(outbox)) == 6
    assert {(r.state, r.attempts, r.uncertain) for r in delivery_rows(sessions).values()} == {
        (DeliveryState.SENT, 1, False)}


def lease_as_dead_worker(sessions: sessionmaker[Session], ids: list[int], now: datetime) -> list[int]:
    """What a worker does before it dies mid-request: lease its chunk (and never record an outcome)."""
    with transaction(sessions) as s:
        return claims.lease_chunk(s, ids, "dead-worker", now, lease_seconds=300)


@pytest.mark.usefixtures("wave")
def test_rows_left_sending_past_their_lease_are_resent_as_uncertain_for_a_service_campaign(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path, now: datetime) -> None:
    published, _ = enqueue(dispatcher, now, chunk_size=10)
    pushes = published[1][1]
    assert lease_as_dead_worker(sessions, pushes, now) == pushes
    assert enqueue(dispatcher, now + timedelta(seconds=299))[1] == {}  # the lease still holds

    later = now + timedelta(seconds=301)
    again, recovered = enqueue(dispatcher, later, chunk_size=10)

    assert recovered == {f"{CAMPAIGN_ID}:resend": 3}
    assert again == [("push", pushes)]
    assert dispatcher.run_chunk(pushes, "worker-2", later) == {"sent": 3}
    rows = delivery_rows(sessions)
    assert {(rows[i].state, rows[i].uncertain, rows[i].attempts) for i in pushes} == {(DeliveryState.SENT, True, 2)}
    with sessions() as s:
        counts = campaign_status(s, CAMPAIGN_ID).counts
    assert {ch: c.get("uncertain", 0) for (_, ch), c in counts.items()} == {"email": 0, "push": 3}


def test_rows_left_sending_past_their_lease_are_skipped_as_uncertain_when_the_campaign_says_skip(
        add_recipient: AddRecipient, schedule_campaign: Schedule, sessions: sessionmaker[Session],
        dispatcher: Dispatcher, outbox: Path, now: datetime, locales: Path) -> None:
    for who in ("ana", "ben", "cid"):
        add_recipient(who, tokens=[f"{who}-phone"])
    schedule_campaign(now, wave_spec(now, CAMPAIGN_ID, on_uncertain="skip"), locales_dir=locales)
    published, _ = enqueue(dispatcher, now, chunk_size=10)
    emails = published[0][1]
    lease_as_dead_worker(sessions, emails, now)

    again, recovered = enqueue(dispatcher, now + timedelta(seconds=301), chunk_size=10)

    assert recovered == {f"{CAMPAIGN_ID}:skip": 3}
    # Nothing of the skipped emails goes out again (the never-delivered push chunk's lease ran out too, so it is
    # queued again: that is the lost-chunk rule, not a resend).
    assert [channel for channel, _ in again] == (["push"] if QUEUE_LEASE < 301 else [])
    rows = delivery_rows(sessions)
    assert {(rows[i].state, rows[i].skip_reason, rows[i].uncertain, rows[i].lease_owner) for i in emails} == {
        (DeliveryState.SKIPPED, SkipReason.UNCERTAIN, True, None)}
    with sessions() as s:
        status = campaign_status(s, CAMPAIGN_ID)
    assert {ch: c.get("uncertain", 0) for (_, ch), c in status.counts.items()} == {"email": 3, "push": 0}
    assert status.skips == {SkipReason.UNCERTAIN: 3}


@pytest.mark.usefixtures("wave")
def test_a_late_outcome_does_not_overwrite_a_row_another_owner_took(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, now: datetime) -> None:
    published, _ = enqueue(dispatcher, now, chunk_size=10)
    emails = published[0][1]
    lease_as_dead_worker(sessions, emails, now)  # it hangs, and is presumed dead
    later = now + timedelta(seconds=301)
    again, _ = enqueue(dispatcher, later, chunk_size=10)
    with transaction(sessions) as s:
        assert claims.lease_chunk(s, again[0][1], "worker-2", later, 300) == emails

    late = [claims.RowOutcome(i, DeliveryState.FAILED, later, campaign_id=CAMPAIGN_ID, error="hung")
            for i in emails]
    with transaction(sessions) as s:
        assert claims.record(s, late, owner="dead-worker") == 0
    with transaction(sessions) as s:
        assert claims.record(s, [claims.RowOutcome(emails[0], DeliveryState.SENT, later, campaign_id=CAMPAIGN_ID,
                                                    provider_message_id="m")],
                             owner="worker-2") == 1

    rows = delivery_rows(sessions)
    assert (rows[emails[0]].state, rows[emails[0]].last_error) == (DeliveryState.SENT, None)
    assert {(rows[i].state, rows[i].lease_owner, rows[i].last_error) for i in emails[1:]} == {
        (DeliveryState.SENDING, "worker-2", None)}


# --- worker settings -------------------------------------------------------------------------------------


def test_celery_config_acks_late_and_holds_one_chunk_per_worker() -> None:
    settings = Settings()
    config = distributed.celery_config(settings)

    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_soft_time_limit"] < config["task_time_limit"] < settings.lease_seconds
    assert config["result_backend"] is None and config["task_ignore_result"] is True
    assert config["broker_url"] == settings.broker_url
    assert config["task_serializer"] == "json" and config["accept_content"] == ["json"]
    assert config["broker_transport_options"]["visibility_timeout"] == settings.queue_lease_seconds
    assert [(e["task"], e["schedule"]) for e in config["beat_schedule"].values()] == [
        ("notifier.maintain", settings.tick_seconds), ("notifier.tick", settings.tick_seconds)]
    assert config["task_routes"] == {"notifier.tick": {"queue": "ticks"}}
    assert set(distributed.QUEUES) == {"email", "push", "ticks"}


@pytest.mark.parametrize("lease", [10, 15, 300])
def test_the_time_limits_stay_below_a_short_lease(lease: int) -> None:
    config = distributed.celery_config(Settings(lease_seconds=lease))

    assert 0 < config["task_soft_time_limit"] < config["task_time_limit"] < lease


# --- the shared rate limit -------------------------------------------------------------------------------


@pytest.fixture
def rate_key() -> Iterator[str]:
    import redis

    key = f"notifier:test:rate:{uuid.uuid4().hex}"
    yield key
    redis.Redis.from_url(REDIS_URL).delete(key)


def test_two_limiters_on_one_key_share_one_budget(rate_key: str) -> None:
    slept: list[float] = []
    first, second = (RedisRateLimiter(REDIS_URL, rate_key, rate=50, burst=50, sleep=slept.append)
                     for _ in range(2))

    waits = [first.acquire(50), second.acquire(50)]

    assert waits[0] == 0  # the burst
    assert 0.9 <= sum(waits) <= 1.0  # 50 more at 50/s: about a second, whichever worker asks
    assert slept == waits[1:]


def test_limiters_on_different_keys_do_not_share(rate_key: str) -> None:
    import redis

    other = f"{rate_key}:other"
    try:
        first = RedisRateLimiter(REDIS_URL, rate_key, rate=50, burst=50, sleep=lambda _: None)
        second = RedisRateLimiter(REDIS_URL, other, rate=50, burst=50, sleep=lambda _: None)
        assert [first.acquire(50), second.acquire(50)] == [0, 0]
    finally:
        redis.Redis.from_url(REDIS_URL).delete(other)


def test_one_at_a_time_from_two_limiters_the_hundredth_goes_about_a_second_after_the_first(rate_key: str) -> None:
    limiters = [RedisRateLimiter(REDIS_URL, rate_key, rate=50, burst=50, sleep=lambda _: None)
                for _ in range(2)]

    waits = [limiters[n % 2].acquire() for n in range(100)]  # turn about, as two workers would

    assert waits[:50] == [0] * 50
    assert waits[50:] == sorted(waits[50:])  # each reservation queues behind the other limiter's
    assert 0.9 <= waits[-1] <= 1.0


# --- notifier worker refuses to start without its services ----------------------------------------------


def run_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    notifier = Path(sys.executable).with_name("notifier")
    return subprocess.run([str(notifier), "worker", "-c", "1"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_worker_without_its_database_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_worker({"NOTIFIER_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test"})

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot reach the ledger database postgresql+psycopg://")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("broker", ["redis://127.0.0.1:1/0", "amqp://guest:secret@127.0.0.1:1//"])
def test_worker_without_its_broker_exits_2_with_one_line(tmp_path: Path, broker: str) -> None:
    result = run_worker({"NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
                         "NOTIFIER_BROKER_URL": broker})

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot reach the broker ")
    assert "127.0.0.1:1" in result.stderr and "secret" not in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
