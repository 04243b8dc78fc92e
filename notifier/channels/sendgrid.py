"""Email through SendGrid's v3 API with the official ``sendgrid`` SDK.

Recipients who share a rendered variant go in one request with up to 1,000 personalizations; each
recipient's own fields travel as substitutions (HTML-escaped for the HTML part). Our neutral message fields
become SendGrid's words here: ``tags`` are the request's ``categories``, ``metadata`` (the ledger ids) is each
personalization's ``custom_args``, and a ``marketing`` message gets the ASM unsubscribe group (``asm_group``,
SENDGRID_ASM_GROUP) when one is configured. Every personalization also carries its own one-click unsubscribe
headers; nothing personal goes into categories or custom args. The SDK's transport (urllib) opens a connection
per request and has no timeout by default: we pass one on every call; at 1,000 recipients a request the
connection set-up is a rounding error.

A 400 that blames only recipients' addresses fails just those, each as an invalid recipient (SendGrid took none of the
request): the others go again in a request of their own.

A refused API key (401) or a refused permission or sender (403) is no fault of the messages: it is a
ChannelConfigError naming the setting to fix, and the rest of the call is not sent. A missing API key is a
ConfigError when the channels are built (``wiring``), before anything is sent.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
from collections.abc import Hashable, Sequence
from email.utils import parseaddr
from typing import Any

from markupsafe import escape

from notifier.channels.base import Channel, EmailMessage, Message, Pacer
from notifier.errors import (
    ChannelConfigError,
    ConfigError,
    DeliveryError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from notifier.events import SendResult
from notifier.render import NAME, REFUND


def _sdk() -> Any:
    try:
        import python_http_client.exceptions
        import sendgrid
        from sendgrid.helpers import mail
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("NOTIFIER_TRANSPORT=providers needs the SendGrid SDK: pip install 'notifier[providers]'") \
            from None
    return sendgrid, mail, python_http_client.exceptions.HTTPError


# SendGrid's answers → our errors. 429 waits for X-RateLimit-Reset; 5xx are retried with backoff; 401 and 403
# block the channel until the setting in REFUSALS is fixed. Not in the table: 5xx retried, the rest permanent.
STATUS_ERRORS: dict[int, type[DeliveryError]] = {
    400: PermanentError, 401: ChannelConfigError, 403: ChannelConfigError, 404: PermanentError, 413: PermanentError,
    429: ThrottledError, 500: TransientError, 502: TransientError, 503: TransientError, 504: TransientError,
}
# A refusal (status, the field SendGrid blames or None) → what it means and the setting that fixes it.
REFUSALS: dict[tuple[int, str | None], tuple[str, str]] = {
    (401, None): ("the API key was refused", "SENDGRID_API_KEY"),
    (403, None): ("the API key may not send this mail", "SENDGRID_API_KEY"),
    (403, "from"): ("the sender is not a verified Sender Identity",
                    "the campaign's sender.email (or NOTIFIER_EMAIL_FROM)"),
}
# Substitution tags for the recipient's own fields, per part (the HTML part gets the escaped value).
TAGS = {(NAME, False): "-notifier-text-name-", (NAME, True): "-notifier-html-name-",
        (REFUND, False): "-notifier-text-refund-", (REFUND, True): "-notifier-html-refund-"}


class SendGridEmail(Channel):
    """The email channel on SendGrid."""

    name = "email"
    provider = "sendgrid"
    max_batch = 1000

    def __init__(self, api_key: str, host: str, sender: str, *, timeout: float = 10.0,
                 rate_limiter: Pacer | None = None, asm_group: int | None = None) -> None:
        super().__init__(rate_limiter)
        self.asm_group = asm_group  # the ASM unsubscribe group of marketing messages; None: none attached
        sendgrid, self._mail, self._http_error = _sdk()
        self.client = sendgrid.SendGridAPIClient(api_key=api_key, host=host)
        self.sender = parseaddr(sender)
        self.timeout = timeout

    def batch_key(self, message: Message) -> Hashable:
        assert isinstance(message, EmailMessage)
        return (message.variant, message.tags, message.marketing, message.sender, message.reply_to)

    def payload(self, batch: Sequence[EmailMessage]) -> dict[str, Any]:
        """The v3 request body for one variant and up to 1,000 recipients."""
        m = self._mail
        first = batch[0]
        mail = m.Mail()
        name, address = parseaddr(first.sender) if first.sender else self.sender  # one sender per request
        mail.from_email = m.From(address, name or None)
        if first.reply_to:
            mail.reply_to = m.ReplyTo(first.reply_to)
        mail.subject = m.Subject(_tagged(first.subject, html=False))
        mail.add_content(m.Content("text/plain", _tagged(first.text, html=False)))
        mail.add_content(m.Content("text/html", _tagged(first.html, html=True)))
        for tag in first.tags:
            mail.add_category(m.Category(tag))
        if first.marketing and self.asm_group is not None:
            mail.asm = m.Asm(m.GroupId(self.asm_group))
        # The parts shared by the request go through the SDK's helpers (its Content refuses a body that holds an
        # API key); each recipient's part is built as the dict the SDK's Personalization.get() makes, in the
        # batch's order: a thousand helper objects a request cost more than the rest of the request
        # (tests/test_channel_sendgrid.py checks the two bodies are the same).
        markers = [(tag, html, "name" if marker == NAME else "refund") for (marker, html), tag in TAGS.items()
                   if marker in first.subject or marker in first.text or marker in first.html]
        shared = mail.get()
        return {"from": shared.pop("from"), "subject": shared.pop("subject"),
                "personalizations": [_personalization(message, markers) for message in batch], **shared}

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        emails = [m for m in batch if isinstance(m, EmailMessage)]
        body = self.payload(emails)
        try:
            response = self.client.client.mail.send.post(request_body=body, timeout=self.timeout)
        except TimeoutError as exc:  # SendGrid may have taken it: a retry may deliver it twice
            raise TransientError(f"sendgrid: no answer within {self.timeout:g} s", provider="sendgrid",
                                 uncertain=True) from exc
        except urllib.error.URLError as exc:
            uncertain = isinstance(exc.reason, TimeoutError)
            raise TransientError(f"sendgrid: cannot connect: {exc.reason}", provider="sendgrid",
                                 uncertain=uncertain) from exc
        except ConnectionError as exc:  # cut off after the request went out
            raise TransientError(f"sendgrid: connection lost: {exc}", provider="sendgrid", uncertain=True) from exc
        except self._http_error as exc:  # the SDK's HTTPError subclasses carry status, body and headers
            refused = _refused_addresses(exc.status_code, exc.body, len(emails))
            if not refused:
                raise _error(exc.status_code, exc.body, exc.headers) from exc
        else:
            message_id = response.headers.get("X-Message-Id", "")
            return [SendResult.sent(m.delivery_id, message_id) for m in emails]
        # SendGrid took none of the request for some addresses: those fail alone, the rest go in a request of their own.
        rest = [m for i, m in enumerate(emails) if i not in refused]
        results = {r.delivery_id: r for r in self._send_batch(rest)} if rest else {}
        results |= {emails[i].delivery_id: SendResult.invalid(emails[i].delivery_id, why) for i, why in refused.items()}
        return [results[m.delivery_id] for m in emails]


def _personalization(message: EmailMessage, markers: Sequence[tuple[str, bool, str]]) -> dict[str, Any]:
    """One recipient's part of the body: what ``Personalization.get()`` returns for the helpers the SDK's own
    way would add (a To, a substitution per marker, the metadata as custom args, the headers)."""
    out: dict[str, Any] = {"to": [sdk_email(message.to, recipient_name(message.to_name))]}
    if message.headers:
        out["headers"] = dict(message.headers)
    if markers:
        out["substitutions"] = {tag: str(escape(value)) if html else value for tag, html, value in (
            (tag, html, getattr(message.personal, field) or "") for tag, html, field in markers)}
    if message.metadata:
        out["custom_args"] = dict(message.metadata)
    return out


def sdk_email(address: str, name: str | None) -> dict[str, str]:
    """``To(address, name).get()``: without a name the SDK reads the address as 'Name <address>' (parseaddr)."""
    if address and not name:
        name, address = parseaddr(address)
        if "@" not in address:  # as the SDK: no address in it, so it was a name
            name, address = address, ""
        return ({"name": name} if name else {}) | ({"email": address} if address else {})
    return ({"name": name} if name is not None else {}) | {"email": address}


# SendGrid builds the To header from ``to.name`` without quoting it: a name with any of these is taken apart
# ("Silva, Ana" → a second, bogus address) and the mail dropped (sendgrid-python #291, sendgrid-ruby #394).
_NAME_SPECIALS = frozenset('()<>[]:;@\\,."')


def recipient_name(name: str | None) -> str | None:
    """``to.name`` as SendGrid needs it: a quoted string when it holds a special character (RFC 5322 specials)."""
    if not name:
        return None
    if any(c in _NAME_SPECIALS for c in name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def _tagged(text: str, *, html: bool) -> str:
    for (marker, is_html), tag in TAGS.items():
        if is_html == html:
            text = text.replace(marker, tag)
    return text


def _error(status: int, body: bytes | str, headers: Any) -> DeliveryError:
    """Our error for one of SendGrid's answers, with its own words and when to try again."""
    kind = STATUS_ERRORS.get(status, TransientError if status >= 500 else PermanentError)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    problems = _problems(text)
    words = "; ".join(f"{field or 'request'}: {message}" for field, message in problems) or text[:300]
    if issubclass(kind, ChannelConfigError):
        blamed = next((field for field, _ in problems if field), None)
        meaning, setting = REFUSALS.get((status, blamed)) or REFUSALS[status, None]
        return ChannelConfigError(f"sendgrid {status}: {meaning} ({words}): fix {setting}", setting=setting,
                                  provider="sendgrid", status=status)
    message = f"sendgrid {status}: {words}"
    if issubclass(kind, TransientError):
        return kind(message, retry_after=_retry_after(headers), provider="sendgrid", status=status)
    return kind(message, provider="sendgrid", status=status)


