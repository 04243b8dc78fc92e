"""The planner's rules (see the notifier.planner docstring), one test per rule, plus hypothesis invariants."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.campaign import Campaign, load_campaign, parse_campaign, resolve_local
from notifier.errors import CampaignError
from notifier.planner import NoteKind, PlannedSend, ZonePlan, outlook, plan_recipient, plan_zone
from notifier.zones import every_zone

CAMPAIGN_FILE = Path(__file__).resolve().parent.parent / "campaigns" / "tiktok-music-shutdown.yaml"

# --- helpers -----------------------------------------------------------------------------------------


def make_campaign(
    *deadlines: tuple[str, str, str] | tuple[str, str, str, str],
    local_time: str = "10:00",
    window: tuple[str, str] = ("08:00", "21:00"),
    max_per_day: int = 1,
    channels: tuple[str, ...] = ("email", "push"),
) -> Campaign:
    """A campaign from (id, at, "P7D, P1D"[, "email"]) deadlines (the fourth: the deadline's own channels), written
    as YAML and parsed like a real file."""
    body = "\n".join(f'  - id: {d[0]}\n    at: "{d[1]}"\n    waves: [{d[2]}]'
                     + (f"\n    channels: [{d[3]}]" if len(d) > 3 else "") for d in deadlines)
    text = (
        "id: test-campaign\n"
        "name: Test campaign\n"
        "locales: [en]\n"
        "default_locale: en\n"
        f"channels: [{', '.join(channels)}]\n"
        "delivery:\n"
        f'  local_time: "{local_time}"\n'
        f'  window: ["{window[0]}", "{window[1]}"]\n'
        f"  max_per_day: {max_per_day}\n"
        "deadlines:\n"
        f"{body}\n"
    )
    return parse_campaign(text)


def plan(campaign: Campaign, zone: str) -> ZonePlan:
    return plan_zone(campaign, ZoneInfo(zone))


def timeline(zone_plan: ZonePlan) -> list[tuple[str, str]]:
    """The plan as (send_at isoformat, send_key) tuples, the way a reviewer reads it."""
    return [(s.send_at.isoformat(), s.send_key) for s in zone_plan.sends]


def only_send(zone_plan: ZonePlan) -> PlannedSend:
    assert len(zone_plan.sends) == 1, timeline(zone_plan)
    return zone_plan.sends[0]


def notes_of(zone_plan_or_notes: ZonePlan | tuple, kind: NoteKind) -> list:
    notes = zone_plan_or_notes.notes if isinstance(zone_plan_or_notes, ZonePlan) else zone_plan_or_notes
    return [n for n in notes if n.kind == kind]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


SHIPPED_ZONES = (
    "Asia/Jakarta",
    "America/Sao_Paulo",
    "America/Mexico_City",
    "Australia/Sydney",
    "America/Tijuana",
    "Australia/Lord_Howe",
    "Australia/Eucla",
    "Asia/Singapore",
    "Australia/Perth",
)


@pytest.fixture(scope="module")
def shipped() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


# --- whole-day waves ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Jakarta", "2024-11-27T10:00:00+07:00"),
        ("America/Sao_Paulo", "2024-11-27T10:00:00-03:00"),
        ("America/Mexico_City", "2024-11-27T10:00:00-06:00"),
        ("Australia/Sydney", "2024-11-27T10:00:00+11:00"),
        ("America/Tijuana", "2024-11-27T10:00:00-08:00"),
        ("Australia/Lord_Howe", "2024-11-27T10:00:00+11:00"),
        ("Australia/Eucla", "2024-11-27T10:00:00+08:45"),
        ("Asia/Singapore", "2024-11-27T10:00:00+08:00"),
        ("Australia/Perth", "2024-11-27T10:00:00+08:00"),
    ],
)
def test_whole_day_wave_lands_on_local_day_before_deadline_at_local_time(zone: str, expected: str) -> None:
    c = make_campaign(("refund", "2024-11-28T00:00", "P1D"))
    p = plan(c, zone)
    assert timeline(p) == [(expected, "refund@P1D")]
    assert p.notes == ()


@pytest.mark.parametrize("zone", SHIPPED_ZONES)
def test_whole_day_waves_count_local_calendar_days_from_deadline_local_date(zone: str) -> None:
    c = make_campaign(("a", "2024-11-28T00:00", "P61D, P30D, P7D, P1D"), max_per_day=3)
    sends = plan(c, zone).sends
    assert [(s.send_at.date(), s.send_at.time()) for s in sends] == [
        (date(2024, 9, 28), time(10)),
        (date(2024, 10, 29), time(10)),
        (date(2024, 11, 21), time(10)),
        (date(2024, 11, 27), time(10)),
    ]
    assert all(s.send_at.tzinfo is not None and str(s.send_at.tzinfo) == zone for s in sends)


def test_whole_day_wave_counts_from_the_deadline_local_date_even_late_in_the_day() -> None:
    c = make_campaign(("a", "2024-11-28T23:30", "P1D, P0D"), max_per_day=2)
    assert timeline(plan(c, "Asia/Jakarta")) == [
        ("2024-11-27T10:00:00+07:00", "a@P1D"),
        ("2024-11-28T10:00:00+07:00", "a@P0D"),
    ]


def test_whole_day_weeks_are_seven_local_days() -> None:
    c = make_campaign(("a", "2024-11-28T00:00", "P1W"))
    assert timeline(plan(c, "Australia/Sydney")) == [("2024-11-21T10:00:00+11:00", "a@P1W")]


def test_wave_on_dst_start_day_keeps_local_ten_am() -> None:
    c = make_campaign(("a", "2024-10-07T00:00", "P1D"))
    s = only_send(plan(c, "Australia/Sydney"))
    assert s.send_at.isoformat() == "2024-10-06T10:00:00+11:00"
    assert s.send_at_utc == datetime(2024, 10, 5, 23, 0, tzinfo=UTC)


def test_sydney_waves_before_dst_start_are_plus_ten_and_after_are_plus_eleven_at_ten_am() -> None:
    c = make_campaign(("a", "2024-10-13T00:00", "P14D, P8D, P7D, P1D"))
    assert timeline(plan(c, "Australia/Sydney")) == [
        ("2024-09-29T10:00:00+10:00", "a@P14D"),
        ("2024-10-05T10:00:00+10:00", "a@P8D"),
        ("2024-10-06T10:00:00+11:00", "a@P7D"),
        ("2024-10-12T10:00:00+11:00", "a@P1D"),
    ]


def test_tijuana_waves_before_dst_end_are_minus_seven_and_after_are_minus_eight_at_ten_am() -> None:
    c = make_campaign(("a", "2024-11-10T00:00", "P9D, P8D, P7D, P1D"))
    assert timeline(plan(c, "America/Tijuana")) == [
        ("2024-11-01T10:00:00-07:00", "a@P9D"),
        ("2024-11-02T10:00:00-07:00", "a@P8D"),
        ("2024-11-03T10:00:00-08:00", "a@P7D"),
        ("2024-11-09T10:00:00-08:00", "a@P1D"),
    ]


def test_lord_howe_half_hour_dst_shift_keeps_local_ten_am() -> None:
    c = make_campaign(("a", "2024-10-08T00:00", "P3D, P2D, P1D"))
    assert timeline(plan(c, "Australia/Lord_Howe")) == [
        ("2024-10-05T10:00:00+10:30", "a@P3D"),
        ("2024-10-06T10:00:00+11:00", "a@P2D"),
        ("2024-10-07T10:00:00+11:00", "a@P1D"),
    ]


def test_eucla_quarter_hour_offset_keeps_local_ten_am() -> None:
    c = make_campaign(("a", "2024-10-08T00:00", "P30D, P2D"))
    assert timeline(plan(c, "Australia/Eucla")) == [
        ("2024-09-08T10:00:00+08:45", "a@P30D"),
        ("2024-10-06T10:00:00+08:45", "a@P2D"),
    ]


@pytest.mark.parametrize("zone", ["Asia/Jakarta", "Asia/Singapore", "Australia/Perth", "America/Sao_Paulo",
                                  "America/Mexico_City"])
def test_zones_without_dst_keep_one_offset_all_campaign_long(zone: str) -> None:
    c = make_campaign(("a", "2024-11-28T00:00", "P61D, P30D, P7D, P1D"))
    offsets = {s.send_at.utcoffset() for s in plan(c, zone).sends}
    assert len(offsets) == 1


# --- sub-day waves -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wave", "expected"),
    [
        ("PT6H", "2024-11-28T12:00:00+07:00"),
        ("PT30M", "2024-11-28T17:30:00+07:00"),
        ("P1DT6H", "2024-11-27T12:00:00+07:00"),
        ("PT90M", "2024-11-28T16:30:00+07:00"),
        ("PT36H", "2024-11-27T06:00:00+07:00"),
    ],
)
def test_sub_day_wave_goes_exactly_the_offset_before_the_deadline(wave: str, expected: str) -> None:
    c = make_campaign(("a", "2024-11-28T18:00", wave), window=("06:00", "21:00"))
    p = plan(c, "Asia/Jakarta")
    s = only_send(p)
    assert (s.send_at.isoformat(), s.send_key) == (expected, f"a@{wave}")
    assert p.notes == ()


def test_sub_day_wave_is_exact_elapsed_time_across_dst_start() -> None:
    c = make_campaign(("a", "2024-10-07T00:00", "PT36H"))
    p = plan(c, "Australia/Sydney")
    s = only_send(p)
    # 36 real hours before 2024-10-07 00:00 +11:00 is 11:00 +10:00, not the 12:00 wall-clock arithmetic gives.
    assert s.send_at.isoformat() == "2024-10-05T11:00:00+10:00"
    assert p.deadline_instants["a"].astimezone(UTC) - s.send_at_utc == timedelta(hours=36)


def test_sub_day_wave_is_exact_elapsed_time_across_dst_end() -> None:
    c = make_campaign(("a", "2024-11-04T12:00", "PT48H"))
    s = only_send(plan(c, "America/Tijuana"))
    assert s.send_at.isoformat() == "2024-11-02T13:00:00-07:00"


def test_wave_written_in_hours_is_an_exact_offset_even_when_it_is_a_whole_number_of_days() -> None:
    c = make_campaign(("a", "2024-10-06T12:00", "PT24H"))
    s = only_send(plan(c, "Australia/Sydney"))
    # 24 real hours, not "the day before at local_time": 2024-10-06 12:00 +11:00 minus 24 h.
    assert s.send_at.isoformat() == "2024-10-05T11:00:00+10:00"


# --- window ------------------------------------------------------------------------------------------


def test_send_after_window_end_moves_to_window_end_same_day() -> None:
    c = make_campaign(("a", "2024-11-28T23:30", "PT1H"))
    p = plan(c, "Asia/Jakarta")
    assert timeline(p) == [("2024-11-28T21:00:00+07:00", "a@PT1H")]
    [moved] = notes_of(p, NoteKind.MOVED)
    assert (moved.deadline, moved.wave) == ("a", "PT1H")
    assert "22:30" in moved.message and "21:00" in moved.message


def test_send_before_window_start_moves_to_previous_day_window_end() -> None:
    c = make_campaign(("a", "2024-11-28T10:00", "PT3H"))
    p = plan(c, "Asia/Jakarta")
    assert timeline(p) == [("2024-11-27T21:00:00+07:00", "a@PT3H")]
    [moved] = notes_of(p, NoteKind.MOVED)
    assert (moved.deadline, moved.wave) == ("a", "PT3H")
    assert "2024-11-28 07:00" in moved.message and "2024-11-27 21:00" in moved.message


def test_send_exactly_on_window_edges_is_not_moved() -> None:
    c = make_campaign(("a", "2024-11-28T23:00", "PT2H, PT15H"), max_per_day=2)
    p = plan(c, "Asia/Jakarta")
    assert timeline(p) == [
        ("2024-11-28T08:00:00+07:00", "a@PT15H"),
        ("2024-11-28T21:00:00+07:00", "a@PT2H"),
    ]
    assert notes_of(p, NoteKind.MOVED) == []


def test_whole_day_waves_at_local_time_inside_the_window_produce_no_notes() -> None:
    c = make_campaign(("a", "2024-11-28T00:00", "P7D, P1D"))
    assert plan(c, "Australia/Sydney").notes == ()


def test_window_end_skipped_by_dst_jump_still_moves_the_send_earlier_into_the_window() -> None:
    c = make_campaign(("a", "2024-10-06T04:00", "PT30M"), local_time="02:00", window=("00:00", "02:30"))
    p = plan(c, "Australia/Sydney")
    s = only_send(p)
    # 03:30 +11:00 is after the window; 02:30 does not exist that day, so it goes the jump's length earlier.
    assert s.send_at.isoformat() == "2024-10-06T01:30:00+10:00"
    assert s.send_at_utc < p.deadline_instants["a"].astimezone(UTC) - timedelta(minutes=30)
    assert len(notes_of(p, NoteKind.MOVED)) == 1


def test_local_time_pushed_past_window_end_by_dst_jump_comes_back_inside_the_window() -> None:
    c = make_campaign(("a", "2024-10-07T12:00", "P1D"), local_time="02:15", window=("00:00", "02:30"))
    p = plan(c, "Australia/Sydney")
    s = only_send(p)
    assert s.send_at.isoformat() == "2024-10-06T01:30:00+10:00"
    assert time(0) <= s.send_at.time() <= time(2, 30)


def test_previous_day_window_end_skipped_by_dst_jump_stays_inside_the_window() -> None:
    c = make_campaign(("a", "2024-10-07T01:00", "PT45M"), local_time="01:00", window=("00:30", "02:30"))
    p = plan(c, "Australia/Sydney")
    s = only_send(p)
    # 00:15 on the 7th is before the window; the 6th's window end 02:30 was skipped, so 01:30 +10:00.
    assert s.send_at.isoformat() == "2024-10-06T01:30:00+10:00"


# --- dropped sends -----------------------------------------------------------------------------------


def test_send_at_local_time_after_a_morning_deadline_is_dropped() -> None:
    c = make_campaign(("a", "2024-11-28T09:00", "P0D"))
    p = plan(c, "Asia/Jakarta")
    assert p.sends == ()
    [dropped] = notes_of(p, NoteKind.DROPPED)
    assert (dropped.deadline, dropped.wave) == ("a", "P0D")
    assert "2024-11-28 10:00" in dropped.message


def test_send_exactly_at_the_deadline_is_dropped() -> None:
    c = make_campaign(("a", "2024-11-28T10:00", "P0D"))
    p = plan(c, "Asia/Jakarta")
    assert p.sends == ()
    assert [(n.deadline, n.wave) for n in notes_of(p, NoteKind.DROPPED)] == [("a", "P0D")]


def test_sub_day_wave_of_zero_is_dropped_as_it_falls_on_the_deadline() -> None:
    c = make_campaign(("a", "2024-11-28T15:00", "PT0S"))
    p = plan(c, "Asia/Jakarta")
    assert p.sends == ()
    assert [(n.deadline, n.wave) for n in notes_of(p, NoteKind.DROPPED)] == [("a", "PT0S")]


def test_midnight_deadline_drops_same_day_wave_but_keeps_the_others() -> None:
    c = make_campaign(("a", "2024-11-28T00:00", "P1D, P0D"))
    p = plan(c, "Asia/Jakarta")
    assert timeline(p) == [("2024-11-27T10:00:00+07:00", "a@P1D")]
    assert [(n.deadline, n.wave) for n in notes_of(p, NoteKind.DROPPED)] == [("a", "P0D")]


def test_send_moved_earlier_by_the_window_is_no_longer_dropped() -> None:
    c = make_campaign(("a", "2024-11-28T23:00", "PT0S"))
    p = plan(c, "Asia/Jakarta")
    assert timeline(p) == [("2024-11-28T21:00:00+07:00", "a@PT0S")]
    assert notes_of(p, NoteKind.DROPPED) == []


# --- merging -----------------------------------------------------------------------------------------


def test_same_local_day_sends_merge_into_one_at_the_earliest_time_when_max_per_day_is_one() -> None:
    c = make_campaign(("a", "2024-11-02T00:00", "P1D"), ("b", "2024-11-03T00:00", "P2D"))
    p = plan(c, "Asia/Jakarta")
    s = only_send(p)
    assert (s.send_at.isoformat(), s.send_key) == ("2024-11-01T10:00:00+07:00", "a@P1D+b@P2D")
    assert s.deadlines == ("a", "b")
    assert s.wave == "P1D"
    merged = notes_of(p, NoteKind.MERGED)
    assert sorted((n.deadline, n.wave) for n in merged) == [("a", "P1D"), ("b", "P2D")]
    assert all("max_per_day: 1" in n.message for n in merged)


def test_merged_send_goes_at_the_earliest_time_and_takes_the_earliest_wave() -> None:
    c = make_campaign(("a", "2024-11-01T18:00", "PT3H"), ("b", "2024-11-02T00:00", "P1D"))
    p = plan(c, "Asia/Jakarta")
    s = only_send(p)
    assert s.send_at.isoformat() == "2024-11-01T10:00:00+07:00"
    assert s.send_key == "a@PT3H+b@P1D"  # key in campaign (deadline) order
    assert s.deadlines == ("a", "b")  # items in the file's order too
    assert s.wave == "P1D"  # the earliest wave names the send
    assert len(notes_of(p, NoteKind.MERGED)) == 2


def test_with_max_per_day_two_the_first_send_goes_alone_and_the_rest_merge() -> None:
    c = make_campaign(
        ("a", "2024-11-01T20:00", "PT6H"),
        ("b", "2024-11-02T00:00", "P1D"),
        ("c", "2024-11-01T22:00", "PT4H"),
        max_per_day=2,
    )
    p = plan(c, "Asia/Jakarta")
    assert timeline(p) == [
        ("2024-11-01T10:00:00+07:00", "b@P1D"),
        ("2024-11-01T14:00:00+07:00", "a@PT6H+c@PT4H"),
    ]
    assert p.sends[1].wave == "PT6H"
    assert sorted((n.deadline, n.wave) for n in notes_of(p, NoteKind.MERGED)) == [("a", "PT6H"), ("c", "PT4H")]
    assert all("max_per_day: 2" in n.message for n in notes_of(p, NoteKind.MERGED))


def test_sends_within_max_per_day_are_not_merged() -> None:
    c = make_campaign(("a", "2024-11-01T20:00", "PT6H"), ("b", "2024-11-02T00:00", "P1D"), max_per_day=2)
    p = plan(c, "Asia/Jakarta")
    assert timeline(p) == [
        ("2024-11-01T10:00:00+07:00", "b@P1D"),
        ("2024-11-01T14:00:00+07:00", "a@PT6H"),
    ]
    assert notes_of(p, NoteKind.MERGED) == []


def test_sends_on_different_local_days_are_never_merged() -> None:
    c = make_campaign(("a", "2024-11-02T00:00", "P1D"), ("b", "2024-11-03T00:00", "P1D"))
    assert timeline(plan(c, "Asia/Jakarta")) == [
        ("2024-11-01T10:00:00+07:00", "a@P1D"),
        ("2024-11-02T10:00:00+07:00", "b@P1D"),
    ]


def test_merging_is_by_the_recipient_local_day_not_the_utc_day() -> None:
    # Sydney: 07:00 +11:00 on the 2nd is 20:00 UTC on the 1st; 20:00 +11:00 on the 1st is 09:00 UTC the 1st.
    c = make_campaign(
        ("a", "2024-11-02T10:00", "PT3H"),
        ("b", "2024-11-01T22:00", "PT2H"),
        local_time="10:00", window=("06:00", "21:00"),
    )
    p = plan(c, "Australia/Sydney")
    assert timeline(p) == [
        ("2024-11-01T20:00:00+11:00", "b@PT2H"),
        ("2024-11-02T07:00:00+11:00", "a@PT3H"),
    ]


# --- the shipped campaign ----------------------------------------------------------------------------


@pytest.mark.parametrize("zone", SHIPPED_ZONES)
def test_shipped_campaign_first_message_merges_playlist_p30d_and_refund_p61d(shipped: Campaign, zone: str) -> None:
    first = plan(shipped, zone).sends[0]
    assert first.send_at.date() == date(2024, 9, 28)
    assert first.send_at.time() == time(10)
    assert first.send_key == "playlist-transfer@P30D+refund@P61D"
    assert first.deadlines == ("playlist-transfer", "refund")
    assert first.wave == "P30D"


def test_shipped_campaign_plan_for_jakarta(shipped: Campaign) -> None:
    p = plan(shipped, "Asia/Jakarta")
    assert timeline(p) == [
        ("2024-09-28T10:00:00+07:00", "playlist-transfer@P30D+refund@P61D"),
        ("2024-10-21T10:00:00+07:00", "playlist-transfer@P7D"),
        ("2024-10-27T10:00:00+07:00", "playlist-transfer@P1D"),
        ("2024-10-29T10:00:00+07:00", "refund@P30D"),
        ("2024-11-21T10:00:00+07:00", "refund@P7D"),
        ("2024-11-27T10:00:00+07:00", "refund@P1D"),
    ]
    assert sorted((n.kind, n.deadline, n.wave) for n in p.notes) == [
        (NoteKind.MERGED, "playlist-transfer", "P30D"),
        (NoteKind.MERGED, "refund", "P61D"),
    ]
    assert p.deadline_instants == {
        "playlist-transfer": at("2024-10-28T00:00+07:00"),
        "refund": at("2024-11-28T00:00+07:00"),
    }


def test_shipped_campaign_plan_for_sydney_crosses_dst_start(shipped: Campaign) -> None:
    assert timeline(plan(shipped, "Australia/Sydney")) == [
        ("2024-09-28T10:00:00+10:00", "playlist-transfer@P30D+refund@P61D"),
        ("2024-10-21T10:00:00+11:00", "playlist-transfer@P7D"),
        ("2024-10-27T10:00:00+11:00", "playlist-transfer@P1D"),
        ("2024-10-29T10:00:00+11:00", "refund@P30D"),
        ("2024-11-21T10:00:00+11:00", "refund@P7D"),
        ("2024-11-27T10:00:00+11:00", "refund@P1D"),
    ]


def test_shipped_campaign_plan_for_tijuana_crosses_dst_end(shipped: Campaign) -> None:
    assert [s.send_at.isoformat() for s in plan(shipped, "America/Tijuana").sends] == [
        "2024-09-28T10:00:00-07:00",
        "2024-10-21T10:00:00-07:00",
        "2024-10-27T10:00:00-07:00",
        "2024-10-29T10:00:00-07:00",
        "2024-11-21T10:00:00-08:00",
        "2024-11-27T10:00:00-08:00",
    ]


# --- absolute and wall-time deadlines ----------------------------------------------------------------


def test_absolute_deadline_is_the_same_instant_in_every_zone() -> None:
    c = make_campaign(("a", "2024-11-28T00:00+07:00", "P1D"))
    instants = {plan(c, zone).deadline_instants["a"] for zone in SHIPPED_ZONES}
    assert instants == {datetime(2024, 11, 27, 17, 0, tzinfo=UTC)}


def test_absolute_deadline_whole_day_wave_counts_from_the_local_date_of_the_deadline() -> None:
    c = make_campaign(("a", "2024-11-28T00:00+07:00", "P1D"))
    mexico = plan(c, "America/Mexico_City")
    assert mexico.deadline_instants["a"].isoformat() == "2024-11-27T11:00:00-06:00"
    assert timeline(mexico) == [("2024-11-26T10:00:00-06:00", "a@P1D")]
    assert timeline(plan(c, "Asia/Jakarta")) == [("2024-11-27T10:00:00+07:00", "a@P1D")]


def test_wall_time_deadline_is_midnight_in_each_recipient_zone() -> None:
    c = make_campaign(("a", "2024-11-28T00:00", "P1D"))
    mexico = plan(c, "America/Mexico_City")
    assert mexico.deadline_instants["a"].isoformat() == "2024-11-28T00:00:00-06:00"
    assert timeline(mexico) == [("2024-11-27T10:00:00-06:00", "a@P1D")]
    for zone in SHIPPED_ZONES:
        assert plan(c, zone).deadline_instants["a"] == datetime(2024, 11, 28, tzinfo=ZoneInfo(zone))


def test_absolute_deadline_same_day_wave_is_kept_where_the_deadline_is_after_local_time() -> None:
    c = make_campaign(("a", "2024-11-28T00:00+07:00", "P0D"))
    assert plan(c, "Asia/Jakarta").sends == ()
    assert timeline(plan(c, "America/Mexico_City")) == [("2024-11-27T10:00:00-06:00", "a@P0D")]


def test_absolute_deadline_sub_day_wave_is_the_same_instant_in_every_zone() -> None:
    c = make_campaign(("a", "2024-11-28T00:00+07:00", "PT6H"))
    utc = {only_send(plan(c, zone)).send_at_utc for zone in ("Asia/Jakarta", "Asia/Singapore", "Australia/Perth")}
    assert utc == {datetime(2024, 11, 27, 11, 0, tzinfo=UTC)}


# --- nonexistent and repeated local times ------------------------------------------------------------


def test_resolve_local_moves_a_skipped_time_forward_by_the_jump() -> None:
    assert resolve_local(date(2024, 10, 6), time(2, 30), ZoneInfo("Australia/Sydney")).isoformat() == (
        "2024-10-06T03:30:00+11:00"
    )
    assert resolve_local(date(2024, 10, 6), time(2, 15), ZoneInfo("Australia/Lord_Howe")).isoformat() == (
        "2024-10-06T02:45:00+11:00"
    )


def test_resolve_local_takes_the_first_occurrence_of_a_repeated_time() -> None:
    assert resolve_local(date(2024, 11, 3), time(1, 30), ZoneInfo("America/Tijuana")).isoformat() == (
        "2024-11-03T01:30:00-07:00"
    )


def test_local_time_skipped_by_dst_start_sends_the_jump_later() -> None:
    c = make_campaign(("a", "2024-10-07T00:00", "P1D"), local_time="02:30", window=("00:00", "23:59"))
    p = plan(c, "Australia/Sydney")
    assert timeline(p) == [("2024-10-06T03:30:00+11:00", "a@P1D")]
    assert p.notes == ()


def test_local_time_skipped_by_half_hour_dst_start_on_lord_howe() -> None:
    c = make_campaign(("a", "2024-10-07T00:00", "P1D"), local_time="02:15", window=("00:00", "23:59"))
    assert timeline(plan(c, "Australia/Lord_Howe")) == [("2024-10-06T02:45:00+11:00", "a@P1D")]


def test_local_time_repeated_by_dst_end_sends_at_the_first_occurrence() -> None:
    c = make_campaign(("a", "2024-11-04T00:00", "P1D"), local_time="01:30", window=("00:00", "23:59"))
    s = only_send(plan(c, "America/Tijuana"))
    assert s.send_at.isoformat() == "2024-11-03T01:30:00-07:00"
    assert s.send_at_utc == datetime(2024, 11, 3, 8, 30, tzinfo=UTC)


def test_wall_time_deadline_skipped_by_dst_start_is_the_jump_later() -> None:
    c = make_campaign(("a", "2024-10-06T02:30", "PT1H"), window=("00:00", "23:59"))
    p = plan(c, "Australia/Sydney")
    assert p.deadline_instants["a"].isoformat() == "2024-10-06T03:30:00+11:00"
    assert timeline(p) == [("2024-10-06T01:30:00+10:00", "a@PT1H")]


def test_wall_time_deadline_repeated_by_dst_end_is_its_first_occurrence() -> None:
    c = make_campaign(("a", "2024-11-03T01:30", "PT1H"), window=("00:00", "23:59"))
    p = plan(c, "America/Tijuana")
    assert p.deadline_instants["a"].isoformat() == "2024-11-03T01:30:00-07:00"
    assert timeline(p) == [("2024-11-03T00:30:00-07:00", "a@PT1H")]


# --- late joiners and channels -----------------------------------------------------------------------


def test_recipient_without_not_before_gets_every_send_on_every_channel(shipped: Campaign) -> None:
    zp = plan(shipped, "Asia/Jakarta")
    rp = plan_recipient(shipped, zp, ["email", "push"])
    assert rp.sends == tuple((ch, s) for s in zp.sends for ch in ("email", "push"))
    assert rp.notes == zp.notes


def test_late_joiner_gets_only_the_sends_still_ahead(shipped: Campaign) -> None:
    zp = plan(shipped, "Asia/Jakarta")
    rp = plan_recipient(shipped, zp, ["email", "push"], not_before=at("2024-10-25T00:00+07:00"))
    assert [(ch, s.send_key) for ch, s in rp.sends] == [
        (ch, key)
        for key in ("playlist-transfer@P1D", "refund@P30D", "refund@P7D", "refund@P1D")
        for ch in ("email", "push")
    ]
    joined = notes_of(rp.notes, NoteKind.JOINED_AFTER)
    assert [(n.deadline, n.wave) for n in joined] == [("playlist-transfer", "P30D"), ("playlist-transfer", "P7D")]
    assert "playlist-transfer@P30D+refund@P61D" in joined[0].message
    assert notes_of(rp.notes, NoteKind.DEADLINE_PASSED) == []


def test_send_exactly_at_not_before_is_kept(shipped: Campaign) -> None:
    zp = plan(shipped, "Asia/Jakarta")
    rp = plan_recipient(shipped, zp, ["email"], not_before=at("2024-11-27T10:00+07:00"))
    assert [(ch, s.send_key) for ch, s in rp.sends] == [("email", "refund@P1D")]


def test_not_before_in_another_zone_compares_instants(shipped: Campaign) -> None:
    zp = plan(shipped, "Asia/Jakarta")
    # 03:00 UTC is 10:00 in Jakarta: the refund P1D send is exactly at not_before.
    rp = plan_recipient(shipped, zp, ["email"], not_before=at("2024-11-27T03:00+00:00"))
    assert [s.send_key for _, s in rp.sends] == ["refund@P1D"]
    rp = plan_recipient(shipped, zp, ["email"], not_before=at("2024-11-27T03:01+00:00"))
    assert rp.sends == ()


def test_joiner_after_a_deadline_gets_deadline_passed_instead_of_one_note_per_wave(shipped: Campaign) -> None:
    zp = plan(shipped, "Asia/Jakarta")
    rp = plan_recipient(shipped, zp, ["email", "push"], not_before=at("2024-11-01T00:00+07:00"))
    assert [s.send_key for ch, s in rp.sends if ch == "email"] == ["refund@P7D", "refund@P1D"]
    [passed] = notes_of(rp.notes, NoteKind.DEADLINE_PASSED)
    assert passed.deadline == "playlist-transfer"
    # The merged first message also carried the refund, which is still ahead: that miss is explained.
    joined = notes_of(rp.notes, NoteKind.JOINED_AFTER)
    assert [(n.deadline, n.wave) for n in joined] == [("playlist-transfer", "P30D"), ("refund", "P30D")]


def test_joiner_after_every_deadline_gets_nothing_and_a_note_per_deadline(shipped: Campaign) -> None:
    zp = plan(shipped, "Asia/Jakarta")
    rp = plan_recipient(shipped, zp, ["email", "push"], not_before=at("2024-11-28T00:00+07:00"))
    assert rp.sends == ()
    assert sorted(n.deadline for n in notes_of(rp.notes, NoteKind.DEADLINE_PASSED)) == [
        "playlist-transfer", "refund",
    ]
    assert notes_of(rp.notes, NoteKind.JOINED_AFTER) == []


def test_joined_after_note_names_the_missed_send_by_its_send_key() -> None:
    c = make_campaign(("a", "2024-11-01T18:00", "PT3H"), ("b", "2024-11-02T00:00", "P1D"))
    zp = plan(c, "Asia/Jakarta")
    rp = plan_recipient(c, zp, ["email"], not_before=at("2024-11-01T12:00+07:00"))
    assert rp.sends == ()
    [joined] = notes_of(rp.notes, NoteKind.JOINED_AFTER)
    assert joined.message.startswith("a@PT3H+b@P1D: due 2024-11-01 10:00")
    assert (joined.deadline, joined.wave) == ("b", "P1D")


def test_not_before_reason_appears_in_the_notes(shipped: Campaign) -> None:
    zp = plan(shipped, "Asia/Jakarta")
    rp = plan_recipient(shipped, zp, ["email"], not_before=at("2024-10-01T00:00+07:00"),
                        reason="the campaign was scheduled")
    [joined] = notes_of(rp.notes, NoteKind.JOINED_AFTER)
    assert "the campaign was scheduled" in joined.message


def test_missing_channel_gets_a_note_and_no_sends(shipped: Campaign) -> None:
    zp = plan(shipped, "Asia/Jakarta")
    rp = plan_recipient(shipped, zp, ["email"])
    assert {ch for ch, _ in rp.sends} == {"email"}
    assert len(rp.sends) == len(zp.sends)
    [missing] = notes_of(rp.notes, NoteKind.CHANNEL_MISSING)
    assert missing.channel == "push"
    assert "push" in missing.message


def test_recipient_without_any_channel_gets_no_sends_and_a_note_per_channel(shipped: Campaign) -> None:
    rp = plan_recipient(shipped, plan(shipped, "Asia/Jakarta"), [])
    assert rp.sends == ()
    assert [n.channel for n in notes_of(rp.notes, NoteKind.CHANNEL_MISSING)] == ["email", "push"]


def test_channels_the_campaign_does_not_use_are_ignored() -> None:
    c = make_campaign(("a", "2024-11-28T00:00", "P1D"), channels=("email",))
    rp = plan_recipient(c, plan(c, "Asia/Jakarta"), ["email", "push"])
    assert [ch for ch, _ in rp.sends] == ["email"]
    assert notes_of(rp.notes, NoteKind.CHANNEL_MISSING) == []


# --- what no time zone gets: the outlook at schedule time ------------------------------------------------
# make_campaign's lines: 11 "- id: a", 12 "at", 13 "waves" (then 14, 15, 16 for a second deadline).


def not_sent(c: Campaign, now: str) -> list[str]:
    return [str(p) for p in outlook(c, every_zone(), at(now)).not_sent]


def test_a_wave_past_in_every_time_zone_is_named_with_its_line_and_when_it_was_last_due() -> None:
    c = make_campaign(("a", "2030-01-31T00:00", "P30D, P7D, P1D"))
    # P7D is 24 Jan at 10:00 local: 22:00 UTC in the last time zone (UTC-12).
    assert not_sent(c, "2030-01-24T22:01+00:00") == [
        "<memory>:13: deadlines[0].waves[0]: P30D will not be sent: it was due by 2030-01-01 22:00 UTC in every time "
        "zone, before now (2030-01-24 22:01 UTC)",
        "<memory>:13: deadlines[0].waves[1]: P7D will not be sent: it was due by 2030-01-24 22:00 UTC in every time "
        "zone, before now (2030-01-24 22:01 UTC)",
    ]


def test_a_wave_still_due_in_some_time_zone_is_not_reported() -> None:
    c = make_campaign(("a", "2030-01-31T00:00", "P7D"))
    assert not_sent(c, "2030-01-24T12:00+00:00") == []  # past in Jakarta, ahead in the Americas
    assert not_sent(c, "2030-01-24T22:00+00:00") == []  # due now in the last time zone: still sent


def test_an_instants_wave_is_past_only_once_the_zone_that_sends_it_last_is_past() -> None:
    # One instant, 31 Jan 00:00 UTC: P1D is 30 Jan 10:00 in London but 29 Jan 10:00 at UTC-12 (its 30 Jan 12:00).
    c = make_campaign(("a", "2030-01-31T00:00+00:00", "P1D"))
    assert not_sent(c, "2030-01-30T09:59+00:00") == []
    assert not_sent(c, "2030-01-30T10:01+00:00") == [
        "<memory>:13: deadlines[0].waves[0]: P1D will not be sent: it was due by 2030-01-30 10:00 UTC in every time "
        "zone, before now (2030-01-30 10:01 UTC)"]


def test_a_deadline_over_in_every_time_zone_is_named_once_on_its_at_line() -> None:
    c = make_campaign(("a", "2029-01-31T00:00", "P7D, P1D"), ("b", "2030-01-31T00:00", "P1D"))
    seen = outlook(c, every_zone(), at("2029-06-01T00:00+00:00"))
    assert [str(p) for p in seen.not_sent] == [
        "<memory>:12: deadlines[0].at: 2029-01-31T00:00 has passed in every time zone (the last at 2029-01-31 12:00 "
        "UTC; now is 2029-06-01 00:00 UTC): none of its waves (P7D, P1D) will be sent"]
    assert (seen.waves, seen.waves_ahead, seen.sends_nothing) == (3, 1, False)
    seen.refuse_if_empty()  # b is still ahead: nothing to refuse


def test_a_wave_at_or_after_its_deadline_in_every_time_zone_is_never_sent() -> None:
    c = make_campaign(("a", "2030-01-31T00:00", "P1D, P0D"))  # P0D: 10:00 on the 31st, after midnight
    assert not_sent(c, "2030-01-01T00:00+00:00") == [
        "<memory>:13: deadlines[0].waves[1]: P0D will not be sent: in every time zone it falls at or after its "
        "deadline"]


def test_a_campaign_with_every_wave_past_sends_nothing_and_is_refused_unless_allowed() -> None:
    c = make_campaign(("a", "2023-10-28T00:00", "P30D, P1D"), ("b", "2023-11-28T00:00", "P1D"))
    seen = outlook(c, every_zone(), at("2024-09-01T00:00+00:00"))
    assert seen.sends_nothing and len(seen.not_sent) == 2
    with pytest.raises(CampaignError) as refused:
        seen.refuse_if_empty()
    *each, why = [str(p) for p in refused.value.problems]
    assert each == [str(p) for p in seen.not_sent]
    assert why == ("<memory>: nothing will be sent: no wave of any deadline is still ahead in any time zone; fix the "
                   "dates, or pass --allow-empty to accept a campaign that sends nothing")
    seen.refuse_if_empty(allow_empty=True)


def test_the_shipped_campaign_scheduled_on_time_sends_every_wave(shipped: Campaign) -> None:
    seen = outlook(shipped, every_zone(), at("2024-09-01T00:00+00:00"))
    assert (seen.not_sent, seen.waves_ahead) == ((), 7)


# --- invariants (hypothesis) -------------------------------------------------------------------------

ZONES = sorted(available_timezones())


@st.composite
def deadline_texts(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31, 23, 59)))
    text = moment.replace(second=0, microsecond=0).isoformat(timespec="minutes")
    if draw(st.booleans()):
        quarters = draw(st.integers(min_value=-12 * 4, max_value=14 * 4))
        sign = "-" if quarters < 0 else "+"
        text += f"{sign}{abs(quarters) // 4:02d}:{abs(quarters) % 4 * 15:02d}"
    return text


waves = st.one_of(
    st.integers(min_value=0, max_value=90).map(lambda d: (f"P{d}D", d * 1440)),
    st.integers(min_value=0, max_value=5000).map(lambda m: (f"PT{m}M", m)),
)


@st.composite
def campaigns(draw: st.DrawFn) -> Campaign:
    start, end = sorted(draw(st.lists(st.integers(0, 23 * 60 + 59), min_size=2, max_size=2, unique=True)))
    local = draw(st.integers(start + 1, end))
    hhmm = [f"{m // 60:02d}:{m % 60:02d}" for m in (start, local, end)]
    deadlines = []
    for i in range(draw(st.integers(1, 3))):
        ws = draw(st.lists(waves, min_size=1, max_size=5, unique_by=lambda w: w[1]))
        deadlines.append((f"d{i}", draw(deadline_texts()), ", ".join(label for label, _ in ws)))
    return make_campaign(
        *deadlines, local_time=hhmm[1], window=(hhmm[0], hhmm[2]), max_per_day=draw(st.integers(1, 3))
    )


@settings(max_examples=200, deadline=None)
@given(c=campaigns(), zone=st.sampled_from(ZONES))
def test_every_send_is_strictly_before_each_of_its_deadlines(c: Campaign, zone: str) -> None:
    p = plan(c, zone)
    for s in p.sends:
        for d in s.deadlines:
            assert s.send_at < p.deadline_instants[d], (s, p.deadline_instants[d])
            assert s.send_at < c.deadline(d).instant_in(ZoneInfo(zone))


@settings(max_examples=200, deadline=None)
@given(c=campaigns(), zone=st.sampled_from(ZONES))
def test_every_send_is_inside_the_local_window(c: Campaign, zone: str) -> None:
    start, end = c.delivery.window
    for s in plan(c, zone).sends:
        assert s.send_at.tzinfo == ZoneInfo(zone)
        assert start <= s.send_at.time() <= end, s


@settings(max_examples=200, deadline=None)
@given(c=campaigns(), zone=st.sampled_from(ZONES))
def test_at_most_max_per_day_sends_per_local_date(c: Campaign, zone: str) -> None:
    per_day = Counter(s.send_at.date() for s in plan(c, zone).sends)
    assert all(n <= c.delivery.max_per_day for n in per_day.values()), per_day


@settings(max_examples=200, deadline=None)
@given(c=campaigns(), zone=st.sampled_from(ZONES))
def test_every_wave_is_sent_once_or_explained_as_dropped(c: Campaign, zone: str) -> None:
    p = plan(c, zone)
    sent = Counter((i.deadline, i.wave) for s in p.sends for i in s.items)
    assert all(n == 1 for n in sent.values()), sent
    dropped = {(n.deadline, n.wave) for n in notes_of(p, NoteKind.DROPPED)}
    assert not set(sent) & dropped
    expected = {(d.id, w.label) for d in c.deadlines for w in d.waves}
    assert set(sent) | dropped == expected
    merged = {(n.deadline, n.wave) for n in notes_of(p, NoteKind.MERGED)}
    assert merged == {(i.deadline, i.wave) for s in p.sends if len(s.items) > 1 for i in s.items}


@settings(max_examples=200, deadline=None)
@given(c=campaigns(), zone=st.sampled_from(ZONES))
def test_sends_are_sorted_by_utc_instant(c: Campaign, zone: str) -> None:
    instants = [s.send_at_utc for s in plan(c, zone).sends]
    assert instants == sorted(instants)


@settings(max_examples=200, deadline=None)
@given(
    c=campaigns(),
    zone=st.sampled_from(ZONES),
    joined=st.datetimes(min_value=datetime(2019, 9, 1), max_value=datetime(2031, 1, 1), timezones=st.just(UTC)),
)
def test_late_joiner_gets_exactly_the_sends_at_or_after_joining(c: Campaign, zone: str, joined: datetime) -> None:
    zp = plan(c, zone)
    rp = plan_recipient(c, zp, ["email", "push"], not_before=joined)
    kept = [s for ch, s in rp.sends if ch == "email"]
    assert kept == [s for s in zp.sends if s.send_at >= joined]
    passed = {n.deadline for n in notes_of(rp.notes, NoteKind.DEADLINE_PASSED)}
    assert passed == {d for d, instant in zp.deadline_instants.items() if instant <= joined}
    missed = [s for s in zp.sends if s.send_at < joined and not set(s.deadlines) <= passed]
    assert len(notes_of(rp.notes, NoteKind.JOINED_AFTER)) == len(missed)


@settings(max_examples=100, deadline=None)
@given(
    c=campaigns(),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    now=st.datetimes(min_value=datetime(2019, 9, 1), max_value=datetime(2031, 1, 1), timezones=st.just(UTC)),
)
def test_the_outlook_names_exactly_the_waves_no_zone_plans_at_or_after_now(c: Campaign, zones: list[str],
                                                                          now: datetime) -> None:
    seen = outlook(c, [ZoneInfo(z) for z in zones], now)
    ahead = {(i.deadline, i.wave) for z in zones for s in plan(c, z).sends if s.send_at >= now for i in s.items}
    named = set()
    for p in seen.not_sent:
        d = c.deadlines[int(p.field.split("[")[1].split("]")[0])]
        named |= {(d.id, w.label) for w in d.waves} if p.field.endswith(".at") else {
            (d.id, next(w.label for w in d.waves if w.path == p.field))}
    assert named == {(d.id, w.label) for d in c.deadlines for w in d.waves} - ahead
    assert seen.waves_ahead == len(ahead) and seen.sends_nothing == (not ahead)


def _transitions(zone: str, year: int) -> list[date]:
    """Local dates on which ``zone`` changes its UTC offset in ``year``."""
    tz = ZoneInfo(zone)
    moment, days = datetime(year, 1, 1, tzinfo=UTC), []
    while moment.year == year:
        if (moment + timedelta(hours=1)).astimezone(tz).utcoffset() != moment.astimezone(tz).utcoffset():
            days.append((moment + timedelta(hours=1)).astimezone(tz).date())
        moment += timedelta(hours=1)
    return days


DST_ZONES = ("Australia/Sydney", "Australia/Lord_Howe", "America/Tijuana", "Europe/London", "America/Havana",
             "America/Santiago", "Pacific/Chatham", "Asia/Beirut")
DST_DAYS = sorted({(zone, day) for zone in DST_ZONES for day in _transitions(zone, 2024)})


@st.composite
def night_window_campaigns(draw: st.DrawFn) -> tuple[Campaign, str]:
    """Small-hours windows around DST changes, where skipped and repeated window edges live."""
    zone, day = draw(st.sampled_from(DST_DAYS))
    start = draw(st.integers(0, 170))
    end = draw(st.integers(start + 1, 240))
    local = draw(st.integers(start + 1, end))
    hhmm = [f"{m // 60:02d}:{m % 60:02d}" for m in (start, local, end)]
    deadline = datetime.combine(day, time()) + timedelta(minutes=draw(st.integers(0, 3 * 1440)))
    small_waves = st.one_of(
        st.integers(min_value=0, max_value=3).map(lambda d: (f"P{d}D", d * 1440)),
        st.integers(min_value=0, max_value=3000).map(lambda m: (f"PT{m}M", m)),
    )
    ws = draw(st.lists(small_waves, min_size=1, max_size=4, unique_by=lambda w: w[1]))
    c = make_campaign(
        ("a", deadline.isoformat(timespec="minutes"), ", ".join(label for label, _ in ws)),
        local_time=hhmm[1], window=(hhmm[0], hhmm[2]), max_per_day=draw(st.integers(1, 3)),
    )
    return c, zone


@settings(max_examples=300, deadline=None)
@given(case=night_window_campaigns())
def test_sends_stay_inside_a_night_window_on_dst_change_days(case: tuple[Campaign, str]) -> None:
    c, zone = case
    p = plan(c, zone)
    start, end = c.delivery.window
    for s in p.sends:
        assert start <= s.send_at.time() <= end, (s, timeline(p))
        assert all(s.send_at < p.deadline_instants[d] for d in s.deadlines)


def test_a_merged_send_lists_its_deadlines_in_the_file_order_not_by_time() -> None:
    # "first" is listed first; its PT9H wave lands at 15:00, after "second"'s 10:00 wave on the same day.
    c = make_campaign(("first", "2024-10-30T00:00", "PT9H"), ("second", "2024-11-28T00:00", "P30D"))
    send = only_send(plan(c, "UTC"))
    assert send.send_at.isoformat() == "2024-10-29T10:00:00+00:00"  # at the earliest of the two
    assert send.deadlines == ("first", "second")
    assert send.send_key == "first@PT9H+second@P30D"



# --- per-deadline channels -------------------------------------------------------------------------------


def test_a_deadline_with_its_own_channels_is_planned_only_on_them() -> None:
    # Same day, max_per_day 1: email merges both; push carries only the deadline announced on push.
    c = make_campaign(("mail-only", "2024-11-02T00:00", "P1D", "email"), ("both", "2024-11-03T00:00", "P2D"))
    zp = plan(c, "Asia/Jakarta")
    assert timeline(zp) == [("2024-11-01T10:00:00+07:00", "both@P2D"),
                            ("2024-11-01T10:00:00+07:00", "mail-only@P1D+both@P2D")]
    assert zp.send_channels == {"mail-only@P1D+both@P2D": ("email",), "both@P2D": ("push",)}
    rp = plan_recipient(c, zp, ["email", "push"])
    assert sorted((ch, s.send_key) for ch, s in rp.sends) == [("email", "mail-only@P1D+both@P2D"),
                                                               ("push", "both@P2D")]


def test_a_merged_send_goes_on_every_channel_some_carried_deadline_has() -> None:
    c = make_campaign(("a", "2024-11-02T00:00", "P1D", "email"), ("b", "2024-11-03T00:00", "P2D", "email, push"),
                      ("c", "2024-11-04T00:00", "P3D", "push"), max_per_day=1)
    zp = plan(c, "Asia/Jakarta")
    assert zp.send_channels == {"a@P1D+b@P2D": ("email",), "b@P2D+c@P3D": ("push",)}
    merged = [n for n in zp.notes if n.kind == NoteKind.MERGED]
    assert {n.channel for n in merged} == {"email", "push"}


def test_without_deadline_channels_every_send_goes_on_every_campaign_channel() -> None:
    c = make_campaign(("a", "2024-11-02T00:00", "P1D"), ("b", "2024-11-03T00:00", "P2D"))
    zp = plan(c, "Asia/Jakarta")
    assert not c.channels_vary
    assert zp.send_channels == {"a@P1D+b@P2D": ("email", "push")}
