"""The campaign page's timeline: when each zone's sends go out, per deadline, as one server-rendered SVG.

Drawn on the server so the page needs no script: one panel per deadline, one row per time zone, a UTC axis
shared by every panel; each mark's ``<title>`` carries its UTC and local time, and :func:`timeline_rows` gives
the same data for the table under the chart. Zone names and labels come from files users upload, so every
text is escaped on its way in. Pure: data in, markup out, linear in the number of sends; no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import islice

import markupsafe
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time

from notifier.zones import zone as iana_zone

__all__ = ["DeadlineMark", "TimelineRow", "TimelineSend", "babel_locale", "svg_text", "timeline_rows", "timeline_svg"]

Gettext = Callable[[str], str]

# Geometry in viewBox units: drawn 1000 wide and scaled to its box, so 12 units stay 12px at 1000px.
WIDTH = 1000
LABEL_W = 300  # the zone column, left of the plot
RIGHT = 28  # room for the last tick's label
PLOT_W = WIDTH - LABEL_W - RIGHT
TOP = 62  # legend and the upper tick labels
PANEL_HEAD = 30
ROW_H = 22
PANEL_GAP = 10
BOTTOM = 34  # the lower tick labels
MAX_TICKS = 10
NAME_CHARS = 30  # longer zone names are cut, with the full name in a tooltip

# On white: text and marks ≥ 4.5:1 (WCAG AA); grid and stripes are decoration.
INK = "#1a1a1a"
MUTED = "#4d4d4d"
SEND = "#1d4f91"
DEADLINE = "#b3261e"
GRID = "#d0d4da"
STRIPE = "#f3f5f8"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', sans-serif"

# Characters XML 1.0 refuses even when escaped; an uploaded label with one must not break the page.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class TimelineSend:
    """One send as the chart draws it: a send serving two deadlines comes once under each."""

    zone: str  # IANA name, e.g. "Asia/Jakarta"
    deadline: str
    wave: str  # e.g. "P30D"
    at: datetime  # aware, any zone
    done: bool  # gone out (or going out) rather than still planned


@dataclass(frozen=True)
class DeadlineMark:
    """A deadline's instant in one zone, drawn as a red tick in that zone's row."""

    deadline: str
    zone: str
    at: datetime  # aware


@dataclass(frozen=True)
class TimelineRow:
    """One send as a row of the accessible table under the chart, its times already written out."""

    zone: str
    deadline: str
    wave: str
    utc: str  # "2024-09-28 03:00 UTC"
    local: str  # "2024-09-28 10:00 WIB (+07:00)"
    state: str  # gettext("sent") or gettext("planned")


def timeline_rows(sends: Sequence[TimelineSend], *, gettext: Gettext = lambda s: s) -> list[TimelineRow]:
    """The chart's sends as table rows, in the order a reader scans them: deadline, then time, then zone."""
    order = {d: i for i, d in enumerate(dict.fromkeys(s.deadline for s in sends))}
    ordered = sorted(sends, key=lambda s: (order[s.deadline], _utc(s.at), s.zone))
    words = {True: gettext("sent"), False: gettext("planned")}
    return [TimelineRow(s.zone, s.deadline, s.wave, _utc_text(s.at), _local_text(s.at, s.zone), words[s.done])
            for s in ordered]


def timeline_svg(sends: Sequence[TimelineSend], marks: Sequence[DeadlineMark], *, locale: str = "en",
                 gettext: Gettext = lambda s: s) -> markupsafe.Markup:
    """The whole chart as one ``<svg>`` (or a short paragraph when there is nothing to draw)."""
    if not sends and not marks:
        nothing = gettext("Nothing is planned yet.")
        return markupsafe.Markup(f"<p>{svg_text(nothing)}</p>")
    panels = _panels(sends, marks)
    axis = _Axis.spanning([s.at for s in sends] + [m.at for m in marks])
    height = panels[-1].bottom + BOTTOM
    body = "".join([
        _legend(gettext),
        *(_panel_frame(p) for p in panels),
        _grid(axis, panels[0].top, panels[-1].bottom, babel_locale(locale), gettext),
        _marks(axis, panels, sends, marks, gettext),
    ])
    title_id = "timeline-" + hashlib.blake2s(body.encode(), digest_size=5).hexdigest()
    title = gettext("Timeline of sends per deadline and time zone")
    return markupsafe.Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{title_id}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" width="100%" font-family="{FONT}" font-size="13" fill="{INK}">'
        f'<title id="{title_id}">{svg_text(title)}</title>'
        f'<rect width="{WIDTH}" height="{height:.0f}" fill="#fff"/>{body}</svg>')


