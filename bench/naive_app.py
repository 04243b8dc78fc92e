"""The naive baseline's Celery app: the obvious design that ``python -m bench`` measures notifier against.

One task per recipient and channel. Each task opens a session, loads its one recipient (and active tokens), renders
the campaign's templates from scratch with a brand-new Renderer (a new Jinja2 sandbox, catalogs parsed again, no
variant shared with any other task), makes one SDK call per message (SendGrid: one ``send`` with one recipient;
FCM: one ``messaging.send`` per token) and records its outcome with one UPDATE of ``naive_sends``. What a process
keeps is what the obvious design keeps too: the database pool, the imported SDKs, the Firebase app (and its
access token), and the parsed campaign file, which is configuration rather than rendering.

It imports ``sendgrid`` and ``firebase_admin`` itself, unlike notifier (where only ``channels/`` may): the point
is to measure the SDKs used the plain way. Settings come from the environment, set by ``bench/naive.py``:
NAIVE_DATABASE_URL, NAIVE_BROKER_URL, NAIVE_EMULATOR_URL, NAIVE_CREDENTIALS, NAIVE_ROOT (the project root).
Tasks carry the recipient's seq, never an address or a token; logs say seqs and error types only.
"""

from __future__ import annotations

import functools
import logging
import os
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_init
from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, select, update
from sqlalchemy.orm import Session

from notifier import i18n
from notifier.campaign import Campaign, load_campaign, resolve_local, zone
from notifier.config import Settings
from notifier.display_names import plain_name
from notifier.ledger.db import make_engine
from notifier.ledger.models import PushToken, Recipient, UTCDateTime
from notifier.planner import parse_send_key
from notifier.render import Personal, RenderedEmail, RenderedPush, Renderer, Variant

log = logging.getLogger(__name__)

QUEUE = "naive"
CAMPAIGN = "tiktok-music-shutdown"
SEND_KEY = "playlist-transfer@P30D+refund@P61D"  # the campaign's first send: one message announcing both deadlines
API_KEY = "SG.naive-baseline"  # the emulator takes any SG. key
QUEUED, SENT, FAILED, SKIPPED = "queued", "sent", "failed", "skipped"

