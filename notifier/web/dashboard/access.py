"""The dashboard's door: who the request comes from, whether its form carries its session's CSRF token, and the
pages' language. Pages redirect a stranger to ``/login``; anything that changes state answers 401 without a
session and 403 without the right token (or from another origin).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from notifier.config import KNOWN_SECRETS, MIN_SECRET_LENGTH, Settings
from notifier.errors import RequestRefused
from notifier.i18n import negotiate
from notifier.ledger import audit, queries
from notifier.ledger.db import transaction
from notifier.planner import send_channels
from notifier.render import Renderer
from notifier.team import people
from notifier.team.roles import capability_of, refuse_unless
from notifier.web.dashboard.auth import (
    Devices,
    Identity,
    Login,
    LoginLimiter,
    PasswordLogin,
    Sessions,
    SsoFlows,
    same_token,
)
from notifier.web.locales import DASHBOARD_LOCALES as LOCALES
from notifier.web.requests import client_address

SESSION = "notifier_session"
DEVICE = "notifier_device"
LANG = "notifier_lang"
MAX_FORM_BYTES = 512 * 1024


class NotLoggedIn(Exception):
    """No valid session: a page sends the browser to /login, anything else is refused with 401."""


@dataclass
class Dashboard:
    """What the dashboard's routes share; ``login`` is None when no admin password is configured."""

    login: Login | None
    sessions: Sessions
    devices: Devices
    limiter: LoginLimiter
    secure: bool  # cookies only over https (NOTIFIER_PUBLIC_URL is https)
    ledger: sessionmaker[Session]  # where logouts are kept (see end)
    flows: SsoFlows  # single sign-ons under way
    _renderer: Renderer | None = None
    sso: bool = False  # NOTIFIER_OIDC_ISSUER is set
    simulated_clock: bool = False  # the demo's: every page shows the simulated date
    to_come: queries.RowsToCome = field(default_factory=lambda: queries.RowsToCome(send_channels))  # pages poll

    _checks: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))

    def enabled(self) -> bool:
        """Whether anyone can log in: single sign-on is set up, the ledger has a team, or NOTIFIER_ADMIN_PASSWORD
        is set."""
        if self.login is not None or self.sso:
            return True
        with self.ledger() as s:
            return people.has_team(s)

    def authenticate(self, email: str, password: str) -> Identity | None:
        """Who ``email`` and ``password`` prove (no email: the shared admin password, while the ledger has no
        team), as a new session's identity without its token. At most two checks run at once (each costs 32 MiB
        and 0.1 s of a core), so a flood of logins queues instead of taking the machine."""
        if not self._checks.acquire(timeout=30):
            raise RequestRefused(503, "too many logins at once; try again in a minute")
        try:
            with self.ledger() as s:
                team = people.has_team(s)
                if email.strip():
                    found = people.authenticate(s, email, password) if team else None
                    return _person(found, "", 0) if found else None
            if team or self.login is None:
                return None
            user = self.login.authenticate("admin", password)
            return Identity(user, "", 0, role="admin") if user else None
        finally:
            self._checks.release()

    def confirmed(self, ident: Identity) -> Identity | None:
        """The session's identity as the ledger has it now: None when it was logged out, its person disabled or
        changed (role, password), or the shared password stopped counting because the ledger has a team."""
        with self.ledger() as s:
            if queries.session_ended(s, _digest(ident)):
                return None
            if ident.user == "admin":  # the shared password's one admin, while there is no team
                return replace(ident, role="admin") if self.login is not None and not people.has_team(s) else None
            if not ident.user.startswith("person:") or not ident.user[7:].isdigit():
                return None
            found = people.active(s, int(ident.user[7:]), ident.epoch)
        return _person(found, ident.csrf, ident.expires) if found else None

    def end(self, ident: Identity, actor: audit.Actor | None = None, at: datetime | None = None) -> None:
        """Log a session out for good: its cookie, even replayed, proves nothing any more, in every serving
        process and after a restart (the ledger keeps a hash of its token until the cookie would have expired).
        It writes to the ledger: call it from a worker thread, not the event loop."""
        with transaction(self.ledger) as s:
            queries.end_session(s, _digest(ident), datetime.fromtimestamp(ident.expires, UTC),
                                datetime.fromtimestamp(self.sessions.clock(), UTC))
            if actor is not None:
                audit.record(s, "logout", actor=actor, at=at)

    def renderer(self, settings: Settings) -> Renderer:
        """One renderer for the gallery and scheduling; :meth:`Renderer.forget` a campaign whose file changed."""
        if self._renderer is None:
            self._renderer = Renderer(settings.templates_dir, settings.locales_dir, default_sender=settings.email_from,
                                studio_dir=settings.studio_dir)
        return self._renderer

    @classmethod
    def of(cls, settings: Settings, ledger: sessionmaker[Session]) -> Dashboard:
        hashed = settings.admin_password_hash
        login = PasswordLogin(hashed) if hashed else None
        secret = settings.secret_key
        if secret in KNOWN_SECRETS or len(secret) < MIN_SECRET_LENGTH:  # serve --dev: sessions nobody can forge,
            secret = secrets.token_urlsafe(32)                          # which end when the process does
        return cls(login, Sessions.of(secret, hashed or "-"), Devices.of(secret, hashed or "-"), LoginLimiter(),
                   urlsplit(settings.public_url).scheme == "https", ledger, SsoFlows.of(secret, hashed or "-"),
                   sso=settings.sso)

    def _named(self, name: str) -> str:
        """``__Host-`` pins a cookie to this host, over https, for every path."""
        return f"__Host-{name}" if self.secure else name

    @property
    def cookie(self) -> str:
        return self._named(SESSION)

    @property
    def device_cookie(self) -> str:
        return self._named(DEVICE)

    @property
    def sso_cookie(self) -> str:
        return "notifier_sso"  # path=/login/sso, so never __Host- (which needs path=/)

    def _set_strict(self, response: Any, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.secure, httponly=True,
                            samesite="strict")

    def device(self, request: Request) -> str | None:
        """The id of this browser's device cookie, when it has logged in here before (see auth.Devices)."""
        return self.devices.read(request.cookies.get(self.device_cookie))

    def set_device(self, response: Any) -> None:
        """A fresh device cookie, after a login: this browser's failed logins are then its own."""
        self._set_strict(response, self.device_cookie, self.devices.issue(), self.devices.lifetime)

    def logged_in(self, target: str, user: str, epoch: int) -> RedirectResponse:
        """A redirect to ``target`` that logs this browser in as ``user`` (a new session, and the device cookie
        that keeps its failed logins its own): after a login, an accepted invitation, a single sign-on, or one's
        own new password."""
        cookie, _ident = self.sessions.issue(user, epoch)
        response = RedirectResponse(target, status_code=303)
        self.set_session(response, cookie)
        self.set_device(response)
        return response

    def set_session(self, response: Any, value: str) -> None:
        self._set_strict(response, self.cookie, value, self.sessions.lifetime)

    def clear_session(self, response: Any) -> None:
        response.delete_cookie(self.cookie, path="/", secure=self.secure, httponly=True, samesite="strict")


