"""A campaign's live counts, as the ledger's triggers keep them (migration 0011), and the same counted from the rows.

Every change to a delivery row adds to ``delivery_tallies`` in the same transaction (a trigger: no code path can
forget it), so reading the counts costs the number of keys (send group × locale × channel × state × reason), not
the number of rows: a live page polling a campaign of a million messages reads a few thousand rows, not a million.

Exact under concurrency: a tally changes only in the transaction that changes its rows, so it commits or rolls
back with them. On PostgreSQL each statement appends its deltas (no row another worker waits on), and
``roll_up`` folds a key's deltas into one row: one statement that deletes them and inserts their sum, so a
concurrent reader sees either the deltas or the sum, never both, and deltas committed meanwhile stay for the next
pass. SQLite adds to one row per key in place.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select, text
from sqlalchemy.orm import Session

from notifier.ledger.models import DeliveryRow, DeliveryTally
from notifier.ledger.states import OPEN_STATES, DeliveryState


@dataclass(frozen=True)
class Tally:
    """How many rows of a campaign share one key, and how many of them are uncertain."""

    group_id: int
    locale: str | None  # None: not resolved yet (a row not sent)
    channel: str
    state: str
    reason: str | None  # why it was skipped, failed or waits; None when there is none
    n: int
    uncertain: int = 0


def _read(session: Session, q: Select[Any]) -> list[Tally]:
    """Tallies from (group, locale, channel, state, reason, n, uncertain) rows, '' back to None."""
    return [Tally(g, loc or None, ch, st, why or None, int(n), int(u or 0))
            for g, loc, ch, st, why, n, u in session.execute(q)]


def of_campaign(session: Session, campaign_id: str) -> list[Tally]:
    """The campaign's counts by key, from the tallies."""
    t = DeliveryTally
    q = (select(t.group_id, t.locale, t.channel, t.state, t.reason, func.sum(t.n), func.sum(t.uncertain))
         .where(t.campaign_id == campaign_id)
         .group_by(t.group_id, t.locale, t.channel, t.state, t.reason)
         .having(or_(func.sum(t.n) != 0, func.sum(t.uncertain) != 0)))
    return _read(session, q)


def by_state(session: Session) -> dict[str, Counter[str]]:
    """Every campaign's rows by state, from the tallies."""
    t = DeliveryTally
    out: dict[str, Counter[str]] = {}
    for campaign_id, state, n in session.execute(
            select(t.campaign_id, t.state, func.sum(t.n)).group_by(t.campaign_id, t.state)):
        if n:
            out.setdefault(campaign_id, Counter())[state] = int(n)
    return out


def has_open(session: Session, campaign_id: str) -> bool:
    """Whether any of the campaign's rows is still open (pending, queued or sending)."""
    t = DeliveryTally
    n = session.scalar(select(func.sum(t.n)).where(t.campaign_id == campaign_id, t.state.in_(OPEN_STATES)))
    return bool(n)


# A row's reason as the live counts show it, written as the triggers write it.
_REASON = case(
    (DeliveryRow.state == DeliveryState.SKIPPED, func.coalesce(DeliveryRow.skip_reason, "")),
    (or_(DeliveryRow.state == DeliveryState.FAILED,
         and_(DeliveryRow.state == DeliveryState.PENDING, DeliveryRow.last_error.is_not(None))),
     func.coalesce(DeliveryRow.last_error, "")),
    else_=literal(""),
)


def recount(session: Session, campaign_id: str) -> list[Tally]:
    """The same counts from the campaign's rows themselves (one pass over them): what the tallies must equal."""
    d = DeliveryRow
    locale = func.coalesce(d.locale, "")
    reason = _REASON.label("reason")
    q = (select(d.group_id, locale, d.channel, d.state, reason, func.count(),
                func.count().filter(d.uncertain.is_(True)))
         .where(d.campaign_id == campaign_id).group_by(d.group_id, locale, d.channel, d.state, reason))
    return _read(session, q)


def replace(session: Session, campaign_id: str, kept: list[Tally]) -> None:
    """Set the campaign's tallies to ``kept`` (its rows removed, its counts kept: ``partitions.empty``)."""
    session.execute(DeliveryTally.__table__.delete().where(DeliveryTally.campaign_id == campaign_id))
    if kept:
        session.execute(DeliveryTally.__table__.insert(), [
            {"campaign_id": campaign_id, "group_id": t.group_id, "locale": t.locale or "", "channel": t.channel,
             "state": t.state, "reason": t.reason or "", "n": t.n, "uncertain": t.uncertain} for t in kept])


_ROLL_UP = text("""
WITH busy AS (
  SELECT DISTINCT campaign_id FROM delivery_tallies
  GROUP BY campaign_id, group_id, locale, channel, state, reason HAVING count(*) > 1 OR sum(n) = 0
), gone AS (
  DELETE FROM delivery_tallies WHERE campaign_id IN (SELECT campaign_id FROM busy)
  RETURNING campaign_id, group_id, locale, channel, state, reason, n, uncertain
)
INSERT INTO delivery_tallies (campaign_id, group_id, locale, channel, state, reason, n, uncertain)
SELECT campaign_id, group_id, locale, channel, state, reason, sum(n), sum(uncertain) FROM gone
GROUP BY campaign_id, group_id, locale, channel, state, reason HAVING sum(n) <> 0 OR sum(uncertain) <> 0""")


def roll_up(session: Session) -> int:
    """Fold each key's deltas into one row (PostgreSQL), drop keys back at zero (both); returns rows left behind
    by the campaigns it touched. Only campaigns that have something to fold are rewritten."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(_ROLL_UP).rowcount or 0
    session.execute(text("DELETE FROM delivery_tallies WHERE n = 0 AND uncertain = 0"))
    return 0