# --- layout ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Panel:
    """One deadline's block: where it starts and its zone rows, top to bottom."""

    deadline: str
    top: float
    zones: tuple[str, ...]
    offsets: tuple[timedelta, ...]  # each row's UTC offset at the chart's first send, shown by its name

    @property
    def bottom(self) -> float:
        return self.top + PANEL_HEAD + len(self.zones) * ROW_H

    def row_y(self, index: int) -> float:
        return self.top + PANEL_HEAD + index * ROW_H + ROW_H / 2


def _panels(sends: Sequence[TimelineSend], marks: Sequence[DeadlineMark]) -> list[_Panel]:
    """Deadlines in first-seen order (one that only marks name comes last); zones east to west, the first to send
    on top, then by name."""
    members: dict[str, dict[str, None]] = {}
    for item in (*sends, *marks):
        members.setdefault(item.deadline, {})[item.zone] = None
    offsets = _zone_offsets([*sends, *marks])
    panels: list[_Panel] = []
    top = float(TOP)
    for deadline, zones in members.items():
        rows = tuple(sorted(zones, key=lambda z: (-offsets[z], z)))
        panels.append(_Panel(deadline, top, rows, tuple(offsets[z] for z in rows)))
        top = panels[-1].bottom + PANEL_GAP
    return panels


def _zone_offsets(items: Sequence[TimelineSend | DeadlineMark]) -> dict[str, timedelta]:
    """Each zone's UTC offset at the first send (at the first mark if there are no sends): one instant for all
    rows, so a zone's place never depends on its own DST."""
    sends = [i for i in items if isinstance(i, TimelineSend)] or items
    ref = min(_utc(i.at) for i in sends)
    found: dict[str, timedelta] = {}
    for item in items:
        if item.zone not in found:
            tz = _zone(item.zone)
            found[item.zone] = (ref.astimezone(tz) if tz else item.at).utcoffset() or timedelta(0)
    return found


@dataclass(frozen=True)
class _Axis:
    """UTC instants to x, from a little before the earliest to a little after the latest."""

    start: datetime
    end: datetime

    @classmethod
    def spanning(cls, instants: Sequence[datetime]) -> _Axis:
        first, last = min(map(_utc, instants)), max(map(_utc, instants))
        pad = max((last - first) * 0.03, timedelta(hours=1))
        return cls(first - pad, last + pad)

    def x(self, at: datetime) -> float:
        share = (_utc(at) - self.start) / (self.end - self.start)
        return LABEL_W + share * PLOT_W


# --- drawing -----------------------------------------------------------------------------------------


def _legend(gettext: Gettext) -> str:
    """The three kinds of mark, in one line above the chart."""
    sent, planned, deadline = gettext("sent"), gettext("planned"), gettext("deadline")
    x = 8.0
    parts = [f'<circle cx="{x + 6:.1f}" cy="20" r="5" fill="{SEND}"/>'
             f'<text x="{x + 16:.1f}" y="24.5">{svg_text(sent)}</text>']
    x += 30 + _text_width(sent)
    parts.append(f'<circle cx="{x + 6:.1f}" cy="20" r="4.5" fill="#fff" stroke="{SEND}" stroke-width="2"/>'
                 f'<text x="{x + 16:.1f}" y="24.5">{svg_text(planned)}</text>')
    x += 30 + _text_width(planned)
    parts.append(f'<line x1="{x + 6:.1f}" x2="{x + 6:.1f}" y1="11" y2="29" stroke="{DEADLINE}" stroke-width="3"/>'
                 f'<text x="{x + 16:.1f}" y="24.5">{svg_text(deadline)}</text>')
    return f'<g aria-hidden="true">{"".join(parts)}</g>'


