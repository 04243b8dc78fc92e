"""The FastAPI application of ``notifier serve``: one :class:`Web` holds the settings, the ledger and the keys, and
the routers of ``webhooks``, ``inbound``, ``unsubscribe``, ``actions`` and the ``dashboard`` share it. Every refusal
is a :class:`RequestRefused` with its status, answered as ``{"error": "..."}`` (a page, on the dashboard's paths); a
ledger that cannot be reached is a 503, which providers retry; a client that goes away before its body is read
is one line in the log. Every answer carries the headers of :class:`SecurityHeaders`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from notifier import __version__
from notifier.config import Settings
from notifier.errors import ConfigError, RequestRefused
from notifier.web.requests import Web, page_csp

log = logging.getLogger(__name__)
HSTS = "max-age=31536000"  # a year of https only, once a browser has seen it over https


# The modules of the web extra (pyproject.toml): serving, the dashboard's forms, SendGrid's signed events.
WEB_EXTRA = ("fastapi", "uvicorn", "python_multipart", "sendgrid", "cryptography")


def require_web_extra(command: str = "notifier serve") -> None:
    """Refuse in one line, before anything starts, when the web extra is not installed (``command`` names what
    needs it)."""
    import importlib.util

    if not all(importlib.util.find_spec(module) for module in WEB_EXTRA):
        raise ConfigError(f"{command} needs its web extra: pip install 'notifier[web]'")


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("notifier serve needs its web extra: pip install 'notifier[web]'") from None
    return fastapi


def create_app(settings: Settings, sessions: sessionmaker[Session] | None = None, *,
               clock: Callable[[], datetime] | None = None) -> Any:
    """The application; ``sessions`` defaults to the ledger of ``settings`` (migrated to head)."""
    fastapi = _fastapi()
    from fastapi.responses import JSONResponse, Response
    from starlette.requests import ClientDisconnect

    from notifier.channels.sendgrid_events import load_verification_key
    from notifier.web import actions, dashboard, inbound, studio_api, team_api, unsubscribe, webhooks

    if sessions is None:
        from notifier.ledger.db import make_engine, session_factory, upgrade

        engine = make_engine(settings.database_url)
        upgrade(engine)
        sessions = session_factory(engine)
    webhook = load_verification_key(settings.sendgrid_webhook_key) if settings.sendgrid_webhook_key else None
    app = fastapi.FastAPI(title="notifier", version=__version__,
                          description="The feedback loop of notifier: provider events, unsubscribes, actions "
                                      "(the dashboard's pages are not part of this API).")
    app.state.refusal_page = lambda _request, _exc: None
    app.state.web = Web(settings, sessions, webhook, clock or (lambda: datetime.now(UTC)))
    app.add_middleware(SecurityHeaders, https=urlsplit(settings.public_url).scheme == "https",
                       docs={app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None})

    @app.exception_handler(RequestRefused)
    async def refused(request: Any, exc: RequestRefused) -> Any:
        page = app.state.refusal_page(request, exc)  # the dashboard answers a browser on its paths with a page
        return page if page is not None else JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(SQLAlchemyError)
    async def ledger_down(_request: Any, exc: SQLAlchemyError) -> Any:
        log.error("the ledger failed: %s", type(exc).__name__)
        return JSONResponse({"error": "the ledger is unavailable; try again later"}, status_code=503)

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Any, _exc: ClientDisconnect) -> Any:
        """A client that hung up (or went silent past the read timeout) before its whole body came: one line,
        with the route's pattern, never its path (an unsubscribe token)."""
        route = getattr(request.scope.get("route"), "path", "?")
        log.info("a client went away before sending its whole body: %s %s", request.method, route)
        return Response(status_code=400)  # nobody is left to read it

    @app.get("/healthz", tags=["health"], responses={503: {"description": "the ledger is unreachable"}})
    def healthz() -> Any:
        """200 when the ledger answers."""
        try:
            with app.state.web.sessions() as s:
                s.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.error("health: the ledger failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "ledger": "unreachable"}, status_code=503)
        return {"status": "ok", "ledger": "reachable"}

    app.include_router(webhooks.router)
    app.include_router(inbound.router)
    app.include_router(unsubscribe.router)
    app.include_router(actions.router)
    app.include_router(team_api.router)  # before the studio's: /campaigns/{id}/approve is not a control action
    app.include_router(studio_api.router)
    dashboard.install(app, settings)
    return app


PAGE_HEADERS = {"Content-Security-Policy": page_csp(), "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
# FastAPI's API docs pages load their script and styles from a CDN: only their framing is refused.
DOCS_HEADERS = {**PAGE_HEADERS, "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class SecurityHeaders:
    """The headers of every answer, set in one place (an ASGI middleware, so refusals, 404s and files get them
    too; a header a route sets itself is left as it is):

    - ``X-Content-Type-Options: nosniff`` on every answer, and ``Strict-Transport-Security`` when
      NOTIFIER_PUBLIC_URL is https;
    - on an HTML page, :data:`PAGE_HEADERS`: a CSP that loads nothing and lets no site frame the page (a page
      that needs more sets its own, built with :func:`page_csp`), ``X-Frame-Options: DENY`` for older browsers,
      and ``Referrer-Policy: no-referrer`` (unsubscribe tokens are in the URL).
    """

    def __init__(self, app: Callable[..., Awaitable[None]], *, https: bool, docs: Collection[str] = ()) -> None:
        self.app = app
        every = {"X-Content-Type-Options": "nosniff", **({"Strict-Transport-Security": HSTS} if https else {})}
        self.every = _raw(every)
        self.page, self.docs_page = _raw(PAGE_HEADERS), _raw(DOCS_HEADERS)
        self.docs = frozenset(docs)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = headers = list(message.get("headers", ()))
                present = {bytes(name).lower(): bytes(value) for name, value in headers}
                wanted = self.every
                if present.get(b"content-type", b"").startswith(b"text/html"):
                    wanted = wanted + (self.docs_page if scope["path"] in self.docs else self.page)
                headers += [(name, value) for name, value in wanted if name not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


@contextmanager
def running(app: Any, host: str = "127.0.0.1", port: int = 0, *, read_timeout: float | None = None) -> Iterator[str]:
    """Serve ``app`` on uvicorn in a thread of this process (the demo and tests), with ``notifier serve``'s
    configuration (its read timeout: :data:`notifier.web.server.READ_TIMEOUT` unless given); yields its base URL."""
    import socket
    import threading

    import uvicorn

    from notifier.web.server import READ_TIMEOUT, ServeConfig

    sock = socket.socket()
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port)") from None
    server = uvicorn.Server(ServeConfig(app, read_timeout=READ_TIMEOUT if read_timeout is None else read_timeout,
                                        access_log=False, proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="notifier-serve")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(f"notifier serve did not start on {host}:{sock.getsockname()[1]}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
