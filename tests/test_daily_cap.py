"""The daily cap across campaigns (NOTIFIER_DAILY_CAP): two overlapping campaigns played to their end on a simulated
clock, recipients in zones whose clocks change during them; no local day ever gets more than the cap, the service
announcement always goes first, and what the marketing campaign loses is said."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import parse_campaign
from notifier.config import parse_daily_cap
from notifier.daily_cap import Priority, forget_old_days, local_day
from notifier.demo import Simulation
from notifier.dispatch import Dispatcher
from notifier.errors import ConfigError
from notifier.events import SendResult
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import CapSlot, DeliveryRow, DeliveryState, Recipient
from notifier.planner import plan_zone
from notifier.render import Content, Renderer
from notifier.reports import cap_notes, get_member
from notifier.testing import ScriptedChannel
from notifier.wiring import build_dispatcher
from tests.conftest import DEFAULTS, shipped_catalogs_as

START = datetime(2024, 10, 20, tzinfo=UTC)
# Europe/London and Europe/Dublin fall back on 27 October 2024, America/New_York and America/St_Johns on 3 November;
# Pacific/Chatham and Australia/Sydney are in summer time; the rest keep one offset (Kiritimati: UTC+14).
ZONES = ("Europe/London", "Europe/Dublin", "America/New_York", "America/St_Johns", "Pacific/Chatham",
         "Australia/Sydney", "Asia/Jakarta", "Asia/Kathmandu", "Pacific/Kiritimati", "America/Sao_Paulo")
LINKS = """links:
  transfer: https://music.tiktok.com/transfer
  refund: https://music.tiktok.com/refund
  help: https://support.tiktok.com/music-closing
"""

# The service notice goes out at 23:30, the marketing promotion at 00:30: the same local day, the promotion first
# in time, the notice first in priority. Notice: 26 Oct, 29 Oct, 5 Nov. Promotion: 26, 27, 29 Oct, 5 Nov.
NOTICE = f"""\
id: notice
name: A service notice
category: service
templates: tiktok-music-shutdown
locales: [en]
default_locale: en
channels: [email, push]
{LINKS}delivery: {{local_time: "23:30", window: ["00:00", "23:59"]}}
deadlines:
  - id: refund
    label: Refund requests and service closure
    at: "2024-11-07T00:00"
    waves: [P12D, P9D, P2D]
"""
PROMO = f"""\
id: promo
name: A promotion
category: marketing
templates: tiktok-music-shutdown
locales: [en]
default_locale: en
channels: [email]
{LINKS}delivery: {{local_time: "00:30", window: ["00:00", "23:59"]}}
deadlines:
  - id: refund
    label: Refund requests and service closure
    at: "2024-11-06T00:00"
    waves: [P11D, P10D, P8D, P1D]
