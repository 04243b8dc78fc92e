"""Who is eligible for a campaign's channel, once: a pure predicate and its SQL form side by side.

The plan view (an audience file or the ledger), scheduling (which zones get send groups), materialization (which
recipients get a delivery row), the dry run, the guard before a send and the results all ask here, so they cannot
disagree. The rule:

- the audience: a recipient whose country is one of ``audience.countries`` (when it lists any; no country: out) and
  who meets ``audience.where`` (:mod:`notifier.conditions`);
- the holdout: a marketing campaign's ``audience.holdout`` share of that audience, chosen by an MD5 of the campaign's
  and the recipient's ids (stable, and another share in each campaign), is in the audience but gets nothing;
- a deadline whose ``where`` the recipient does not meet is not theirs: a send carries only the deadlines that are;
- the channel must be present: an email address for ``email``, at least one active push token for ``push``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import BigInteger, Boolean, ColumnElement, and_, cast, exists, false, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from notifier.campaign import Campaign
from notifier.conditions import Condition, Facts
from notifier.ledger.db import HOLDOUT_BUCKETS, holdout_bucket
from notifier.ledger.models import PushToken, Recipient

__all__ = ["Facts", "channels_of", "countries_sql", "deadlines_for", "deadlines_sql", "eligible", "eligible_sql",
           "facts_of", "has_channel", "has_channel_sql", "held_out", "held_out_sql", "in_audience", "in_audience_sql",
           "push_holders_sql", "reachable", "receives", "receives_sql", "where_sql"]


# --- the audience --------------------------------------------------------------------------------------------------


def in_audience(campaign: Campaign, facts: Facts) -> bool:
    """Whether the recipient belongs to the campaign's audience: its countries and its ``where`` (holdout included)."""
    countries = campaign.countries
    if countries and (facts.country is None or facts.country not in countries):
        return False
    return _meets(campaign.where, facts)


def held_out(campaign: Campaign, recipient_id: str) -> bool:
    """Whether the recipient is in the campaign's holdout (meaningful for its audience only)."""
    return campaign.holdout > 0 and holdout_bucket(f"{campaign.id}:{recipient_id}") < campaign.holdout


def receives(campaign: Campaign, facts: Facts, recipient_id: str) -> bool:
    """In the audience and not held out: the campaign's messages are for them."""
    return in_audience(campaign, facts) and not held_out(campaign, recipient_id)


def facts_of(recipient: Any) -> Facts:
    """What a condition reads of a recipient object (an audience file's row, a ledger member, a claimed row)."""
    return Facts(getattr(recipient, "country", None), getattr(recipient, "locale", None),
                 getattr(recipient, "timezone", None), getattr(recipient, "attributes", None))


def deadlines_for(campaign: Campaign, deadline_ids: Iterable[str], facts: Facts) -> tuple[str, ...]:
    """Those of ``deadline_ids`` that concern this recipient (their ``where``, if any, met)."""
    return tuple(d for d in deadline_ids if _meets(campaign.deadline(d).where, facts))


def _meets(where: Condition | None, facts: Facts) -> bool:
    return where is None or where.test(facts)


def countries_sql(countries: Collection[str]) -> Any:
    """Only the ``audience.countries`` part of the audience (what purging keeps data for: a ``where`` may be met
    later), as a WHERE clause on :class:`Recipient`; ``IN`` is never true for NULL."""
    return Recipient.country.in_(sorted(countries)) if countries else true()


def in_audience_sql(campaign: Campaign) -> Any:
    """:func:`in_audience` as a WHERE clause on :class:`Recipient`."""
    return and_(countries_sql(campaign.countries), where_sql(campaign.where))


def held_out_sql(campaign: Campaign) -> Any:
    """:func:`held_out` as a WHERE clause on :class:`Recipient`."""
    return _HeldOut(campaign.id, campaign.holdout) if campaign.holdout > 0 else false()


def receives_sql(campaign: Campaign) -> Any:
    """:func:`receives` as a WHERE clause on :class:`Recipient`."""
    return and_(in_audience_sql(campaign), ~held_out_sql(campaign)) if campaign.holdout else in_audience_sql(campaign)


def deadlines_sql(campaign: Campaign, deadline_ids: Iterable[str]) -> Any:
    """Whether any of ``deadline_ids`` concerns the recipient (:func:`deadlines_for` is not empty), on
    :class:`Recipient`."""
    wheres = [campaign.deadline(d).where for d in deadline_ids]
    if any(w is None for w in wheres):
        return true()
    return or_(false(), *(where_sql(w) for w in wheres))


