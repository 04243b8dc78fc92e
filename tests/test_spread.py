"""``delivery.spread``: a send's messages go out over the minutes after its time instead of all at hh:00:00 (SendGrid
advises against sending on the hour), inside the window and before the deadline, each recipient at the same moment
however often its rows are made; on SQLite and PostgreSQL. And the outbox dates a simulated run's mail by its clock."""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifier import spread
from notifier.campaign import parse_campaign
from notifier.config import Settings
from notifier.errors import CampaignError
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignState, DeliveryRow, DeliveryState, Recipient, SendGroup
from notifier.planner import NoteKind, plan_zone, send_channels
from notifier.spread import spread_room
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, shipped_catalogs_as, wave_now

JAKARTA = ZoneInfo("Asia/Jakarta")  # UTC+7, no DST
SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
SEND_AT = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # the P30D wave: 28 Sep, 10:00 in Jakarta
DEADLINE = datetime(2024, 10, 27, 17, 0, tzinfo=UTC)  # 28 Oct 00:00 in Jakarta
TWENTY = timedelta(minutes=20)
CAMPAIGN_ID = "tiktok-music-shutdown"  # the shipped id, so the shipped catalogs are its own

Schedule = Callable[..., queries.ScheduleResult]


def spec(spread: str | None = "PT20M", *, at: str = "2024-10-28T00:00", waves: str = "P30D, P7D, P1D",
         local_time: str = "10:00", window: tuple[str, str] = ("08:00", "21:00"),
         channels: str = "email, push") -> str:
    """A one-deadline campaign written with the shipped templates; ``spread`` None leaves the key out."""
    extra = f", spread: {spread}" if spread is not None else ""
    return f"""\
id: {CAMPAIGN_ID}
name: TikTok Music is closing
category: service
templates: tiktok-music-shutdown
locales: [id, pt-BR, es-MX, en]
default_locale: en
channels: [{channels}]
links:
  transfer: https://music.tiktok.com/transfer
  refund: https://music.tiktok.com/refund
  help: https://support.tiktok.com/music-closing
delivery: {{local_time: "{local_time}", window: ["{window[0]}", "{window[1]}"], max_per_day: 1{extra}}}
deadlines:
  - id: refund
    label: Refund requests and service closure
    at: "{at}"
    waves: [{waves}]
"""


def add_recipients(sessions: sessionmaker[Session], n: int, *, first: int = 0, zone: str = "Asia/Jakarta",
                   joined: datetime = datetime(2024, 9, 1, tzinfo=UTC)) -> None:
    """``n`` recipients with an email address (no push token) in ``zone``, in one statement."""
    with transaction(sessions) as s:
        s.execute(insert(Recipient), [
            {"id": f"r{i:05d}", "email": f"r{i:05d}@example.com", "locale": "en", "timezone": zone, "country": "ID",
             "joined_at": joined, "updated_at": joined, "attributes": {}} for i in range(first, first + n)])


def due_times(sessions: sessionmaker[Session], channel: str | None = None) -> dict[int, datetime]:
    """Each recipient's due time (the rows of one channel, or of all when they agree)."""
    with sessions() as s:
        q = select(DeliveryRow.recipient_seq, DeliveryRow.next_attempt_at)
        if channel is not None:
            q = q.where(DeliveryRow.channel == channel)
        rows = s.execute(q).all()
    out: dict[int, datetime] = {}
    for seq, at in rows:
        assert out.setdefault(seq, at) == at, "a recipient's channels are due at different times"
    return out


def materialize(sessions: sessionmaker[Session], now: datetime) -> int:
    with transaction(sessions) as s:
        return queries.materialize_due(s, now, send_channels)


# --- the offset: pure arithmetic -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(seq=st.integers(1, 10**12), seconds=st.integers(0, 12 * 3600))
def test_an_offset_is_whole_seconds_inside_the_room_and_never_a_whole_minute(seq: int, seconds: int) -> None:
    room = timedelta(seconds=seconds)
    got = spread.offset(seq, room)
    if seconds == 0:
        assert got == timedelta(0)
    else:
        assert timedelta(seconds=1) <= got <= room
        assert got.total_seconds() % 60 != 0 and got.microseconds == 0
    assert spread.offset(seq, room) == got  # nothing but the seq and the room decides it


