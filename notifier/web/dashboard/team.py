"""The team's pages: people and their roles (admins), accepting an invitation, single sign-on, one's own password
and API tokens, a campaign's approval with the diff since the last approved version, and the audit log. Each one
calls ``notifier.team`` (or ``notifier.ledger.audit``) as the JSON API does (``web.team_api``); every change is a
line of the audit log, written in the change's own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from notifier.errors import NotFound, RequestRefused, UserError
from notifier.ledger import audit
from notifier.ledger.db import transaction
from notifier.studio import service
from notifier.team import approvals, people, sso, tokens
from notifier.team.roles import ROLES, Can, allows, needs
from notifier.web.dashboard.access import (
    DashboardRoute,
    Identity,
    checked_form,
    dashboard_of,
    form_of,
    identity,
    safe_next,
    same_origin,
)
from notifier.web.dashboard.pages import render
from notifier.web.dashboard.results import csv_response
from notifier.web.requests import client_address, web_of

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)
PAGE = 100  # audit lines per page
T = TypeVar("T")
PERSON = Path(ge=1, le=2**31 - 1)


def invite_url(request: Request, token: str) -> str:
    """The one-time link, on this server's public address."""
    return people.invite_url(web_of(request).settings.public_url, token)


def _text(form: Any, name: str, limit: int = 4096) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _write(request: Request, change: Callable[[Session], T]) -> T:
    """``change`` in a transaction of the ledger, off the event loop."""
    web = web_of(request)

    def run() -> T:
        with transaction(web.sessions) as s:
            return change(s)

    return await run_in_threadpool(run)


def _mistake(exc: UserError) -> str:
    """What a person typed wrong, to show on the page they typed it on; any other refusal is the app's to answer."""
    if isinstance(exc, NotFound) or (isinstance(exc, RequestRefused) and exc.status not in (409, 422)):
        raise exc
    return str(exc)


# --- people (admins) --------------------------------------------------------------------------------------------


def _people_page(request: Request, status: int = 200, **extra: Any) -> HTMLResponse:
    with web_of(request).sessions() as s:
        team = people.listing(s)
    return render(request, "people.html", status, team=team, roles=[r.value for r in ROLES], **extra)


async def _people(request: Request, status: int = 200, **extra: Any) -> HTMLResponse:
    return await run_in_threadpool(lambda: _people_page(request, status, **extra))


@router.get("/people")
@needs(Can.ADMIN)
def people_page(request: Request) -> HTMLResponse:
    return _people_page(request)


@router.post("/people")
@needs(Can.ADMIN)
async def invite(request: Request) -> HTMLResponse:
    """A new person, invited: the page shows their one-time link (once; it is kept only as a hash)."""
    _ident, form = await checked_form(request)
    now = web_of(request).now()
    try:
        member, token = await _write(request, lambda s: people.invite(
            s, _text(form, "email", 254), _text(form, "name", 200), _text(form, "role", 16), now))
    except UserError as exc:
        return await _people(request, 422, error=_mistake(exc), form=dict(form))
    return await _people(request, invited=member, link=invite_url(request, token))


@router.post("/people/{person_id}")
@needs(Can.ADMIN)
async def change_person(request: Request, person_id: int = PERSON) -> Any:
    """Change a person's role (``role``) or disable or enable them (``enabled`` = no | yes)."""
    ident, form = await checked_form(request)
    now, role, enabled = web_of(request).now(), _text(form, "role", 16), _text(form, "enabled")

    def change(s: Session) -> None:
        if role:
            people.set_role(s, person_id, role, now, ident.person_id)
        if enabled in ("yes", "no"):
            people.set_enabled(s, person_id, enabled == "yes", now, ident.person_id)

    try:
        await _write(request, change)
    except UserError as exc:
        return await _people(request, 409, error=_mistake(exc))
    return RedirectResponse("/people?done=changed", status_code=303)


@router.post("/people/{person_id}/reset")
@needs(Can.ADMIN)
async def reset_person(request: Request, person_id: int = PERSON) -> HTMLResponse:
    """A forgotten password: the person is invited again, with a new one-time link shown once."""
    await checked_form(request)
    now = web_of(request).now()
    member, token = await _write(request, lambda s: people.reset(s, person_id, now))
    return await _people(request, invited=member, link=invite_url(request, token))


# --- accepting an invitation (public: the link is the proof) ---------------------------------------------------


def _invited(request: Request, token: str) -> people.Member:
    web = web_of(request)
    with web.sessions() as s:
        return people.invitation(s, token, web.now())


