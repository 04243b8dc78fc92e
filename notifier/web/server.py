"""How ``notifier serve`` runs on uvicorn, for the command and for :func:`notifier.web.app.running` alike: one
configuration, with the read timeout uvicorn lacks.

uvicorn (0.54, on h11) waits without end for a connection's first request, for a request head that stops
halfway, and for a body that stops coming; only an idle keep-alive connection between two requests is closed
(``timeout_keep_alive``). A few hundred silent sockets would hold the server's file descriptors for good. Here a
connection has ``read_timeout`` seconds to send each request's head, and its body may pause that long at most
between two reads (as nginx's ``client_header_timeout`` and ``client_body_timeout``); then it is closed. The
application sees a body cut short as a client that went away, and logs one line for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

READ_TIMEOUT = 20.0  # seconds for a request's head, and at most between two reads of its body


class ServeConfig(uvicorn.Config):
    """uvicorn's configuration on our protocol, with its read timeout."""

    def __init__(self, app: Any, *, read_timeout: float = READ_TIMEOUT, **kwargs: Any) -> None:
        kwargs.setdefault("log_level", "warning")
        super().__init__(app, http=ReadTimeoutH11Protocol, **kwargs)
        self.read_timeout = read_timeout


class _ReadClockFlow(FlowControl):
    """uvicorn's flow control, telling when reading resumes: the client's clock starts again then. Time spent while
    the application had not taken what came is not the client's, and without this a timer due just as the
    application resumed reading closed a connection whose next bytes were already on their way."""

    def __init__(self, transport: asyncio.Transport, on_resume: Any) -> None:
        super().__init__(transport)
        self._on_resume = on_resume

    def resume_reading(self) -> None:
        paused = self.read_paused
        super().resume_reading()
        if paused:
            self._on_resume()


class ReadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that owes a request's head or body for too long."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout: float = getattr(self.config, "read_timeout", READ_TIMEOUT)
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _ReadClockFlow(transport, lambda: self._watch(restart=True))
        self._watch(restart=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch(restart=self.conn.their_state is h11.SEND_BODY)  # a head's clock runs on; a body's restarts

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch(restart=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def _waiting_for_client(self) -> bool:
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()

    def _watch(self, *, restart: bool) -> None:
        if not self._waiting_for_client():
            self._stop()
        elif restart or self._read_timer is None:
            self._stop()
            self._read_timer = self.loop.call_later(self.read_timeout, self._timed_out)

    def _stop(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if not self._waiting_for_client():
            return
        if self.flow.read_paused:  # the application has not taken what came yet: the client is not the one late
            self._watch(restart=True)
            return
        self.transport.close()  # uvicorn's connection_lost then tells the application the client went away