"""


def _play(sessions: sessionmaker[Session], tmp_path: Path, cap: str) -> None:
    locales = shipped_catalogs_as(tmp_path / "locales", "notice", "promo")
    settings = DEFAULTS.with_(transport="outbox", outbox_dir=tmp_path / "outbox", studio_dir=tmp_path / "studio",
                              locales_dir=locales, daily_cap=parse_daily_cap(cap))
    for spec in (NOTICE, PROMO):
        campaign = parse_campaign(spec)
        with transaction(sessions) as s:
            queries.schedule(s, campaign, spec, START, Content.of(campaign, settings.templates_dir, locales),
                             plan_zone)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    sim = Simulation(sessions, dispatcher, [], follow_actions=False)
    now: datetime | None = START
    try:
        while now is not None:
            now = sim.step(now)
    finally:
        dispatcher.close()


def _rows(sessions: sessionmaker[Session]) -> list[tuple[str, str, str, str, str | None, datetime | None, str]]:
    with sessions() as s:
        return [tuple(r) for r in s.execute(  # type: ignore[misc]
            select(Recipient.id, DeliveryRow.campaign_id, DeliveryRow.channel, DeliveryRow.state,
                   DeliveryRow.skip_reason, DeliveryRow.sent_at, Recipient.timezone)
            .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq))]


def test_two_overlapping_campaigns_never_exceed_the_cap_in_any_zone_across_dst_changes(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], tmp_path: Path) -> None:
    for tz in ZONES:
        add_recipient(tz, timezone=tz, country="ID", tokens=[f"tok-{tz}"], joined_at=START - timedelta(days=30))
    _play(sessions, tmp_path, "email=1,push=1")
    rows = _rows(sessions)

    per_day = Counter((rid, ch, sent.astimezone(ZoneInfo(tz)).date())
                      for rid, _, ch, state, _, sent, tz in rows if state == DeliveryState.SENT)
    assert per_day and max(per_day.values()) == 1, [k for k, n in per_day.items() if n > 1]

    # The service notice is never the one that waits: every one of its messages went, three a channel a person.
    notice = Counter((state, ch) for rid, c, ch, state, *_ in rows if c == "notice")
    assert notice == {("sent", "email"): 3 * len(ZONES), ("sent", "push"): 3 * len(ZONES)}
    # The promotion: 26 Oct waits for the 27th (where its own newer reminder supersedes it), 29 Oct waits for the
    # 30th, 5 Nov would wait until after its deadline: capped. In every zone, whatever its clock did.
    for tz in ZONES:
        promo = Counter(f"{state}:{reason}" if reason else state for rid, c, _, state, reason, *_ in rows
                        if c == "promo" and rid == tz)
        assert promo == {"sent": 2, "skipped:superseded": 1, "skipped:capped": 1}, tz
        sent_days = sorted(sent.astimezone(ZoneInfo(tz)).date() for rid, c, _, state, _, sent, _ in rows
                           if c == "promo" and rid == tz and state == "sent")
        assert sent_days == [date(2024, 10, 27), date(2024, 10, 30)], tz
    with sessions() as s:
        capped = s.scalars(select(DeliveryRow.last_error).where(DeliveryRow.skip_reason == "capped")).all()
        assert capped and all("taken by notice" in e and "every day left" in e for e in capped)
        # the places left (maintenance drops those of days long over) are all messages that went
        kept = s.scalars(select(DeliveryRow.state).join(CapSlot, CapSlot.delivery_id == DeliveryRow.id)).all()
        assert kept and set(kept) == {"sent"}


def test_without_a_cap_both_campaigns_send_everything(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], tmp_path: Path) -> None:
    add_recipient("london", timezone="Europe/London", country="ID", joined_at=START - timedelta(days=30))
    _play(sessions, tmp_path, "")
    states = Counter((c, state) for _, c, ch, state, *_ in _rows(sessions) if ch == "email")
    assert states == {("notice", "sent"): 3, ("promo", "sent"): 4}


def test_a_cap_of_two_lets_both_go_on_the_shared_days(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], tmp_path: Path) -> None:
    add_recipient("new-york", timezone="America/New_York", country="ID", joined_at=START - timedelta(days=30))
    _play(sessions, tmp_path, "2")
    states = Counter((c, state) for _, c, ch, state, *_ in _rows(sessions) if ch == "email")
    assert states == {("notice", "sent"): 3, ("promo", "sent"): 4}


@pytest.mark.parametrize(("zone", "day", "hours"), [
    ("Europe/London", date(2024, 10, 27), 25),  # clocks go back: a 25-hour day
    ("Europe/London", date(2024, 3, 31), 23),  # clocks go forward: 23 hours
    ("Pacific/Chatham", date(2024, 9, 29), 23),
    ("Asia/Jakarta", date(2024, 10, 27), 24),
])
def test_a_local_day_has_the_hours_its_clock_gives_it(zone: str, day: date, hours: int) -> None:
    tz = ZoneInfo(zone)
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
    got, end = local_day(noon.astimezone(UTC), zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    assert got == day
    assert (end - start.astimezone(UTC)) == timedelta(hours=hours)


def test_service_goes_before_marketing_then_the_nearer_deadline() -> None:
    soon, later = datetime(2024, 11, 1, tzinfo=UTC), datetime(2024, 11, 9, tzinfo=UTC)
    order = sorted([Priority(1, soon, "a", 1), Priority(0, later, "z", 9), Priority(0, soon, "m", 5),
                    Priority(1, soon, "a", 0)])
    assert order == [Priority(0, soon, "m", 5), Priority(0, later, "z", 9), Priority(1, soon, "a", 0),
                     Priority(1, soon, "a", 1)]


@pytest.mark.parametrize(("raw", "expected"), [
    ("", ()), ("1", (("email", 1), ("push", 1))), ("email=1", (("email", 1),)),
    (" push=3 , email=2 ", (("push", 3), ("email", 2))),
])
def test_the_setting_reads_one_number_or_one_per_channel(raw: str, expected: tuple[tuple[str, int], ...]) -> None:
    assert parse_daily_cap(raw) == expected


@pytest.mark.parametrize(("raw", "message"), [
    ("0", "from 1 to 100"), ("sms=1", "channel=number"), ("email=1,email=2", "given twice"),
    ("email=many", "from 1 to 100"), ("99999999999999999999", "from 1 to 100"),
])
def test_a_wrong_setting_is_one_line_naming_it(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_daily_cap(raw)
    assert str(caught.value).startswith("NOTIFIER_DAILY_CAP")


@pytest.mark.parametrize(("answer", "kept", "state"), [
    (lambda i: SendResult.retry(i, "busy", 60.0), 0, "pending"),  # tried again later: it takes a place again then
    (lambda i: SendResult.failed(i, "no such mailbox"), 0, "failed"),
    (RuntimeError("the connection dropped mid-request"), 1, "pending"),  # the provider may have it: uncertain, kept
    (lambda i: SendResult.sent(i, f"fake-{i}"), 1, "sent"),
])
def test_a_message_that_did_not_go_gives_its_place_back(
        answer: Any, kept: int, state: str, sessions: sessionmaker[Session], add_recipient: Callable[..., int],
        tmp_path: Path) -> None:
    add_recipient("london", timezone="Europe/London", country="ID", joined_at=START - timedelta(days=30))
    spec = NOTICE.replace("channels: [email, push]", "channels: [email]")
    campaign = parse_campaign(spec)
    locales = shipped_catalogs_as(tmp_path / "locales", "notice")
    settings = DEFAULTS.with_(locales_dir=locales, daily_cap=parse_daily_cap("1"))
    with transaction(sessions) as s:
        queries.schedule(s, campaign, spec, START, Content.of(campaign, settings.templates_dir, locales), plan_zone)
    channel = ScriptedChannel("email", answer)
    dispatcher = Dispatcher(sessions, {"email": channel}, Renderer(settings.templates_dir, locales), settings,
                            simulated_clock=True)
    first = datetime(2024, 10, 26, 22, 31, tzinfo=UTC)  # 23:31 in London, the notice's first wave
    dispatcher.tick(first)
    assert channel.batches, "the message was tried"
    with sessions() as s:
        assert s.scalar(select(DeliveryRow.state)) == state
        assert s.scalar(select(func.count()).select_from(CapSlot)) == kept


def test_places_of_days_long_over_are_dropped(sessions: sessionmaker[Session]) -> None:
    now = datetime(2024, 11, 10, 12, tzinfo=UTC)
    with transaction(sessions) as s:
        s.add_all([CapSlot(delivery_id=i, day=date(2024, 11, d), recipient_seq=1, channel="email", campaign_id="c",
                           taken_at=now) for i, d in enumerate((6, 7, 8, 9, 10, 11))])
    with transaction(sessions) as s:
        assert forget_old_days(s, now) == 2  # 6 and 7 November: Kiritimati's day is already the 11th, Niue's the 10th
    with sessions() as s:
        assert sorted(s.scalars(select(CapSlot.day))) == [date(2024, 11, d) for d in (8, 9, 10, 11)]


def test_the_recipient_page_says_which_days_the_cap_holds_back_and_who_goes_first(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], tmp_path: Path) -> None:
    add_recipient("london", timezone="Europe/London", country="ID", joined_at=START - timedelta(days=30))
    locales = shipped_catalogs_as(tmp_path / "locales", "notice", "promo")
    for spec in (NOTICE, PROMO):
        campaign = parse_campaign(spec)
        with transaction(sessions) as s:
            queries.schedule(s, campaign, spec, START, Content.of(campaign, DEFAULTS.templates_dir, locales),
                             plan_zone)
    with sessions() as s:
        member = get_member(s, "london")
        notes = cap_notes(s, member, {"email": 1, "push": 1})
        assert cap_notes(s, member, {}) == []  # no cap, nothing to say
        assert cap_notes(s, member, {"email": 2}) == []  # two a day: both go
    assert [n.split(",")[0] for n in notes] == ["26 Oct 2024", "29 Oct 2024", "05 Nov 2024"]
    assert all("email: 2 messages for a daily cap of 1" in n and "notice (service) goes first" in n
               and "promo waits for the next day" in n for n in notes), notes
