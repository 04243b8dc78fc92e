"""Who is eligible for a campaign: the pure predicate and its SQL form agree, and every caller uses them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import load_campaign
from notifier.eligibility import eligible, eligible_sql
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import DeliveryRow, PushToken, Recipient
from notifier.planner import send_channels
from notifier.reports import ledger_members
from notifier.timeline import PlanView
from tests.conftest import CAMPAIGN_FILE

BR_ID = ("BR", "ID")
Person = tuple[str, str | None, bool, tuple[str, ...], tuple[str, ...]]
# (recipient id, country, email?, active tokens, inactive tokens)
PEOPLE: list[Person] = [
    ("br-both", "BR", True, ("t1",), ()),
    ("br-mail", "BR", True, (), ()),
    ("id-push", "ID", False, ("t2",), ()),
    ("id-dead", "ID", False, (), ("t3",)),
    ("au-mail", "AU", True, (), ()),
    ("none-mail", None, True, ("t4",), ()),
]
CASES = [(countries, channel, person) for countries in ((), BR_ID) for channel in ("email", "push")
         for person in PEOPLE]


@pytest.mark.parametrize(("countries", "channel", "person"), CASES)
def test_the_predicate_and_its_sql_agree(
        countries: tuple[str, ...], channel: str, person: Person,
        add_recipient: Callable[..., int], sessions: sessionmaker[Session]) -> None:
    rid, country, has_email, tokens, dead = person
    add_recipient(rid, country=country, email="{id}@example.com" if has_email else None, tokens=tokens,
                  inactive_tokens=dead)
    with transaction(sessions) as s:
        in_sql = s.scalar(select(Recipient.id).where(eligible_sql(countries, [channel]))) == rid
    assert eligible(countries, channel, country, f"{rid}@example.com" if has_email else None, tokens) == in_sql


@pytest.mark.parametrize(("countries", "channel", "rid", "expected"), [
    (BR_ID, "email", "none-mail", False),  # no country: out of a campaign with audience.countries
    ((), "email", "none-mail", True),
    (BR_ID, "push", "id-dead", False),  # only inactive tokens: push is not present
    (BR_ID, "email", "au-mail", False),
    (BR_ID, "push", "br-both", True),
])
def test_the_rule_itself(countries: tuple[str, ...], channel: str, rid: str, expected: bool) -> None:
    _, country, has_email, tokens, _ = next(p for p in PEOPLE if p[0] == rid)
    assert eligible(countries, channel, country, "x@example.com" if has_email else None, tokens) is expected


def test_plan_view_and_materialization_agree_on_a_recipient_without_a_country(
        add_recipient: Callable[..., int], sessions: sessionmaker[Session],
        schedule_campaign: Callable[..., queries.ScheduleResult]) -> None:
    text = CAMPAIGN_FILE.read_text(encoding="utf-8")
    assert "countries" in text, "the shipped campaign limits its audience to countries"
    add_recipient("with-country", country="ID", tokens=("tok-a",))
    add_recipient("no-country", country=None, tokens=("tok-b",))
    schedule_campaign(datetime(2024, 9, 1, tzinfo=UTC))
    with transaction(sessions) as s:
        queries.materialize_due(s, datetime(2024, 9, 28, 4, 0, tzinfo=UTC), send_channels)
        materialized = {r for r, in s.execute(select(Recipient.id).join(
            DeliveryRow, DeliveryRow.recipient_seq == Recipient.seq).distinct())}
        view = PlanView(load_campaign(CAMPAIGN_FILE))
        planned = {e.recipient for e in view.entries(ledger_members(s))}
    assert materialized == planned == {"with-country"}


def test_ledger_members_carry_only_active_tokens(add_recipient: Callable[..., int],
                                                 sessions: sessionmaker[Session]) -> None:
    add_recipient("ana", tokens=("live",), inactive_tokens=("dead",))
    with transaction(sessions) as s:
        [ana] = list(ledger_members(s))
        assert s.scalar(select(PushToken.token).where(PushToken.active.is_(False))) == "dead"
    assert ana.push_tokens == ("live",)
