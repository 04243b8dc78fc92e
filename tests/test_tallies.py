"""The live counts kept by the ledger's triggers (``ledger.tallies``) equal a count of the rows themselves after
every kind of change: created, claimed, completed in a batch, recovered, retried, deleted, rolled back, folded;
under concurrent workers and folds on PostgreSQL; and for rows that were in the ledger before the migration."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from notifier.ledger import claims, queries, tallies
from notifier.ledger.db import session_factory, transaction, upgrade
from notifier.ledger.models import DeliveryRow, DeliveryTally, SkipReason
from notifier.ledger.states import DeliveryState
from notifier.planner import send_channels
from notifier.reports import campaign_status

CAMPAIGN = "tiktok-music-shutdown"
SCHEDULED = datetime(2024, 9, 20, tzinfo=UTC)
CAMPAIGN = "tiktok-music-shutdown"  # the shipped campaign file's id
MIDWAY = datetime(2024, 10, 29, tzinfo=UTC)
ZONES = ("Asia/Jakarta", "America/Sao_Paulo", "Australia/Sydney", "America/Mexico_City", "Asia/Singapore")
COUNTRY = dict(zip(ZONES, ("ID", "BR", "AU", "MX", "SG"), strict=True))


def same(sessions: sessionmaker[Session], campaign: str = CAMPAIGN) -> list[tallies.Tally]:
    """Assert the tallies equal the recount; return them."""
    with sessions() as s:
        kept = sorted(tallies.of_campaign(s, campaign), key=repr)
        counted = sorted(tallies.recount(s, campaign), key=repr)
    assert kept == counted
    return kept


@pytest.fixture
def due(sessions: sessionmaker[Session], add_recipient: Callable[..., int],
        schedule_campaign: Callable[..., queries.ScheduleResult]) -> int:
    """The shipped campaign's rows up to MIDWAY for 30 recipients; returns how many."""
    for i in range(30):
        tz = ZONES[i % len(ZONES)]
        add_recipient(f"r{i}", timezone=tz, country=COUNTRY[tz], tokens=[f"token-{i}"] if i % 3 else [])
    schedule_campaign(SCHEDULED)
    with transaction(sessions) as s:
        made = queries.materialize_due(s, MIDWAY, send_channels)
    assert made > 50
    return made


def outcome(row_id: int, rng: random.Random, now: datetime) -> claims.RowOutcome:
    """A random outcome of every kind ``record`` writes."""
    made = functools.partial(claims.RowOutcome, campaign_id=CAMPAIGN)
    kind = rng.randrange(5)
    if kind == 0:
        return made(row_id, DeliveryState.SENT, now, provider_message_id=f"m{row_id}",
                                 locale=rng.choice(("id", "pt-BR", "es-MX", "en")))
    if kind == 1:
        return made(row_id, DeliveryState.FAILED, now, error=rng.choice(("sendgrid: 400", "fcm: 404")))
    if kind == 2:
        return made(row_id, DeliveryState.PENDING, now, error="sendgrid: 503 try again",
                                 next_attempt_at=now + timedelta(minutes=5), uncertain=rng.random() < 0.5)
    if kind == 3:
        return made(row_id, DeliveryState.SKIPPED, now, skip_reason=SkipReason.DEADLINE_PASSED,
                                 error="too late")
    return made(row_id, DeliveryState.SKIPPED, now, skip_reason=SkipReason.UNCERTAIN, uncertain=True)


def test_the_tallies_equal_a_recount_after_every_kind_of_change(sessions: sessionmaker[Session], due: int) -> None:
    kept = same(sessions)
    assert sum(t.n for t in kept) == due and "pending" in {t.state for t in kept}

    rng, now = random.Random(26), MIDWAY
    with transaction(sessions) as s:  # claimed for a broker, then taken by a worker, then completed in a batch
        ids = claims.claim_due(s, now, 40, 60, into=DeliveryState.QUEUED)
    same(sessions)
    with transaction(sessions) as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(ids))
                  .values(state=DeliveryState.SENDING, lease_owner="w1"))
    same(sessions)
    with transaction(sessions) as s:
        assert claims.record(s, [outcome(i, rng, now) for i in ids], owner="w1") == len(ids)
    kept = same(sessions)
    assert {t.state for t in kept} >= {"sent", "failed", "skipped", "pending"}
    assert any(t.uncertain for t in kept) and any(t.reason == "sendgrid: 503 try again" for t in kept)

    with transaction(sessions) as s:  # a worker dies mid-request: its rows become uncertain
        more = claims.claim_due(s, now, 10, 60, owner="w2")
        s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(more))
                  .values(lease_until=now - timedelta(seconds=1)))
    with transaction(sessions) as s:
        assert sum(claims.recover_expired(s, now).values()) == len(more)
    same(sessions)

    with transaction(sessions) as s:  # `ledger retry`: failed rows due again
        assert queries.retry_failed(s, CAMPAIGN, now).retried > 0
    same(sessions)

    with pytest.raises(RuntimeError), transaction(sessions) as s:  # rolled back: counts nothing
        s.execute(update(DeliveryRow).values(state=DeliveryState.SENT))
        raise RuntimeError("changed my mind")
    same(sessions)

    with transaction(sessions) as s:  # fallback emails: one already there adds nothing, a new one counts
        email = s.scalars(select(DeliveryRow).where(DeliveryRow.channel == "email").limit(1)).one()
        fresh = SimpleNamespace(campaign_id=CAMPAIGN, group_id=email.group_id, recipient_seq=10_000)
        assert claims.add_fallback_emails(s, [email, fresh], now) == 1  # type: ignore[list-item]
    assert sum(t.n for t in same(sessions)) == due + 1
    with transaction(sessions) as s:  # a deleted row leaves the counts
        s.execute(delete(DeliveryRow).where(DeliveryRow.recipient_seq == 10_000))
    assert sum(t.n for t in same(sessions)) == due

    with transaction(sessions) as s:
        tallies.roll_up(s)
    kept = same(sessions)
    with sessions() as s:  # folded: one row per key, and none at zero
        assert s.scalar(select(func.count()).select_from(DeliveryTally)) == len(kept)
        assert not s.scalar(select(func.count()).select_from(DeliveryTally).where(DeliveryTally.n == 0,
                                                                                  DeliveryTally.uncertain == 0))


