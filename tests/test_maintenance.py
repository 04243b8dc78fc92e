"""Maintenance apart from the send path, on SQLite and PostgreSQL: each does its own part and nothing of the other's.

Maintenance (``notifier.maintenance``, the beat's ``notifier.maintain``) recovers, requeues, plans, gates,
materializes and purges, and sends nothing; the publisher (``Dispatcher.enqueue(maintain=False)``, the beat's
``notifier.tick``) hands out only what maintenance made due. A campaign that fails in maintenance fails alone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from notifier import distributed
from notifier.dispatch import Dispatcher, TickReport
from notifier.ledger import claims, queries
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignRow, DeliveryRow, DeliveryState, Recipient, SendGroup
from notifier.ledger.plans import ZonePlanner
from notifier.maintenance import Maintenance, MaintenanceReport
from tests.conftest import shipped_catalogs_as, wave_spec
from tests.waves import QUEUE_LEASE, AddRecipient, Published, Schedule, delivery_rows, schedule_wave

CAMPAIGN_ID = "upkeep-wave"
OTHER_ID = "upkeep-other"
LATER = timedelta(seconds=max(301, QUEUE_LEASE + 1))  # past a dead worker's 300 s lease and the queue lease

# From tests/waves.py: the fixtures outbox, now, and dispatcher and worker_environment (both on these locales).


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    return shipped_catalogs_as(tmp_path / "locales", CAMPAIGN_ID, OTHER_ID)


@pytest.fixture
def wave(add_recipient: AddRecipient, schedule_campaign: Schedule, now: datetime, locales: Path) -> None:
    schedule_wave(add_recipient, schedule_campaign, now, CAMPAIGN_ID, locales)


def maintain(dispatcher: Dispatcher, at: datetime) -> MaintenanceReport:
    return Maintenance(dispatcher.sessions, dispatcher.settings, dispatcher.gate, simulated_clock=True).run(at)


def publish(dispatcher: Dispatcher, at: datetime) -> tuple[Published, TickReport]:
    published: Published = []
    report = dispatcher.enqueue(at, lambda channel, ids: published.append((channel, ids)), 10, maintain=False)
    return published, report


def owed(sessions: sessionmaker[Session]) -> set[tuple[str, str, str]]:
    """(campaign, recipient, channel) of every delivery row."""
    with sessions() as s:
        return {(campaign_id, who, channel) for campaign_id, who, channel in s.execute(
            select(SendGroup.campaign_id, Recipient.id, DeliveryRow.channel)
            .join(SendGroup, SendGroup.id == DeliveryRow.group_id)
            .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq))}


def sent_files(outbox: Path) -> list[Path]:
    return [p for p in outbox.rglob("*") if p.is_file()]


# --- maintenance alone ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("wave")
def test_maintenance_alone_materializes_the_due_wave_and_sends_nothing(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path, now: datetime) -> None:
    report = maintain(dispatcher, now)

    assert (report.materialized, report.refused, report.failed, report.held) == (6, {}, [], None)
    assert {(r.state, r.attempts, r.lease_owner) for r in delivery_rows(sessions).values()} == {
        (DeliveryState.PENDING, 0, None)}
    assert sent_files(outbox) == []
    assert maintain(dispatcher, now).materialized == 0  # once


def _analyzed(sessions: sessionmaker[Session]) -> int:
    """How many times PostgreSQL's statistics of the delivery rows were taken (0 on SQLite, which keeps none)."""
    with sessions() as s:
        if s.get_bind().dialect.name != "postgresql":
            return 0
        return int(s.scalar(text(  # each campaign's rows are a partition (migration 0014)
            "SELECT sum(analyze_count) FROM pg_stat_user_tables WHERE relid IN "
            "(SELECT relid FROM pg_partition_tree('deliveries') WHERE isleaf)")) or 0)


