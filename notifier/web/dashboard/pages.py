"""The dashboard's pages (every ``GET``): campaigns, one campaign with its timeline and live counts, the gallery
of every message, one recipient's messages. Server-rendered with Jinja2 in the reader's language; the only
script (``dash.js``) refreshes the counts.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from notifier.errors import CampaignError, CampaignStateError, NotFound, UserError
from notifier.i18n import load_translations
from notifier.ledger.db import transaction
from notifier.reports import campaign_phase, cap_notes, get_member, ledger_members, recipient_messages
from notifier.review import render_sample, samples
from notifier.team import approvals, people
from notifier.team.roles import Can, needs
from notifier.timeline import PlanView
from notifier.web.dashboard import views
from notifier.web.dashboard.access import (
    LANG,
    LOCALES,
    DashboardRoute,
    NotLoggedIn,
    dashboard_of,
    identity,
    safe_next,
    ui_locale,
)
from notifier.web.dashboard.chart import timeline_rows, timeline_svg
from notifier.web.locales import DASHBOARD as DOMAIN
from notifier.web.locales import HERE as LOCALES_DIR
from notifier.web.requests import page_csp, web_of
from notifier.words import Words

HERE = Path(__file__).resolve().parent
LOGIN_NONCE = "notifier_login"  # the login form's own CSRF token, in a cookie for /login only
STATIC = {"dash.js": "text/javascript", "dash.css": "text/css"}
CSP = page_csp(script_src="'self'", style_src="'self' 'unsafe-inline'", img_src="'self' data: https:",
               connect_src="'self'", frame_src="'self'")
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}
# nosniff, X-Frame-Options and HSTS: the app's SecurityHeaders, on every answer
router = APIRouter(include_in_schema=False, route_class=DashboardRoute)


@lru_cache(maxsize=len(LOCALES))
def translations(lang: str) -> Any:
    return load_translations(LOCALES_DIR, lang, DOMAIN)


def breakable(send_key: str) -> Markup:
    """A send key that may wrap between its waves and before each "@", never inside a deadline's id."""
    return escape(send_key).replace("+", Markup("+<wbr>")).replace("@", Markup("<wbr>@"))


@lru_cache(maxsize=len(LOCALES))
def env(lang: str) -> Environment:
    e = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                    extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    e.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    e.globals["vocabulary"] = Words(translations(lang))  # the ledger's codes in words, as the CLI says them
    babel = lang.replace("-", "_")
    e.filters["breakable"] = breakable
    e.filters["num"] = lambda n: format_decimal(n or 0, locale=babel)
    e.filters["utc"] = lambda d: f"{d:%Y-%m-%d %H:%M} UTC" if isinstance(d, datetime) else "–"
    e.filters["local"] = lambda d: f"{d:%Y-%m-%d %H:%M %Z (%z)}" if isinstance(d, datetime) else "–"
    e.filters["when"] = lambda d: (format_datetime(d, "medium", tzinfo=d.tzinfo, locale=babel)
                                   if isinstance(d, datetime) else "–")
    return e


def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """A page in the reader's language, with the session's CSRF token for its forms."""
    lang = ui_locale(request)
    try:
        ident = identity(request)
    except NotLoggedIn:
        ident = None
    clock = web_of(request).now() if dashboard_of(request).simulated_clock else None  # the demo's date
    html = env(lang).get_template(name).render(lang=lang, langs=LOCALES, user=ident.user if ident else None,
                                               my_role=ident.role if ident else None,
                                               my_email=ident.email if ident else None,
                                               csrf=ident.csrf if ident else "", path=request.url.path,
                                               query=request.query_params, clock=clock,
                                               **{"done": request.query_params.get("done"), **ctx})
    response = HTMLResponse(html, status_code=status, headers=HEADERS)
    if request.query_params.get("lang") in LOCALES:
        response.set_cookie(LANG, request.query_params["lang"], max_age=365 * 86400, samesite="lax",
                            secure=dashboard_of(request).secure)
    return response


def gettext_of(request: Request) -> Any:
    """The page language's gettext for text built outside the templates (the chart)."""
    return translations(ui_locale(request)).gettext


