"""A campaign's delivery rows and events in tables of their own on PostgreSQL (migration 0014), and removed at once
(``purge --rows``) with its counts kept, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from notifier.cli import cli
from notifier.dispatch import Dispatcher
from notifier.errors import CampaignStateError
from notifier.ledger import partitions, queries, tallies
from notifier.ledger.db import downgrade, session_factory, transaction, upgrade
from notifier.ledger.models import CampaignState, DeliveryEvent, DeliveryRow
from notifier.purge import purge, purge_rows
from tests.conftest import shipped_catalogs_as, wave_spec
from tests.test_ledger import _old_ledger
from tests.waves import AddRecipient, Schedule

CAMPAIGNS = ("part-a", "part-b")


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    return shipped_catalogs_as(tmp_path / "locales", *CAMPAIGNS)


@pytest.fixture
def sent(add_recipient: AddRecipient, schedule_campaign: Schedule, now: datetime, locales: Path,
         dispatcher: Dispatcher) -> None:
    """Two campaigns' waves, each to the same three recipients by email and push, sent by one tick."""
    for who in ("ana", "ben", "cid"):
        add_recipient(who, tokens=[f"{who}-phone"])
    for campaign_id in CAMPAIGNS:
        schedule_campaign(now, wave_spec(now, campaign_id), locales_dir=locales)
    assert dispatcher.tick(now).outcomes["sent"] == 12


def _partition_of(sessions: sessionmaker[Session], table: str) -> dict[str, str]:
    """Each campaign's rows of ``table`` → the table that holds them."""
    with sessions() as s:
        return dict(s.execute(text(f"SELECT DISTINCT campaign_id, tableoid::regclass::text FROM {table}")).all())


@pytest.mark.usefixtures("sent")
def test_each_campaigns_rows_and_events_live_in_a_partition_of_their_own_on_postgresql(
        sessions: sessionmaker[Session], engine: Engine) -> None:
    with transaction(sessions) as s:  # an attempt event for each campaign
        for campaign_id in CAMPAIGNS:
            row = s.scalars(select(DeliveryRow).where(DeliveryRow.campaign_id == campaign_id).limit(1)).one()
            s.add(DeliveryEvent(delivery_id=row.id, campaign_id=campaign_id, type="retry", at=row.updated_at))
    with sessions() as s:  # every event names its campaign (on SQLite, one table holds them all)
        assert set(s.scalars(select(DeliveryEvent.campaign_id))) == set(CAMPAIGNS)
    if engine.dialect.name != "postgresql":
        return
    for table in ("deliveries", "delivery_events"):
        assert _partition_of(sessions, table) == {c: partitions.name(table, c) for c in CAMPAIGNS}
    with sessions() as s:  # a campaign's counts read its partition alone
        plan = "\n".join(s.execute(text("EXPLAIN SELECT count(*) FROM deliveries WHERE campaign_id = 'part-a'"))
                         .scalars())
    assert partitions.name("deliveries", "part-a") in plan
    assert partitions.name("deliveries", "part-b") not in plan


@pytest.mark.usefixtures("sent")
def test_purge_rows_removes_a_campaigns_rows_and_events_and_keeps_its_counts(
        sessions: sessionmaker[Session], now: datetime, outbox: Path, ledger_url: str) -> None:
    with transaction(sessions) as s:
        counts = {c: sorted(tallies.of_campaign(s, c), key=repr) for c in CAMPAIGNS}
        with pytest.raises(CampaignStateError, match="has not ended"):
            purge_rows(s, "part-a", now)
        queries.set_state(s, "part-a", CampaignState.CANCELLED, now)

    report = purge(sessions, "part-a", now + timedelta(minutes=1), outbox, rows=True)

    assert report.rows == 6 and report.recipients == 0  # the other campaign still needs its recipients
    with sessions() as s:
        left = dict(s.execute(select(DeliveryRow.campaign_id, func.count()).group_by(DeliveryRow.campaign_id)).all())
        assert left == {"part-b": 6}
        assert {c: sorted(tallies.of_campaign(s, c), key=repr) for c in CAMPAIGNS} == counts
        assert tallies.recount(s, "part-b") and sorted(tallies.recount(s, "part-b"), key=repr) == counts["part-b"]
    # Again, by the command, now that its personal data is gone too: nothing left to remove, no error, and no word of
    # a purge of personal data that did not happen now.
    env = {"NOTIFIER_DATABASE_URL": ledger_url, "NOTIFIER_OUTBOX_DIR": str(outbox)}
    again = CliRunner().invoke(cli, ["purge", "part-a", "--rows", "--now", (now + timedelta(minutes=2)).isoformat()],
                               env=env)
    assert again.exit_code == 0, again.output
    assert again.output == "removed 0 delivery rows of part-a and their events; its counts are kept\n"
    assert purge(sessions, "part-a", now + timedelta(minutes=3), outbox, rows=True).earlier