def test_a_thousand_consecutive_recipients_fill_every_minute_of_the_spread_evenly() -> None:
    minutes = Counter(int(spread.offset(seq, TWENTY).total_seconds()) // 60 for seq in range(1, 1001))
    assert sorted(minutes) == list(range(20))
    assert max(minutes.values()) <= 2 * 1000 / 20  # no minute takes twice its share
    assert len({spread.offset(seq, TWENTY) for seq in range(1, 1001)}) > 600  # seconds of their own, mostly


def test_the_room_is_the_spread_cut_short_by_the_window_end_and_a_second_before_the_earliest_deadline() -> None:
    delivery = parse_campaign(spec("PT20M")).delivery
    ten = datetime(2024, 9, 28, 10, 0, tzinfo=JAKARTA)
    assert spread_room(delivery, JAKARTA, ten, [DEADLINE]) == TWENTY
    late = datetime(2024, 9, 28, 20, 50, tzinfo=JAKARTA)
    assert spread_room(delivery, JAKARTA, late, [DEADLINE]) == timedelta(minutes=10)  # the window ends at 21:00
    near = [ten + timedelta(minutes=7), DEADLINE]
    assert spread_room(delivery, JAKARTA, ten, near) == timedelta(minutes=6, seconds=59)
    assert spread_room(delivery, JAKARTA, datetime(2024, 9, 28, 21, 0, tzinfo=JAKARTA), [DEADLINE]) == timedelta(0)
    assert spread_room(parse_campaign(spec(None)).delivery, JAKARTA, ten, [DEADLINE]) == timedelta(0)


# --- the campaign file -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("PT20M", TWENTY), ("PT1H30M", timedelta(minutes=90)), ("PT1H", timedelta(hours=1)), ("PT0M", timedelta(0))])
def test_spread_is_an_iso_duration_in_the_delivery_block(value: str, expected: timedelta) -> None:
    assert parse_campaign(spec(value)).delivery.spread == expected


def test_without_a_spread_key_every_message_goes_at_the_send_time() -> None:
    assert parse_campaign(spec(None)).delivery.spread == timedelta(0)


def test_the_shipped_campaign_spreads_its_sends_over_twenty_minutes() -> None:
    assert parse_campaign(CAMPAIGN_FILE.read_text(encoding="utf-8")).delivery.spread == TWENTY


@pytest.mark.parametrize(("value", "message"), [
    ("20M", "'20M' is not an ISO-8601 duration such as PT20M"),
    ("-PT20M", "'-PT20M': a spread is a duration after the send's time (such as PT20M), never negative"),
    ("P1M", "'P1M': months and years have no fixed length; write minutes instead (PT20M)"),
    ("PT13H", "'PT13H' is more than PT12H, the longest a spread may be"),
    # moved to the window's end minus PT90S, a send would start at 20:58:30 and its offsets land on whole minutes
    ("PT90S", "'PT90S': a spread is a whole number of minutes (PT20M), so that no message lands on a whole minute"),
    ("PT99999999999M", "'PT99999999999M' is more than PT12H, the longest a spread may be"),
    ("PT12H", "PT12H after local_time 10:00 runs past the window's end 21:00: shorten the spread or send earlier"),
])
def test_a_bad_spread_is_located_by_file_line_and_field(value: str, message: str) -> None:
    text = spec(value)
    with pytest.raises(CampaignError) as caught:
        parse_campaign(text, source="campaigns/x.yaml")
    [problem] = caught.value.problems
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "spread" in t)
    assert (problem.file, problem.line, problem.field, problem.message) == \
        ("campaigns/x.yaml", line, "delivery.spread", message)


def test_a_spread_that_ends_exactly_at_the_window_end_is_accepted() -> None:
    assert parse_campaign(spec("PT20M", local_time="20:40")).delivery.spread == TWENTY


# --- the planner: the spread fits in the window and before the deadline ------------------------------------------


def test_a_send_later_in_the_window_than_its_spread_allows_moves_earlier_with_a_note() -> None:
    plan = plan_zone(parse_campaign(spec(at="2024-10-28T22:00", waves="PT1H10M")), JAKARTA)  # due 20:50
    [send] = plan.sends
    assert send.send_at.isoformat() == "2024-10-28T20:40:00+07:00" and send.spread == TWENTY
    [note] = [n for n in plan.notes if n.kind == NoteKind.MOVED]
    assert note.message == ("refund PT1H10M: 2024-10-28 20:50 WIB leaves less than its spread (20 min) of the window "
                            "08:00–21:00; moved earlier to 2024-10-28 20:40 WIB")