@router.get("/static/dashboard/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                        headers={"Cache-Control": "max-age=300"})


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/campaigns", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "/campaigns") -> Response:
    try:
        identity(request)
    except NotLoggedIn:
        return login_form(request, next)
    return RedirectResponse(safe_next(next), status_code=303)  # logged in already


def login_form(request: Request, target: str | None, status: int = 200, error: str | None = None) -> HTMLResponse:
    """The login page with a fresh nonce, the login form's CSRF token (kept in a cookie of its own)."""
    dash = dashboard_of(request)
    if not dash.enabled():
        return render(request, "login.html", 503, off=True, nonce="", next=safe_next(target), error=None)
    with dash.ledger() as s:
        team = people.has_team(s)
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", status, off=False, nonce=nonce, next=safe_next(target), error=error,
                      team=team or dash.sso, sso=dash.sso)
    response.set_cookie(LOGIN_NONCE, nonce, max_age=1800, path="/login", secure=dash.secure, httponly=True,
                        samesite="strict")
    return response



@router.get("/campaigns")
@needs(Can.READ)
def campaigns(request: Request) -> HTMLResponse:
    identity(request)
    web = web_of(request)
    with web.sessions() as s:
        cards = views.campaign_cards(s, web.settings, dashboard_of(request).to_come)
    return render(request, "campaigns.html", cards=cards)


@router.get("/campaigns/new")
@needs(Can.EDIT)
def new_campaign(request: Request) -> HTMLResponse:
    identity(request)
    return render(request, "edit.html", campaign_id=None, text="", annotated=None)


@router.get("/campaigns/{campaign_id}")
@needs(Can.READ)
def campaign(request: Request, campaign_id: str) -> HTMLResponse:
    identity(request)
    return campaign_page(request, campaign_id)


def campaign_page(request: Request, campaign_id: str, status: int = 200, **extra: Any) -> HTMLResponse:
    web = web_of(request)
    with web.sessions() as s:
        camp, row = views.load(web.settings, s, campaign_id)
        sends, marks = views.timeline(s, camp, row is not None)
        progress = views.progress(s, campaign_id, row is not None, web.settings, dashboard_of(request).to_come)
        changed = views.file_changed(web.settings, row)
        four_eyes = _four_eyes(s, web.settings, campaign_id, with_diff=False)
    return render(request, "campaign.html", status, campaign=camp, row=row, progress=progress, approval=four_eyes,
                  chart=_chart(request, sends, marks), rows=timeline_rows(sends, gettext=gettext_of(request)),
                  changed=changed, campaign_id=campaign_id, **extra)


def _chart(request: Request, sends: Any, marks: Any) -> Any:
    return timeline_svg(sends, marks, locale=ui_locale(request), gettext=gettext_of(request))


@router.get("/campaigns/{campaign_id}/progress")
@needs(Can.READ)
def progress_fragment(request: Request, campaign_id: str) -> HTMLResponse:
    """The live part of the campaign page, which dash.js fetches every few seconds: the counts, and the actions
    and the date that follow them (a finished campaign loses Pause and Cancel, a blocked one gains Schedule)."""
    identity(request)
    web = web_of(request)
    views.campaign_path(web.settings, campaign_id)  # an id that cannot be a campaign's: 404
    with web.sessions() as s:
        row = s.get(views.CampaignRow, campaign_id)
        if row is None:
            raise CampaignStateError(f"campaign {campaign_id!r} is not scheduled")
        progress = views.progress(s, campaign_id, True, web.settings, dashboard_of(request).to_come)
        changed = views.file_changed(web.settings, row)
        four_eyes = _four_eyes(s, web.settings, campaign_id, with_diff=False)
    return render(request, "_progress.html", progress=progress, campaign_id=campaign_id, row=row, changed=changed,
                  live=True, approval=four_eyes)


def _four_eyes(s: Any, settings: Any, campaign_id: str, *, with_diff: bool = True) -> approvals.Status | None:
    """The campaign's approval when four eyes applies to it, else None."""
    if not people.has_team(s):
        return None
    found = approvals.status(s, settings, campaign_id, with_diff=with_diff)
    return found if found.required else None


@router.get("/campaigns/{campaign_id}/timeline")
@needs(Can.READ)
def timeline_fragment(request: Request, campaign_id: str) -> HTMLResponse:
    """The chart alone, which dash.js fetches now and then while the campaign sends."""
    identity(request)
    web = web_of(request)
    with web.sessions() as s:
        camp, row = views.load(web.settings, s, campaign_id)
        sends, marks = views.timeline(s, camp, row is not None)
        phase = campaign_phase(s, campaign_id) if row is not None else "draft"  # no counting
    return render(request, "_timeline.html", chart=_chart(request, sends, marks), phase=phase)


