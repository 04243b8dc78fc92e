"""SendGrid's Event Webhook from SendGrid's side: events for what the emulator accepted, posted back signed.

Why: the notifier's webhook receiver has to be proven against what SendGrid really sends (signed batches of
``processed`` then ``delivered``, ``bounce``, ``dropped``, ... with the mail's ``custom_args`` at the top level of
every event) without a SendGrid account.

    EventsConfig   where to post, the shares of outcomes, seed, batch size and interval; EventsError when invalid
    EventSigner    the ECDSA P-256 key: its public half as SendGrid's settings page shows it, and the signatures
    EventFeed      an outcome drawn per accepted personalization, the queue of pending events, the counters
    post_forever   the task on the server's loop that posts one batch per interval and settles it

One event set per personalization, for its first ``to`` address (the notifier sends one recipient per
personalization). A batch that fails is posted again, the same events, on the next interval; a batch the
receiver refuses with a 4xx three times is dropped, so a misconfigured receiver cannot hold the queue forever.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import random
import re
import secrets
import time
import urllib.parse
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from notifier.errors import EventsError
from notifier.i18n import share_for

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
SHARES = ("bounce", "blocked", "dropped", "spamreport", "unsubscribe")  # the order one uniform draw is compared in
MAX_REFUSALS = 3  # 4xx answers to one batch before it is dropped
POST_TIMEOUT = 10.0  # seconds for one post, so a receiver that hangs only delays the next interval
MAX_BATCH = 10_000
_KEYS = {"url", *SHARES, "seed", "batch", "interval", "opens", "clicks", "machine_opens"}
ANY_LOCALE = "*"  # in opens and clicks: the share for a locale not named
_LANG = re.compile(r"<html\b[^>]*?\blang=[\"']?([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)", re.IGNORECASE)
_HREF = re.compile(r"""\bhref=["'](https?://[^"'\s<>]+)["']""", re.IGNORECASE)

log = logging.getLogger("notifier.emulator.events")

_DELIVERED = {"response": "250 2.0.0 OK"}
_BOUNCE = {"type": "bounce", "status": "5.1.1", "bounce_classification": "Invalid Address",
           "reason": "550 5.1.1 The email account that you tried to reach does not exist"}
_BLOCKED = {"type": "blocked", "status": "4.7.1", "bounce_classification": "Reputation",
            "reason": "421 4.7.1 Messages from this sender are temporarily blocked because of its reputation"}
_DROPPED = {"reason": "Bounced Address", "status": "5.0.0"}
# An outcome → the events SendGrid sends for it, in order, with what each adds to the shared fields.
OUTCOME_EVENTS: dict[str, tuple[tuple[str, dict[str, str]], ...]] = {
    "delivered": (("processed", {}), ("delivered", _DELIVERED)),
    "bounce": (("processed", {}), ("bounce", _BOUNCE)),
    "blocked": (("processed", {}), ("bounce", _BLOCKED)),
    "dropped": (("processed", {}), ("dropped", _DROPPED)),
    "spamreport": (("processed", {}), ("delivered", _DELIVERED), ("spamreport", {})),
    "unsubscribe": (("processed", {}), ("delivered", _DELIVERED), ("unsubscribe", {})),
}


def _share(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise EventsError(name, "expected a number from 0 to 1")
    return float(value)


def _shares_by_locale(name: str, value: Any) -> dict[str, float]:
    """{"id": 0.45, "pt-BR": 0.38, "*": 0.3}: a share per locale of the mail (its html's lang), "*" for the rest."""
    if not isinstance(value, dict):
        raise EventsError(name, 'expected an object of locale → share, such as {"id": 0.4, "*": 0.3}')
    for locale in value:
        if not isinstance(locale, str) or not (locale == ANY_LOCALE or re.fullmatch(r"[A-Za-z]{2,3}(-\w{2,8})*",
                                                                                      locale)):
            raise EventsError(f"{name}.{locale}", "expected a locale such as pt-BR, or * for any other")
    return {locale: _share(f"{name}.{locale}", share) for locale, share in value.items()}


def _url(value: Any) -> str | None:
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise EventsError("url", "expected an http:// or https:// URL, or null to stop posting")
    return str(value)


@dataclass(frozen=True)
class EventsConfig:
    """Where events go and which outcomes the accepted personalizations get; the rest are ``delivered``."""

    url: str | None = None
    bounce: float = 0.0
    blocked: float = 0.0
    dropped: float = 0.0
    spamreport: float = 0.0
    unsubscribe: float = 0.0
    seed: int | None = None
    batch: int = 1000
    interval: float = 0.2
    opens: dict[str, float] = field(default_factory=dict)  # of delivered mails, by locale: opened at least once
    clicks: dict[str, float] = field(default_factory=dict)  # of opened mails, by locale: a link clicked
    machine_opens: float = 0.0  # of delivered mails: opened by the mailbox itself (sg_machine_open), as Apple's MPP

    @classmethod
    def from_json(cls, body: Any, require_url: bool = True) -> EventsConfig:
        """The whole configuration from a JSON object (omitted keys take their defaults); raises EventsError."""
        if not isinstance(body, dict):
            raise EventsError("body", "expected a JSON object")
        unknown = sorted(set(body) - _KEYS)
        if unknown:
            raise EventsError(unknown[0], f"unknown key (known: {', '.join(sorted(_KEYS))})")
        if require_url and "url" not in body:
            raise EventsError("url", "required (null turns posting off)")
        shares = {name: _share(name, body.get(name, 0.0)) for name in SHARES}
        if sum(shares.values()) > 1.0 + 1e-9:
            raise EventsError("shares", f"{', '.join(SHARES)} add up to more than 1")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise EventsError("seed", "expected an integer or null")
        batch = body.get("batch", cls.batch)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
            raise EventsError("batch", f"expected a whole number from 1 to {MAX_BATCH}")
        interval = body.get("interval", cls.interval)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not (
                math.isfinite(interval) and 0.01 <= interval <= 3600):
            raise EventsError("interval", "expected seconds from 0.01 to 3600")
        return cls(_url(body.get("url")), **shares, seed=seed, batch=batch, interval=float(interval),
                   opens=_shares_by_locale("opens", body.get("opens", {})),
                   clicks=_shares_by_locale("clicks", body.get("clicks", {})),
                   machine_opens=_share("machine_opens", body.get("machine_opens", 0.0)))

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def outcome(self, u: float) -> str:
        """The outcome of one uniform draw from [0, 1): the shares in SHARES order, then ``delivered``."""
        bound = 0.0
        for name in SHARES:
            bound += getattr(self, name)
            if u < bound:
                return name
        return "delivered"


class EventSigner:
    """The Event Webhook's signing key; SendGrid's receivers verify with its public half (``public_key``)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise EventsError("events key", "expected an ECDSA P-256 (prime256v1) private key")
        self._key = key
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()  # what SendGrid's settings page shows

    @classmethod
    def generate(cls) -> EventSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load(cls, path: Path) -> EventSigner:
        """A PEM private key file (unencrypted), as ``openssl ecparam -name prime256v1 -genkey`` writes it."""
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise EventsError("events key", f"cannot read a PEM private key from {path}: {exc}") from None
        return cls(key)  # type: ignore[arg-type]  # checked in __init__

    def sign(self, timestamp: str, body: bytes) -> str:
        """SendGrid's signature: base64 of the DER ECDSA (SHA-256) signature over ``timestamp + body``."""
        return base64.b64encode(self._key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


@dataclass(slots=True, frozen=True)
class _Personalization:
    """What one accepted personalization's events need, kept until they are built at posting time (less memory)."""

    email: str
    timestamp: int
    message_id: str
    smtp_id: str
    outcome: str
    custom_args: dict[str, Any]
    categories: tuple[str, ...]
    asm_group_id: int | None
    engaged: tuple[tuple[str, dict[str, Any]], ...] = ()  # opens and clicks after delivery, drawn on acceptance

    def events(self) -> list[dict[str, Any]]:
        """SendGrid's events for it; custom_args first, so they never overwrite SendGrid's own fields."""
        shared: dict[str, Any] = {**self.custom_args, "email": self.email, "timestamp": self.timestamp,
                                  "smtp-id": self.smtp_id, "sg_message_id": self.message_id}
        if self.categories:
            shared["category"] = list(self.categories)
        if self.asm_group_id is not None:
            shared["asm_group_id"] = self.asm_group_id
        return [{**shared, "event": name, "sg_event_id": secrets.token_urlsafe(16), **extra}
                for name, extra in (*OUTCOME_EVENTS[self.outcome], *self.engaged)]


@dataclass(slots=True)
class Batch:
    """One JSON array of events, posted until the receiver takes it (or refuses it MAX_REFUSALS times)."""

    events: int
    body: bytes
    refusals: int = 0


@dataclass
class EventCounters:
    generated: int = 0  # events queued since the start or the last reset
    posted_batches: int = 0
    posted_events: int = 0
    failed_posts: int = 0  # every post that was refused, not answered or answered with a non-2xx status
    dropped_batches: int = 0  # given up after MAX_REFUSALS 4xx answers
    dropped_events: int = 0
    pending: int = 0  # queued or in flight, neither posted nor dropped


@dataclass
class EventFeed:
    """The Event Webhook's state: configuration, queue, the batch in flight and counters; one event loop, no locks.

    ``without_url`` (the ``full`` log mode): events are queued even while no url is set, and posted once one is;
    the ``ids`` mode generates none until a url is set, so benchmarks pay nothing for them.
    """

    startup: EventsConfig = field(default_factory=EventsConfig)
    signer: EventSigner = field(default_factory=EventSigner.generate)
    without_url: bool = True

    def __post_init__(self) -> None:
        self.wake = asyncio.Event()  # set when the configuration changes, so a new interval applies at once
        self.reset()

    def reset(self) -> None:
        """Back to the configuration the emulator started with; nothing queued, counters at zero; same key."""
        self._queue: deque[_Personalization] = deque()
        self._built: deque[dict[str, Any]] = deque()
        self.in_flight: Batch | None = None
        self.counters = EventCounters()
        self.configure(self.startup)

    def configure(self, config: EventsConfig) -> None:
        """Apply a configuration; a seed restarts the outcome draws, so the same mails get the same outcomes."""
        self.config = config
        self._rng = random.Random(config.seed)
        self.wake.set()

    @property
    def generating(self) -> bool:
        return self.without_url or self.config.url is not None

    def accept(self, message_id: str, entries: list[dict[str, Any]]) -> None:
        """Queue the events of a request the emulator answered 202 with ``message_id``, one set per entry."""
        if not self.generating:
            return
        now = int(time.time())
        smtp_id = f"<{message_id}@ismtpd-emulator>"
        for i, entry in enumerate(entries):
            outcome = self.config.outcome(self._rng.random())
            asm = entry.get("asm")
            engaged = self._engagement(entry) if outcome == "delivered" else ()
            self._queue.append(_Personalization(
                entry["to"][0], now, f"{message_id}.filterdrecv-{i}", smtp_id, outcome, entry["custom_args"],
                tuple(entry.get("categories") or ()), asm["group_id"] if isinstance(asm, dict) else None, engaged))
            n = len(OUTCOME_EVENTS[outcome]) + len(engaged)
            self.counters.generated += n
            self.counters.pending += n

    def _engagement(self, entry: dict[str, Any]) -> tuple[tuple[str, dict[str, Any]], ...]:
        """The opens and clicks of a delivered mail, at the configured shares for its locale (its html's
        ``lang``): a machine open (flagged ``sg_machine_open``), a reader's open, and a click on one of its links
        (never the unsubscribe one: that is an outcome of its own), as SendGrid reports them."""
        config, rng, html = self.config, self._rng, entry.get("html") or ""
        if not (config.opens or config.clicks or config.machine_opens):
            return ()
        found = _LANG.search(html)
        locale = found[1] if found else None
        out: list[tuple[str, dict[str, Any]]] = []
        if rng.random() < config.machine_opens:
            out.append(("open", {"sg_machine_open": True, "useragent": "Mozilla/5.0", "ip": "17.0.0.1"}))
        if rng.random() < share_for(config.opens, locale):
            out.append(("open", {"sg_machine_open": False, "useragent": "Mozilla/5.0", "ip": "192.0.2.1"}))
            links = [u for u in _HREF.findall(html) if "/u/" not in u and "unsubscribe" not in u]
            if links and rng.random() < share_for(config.clicks, locale):
                out.append(("click", {"url": rng.choice(links), "useragent": "Mozilla/5.0", "ip": "192.0.2.1"}))
        return tuple(out)

    def next_batch(self) -> Batch | None:
        """The batch to post now: the one that failed before, or up to ``batch`` new events; None when idle."""
        if self.config.url is None:
            return None
        if self.in_flight is None:
            size = self.config.batch
            while len(self._built) < size and self._queue:
                self._built.extend(self._queue.popleft().events())
            if not self._built:
                return None
            events = [self._built.popleft() for _ in range(min(size, len(self._built)))]
            body = json.dumps(events, ensure_ascii=False, separators=(",", ":")).encode()
            self.in_flight = Batch(len(events), body)
        return self.in_flight

    def settle(self, batch: Batch, status: int | None) -> None:
        """Count how a post of ``batch`` went (``status`` None: no answer); ignored if a reset came in between."""
        if batch is not self.in_flight:
            return
        c = self.counters
        if status is not None and 200 <= status < 300:
            c.posted_batches += 1
            c.posted_events += batch.events
            c.pending -= batch.events
            self.in_flight = None
            return
        c.failed_posts += 1
        if status is not None and 400 <= status < 500:
            batch.refusals += 1
            if batch.refusals >= MAX_REFUSALS:
                log.warning("event webhook receiver answered %d %d times; dropped a batch of %d events",
                            status, batch.refusals, batch.events)
                c.dropped_batches += 1
                c.dropped_events += batch.events
                c.pending -= batch.events
                self.in_flight = None
                return
        log.info("event webhook post failed (%s); %d events pending", status or "no answer", c.pending)

    def status(self) -> dict[str, Any]:
        return {**self.config.as_json(), **asdict(self.counters)}


async def post_once(feed: EventFeed, session: aiohttp.ClientSession) -> None:
    """Post the next batch, signed as SendGrid signs it, and settle it with the answer's status."""
    batch, url = feed.next_batch(), feed.config.url
    if batch is None or url is None:
        return
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API",
               TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: feed.signer.sign(timestamp, batch.body)}
    status: int | None = None
    try:
        async with session.post(url, data=batch.body, headers=headers, allow_redirects=False) as answer:
            await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        pass  # refused, reset, timed out or not a URL aiohttp can use: posted again on the next interval
    feed.settle(batch, status)


async def post_forever(feed: EventFeed) -> None:
    """Post one batch per interval until cancelled; an unexpected error is logged and never stops the emulator."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT)) as session:
        while True:
            feed.wake.clear()
            try:
                await asyncio.wait_for(feed.wake.wait(), feed.config.interval)
                continue  # reconfigured: wait the new interval
            except TimeoutError:
                pass
            try:
                await post_once(feed, session)
            except Exception:  # a bug here must not take the mail and push endpoints down with it
                log.exception("posting events failed")