def test_a_send_after_the_window_moves_to_the_window_end_minus_the_spread() -> None:
    plan = plan_zone(parse_campaign(spec(at="2024-10-29T00:00", waves="PT2H")), JAKARTA)  # due 22:00
    assert [s.send_at.isoformat() for s in plan.sends] == ["2024-10-28T20:40:00+07:00"]
    assert "is outside the window 08:00–21:00; moved earlier to 2024-10-28 20:40 WIB" in plan.notes[0].message


def test_without_a_spread_a_late_send_still_moves_to_the_window_end_itself() -> None:
    plan = plan_zone(parse_campaign(spec(None, at="2024-10-29T00:00", waves="PT2H")), JAKARTA)
    assert [(s.send_at.isoformat(), s.spread) for s in plan.sends] == [("2024-10-28T21:00:00+07:00", timedelta(0))]


def test_a_send_just_before_its_deadline_spreads_only_until_a_second_before_it() -> None:
    [send] = plan_zone(parse_campaign(spec(at="2024-10-28T10:05", waves="PT10M")), JAKARTA).sends
    assert send.send_at.isoformat() == "2024-10-28T09:55:00+07:00"
    assert send.spread == timedelta(minutes=9, seconds=59)


SPREAD_ZONES = ("Asia/Jakarta", "Australia/Sydney", "America/Tijuana", "Australia/Lord_Howe", "Asia/Kolkata",
                "Pacific/Chatham", "Europe/London", "America/Sao_Paulo")


@st.composite
def spread_campaigns(draw: st.DrawFn) -> str:
    start, end = sorted(draw(st.lists(st.integers(0, 23 * 60 + 59), min_size=2, max_size=2, unique=True)))
    minutes = draw(st.integers(1, min(end - start, 12 * 60)))  # local_time + spread fits the window
    local = draw(st.integers(start, end - minutes))
    day = draw(st.dates(min_value=datetime(2024, 1, 1).date(), max_value=datetime(2025, 12, 31).date()))
    at = datetime.combine(day, time()) + timedelta(minutes=draw(st.integers(0, 1439)))
    waves = draw(st.lists(st.one_of(st.integers(0, 40).map(lambda d: f"P{d}D"),
                                    st.integers(0, 3000).map(lambda m: f"PT{m}M")), min_size=1, max_size=4,
                          unique=True))
    hhmm = [f"{m // 60:02d}:{m % 60:02d}" for m in (start, local, end)]
    return spec(f"PT{minutes}M", at=at.isoformat(timespec="minutes"), waves=", ".join(waves),
                local_time=hhmm[1], window=(hhmm[0], hhmm[2]))


@settings(max_examples=300, deadline=None)
@given(text=spread_campaigns(), zone=st.sampled_from(SPREAD_ZONES))
def test_every_spread_send_ends_inside_its_window_and_before_its_deadline(text: str, zone: str) -> None:
    campaign = parse_campaign(text)
    tz = ZoneInfo(zone)
    plan = plan_zone(campaign, tz)
    start, end = campaign.delivery.window
    for send in plan.sends:
        last = (send.send_at.astimezone(UTC) + send.spread).astimezone(tz)  # the spread's last moment
        assert start <= send.send_at.time() <= end, send
        assert last.date() == send.send_at.date() and last.time() <= end, (send, last)
        assert all(last < plan.deadline_instants[d] for d in send.deadlines), (send, last)
        assert send.spread <= campaign.delivery.spread
    assert all(n <= campaign.delivery.max_per_day for n in Counter(s.send_at.date() for s in plan.sends).values())


# --- materialization, on SQLite and PostgreSQL -------------------------------------------------------------------


def test_a_thousand_recipients_are_due_over_the_twenty_minutes_after_the_send_never_on_the_hour(
        sessions: sessionmaker[Session], schedule_campaign: Schedule) -> None:
    add_recipients(sessions, 1000)
    schedule_campaign(SCHEDULED, spec("PT20M"))

    assert materialize(sessions, SEND_AT) == 1000
    due = due_times(sessions)

    assert len(due) == 1000
    assert all(SEND_AT < at <= SEND_AT + TWENTY for at in due.values())
    assert not [at for at in due.values() if at.second == 0]  # none on a whole minute, so none at 10:00:00
    assert len({at.replace(second=0) for at in due.values()}) == 20  # every minute of the spread
    assert max(Counter(at.minute for at in due.values()).values()) <= 100
    local = [at.astimezone(JAKARTA).time() for at in due.values()]
    assert all(time(8) <= t <= time(21) for t in local) and max(due.values()) < DEADLINE
    assert due == {seq: SEND_AT + spread.offset(seq, TWENTY) for seq in due}  # the SQL is the Python rule


