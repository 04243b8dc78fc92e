"""The Results page: did the campaign work (``notifier.results``), and its CSV exports.

``/campaigns/{id}/results`` (the page: funnel per deadline, totals, the table per send × locale × channel sorted by
any column), ``/campaigns/{id}/results.csv`` (that table), ``/campaigns/{id}/not-acted/{deadline}.csv`` (the ids
of the audience who have not acted, for a CRM). The JSON API answers the same at ``/api/v1/campaigns/{id}/results``
(``studio_api``). Every read is of counts, never of events: bench/results_page.py times it at 1,000,000.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from notifier.errors import CampaignStateError
from notifier.results import ATTRIBUTION_WINDOW, COLUMNS, METRICS, Results, csv_lines, not_acted, results
from notifier.team.roles import Can, needs
from notifier.web.dashboard import views
from notifier.web.dashboard.access import DashboardRoute, identity, ui_locale
from notifier.web.dashboard.funnel import funnel_svg
from notifier.web.dashboard.pages import HEADERS, gettext_of, render
from notifier.web.requests import web_of

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)


TEXT_COLUMNS = ("send", "locale", "channel")


def _descending(column: str, direction: str | None) -> bool:
    """A count sorts the most first unless asked ``asc``; a text column A to Z unless asked ``desc``."""
    return direction == "desc" if column in TEXT_COLUMNS else direction != "asc"


def sorted_rows(res: Results, sort: str | None, direction: str | None) -> list[Any]:
    """The table's rows in send order, or by ``sort`` (a column) in ``direction`` (asc or desc)."""
    rows = list(res.rows)
    if sort in COLUMNS:
        rows.sort(key=lambda r: getattr(r, sort) if sort in TEXT_COLUMNS else r[sort],
                  reverse=_descending(sort, direction))
    return rows


def sort_heads(sort: str | None, direction: str | None) -> list[tuple[str, str, str | None]]:
    """Each column, the direction its header's link sorts by, and its aria-sort when it is the sorted one:
    a second click on the sorted column turns it around."""
    heads = []
    for c in COLUMNS:
        first = "asc" if c in TEXT_COLUMNS else "desc"
        if c != sort:
            heads.append((c, first, None))
            continue
        down = _descending(c, direction)
        heads.append((c, "asc" if down else "desc", "descending" if down else "ascending"))
    return heads


def _read(request: Request, campaign_id: str) -> tuple[Any, Results]:
    web = web_of(request)
    with web.sessions() as s:
        camp, row = views.load(web.settings, s, campaign_id)
        if row is None:
            raise CampaignStateError(f"campaign {campaign_id!r} is not scheduled: it has no results yet")
        return camp, results(s, campaign_id)


@router.get("/campaigns/{campaign_id}/results")
@needs(Can.READ)
def results_page(request: Request, campaign_id: str, sort: str | None = None, dir: str | None = None) -> HTMLResponse:
    identity(request)
    camp, res = _read(request, campaign_id)
    starts = [at for f in res.funnels for _w, at in f.waves]
    chart = funnel_svg(res.funnels, min(starts).date() if starts else camp.deadlines[0].at.date(),
                       locale=ui_locale(request), gettext=gettext_of(request))
    return render(request, "results.html", campaign=camp, res=res, chart=chart,
                  rows=sorted_rows(res, sort, dir), heads=sort_heads(sort, dir), metrics=METRICS,
                  window_days=ATTRIBUTION_WINDOW.days)


def csv_response(lines: Iterator[list[Any]], name: str) -> StreamingResponse:
    """A CSV download, written as it is read (an audience of a million ids never sits in memory)."""
    def chunks() -> Iterator[str]:
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        for i, line in enumerate(lines, 1):
            out.writerow(line)
            if i % 1000 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-120:]  # a header is latin-1, and ids come from the URL
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{safe}"'}
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=headers)


def not_acted_lines(sessions: Any, campaign_id: str, deadline_id: str) -> Iterator[list[Any]]:
    """The header, then one id a line; the session lives as long as the download."""
    with sessions() as s:
        ids = not_acted(s, campaign_id, deadline_id)  # checks the deadline before the first line goes out
        yield ["recipient_id"]
        for rid in ids:
            yield [rid]


def not_acted_response(sessions: Any, campaign_id: str, deadline_id: str) -> StreamingResponse:
    lines = not_acted_lines(sessions, campaign_id, deadline_id)
    first = next(lines)  # raises now (a 404 or 422), not in the middle of a 200
    return csv_response(_chain(first, lines), f"{campaign_id}-{deadline_id}-not-acted.csv")


def _chain(first: list[Any], rest: Iterator[list[Any]]) -> Iterator[list[Any]]:
    yield first
    yield from rest


@router.get("/campaigns/{campaign_id}/results.csv")
@needs(Can.READ)
def results_csv(request: Request, campaign_id: str) -> StreamingResponse:
    identity(request)
    _camp, res = _read(request, campaign_id)
    return csv_response(csv_lines(res), f"{campaign_id}-results.csv")


@router.get("/campaigns/{campaign_id}/not-acted/{deadline_id}.csv")
@needs(Can.PERSONAL)
def not_acted_csv(request: Request, campaign_id: str, deadline_id: str) -> StreamingResponse:
    identity(request)
    _read(request, campaign_id)
    return not_acted_response(web_of(request).sessions, campaign_id, deadline_id)
