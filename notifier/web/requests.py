"""What the routers of ``notifier serve`` share, below the application that mounts them: :class:`Web` (settings,
the ledger's sessions, the webhook key and the clock), reading a request's body within a limit, and the
Content-Security-Policy of a page. ``app.py`` imports the routers; the routers import only this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.errors import RequestRefused


@dataclass
class Web:
    """What every endpoint shares: settings, the ledger's sessions, the webhook key and the clock."""

    settings: Settings
    sessions: sessionmaker[Session]
    webhook: Any  # the SDK's EventWebhook verifier, or None when NOTIFIER_SENDGRID_WEBHOOK_KEY is not set
    clock: Callable[[], datetime]

    def now(self) -> datetime:
        return self.clock()


def web_of(request: Any) -> Web:
    """The shared state of the application serving ``request``."""
    return request.app.state.web  # type: ignore[no-any-return]


def client_address(request: Any) -> str:
    """The connecting client's address, for the audit log ("-" when unknown); behind a proxy, what uvicorn's
    ``--forwarded-allow-ips`` lets it read from X-Forwarded-For."""
    return (request.client.host if request.client else "-")[:64]


async def read_body(request: Any, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes (before reading it, when the client says
    its length). A client that goes away first raises starlette's ``ClientDisconnect``, which the application
    answers for every route (one log line, no traceback)."""
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


def page_csp(**allowed: str) -> str:
    """A page's Content-Security-Policy: it loads nothing, posts its forms here only, and no site may frame it;
    ``allowed`` adds what the page needs (``style_src="'sha256-…'"`` becomes ``style-src 'sha256-…'``)."""
    directives = {"default-src": "'none'", **{name.replace("_", "-"): value for name, value in allowed.items()},
                  "form-action": "'self'", "frame-ancestors": "'none'", "base-uri": "'none'"}
    return "; ".join(f"{name} {value}" for name, value in directives.items())
