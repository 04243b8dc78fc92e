"""The dashboard's timeline chart (notifier.web.dashboard.chart), one test per rule it keeps."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest

from notifier.web.dashboard import chart
from notifier.web.dashboard.chart import DeadlineMark, TimelineSend, timeline_rows, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script> "q" & co'

# --- helpers -----------------------------------------------------------------------------------------


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


def send(zone: str, at: datetime, deadline: str = "playlist_transfer", wave: str = "P7D",
         done: bool = False) -> TimelineSend:
    return TimelineSend(zone, deadline, wave, at, done)


def parse(sends: list[TimelineSend], marks: list[DeadlineMark] | None = None, **kw: object) -> ET.Element:
    return ET.fromstring(str(timeline_svg(sends, marks or [], **kw)))


def circles(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}circle"))[2:]  # the first two are the legend's


def tooltip(element: ET.Element) -> str:
    title = element.find(f"{SVG}title")
    assert title is not None and title.text
    return title.text


def marker_with(root: ET.Element, words: str) -> ET.Element:
    found = [c for c in circles(root) if words in tooltip(c)]
    assert len(found) == 1, [tooltip(c) for c in circles(root)]
    return found[0]


def luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# --- placement ---------------------------------------------------------------------------------------


def test_markers_are_placed_in_utc_order_left_to_right() -> None:
    start = datetime(2024, 9, 1, 3, tzinfo=UTC)
    zones = ["Asia/Jakarta", "America/Sao_Paulo", "Australia/Sydney", "Europe/Berlin"]
    sends = [send(zones[i % 4], start + timedelta(hours=7 * ((i * 37) % 40)), wave=f"W{i}") for i in range(40)]
    root = parse(sends)
    by_wave = {tooltip(c).split("\n")[0].split(" · ")[-1]: float(c.get("cx", "")) for c in circles(root)}
    xs = [by_wave[s.wave] for s in sorted(sends, key=lambda s: s.at)]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)


def test_a_zone_west_of_another_shows_its_local_ten_am_send_later() -> None:
    root = parse([send("Asia/Jakarta", local("Asia/Jakarta", 2024, 9, 28, 10)),
                  send("America/Sao_Paulo", local("America/Sao_Paulo", 2024, 9, 28, 10))])
    jakarta, sao_paulo = marker_with(root, "Asia/Jakarta"), marker_with(root, "America/Sao_Paulo")
    assert float(sao_paulo.get("cx", "")) > float(jakarta.get("cx", ""))


def test_rows_run_east_to_west_then_by_name_and_panels_by_first_seen_deadline() -> None:
    at = datetime(2024, 9, 28, 3, tzinfo=UTC)
    sends = [send(z, at, deadline=d) for d in ("refunds_and_service", "playlist_transfer")
             for z in ("Asia/Singapore", "America/Mexico_City", "Asia/Jakarta", "Asia/Bangkok")]
    root = parse(sends)
    names = {s.zone for s in sends} | {s.deadline for s in sends}
    labels = [t.text for t in root.iter(f"{SVG}text") if t.text in names]
    order = ["Asia/Singapore", "Asia/Bangkok", "Asia/Jakarta", "America/Mexico_City"]  # the first to send on top
    assert labels == ["refunds_and_service", *order, "playlist_transfer", *order]


def test_a_deadline_mark_is_a_red_line_in_its_zone_row() -> None:
    deadline = local("Asia/Jakarta", 2024, 10, 15, 23, 59)
    root = parse([send("Asia/Jakarta", local("Asia/Jakarta", 2024, 10, 8, 10)),
                  send("Asia/Tokyo", local("Asia/Tokyo", 2024, 10, 8, 10))],
                 [DeadlineMark("playlist_transfer", "Asia/Jakarta", deadline)])
    line = next(ln for ln in root.iter(f"{SVG}line") if ln.find(f"{SVG}title") is not None)
    row_y = float(marker_with(root, "Asia/Jakarta").get("cy", ""))
    assert float(line.get("y1", "")) < row_y < float(line.get("y2", ""))
    assert tooltip(line) == ("deadline: playlist_transfer\nAsia/Jakarta\n2024-10-15 16:59 UTC\n"
                             "2024-10-15 23:59 WIB (+07:00)")


def test_sent_markers_are_filled_and_planned_ones_hollow() -> None:
    root = parse([send("Asia/Jakarta", local("Asia/Jakarta", 2024, 9, 1, 10), wave="P30D", done=True),
                  send("Asia/Jakarta", local("Asia/Jakarta", 2024, 9, 24, 10), wave="P7D")])
    assert marker_with(root, "P30D").get("fill") == chart.SEND
    assert marker_with(root, "P7D").get("fill") == "#fff"
    assert tooltip(marker_with(root, "P30D")).endswith("\nsent")
    assert tooltip(marker_with(root, "P7D")).endswith("\nplanned")


@pytest.mark.parametrize("span", [timedelta(0), timedelta(hours=5), timedelta(days=3), timedelta(days=45),
                                  timedelta(days=400), timedelta(days=3650)])
def test_the_tick_step_keeps_between_two_and_ten_ticks(span: timedelta) -> None:
    start = datetime(2024, 9, 1, 10, 30, tzinfo=UTC)
    root = parse([send("UTC", start), send("UTC", start + span)])
    ticks = [ln for ln in root.iter(f"{SVG}line") if ln.get("stroke") == chart.GRID]
    assert 2 <= len(ticks) <= 10


def test_day_ticks_are_dates_in_the_readers_language() -> None:
    root = parse([send("Asia/Jakarta", datetime(2024, 10, 1, 3, tzinfo=UTC)),
                  send("Asia/Jakarta", datetime(2024, 10, 20, 3, tzinfo=UTC))], locale="id")
    words = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any(w.endswith(" Okt") for w in words) and not any(w.endswith(" Oct") for w in words)


# --- words in the tooltips and the table -------------------------------------------------------------


def test_titles_carry_utc_and_local_time_across_sydney_dst_start() -> None:
    before = local("Australia/Sydney", 2024, 10, 5, 10)  # AEST; clocks go forward on 6 Oct
    after = datetime(2024, 10, 6, 23, tzinfo=UTC)  # 10:00 AEDT on 7 Oct, given in UTC
    root = parse([send("Australia/Sydney", before, wave="P10D"), send("Australia/Sydney", after, wave="P8D")])
    assert tooltip(marker_with(root, "P10D")).split("\n")[1:3] == ["2024-10-05 00:00 UTC",
                                                                    "2024-10-05 10:00 AEST (+10:00)"]
    assert tooltip(marker_with(root, "P8D")).split("\n")[1:3] == ["2024-10-06 23:00 UTC",
                                                                   "2024-10-07 10:00 AEDT (+11:00)"]


def test_a_zone_without_an_abbreviation_shows_only_its_offset() -> None:
    rows = timeline_rows([send("America/Sao_Paulo", local("America/Sao_Paulo", 2024, 9, 28, 10))])
    assert (rows[0].utc, rows[0].local) == ("2024-09-28 13:00 UTC", "2024-09-28 10:00 (-03:00)")


def test_table_rows_follow_deadline_order_then_utc_then_zone() -> None:
    at = datetime(2024, 9, 28, 3, tzinfo=UTC)
    sends = [send("Asia/Tokyo", at + timedelta(days=1), deadline="b"), send("Asia/Tokyo", at, deadline="a"),
             send("Asia/Jakarta", at, deadline="b"), send("Asia/Bangkok", at + timedelta(days=1), deadline="b"),
             send("Asia/Bangkok", at, deadline="a", done=True)]
    rows = timeline_rows(sends)
    assert [(r.deadline, r.zone) for r in rows] == [("b", "Asia/Jakarta"), ("b", "Asia/Bangkok"),
                                                    ("b", "Asia/Tokyo"), ("a", "Asia/Bangkok"), ("a", "Asia/Tokyo")]
    assert rows[3].state == "sent" and rows[4].state == "planned"


def test_gettext_is_applied_to_every_word_of_the_chart() -> None:
    sends = [send("Asia/Jakarta", local("Asia/Jakarta", 2024, 9, 1, 10), done=True),
             send("Asia/Jakarta", local("Asia/Jakarta", 2024, 9, 24, 10))]
    marks = [DeadlineMark("playlist_transfer", "Asia/Jakarta", local("Asia/Jakarta", 2024, 10, 1))]
    svg = str(timeline_svg(sends, marks, gettext=str.upper))
    for word in ("SENT", "PLANNED", "DEADLINE", "TIMELINE OF SENDS PER DEADLINE AND TIME ZONE"):
        assert word in svg
    texts = [t.text or "" for t in ET.fromstring(svg).iter()]
    assert not any(t in {"sent", "planned"} or t.endswith(("\nsent", "\nplanned")) or "deadline:" in t
                   for t in texts)
    assert "Asia/Jakarta" in svg  # data is not translated
    assert [r.state for r in timeline_rows(sends, gettext=str.upper)] == ["SENT", "PLANNED"]
    assert "NOTHING IS PLANNED YET." in timeline_svg([], [], gettext=str.upper)


def test_empty_input_says_nothing_is_planned_yet() -> None:
    assert str(timeline_svg([], [])) == "<p>Nothing is planned yet.</p>"
    assert timeline_rows([]) == []


# --- safety, accessibility, size ---------------------------------------------------------------------


def test_hostile_labels_are_escaped_and_the_chart_parses_as_xml() -> None:
    at = datetime(2024, 9, 28, 10, tzinfo=timezone(timedelta(hours=7)))
    sends = [TimelineSend(HOSTILE, HOSTILE, HOSTILE, at, True),
             TimelineSend("Asia/Jakarta", "d\x01\x1b", f"w{HOSTILE}", at + timedelta(days=1), False)]
    marks = [DeadlineMark(HOSTILE, HOSTILE, at + timedelta(days=2))]
    svg = str(timeline_svg(sends, marks, gettext=lambda s: s + HOSTILE))
    for raw in ("<script", "</script", '"q"', "& co"):
        assert raw not in svg
    root = ET.fromstring(svg)
    texts = [t.text or "" for t in root.iter()]
    assert any(t == HOSTILE for t in texts)  # the deadline's header, intact once parsed
    assert any(f"{HOSTILE} · {HOSTILE} · {HOSTILE}" in t for t in texts)
    assert "\n2024-09-28 10:00 (+07:00)\n" in tooltip(circles(root)[0])  # an unknown zone: the send's own offset


def test_the_svg_is_a_labelled_image_that_scales() -> None:
    root = parse([send("Asia/Jakarta", local("Asia/Jakarta", 2024, 9, 1, 10))])
    assert root.tag == f"{SVG}svg" and root.get("role") == "img" and root.get("width") == "100%"
    assert root.get("viewBox", "").startswith(f"0 0 {chart.WIDTH} ")
    title = root.find(f"{SVG}title")
    assert title is not None and title.get("id") == root.get("aria-labelledby")
    assert title.text == "Timeline of sends per deadline and time zone"
    sizes = [float(e.get("font-size", "")) for e in root.iter() if e.get("font-size")]
    assert sizes and min(sizes) >= 12


def test_colours_meet_wcag_aa_contrast_on_white() -> None:
    for colour in (chart.INK, chart.MUTED, chart.SEND, chart.DEADLINE):
        assert 1.05 / (luminance(colour) + 0.05) >= 4.5, colour
    assert 1.05 / (luminance(chart.STRIPE) + 0.05) < 1.1  # the row stripes stay a tint behind dark text


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        timeline_svg([send("Asia/Jakarta", datetime(2024, 9, 1, 10))], [])


def test_sixty_zones_by_fifty_sends_draw_three_thousand_markers_quickly() -> None:
    zones = _sixty_zones()
    start = datetime(2024, 9, 1, tzinfo=UTC)
    sends = [send(z, start + timedelta(hours=13 * i + k), wave=f"P{i}D", done=i < 20)
             for k, z in enumerate(zones) for i in range(50)]
    marks = [DeadlineMark("playlist_transfer", z, start + timedelta(days=30)) for z in zones]
    began = time.perf_counter()
    svg = timeline_svg(sends, marks)
    rows = timeline_rows(sends)
    took = time.perf_counter() - began
    assert len(circles(ET.fromstring(str(svg)))) == 3000 and len(rows) == 3000
    assert took < 2.0, took


def _sixty_zones() -> list[str]:
    """Sixty zones spread over the world, not sixty of Africa."""
    names = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))
    return names[::len(names) // 60][:60]