def test_the_same_recipient_is_due_at_the_same_moment_however_often_its_rows_are_made(
        sessions: sessionmaker[Session], schedule_campaign: Schedule) -> None:
    add_recipients(sessions, 300)
    schedule_campaign(SCHEDULED, spec("PT20M", channels="email"))
    materialize(sessions, SEND_AT)
    first = due_times(sessions)
    with transaction(sessions) as s:  # replay: the rows made again, later, from scratch
        s.execute(delete(DeliveryRow))
        s.execute(update(SendGroup).values(materialized_upto=0))
    materialize(sessions, SEND_AT + timedelta(minutes=7))
    assert due_times(sessions) == first
    add_recipients(sessions, 200, first=300)  # joined before the send, imported after it was materialized
    materialize(sessions, SEND_AT + timedelta(minutes=9))
    again = due_times(sessions)
    assert len(again) == 500 and {seq: again[seq] for seq in first} == first
    assert again == {seq: SEND_AT + spread.offset(seq, TWENTY) for seq in again}


@pytest.mark.parametrize("value", [None, "PT0M"])
def test_without_a_spread_every_row_is_due_exactly_at_the_send_time(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, value: str | None) -> None:
    add_recipients(sessions, 50)
    schedule_campaign(SCHEDULED, spec(value))
    materialize(sessions, SEND_AT)
    assert set(due_times(sessions).values()) == {SEND_AT}


def test_a_spread_near_the_deadline_ends_a_second_before_it(
        sessions: sessionmaker[Session], schedule_campaign: Schedule) -> None:
    add_recipients(sessions, 400)
    schedule_campaign(SCHEDULED, spec("PT20M", at="2024-10-28T10:05", waves="PT10M"))
    send_at, deadline = datetime(2024, 10, 28, 2, 55, tzinfo=UTC), datetime(2024, 10, 28, 3, 5, tzinfo=UTC)
    materialize(sessions, send_at)
    due = due_times(sessions)
    assert len(due) == 400 and all(send_at < at < deadline for at in due.values())
    assert max(due.values()) <= deadline - timedelta(seconds=1) and not [at for at in due.values() if at.second == 0]


def test_a_spread_near_the_window_end_ends_by_it(sessions: sessionmaker[Session], schedule_campaign: Schedule) -> None:
    add_recipients(sessions, 400)
    schedule_campaign(SCHEDULED, spec("PT20M", at="2024-10-28T22:00", waves="PT1H10M"))  # moved to 20:40
    send_at = datetime(2024, 10, 28, 13, 40, tzinfo=UTC)
    materialize(sessions, send_at)
    due = due_times(sessions)
    assert len(due) == 400
    assert all(time(20, 40) < at.astimezone(JAKARTA).time() < time(21) for at in due.values())


# --- dispatch on a simulated clock ---------------------------------------------------------------------------


def read_date(outbox: Path, delivery_id: int) -> datetime:
    msg = email.message_from_bytes((outbox / "email" / CAMPAIGN_ID / f"{delivery_id}.eml").read_bytes(),
                                   policy=email.policy.default)
    return msg["Date"].datetime  # type: ignore[no-any-return]


def test_sends_go_out_progressively_as_the_simulated_clock_passes_each_due_time_dated_by_that_clock(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, tmp_path: Path) -> None:
    add_recipients(sessions, 200)
    schedule_campaign(SCHEDULED, spec("PT20M"))
    outbox = tmp_path / "outbox"
    dispatcher = build_dispatcher(Settings(outbox_dir=outbox), sessions, simulated_clock=True)
    sent_by: list[int] = []
    ticks = [SEND_AT + timedelta(minutes=m, seconds=30) for m in (-1, 0, 4, 9, 14, 19)] + [SEND_AT + TWENTY]
    for now in ticks:
        dispatcher.tick(now)
        with sessions() as s:
            rows = s.execute(select(DeliveryRow.state, DeliveryRow.next_attempt_at)).all()
        assert all((state == DeliveryState.SENT) == (at <= now) for state, at in rows)  # due ones, and only those
        sent_by.append(sum(state == DeliveryState.SENT for state, _ in rows))
    dispatcher.close()
    assert sent_by[0] == 0 and sent_by[-1] == 200
    assert sent_by == sorted(sent_by) and len(set(sent_by)) == len(sent_by)  # more at every tick
    with sessions() as s:
        rows = s.execute(select(DeliveryRow.id, DeliveryRow.next_attempt_at, DeliveryRow.sent_at)).all()
    for delivery_id, due, sent_at in rows:
        tick = min(t for t in ticks if t >= due)
        assert sent_at == tick and read_date(outbox, delivery_id) == tick  # the Date: header is the tick's clock


