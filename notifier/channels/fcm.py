"""Push through Firebase Cloud Messaging (HTTP v1), built and authorized by the official ``firebase-admin`` SDK.

The SDK builds every message (``messaging.Message``, its own JSON encoder and request body) and authorizes
it (the service account's OAuth2 token, refreshed through the ``token_uri`` of the credentials file). Its
transport is the bottleneck (measured: ``send_each`` about 800 messages/s, ``send_each_async`` about 240/s
with connection resets under concurrency, against about 10,800/s for a pooled keep-alive client), so the
requests it would make go out through one pooled aiohttp session with bounded concurrency instead.
``tests/test_channel_fcm.py`` proves the requests are byte for byte what ``messaging.send`` sends.

A slow FCM never turns waiting into doubt: the channel has one gate of ``concurrency`` requests, shared by every
slice and every call, over a pool of as many connections, so a request waits at our gate (no timeout runs there),
never inside aiohttp's pool. Once it has a connection, the timeouts are per phase (aiohttp's ``ClientTimeout`` with
``connect``/``sock_connect`` and ``sock_read``, no ``total``): a request that never left (no connection within the
connect timeout, refused, DNS; aiohttp's ``ConnectionTimeoutError`` and ``ClientConnectorError``) is a plain retry;
only one written and then unanswered (``SocketTimeoutError`` after the read timeout, a cut connection) is
``uncertain``, since FCM may have taken it (see ``_unanswered``).

Our neutral message fields become FCM's words here: ``metadata`` (the ledger ids) is the message's ``data``, and
the last of its ``tags`` is its analytics label (``analytics_label``). Its ``link`` (the https page of its most
urgent deadline) is ``data["link"]`` for our Android and iOS apps, which open it on a tap (FCM hands ``data`` to the
launched activity's intent extras on Android and to the APNs payload's custom keys on iOS; docs/templates.md, "Where a
push leads", is the app's contract), and ``webpush.fcm_options.link``, which FCM's web SDK opens itself. Android's
``click_action`` is left unset: it names an intent filter the app must declare, and a name it lacks makes the tap
open nothing; APNs has no link field of its own.

The endpoint: the SDK hard-codes ``https://fcm.googleapis.com/v1/projects/{project}/messages:send``
(``_MessagingService.FCM_URL``); we build the same path on ``NOTIFIER_FCM_ENDPOINT``.

Refused credentials block the channel (a ChannelConfigError naming GOOGLE_APPLICATION_CREDENTIALS): a token
that cannot be fetched or refreshed, or every token of a batch refused (REFUSALS) once more with a fresh one.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from notifier.channels.base import Channel, Message, Pacer, PushMessage
from notifier.errors import ChannelConfigError, ConfigError, TransientError
from notifier.events import SendResult

log = logging.getLogger(__name__)


class TokenFate(enum.Enum):
    SENT = "sent"
    DEAD = "dead"  # never use this token again
    RETRY = "retry"
    PERMANENT = "permanent"  # this message cannot go to this token, but the token may be fine


# FCM's error codes (details[].errorCode, else the status) → what becomes of the token. A code not in the table is
# retried on 429 and 5xx and fails for this token otherwise (see _parse).
ERRORS: dict[str, tuple[TokenFate, float]] = {  # fate, minimum seconds before a retry
    "UNREGISTERED": (TokenFate.DEAD, 0),
    "NOT_FOUND": (TokenFate.DEAD, 0),
    "INVALID_ARGUMENT": (TokenFate.DEAD, 0),  # a malformed token; a payload error keeps the token (see _parse)
    "SENDER_ID_MISMATCH": (TokenFate.PERMANENT, 0),
    "THIRD_PARTY_AUTH_ERROR": (TokenFate.PERMANENT, 0),
    "APNS_AUTH_ERROR": (TokenFate.PERMANENT, 0),
    "PERMISSION_DENIED": (TokenFate.PERMANENT, 0),
    "QUOTA_EXCEEDED": (TokenFate.RETRY, 60),
    "RESOURCE_EXHAUSTED": (TokenFate.RETRY, 60),
    "UNAVAILABLE": (TokenFate.RETRY, 0),
    "INTERNAL": (TokenFate.RETRY, 0),
    "UNAUTHENTICATED": (TokenFate.RETRY, 0),
}


# Codes that, answered for every token of a batch even with a fresh access token, mean the service account itself is
# refused: code → what it means. Answered for some tokens only, they keep their fate in ERRORS (SENDER_ID_MISMATCH,
# also a 403, names its own errorCode and is always the token's).
REFUSALS: dict[str, str] = {
    "UNAUTHENTICATED": "the service account's access token was refused",
    "PERMISSION_DENIED": "the service account may not send messages for this project",
}
CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"

ENCODED_VARIANTS = 512  # SDK encodings kept (one per variant and tick); forgotten all at once past it
POST_SLICE = 100  # messages encoded before their requests go out; the next slice is encoded while they fly
CLOSE_WAIT = 10.0  # seconds close() waits for the pooled session to close on its loop
MAX_TTL = timedelta(days=28)  # FCM refuses an android.ttl over 2,419,200 s; a later deadline gets the longest it keeps


@dataclass(frozen=True)
class TokenResult:
    fate: TokenFate
    detail: str = ""
    retry_after: float = 0.0
    name: str | None = None
    uncertain: bool = False  # no answer: FCM may have taken it
    code: str = ""  # FCM's errorCode or status, when it answered an error


def _sdk() -> Any:
    try:
        import aiohttp
        import firebase_admin
        from firebase_admin import credentials, messaging
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("NOTIFIER_TRANSPORT=providers needs firebase-admin and aiohttp: "
                          "pip install 'notifier[providers]'") from None
    return aiohttp, firebase_admin, credentials, messaging


class FcmPush(Channel):
    """The push channel on FCM: one request per token, all tokens of a recipient."""

    name = "push"
    provider = "fcm"
    max_batch = 500

    def __init__(self, credentials_file: Path, endpoint: str, *, concurrency: int = 64, connect_timeout: float = 10.0,
                 read_timeout: float = 10.0, batch_seconds: float | None = None,
                 rate_limiter: Pacer | None = None) -> None:
        super().__init__(rate_limiter)
        self._aiohttp, firebase_admin, credentials, self.messaging = _sdk()
        try:
            certificate = credentials.Certificate(str(credentials_file))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"GOOGLE_APPLICATION_CREDENTIALS: {credentials_file}: {exc}") from None
        self.app = firebase_admin.initialize_app(certificate, name=f"notifier-{uuid.uuid4().hex}")
        from firebase_admin import _http_client

        self._service = self.messaging._get_messaging_service(self.app)
        self.url = f"{endpoint.rstrip('/')}/v1/projects/{self.app.project_id}/messages:send"
        self._headers = {**_http_client.METRICS_HEADERS, **self._service._fcm_headers,
                         "Content-Type": "application/json"}
        self._credential = self.app.credential.get_credential()
        self._auth_lock = threading.Lock()
        self.concurrency, self.connect_timeout, self.read_timeout = concurrency, connect_timeout, read_timeout
        # A request still waiting at the gate this long after its batch began is not sent (a plain retry): a slow FCM
        # must not hold a batch past its lease, after which its rows would be recovered as uncertain.
        self.batch_seconds = batch_seconds
        # Not sent: no connection (refused, DNS, TLS) or none within the connect timeout. Anything else unanswered
        # may have reached FCM.
        self._not_sent = (self._aiohttp.ClientConnectorError, self._aiohttp.ConnectionTimeoutError)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fcm-sender", daemon=True)
        self._thread.start()
        self._session: Any = None  # made on the loop by _pool(), with the gate
        self._gate: asyncio.Semaphore | None = None
        self._closing = threading.Lock()
        self._encoded: dict[tuple[Any, ...], dict[str, Any]] = {}  # see bodies()
        self._closed = False

    # -- building (the SDK) --------------------------------------------------------------------------------

    def build(self, m: PushMessage, token: str, ttl: timedelta) -> Any:
        """The SDK message for one token: normal priority, TTL to the deadline, one collapse key per deadline, and
        the page a tap opens in ``data`` (apps) and ``webpush.fcm_options`` (browsers)."""
        msg = self.messaging
        collapse = m.collapse_key[:64]
        label = analytics_label(m.tags)
        return msg.Message(
            token=token,
            notification=msg.Notification(title=m.title, body=m.body),
            data=m.data,
            android=msg.AndroidConfig(ttl=min(max(ttl, timedelta(0)), MAX_TTL), priority="normal",
                                      collapse_key=collapse, notification=msg.AndroidNotification(tag=collapse)),
            apns=msg.APNSConfig(headers={"apns-collapse-id": collapse, "apns-priority": "5",
                                         "apns-expiration": str(int(m.expires_at.timestamp()))}),
            webpush=msg.WebpushConfig(fcm_options=msg.WebpushFCMOptions(link=m.link)) if m.link else None,
            fcm_options=msg.FCMOptions(analytics_label=label) if label else None,
        )

    def body(self, message: Any) -> bytes:
        """The request body exactly as the SDK's ``messaging.send`` encodes it (requests' ``json=``)."""
        return json.dumps(self._service._message_data(message, False), allow_nan=False).encode("utf-8")

    def bodies(self, m: PushMessage) -> list[bytes]:
        """One body per token, each exactly what ``body(build(m, token))`` gives. The SDK's validation and encoding
        is most of a push's CPU (measured: 115 µs a message), and the messages of one variant differ only in token
        and ``data`` (the ledger ids): it runs once per variant, and each message's body is that encoding with its
        own ``data`` and token put in place (the SDK passes ``data`` through as given, a dict of strings)."""
        if not m.tokens:
            return []
        data = m.data
        key = (m.title, m.body, m.link, m.collapse_key, m.expires_at, m.ttl, m.tags, tuple(data))
        encoded = self._encoded.get(key)
        if encoded is None:
            if len(self._encoded) >= ENCODED_VARIANTS:
                self._encoded.clear()
            encoded = self._encoded[key] = self._service._message_data(self.build(m, m.tokens[0], m.ttl), False)
        message = dict(encoded["message"])
        if "data" in message:
            message["data"] = data
        body = {**encoded, "message": message}
        out = []
        for token in m.tokens:
            message["token"] = token
            out.append(json.dumps(body, allow_nan=False).encode("utf-8"))
        return out

    def headers(self) -> dict[str, str]:
        """The SDK's headers, authorized as its session does it: refresh if needed, metrics header, bearer token.

        A token that cannot be fetched (the key refused, the token endpoint unreachable) is a ChannelConfigError.
        """
        import google.auth.exceptions as auth_errors
        import google.auth.transport.requests

        headers = dict(self._headers)
        try:
            with self._auth_lock:
                self._credential.before_request(google.auth.transport.requests.Request(), "POST", self.url, headers)
        except (auth_errors.RefreshError, auth_errors.TransportError, auth_errors.DefaultCredentialsError) as exc:
            reason = f"{type(exc).__name__}: {exc.args[0] if exc.args else ''}"[:200]
            raise ChannelConfigError(f"fcm: the service account's token could not be refreshed ({reason}): "
                                     f"fix {CREDENTIALS}", setting=CREDENTIALS, provider="fcm") from exc
        return headers

    def _forget_token(self) -> None:
        with self._auth_lock:
            self._credential.token = None  # rejected: fetch a new access token before the next request

    # -- sending (pooled) ----------------------------------------------------------------------------------

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        pushes = [m for m in batch if isinstance(m, PushMessage)]
        owners = [i for i, m in enumerate(pushes) for _ in m.tokens]
        tokens = [t for m in pushes for t in m.tokens]
        results = self._post_authorized(pushes)
        _log_unanswered(results)
        per_message: list[list[tuple[str, TokenResult]]] = [[] for _ in pushes]
        for i, token, result in zip(owners, tokens, results, strict=True):
            per_message[i].append((token, result))
        return [_aggregate(m.delivery_id, answers) for m, answers in zip(pushes, per_message, strict=True)]

    def _post_now(self, slices: Iterable[list[bytes]]) -> list[TokenResult]:
        """Post every body on the pooled session with the current access token (fetched first if need be); each
        slice goes out as soon as it is built, so encoding the next one overlaps the requests of this one."""
        if self._closed:  # nothing can leave: a plain retry, never uncertain
            raise TransientError("fcm: the push channel is closed", provider="fcm")
        headers = self.headers()
        give_up_at = None if self.batch_seconds is None else time.monotonic() + self.batch_seconds
        futures = [asyncio.run_coroutine_threadsafe(self._post_all(bodies, headers, give_up_at), self._loop)
                   for bodies in slices]
        return [result for future in futures for result in future.result()]

    def _post_authorized(self, pushes: Sequence[PushMessage]) -> list[TokenResult]:
        """Every request's answer; all of them refused twice, the second time with a fresh token: ChannelConfigError."""
        built: list[list[bytes]] = []

        def slices() -> Iterator[list[bytes]]:
            for lo in range(0, len(pushes), POST_SLICE):
                built.append([b for m in pushes[lo:lo + POST_SLICE] for b in self.bodies(m)])
                yield built[-1]

        results = self._post_now(slices())
        if _all_refused(results):  # FCM took none of them: ask again once with a new access token
            self._forget_token()
            results = self._post_now(built)
            if _all_refused(results):
                first = results[0]
                raise ChannelConfigError(f"fcm: {REFUSALS[first.code]} ({first.detail}): fix {CREDENTIALS}",
                                         setting=CREDENTIALS, provider="fcm")
        if any(r.code == "UNAUTHENTICATED" for r in results):
            self._forget_token()
        return results

    def _pool(self) -> tuple[Any, asyncio.Semaphore]:
        """The pooled session and the channel's one gate, made on first use on the sender loop (so both belong to it):
        ``concurrency`` requests in flight and as many connections, per-phase timeouts and no ``total``, which would
        count the time spent queueing (see the module's docstring)."""
        if self._session is None or self._gate is None:
            aiohttp = self._aiohttp
            self._gate = asyncio.Semaphore(self.concurrency)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout,
                                              sock_connect=self.connect_timeout, sock_read=self.read_timeout))
        return self._session, self._gate

    async def _post_all(self, bodies: list[bytes], headers: dict[str, str],
                        give_up_at: float | None = None) -> list[TokenResult]:
        session, gate = self._pool()

        async def post(body: bytes) -> TokenResult:
            async with gate:
                if give_up_at is not None and time.monotonic() > give_up_at:  # never left: a plain retry
                    return TokenResult(TokenFate.RETRY, f"fcm: not sent (the batch took over {self.batch_seconds:g} s, "
                                                        f"half of NOTIFIER_LEASE_SECONDS)")
                try:
                    async with session.post(self.url, data=body, headers=headers) as response:
                        text = await response.text()
                        return _parse(response.status, text, response.headers.get("Retry-After"))
                except (TimeoutError, self._aiohttp.ClientError) as exc:
                    return _unanswered(exc, self._not_sent)

        return list(await asyncio.gather(*(post(b) for b in bodies)))

    def close(self) -> None:
        """Close the pooled session on its own loop, then stop and close that loop and let go of the SDK's app.

        Idempotent; a send after it is a plain retry. A session that does not close within CLOSE_WAIT is logged
        and left to the process's exit (the loop is then stopped but not closed)."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close_pool(), self._loop).result(timeout=CLOSE_WAIT)
            except Exception as exc:  # a hung close must not hang the process that is shutting down
                log.warning("fcm: the connection pool did not close cleanly (%s)", type(exc).__name__)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CLOSE_WAIT)
        if not self._thread.is_alive():
            self._loop.close()
        import firebase_admin

        firebase_admin.delete_app(self.app)

    async def _close_pool(self) -> None:
        session, self._session, self._gate = self._session, None, None
        if session is not None:
            await session.close()  # aiohttp 3.14 waits here for the connections' transports to close


def analytics_label(tags: Sequence[str]) -> str | None:
    """The FCM analytics label of a message: its last tag as at most 50 of [A-Za-z0-9-_.~%] (any other character
    becomes ``_``); None without tags."""
    if not tags:
        return None
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.~%") else "_" for c in tags[-1])[:50] or None


def _parse(status: int, text: str, retry_after: str | None) -> TokenResult:
    """One FCM answer → the fate of its token (the errorCode in details wins over the status)."""
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        doc = {}
    if status == 200:
        return TokenResult(TokenFate.SENT, name=doc.get("name"))
    error = doc.get("error") or {}
    codes = [d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict) and d.get("errorCode")]
    code = codes[0] if codes else error.get("status") or f"HTTP {status}"
    fate, minimum = ERRORS.get(code, (TokenFate.RETRY if status >= 500 or status == 429 else TokenFate.PERMANENT, 0))
    if code == "INVALID_ARGUMENT" and "token" not in str(error.get("message", "")).lower():
        fate = TokenFate.PERMANENT  # the payload, not the token, is wrong: keep the token
    try:
        wait = max(float(retry_after or 0), minimum)
    except ValueError:
        wait = minimum
    return TokenResult(fate, f"fcm {code} ({status}): {str(error.get('message', ''))[:200]}", wait, code=code)


def _unanswered(exc: BaseException, not_sent: tuple[type[BaseException], ...]) -> TokenResult:
    """A request without an answer: one that never left (``not_sent``: no connection, none in time) is a plain retry;
    one written and then unanswered (a read timeout, a cut connection) is uncertain, since FCM may have taken it."""
    if isinstance(exc, not_sent):
        return TokenResult(TokenFate.RETRY, f"fcm: not sent ({type(exc).__name__})")
    return TokenResult(TokenFate.RETRY, f"fcm: no answer ({type(exc).__name__})", uncertain=True)


def _log_unanswered(results: Sequence[TokenResult]) -> None:
    """One line per batch when requests got no answer: counts only, never a token."""
    unanswered = [r for r in results if r.fate == TokenFate.RETRY and not r.code]
    if unanswered:
        uncertain = sum(r.uncertain for r in unanswered)
        log.warning("fcm: %d of %d requests unanswered: %d never left (plain retry), %d written, then no answer "
                    "(uncertain)", len(unanswered), len(results), len(unanswered) - uncertain, uncertain)


def _all_refused(results: list[TokenResult]) -> bool:
    return bool(results) and all(r.code in REFUSALS for r in results)


def _aggregate(delivery_id: int, results: list[tuple[str, TokenResult]]) -> SendResult:
    """One recipient's outcome from every token's: delivered to any device counts as sent."""
    dead = tuple(t for t, r in results if r.fate == TokenFate.DEAD)
    sent = [r for _, r in results if r.fate == TokenFate.SENT]
    if sent:
        return SendResult.sent(delivery_id, sent[0].name or "", dead_tokens=dead)
    details = "; ".join(dict.fromkeys(r.detail for _, r in results)) or "no active token"
    if len(dead) == len(results):
        return SendResult.invalid(delivery_id, f"every push token is invalid: {details}", dead_tokens=dead)
    retries = [r for _, r in results if r.fate == TokenFate.RETRY]
    if retries:
        return SendResult.retry(delivery_id, details, max(r.retry_after for r in retries) or None, dead_tokens=dead,
                                uncertain=any(r.uncertain for r in retries))
    return SendResult.failed(delivery_id, details, dead_tokens=dead)
