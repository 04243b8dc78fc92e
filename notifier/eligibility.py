"""Who is eligible for a campaign's channel, once: a pure predicate and its SQL form side by side.

The plan view (an audience file or the ledger), scheduling (which zones get send groups) and materialization
(which recipients get a delivery row) all ask here, so they cannot disagree. The rule:

- a campaign with ``audience.countries`` takes only recipients whose country is one of them (no country: out);
- the channel must be present: an email address for ``email``, at least one active push token for ``push``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import exists, false, or_, select, true

from notifier.ledger.models import PushToken, Recipient


def in_audience(countries: Collection[str], country: str | None) -> bool:
    """Whether a recipient from ``country`` belongs to a campaign limited to ``countries`` (empty: everyone)."""
    return not countries or (country is not None and country in countries)


def has_channel(channel: str, email: str | None, active_push_tokens: Iterable[str]) -> bool:
    """Whether the recipient can be reached on ``channel`` at all."""
    if channel == "email":
        return bool(email)
    return any(True for _ in active_push_tokens)


def channels_of(channels: Iterable[str], email: str | None, active_push_tokens: Iterable[str]) -> list[str]:
    """The campaign's channels this recipient has, in the campaign's order."""
    tokens = tuple(active_push_tokens)
    return [ch for ch in channels if has_channel(ch, email, tokens)]


def reachable(countries: Collection[str], channels: Iterable[str], country: str | None, email: str | None,
              active_push_tokens: Iterable[str]) -> tuple[str, ...]:
    """The campaign's ``channels`` this recipient is eligible on: none outside its audience, else those present.
    Which of them one send goes on is the planner's (``ZonePlan.channels_of``)."""
    if not in_audience(countries, country):
        return ()
    return tuple(channels_of(channels, email, active_push_tokens))


def in_audience_sql(countries: Collection[str]) -> Any:
    """:func:`in_audience` as a WHERE clause on :class:`Recipient` (``IN`` is never true for NULL)."""
    return Recipient.country.in_(sorted(countries)) if countries else true()


def has_channel_sql(channel: str) -> Any:
    """:func:`has_channel` as a WHERE clause on :class:`Recipient`."""
    if channel == "email":
        return Recipient.email.is_not(None) & (Recipient.email != "")
    return exists().where(PushToken.recipient_seq == Recipient.seq, PushToken.active.is_(True))


def push_holders_sql() -> Any:
    """The recipients :func:`has_channel_sql` finds for ``push`` (an active token), as a subquery of their ``seq``
    to outer-join when counting many recipients at once: one hash join instead of a probe per recipient."""
    return select(PushToken.recipient_seq.label("seq")).where(PushToken.active.is_(True)).distinct().subquery()


def eligible(countries: Collection[str], channel: str, country: str | None, email: str | None,
             active_push_tokens: Iterable[str]) -> bool:
    """Whether this recipient gets the campaign's messages on ``channel``: the one rule."""
    return in_audience(countries, country) and has_channel(channel, email, active_push_tokens)


def eligible_sql(countries: Collection[str], channels: Iterable[str]) -> Any:
    """:func:`eligible` for any of ``channels`` as a WHERE clause on :class:`Recipient`."""
    return in_audience_sql(countries) & or_(false(), *(has_channel_sql(ch) for ch in channels))