_ADDRESS_FIELD = re.compile(r"personalizations\.(\d+)\.((?:to|cc|bcc)\.\d+\.email)")


def _refused_addresses(status: int, body: bytes | str, n: int) -> dict[int, str]:
    """A 400 that blames only recipients' addresses: their positions in the request → why (SendGrid's words,
    without the position, so that failures group by reason); empty when anything else is wrong."""
    if status != 400:
        return {}
    refused: dict[int, str] = {}
    for field, message in _problems(body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)):
        found = _ADDRESS_FIELD.fullmatch(field or "")
        if found is None or int(found[1]) >= n:
            return {}
        refused[int(found[1])] = f"sendgrid 400: {found[2]}: {message}"
    return refused


def _problems(text: str) -> list[tuple[str | None, str]]:
    """(field, message) of each error in SendGrid's ``{"errors": [...]}``; empty when the body is not that."""
    try:
        errors = json.loads(text).get("errors", [])
        return [(e.get("field") or None, str(e.get("message"))) for e in errors]
    except (ValueError, AttributeError, TypeError):
        return []


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    get = headers.get if hasattr(headers, "get") else dict(headers).get
    reset, after = get("X-RateLimit-Reset"), get("Retry-After")
    try:
        if reset:
            return max(0.0, float(reset) - time.time())
        if after:
            return max(0.0, float(after))
    except ValueError:
        return None
    return None
