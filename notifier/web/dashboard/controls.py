"""What the dashboard changes (every ``POST``): logging in and out, uploading or editing a campaign file, and
scheduling, pausing, resuming, cancelling or retrying a campaign. Each one needs a session (401) and the
session's CSRF token (403); the login form has a token of its own and a limit on failed attempts (429).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from notifier.campaign import CHANNELS, Campaign, parse_campaign
from notifier.config import Settings
from notifier.errors import CampaignError, CampaignStateError, NotFound, Problem, RequestRefused, UserError
from notifier.ledger import audit, queries
from notifier.ledger.db import transaction
from notifier.review import review
from notifier.studio import service, store
from notifier.team import people
from notifier.team.roles import Can, needs
from notifier.web.dashboard import views
from notifier.web.dashboard.access import (
    Dashboard,
    DashboardRoute,
    NotLoggedIn,
    actor_of,
    checked_form,
    dashboard_of,
    form_of,
    login_redirect,
    safe_next,
    same_origin,
)
from notifier.web.dashboard.auth import Identity, same_token
from notifier.web.dashboard.pages import LOGIN_NONCE, campaign_page, login_form, render
from notifier.web.requests import client_address, web_of

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)
# The dashboard's; the rest is API.
PATHS = ("/campaigns", "/login", "/logout", "/static/dashboard", "/people", "/invite", "/account", "/audit")


def install(app: Any, settings: Settings) -> None:
    """Mount the dashboard on ``app``: its pages, its controls and how it answers a stranger."""
    from notifier.web.dashboard import pages, results, studio, team

    app.state.dashboard = Dashboard.of(settings, app.state.web.sessions)
    app.include_router(team.router)  # first: /campaigns/{id}/approve is not one of control's actions
    app.include_router(studio.router)  # then: /campaigns/new/... are the studio's, not a campaign's
    app.include_router(results.router)  # before the pages: /campaigns/{id}/results.csv is not a campaign
    app.include_router(pages.router)
    app.include_router(router)

    @app.exception_handler(NotLoggedIn)
    async def stranger(request: Request, _exc: NotLoggedIn) -> Any:
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(login_redirect(request), status_code=303)
        return HTMLResponse("<!doctype html><title>401</title><p>Log in first: <a href=/login>/login</a></p>",
                            status_code=401, headers={"WWW-Authenticate": 'Cookie realm="notifier"'})

    def refusal_page(request: Request, exc: RequestRefused) -> HTMLResponse | None:
        """A person in a browser reads a page; the providers and API clients keep their JSON (None)."""
        if request.url.path.startswith(PATHS) and "text/html" in request.headers.get("accept", ""):
            return render(request, "error.html", exc.status, message=str(exc))
        return None

    app.state.refusal_page = refusal_page

    @app.exception_handler(UserError)
    async def not_possible(request: Request, exc: UserError) -> Any:
        """Any other refusal of the core (a template that cannot be read, say): its one line, never a 500."""
        if request.url.path.startswith(PATHS):
            return render(request, "error.html", 422, message=str(exc))
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(CampaignError)
    async def broken_file(request: Request, exc: CampaignError) -> Any:
        """A campaign file someone broke on disk: its problems, and where to fix them."""
        return render(request, "error.html", 422, message=str(exc).splitlines()[0], problems=exc.problems,
                      campaign_id=request.path_params.get("campaign_id"))

    @app.exception_handler(CampaignStateError)
    async def wrong_state(request: Request, exc: CampaignStateError) -> Any:
        status = 404 if isinstance(exc, NotFound) else 409
        return render(request, "error.html", status, message=str(exc))


# --- logging in -------------------------------------------------------------------------------------------------


@router.post("/login")
async def login(request: Request) -> Any:
    dash = dashboard_of(request)
    if not await run_in_threadpool(dash.enabled):
        return login_form(request, None)
    client = request.client.host if request.client else "-"
    device = dash.device(request)  # a browser that logged in here before: limited on its own
    if dash.limiter.retry_after(client, device):
        return _throttled(request, dash.limiter.retry_after(client, device))
    same_origin(request)
    form = await form_of(request, 8192)
    if not same_token(request.cookies.get(LOGIN_NONCE) or "", _text(form, "csrf")):
        raise RequestRefused(403, "the login form's token is missing or wrong: reload the login page")
    wait = dash.limiter.attempt(client, device)  # counted before the check: a parallel burst is limited too
    if wait:
        return _throttled(request, wait)
    email = _text(form, "email", 254)
    found = await run_in_threadpool(dash.authenticate, email, _text(form, "password"))
    await run_in_threadpool(_audit_login, request, found, email)
    if found is None:
        return login_form(request, _text(form, "next"), 401, error="wrong")
    dash.limiter.succeeded(client, device)
    response = dash.logged_in(safe_next(_text(form, "next")), found.user, found.epoch)
    response.delete_cookie(LOGIN_NONCE, path="/login")
    return response


def _audit_login(request: Request, found: Identity | None, email: str) -> None:
    """A login, or a failed one (naming the account tried only when it is a team member's)."""
    dash = dashboard_of(request)
    address = client_address(request)
    with transaction(dash.ledger) as s:
        if found is not None:
            audit.record(s, "login", actor=actor_of(found, request), at=web_of(request).now())
        else:
            known = email.strip().lower() in {m.email for m in people.listing(s)} if email.strip() else False
            audit.record(s, "login_failed", actor=audit.Actor("anonymous", "-", address), at=web_of(request).now(),
                         detail={"account": email.strip().lower()[:254] if known else ("admin" if not email else None)})


def _throttled(request: Request, wait: int) -> HTMLResponse:
    response = render(request, "login.html", 429, off=False, nonce="", next="/campaigns", error="throttled",
                      wait=(wait + 59) // 60)
    response.headers["Retry-After"] = str(wait)
    return response


@router.post("/logout")
@needs(Can.SELF)
async def logout(request: Request) -> Any:
    ident, _form = await checked_form(request)
    dash = dashboard_of(request)
    await run_in_threadpool(dash.end, ident, actor_of(ident, request), web_of(request).now())
    response = RedirectResponse("/login", status_code=303)
    dash.clear_session(response)
    return response


def _text(form: FormData, name: str, limit: int = 4096) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


# --- campaign files ---------------------------------------------------------------------------------------------


async def _upload(form: FormData) -> tuple[str, str]:
    """(file name, text) of the uploaded file, else of the text box."""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(views.MAX_FILE_BYTES + 1)
        name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:100] or "campaign.yaml"
    else:
        raw, name = _text(form, "text", views.MAX_FILE_BYTES + 1).encode("utf-8"), ""
    if len(raw) > views.MAX_FILE_BYTES:
        raise RequestRefused(413, f"a campaign file may be at most {views.MAX_FILE_BYTES // 1024} KiB")
    try:
        return name, raw.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        raise RequestRefused(400, f"the file is not UTF-8 text (byte {exc.start})") from None


def _validated(request: Request, text: str, source: str, campaign_id: str | None) -> Campaign:
    """The campaign of ``text`` with every message rendered, or a CampaignError listing every problem."""
    web, dash = web_of(request), dashboard_of(request)
    campaign = parse_campaign(text, source)
    problems: list[Problem] = []
    if campaign_id is not None and campaign.id != campaign_id:
        problems.append(Problem(source, None, "id", f"this page edits {campaign_id!r}; the file says "
                                                    f"{campaign.id!r} (upload a new campaign instead)"))
    if campaign.id in views.RESERVED:
        problems.append(Problem(source, None, "id", f"{campaign.id!r} is reserved by the dashboard: choose another"))
    elif campaign_id is None:
        with web.sessions() as s:
            taken = s.get(views.CampaignRow, campaign.id) is not None
        if taken or views.campaign_path(web.settings, campaign.id).exists():
            problems.append(Problem(source, None, "id", f"a campaign {campaign.id!r} exists already: edit it"))
    if not problems:
        renderer = dash.renderer(web.settings)
        renderer.forget(campaign.id)
        problems = review(campaign, renderer)
    if problems:
        raise CampaignError(problems)
    return campaign


async def _save(request: Request, campaign_id: str | None) -> Any:
    _ident, form = await checked_form(request)
    name, text = await _upload(form)
    source = name or f"{campaign_id or 'campaign'}.yaml"
    try:
        campaign = await run_in_threadpool(_validated, request, text, source, campaign_id)
    except CampaignError as exc:
        return render(request, "edit.html", 422, campaign_id=campaign_id, text=text,
                      annotated=views.annotate(text, source, exc))
    web = web_of(request)
    if campaign_id is not None and store.is_stored(web.settings, campaign_id):  # kept in the ledger: a new version
        await run_in_threadpool(lambda: service.save_file(web, campaign_id, text))
    else:
        await run_in_threadpool(_save_file, request, campaign, text, campaign_id is None)
    return RedirectResponse(f"/campaigns/{campaign.id}?done=saved", status_code=303)


def _save_file(request: Request, campaign: Campaign, text: str, new: bool) -> None:
    """A campaign kept in files, written whole. Once the ledger has a team, it is then stored as a version naming
    its author (four eyes reads who changed a campaign from its versions); before, its audit line says what
    changed."""
    from notifier.team.approvals import diff
    from notifier.team.people import has_team

    web, path = web_of(request), f"campaigns/{campaign.id}.yaml"
    file = views.campaign_path(web.settings, campaign.id)
    old = {path: file.read_bytes()} if file.is_file() else {}
    views.save_file(web.settings, campaign, text)
    with transaction(web.sessions) as s:
        if has_team(s):
            store.save_version(s, campaign.id, store.bundle_from_disk(web.settings, campaign.id), now=web.now(),
                               origin="dashboard", author=audit.current().person_id)
        else:
            audit.record(s, "create" if new else "edit", campaign_id=campaign.id, at=web.now(),
                         detail={"origin": "file", "diff": diff(old, {path: text.encode("utf-8")})})
    service.synced(web)


@router.post("/campaigns/new")
@needs(Can.EDIT)
async def upload_campaign(request: Request) -> Any:
    return await _save(request, None)


@router.post("/campaigns/{campaign_id}/edit")
@needs(Can.EDIT)
async def save_campaign(request: Request, campaign_id: str) -> Any:
    return await _save(request, campaign_id)


# --- a campaign's state -----------------------------------------------------------------------------------------


def _schedule(request: Request, campaign_id: str) -> None:
    """The studio's schedule, one rule for the pages, the API and the CLI's checks (notifier.studio.service)."""
    service.schedule(web_of(request), campaign_id)


@router.post("/campaigns/{campaign_id}/{action}")
@needs(Can.SEND)
async def control(request: Request, campaign_id: str, action: str) -> Any:
    """schedule | pause | resume | cancel (with confirm=yes) | retry (optionally only a reason or a channel)."""
    _ident, form = await checked_form(request)
    web = web_of(request)
    views.campaign_path(web.settings, campaign_id)  # an id that cannot be a campaign's: 404
    done = action
    if action == "schedule":
        try:
            await run_in_threadpool(_schedule, request, campaign_id)
        except CampaignError as exc:
            return await run_in_threadpool(campaign_page, request, campaign_id, 422, problems=exc.problems)
        done = "scheduled"
    elif action in service.STATE_OF_ACTION:
        if action == "cancel" and _text(form, "confirm") != "yes":
            raise RequestRefused(400, "cancelling needs its confirmation (confirm=yes)")
        await run_in_threadpool(service.set_state, web, campaign_id, action)
    elif action == "retry":
        channel = _text(form, "channel") or None
        if channel is not None and channel not in CHANNELS:
            raise RequestRefused(400, f"unknown channel {channel!r}")

        def again() -> Any:
            with transaction(web.sessions) as s:
                return queries.retry_failed(s, campaign_id, web.now(), reason=_text(form, "reason") or None,
                                            channel=channel)

        result = await run_in_threadpool(again)
        done = f"retried&n={result.retried}&late={result.too_late}"
    else:
        raise RequestRefused(404, f"no such action: {action[:40]!r}")
    return RedirectResponse(f"/campaigns/{quote(campaign_id)}?done={done}", status_code=303)