@router.get("/invite/{token}")
def invitation_page(request: Request, token: str) -> HTMLResponse:
    return render(request, "invite.html", member=_invited(request, token), token=token, error=None)


@router.post("/invite/{token}")
async def accept(request: Request, token: str) -> Any:
    """Set one's password: the account is active, and this browser is logged in as its person."""
    same_origin(request)
    form = await form_of(request, 8192)
    now, password = web_of(request).now(), _text(form, "password", 1024)
    address = client_address(request)
    error = "The two passwords differ." if password != _text(form, "confirm", 1024) else None
    if error is None:
        try:
            with audit.acting(audit.Actor("anonymous", "-", address)):
                member = await _write(request, lambda s: people.accept(s, token, password, now,
                                                                        _text(form, "name", 200) or None))
            return dashboard_of(request).logged_in("/campaigns?done=welcome", member.actor_id, member.epoch)
        except UserError as exc:
            if not str(exc).startswith("password"):
                raise
            error = str(exc)
    invited = await run_in_threadpool(_invited, request, token)
    return render(request, "invite.html", 422, member=invited, token=token, error=error)


# --- single sign-on (public: the identity provider is the proof) -----------------------------------------------


def _callback_url(request: Request) -> str:
    return f"{web_of(request).settings.public_url}/login/sso/callback"


def _sso_on(request: Request) -> None:
    if not web_of(request).settings.sso:
        raise RequestRefused(404, "single sign-on is not set up (NOTIFIER_OIDC_ISSUER)")


@router.get("/login/sso")
def sso_start(request: Request, next: str = "/campaigns") -> Response:
    """Off to the identity provider, with this login's state, nonce and PKCE verifier in a signed cookie."""
    _sso_on(request)
    dash = dashboard_of(request)
    target = safe_next(next)
    target = target if len(target) <= 400 else "/campaigns"  # the flow's cookie stays under a cookie's 1 KiB
    url, flow = sso.start(web_of(request).settings, _callback_url(request), target)
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the provider's redirect back is a navigation from its site, which must carry it.
    response.set_cookie(dash.sso_cookie, dash.flows.issue(flow.as_dict()), max_age=dash.flows.lifetime,
                        path="/login/sso", secure=dash.secure, httponly=True, samesite="lax")
    return response


@router.get("/login/sso/callback")
def sso_callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
    """The provider's answer: the ID token checked, the person signed in with the role their claim gives."""
    _sso_on(request)
    web, dash = web_of(request), dashboard_of(request)
    found = dash.flows.read(request.cookies.get(dash.sso_cookie))
    if found is None:
        raise RequestRefused(403, "this sign-in expired or did not start here: start again from the login page")
    if error:
        raise RequestRefused(403, f"the identity provider refused the sign-in: {error[:100]}")
    flow = sso.Flow.of(found)
    claims = sso.finish(web.settings, flow, state[:200], code[:2000], _callback_url(request))
    address = client_address(request)
    with transaction(web.sessions) as s:
        member = sso.sign_in(s, claims, web.now())
        audit.record(s, "login", actor=audit.Actor(member.actor_id, member.email, address, member.id), at=web.now(),
                     detail={"via": "sso"})
    response = dash.logged_in(safe_next(flow.next), member.actor_id, member.epoch)
    response.delete_cookie(dash.sso_cookie, path="/login/sso")
    return response


# --- one's own account: password and API tokens -------------------------------------------------------------


def _person_of(ident: Identity) -> int:
    if ident.person_id is None:
        raise RequestRefused(409, "the shared admin password is not a person: add yourself with notifier people "
                                  "add-admin, then log in with your address")
    return ident.person_id


def _account_page(request: Request, status: int = 200, **extra: Any) -> HTMLResponse:
    ident = identity(request)
    with web_of(request).sessions() as s:
        mine = tokens.mine(s, ident.person_id) if ident.person_id is not None else []
    return render(request, "account.html", status, ident=ident, tokens=mine, **extra)


async def _account(request: Request, status: int = 200, **extra: Any) -> HTMLResponse:
    return await run_in_threadpool(lambda: _account_page(request, status, **extra))


@router.get("/account")
@needs(Can.SELF)
def account_page(request: Request) -> HTMLResponse:
    return _account_page(request)


@router.post("/account/password")
@needs(Can.SELF)
async def change_password(request: Request) -> Any:
    """One's own new password (the current one proves it); every other session ends, this one goes on."""
    ident, form = await checked_form(request)
    now, new = web_of(request).now(), _text(form, "new", 1024)
    if new != _text(form, "confirm", 1024):
        return await _account(request, 422, password_error="The two passwords differ.")
    try:
        member = await _write(request, lambda s: people.change_password(
            s, _person_of(ident), _text(form, "current", 1024), new, now))
    except UserError as exc:
        return await _account(request, 422, password_error=_mistake(exc))
    response = dashboard_of(request).logged_in("/account?done=password", member.actor_id, member.epoch)
    return response