def where_sql(where: Condition | None) -> Any:
    """A condition on :class:`Recipient`, written for the database the statement runs on when it is compiled."""
    return true() if where is None else _Where(where)


# --- the channels --------------------------------------------------------------------------------------------------


def has_channel(channel: str, email: str | None, active_push_tokens: Iterable[str]) -> bool:
    """Whether the recipient can be reached on ``channel`` at all."""
    if channel == "email":
        return bool(email)
    return any(True for _ in active_push_tokens)


def channels_of(channels: Iterable[str], email: str | None, active_push_tokens: Iterable[str]) -> list[str]:
    """The campaign's channels this recipient has, in the campaign's order."""
    tokens = tuple(active_push_tokens)
    return [ch for ch in channels if has_channel(ch, email, tokens)]


def reachable(campaign: Campaign, facts: Facts, recipient_id: str, email: str | None,
              active_push_tokens: Iterable[str]) -> tuple[str, ...]:
    """The campaign's channels this recipient is eligible on: none outside its audience or in its holdout, else those
    present. Which of them one send goes on is the planner's (``ZonePlan.channels_of``)."""
    if not receives(campaign, facts, recipient_id):
        return ()
    return tuple(channels_of(campaign.channels, email, active_push_tokens))


def has_channel_sql(channel: str) -> Any:
    """:func:`has_channel` as a WHERE clause on :class:`Recipient`."""
    if channel == "email":
        return Recipient.email.is_not(None) & (Recipient.email != "")
    return exists().where(PushToken.recipient_seq == Recipient.seq, PushToken.active.is_(True))


def push_holders_sql() -> Any:
    """The recipients :func:`has_channel_sql` finds for ``push`` (an active token), as a subquery of their ``seq``
    to outer-join when counting many recipients at once: one hash join instead of a probe per recipient."""
    return select(PushToken.recipient_seq.label("seq")).where(PushToken.active.is_(True)).distinct().subquery()


def eligible(campaign: Campaign, channel: str, facts: Facts, recipient_id: str, email: str | None,
             active_push_tokens: Iterable[str]) -> bool:
    """Whether this recipient gets the campaign's messages on ``channel``: the one rule."""
    return receives(campaign, facts, recipient_id) and has_channel(channel, email, active_push_tokens)


def eligible_sql(campaign: Campaign, channels: Iterable[str]) -> Any:
    """Who gets the campaign's messages on any of ``channels``, as a WHERE clause on :class:`Recipient`."""
    return receives_sql(campaign) & or_(false(), *(has_channel_sql(ch) for ch in channels))


# --- SQL written for the dialect at compile time -------------------------------------------------------------------

_FIELDS: Mapping[str, Any] = {"country": Recipient.country, "locale": Recipient.locale,
                              "timezone": Recipient.timezone}


class _Where(ColumnElement[bool]):
    """A condition that becomes SQL when its statement is compiled, for that statement's database."""

    type = Boolean()
    inherit_cache = False  # a condition's SQL is not cached across statements

    def __init__(self, condition: Condition) -> None:
        self.condition = condition


@compiles(_Where)
def _compile_where(element: _Where, compiler: SQLCompiler, **kw: Any) -> str:
    sql = element.condition.sql(compiler.dialect.name, _FIELDS, Recipient.attributes)
    return f"({compiler.process(sql, **kw)})"


class _HeldOut(ColumnElement[bool]):
    """The recipient's bucket in the campaign below its holdout: SQLite calls :func:`holdout_bucket`, PostgreSQL
    takes the same 32 bits of its own ``md5``."""

    type = Boolean()
    inherit_cache = False

    def __init__(self, campaign_id: str, points: int) -> None:
        self.campaign_id, self.points = campaign_id, points


@compiles(_HeldOut)
def _compile_held_out(element: _HeldOut, compiler: SQLCompiler, **kw: Any) -> str:
    key = literal(f"{element.campaign_id}:") + Recipient.id
    if compiler.dialect.name == "postgresql":
        bits = cast(literal("x") + func.substr(func.md5(key), 1, 8), BIT(32))
        bucket = func.mod(cast(bits, BigInteger()), HOLDOUT_BUCKETS)
    else:
        bucket = func.notifier_bucket(key)
    return f"({compiler.process(bucket < element.points, **kw)})"
