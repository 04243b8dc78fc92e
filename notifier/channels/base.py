"""The channel interface: send a batch of rendered messages, get one SendResult per message.

The shared flow lives here: grouping messages that can share a provider request, cutting groups to the
provider's batch limit, pacing with a rate limit, and turning a DeliveryError for a whole request into
one result per message. A provider module only builds its request and parses its answer
(``_send_batch``); retries are ledger states that the dispatcher schedules from these results.

``send`` keeps its promise under faults: one result per message, never an exception. A ChannelConfigError
(credentials refused) blocks the rest of the call without another request; any other exception from a
provider module is logged and becomes an uncertain retry, since the provider may have taken the batch.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Protocol

from notifier.errors import (
    ChannelConfigError,
    DeliveryError,
    InvalidRecipientError,
    PermanentError,
    TransientError,
    raised_at,
)
from notifier.events import SendResult
from notifier.render import Personal, fill

log = logging.getLogger(__name__)
MAX_ERROR = 300  # characters of an unexpected exception kept in a result


@dataclass(frozen=True)
class EmailMessage:
    """An email for one recipient: the variant's text with markers, and the recipient's own fields.

    Keeping the variant unfilled lets a provider send many recipients in one request (SendGrid
    substitutions); ``filled()`` gives the final text for transports that need it.
    """

    delivery_id: int
    to: str
    to_name: str | None
    subject: str
    text: str
    html: str
    personal: Personal = field(default_factory=Personal)
    variant: Hashable = None  # messages with the same variant share subject, text and html
    tags: tuple[str, ...] = ()  # for the provider's reports (SendGrid categories)
    metadata: Mapping[str, str] = field(default_factory=dict)  # ledger ids only, never personal data
    headers: Mapping[str, str] = field(default_factory=dict)  # per recipient (List-Unsubscribe)
    marketing: bool = False  # honours opt-outs (SendGrid attaches its ASM unsubscribe group if one is configured)
    sender: str | None = None  # the From value ("Name <address>"); None: the channel's default (NOTIFIER_EMAIL_FROM)
    reply_to: str | None = None  # an address for replies; None: no Reply-To
    date: datetime | None = None  # its Date: the dispatcher's simulated clock (demo, --now); None: when it is sent

    def filled(self) -> tuple[str, str, str]:
        """(subject, text, html) with the recipient's fields in place, HTML-escaped in the HTML part."""
        return (fill(self.subject, self.personal, html=False), fill(self.text, self.personal, html=False),
                fill(self.html, self.personal, html=True))


@dataclass(frozen=True)
class PushMessage:
    """A push notification for every active token of one recipient."""

    delivery_id: int
    tokens: tuple[str, ...]
    title: str
    body: str
    expires_at: datetime  # a reminder is worthless after its deadline: the TTL ends here
    collapse_key: str  # one per campaign and deadline: a newer reminder replaces an older one
    metadata: Mapping[str, str] = field(default_factory=dict)  # ledger ids only, never personal data
    tags: tuple[str, ...] = ()  # for the provider's reports (FCM: the last one, as the analytics label)
    marketing: bool = False  # honours opt-outs
    ttl: timedelta = timedelta(days=28)  # from the send to ``expires_at`` (FCM keeps a message at most 4 weeks)
    link: str | None = None  # the https page a tap opens (its most urgent deadline's link); None: the app's home

    @property
    def data(self) -> dict[str, str]:
        """What the push carries for the app (FCM's ``data``, the outbox's too): the ledger ids, and the page a tap
        opens as ``link`` (the app's contract: docs/templates.md, "Where a push leads")."""
        return {**self.metadata, LINK: self.link} if self.link else dict(self.metadata)


LINK = "link"  # the data key of the page a tap opens
Message = EmailMessage | PushMessage


class Pacer(Protocol):
    """Anything that makes a sender wait its turn: the in-process RateLimiter, or one shared through Redis."""

    def acquire(self, n: int = 1) -> float: ...


