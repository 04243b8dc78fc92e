"""SendGrid's Event Webhook: verify a signed batch, and read its events in our words (``events.EventType``).

SendGrid signs ``timestamp + raw body`` with ECDSA P-256 (SHA-256) and sends the base64 signature and the
timestamp in two headers; the verification key is the base64 public key its settings page shows. The SDK's
``EventWebhook`` helper checks the signature. SendGrid copies a message's ``custom_args`` to the top level of each
of its events, which is how an event finds its ledger row (``delivery_id``, ``campaign_id``).

SendGrid's words map onto ours in the tables below; a word not in them becomes ``EventType.UNKNOWN`` with the raw
event kept, so it changes nothing until someone maps it.
"""

from __future__ import annotations

import binascii
import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from notifier.errors import ConfigError, RequestRefused
from notifier.events import EventType, ProviderEvent, RejectReason

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
PROVIDER = "sendgrid"
MAX_EVENTS = 10_000  # SendGrid posts at most a few thousand per batch
MAX_EVENT_ID = 128

# SendGrid's ``event`` → ours. ``bounce`` and ``dropped`` also get a RejectReason from the tables after this one.
EVENT_TYPES: dict[str, EventType] = {
    "processed": EventType.QUEUED,
    "deferred": EventType.DEFERRED,
    "delivered": EventType.DELIVERED,
    "bounce": EventType.BOUNCED,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
}
# A bounce's ``type``: ``bounce`` is a hard bounce (the address is wrong), ``blocked`` a refusal for reputation or
# policy (the address may be fine).
BOUNCE_TYPES: dict[str, RejectReason] = {"bounce": RejectReason.INVALID, "blocked": RejectReason.BLOCKED}
# A drop's ``reason`` (lower case): SendGrid would not even try, and says why.
DROP_REASONS: dict[str, RejectReason] = {
    "invalid": RejectReason.INVALID,
    "invalid address": RejectReason.INVALID,
    "invalid smtpapi header": RejectReason.OTHER,
    "bounced address": RejectReason.BOUNCED,
    "spam reporting address": RejectReason.SPAM,
    "spam content": RejectReason.SPAM,
    "unsubscribed address": RejectReason.UNSUBSCRIBED,
    "recipient list over package quota": RejectReason.OTHER,
}
_ADDRESS_FREE = ("status", "type", "bounce_classification", "reason")  # ``reason`` is scrubbed below


def load_verification_key(public_key: str) -> Any:
    """The key of ``NOTIFIER_SENDGRID_WEBHOOK_KEY`` (base64, as SendGrid's settings page shows it), or a
    ConfigError that says what is wrong with it."""
    try:
        from sendgrid.helpers.eventwebhook import EventWebhook
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("verifying SendGrid's webhook needs the SendGrid SDK: pip install 'notifier[web]'") from None
    from cryptography.hazmat.primitives.asymmetric import ec

    text = "".join(public_key.split())
    try:
        helper = EventWebhook(text)
    except (ValueError, TypeError, binascii.Error):
        helper = None
    if helper is None or not isinstance(helper.public_key, ec.EllipticCurvePublicKey):
        raise ConfigError("NOTIFIER_SENDGRID_WEBHOOK_KEY is not a base64 public key (copy the verification key from "
                          "SendGrid's Mail Settings → Signed Event Webhook)")
    return helper


def verify(helper: Any, body: bytes, headers: Mapping[str, str], *, tolerance: float,
           now: float | None = None) -> None:
    """Refuse a batch that SendGrid did not sign (401 without the headers, 403 with a wrong signature) or that
    was signed more than ``tolerance`` seconds from ``now`` (403; 0 turns the age check off)."""
    signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise RequestRefused(401, f"missing {SIGNATURE_HEADER if not signature else TIMESTAMP_HEADER} header")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise RequestRefused(403, f"{TIMESTAMP_HEADER} is not a Unix time")
    try:
        payload = body.decode("utf-8")
        genuine = helper.verify_signature(payload, signature, timestamp)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        genuine = False
    if not genuine:
        raise RequestRefused(403, "the signature does not match the body and timestamp")
    age = (time.time() if now is None else now) - int(timestamp)
    if tolerance > 0 and abs(age) > tolerance:
        raise RequestRefused(403, f"the batch was signed {age:.0f} s ago, beyond NOTIFIER_WEBHOOK_TOLERANCE_SECONDS "
                                f"({tolerance:g} s): a replay, or a clock out of step")


