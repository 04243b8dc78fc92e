"""The FastAPI application of ``notifier serve``: one :class:`Web` holds the settings, the ledger and the keys, and
the routers of ``webhooks``, ``unsubscribe``, ``actions`` and the ``dashboard`` share it. Every refusal is a
:class:`RequestRefused` with its status, answered as ``{"error": "..."}`` (a page, on the dashboard's paths); a
ledger that cannot be reached is a 503, which providers retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from notifier import __version__
from notifier.config import Settings
from notifier.errors import ConfigError, RequestRefused

log = logging.getLogger(__name__)


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("notifier serve needs its web extra: pip install 'notifier[web]'") from None
    return fastapi


@dataclass
class Web:
    """What every endpoint shares: settings, the ledger's sessions, the webhook key and the clock."""

    settings: Settings
    sessions: sessionmaker[Session]
    webhook: Any  # the SDK's EventWebhook verifier, or None when NOTIFIER_SENDGRID_WEBHOOK_KEY is not set
    clock: Callable[[], datetime]

    def now(self) -> datetime:
        return self.clock()


def create_app(settings: Settings, sessions: sessionmaker[Session] | None = None, *,
               clock: Callable[[], datetime] | None = None) -> Any:
    """The application; ``sessions`` defaults to the ledger of ``settings`` (migrated to head)."""
    fastapi = _fastapi()
    from fastapi.responses import JSONResponse

    from notifier.channels.sendgrid_events import load_verification_key
    from notifier.web import actions, unsubscribe, webhooks

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

    @app.exception_handler(RequestRefused)
    async def refused(request: Any, exc: RequestRefused) -> Any:
        page = app.state.refusal_page(request, exc)  # the dashboard answers a browser on its paths with a page
        return page if page is not None else JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(SQLAlchemyError)
    async def ledger_down(_request: Any, exc: SQLAlchemyError) -> Any:
        log.error("the ledger failed: %s", type(exc).__name__)
        return JSONResponse({"error": "the ledger is unavailable; try again later"}, status_code=503)

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
    app.include_router(unsubscribe.router)
    app.include_router(actions.router)
    from notifier.web.dashboard.controls import install

    install(app, settings)
    return app


def web_of(request: Any) -> Web:
    """The shared state of the application serving ``request``."""
    return request.app.state.web  # type: ignore[no-any-return]


async def read_body(request: Any, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes (before reading it, when the client says
    its length)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRefused(413, f"the body is {declared} bytes; at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRefused(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@contextmanager
def running(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` on uvicorn in a thread of this process (the demo and tests); yields its base URL."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False))
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
