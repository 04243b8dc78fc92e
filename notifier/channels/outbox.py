"""The outbox: every email as a real .eml file (text + HTML) and every push as JSON, in a folder.

It is the embedded default transport, so a demo or a dry run shows exactly what would be sent. An email that
cannot be built (a line break in a header, an address the SMTP policy cannot encode) fails alone; the rest of
its batch is written. The reason names the kind of fault and the field, never the value.
"""

from __future__ import annotations

import email.policy
import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from notifier.channels.base import Channel, EmailMessage, Message, PushMessage
from notifier.errors import TransientError
from notifier.events import SendResult

UNBUILDABLE = "outbox: cannot build the message"
# Why a message cannot be built, by exception (the first match wins; UnicodeError is a ValueError).
BUILD_FAULTS: dict[type[Exception], str] = {
    UnicodeError: "a header or a part holds characters the SMTP policy cannot encode",
    ValueError: "a header value is malformed",
    TypeError: "a field is not text",
}


def _mime(m: EmailMessage, sender: str, msgid: str, sent_at: datetime | None = None) -> MIMEMultipart:
    """A multipart/alternative message (the compat32 classes: several times faster than EmailMessage)."""
    mime = MIMEMultipart("alternative", policy=email.policy.SMTP)
    mime["From"] = m.sender or sender  # the campaign's sender, else the channel's default
    if m.reply_to:
        mime["Reply-To"] = m.reply_to
    mime["To"] = formataddr((m.to_name or "", m.to))  # plain str: the SMTP policy encodes and folds it
    subject, text, html = m.filled()
    mime["Subject"] = subject
    mime["Message-ID"] = msgid
    mime["Date"] = format_datetime(sent_at or datetime.now(UTC))
    for k, v in m.headers.items():
        mime[k] = v
    for k, v in m.metadata.items():
        mime[f"X-Notifier-{k.replace('_', '-').title()}"] = v
    mime.attach(MIMEText(text, "plain", "utf-8"))
    mime.attach(MIMEText(html, "html", "utf-8"))
    return mime


def _line_break_field(m: EmailMessage) -> str | None:
    """The name of the first field whose value holds CR or LF (it would inject headers), or None."""
    fields = {"to_name": m.to_name or "", "to": m.to, "subject": m.filled()[0], "sender": m.sender or "",
              "reply_to": m.reply_to or "",
              **{f"header {k}": v for k, v in m.headers.items()},
              **{f"metadata {k}": v for k, v in m.metadata.items()}}
    return next((name for name, value in fields.items() if "\r" in str(value) or "\n" in str(value)), None)


def _unbuildable(m: EmailMessage, exc: Exception) -> SendResult:
    """The result of an email that cannot be built: invalid when it is the address, failed otherwise."""
    kind = type(exc).__name__
    if isinstance(exc, UnicodeError) and not m.to.isascii():
        return SendResult.invalid(m.delivery_id, f"{UNBUILDABLE}: {kind}: the address is not ASCII and the outbox "
                                                 "writes no SMTPUTF8")
    field = _line_break_field(m) if isinstance(exc, ValueError) else None
    reason = f"{field} holds a line break (CR/LF)" if field else next(
        why for cls, why in BUILD_FAULTS.items() if isinstance(exc, cls))
    return SendResult.failed(m.delivery_id, f"{UNBUILDABLE}: {kind}: {reason}")


def _make_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransientError(f"outbox: cannot write {what}: {exc.strerror}", provider="outbox") from exc


def campaign_folder(ids: Mapping[str, str]) -> str:
    """The outbox subfolder of a message: its campaign id, so two campaigns or ledgers never share a file name."""
    name = str(ids.get("campaign_id") or "no-campaign")
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).lstrip(".") or "no-campaign"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class OutboxEmail(Channel):
    """Writes ``<outbox>/email/<campaign id>/<delivery id>.eml``, dated by the message's own ``date`` (a simulated
    clock's), else by ``clock`` (default: now)."""

    name = "email"

    def __init__(self, root: Path, sender: str = "TikTok Music <no-reply@music.example.com>", *,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.dir = Path(root) / "email"
        self.sender = sender
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        _make_dir(self.dir, "email")
        results = []
        for m in batch:
            assert isinstance(m, EmailMessage)
            msgid = make_msgid(idstring=f"d{m.delivery_id}", domain="outbox.notifier")
            try:
                data = _mime(m, self.sender, msgid, m.date or self.clock()).as_bytes(policy=email.policy.SMTP)
            except (ValueError, TypeError) as exc:  # this message only (UnicodeError is a ValueError)
                results.append(_unbuildable(m, exc))
                continue
            try:
                folder = self.dir / campaign_folder(m.metadata)
                _make_dir(folder, "email")
                _write_atomic(folder / f"{m.delivery_id}.eml", data)
            except OSError as exc:
                raise TransientError(f"outbox: cannot write email: {exc.strerror}", provider="outbox") from exc
            results.append(SendResult.sent(m.delivery_id, msgid.strip("<>")))
        return results


class OutboxPush(Channel):
    """Writes ``<outbox>/push/<campaign id>/<delivery id>.json``, one file per recipient with all their tokens."""

    name = "push"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.dir = Path(root) / "push"

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        _make_dir(self.dir, "push")
        results = []
        for m in batch:
            assert isinstance(m, PushMessage)
            doc = {
                "tokens": list(m.tokens),
                "notification": {"title": m.title, "body": m.body},
                "data": m.data,  # the key FCM gives it: outbox readers expect "data" (with the link a tap opens)
                "collapse_key": m.collapse_key,
                "expires_at": m.expires_at.isoformat(),
            }
            try:
                data = json.dumps(doc, ensure_ascii=False, indent=2).encode()
            except (ValueError, TypeError) as exc:  # a lone surrogate in the text, say: this message only
                results.append(SendResult.failed(m.delivery_id, f"{UNBUILDABLE}: {type(exc).__name__}: a field "
                                                                "cannot be encoded as UTF-8 JSON"))
                continue
            try:
                folder = self.dir / campaign_folder(m.metadata)
                _make_dir(folder, "push")
                _write_atomic(folder / f"{m.delivery_id}.json", data)
            except OSError as exc:
                raise TransientError(f"outbox: cannot write push: {exc.strerror}", provider="outbox") from exc
            results.append(SendResult.sent(m.delivery_id, f"outbox-push-{m.delivery_id}"))
        return results