@router.post("/account/tokens")
@needs(Can.SELF)
async def new_token(request: Request) -> HTMLResponse:
    ident, form = await checked_form(request)
    now = web_of(request).now()
    try:
        days = int(_text(form, "days", 3)) if _text(form, "days", 3).isdigit() else tokens.DAYS
        info, token = await _write(request, lambda s: tokens.issue(s, _person_of(ident), _text(form, "name", 100),
                                                                   now, days))
    except UserError as exc:
        return await _account(request, 422, error=_mistake(exc))
    return await _account(request, created=info, secret=token)


@router.post("/account/tokens/{token_id}/revoke")
@needs(Can.SELF)
async def revoke_token(request: Request, token_id: str) -> Any:
    ident, _form = await checked_form(request)
    now = web_of(request).now()
    await _write(request, lambda s: tokens.revoke(s, token_id, now, person_id=_person_of(ident)))
    return RedirectResponse("/account?done=revoked", status_code=303)


# --- a campaign's approval --------------------------------------------------------------------------------------


@router.get("/campaigns/{campaign_id}/approval")
@needs(Can.READ)
def approval_page(request: Request, campaign_id: str) -> HTMLResponse:
    ident, web = identity(request), web_of(request)
    service.synced(web)
    with web.sessions() as s:
        found = approvals.status(s, web.settings, service.checked_id(campaign_id))
    return render(request, "approval.html", approval=found, campaign_id=campaign_id,
                  may_approve=allows(ident.role, Can.APPROVE) and ident.person_id is not None
                  and ident.person_id not in found.editor_ids and not found.current,
                  diff_lines=found.diff.splitlines())


@router.post("/campaigns/{campaign_id}/approve")
@needs(Can.APPROVE)
async def approve(request: Request, campaign_id: str) -> Any:
    """Approve the version the page showed (a newer one saved meanwhile: 409)."""
    ident, form = await checked_form(request)
    web, version, fingerprint = web_of(request), _text(form, "version"), _text(form, "fingerprint", 64)
    if ident.person_id is None:
        raise RequestRefused(409, "an approval names its person: the shared admin password cannot approve")
    person_id = ident.person_id

    def approve_it(s: Session) -> None:
        approvals.approve(s, web.settings, service.checked_id(campaign_id), people.member(s, person_id), web.now(),
                          int(version) if version.isdigit() and len(version) < 10 else None, fingerprint or None)

    await _write(request, approve_it)
    await run_in_threadpool(service.synced, web)  # a campaign kept in files is now a stored version
    return RedirectResponse(f"/campaigns/{quote(campaign_id)}/approval?done=approved", status_code=303)


# --- the audit log ----------------------------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    return {k: q.get(k, "")[:254].strip() for k in ("campaign", "user", "action") if q.get(k, "").strip()}


def _entries(s: Session, filters: dict[str, str], **more: Any) -> Any:
    return audit.entries(s, campaign_id=filters.get("campaign"), actor=filters.get("user"),
                         action=filters.get("action"), **more)


@router.get("/audit")
@needs(Can.READ)
def audit_page(request: Request, before: int | None = Query(None, ge=1, le=2**62), verify: bool = False
               ) -> HTMLResponse:
    """The newest lines first, filtered, a page at a time; the chain's verdict when asked (it reads every line)."""
    filters = _filters(request)
    with web_of(request).sessions() as s:
        lines = list(_entries(s, filters, before=before, limit=PAGE + 1))
        check = audit.verify(s) if verify else None
    more = lines[PAGE].seq + 1 if len(lines) > PAGE else None
    return render(request, "audit.html", lines=lines[:PAGE], check=check, filters=filters, actions=audit.ACTIONS,
                  older=f"/audit?{urlencode({**filters, 'before': more})}" if more else None,
                  csv=f"/audit.csv?{urlencode(filters)}", verify_url=f"/audit?{urlencode({**filters, 'verify': 1})}")


@router.get("/audit.csv")
@needs(Can.READ)
def audit_csv(request: Request) -> Response:
    filters, sessions = _filters(request), web_of(request).sessions

    def rows() -> Any:  # the session lives as long as the download
        with sessions() as s:
            yield from audit.csv_rows(_entries(s, filters))

    return csv_response(rows(), "audit.csv")