def _panel_frame(panel: _Panel) -> str:
    """A panel's header and its rows' stripes and labels: everything but the marks."""
    parts = [f'<line x1="0" x2="{WIDTH}" y1="{panel.top:.1f}" y2="{panel.top:.1f}" stroke="{MUTED}"/>'
             f'<text x="8" y="{panel.top + 20:.1f}" font-size="14" font-weight="700">{svg_text(panel.deadline)}</text>']
    for i, (zone, offset) in enumerate(zip(panel.zones, panel.offsets, strict=True)):
        y = panel.row_y(i)
        if i % 2 == 0:
            parts.append(f'<rect x="0" y="{y - ROW_H / 2:.1f}" width="{WIDTH}" height="{ROW_H}" fill="{STRIPE}"/>')
        short = zone if len(zone) <= NAME_CHARS else zone[:NAME_CHARS - 1] + "…"
        tip = f"<title>{svg_text(zone)}</title>" if short != zone else ""
        parts.append(f'<text x="8" y="{y + 4.5:.1f}">{tip}{svg_text(short)}</text>'
                     f'<text x="{LABEL_W - 10}" y="{y + 4.5:.1f}" text-anchor="end" font-size="12" '
                     f'fill="{MUTED}">UTC{_offset_text(offset)}</text>')
    return "".join(parts)


def _grid(axis: _Axis, top: float, bottom: float, locale: Locale, gettext: Gettext) -> str:
    """The shared UTC axis: a line per tick through every panel, labelled above and below."""
    ticks, kind = _ticks(axis.start, axis.end)
    utc = svg_text(gettext("UTC"))
    parts = [f'<g font-size="12" fill="{MUTED}">',
             f'<text x="8" y="{top - 10:.1f}" font-weight="700">{utc}</text>',
             f'<text x="8" y="{bottom + 20:.1f}" font-weight="700">{utc}</text>']
    for tick in ticks:
        x = axis.x(tick)
        label = svg_text(_tick_label(tick, kind, locale))
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" stroke="{GRID}"/>'
                     f'<text x="{x:.1f}" y="{top - 10:.1f}" text-anchor="middle">{label}</text>'
                     f'<text x="{x:.1f}" y="{bottom + 20:.1f}" text-anchor="middle">{label}</text>')
    parts.append("</g>")
    return "".join(parts)


def _marks(axis: _Axis, panels: Sequence[_Panel], sends: Sequence[TimelineSend], marks: Sequence[DeadlineMark],
           gettext: Gettext) -> str:
    """Deadline ticks first, then sends over them, each with its tooltip; one dict look-up per mark."""
    row_y = {(p.deadline, z): p.row_y(i) for p in panels for i, z in enumerate(p.zones)}
    word = gettext("deadline")
    parts = [f'<g stroke="{DEADLINE}" stroke-width="3">']
    for m in marks:
        x, y = axis.x(m.at), row_y[m.deadline, m.zone]
        tip = f"{word}: {m.deadline}\n{m.zone}\n{_utc_text(m.at)}\n{_local_text(m.at, m.zone)}"
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 9:.1f}" y2="{y + 9:.1f}"><title>{svg_text(tip)}</title>'
                     "</line>")
    parts.append(f'</g><g stroke="{SEND}" stroke-width="2">')
    words = {True: gettext("sent"), False: gettext("planned")}
    paint = {True: f'r="5" fill="{SEND}"', False: 'r="4.5" fill="#fff"'}
    for s in sends:
        x, y = axis.x(s.at), row_y[s.deadline, s.zone]
        tip = f"{s.zone} · {s.deadline} · {s.wave}\n{_utc_text(s.at)}\n{_local_text(s.at, s.zone)}\n{words[s.done]}"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" {paint[s.done]}><title>{svg_text(tip)}</title></circle>')
    parts.append("</g>")
    return "".join(parts)


# --- ticks -------------------------------------------------------------------------------------------

