"""Delivery outcomes shared by every channel, and provider events (webhooks) in one vocabulary.

``Outcome`` and ``SendResult`` say what a send did; ``EventType``, ``RejectReason`` and ``ProviderEvent`` say what
the provider reported afterwards. Each provider's words map onto these in a table next to its adapter
(``channels/sendgrid_events.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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


class EventType(enum.StrEnum):
    """What a provider tells us happened to a message after it took it (normalized, as django-anymail does)."""

    QUEUED = "queued"  # the provider has it and will try
    SENT = "sent"  # handed to the receiving server
    DELIVERED = "delivered"  # the receiving server accepted it
    DEFERRED = "deferred"  # delayed; the provider keeps trying
    BOUNCED = "bounced"  # the receiving server refused it (reject_reason says how)
    DROPPED = "dropped"  # the provider refused to send it (reject_reason says why)
    COMPLAINED = "complained"  # the recipient marked it as spam
    UNSUBSCRIBED = "unsubscribed"  # the recipient opted out (a link or the provider's own page)
    OPENED = "opened"
    CLICKED = "clicked"
    UNKNOWN = "unknown"  # a provider word we do not know: kept with its raw event, changes nothing


class RejectReason(enum.StrEnum):
    """Why a message was bounced or dropped."""

    INVALID = "invalid"  # the address does not exist or cannot exist
    BOUNCED = "bounced"  # the provider already knows the address bounces
    TIMED_OUT = "timed_out"
    BLOCKED = "blocked"  # refused for reputation or policy, not for the address itself
    SPAM = "spam"  # the recipient or the provider took it for spam
    UNSUBSCRIBED = "unsubscribed"  # dropped because the recipient had opted out with the provider
    OTHER = "other"


@dataclass(frozen=True)
class ProviderEvent:
    """One provider event in our words. ``address`` is what the event names (never logged); ``raw`` is kept only
    for UNKNOWN events, so a new provider word can be mapped later."""

    provider: str
    event_id: str
    type: EventType
    at: datetime
    address: str | None = None
    delivery_id: int | None = None  # ours, from the ids the message carried; None when it is not one of ours
    campaign_id: str | None = None
    reject_reason: RejectReason | None = None
    description: str | None = None  # the provider's short words (a status code, a classification): no address
    raw: Mapping[str, Any] | None = None
    machine: bool = False  # an open the provider says a machine made (Apple Mail Privacy Protection's prefetch)
    url: str | None = None  # a click's target; never stored: the ledger keeps the name of the campaign's link