def test_the_live_page_reads_the_tallies_and_the_tallies_alone(sessions: sessionmaker[Session], due: int) -> None:
    """Counts a live page shows come from the tallies: a tally changed by hand shows (and no scan hides it)."""
    with transaction(sessions) as s:
        group = s.scalar(select(DeliveryRow.group_id).limit(1))
        s.add(DeliveryTally(campaign_id=CAMPAIGN, group_id=group, locale="", channel="email", state="sent",
                            reason="", n=1000, uncertain=0))
    with sessions() as s:
        st = campaign_status(s, CAMPAIGN)
    assert sum(c.get("sent", 0) for c in st.counts.values()) == 1000
    assert sum(sum(c.get(state, 0) for state in DeliveryState) for c in st.counts.values()) == due + 1000


def test_concurrent_workers_and_folds_keep_the_tallies_exact(engine: Engine, sessions: sessionmaker[Session],
                                                            add_recipient: Callable[..., int],
                                                            schedule_campaign: Callable[..., object]) -> None:
    """Four workers complete batches (some rolled back) while a thread folds the deltas over and over and a
    reader checks that the total never moves: every look sees each row once, and at the end the tallies equal
    the recount. PostgreSQL: SQLite has one writer at a time."""
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL only")
    for i in range(200):
        tz = ZONES[i % len(ZONES)]
        add_recipient(f"r{i}", timezone=tz, country=COUNTRY[tz], tokens=[f"t{i}"])
    schedule_campaign(SCHEDULED)
    with transaction(sessions) as s:
        total = queries.materialize_due(s, MIDWAY, send_channels)
    stop, errors, looks = threading.Event(), [], [0]

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            while True:
                with transaction(sessions) as s:
                    ids = claims.claim_due(s, MIDWAY, 15, 60, owner=f"w{n}")
                if not ids:
                    return
                try:
                    with transaction(sessions) as s:
                        claims.record(s, [outcome(i, rng, MIDWAY) for i in ids], owner=f"w{n}")
                        if rng.random() < 0.2:
                            raise LookupError("rolled back")
                except LookupError:
                    with transaction(sessions) as s:  # released, as a worker that stops does
                        s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(ids)).values(
                            state=DeliveryState.PENDING, lease_owner=None, lease_until=None,
                            next_attempt_at=MIDWAY - timedelta(seconds=1)))
        except Exception as exc:
            errors.append(exc)

    def folder() -> None:
        while not stop.is_set():
            with transaction(sessions) as s:
                tallies.roll_up(s)

    def reader() -> None:
        while not stop.is_set():
            with sessions() as s:
                seen = sum(t.n for t in tallies.of_campaign(s, CAMPAIGN))
            if seen != total:
                errors.append(AssertionError(f"a look saw {seen} rows of {total}"))
            looks[0] += 1

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    helpers = [threading.Thread(target=folder), threading.Thread(target=reader)]
    for t in workers + helpers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    stop.set()
    for t in helpers:
        t.join(timeout=30)
    assert not errors, errors[:3]
    assert looks[0] > 5
    kept = same(sessions)
    assert sum(t.n for t in kept) == total and not any(t.state == "sending" for t in kept)
    with transaction(sessions) as s:
        tallies.roll_up(s)
    same(sessions)


def test_rows_already_in_the_ledger_are_counted_once_by_the_migration(new_ledger: Engine) -> None:
    upgrade(new_ledger, "0010")
    now = MIDWAY.isoformat(sep=" ")
    with new_ledger.begin() as conn:
        conn.execute(text("INSERT INTO deliveries (campaign_id, group_id, recipient_seq, channel, state, attempts, "
                          "next_attempt_at, uncertain, skip_reason, last_error, locale, created_at, updated_at) "
                          "VALUES ('c', 1, 1, 'email', 'sent', 1, :t, false, NULL, NULL, 'id', :t, :t), "
                          "('c', 1, 2, 'email', 'sent', 1, :t, true, NULL, NULL, 'id', :t, :t), "
                          "('c', 1, 3, 'push', 'skipped', 0, :t, false, 'deadline_passed', NULL, NULL, :t, :t), "
                          "('c', 2, 1, 'email', 'failed', 3, :t, false, NULL, 'sendgrid: 400', 'en', :t, :t)"),
                     {"t": now})
    upgrade(new_ledger)
    sessions = session_factory(new_ledger)
    kept = same(sessions, "c")
    assert sorted((t.group_id, t.state, t.n, t.uncertain, t.reason) for t in kept) == [
        (1, "sent", 2, 1, None), (1, "skipped", 1, 0, "deadline_passed"), (2, "failed", 1, 0, "sendgrid: 400")]