def test_a_simulated_run_dates_each_email_by_the_tick_that_wrote_it_not_by_the_host_clock(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, tmp_path: Path) -> None:
    add_recipients(sessions, 3)
    schedule_campaign(SCHEDULED, spec(None))
    outbox = tmp_path / "outbox"
    dispatcher = build_dispatcher(Settings(outbox_dir=outbox), sessions, simulated_clock=True)
    tick = SEND_AT + timedelta(minutes=7, seconds=13)
    assert dict(dispatcher.tick(tick).outcomes) == {"sent": 3}
    dispatcher.close()
    with sessions() as s:
        ids = s.scalars(select(DeliveryRow.id)).all()
    assert [read_date(outbox, i) for i in ids] == [tick] * 3  # 28 Sep 2024 03:07:13 +0000, as the ledger says


def test_a_wait_for_the_window_to_open_ends_spread_like_a_wave(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, tmp_path: Path) -> None:
    add_recipients(sessions, 200)
    schedule_campaign(SCHEDULED, spec("PT20M"))
    with transaction(sessions) as s:
        queries.set_state(s, CAMPAIGN_ID, CampaignState.PAUSED, SCHEDULED)
    night = datetime(2024, 9, 28, 15, 30, tzinfo=UTC)  # 22:30 in Jakarta: resumed after the window closed
    with transaction(sessions) as s:
        queries.set_state(s, CAMPAIGN_ID, CampaignState.SCHEDULED, night)
    dispatcher = build_dispatcher(Settings(outbox_dir=tmp_path / "outbox"), sessions, simulated_clock=True)
    dispatcher.tick(night)
    opens = datetime(2024, 9, 29, 1, 0, tzinfo=UTC)  # 08:00 in Jakarta
    due = due_times(sessions)
    assert due == {seq: opens + spread.offset(seq, TWENTY) for seq in due} and len(due) == 200
    assert not [at for at in due.values() if at.second == 0]
    dispatcher.tick(opens + TWENTY)
    dispatcher.close()
    with sessions() as s:
        assert set(s.scalars(select(DeliveryRow.state))) == {DeliveryState.SENT}


def test_a_real_clock_dispatcher_dates_its_mail_when_it_writes_it(
        sessions: sessionmaker[Session], schedule_campaign: Schedule, tmp_path: Path) -> None:
    from tests.conftest import wave_spec

    campaign_id = "real-clock-wave"
    locales = shipped_catalogs_as(tmp_path / "locales", campaign_id)
    now = wave_now() - timedelta(minutes=1)  # its wave due a minute ago
    add_recipients(sessions, 1)
    schedule_campaign(now, wave_spec(now, campaign_id), locales_dir=locales)
    outbox = tmp_path / "outbox"
    dispatcher = build_dispatcher(Settings(outbox_dir=outbox, locales_dir=locales), sessions)
    tick = datetime.now(UTC) - timedelta(seconds=30)  # the tick's clock, within the allowed skew
    began = datetime.now(UTC).replace(microsecond=0)
    assert dict(dispatcher.tick(tick).outcomes) == {"sent": 1}
    dispatcher.close()
    [eml] = (outbox / "email" / campaign_id).glob("*.eml")
    dated = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)["Date"].datetime
    assert began <= dated <= datetime.now(UTC) and dated > tick


def test_plan_shows_each_send_with_the_span_its_messages_go_out_in(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from notifier.cli import cli

    campaign = tmp_path / "c.yaml"
    campaign.write_text(spec("PT20M"), encoding="utf-8")
    audience = tmp_path / "a.csv"
    audience.write_text("id,email,timezone,country\nana,ana@example.com,Asia/Jakarta,ID\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["campaign", "plan", str(campaign), "--audience", str(audience)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.split(r"\s{2,}", lines[1])[:3] == ["2024-09-28 10:00–10:20 +0700", "ana", "email"]
    assert lines[-1].startswith("(delivery.spread PT20M: each recipient's message goes out at a moment of its own")
    as_json = CliRunner().invoke(cli, ["campaign", "plan", str(campaign), "--audience", str(audience), "--json"])
    assert '"send_at": "2024-09-28T10:00:00+07:00", "spread": "PT20M"}' in as_json.output.splitlines()[0]