class RateLimiter:
    """A token bucket: at most ``rate`` messages per second on average, bursts up to ``burst``.

    Per process; a fleet shares one limit through Redis instead (``channels.pacing.RedisRateLimiter``).
    """

    def __init__(self, rate: float, burst: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.clock, self.sleep = clock, sleep
        self._tokens = self.burst
        self._at = clock()
        self._lock = threading.Lock()

    def acquire(self, n: int = 1) -> float:
        """Wait until ``n`` messages may go; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait


class Channel(abc.ABC):
    """One way of reaching recipients (email, push) through one transport."""

    name: ClassVar[str]
    provider: ClassVar[str] = ""
    max_batch: ClassVar[int] = 1000
    rate_limiter: Pacer | None = None

    def __init__(self, rate_limiter: Pacer | None = None) -> None:
        self.rate_limiter = rate_limiter

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send ``messages``: one result per message, in the order given; never raises for a provider's fault."""
        results: list[SendResult | None] = [None] * len(messages)
        blocked: ChannelConfigError | None = None
        for part in self._batches(messages):
            batch = [messages[i] for i in part]
            if blocked is None:
                try:
                    got = self._send_checked(batch)
                except ChannelConfigError as exc:  # nothing of this channel can go out: spare the provider the rest
                    blocked = exc
                    log.warning("%s: blocked by configuration (fix %s); %d messages wait", self._label, exc.setting,
                                len(messages))
            if blocked is not None:
                got = [result_for(m.delivery_id, blocked) for m in batch]
            for i, result in zip(part, got, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def _batches(self, messages: Sequence[Message]) -> Iterator[list[int]]:
        """Indexes of the messages of each provider request: grouped by batch key, at most ``max_batch`` each."""
        by_key: dict[Hashable, list[int]] = {}
        for i, m in enumerate(messages):
            by_key.setdefault(self.batch_key(m), []).append(i)
        for indexes in by_key.values():
            for start in range(0, len(indexes), self.max_batch):
                yield indexes[start : start + self.max_batch]

    def _send_checked(self, batch: Sequence[Message]) -> list[SendResult]:
        """One result per message of one batch; only a ChannelConfigError escapes, to block the rest of the call."""
        if self.rate_limiter is not None:
            try:
                self.rate_limiter.acquire(len(batch))
            except Exception as exc:  # the shared limit is unreachable (Redis down): nothing was sent
                log.error("%s: the rate limiter failed (%s); %d messages wait", self._label, type(exc).__name__,
                          len(batch))
                return [SendResult.retry(m.delivery_id, f"{self._label}: rate limiter unavailable: "
                                         f"{type(exc).__name__}") for m in batch]
        try:
            got = self._send_batch(batch)
        except ChannelConfigError:
            raise
        except DeliveryError as exc:
            return [result_for(m.delivery_id, exc) for m in batch]
        except Exception as exc:  # a bug or a surprise in a provider module: the provider may have taken the batch
            # The exception's text may quote what it choked on (an address, a name): only its type and place.
            log.error("%s: unexpected %s at %s sending %d messages (delivery ids %s)", self._label,
                      type(exc).__name__, raised_at(exc), len(batch), _ids(batch))
            error = f"{self._label}: unexpected {type(exc).__name__} at {raised_at(exc)}"[:MAX_ERROR]
            return [SendResult.retry(m.delivery_id, error, uncertain=True) for m in batch]
        if len(got) != len(batch):
            error = f"{type(self).__name__} returned {len(got)} results for {len(batch)} messages"
            log.error("%s: %s (delivery ids %s)", self._label, error, _ids(batch))
            return [SendResult.retry(m.delivery_id, error, uncertain=True) for m in batch]
        return got

    @property
    def _label(self) -> str:
        return self.provider or self.name

    def batch_key(self, message: Message) -> Hashable:
        """Messages with equal keys may travel in one provider request (default: all of them)."""
        return None

    @abc.abstractmethod
    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        """Send one batch (at most ``max_batch``); raise DeliveryError when the whole batch failed, and
        ChannelConfigError when the channel cannot send at all (its credentials were refused)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; most channels hold none."""


def _ids(batch: Sequence[Message]) -> str:
    """The batch's delivery ids for a log line (the first ten), never anything personal."""
    ids = [str(m.delivery_id) for m in batch[:10]]
    return ", ".join(ids) + (f", ... ({len(batch)} in all)" if len(batch) > 10 else "")


def result_for(delivery_id: int, exc: DeliveryError) -> SendResult:
    """The result of one message whose request failed with ``exc``."""
    if isinstance(exc, ChannelConfigError):
        return SendResult.blocked(delivery_id, str(exc))
    if isinstance(exc, TransientError):
        return SendResult.retry(delivery_id, str(exc), exc.retry_after, uncertain=exc.uncertain)
    if isinstance(exc, InvalidRecipientError):
        return SendResult.invalid(delivery_id, str(exc))
    if isinstance(exc, PermanentError):
        return SendResult.failed(delivery_id, str(exc))
    return SendResult.retry(delivery_id, str(exc))