# The baseline's own outcome table (never the ledger's deliveries): one row per task, queued until the task ran.
naive_sends = Table(
    "naive_sends", MetaData(),
    Column("recipient_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("channel", String(16), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("at", UTCDateTime()),
)

app = Celery("notifier-naive", broker=os.environ.get("NAIVE_BROKER_URL"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_backend=None,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_acks_late=True,  # as the obvious at-least-once design does: a worker that dies mid-task has it redelivered
    # A few tasks in hand: a solo worker starts the next send without waiting a broker round trip after each short
    # task, yet holds few enough that the last ones spread over both workers and a stopped worker keeps little.
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set (bench/naive.py sets it for its workers)")
    return value


@functools.cache
def _engine() -> Engine:
    """This process's pool: the naive design still reuses database connections."""
    return make_engine(_env("NAIVE_DATABASE_URL"))


@functools.cache
def _root() -> Path:
    return Path(_env("NAIVE_ROOT"))


@functools.cache
def _campaign() -> Campaign:
    """The campaign file, parsed once per process: configuration, not rendering."""
    return load_campaign(_root() / "campaigns" / f"{CAMPAIGN}.yaml")


@functools.cache
def _firebase() -> Any:
    """This process's Firebase app, its messages posted to the emulator instead of fcm.googleapis.com."""
    import firebase_admin
    from firebase_admin import credentials, messaging

    fb_app = firebase_admin.initialize_app(credentials.Certificate(_env("NAIVE_CREDENTIALS")),
                                           name=f"naive-{os.getpid()}")
    service = messaging._get_messaging_service(fb_app)  # the SDK hard-codes its URL; point it at the emulator
    service._fcm_url = f"{_env('NAIVE_EMULATOR_URL').rstrip('/')}/v1/projects/{fb_app.project_id}/messages:send"
    return fb_app


@worker_init.connect
def _warm(**_: Any) -> None:
    """Connect, import and authorize before the first task, so one-time start-up is not timed as throughput."""
    import google.auth.transport.requests
    import sendgrid  # noqa: F401

    with _engine().connect():
        pass
    _campaign()
    _firebase().credential.get_credential().refresh(google.auth.transport.requests.Request())


def _render(recipient: Recipient) -> tuple[Renderer, Variant, Personal]:
    """The campaign's first send for this recipient, rendered from nothing: new Renderer, catalogs read again."""
    campaign = _campaign()
    i18n._CATALOGS.clear()  # notifier keeps parsed .po files per process; the naive design parses them every time
    renderer = Renderer(_root() / "templates", _root() / "locales", cache_size=0)
    locale = i18n.negotiate(recipient.locale, campaign.locales, campaign.default_locale)
    tz = zone(recipient.timezone)
    items = parse_send_key(SEND_KEY)
    first = campaign.deadline(items[0].deadline)
    wave = next(w for w in first.waves if w.label == items[0].wave)
    day = first.instant_in(tz).date() - timedelta(days=wave.days)
    now = resolve_local(day, campaign.delivery.local_time, tz)
    personal = Personal.of(recipient.name, recipient.attributes or {}, locale)
    return renderer, renderer.variant(campaign, locale, items, tz, now, recipient.country, personal), personal


def _email(recipient: Recipient, rendered: RenderedEmail) -> str:
    """One SendGrid request with one recipient, as the SDK's README shows it."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Content, From, Mail, To

    from notifier.channels.sendgrid import recipient_name

    campaign = _campaign()
    name, address = parseaddr(campaign.sender.from_header if campaign.sender else Settings.email_from)
    to = To(recipient.email, recipient_name(plain_name(recipient.name)))
    mail = Mail(from_email=From(address, name), to_emails=to,
                subject=rendered.subject, plain_text_content=Content("text/plain", rendered.text),
                html_content=Content("text/html", rendered.html))
    response = SendGridAPIClient(api_key=API_KEY, host=_env("NAIVE_EMULATOR_URL")).send(mail)
    return SENT if 200 <= response.status_code < 300 else FAILED


def _push(recipient: Recipient, tokens: list[str], rendered: RenderedPush) -> str:
    """One ``messaging.send`` per active token; delivered to any device counts as sent, as notifier counts it."""
    from firebase_admin import messaging

    collapse = f"{CAMPAIGN}:{parse_send_key(SEND_KEY)[-1].deadline}"
    sent = 0
    for token in tokens:
        message = messaging.Message(
            token=token, notification=messaging.Notification(title=rendered.title, body=rendered.body),
            data={"campaign_id": CAMPAIGN, "recipient_seq": str(recipient.seq)},
            android=messaging.AndroidConfig(ttl=timedelta(days=28), priority="normal", collapse_key=collapse),
            apns=messaging.APNSConfig(headers={"apns-collapse-id": collapse, "apns-priority": "5"}))
        try:
            messaging.send(message, app=_firebase())
            sent += 1
        except Exception as exc:  # the token's failure is the outcome; the others still go
            log.warning("naive push to recipient %d: one token failed: %s", recipient.seq, type(exc).__name__)
    return SENT if sent else FAILED


@app.task(name="naive.send")
def send(recipient_seq: int, channel: str) -> str:
    """Load one recipient, render from scratch, make one SDK call and record the outcome: the obvious design."""
    with Session(_engine()) as session:
        recipient = session.get(Recipient, recipient_seq)
        if recipient is None:
            status = SKIPPED
        else:
            tokens = list(session.scalars(select(PushToken.token).where(
                PushToken.recipient_seq == recipient_seq, PushToken.active))) if channel == "push" else []
            try:
                if channel == "email" and recipient.email:
                    renderer, variant, personal = _render(recipient)
                    status = _email(recipient, renderer.email(variant, personal))
                elif channel == "push" and tokens:
                    renderer, variant, personal = _render(recipient)
                    status = _push(recipient, tokens, renderer.push(variant, personal))
                else:
                    status = SKIPPED
            except Exception as exc:  # recorded as this task's outcome, in its row, not only in the log
                log.warning("naive %s to recipient %d failed: %s", channel, recipient_seq, type(exc).__name__)
                status = FAILED
        session.execute(update(naive_sends)
                        .where(naive_sends.c.recipient_seq == recipient_seq, naive_sends.c.channel == channel)
                        .values(status=status, at=datetime.now(UTC)))
        session.commit()
    return status
