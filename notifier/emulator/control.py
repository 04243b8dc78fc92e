"""The emulator's own endpoints under ``/_emulator``: read the log and counters, set faults and events, reset."""

from __future__ import annotations

import json

from aiohttp import web

from notifier.emulator.events import EventsConfig, EventsError
from notifier.emulator.faults import FaultsError
from notifier.emulator.wire import STATE, json_answer


class _BadQuery(ValueError):
    """A paging parameter that is not a whole number from 0."""


def _offset(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise _BadQuery(f"{name} must be a whole number from 0")
    return int(raw)


async def messages(request: web.Request) -> web.Response:
    """Accepted emails and pushes from the offsets ``since_email``/``since_push``, at most ``limit`` of each.

    In the ``ids`` log mode an entry is only ``{"delivery_id": 123}`` (``null`` when the message carried none):
    the emulator kept nothing else.
    """
    state = request.app[STATE]
    try:
        since_email = _offset(request, "since_email", 0) or 0
        since_push = _offset(request, "since_push", 0) or 0
        limit = _offset(request, "limit", None)
    except _BadQuery as exc:
        return json_answer({"error": str(exc)}, 400)
    emails = state.email_page(since_email, limit)
    pushes = state.push_page(since_push, limit)
    return json_answer({"log": state.log, "emails": emails, "pushes": pushes,
                        "next_email": since_email + len(emails), "next_push": since_push + len(pushes),
                        "total_emails": state.emails_accepted, "total_pushes": state.pushes_accepted})


async def stats(request: web.Request) -> web.Response:
    return json_answer(request.app[STATE].stats())


async def faults(request: web.Request) -> web.Response:
    """GET: the faults in force. POST: merge a partial configuration into them (the keys: see ``faults``)."""
    state = request.app[STATE]
    if request.method == "POST":
        try:
            state.faults.update(json.loads(await request.read() or b"{}"))
        except ValueError as exc:
            return json_answer({"error": f"not JSON: {exc}"}, 400)
        except FaultsError as exc:
            return json_answer({"error": str(exc)}, 400)
    return json_answer(state.faults.as_json())


async def events(request: web.Request) -> web.Response:
    """GET: the Event Webhook's configuration and counters. POST: replace the configuration (``url`` required).

    A POST keeps what is pending; it goes to the new url, with outcomes drawn afresh from the new seed.
    """
    feed = request.app[STATE].events
    if request.method == "POST":
        try:
            feed.configure(EventsConfig.from_json(json.loads(await request.read() or b"{}")))
        except EventsError as exc:
            return json_answer({"error": str(exc), "field": exc.field}, 400)
        except ValueError as exc:
            return json_answer({"error": f"not JSON: {exc}", "field": "body"}, 400)
    return json_answer(feed.status())


async def events_key(request: web.Request) -> web.Response:
    """The public key a receiver verifies the signatures with, base64 DER as SendGrid's settings page shows it."""
    return json_answer({"public_key": request.app[STATE].events.signer.public_key})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.Response(status=204)


async def ping(request: web.Request) -> web.Response:
    """The cheapest answer the server can give: the baseline for benchmarks."""
    return web.Response(status=204)
