"""HTTP plumbing every endpoint shares: the state key, JSON answers, dropped connections, the log clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from notifier.emulator.state import EmulatorState

STATE = web.AppKey("state", EmulatorState)
JSON = "application/json"


def json_answer(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(payload).encode(), status=status, headers=headers, content_type=JSON)


def bytes_answer(body: bytes, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer whose body was encoded once, ahead of time."""
    return web.Response(body=body, status=status, headers=headers, content_type=JSON)


def drop(request: web.Request) -> web.Response:
    """Close the connection without answering; the response returned is never written."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


def utc_now() -> str:
    """When a message was accepted, as ISO 8601 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
