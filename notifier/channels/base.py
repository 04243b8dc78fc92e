"""The channel interface: send a batch of rendered messages, get one SendResult per message.

The shared flow lives here (batching to the provider's limit, turning DeliveryError into results);
a provider module only implements ``_send_batch`` for its own API.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from notifier.errors import DeliveryError, InvalidRecipientError, PermanentError, TransientError
from notifier.events import SendResult


@dataclass(frozen=True)
class EmailMessage:
    """A rendered email for one recipient; ``custom_args`` carry ledger ids only."""

    delivery_id: int
    to: str
    to_name: str | None
    subject: str
    text: str
    html: str
    categories: tuple[str, ...] = ()
    custom_args: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PushMessage:
    """A rendered push notification for every active token of one recipient."""

    delivery_id: int
    tokens: tuple[str, ...]
    title: str
    body: str
    expires_at: datetime  # a reminder is worthless after its deadline
    collapse_key: str
    data: Mapping[str, str] = field(default_factory=dict)


Message = EmailMessage | PushMessage


class Channel(abc.ABC):
    """One way of reaching recipients (email, push) through one transport."""

    name: ClassVar[str]
    max_batch: ClassVar[int] = 1000

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send ``messages`` in provider-sized batches; exactly one result per message, in order."""
        results: list[SendResult] = []
        for start in range(0, len(messages), self.max_batch):
            batch = messages[start : start + self.max_batch]
            try:
                got = self._send_batch(batch)
            except DeliveryError as exc:
                got = [_result_for(m.delivery_id, exc) for m in batch]
            if len(got) != len(batch):
                raise RuntimeError(f"{type(self).__name__} returned {len(got)} results for {len(batch)} messages")
            results.extend(got)
        return results

    @abc.abstractmethod
    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        """Send one batch (at most ``max_batch``); raise DeliveryError when the whole batch failed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; most channels hold none."""


def _result_for(delivery_id: int, exc: DeliveryError) -> SendResult:
    if isinstance(exc, TransientError):
        return SendResult.retry(delivery_id, str(exc), exc.retry_after)
    if isinstance(exc, InvalidRecipientError):
        return SendResult.invalid(delivery_id, str(exc))
    if isinstance(exc, PermanentError):
        return SendResult.failed(delivery_id, str(exc))
    return SendResult.retry(delivery_id, str(exc))