@router.get("/campaigns/{campaign_id}/edit")
@needs(Can.EDIT)
def edit_campaign(request: Request, campaign_id: str) -> HTMLResponse:
    identity(request)
    web = web_of(request)
    with web.sessions() as s:
        text = views.file_text(web.settings, s, campaign_id)
    return render(request, "edit.html", campaign_id=campaign_id, text=text, annotated=None)


@router.get("/campaigns/{campaign_id}/cancel")
@needs(Can.SEND)
def confirm_cancel(request: Request, campaign_id: str) -> HTMLResponse:
    identity(request)
    web = web_of(request)
    with web.sessions() as s:
        camp, row = views.load(web.settings, s, campaign_id)
    if row is None:
        raise CampaignStateError(f"campaign {campaign_id!r} is not scheduled: there is nothing to cancel")
    return render(request, "cancel.html", campaign=camp, row=row)


@router.get("/campaigns/{campaign_id}/gallery")
@needs(Can.READ)
def gallery(request: Request, campaign_id: str) -> HTMLResponse:
    """Every locale × send × channel with a sample recipient, as the recipient would see it."""
    identity(request)
    dash, web = dashboard_of(request), web_of(request)
    with web.sessions() as s:
        camp, _row = views.load(web.settings, s, campaign_id)
    renderer = dash.renderer(web.settings)
    try:
        rendered = [render_sample(renderer, camp, sample) for sample in samples(camp)]
    except CampaignError as exc:
        return render(request, "gallery.html", 422, campaign=camp, rendered=[], problems=exc.problems, app="")
    except UserError as exc:  # a template or catalog that cannot be read (RenderError, CatalogError)
        return render(request, "gallery.html", 422, campaign=camp, rendered=[], problems=[str(exc)], app="")
    return render(request, "gallery.html", campaign=camp, rendered=rendered, problems=[],
                  app=renderer.sender_name(camp))


@router.get("/campaigns/{campaign_id}/recipients")
@needs(Can.PERSONAL)
def find_recipient(request: Request, campaign_id: str, rid: str = "") -> RedirectResponse:
    from urllib.parse import quote

    identity(request)
    rid = rid.strip()[:200]
    if not rid:  # nothing asked: back to the campaign (an empty id would be a path with a trailing slash)
        return RedirectResponse(f"/campaigns/{quote(campaign_id)}", status_code=303)
    return RedirectResponse(f"/campaigns/{quote(campaign_id)}/recipients/{quote(rid, safe='')}", status_code=303)


@router.get("/campaigns/{campaign_id}/recipients/{recipient_id}")
@needs(Can.PERSONAL)
def recipient(request: Request, campaign_id: str, recipient_id: str) -> HTMLResponse:
    """What one person got and will get, each skip with its reason, in their own time zone."""
    identity(request)
    web = web_of(request)
    if "\x00" in recipient_id or len(recipient_id) > 200:
        raise NotFound(f"no recipient {recipient_id[:80]!r}")
    with transaction(web.sessions) as s:
        camp, row = views.load(web.settings, s, campaign_id)
        member = get_member(s, recipient_id)
        messages = recipient_messages(s, member, campaign_id) if row is not None else []
        # Why a wave is missing: for a scheduled campaign, as it was planned (from its scheduling on), not as of now,
        # when every wave already sent would read "before now; not sent".
        view = PlanView(camp, recipient_id, row.scheduled_at if row is not None else web.now())
        planned = list(view.entries(ledger_members(s, recipient_id)))
        capped = cap_notes(s, member, dict(web.settings.daily_cap)) if row is not None else []
    return render(request, "recipient.html", campaign=camp, row=row, member=member, messages=messages,
                  notes=[*view.notes, *capped], planned=planned if row is None else [],
                  email=_masked(member.email))


def _masked(email: str | None) -> str:
    """Enough of the address to tell two people apart on screen, not enough to copy it."""
    if not email or "@" not in email:
        return "–"
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}{'•' * min(6, max(1, len(local) - 1))}@{domain}"