def _person(found: people.Member, csrf: str, expires: int) -> Identity:
    return Identity(found.actor_id, csrf, expires, found.epoch, found.role, found.email, found.id)


def actor_of(ident: Identity, request: Request) -> audit.Actor:
    """Who the audit log names for what this session does, and from which address."""
    address = client_address(request)
    return audit.Actor(ident.user, ident.email, address, ident.person_id)


def _digest(ident: Identity) -> str:
    return hashlib.sha256(ident.csrf.encode("utf-8")).hexdigest()


def dashboard_of(request: Request) -> Dashboard:
    return request.app.state.dashboard  # type: ignore[no-any-return]


def identity(request: Request) -> Identity:
    """Who is logged in; NotLoggedIn otherwise. The answer is kept for the rest of the request (a valid cookie
    costs one ledger read: was it logged out?); an ``async`` route gets it through :func:`checked_form`, which
    reads in a worker thread."""
    known = getattr(request.state, "identity", None)
    if known is not None:
        return known  # type: ignore[no-any-return]
    dash = dashboard_of(request)
    ident = dash.sessions.read(request.cookies.get(dash.cookie))
    confirmed = dash.confirmed(ident) if ident is not None else None
    if confirmed is None:
        raise NotLoggedIn
    request.state.identity = confirmed
    return confirmed


class DashboardRoute(APIRoute):
    """A dashboard route: one whose endpoint names a capability (``team.roles.needs``) answers only a session whose
    role has it (a stranger goes to /login, a role without it gets 403), and everything it does is done by that
    person in the audit log. A route without one is public (``team.roles.PUBLIC``)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handle = super().get_route_handler()
        can = capability_of(self.endpoint)
        if can is None:
            return handle

        async def route(request: Request) -> Any:
            ident = await run_in_threadpool(identity, request)
            refuse_unless(ident.role, can)
            with audit.acting(actor_of(ident, request)):
                return await handle(request)

        return route


def login_redirect(request: Request) -> str:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(path, safe='')}"


def safe_next(target: str | None) -> str:
    """Only a path of this site: never ``//evil.example`` or ``https://evil.example``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 2000:
        return "/campaigns"
    return target


def same_origin(request: Request) -> None:
    """Refuse a state change that a page of another site started (the browser says where it came from)."""
    origin = request.headers.get("origin")
    if origin is None:  # an old browser or a script: the CSRF token and the SameSite cookie still hold
        return
    public = urlsplit(request.app.state.web.settings.public_url)
    ours = {f"{request.url.scheme}://{request.headers.get('host', '')}", f"{public.scheme}://{public.netloc}"}
    if origin.rstrip("/") not in ours:  # behind a proxy that rewrites Host, NOTIFIER_PUBLIC_URL is ours
        raise RequestRefused(403, "this form was posted from another site")


async def form_of(request: Request, max_bytes: int = MAX_FORM_BYTES) -> FormData:
    """The posted form, capped in size (413) before it is parsed."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise RequestRefused(411, "a form must say its length")
    if int(declared) > max_bytes:
        raise RequestRefused(413, f"the form is {declared} bytes; at most {max_bytes}")
    return await request.form(max_files=1, max_fields=30, max_part_size=max_bytes)


async def checked_form(request: Request) -> tuple[Identity, FormData]:
    """A state change's form: a session (401), the same origin and the session's CSRF token (403)."""
    ident = await run_in_threadpool(identity, request)
    same_origin(request)
    form = await form_of(request)
    token = form.get("csrf")
    if not same_token(ident.csrf, token if isinstance(token, str) else None):
        raise RequestRefused(403, "the form's CSRF token is missing or wrong: reload the page and try again")
    return ident, form


def ui_locale(request: Request) -> str:
    """``?lang=``, then the language cookie, then Accept-Language; English by default."""
    for wanted in (request.query_params.get("lang"), request.cookies.get(LANG)):
        if wanted in LOCALES:
            return wanted
    header = request.headers.get("accept-language", "")
    for part in header.split(",")[:8]:
        tag = part.split(";")[0].strip()[:35]
        found = negotiate(tag, LOCALES, "") if tag else ""
        if found in LOCALES:
            return found
    return "en"
