"""A local SendGrid v3 mail API, FCM HTTP v1 API and Google token endpoint, with fault injection.

The real ``sendgrid`` and ``firebase-admin`` SDKs can be pointed at it. One asyncio server, state in memory:

    app.py       make_app() wires the endpoints; serve() runs them until SIGINT/SIGTERM
    sendgrid.py  POST /v3/mail/send: SendGrid's checks, one log entry per personalization
    fcm.py       POST /v1/projects/{project}/messages:send: FCM's checks and error shapes
    oauth.py     POST /token: service-account JWT → access token; write_credentials()
    events.py    SendGrid's Event Webhook: processed/delivered/bounce/dropped/... per accepted personalization,
                 posted in signed batches (ECDSA P-256, as SendGrid signs) to a configured url
    control.py   /_emulator/messages, stats, faults, events, events/key, reset, ping
    faults.py    shares of dropped, 401, 403, 429, 500 and 503 answers per provider from a seeded generator;
                 a refused API key (SendGrid) and a refused token exchange (Google) for every request
    state.py     the log, counters, faults, issued tokens, trusted keys and the event queue
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401
    import cryptography  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(f"notifier.emulator needs aiohttp and cryptography ({exc.name} is missing): "
                      "pip install aiohttp cryptography") from exc

from notifier.emulator.app import make_app, serve
from notifier.emulator.events import EventsConfig, EventsError, EventSigner
from notifier.emulator.faults import FaultsError
from notifier.emulator.oauth import trust_credentials, write_credentials
from notifier.emulator.state import EmulatorState

__all__ = ["EmulatorState", "EventSigner", "EventsConfig", "EventsError", "FaultsError", "make_app", "serve",
           "trust_credentials", "write_credentials"]