_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # weeks start on a Monday; hour and day steps divide a day evenly
_STEPS: tuple[tuple[str, timedelta | int], ...] = (
    *(("time", timedelta(hours=h)) for h in (1, 3, 6, 12)),
    *(("day", timedelta(days=d)) for d in (1, 2, 7, 14)),
    *(("month", m) for m in (1, 2, 3, 6)),
    *(("year", m) for m in (12, 24, 60, 120, 600, 1200)),
)


def _ticks(start: datetime, end: datetime) -> tuple[list[datetime], str]:
    """Round UTC instants between start and end: the finest step (hours, days, weeks, months, years) that
    gives at most MAX_TICKS of them."""
    for kind, step in _STEPS:
        found = list(islice(_steps(start, end, step), MAX_TICKS + 1))
        if len(found) <= MAX_TICKS:
            return found, kind
    return [], "year"  # a span beyond a thousand years: no ticks rather than a wall of them


def _steps(start: datetime, end: datetime, step: timedelta | int) -> Iterator[datetime]:
    """Every multiple of step (a duration counted from a Monday, or a number of months) from start to end."""
    if isinstance(step, timedelta):
        t = _MONDAY - step * ((_MONDAY - start) // step)
        while t <= end:
            yield t
            t += step
        return
    month = start.year * 12 + start.month - 1
    month += 0 if start == _month_start(month) else 1
    month += -month % step
    while (t := _month_start(month)) <= end:
        yield t
        month += step


def _month_start(month: int) -> datetime:
    """Midnight UTC of the first day of a month counted from year 0 (year * 12 + month - 1)."""
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


def _tick_label(tick: datetime, kind: str, locale: Locale) -> str:
    """A tick's words in the reader's language: an hour, a day ("28 Sep"), a month or a year."""
    if kind == "time" and (tick.hour or tick.minute):
        return format_time(tick, "HH:mm", tzinfo=UTC, locale=locale)
    pattern = {"time": "d MMM", "day": "d MMM", "month": "MMM y", "year": "y"}[kind]
    return format_date(tick.date(), pattern, locale=locale)


# --- words and times ---------------------------------------------------------------------------------


def svg_text(value: str) -> str:
    """Text safe inside an SVG element or attribute: XML-escaped, with characters XML refuses replaced."""
    return str(markupsafe.escape(_NOT_XML.sub("\ufffd", value)))


def _text_width(value: str) -> float:
    """About how wide 13px text runs, to space the legend whatever the language."""
    return len(value) * 7.5


def _utc(at: datetime) -> datetime:
    """The instant in UTC; a naive datetime would silently mean the server's zone, so it is refused."""
    if at.utcoffset() is None:
        raise ValueError(f"the timeline needs aware datetimes, got {at!r}")
    return at.astimezone(UTC)


def _utc_text(at: datetime) -> str:
    return f"{_utc(at):%Y-%m-%d %H:%M} UTC"


def _local_text(at: datetime, zone: str) -> str:
    """The wall clock in the zone, with its abbreviation when it has one ("AEDT", not "+08") and its offset."""
    tz = _zone(zone)
    local = _utc(at).astimezone(tz) if tz else at
    abbreviation = local.strftime("%Z")
    offset = _offset_text(local.utcoffset() or timedelta(0))
    if not abbreviation or abbreviation[0] in "+-" or (abbreviation.startswith("UTC") and len(abbreviation) > 3):
        return f"{local:%Y-%m-%d %H:%M} ({offset})"
    return f"{local:%Y-%m-%d %H:%M} {abbreviation} ({offset})"


def _offset_text(offset: timedelta) -> str:
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@lru_cache(maxsize=1024)
def _zone(name: str) -> tzinfo | None:
    """The named zone from the tzdata package, as everywhere in notifier (never the host's copy), or None for a
    name it does not know (the send's own offset is shown instead)."""
    try:
        return iana_zone(name)
    except ValueError:  # notifier.zones names the reason; the chart only needs to know there is none
        return None


@lru_cache(maxsize=64)
def babel_locale(locale: str) -> Locale:
    """Babel's locale for a UI locale like "pt-BR", English when Babel does not know it."""
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return Locale("en")