@pytest.mark.usefixtures("wave")
@pytest.mark.parametrize("threshold", [1, 1000])
def test_a_large_materialize_takes_the_delivery_rows_statistics_again_on_postgresql(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, now: datetime, threshold: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The planner planned a wave's claims on statistics from before it (a table of a few rows) and read the whole
    # table for each batch; autovacuum takes them again only a minute or more later.
    monkeypatch.setattr(queries, "ANALYZE_AFTER", threshold)
    with sessions() as s:
        postgres = s.get_bind().dialect.name == "postgresql"
    before = _analyzed(sessions)
    report = maintain(dispatcher, now)
    assert report.materialized == 6 and report.failed == []
    if postgres:
        time.sleep(0.6)  # the statistics counters follow the transaction shortly
    assert _analyzed(sessions) - before == (1 if postgres and threshold <= 6 else 0)


@pytest.mark.usefixtures("wave")
def test_maintenance_alone_recovers_a_dead_workers_rows_and_requeues_a_lost_chunk_without_sending(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path, now: datetime) -> None:
    maintain(dispatcher, now)
    (_, emails), (_, pushes) = publish(dispatcher, now)[0]
    with transaction(sessions) as s:  # a worker leased the email chunk and died; the push chunk never arrived
        assert claims.lease_chunk(s, emails, "dead-worker", now, lease_seconds=300) == emails

    report = maintain(dispatcher, now + LATER)

    assert report.recovered == {f"{CAMPAIGN_ID}:resend": 3}
    assert report.requeued == 3
    after = delivery_rows(sessions)
    assert {(after[i].state, after[i].uncertain, after[i].lease_owner) for i in emails} == {
        (DeliveryState.PENDING, True, None)}
    assert {(after[i].state, after[i].uncertain, after[i].lease_until) for i in pushes} == {
        (DeliveryState.PENDING, False, None)}
    assert sent_files(outbox) == []


def test_maintenance_alone_purges_a_campaign_whose_purge_after_ran_out_and_sends_nothing(
        add_recipient: AddRecipient, schedule_campaign: Schedule, sessions: sessionmaker[Session],
        dispatcher: Dispatcher, now: datetime, locales: Path) -> None:
    for who in ("ana", "ben"):
        add_recipient(who, tokens=[f"{who}-phone"])
    spec = wave_spec(now, CAMPAIGN_ID).replace("deadlines:\n", "purge_after: P1D\ndeadlines:\n", 1)
    schedule_campaign(now, spec, locales_dir=locales)
    assert dict(dispatcher.tick(now).outcomes) == {"sent": 4}
    before = {i: (r.state, r.attempts) for i, r in delivery_rows(sessions).items()}

    report = maintain(dispatcher, now + timedelta(hours=3, days=1, minutes=1))

    assert report.purged == {CAMPAIGN_ID: 2}
    assert {i: (r.state, r.attempts) for i, r in delivery_rows(sessions).items()} == before
    with sessions() as s:
        assert s.scalars(select(Recipient.email)).all() == [None, None]


def test_maintenance_and_the_publisher_do_nothing_on_a_clock_that_disagrees_with_the_ledgers(
        wave: None, sessions: sessionmaker[Session], dispatcher: Dispatcher, now: datetime) -> None:
    ahead = datetime.now(UTC) + timedelta(days=1, minutes=1)
    report = Maintenance(dispatcher.sessions, dispatcher.settings, dispatcher.gate).run(ahead)
    dispatcher.simulated_clock = False

    published, sent = publish(dispatcher, ahead)

    assert report.held is not None and "1.0 days ahead of the ledger database's" in report.held
    assert (report.materialized, delivery_rows(sessions)) == (0, {})
    assert published == [] and sent.held == report.held


# --- the publisher alone ----------------------------------------------------------------------------------


def test_the_publisher_alone_hands_out_only_what_maintenance_made_due(
        wave: None, add_recipient: AddRecipient, sessions: sessionmaker[Session], dispatcher: Dispatcher,
        outbox: Path, now: datetime) -> None:
    assert publish(dispatcher, now)[0] == []
    assert delivery_rows(sessions) == {}

    maintain(dispatcher, now)
    published, report = publish(dispatcher, now)

    assert sorted(i for _, ids in published for i in ids) == sorted(delivery_rows(sessions))
    assert {r.state for r in delivery_rows(sessions).values()} == {DeliveryState.QUEUED}
    assert (report.materialized, report.recovered) == (0, {})
    add_recipient("dee", tokens=["dee-phone"])  # joined after the wave's rows were made: maintenance's to add
    assert publish(dispatcher, now)[0] == []
    assert maintain(dispatcher, now).materialized == 2
    assert [len(ids) for _, ids in publish(dispatcher, now)[0]] == [1, 1]
    assert sent_files(outbox) == []


@pytest.mark.usefixtures("wave")
def test_the_publisher_holds_back_a_campaign_whose_copy_changed_since_it_was_approved(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, now: datetime, locales: Path) -> None:
    maintain(dispatcher, now)
    po = locales / "en" / "LC_MESSAGES" / f"{CAMPAIGN_ID}.po"
    po.write_text(po.read_text(encoding="utf-8").replace(
        'msgstr "Last day to transfer your TikTok Music playlists"', 'msgstr "Last day, unreviewed"'),
        encoding="utf-8")

    published, report = publish(dispatcher, now)

    assert published == []
    assert f"locales/en/LC_MESSAGES/{CAMPAIGN_ID}.po: changed" in report.refused[CAMPAIGN_ID]
    assert {r.state for r in delivery_rows(sessions).values()} == {DeliveryState.PENDING}


# --- each campaign, each step, alone ----------------------------------------------------------------------


def test_a_campaign_whose_planning_raises_does_not_stop_another_campaigns_materialization(
        add_recipient: AddRecipient, schedule_campaign: Schedule, sessions: sessionmaker[Session],
        dispatcher: Dispatcher, now: datetime, locales: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    add_recipient("ana", tokens=["ana-phone"])
    for campaign_id in (CAMPAIGN_ID, OTHER_ID):
        schedule_campaign(now, wave_spec(now, campaign_id), locales_dir=locales)
    add_recipient("bo", timezone="Asia/Bangkok", tokens=["bo-phone"])  # a zone neither campaign has planned yet
    plan = queries.plan_groups

    def broken_for_one(session: Session, row: CampaignRow, not_before: datetime,
                       planner: ZonePlanner) -> tuple[int, int]:
        if row.id == CAMPAIGN_ID:
            raise RuntimeError("a bug planning this campaign")
        return plan(session, row, not_before, planner)

    monkeypatch.setattr(queries, "plan_groups", broken_for_one)

    report = maintain(dispatcher, now)

    assert report.failed == [f"plan:{CAMPAIGN_ID}"]
    assert f"campaign {CAMPAIGN_ID}: planning new zones failed" in caplog.text
    assert report.planned_groups == 1
    assert owed(sessions) == {(OTHER_ID, who, channel) for who in ("ana", "bo") for channel in ("email", "push")} | {
        (CAMPAIGN_ID, "ana", "email"), (CAMPAIGN_ID, "ana", "push")}  # its zone planned before still goes out

    monkeypatch.setattr(queries, "plan_groups", plan)
    assert maintain(dispatcher, now).materialized == 2  # the next pass plans it: Bo's two rows


@pytest.mark.usefixtures("wave")
def test_a_failing_ledger_wide_step_lets_the_rest_of_the_pass_run_then_fails_it(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, now: datetime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(session: Session, at: datetime) -> dict[str, int]:
        raise RuntimeError("recovering failed")

    monkeypatch.setattr(claims, "recover_expired", broken)

    with pytest.raises(RuntimeError, match="recovering failed"):
        maintain(dispatcher, now)

    assert len(delivery_rows(sessions)) == 6  # materialized all the same


# --- the Celery tasks' work -------------------------------------------------------------------------------


@pytest.mark.usefixtures("wave", "worker_environment")
def test_maintain_and_publish_due_read_the_environment_and_return_counts_only(outbox: Path, now: datetime) -> None:
    published: Published = []
    early = distributed.publish_due(lambda channel, ids: published.append((channel, ids)), at=now)
    maintained = distributed.maintain(at=now)
    counts = distributed.publish_due(lambda channel, ids: published.append((channel, ids)), at=now)

    assert early == {"queued": 0, "chunks": 0, "refused": []}
    assert maintained == {"planned_groups": 0, "materialized": 6, "recovered": {}, "requeued": 0, "purged": {},
                          "refused": []}
    assert counts == {"queued": 6, "chunks": 4, "refused": []}
    assert sent_files(outbox) == []
