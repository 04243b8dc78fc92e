"""Deleting personal data after a campaign: nothing of the recipients' addresses, names or tokens is left in any
column of any table (nor in the outbox), counts and hashed suppressions stay, and a live campaign keeps its people."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.errors import CampaignStateError
from notifier.ledger import queries, suppressions
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignRow, DeliveryRow, Recipient
from notifier.purge import due as purge_due
from notifier.purge import purge
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, settle, shipped_catalogs_as

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)
AFTER_THE_END = datetime(2024, 11, 29, 12, 0, tzinfo=UTC)  # 28 Nov has passed in every zone
THE_END = datetime(2024, 11, 28, 3, 0, tzinfo=UTC)  # 28 Nov 00:00 in São Paulo, the last of the audience's zones
CAMPAIGN_ID = "tiktok-music-shutdown"
PERSONAL = ["ana.personal@example.com", "Ana Secretname", "ana-phone-token-123", "Bob Hiddenname",
            "bob.personal@example.com", "bob-tablet-token-456", "plan-gold-secret"]

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(outbox_dir=tmp_path / "outbox", secret_key="a-test-secret-of-enough-length-0123")


@pytest.fixture
def audience(add_recipient: AddRecipient) -> None:
    add_recipient("ana", email="ana.personal@example.com", name="Ana Secretname", tokens=["ana-phone-token-123"],
                  attributes={"plan": "plan-gold-secret"})
    add_recipient("bob", timezone="America/Sao_Paulo", country="BR", email="bob.personal@example.com",
                  name="Bob Hiddenname", tokens=["bob-tablet-token-456"])


def every_value(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    """(table, column, value as text) of every non-null cell of every table of the ledger."""
    found = []
    with sessions() as s:
        bind = s.get_bind()
        for table in inspect(bind).get_table_names():
            columns = [c["name"] for c in inspect(bind).get_columns(table)]
            for row in s.execute(text(f'SELECT * FROM "{table}"')):
                found += [(table, col, str(v)) for col, v in zip(columns, row, strict=True) if v is not None]
    return found


def run_to_the_end(sessions: sessionmaker[Session], settings: Settings) -> None:
    settle(build_dispatcher(settings, sessions, simulated_clock=True), sessions, SCHEDULED, AFTER_THE_END,
           every=timedelta(hours=1))


@pytest.mark.usefixtures("audience")
def test_purge_leaves_no_address_name_or_token_in_any_column_and_removes_the_outbox(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, settings: Settings) -> None:
    schedule_campaign(SCHEDULED)
    run_to_the_end(sessions, settings)
    with transaction(sessions) as s:  # a bounce came back meanwhile: its hash must survive the purge
        suppressions.suppress(s, [("email", "bob.personal@example.com")], scope="all", reason="bounced",
                              source="sendgrid", now=AFTER_THE_END)
    before = every_value(sessions)
    assert {v for _, _, v in before if any(p in v for p in PERSONAL)}  # the scan can see them
    with sessions() as s:
        counts = dict(s.execute(select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)).all())
    assert any((settings.outbox_dir / "email" / CAMPAIGN_ID).iterdir())

    report = purge(sessions, CAMPAIGN_ID, AFTER_THE_END, settings.outbox_dir)

    assert (report.recipients, report.emails, report.names, report.tokens, report.kept) == (2, 2, 2, 2, 0)
    assert report.outbox_files > 0 and not (settings.outbox_dir / "email" / CAMPAIGN_ID).exists()
    left = [(t, c, v) for t, c, v in every_value(sessions) if any(p.lower() in v.lower() for p in PERSONAL)]
    assert left == []
    with sessions() as s:  # aggregate counts and the hashed suppression stay
        assert dict(s.execute(select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)).all()) == counts
        assert suppressions.find(s, "email", "bob.personal@example.com")[0].reason == "bounced"
        assert s.get(CampaignRow, CAMPAIGN_ID).purged_at == AFTER_THE_END
        assert s.scalar(select(func.count()).select_from(Recipient).where(Recipient.purged_at.is_(None))) == 0
    with pytest.raises(CampaignStateError, match="already purged"):
        purge(sessions, CAMPAIGN_ID, AFTER_THE_END)


@pytest.mark.usefixtures("audience")
def test_purge_refuses_before_the_end_and_while_sends_are_pending(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, settings: Settings) -> None:
    schedule_campaign(SCHEDULED)
    build_dispatcher(settings, sessions, simulated_clock=True).tick(JAKARTA_FIRST)
    with pytest.raises(CampaignStateError, match="has not ended: its last deadline passes at 2024-11-28"):
        purge(sessions, CAMPAIGN_ID, JAKARTA_FIRST)
    with transaction(sessions) as s:  # cancelled, with a row still pending: a tick has to settle it first
        queries.set_state(s, CAMPAIGN_ID, queries.CampaignState.CANCELLED, JAKARTA_FIRST)
        s.execute(DeliveryRow.__table__.update().where(DeliveryRow.id == 1).values(state="pending"))
    with pytest.raises(CampaignStateError, match="still has 1 sends pending"):
        purge(sessions, CAMPAIGN_ID, JAKARTA_FIRST)
    with sessions() as s:
        assert s.scalar(select(Recipient.email).where(Recipient.id == "ana")) == "ana.personal@example.com"


@pytest.mark.usefixtures("audience")
def test_a_recipient_another_live_campaign_still_needs_is_kept(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, settings: Settings, tmp_path: Path) -> None:
    schedule_campaign(SCHEDULED)
    run_to_the_end(sessions, settings)
    later = (CAMPAIGN_FILE.read_text(encoding="utf-8").replace(f"id: {CAMPAIGN_ID}", "id: next-year", 1)
             .replace("countries: [ID, BR, AU, SG, MX]", "countries: [BR]")
             .replace("2024-10-28T00:00", "2025-10-28T00:00").replace("2024-11-28T00:00", "2025-11-28T00:00"))
    schedule_campaign(AFTER_THE_END, text=later, locales_dir=shipped_catalogs_as(tmp_path / "loc", "next-year"))

    report = purge(sessions, CAMPAIGN_ID, AFTER_THE_END)

    assert (report.recipients, report.kept) == (1, 1)  # Bob, in Brazil, is in next year's audience
    with sessions() as s:
        assert s.scalar(select(Recipient.email).where(Recipient.id == "bob")) == "bob.personal@example.com"
        assert s.scalar(select(Recipient.email).where(Recipient.id == "ana")) is None


@pytest.mark.usefixtures("audience")
def test_purge_after_in_the_campaign_file_makes_the_tick_purge_once_its_time_has_come(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, settings: Settings) -> None:
    spec = CAMPAIGN_FILE.read_text(encoding="utf-8").replace("deadlines:\n", "purge_after: P7D\ndeadlines:\n", 1)
    schedule_campaign(SCHEDULED, text=spec)
    run_to_the_end(sessions, settings)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    assert dispatcher.tick(THE_END + timedelta(days=7, minutes=-1)).purged == {}
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Recipient).where(Recipient.email.is_not(None))) == 2

    assert dispatcher.tick(THE_END + timedelta(days=7)).purged == {CAMPAIGN_ID: 2}
    assert dispatcher.tick(THE_END + timedelta(days=8)).purged == {}  # once
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Recipient).where(Recipient.email.is_not(None))) == 0


@pytest.mark.usefixtures("audience")
def test_a_campaign_whose_stored_file_no_longer_parses_does_not_keep_the_others_from_their_purge(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, settings: Settings,
        caplog: pytest.LogCaptureFixture) -> None:
    spec = CAMPAIGN_FILE.read_text(encoding="utf-8").replace("deadlines:\n", "purge_after: P7D\ndeadlines:\n", 1)
    schedule_campaign(SCHEDULED, text=spec)
    run_to_the_end(sessions, settings)
    with transaction(sessions) as s:  # say a newer notifier reads an old file more strictly
        s.add(CampaignRow(id="aaa-broken", name="broken", source="gone.yaml", spec="deadlines: [", state="scheduled",
                          scheduled_at=SCHEDULED, updated_at=SCHEDULED, planned_zones=[]))

    with sessions() as s:
        found = list(purge_due(s, THE_END + timedelta(days=7)))

    assert found == [CAMPAIGN_ID]
    assert "campaign aaa-broken: cannot tell whether its purge is due" in caplog.text


def test_purge_after_is_a_located_duration() -> None:
    from notifier.campaign import parse_campaign
    from notifier.errors import CampaignError

    spec = CAMPAIGN_FILE.read_text(encoding="utf-8").replace("deadlines:\n", "purge_after: P1M\ndeadlines:\n", 1)
    with pytest.raises(CampaignError, match=r"purge_after: .*months and years have no fixed length"):
        parse_campaign(spec, "c.yaml")
    ok = parse_campaign(spec.replace("P1M", "P7D"), "c.yaml")
    assert ok.purge_after == timedelta(days=7)
