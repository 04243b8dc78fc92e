"""Delivery outcomes shared by every channel (and, later, by provider webhooks)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    SENT = "sent"  # the provider accepted the message
    RETRY = "retry"  # worth another attempt after retry_after seconds
    FAILED = "failed"  # will never go through as it is
    INVALID_RECIPIENT = "invalid_recipient"  # the address or every token is invalid: never retry
    BLOCKED = "blocked"  # the channel is blocked by its configuration, not this message: back to pending, no attempt


@dataclass(frozen=True)
class SendResult:
    """What happened to one message; carries ledger ids only, never personal data."""

    delivery_id: int
    outcome: Outcome
    provider_message_id: str | None = None
    retry_after: float | None = None
    error: str | None = None
    dead_tokens: tuple[str, ...] = ()  # push tokens the provider says will never work again: deactivate them
    uncertain: bool = False  # the provider may have taken it anyway (timed out or cut off mid-request)

    @classmethod
    def sent(cls, delivery_id: int, provider_message_id: str, dead_tokens: tuple[str, ...] = ()) -> SendResult:
        return cls(delivery_id, Outcome.SENT, provider_message_id=provider_message_id, dead_tokens=dead_tokens)

    @classmethod
    def retry(cls, delivery_id: int, error: str, retry_after: float | None = None,
              dead_tokens: tuple[str, ...] = (), uncertain: bool = False) -> SendResult:
        return cls(delivery_id, Outcome.RETRY, retry_after=retry_after, error=error, dead_tokens=dead_tokens,
                   uncertain=uncertain)

    @classmethod
    def failed(cls, delivery_id: int, error: str, dead_tokens: tuple[str, ...] = ()) -> SendResult:
        return cls(delivery_id, Outcome.FAILED, error=error, dead_tokens=dead_tokens)

    @classmethod
    def invalid(cls, delivery_id: int, error: str, dead_tokens: tuple[str, ...] = ()) -> SendResult:
        return cls(delivery_id, Outcome.INVALID_RECIPIENT, error=error, dead_tokens=dead_tokens)

    @classmethod
    def blocked(cls, delivery_id: int, error: str) -> SendResult:
        """The channel cannot send at all (a ChannelConfigError): this message waits, without spending an attempt."""
        return cls(delivery_id, Outcome.BLOCKED, error=error)
