"""The outbox: every email as a real .eml file (text + HTML) and every push as JSON, in a folder.

It is the embedded default transport, so a demo or a dry run shows exactly what would be sent.
"""

from __future__ import annotations

import email.policy
import json
import os
from collections.abc import Sequence
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, make_msgid
from pathlib import Path

from notifier.channels.base import Channel, EmailMessage, Message, PushMessage
from notifier.errors import TransientError
from notifier.events import SendResult


def _mime(m: EmailMessage, sender: str, msgid: str) -> MIMEMultipart:
    """A multipart/alternative message (the compat32 classes: several times faster than EmailMessage)."""
    mime = MIMEMultipart("alternative", policy=email.policy.SMTP)
    mime["From"] = sender
    mime["To"] = formataddr((m.to_name or "", m.to))  # plain str: the SMTP policy encodes and folds it
    subject, text, html = m.filled()
    mime["Subject"] = subject
    mime["Message-ID"] = msgid
    for k, v in m.headers.items():
        mime[k] = v
    for k, v in m.custom_args.items():
        mime[f"X-Notifier-{k.replace('_', '-').title()}"] = v
    mime.attach(MIMEText(text, "plain", "utf-8"))
    mime.attach(MIMEText(html, "html", "utf-8"))
    return mime


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class OutboxEmail(Channel):
    """Writes ``<outbox>/email/<delivery id>.eml``."""

    name = "email"

    def __init__(self, root: Path, sender: str = "TikTok Music <no-reply@music.example.com>") -> None:
        super().__init__()
        self.dir = Path(root) / "email"
        self.sender = sender

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        self.dir.mkdir(parents=True, exist_ok=True)
        results = []
        for m in batch:
            assert isinstance(m, EmailMessage)
            msgid = make_msgid(idstring=f"d{m.delivery_id}", domain="outbox.notifier")
            mime = _mime(m, self.sender, msgid)
            try:
                _write_atomic(self.dir / f"{m.delivery_id}.eml", mime.as_bytes(policy=email.policy.SMTP))
            except OSError as exc:
                raise TransientError(f"outbox: cannot write email: {exc.strerror}", provider="outbox") from exc
            results.append(SendResult.sent(m.delivery_id, msgid.strip("<>")))
        return results


class OutboxPush(Channel):
    """Writes ``<outbox>/push/<delivery id>.json``, one file per recipient with all their tokens."""

    name = "push"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.dir = Path(root) / "push"

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        self.dir.mkdir(parents=True, exist_ok=True)
        results = []
        for m in batch:
            assert isinstance(m, PushMessage)
            doc = {
                "tokens": list(m.tokens),
                "notification": {"title": m.title, "body": m.body},
                "data": dict(m.data),
                "collapse_key": m.collapse_key,
                "expires_at": m.expires_at.isoformat(),
            }
            try:
                _write_atomic(self.dir / f"{m.delivery_id}.json",
                              json.dumps(doc, ensure_ascii=False, indent=2).encode())
            except OSError as exc:
                raise TransientError(f"outbox: cannot write push: {exc.strerror}", provider="outbox") from exc
            results.append(SendResult.sent(m.delivery_id, f"outbox-push-{m.delivery_id}"))
        return results
