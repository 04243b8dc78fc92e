"""What the unsubscribe tests share: campaigns due in the real future (so that ``notifier serve``, on the real clock,
accepts the links a simulated clock signed), their own copy of the templates and catalogs, the real ``notifier
serve`` as a process, what a recipient's rows came to, and a mail shaped as SendGrid Inbound Parse posts it."""

from __future__ import annotations

import base64
import email
import email.policy
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import parse_campaign
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import DeliveryRow, Recipient
from notifier.planner import plan_zone
from notifier.render import Content
from tests import services
from tests.conftest import DEFAULTS, SHIPPED_ID, shipped_catalogs_as

SECRET = "a-test-secret-of-enough-length-0123456789"
PUBLIC_URL = "https://notify.example.com"
API_TOKEN = "an-api-token-nobody-can-guess-0123456789"
WAVES = ("P30D", "P7D", "P1D")
DEADLINE = (datetime.now(UTC) + timedelta(days=60)).date()  # the refund deadline: two months from the real today


def wave_at(wave: str, deadline: date = DEADLINE) -> datetime:
    """When a wave reaches Jakarta: 10:00 WIB (03:00 UTC), ``wave`` (P<n>D) before the deadline."""
    day = deadline - timedelta(days=int(wave[1:-1]))
    return datetime(day.year, day.month, day.day, 3, 0, tzinfo=UTC)


def campaign_spec(campaign_id: str, name: str, category: str) -> str:
    """A campaign on the shipped templates, one deadline (``refund``) and three waves, due after the real today."""
    return f"""\
id: {campaign_id}
name: {name}
category: {category}
templates: {SHIPPED_ID}
locales: [en, id]
default_locale: en
channels: [email, push]
links:
  transfer: https://music.tiktok.com/transfer
  refund: https://music.tiktok.com/refund
  help: https://support.tiktok.com/music-closing
delivery: {{local_time: "10:00", window: ["08:00", "21:00"], max_per_day: 1}}
deadlines:
  - id: refund
    label: Refund requests and service closure
    at: "{DEADLINE:%Y-%m-%d}T00:00"
    waves: [{", ".join(WAVES)}]
"""


@dataclass(frozen=True)
class OwnContent:
    """A test's own copy of the shipped templates and catalogs (other work on the shipped ones cannot reach it),
    with catalogs for each of its campaigns."""

    templates: Path
    locales: Path
    campaigns: Path


def own_content(root: Path, *campaign_ids: str) -> OwnContent:
    templates = root / "templates"
    shutil.copytree(DEFAULTS.templates_dir, templates, ignore=shutil.ignore_patterns(".*"))
    campaigns = root / "campaigns"
    campaigns.mkdir()
    return OwnContent(templates, shipped_catalogs_as(root / "locales", *campaign_ids), campaigns)


def schedule(sessions: sessionmaker[Session], content: OwnContent, campaign_id: str, name: str, category: str,
             now: datetime) -> None:
    """Write the campaign's file and schedule it, as ``notifier campaign schedule`` does."""
    spec = campaign_spec(campaign_id, name, category)
    source = content.campaigns / f"{campaign_id}.yaml"
    source.write_text(spec, encoding="utf-8")
    campaign = parse_campaign(spec, source=str(source))
    with transaction(sessions) as s:
        queries.schedule(s, campaign, spec, now, Content.of(campaign, content.templates, content.locales), plan_zone)


def outcomes(sessions: sessionmaker[Session], campaign_id: str) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    """(recipient, wave, channel) → (state, skip reason) of every row of one campaign."""
    with sessions() as s:
        rows = s.execute(select(Recipient.id, DeliveryRow.send_key, DeliveryRow.channel, DeliveryRow.state,
                                DeliveryRow.skip_reason)
                         .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
                         .where(DeliveryRow.campaign_id == campaign_id))
        return {(r, key.split("@")[1], channel): (state, skip) for r, key, channel, state, skip in rows}


def delivery_id(sessions: sessionmaker[Session], campaign_id: str, recipient_id: str, wave: str) -> int:
    with sessions() as s:
        return int(s.scalar(select(DeliveryRow.id).join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
                            .where(DeliveryRow.campaign_id == campaign_id, Recipient.id == recipient_id,
                                   DeliveryRow.send_key == f"refund@{wave}", DeliveryRow.channel == "email")))


def outbox_email(outbox: Path, campaign_id: str, delivery: int) -> EmailMessage:
    path = outbox / "email" / campaign_id / f"{delivery}.eml"
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    return message


def list_unsubscribe(value: str) -> list[str]:
    """The URIs of a List-Unsubscribe header, unfolded, in order."""
    return [uri.strip().strip("<>") for uri in "".join(str(value).split()).split(",")]


# --- the real notifier serve --------------------------------------------------------------------------------


def webhook_key() -> str:
    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def serve_env(ledger_url: str, content: OwnContent, **extra: str) -> dict[str, str]:
    """Every setting ``notifier serve`` needs outside --dev, on the test's ledger and content."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    return {**env, "NOTIFIER_DATABASE_URL": ledger_url, "NOTIFIER_SECRET_KEY": SECRET,
            "NOTIFIER_PUBLIC_URL": PUBLIC_URL, "NOTIFIER_SENDGRID_WEBHOOK_KEY": webhook_key(),
            "NOTIFIER_API_TOKEN": API_TOKEN, "NOTIFIER_TEMPLATES_DIR": str(content.templates),
            "NOTIFIER_LOCALES_DIR": str(content.locales), "NOTIFIER_CAMPAIGNS_DIR": str(content.campaigns), **extra}


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """``notifier -v serve`` in its own process, its log in ``log``, until it answers its health check; yields its
    base URL, and stops it at the end."""
    with log.open("a") as out, services.serving(env, options=("-v",), stderr=out) as base:
        yield base


def one_click(url: str) -> httpx.Response:
    """What a mail client's RFC 8058 one-click does."""
    return httpx.post(url, content=b"List-Unsubscribe=One-Click", timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})


# --- SendGrid Inbound Parse ---------------------------------------------------------------------------------


def inbound_parse_fields(subject: str | None, *, sender: str = "Ana Lima <ana@example.com>",
                         to: str = "unsubscribe@notify.example.com") -> dict[str, str]:
    """The fields SendGrid Inbound Parse posts for a mail client's unsubscribe mail (its default, parsed form)."""
    address = sender.split("<")[-1].rstrip(">")
    headers = f"From: {sender}\nTo: {to}\n" + (f"Subject: {subject}\n" if subject is not None else "")
    return {"headers": f"Received: by mx.sendgrid.net\n{headers}MIME-Version: 1.0\n",
            "dkim": "{@example.com : pass}", "to": to, "from": sender, "sender_ip": "192.0.2.10",
            "envelope": f'{{"to":["{to}"],"from":"{address}"}}', "attachments": "0",
            "text": "This message was automatically generated by the mail client.\n",
            "charsets": '{"to":"UTF-8","subject":"UTF-8","from":"UTF-8","text":"UTF-8"}', "SPF": "pass",
            "spam_score": "0.1", **({"subject": subject} if subject is not None else {})}


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    """``fields`` as multipart/form-data, as SendGrid posts them: (body, Content-Type)."""
    boundary = f"xYzZY{uuid.uuid4().hex}"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode()
             + b"\r\n" for name, value in fields.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_mail(base: str, fields: dict[str, str]) -> httpx.Response:
    body, content_type = multipart(fields)
    return httpx.post(f"{base}/webhooks/sendgrid/inbound", content=body, timeout=10,
                      headers={"Content-Type": content_type})
