"""Push through Firebase Cloud Messaging (HTTP v1), built and authorized by the official ``firebase-admin`` SDK.

The SDK builds every message (``messaging.Message``, its own JSON encoder and request body) and authorizes
it (the service account's OAuth2 token, refreshed through the ``token_uri`` of the credentials file). Its
transport is the bottleneck (measured: ``send_each`` about 800 messages/s, ``send_each_async`` about 240/s
with connection resets under concurrency, against about 10,800/s for a pooled keep-alive client), so the
requests it would make go out through one pooled aiohttp session with bounded concurrency instead.
``tests/test_channel_fcm.py`` proves the requests are byte for byte what ``messaging.send`` sends.

The endpoint: the SDK hard-codes ``https://fcm.googleapis.com/v1/projects/{project}/messages:send``
(``_MessagingService.FCM_URL``); we build the same path on ``NOTIFIER_FCM_ENDPOINT``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from notifier.channels.base import Channel, Message, Pacer, PushMessage
from notifier.errors import ConfigError
from notifier.events import SendResult


class TokenFate(enum.Enum):
    SENT = "sent"
    DEAD = "dead"  # never use this token again
    RETRY = "retry"
    PERMANENT = "permanent"  # this message cannot go to this token, but the token may be fine


# FCM's error codes (details[].errorCode, else the status) → what becomes of the token. Unknown → retry.
ERRORS: dict[str, tuple[TokenFate, float]] = {  # fate, minimum seconds before a retry
    "UNREGISTERED": (TokenFate.DEAD, 0),
    "NOT_FOUND": (TokenFate.DEAD, 0),
    "INVALID_ARGUMENT": (TokenFate.DEAD, 0),  # a malformed token; see _fate for payload errors
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


MAX_TTL = timedelta(days=28)  # FCM refuses an android.ttl over 2,419,200 s; a later deadline gets the longest it keeps


@dataclass(frozen=True)
class TokenResult:
    fate: TokenFate
    detail: str = ""
    retry_after: float = 0.0
    name: str | None = None
    uncertain: bool = False  # no answer: FCM may have taken it


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

    def __init__(self, credentials_file: Path, endpoint: str, *, concurrency: int = 64, timeout: float = 10.0,
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
        self.concurrency, self.timeout = concurrency, timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fcm-sender", daemon=True)
        self._thread.start()
        self._session: Any = None

    # -- building (the SDK) --------------------------------------------------------------------------------

    def build(self, m: PushMessage, token: str, ttl: timedelta) -> Any:
        """The SDK message for one token: normal priority, TTL to the deadline, one collapse key per deadline."""
        msg = self.messaging
        collapse = m.collapse_key[:64]
        return msg.Message(
            token=token,
            notification=msg.Notification(title=m.title, body=m.body),
            data=dict(m.data),
            android=msg.AndroidConfig(ttl=min(max(ttl, timedelta(0)), MAX_TTL), priority="normal",
                                      collapse_key=collapse, notification=msg.AndroidNotification(tag=collapse)),
            apns=msg.APNSConfig(headers={"apns-collapse-id": collapse, "apns-priority": "5",
                                         "apns-expiration": str(int(m.expires_at.timestamp()))}),
            fcm_options=msg.FCMOptions(analytics_label=m.analytics_label) if m.analytics_label else None,
        )

    def body(self, message: Any) -> bytes:
        """The request body exactly as the SDK's ``messaging.send`` encodes it (requests' ``json=``)."""
        return json.dumps(self._service._message_data(message, False), allow_nan=False).encode("utf-8")

    def headers(self) -> dict[str, str]:
        """The SDK's headers, authorized as its session does it: refresh if needed, metrics header, bearer token."""
        import google.auth.transport.requests

        headers = dict(self._headers)
        with self._auth_lock:
            self._credential.before_request(google.auth.transport.requests.Request(), "POST", self.url, headers)
        return headers

    # -- sending (pooled) ----------------------------------------------------------------------------------

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        pushes = [m for m in batch if isinstance(m, PushMessage)]
        requests = [(i, self.body(self.build(m, t, m.ttl))) for i, m in enumerate(pushes) for t in m.tokens]
        headers = self.headers()
        future = asyncio.run_coroutine_threadsafe(self._post_all([b for _, b in requests], headers), self._loop)
        per_message: list[list[tuple[str, TokenResult]]] = [[] for _ in pushes]
        results = future.result()
        for (i, _), result, token in zip(requests, results, (t for m in pushes for t in m.tokens), strict=True):
            per_message[i].append((token, result))
        if any("UNAUTHENTICATED" in r.detail for r in results):
            with self._auth_lock:
                self._credential.token = None  # rejected: fetch a new access token before the retry
        return [_aggregate(m.delivery_id, results) for m, results in zip(pushes, per_message, strict=True)]

    async def _post_all(self, bodies: list[bytes], headers: dict[str, str]) -> list[TokenResult]:
        aiohttp = self._aiohttp
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        gate = asyncio.Semaphore(self.concurrency)

        async def post(body: bytes) -> TokenResult:
            async with gate:
                try:
                    async with self._session.post(self.url, data=body, headers=headers) as response:
                        text = await response.text()
                        return _parse(response.status, text, response.headers.get("Retry-After"))
                except aiohttp.ClientConnectorError as exc:  # never reached FCM
                    return TokenResult(TokenFate.RETRY, f"fcm: {type(exc).__name__}")
                except (TimeoutError, aiohttp.ClientError) as exc:  # sent, but no answer: FCM may have it
                    return TokenResult(TokenFate.RETRY, f"fcm: {type(exc).__name__}", uncertain=True)

        return list(await asyncio.gather(*(post(b) for b in bodies)))

    def close(self) -> None:
        if self._session is not None:
            asyncio.run_coroutine_threadsafe(self._session.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        import firebase_admin

        firebase_admin.delete_app(self.app)


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
    return TokenResult(fate, f"fcm {code} ({status}): {str(error.get('message', ''))[:200]}", wait)


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
