"""The Results page's funnel: for each deadline, the share of the audience that has acted, day by day, as one
server-rendered SVG in the timeline chart's style (``chart``): its colours, font and escaping.

One panel per deadline: a step line of the share that has acted by the end of each UTC day, a dashed line at
each wave's first send with its name, and the deadline in red. Pure: data in, markup out; no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import markupsafe
from babel.dates import format_date

from notifier.results import Funnel
from notifier.web.dashboard.chart import (
    DEADLINE,
    FONT,
    GRID,
    INK,
    MUTED,
    SEND,
    STRIPE,
    Gettext,
    babel_locale,
    svg_text,
)

__all__ = ["funnel_svg"]

WIDTH = 1000
LEFT = 56  # the share axis's labels
RIGHT = 24
PANEL_H = 230
HEAD = 30  # the panel's title
AXIS = 26  # the day labels under a panel
GAP = 18
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = PANEL_H - HEAD - AXIS


def funnel_svg(funnels: Sequence[Funnel], start: date, *, locale: str = "en",
               gettext: Gettext = lambda s: s) -> markupsafe.Markup:
    """The funnels from ``start`` (the campaign's first send day) to each one's deadline or last action day."""
    if not funnels:
        return markupsafe.Markup("")
    height = len(funnels) * (PANEL_H + GAP)
    title = gettext("Share of the audience that has acted, day by day")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'font-family="{FONT}" font-size="13" aria-labelledby="funnel-title">',
             f'<title id="funnel-title">{svg_text(title)}</title>']
    for i, funnel in enumerate(funnels):
        parts.append(_panel(funnel, start, i * (PANEL_H + GAP), locale, gettext))
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def _panel(f: Funnel, start: date, top: float, locale: str, gettext: Gettext) -> str:
    loc = babel_locale(locale)
    deadline_day = f.deadline.date()
    first = min([start, *(d.day for d in f.days[:1])])
    last = max([deadline_day + timedelta(days=1), *(d.day for d in f.days[-1:])])
    span = max(1, (last - first).days)
    top_share = max(0.05, min(1.0, _ceil_tenth(f.acted / f.audience if f.audience else 0)))

    def x(day: date) -> float:
        return LEFT + PLOT_W * (day - first).days / span

    def y(share: float) -> float:
        return top + HEAD + PLOT_H * (1 - share / top_share)

    share = f.acted / f.audience if f.audience else 0.0
    title = gettext("%(deadline)s: %(share)s of %(audience)s have acted") % {
        "deadline": f.label, "share": f"{share:.1%}", "audience": f"{f.audience:,}"}
    out = [f'<g><rect x="{LEFT}" y="{top + HEAD}" width="{PLOT_W}" height="{PLOT_H}" fill="{STRIPE}"/>',
           f'<text x="0" y="{top + 18}" fill="{INK}" font-weight="600">{svg_text(title)}</text>']
    for k in range(6):  # the share axis: 0 to its top in fifths (its top a tenth: steps of 2%, 4%, ...)
        s = top_share * k / 5
        yy = y(s)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{GRID}"/>'
                   f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="{MUTED}">{s:.0%}</text>')
    step = max(1, span // 8)
    for n in range(0, span + 1, step):  # the day axis
        day = first + timedelta(days=n)
        out.append(f'<text x="{x(day):.1f}" y="{top + PANEL_H - 8}" text-anchor="middle" fill="{MUTED}">'
                   f'{svg_text(format_date(day, "d MMM", locale=loc))}</text>')
    for wave, at in f.waves:
        xx = x(at.astimezone(UTC).date())
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top + HEAD}" y2="{top + HEAD + PLOT_H}" stroke="{SEND}" '
                   f'stroke-dasharray="4 3"><title>{svg_text(wave)} {svg_text(_utc(at))}</title></line>'
                   f'<text x="{xx + 3:.1f}" y="{top + HEAD + 12}" fill="{SEND}" font-size="11">{svg_text(wave)}</text>')
    dx, name = x(deadline_day), svg_text(gettext("Deadline"))
    out.append(f'<line x1="{dx:.1f}" x2="{dx:.1f}" y1="{top + HEAD}" y2="{top + HEAD + PLOT_H}" stroke="{DEADLINE}" '
               f'stroke-width="2"><title>{name}</title></line>'
               f'<text x="{dx - 3:.1f}" y="{top + HEAD + PLOT_H - 6}" text-anchor="end" fill="{DEADLINE}" '
               f'font-size="11">{name}</text>')
    points = [(x(first), y(0.0))]
    for d in f.days:
        share_then = d.total / f.audience if f.audience else 0.0
        points += [(x(d.day), points[-1][1]), (x(d.day), y(share_then))]
    points.append((x(last), points[-1][1]))
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    out.append(f'<polyline points="{path}" fill="none" stroke="{INK}" stroke-width="2"/></g>')
    return "".join(out)


def _ceil_tenth(share: float) -> float:
    return min(1.0, (int(share * 10) + 1) / 10)


def _utc(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
