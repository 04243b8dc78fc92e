"""The ledger's queries on SQLite and PostgreSQL: schedule → plan groups → materialize → claim → state changes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import load_campaign, zone
from notifier.errors import CampaignStateError
from notifier.ledger import claims, queries, tallies
from notifier.ledger.db import alembic_config, current_revision, downgrade, session_factory, transaction, upgrade
from notifier.ledger.models import (
    CampaignRow,
    CampaignState,
    ContentVersion,
    DeliveryRow,
    DeliveryState,
    Recipient,
    SendGroup,
    SkipReason,
)
from notifier.planner import plan_zone, send_channels
from tests.conftest import without_spread

CAMPAIGN_FILE = Path(__file__).resolve().parent.parent / "campaigns" / "tiktok-music-shutdown.yaml"

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)  # before anyone's first send (28 Sep, 10:00 local)
FIRST_KEY = "playlist-transfer@P30D+refund@P61D"  # the merged announcement of 28 Sep
SYDNEY_FIRST = datetime(2024, 9, 28, 0, 0, tzinfo=UTC)  # 10:00 AEST
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 10:00 WIB
SAO_PAULO_FIRST = datetime(2024, 9, 28, 13, 0, tzinfo=UTC)  # 10:00 BRT
CAMPAIGN_ID = "tiktok-music-shutdown"

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


# --- helpers -----------------------------------------------------------------------------------------


def send_groups(sessions: sessionmaker[Session]) -> list[SendGroup]:
    with sessions() as s:
        return list(s.scalars(select(SendGroup).order_by(SendGroup.timezone, SendGroup.send_at)))


def deliveries(sessions: sessionmaker[Session]) -> list[DeliveryRow]:
    with sessions() as s:
        return list(s.scalars(select(DeliveryRow).order_by(DeliveryRow.id)))


def delivered_to(sessions: sessionmaker[Session]) -> set[tuple[str, str, str]]:
    """The rows as (recipient id, send key, channel)."""
    with sessions() as s:
        rows = s.execute(select(Recipient.id, DeliveryRow.send_key, DeliveryRow.channel)
                         .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq))
        return {tuple(r) for r in rows}  # type: ignore[misc]


def materialize(sessions: sessionmaker[Session], now: datetime) -> int:
    with transaction(sessions) as s:
        return queries.materialize_due(s, now, send_channels)


def claim(sessions: sessionmaker[Session], now: datetime, limit: int = 100, lease_seconds: int = 300) -> list[int]:
    with transaction(sessions) as s:
        return claims.claim_due(s, now, limit, lease_seconds)


def set_state(sessions: sessionmaker[Session], state: CampaignState, now: datetime) -> None:
    with transaction(sessions) as s:
        queries.set_state(s, CAMPAIGN_ID, state, now)


def expected_groups(zone_name: str, not_before: datetime) -> set[tuple[str, str, datetime, datetime]]:
    """What the planner says one zone gets from ``not_before``: (zone, send key, send time, last deadline)."""
    plan = plan_zone(load_campaign(CAMPAIGN_FILE), zone(zone_name))
    return {(zone_name, s.send_key, s.send_at_utc, max(plan.deadline_instants[d] for d in s.deadlines))
            for s in plan.sends if s.send_at_utc >= not_before}


def as_tuples(groups: list[SendGroup]) -> set[tuple[str, str, datetime, datetime]]:
    return {(g.timezone, g.send_key, g.send_at, g.expires_at) for g in groups}


# --- migrations --------------------------------------------------------------------------------------


def test_upgrade_reaches_the_head_revision_and_creates_every_table(engine: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    assert current_revision(engine) == head
    tables = set(inspect(engine).get_table_names())
    assert {"campaigns", "recipients", "push_tokens", "recipient_actions", "send_groups", "deliveries",
            "delivery_events", "alembic_version"} <= tables


def _old_ledger(engine: Engine, revision: str, *, fingerprint: str | None = None) -> None:
    """A ledger left at ``revision`` with one campaign, recipient, group, a sent delivery and its event."""
    upgrade(engine, revision)
    at = "2024-10-01 00:00:00"
    rows = [
        "INSERT INTO campaigns (id, name, source, spec, state, scheduled_at, updated_at, planned_zones"
        + (", content_fingerprint" if fingerprint else "") + ") VALUES ('c', 'c', 's', 'x', 'scheduled', :t, :t, "
        + "'[]'" + (", :fp" if fingerprint else "") + ")",
        "INSERT INTO recipients (id, timezone, timezone_guessed, attributes, joined_at, updated_at) "
        "VALUES ('r', 'UTC', false, '{}', :t, :t)",
        "INSERT INTO send_groups (campaign_id, timezone, send_key, wave, deadlines, send_at, expires_at, "
        "materialized_upto) VALUES ('c', 'UTC', 'k', 'w', '[]', :t, :t, 1)",
        "INSERT INTO deliveries (campaign_id, group_id, recipient_seq, channel, state, attempts, "
        + ("send_key, " if revision < "0010" else "") + ("content_fingerprint, " if fingerprint else "")
        + "next_attempt_at, uncertain, created_at, updated_at) VALUES ('c', 1, 1, 'email', 'sent', 1, "
        + ("'k', " if revision < "0010" else "") + (":fp, " if fingerprint else "") + ":t, false, :t, :t)",
        "INSERT INTO delivery_events (delivery_id, type, at) VALUES (1, 'sent', :t)",
    ]
    with engine.begin() as conn:
        for sql in rows:
            conn.execute(text(sql), {"t": at, "fp": fingerprint})


def test_a_migration_that_rebuilds_a_table_keeps_the_rows_that_point_at_it(new_ledger: Engine) -> None:
    # 0010 rebuilt deliveries on SQLite with foreign keys on: dropping the old table deleted every delivery event
    # through ON DELETE CASCADE. Migrations now run with them off and check them before committing.
    _old_ledger(new_ledger, "0009")
    upgrade(new_ledger)
    with new_ledger.connect() as conn:
        assert conn.execute(text("SELECT delivery_id, type FROM delivery_events")).all() == [(1, "sent")]


def test_0012_numbers_the_copy_and_keys_rows_without_the_campaign_and_going_back_restores_them(
        new_ledger: Engine) -> None:
    fingerprint = "f" * 64
    _old_ledger(new_ledger, "0011", fingerprint=fingerprint)
    upgrade(new_ledger)
    sessions = session_factory(new_ledger)
    with sessions() as s:
        row = s.get(DeliveryRow, 1)
        assert row is not None and row.content_fingerprint == fingerprint and row.content_version == 1
        assert s.scalars(select(ContentVersion.fingerprint)).all() == [fingerprint]
        assert len(tallies.of_campaign(s, "c")) == 1  # the rebuild kept the triggers' counts as they were
    with pytest.raises(IntegrityError), new_ledger.begin() as conn:  # the same group, recipient and channel
        conn.execute(text("INSERT INTO deliveries (campaign_id, group_id, recipient_seq, channel, state, attempts, "
                          "next_attempt_at, uncertain, created_at, updated_at) "
                          "VALUES ('other', 1, 1, 'email', 'pending', 0, :t, false, :t, :t)"), {"t": "2024-10-02"})
    with new_ledger.begin() as conn:  # the triggers are there again after SQLite's rebuild
        conn.execute(text("UPDATE deliveries SET state = 'failed' WHERE id = 1"))
    with sessions() as s:
        assert sorted(tallies.of_campaign(s, "c"), key=repr) == sorted(tallies.recount(s, "c"), key=repr)
    downgrade(new_ledger, "0011")
    with new_ledger.connect() as conn:
        assert conn.execute(text("SELECT content_fingerprint FROM deliveries")).scalars().all() == [fingerprint]
        assert conn.execute(text("SELECT count(*) FROM delivery_events")).scalar() == 1


def test_0013_keys_a_recipients_tokens_by_digest_on_postgresql_and_drops_the_second_index(
        new_ledger: Engine) -> None:
    _old_ledger(new_ledger, "0012")
    token = "fcm:" + "x" * 160
    with new_ledger.begin() as conn:
        conn.execute(text("INSERT INTO push_tokens (recipient_seq, token, active) VALUES (1, :t, true)"), {"t": token})
    upgrade(new_ledger)
    indexes = {i["name"]: i for i in inspect(new_ledger).get_indexes("push_tokens")}
    assert "ix_push_tokens_recipient_seq" not in indexes
    if new_ledger.dialect.name == "postgresql":
        with new_ledger.connect() as conn:
            key = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_push_token' "
                                    "AND schemaname = current_schema()")).scalar()
        assert key is not None and "UNIQUE" in key and "decode(md5((token)::text)" in key
    with pytest.raises(IntegrityError), new_ledger.begin() as conn:  # still once per recipient
        conn.execute(text("INSERT INTO push_tokens (recipient_seq, token, active) VALUES (1, :t, true)"), {"t": token})
    with new_ledger.begin() as conn:  # what the import writes: a token it has is left as it is
        added = conn.execute(text("INSERT INTO push_tokens (recipient_seq, token, active) VALUES (1, :t, true), "
                                  "(1, :u, true) ON CONFLICT DO NOTHING"), {"t": token, "u": token + "2"}).rowcount
    assert added == 1
    downgrade(new_ledger, "0012")
    assert "ix_push_tokens_recipient_seq" in {i["name"] for i in inspect(new_ledger).get_indexes("push_tokens")}


# --- schedule ----------------------------------------------------------------------------------------


def test_schedule_stores_the_campaign_and_plans_one_group_per_zone_and_send(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta", country="ID")
    add_recipient("jkt-2", timezone="Asia/Jakarta", country="ID")
    add_recipient("syd", timezone="Australia/Sydney", country="AU")

    result = schedule_campaign(SCHEDULED)

    assert result == queries.ScheduleResult(CAMPAIGN_ID, created=True, zones=2, groups=12)
    with sessions() as s:
        row = s.get(CampaignRow, CAMPAIGN_ID)
        assert row is not None
        assert (row.state, row.source, row.scheduled_at) == (CampaignState.SCHEDULED, str(CAMPAIGN_FILE), SCHEDULED)
        assert row.spec == without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8"))  # as the fixture scheduled it
    groups = send_groups(sessions)
    assert as_tuples(groups) == expected_groups("Asia/Jakarta", SCHEDULED) | expected_groups(
        "Australia/Sydney", SCHEDULED)
    first = next(g for g in groups if g.timezone == "Asia/Jakarta" and g.send_key == FIRST_KEY)
    assert (first.send_at, first.wave, first.deadlines) == (JAKARTA_FIRST, "P30D", ["playlist-transfer", "refund"])
    assert first.expires_at == datetime(2024, 11, 27, 17, 0, tzinfo=UTC)  # 28 Nov 00:00 WIB: the later deadline
    assert all(g.materialized_upto == 0 for g in groups)


def test_schedule_plans_no_zone_outside_the_audience_countries(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta", country="ID")
    add_recipient("nyc", timezone="America/New_York", country="US")

    result = schedule_campaign(SCHEDULED)

    assert (result.zones, result.groups) == (1, 6)
    assert {g.timezone for g in send_groups(sessions)} == {"Asia/Jakarta"}


def test_schedule_creates_no_group_before_the_campaign_was_scheduled(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta")
    late = datetime(2024, 10, 22, 0, 0, tzinfo=UTC)  # after the playlist P7D wave of 21 Oct

    result = schedule_campaign(late)

    assert result.groups == 4
    assert as_tuples(send_groups(sessions)) == expected_groups("Asia/Jakarta", late)
    assert {g.send_key for g in send_groups(sessions)} == {
        "playlist-transfer@P1D", "refund@P30D", "refund@P7D", "refund@P1D"}


def test_rescheduling_the_same_text_changes_nothing(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED)
    before = as_tuples(send_groups(sessions))

    again = schedule_campaign(SCHEDULED + timedelta(hours=1))

    assert (again.created, again.groups) == (False, 0)
    assert as_tuples(send_groups(sessions)) == before


def test_rescheduling_changed_text_replans_only_groups_not_yet_materialized(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta")
    add_recipient("sao", timezone="America/Sao_Paulo", country="BR")
    schedule_campaign(SCHEDULED)
    now = JAKARTA_FIRST + timedelta(hours=1)
    assert materialize(sessions, now) == 1  # Jakarta's first send; São Paulo's is not due yet
    spec = CAMPAIGN_FILE.read_text(encoding="utf-8").replace('local_time: "10:00"', 'local_time: "11:00"')
    assert spec != CAMPAIGN_FILE.read_text(encoding="utf-8")

    result = schedule_campaign(now, text=spec)

    assert (result.created, result.groups) == (False, 11)  # everything but Jakarta's materialized first send
    groups = {(g.timezone, g.send_key): g for g in send_groups(sessions)}
    assert len(groups) == 12
    kept = groups["Asia/Jakarta", FIRST_KEY]
    assert (kept.send_at, kept.materialized_upto > 0) == (JAKARTA_FIRST, True)
    for (tz, key), g in groups.items():
        if (tz, key) != ("Asia/Jakarta", FIRST_KEY):
            assert g.send_at.astimezone(zone(tz)).hour == 11, (tz, key)
    with sessions() as s:
        assert s.get(CampaignRow, CAMPAIGN_ID).spec == spec  # type: ignore[union-attr]


def test_scheduling_the_same_id_from_another_file_is_refused(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt")
    schedule_campaign(SCHEDULED)

    with pytest.raises(CampaignStateError, match="already scheduled from"):
        schedule_campaign(SCHEDULED, source=CAMPAIGN_FILE.parent / "copy.yaml")


def test_a_cancelled_campaign_cannot_be_rescheduled(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt")
    schedule_campaign(SCHEDULED)
    set_state(sessions, CampaignState.CANCELLED, SCHEDULED)

    with pytest.raises(CampaignStateError, match="cancelled"):
        schedule_campaign(SCHEDULED + timedelta(hours=1))


# --- materialize_due ---------------------------------------------------------------------------------


def test_materialize_creates_one_row_per_recipient_and_channel_of_due_groups_only(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt-both", timezone="Asia/Jakarta", tokens=["tok-1", "tok-2"])
    add_recipient("jkt-push", timezone="Asia/Jakarta", email=None, tokens=["tok-3"])
    add_recipient("jkt-nothing", timezone="Asia/Jakarta", email=None, inactive_tokens=["dead"])
    add_recipient("jkt-email", timezone="Asia/Jakarta", inactive_tokens=["dead"])
    add_recipient("syd", timezone="Australia/Sydney", country="AU")
    add_recipient("sao", timezone="America/Sao_Paulo", country="BR", tokens=["tok-4"])
    schedule_campaign(SCHEDULED)
    now = JAKARTA_FIRST + timedelta(hours=1)  # Sydney's and Jakarta's first sends are due, São Paulo's is not

    assert materialize(sessions, now) == 5

    assert delivered_to(sessions) == {
        ("jkt-both", FIRST_KEY, "email"), ("jkt-both", FIRST_KEY, "push"), ("jkt-push", FIRST_KEY, "push"),
        ("jkt-email", FIRST_KEY, "email"), ("syd", FIRST_KEY, "email"),
    }
    rows = deliveries(sessions)
    assert {(r.state, r.attempts, r.created_at) for r in rows} == {(DeliveryState.PENDING, 0, now)}
    assert {r.next_attempt_at for r in rows} == {JAKARTA_FIRST, SYDNEY_FIRST}  # due at the group's send time


def test_materialize_is_idempotent(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta", tokens=["tok"])
    schedule_campaign(SCHEDULED)
    now = JAKARTA_FIRST + timedelta(minutes=5)

    assert materialize(sessions, now) == 2
    assert materialize(sessions, now) == 0
    assert materialize(sessions, now + timedelta(hours=1)) == 0
    assert len(deliveries(sessions)) == 2


def test_materialize_records_groups_whose_deadline_passed_as_skipped(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    """Nothing dispatched until after the playlist deadline: its reminders still get rows, saying why."""
    add_recipient("jkt", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED)
    after_playlist_deadline = datetime(2024, 10, 27, 17, 0, tzinfo=UTC)  # 28 Oct 00:00 WIB

    # Three groups fell due: the first message still carries the refund; the playlist-only ones expired.
    assert materialize(sessions, after_playlist_deadline) == 3
    assert materialize(sessions, datetime(2024, 10, 29, 3, 0, tzinfo=UTC)) == 1  # refund@P30D is live
    with sessions() as s:
        rows = {(r.send_key, r.state, r.skip_reason) for r in s.scalars(select(DeliveryRow))}
    assert rows == {
        (FIRST_KEY, DeliveryState.PENDING, None), ("refund@P30D", DeliveryState.PENDING, None),
        ("playlist-transfer@P7D", DeliveryState.SKIPPED, SkipReason.DEADLINE_PASSED),
        ("playlist-transfer@P1D", DeliveryState.SKIPPED, SkipReason.DEADLINE_PASSED),
    }
    assert materialize(sessions, datetime(2024, 11, 27, 17, 0, tzinfo=UTC)) == 2  # 28 Nov 00:00 WIB: all over
    assert materialize(sessions, datetime(2024, 12, 27, 17, 0, tzinfo=UTC)) == 0  # each group once


def test_materialize_leaves_out_recipients_who_joined_after_the_send(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("early", timezone="Asia/Jakarta")
    add_recipient("late", timezone="Asia/Jakarta", joined_at=JAKARTA_FIRST + timedelta(minutes=1))
    schedule_campaign(SCHEDULED)

    materialize(sessions, JAKARTA_FIRST + timedelta(hours=1))
    materialize(sessions, datetime(2024, 10, 21, 3, 0, tzinfo=UTC))  # playlist P7D

    assert delivered_to(sessions) == {("early", FIRST_KEY, "email"), ("early", "playlist-transfer@P7D", "email"),
                                      ("late", "playlist-transfer@P7D", "email")}


def test_materialize_honours_the_audience_countries(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("in-audience", timezone="Asia/Jakarta", country="ID")
    add_recipient("abroad", timezone="Asia/Jakarta", country="US")
    add_recipient("no-country", timezone="Asia/Jakarta", country=None)
    schedule_campaign(SCHEDULED)

    materialize(sessions, JAKARTA_FIRST)

    assert delivered_to(sessions) == {("in-audience", FIRST_KEY, "email")}


def test_materialize_picks_up_later_recipients_who_joined_before_the_send(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("first", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED)
    assert materialize(sessions, JAKARTA_FIRST) == 1
    # Imported after the group went out: one had joined before the send, one after it.
    add_recipient("imported-late", timezone="Asia/Jakarta", joined_at=JAKARTA_FIRST - timedelta(days=1))
    newest = add_recipient("joined-after", timezone="Asia/Jakarta", joined_at=JAKARTA_FIRST + timedelta(minutes=30))

    assert materialize(sessions, JAKARTA_FIRST + timedelta(hours=1)) == 1

    assert delivered_to(sessions) == {("first", FIRST_KEY, "email"), ("imported-late", FIRST_KEY, "email")}
    jakarta_first = next(g for g in send_groups(sessions) if g.timezone == "Asia/Jakarta" and g.send_key == FIRST_KEY)
    assert jakarta_first.materialized_upto == newest
    assert materialize(sessions, JAKARTA_FIRST + timedelta(hours=2)) == 0


# --- claim_due ---------------------------------------------------------------------------------------


def test_a_claim_loop_with_a_cursor_takes_every_due_row_once_and_what_becomes_due_at_its_time(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    for i in range(7):
        add_recipient(f"jkt-{i}", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED)
    materialize(sessions, JAKARTA_FIRST)
    now = JAKARTA_FIRST + timedelta(hours=1)
    cursor = claims.DueCursor()

    def take(limit: int) -> list[int]:
        with transaction(sessions) as s:
            return claims.claim_due(s, now, limit, 300, channel="email", cursor=cursor)

    first, second = take(3), take(3)
    with transaction(sessions) as s:  # a row made due at the tick's own time during the loop (a fallback, a retry)
        back = first[0]
        s.execute(update(DeliveryRow).where(DeliveryRow.id == back).values(state=DeliveryState.PENDING,
                                                                            next_attempt_at=now))
    rest = take(100)

    emails = sorted(r.id for r in deliveries(sessions) if r.channel == "email")
    assert len(emails) == 7 and not set(first) & set(second)
    assert sorted(first + second + [r for r in rest if r != back]) == emails
    assert back in rest and take(100) == []
    with transaction(sessions) as s:  # behind the cursor (a campaign resumed meanwhile): the next tick's loop takes it
        s.execute(update(DeliveryRow).where(DeliveryRow.id == second[0]).values(state=DeliveryState.PENDING))
    assert take(100) == []
    cursor = claims.DueCursor()
    assert take(100) == [second[0]]


def test_claim_leases_only_due_pending_rows(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    for i in range(3):
        add_recipient(f"jkt-{i}", timezone="Asia/Jakarta", tokens=[f"tok-{i}"])
    add_recipient("sao", timezone="America/Sao_Paulo", country="BR")
    schedule_campaign(SCHEDULED)
    materialize(sessions, SAO_PAULO_FIRST)
    rows = deliveries(sessions)
    assert len(rows) == 7
    sao = next(r.id for r in rows if r.next_attempt_at == SAO_PAULO_FIRST)
    retry_later, done = [r.id for r in rows if r.id != sao][:2]
    with transaction(sessions) as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == retry_later)
                  .values(next_attempt_at=JAKARTA_FIRST + timedelta(hours=2)))
        s.execute(update(DeliveryRow).where(DeliveryRow.id == done).values(state=DeliveryState.SENT))
    now = JAKARTA_FIRST + timedelta(hours=1)  # São Paulo's row is not due yet, nor the retry

    claimed = claim(sessions, now, lease_seconds=120)

    assert claimed == sorted(r.id for r in rows if r.id not in (sao, retry_later, done))
    by_id = {r.id: r for r in deliveries(sessions)}
    for i in claimed:
        assert (by_id[i].state, by_id[i].attempts, by_id[i].lease_until) == (
            DeliveryState.SENDING, 1, now + timedelta(seconds=120))
    assert [by_id[i].state for i in (sao, retry_later, done)] == [
        DeliveryState.PENDING, DeliveryState.PENDING, DeliveryState.SENT]
    assert claim(sessions, now) == []


def test_a_row_released_unsent_keeps_the_error_it_had_and_a_completed_one_gets_its_own(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    """A stop releases a claimed batch that never left (``keep_error``): the row's last error, say why it waited,
    stays for status; any other outcome writes its own error, or none. Both ledgers (PostgreSQL: one statement)."""
    for i in range(3):
        add_recipient(f"jkt-{i}", timezone="Asia/Jakarta", tokens=[])
    schedule_campaign(SCHEDULED)
    materialize(sessions, JAKARTA_FIRST)
    with transaction(sessions) as s:
        s.execute(update(DeliveryRow).values(last_error="sendgrid: 503 try again"))
    with transaction(sessions) as s:
        ids = claims.claim_due(s, JAKARTA_FIRST, 100, 300, owner="w", channel="email")
    assert len(ids) == 3
    released, retried, sent = ids
    with transaction(sessions) as s:
        assert claims.record(s, [
            claims.RowOutcome(released, DeliveryState.PENDING, JAKARTA_FIRST, campaign_id=CAMPAIGN_ID, attempts=0,
                              keep_error=True),
            claims.RowOutcome(retried, DeliveryState.PENDING, JAKARTA_FIRST, campaign_id=CAMPAIGN_ID,
                              error="fcm: 500"),
            claims.RowOutcome(sent, DeliveryState.SENT, JAKARTA_FIRST, campaign_id=CAMPAIGN_ID,
                              provider_message_id="m1")], owner="w") == 3
    by_id = {r.id: r for r in deliveries(sessions)}
    assert [(by_id[i].state, by_id[i].last_error) for i in ids] == [
        (DeliveryState.PENDING, "sendgrid: 503 try again"), (DeliveryState.PENDING, "fcm: 500"),
        (DeliveryState.SENT, None)]
    assert by_id[released].attempts == 0


def test_claim_respects_the_limit_and_the_due_order(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta", tokens=["tok"])
    add_recipient("syd", timezone="Australia/Sydney", country="AU", tokens=["tok"])
    schedule_campaign(SCHEDULED)
    materialize(sessions, JAKARTA_FIRST)
    sydney = {r.id for r in deliveries(sessions) if r.next_attempt_at == SYDNEY_FIRST}

    assert set(claim(sessions, JAKARTA_FIRST, limit=2)) == sydney  # due first, claimed first
    assert len(claim(sessions, JAKARTA_FIRST, limit=1)) == 1


def test_a_paused_campaign_is_not_claimed_until_resumed(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta", tokens=["tok"])
    schedule_campaign(SCHEDULED)
    materialize(sessions, JAKARTA_FIRST)
    set_state(sessions, CampaignState.PAUSED, JAKARTA_FIRST)

    assert claim(sessions, JAKARTA_FIRST) == []
    assert {r.state for r in deliveries(sessions)} == {DeliveryState.PENDING}

    set_state(sessions, CampaignState.SCHEDULED, JAKARTA_FIRST)
    assert len(claim(sessions, JAKARTA_FIRST)) == 2


def test_a_paused_campaign_materializes_nothing(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED)
    set_state(sessions, CampaignState.PAUSED, SCHEDULED)

    assert materialize(sessions, JAKARTA_FIRST) == 0
    set_state(sessions, CampaignState.SCHEDULED, SCHEDULED)
    assert materialize(sessions, JAKARTA_FIRST) == 1


def test_rows_whose_lease_expired_are_recovered_as_uncertain_and_claimed_again(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta", tokens=["tok"])
    schedule_campaign(SCHEDULED)
    materialize(sessions, JAKARTA_FIRST)
    first = claim(sessions, JAKARTA_FIRST, lease_seconds=60)
    assert len(first) == 2

    later = JAKARTA_FIRST + timedelta(seconds=61)
    assert claim(sessions, later) == []  # a row being sent is never claimed, even past its lease
    with transaction(sessions) as s:
        assert claims.recover_expired(s, JAKARTA_FIRST + timedelta(seconds=60)) == {}  # the lease still holds
        assert claims.recover_expired(s, later) == {f"{CAMPAIGN_ID}:resend": 2}  # service: resend
    again = claim(sessions, later, lease_seconds=60)

    assert again == first
    assert {(r.state, r.attempts, r.uncertain) for r in deliveries(sessions)} == {(DeliveryState.SENDING, 2, True)}


def test_concurrent_claimers_claim_every_row_exactly_once(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    for i in range(40):
        add_recipient(f"jkt-{i}", timezone="Asia/Jakarta", tokens=[f"tok-{i}"])
    schedule_campaign(SCHEDULED)
    assert materialize(sessions, JAKARTA_FIRST) == 80
    start = threading.Barrier(4)
    claimed: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def claimer(mine: list[int]) -> None:
        try:
            start.wait()
            while ids := claim(sessions, JAKARTA_FIRST, limit=7):
                mine.extend(ids)
        except BaseException as exc:  # surfaced below; a thread must not die silently
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(mine,)) for mine in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert not any(t.is_alive() for t in threads)

    every = [i for mine in claimed for i in mine]
    twice = [i for i, n in Counter(every).items() if n > 1]
    assert twice == []
    assert sorted(every) == [r.id for r in deliveries(sessions)]
    assert {(r.state, r.attempts) for r in deliveries(sessions)} == {(DeliveryState.SENDING, 1)}


@pytest.mark.postgres
@pytest.mark.parametrize("engine", ["postgres"], indirect=True)  # SQLite serializes writers: nothing to skip
def test_claim_skips_rows_locked_by_another_open_claim_without_waiting(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    for i in range(6):
        add_recipient(f"jkt-{i}", timezone="Asia/Jakarta", tokens=[f"tok-{i}"])
    schedule_campaign(SCHEDULED)
    materialize(sessions, JAKARTA_FIRST)
    all_ids = [r.id for r in deliveries(sessions)]

    with sessions() as a, sessions() as b:
        a.begin()
        from_a = claims.claim_due(a, JAKARTA_FIRST, 5, 300)  # a's transaction stays open, its rows locked
        b.begin()
        b.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting on a's locks would fail b, not hang it
        started = time.monotonic()
        from_b = claims.claim_due(b, JAKARTA_FIRST, 100, 300)
        waited = time.monotonic() - started
        b.commit()
        a.commit()

    assert len(from_a) == 5
    assert waited < 1.0
    assert set(from_a).isdisjoint(from_b)
    assert sorted(from_a + from_b) == all_ids
    assert {(r.state, r.attempts) for r in deliveries(sessions)} == {(DeliveryState.SENDING, 1)}


# --- set_state ---------------------------------------------------------------------------------------


def test_cancel_skips_every_pending_row_and_leaves_the_rest(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt", timezone="Asia/Jakarta", tokens=["tok"])
    add_recipient("sao", timezone="America/Sao_Paulo", country="BR", tokens=["tok"])
    schedule_campaign(SCHEDULED)
    materialize(sessions, SAO_PAULO_FIRST)
    in_flight = claim(sessions, JAKARTA_FIRST)  # Jakarta's rows: São Paulo's are not due yet
    assert len(in_flight) == 2

    set_state(sessions, CampaignState.CANCELLED, JAKARTA_FIRST + timedelta(hours=1))

    states = {r.id: (r.state, r.skip_reason) for r in deliveries(sessions)}
    assert {states[i] for i in in_flight} == {(DeliveryState.SENDING, None)}
    assert {v for i, v in states.items() if i not in in_flight} == {(DeliveryState.SKIPPED, SkipReason.CANCELLED)}
    with sessions() as s:
        assert queries.get_campaign(s, CAMPAIGN_ID).state == CampaignState.CANCELLED
    assert claim(sessions, SAO_PAULO_FIRST + timedelta(days=1)) == []
    assert materialize(sessions, datetime(2024, 10, 21, 13, 0, tzinfo=UTC)) == 0


@pytest.mark.parametrize(("path", "refused"), [
    ([], CampaignState.SCHEDULED),  # resume what is not paused
    ([CampaignState.PAUSED], CampaignState.PAUSED),
    ([CampaignState.CANCELLED], CampaignState.SCHEDULED),
    ([CampaignState.CANCELLED], CampaignState.PAUSED),
    ([CampaignState.CANCELLED], CampaignState.CANCELLED),
    ([CampaignState.PAUSED, CampaignState.CANCELLED], CampaignState.SCHEDULED),
])
def test_invalid_state_changes_are_refused(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        path: list[CampaignState], refused: CampaignState) -> None:
    add_recipient("jkt")
    schedule_campaign(SCHEDULED)
    for state in path:
        set_state(sessions, state, SCHEDULED)

    with pytest.raises(CampaignStateError, match=f"cannot make it {refused}"):
        set_state(sessions, refused, SCHEDULED)


def test_state_change_of_an_unknown_campaign_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(CampaignStateError, match="no campaign"):
        set_state(sessions, CampaignState.PAUSED, SCHEDULED)


def test_durable_ledger_work_waits_out_an_unreachable_ledger_but_never_a_bug() -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from notifier.ledger.db import durably

    waits: list[float] = []
    answers = [OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))] * 3

    def work() -> str:
        if answers:
            raise answers.pop()
        return "recorded"

    assert durably("recording 3 outcomes", work, sleep=waits.append) == "recorded"
    assert waits == [0.5, 1.0, 2.0]  # doubling, then done; nothing dropped

    def bug() -> None:
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: deliveries"))

    with pytest.raises(OperationalError):
        durably("reading", bug, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]  # a bug is raised at once, never waited on