def parse(body: bytes) -> list[ProviderEvent]:
    """Every event of a verified batch in our words; a malformed batch is refused whole (400, naming the event
    and the field), so nothing of it is applied."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestRefused(400, "the body is not JSON") from None
    except RecursionError:  # the C decoder refuses nesting past the interpreter's recursion limit
        raise RequestRefused(400, "the body's JSON is nested too deeply") from None
    if not isinstance(items, list):
        raise RequestRefused(400, "the body is not a JSON array of events")
    if len(items) > MAX_EVENTS:
        raise RequestRefused(413, f"{len(items)} events in one batch; at most {MAX_EVENTS}")
    return list(_events(items))


def _events(items: list[Any]) -> Iterator[ProviderEvent]:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestRefused(400, f"event {i}: not a JSON object")
        nul = next((k for k, v in item.items() if "\x00" in str(k) or (isinstance(v, str) and "\x00" in v)), None)
        if nul is not None:  # no database keeps it as text: refused here, not retried forever
            raise RequestRefused(400, f"event {i}: {str(nul)[:40]!r}: holds a NUL character")
        event_id, word, stamp = item.get("sg_event_id"), item.get("event"), item.get("timestamp")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID:
            raise RequestRefused(400, f"event {i}: sg_event_id: expected a string of 1 to {MAX_EVENT_ID} characters")
        if not isinstance(word, str) or not word:
            raise RequestRefused(400, f"event {i}: event: expected a string")
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not 0 <= stamp < 2**33:
            raise RequestRefused(400, f"event {i}: timestamp: expected a Unix time")
        address = item.get("email")
        if address is not None and not isinstance(address, str):
            raise RequestRefused(400, f"event {i}: email: expected a string")
        yield _event(item, event_id, word, datetime.fromtimestamp(stamp, UTC), address)


def _event(item: dict[str, Any], event_id: str, word: str, at: datetime, address: str | None) -> ProviderEvent:
    kind = EVENT_TYPES.get(word, EventType.UNKNOWN)
    reason = None
    if kind == EventType.BOUNCED:
        reason = BOUNCE_TYPES.get(_scalar(item.get("type", "bounce")).lower(), RejectReason.OTHER)
    elif kind == EventType.DROPPED:
        reason = DROP_REASONS.get(_scalar(item.get("reason")).strip().lower(), RejectReason.OTHER)
    return ProviderEvent(
        provider=PROVIDER, event_id=event_id, type=kind, at=at, address=address or None,
        delivery_id=_delivery_id(item.get("delivery_id")), campaign_id=_short(item.get("campaign_id")),
        reject_reason=reason, description=_description(item, word),
        raw=_scrubbed(item) if kind == EventType.UNKNOWN else None,
        machine=kind == EventType.OPENED and item.get("sg_machine_open") is True,
        url=_short(item.get("url"), MAX_URL) if kind == EventType.CLICKED else None,
    )


MAX_URL = 2048  # a click's URL longer than this is not one of our links


def _delivery_id(value: Any) -> int | None:
    """Our delivery id as SendGrid gives it back (a string of digits), else None: not one of our messages."""
    if isinstance(value, str) and 0 < len(value) < 19 and value.isascii() and value.isdigit():
        return int(value)
    return None


def _scalar(value: Any) -> str:
    """A field's value as text when it is a string or a number; "" for anything else (a nested value is never
    turned into text: a deep one would exhaust the stack)."""
    return str(value) if isinstance(value, str | int | float | bool) else ""


def _short(value: Any, limit: int = 64) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _description(item: Mapping[str, Any], word: str) -> str:
    """SendGrid's own words for the ledger, without the address (a bounce reason often quotes it)."""
    parts = [word] + [f"{k}={_no_address(_scalar(item[k]))[:120]}" for k in _ADDRESS_FREE if item.get(k) is not None]
    return "; ".join(parts)[:300]


def _no_address(text: str) -> str:
    """``text`` with anything that looks like an email address replaced: it goes into the ledger."""
    return " ".join("<address>" if "@" in word else word for word in text.split())


def _scrubbed(item: Mapping[str, Any]) -> dict[str, Any]:
    """An unknown event kept for later mapping, without the address and with short values only."""
    return {k: (_no_address(v)[:200] if isinstance(v, str) else v) for k, v in list(item.items())[:30]
            if k != "email" and isinstance(v, str | int | float | bool)}
