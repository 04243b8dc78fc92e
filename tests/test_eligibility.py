"""Who is eligible for a campaign: the pure predicate and its SQL form agree, and every caller uses them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import Campaign, load_campaign, parse_campaign
from notifier.eligibility import Facts, deadlines_for, deadlines_sql, eligible, eligible_sql, held_out, held_out_sql
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


def campaign_of(countries: tuple[str, ...] = (), where: str | None = None, holdout: str | None = None,
                deadline_where: str | None = None) -> Campaign:
    """A small campaign with these audience rules (marketing when it holds people out)."""
    audience = "".join([f"  countries: [{', '.join(countries)}]\n" if countries else "",
                        f"  where: '{where}'\n" if where else "", f"  holdout: {holdout}\n" if holdout else ""])
    return parse_campaign(f"""
id: promo
name: Promo
category: {'marketing' if holdout else 'service'}
locales: [en]
default_locale: en
channels: [email, push]
{'audience:' + chr(10) + audience if audience else ''}
deadlines:
  - id: refund
    at: 2030-01-01T00:00
    waves: [P7D]
{f"    where: '{deadline_where}'" if deadline_where else ''}
  - id: transfer
    at: 2030-01-02T00:00
    waves: [P7D]
""")


@pytest.mark.parametrize(("countries", "channel", "person"), CASES)
def test_the_predicate_and_its_sql_agree(
        countries: tuple[str, ...], channel: str, person: Person,
        add_recipient: Callable[..., int], sessions: sessionmaker[Session]) -> None:
    rid, country, has_email, tokens, dead = person
    add_recipient(rid, country=country, email="{id}@example.com" if has_email else None, tokens=tokens,
                  inactive_tokens=dead)
    campaign = campaign_of(countries)
    with transaction(sessions) as s:
        in_sql = s.scalar(select(Recipient.id).where(eligible_sql(campaign, [channel]))) == rid
    assert eligible(campaign, channel, Facts(country), rid, f"{rid}@example.com" if has_email else None,
                    tokens) == in_sql


@pytest.mark.parametrize(("countries", "channel", "rid", "expected"), [
    (BR_ID, "email", "none-mail", False),  # no country: out of a campaign with audience.countries
    ((), "email", "none-mail", True),
    (BR_ID, "push", "id-dead", False),  # only inactive tokens: push is not present
    (BR_ID, "email", "au-mail", False),
    (BR_ID, "push", "br-both", True),
])
def test_the_rule_itself(countries: tuple[str, ...], channel: str, rid: str, expected: bool) -> None:
    _, country, has_email, tokens, _ = next(p for p in PEOPLE if p[0] == rid)
    assert eligible(campaign_of(countries), channel, Facts(country), rid, "x@example.com" if has_email else None,
                    tokens) is expected


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


WHO = [("premium-id", "ID", {"plan": "premium", "months": "14"}), ("free-id", "ID", {"plan": "free"}),
       ("family-sg", "SG", {"plan": "family", "months": 3}), ("bare-br", "BR", {}),
       ("refunded", "ID", {"plan": "premium", "refunded": True})]


@pytest.mark.parametrize(("where", "deadline_where"), [
    ('plan in ["premium", "family"] and country != "SG"', None),
    ("months >= 3", 'not exists(refunded)'),
    ('not plan == "free"', 'plan == "premium" or country == "BR"'),
    (None, 'refunded == true'),
])
def test_conditions_agree_in_python_and_sql_for_the_audience_and_each_deadline(
        where: str | None, deadline_where: str | None, add_recipient: Callable[..., int],
        sessions: sessionmaker[Session]) -> None:
    for rid, country, attributes in WHO:
        add_recipient(rid, country=country, attributes=attributes)
    campaign = campaign_of(where=where, deadline_where=deadline_where)
    with transaction(sessions) as s:
        for deadlines in (["refund"], ["transfer"], ["refund", "transfer"]):
            in_sql = set(s.scalars(select(Recipient.id).where(eligible_sql(campaign, ["email"]),
                                                               deadlines_sql(campaign, deadlines))))
            in_python = {rid for rid, country, attributes in WHO
                         if eligible(campaign, "email", Facts(country, attributes=attributes), rid, "@", ())
                         and deadlines_for(campaign, deadlines, Facts(country, attributes=attributes))}
            assert in_sql == in_python, deadlines
    assert in_python, "the cases select somebody"


def test_the_holdout_is_the_same_share_in_python_and_sql_and_differs_between_campaigns(
        add_recipient: Callable[..., int], sessions: sessionmaker[Session]) -> None:
    ids = [f"r{i:04d}" for i in range(400)]
    with transaction(sessions) as s:
        s.add_all([Recipient(id=rid, email=None, timezone="UTC", country="ID", attributes={},
                             joined_at=datetime(2024, 1, 1, tzinfo=UTC), updated_at=datetime(2024, 1, 1, tzinfo=UTC))
                   for rid in ids])
    first = campaign_of(holdout="20%")
    other = parse_campaign(_renamed(first))
    with transaction(sessions) as s:
        held_sql = set(s.scalars(select(Recipient.id).where(held_out_sql(first))))
        other_sql = set(s.scalars(select(Recipient.id).where(held_out_sql(other))))
    assert held_sql == {rid for rid in ids if held_out(first, rid)}
    assert other_sql == {rid for rid in ids if held_out(other, rid)}
    assert 40 <= len(held_sql) <= 120, "about a fifth of 400"
    assert held_sql != other_sql, "each campaign holds out its own share"


def _renamed(campaign: Campaign) -> str:
    return f"""
id: other
name: Other
category: marketing
locales: [en]
default_locale: en
channels: [email]
audience:
  holdout: {campaign.holdout / 100:g}%
deadlines:
  - id: d
    at: 2030-01-01T00:00
    waves: [P7D]
"""


def test_a_service_campaign_cannot_hold_anyone_out() -> None:
    from notifier.errors import CampaignError

    with pytest.raises(CampaignError, match=r"audience.holdout: only a marketing campaign"):
        parse_campaign(_renamed(campaign_of(holdout="10%")).replace("category: marketing", "category: service"))
