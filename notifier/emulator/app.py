"""The aiohttp application that wires the endpoints to one in-memory state, and the blocking server around it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from notifier.emulator import control, events, fcm, oauth, sendgrid
from notifier.emulator.state import EmulatorState
from notifier.emulator.wire import STATE
from notifier.errors import UserError


def make_app(state: EmulatorState | None = None) -> web.Application:
    """The emulator as an aiohttp application; pass a state to inspect or seed it in-process."""
    app = web.Application(client_max_size=sendgrid.MAX_BODY)
    app[STATE] = state if state is not None else EmulatorState()
    app.router.add_post("/v3/mail/send", sendgrid.send_mail)
    app.router.add_post("/token", oauth.token)
    app.router.add_post("/v1/projects/{project}/messages:send", fcm.send_message)
    app.router.add_get("/_emulator/messages", control.messages)
    app.router.add_get("/_emulator/stats", control.stats)
    app.router.add_get("/_emulator/faults", control.faults)
    app.router.add_post("/_emulator/faults", control.faults)
    app.router.add_get("/_emulator/events", control.events)
    app.router.add_post("/_emulator/events", control.events)
    app.router.add_get("/_emulator/events/key", control.events_key)
    app.router.add_post("/_emulator/reset", control.reset)
    app.router.add_get("/_emulator/ping", control.ping)
    app.cleanup_ctx.append(_post_events)
    return app


async def _post_events(app: web.Application) -> AsyncIterator[None]:
    """The Event Webhook poster runs on the server's loop for as long as the server does."""
    task = asyncio.create_task(events.post_forever(app[STATE].events))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def serve(host: str, port: int, credentials: Path | None = None, log: str = "full",
          events_config: events.EventsConfig | None = None, events_signer: events.EventSigner | None = None) -> None:
    """Serve until SIGINT or SIGTERM; token requests are verified against ``credentials`` when given.

    ``log`` is the state's log mode: ``full`` keeps every message, ``ids`` only their delivery ids (for benchmarks).
    ``events_config`` and ``events_signer`` set up the Event Webhook (default: no url, a key made at start).
    """
    state = EmulatorState(log=log, events=events_config, events_signer=events_signer)
    if credentials is not None:
        oauth.trust_credentials(state, oauth.load_credentials(credentials))
    asyncio.run(_serve(make_app(state), host, port))


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port, backlog=1024).start()
        except OSError as exc:
            raise UserError(f"emulator cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        print(f"emulator listening on http://{host}:{port}", flush=True)
        print(f"event webhook public key: {app[STATE].events.signer.public_key}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