def test_0014_partitions_the_rows_and_events_by_campaign_and_going_back_restores_one_table(
        new_ledger: Engine) -> None:
    _old_ledger(new_ledger, "0013")
    with new_ledger.begin() as conn:  # an event that names no delivery of ours
        conn.execute(text("INSERT INTO delivery_events (delivery_id, type, at, provider, provider_event_id) "
                          "VALUES (NULL, 'bounce', '2024-10-01', 'sendgrid', 'e1')"))
    upgrade(new_ledger)
    sessions = session_factory(new_ledger)
    postgres = new_ledger.dialect.name == "postgresql"
    with sessions() as s:
        assert s.execute(select(DeliveryEvent.delivery_id, DeliveryEvent.campaign_id).order_by(DeliveryEvent.id)
                         ).all() == [(1, "c"), (None, "")]
        assert tallies.of_campaign(s, "c") == tallies.recount(s, "c")  # the copy counted nothing twice
    if postgres:
        assert _partition_of(sessions, "deliveries") == {"c": partitions.name("deliveries", "c")}
        assert _partition_of(sessions, "delivery_events") == {"c": partitions.name("delivery_events", "c"),
                                                              "": partitions.UNMATCHED}
    insert = ("INSERT INTO deliveries (campaign_id, group_id, recipient_seq, channel, state, attempts, "
              "next_attempt_at, uncertain, created_at, updated_at) "
              "VALUES ('c', 1, 1, :channel, 'pending', 0, :t, false, :t, :t)")
    with pytest.raises(IntegrityError), new_ledger.begin() as conn:  # still once per group, recipient, channel
        conn.execute(text(insert), {"channel": "email", "t": "2024-10-02"})
    with new_ledger.begin() as conn:  # the ids go on from the same sequence, and the tallies count it
        conn.execute(text(insert), {"channel": "push", "t": "2024-10-02"})
    with pytest.raises(IntegrityError), new_ledger.begin() as conn:  # a replayed provider event
        conn.execute(text("INSERT INTO delivery_events (delivery_id, campaign_id, type, at, provider, "
                          "provider_event_id) VALUES (NULL, '', 'bounce', '2024-10-01', 'sendgrid', 'e1')"))
    with sessions() as s:
        first, second = s.scalars(select(DeliveryRow.id).order_by(DeliveryRow.id)).all()
        assert first == 1 and second > 1  # (the refused insert above took a number on PostgreSQL)
        assert sorted(tallies.of_campaign(s, "c"), key=repr) == sorted(tallies.recount(s, "c"), key=repr)

    downgrade(new_ledger, "0013")
    assert "campaign_id" not in {c["name"] for c in inspect(new_ledger).get_columns("delivery_events")}
    with new_ledger.connect() as conn:
        assert conn.execute(text("SELECT id FROM deliveries ORDER BY id")).scalars().all() == [first, second]
        assert conn.execute(text("SELECT count(*) FROM delivery_events")).scalar() == 2
        if postgres:
            kinds = conn.execute(text("SELECT relname, relkind FROM pg_class WHERE relname IN "
                                      "('deliveries', 'delivery_events') AND relnamespace = "
                                      "current_schema()::regnamespace")).all()
            assert sorted(kinds) == [("deliveries", "r"), ("delivery_events", "r")]
    with pytest.raises(IntegrityError), new_ledger.begin() as conn:  # the foreign key is back
        conn.execute(text("INSERT INTO delivery_events (delivery_id, type, at) VALUES (99, 'sent', '2024-10-01')"))
