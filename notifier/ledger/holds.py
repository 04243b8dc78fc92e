"""The ledger's own clock, and holds: why the dispatcher sends nothing at all right now.

A dispatcher whose clock runs a day ahead would skip whole campaigns as ``deadline_passed``, for good. Every tick
on the real clock compares its time with the database's (:func:`ledger_now`); past ``NOTIFIER_MAX_CLOCK_SKEW_SECONDS``
it sends nothing and writes a hold here, which ``status``, ``campaign list`` and the dashboard show until a tick
finds the clocks agreeing again.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from notifier.ledger.db import transaction
from notifier.ledger.models import DispatchHold
from notifier.ledger.queries import dialect_insert

CLOCK = "clock"  # a hold's name: "clock:<host>", one per host, so a fleet's good clocks never clear a bad one's
STALE = timedelta(hours=1)  # a hold no tick has seen this long (its host was fixed or is gone) is no longer shown


def ledger_now(session: Session) -> datetime:
    """The database server's current time (PostgreSQL's ``clock_timestamp()``; SQLite's is this host's)."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    raw = session.scalar(text("SELECT strftime('%Y-%m-%dT%H:%M:%f', 'now')"))
    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)


def skew_refusal(process_now: datetime, database_now: datetime, max_skew: timedelta) -> str | None:
    """Why a tick at ``process_now`` must not send when the ledger says ``database_now``; None when they agree."""
    skew = process_now - database_now
    if abs(skew) <= max_skew:
        return None
    way = "ahead of" if skew > timedelta(0) else "behind"
    return (f"this host's clock is {_span(abs(skew))} {way} the ledger database's "
            f"({process_now:%Y-%m-%d %H:%M:%S} against {database_now:%Y-%m-%d %H:%M:%S} UTC; at most "
            f"{_span(max_skew)} allowed, NOTIFIER_MAX_CLOCK_SKEW_SECONDS): nothing is sent until they agree; "
            f"fix the host's time (NTP)")


def check_clock(sessions: sessionmaker[Session], now: datetime, max_skew: timedelta) -> str | None:
    """Why a tick at ``now`` (this host's clock) must not send, else None; noted as this host's hold, or its hold
    released, in the ledger for status and the dashboard."""
    with transaction(sessions) as s:
        database_now = ledger_now(s)
        why = skew_refusal(now, database_now, max_skew)
        if why is None:
            release(s, clock_hold_name())
        else:
            hold(s, clock_hold_name(), why, database_now)
    return why


def _span(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


@dataclass(frozen=True)
class Hold:
    name: str
    reason: str
    since: datetime
    seen_at: datetime


def hold(session: Session, name: str, reason: str, at: datetime) -> None:
    """Note (or renew) a hold; ``since`` stays that of its first sighting."""
    stmt = dialect_insert(session, DispatchHold).values(name=name, reason=reason, since=at, seen_at=at)
    session.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                               set_={"reason": reason, "seen_at": at}))


def release(session: Session, name: str) -> None:
    session.execute(delete(DispatchHold).where(DispatchHold.name == name))


def clock_hold_name() -> str:
    """This host's clock hold."""
    return f"{CLOCK}:{socket.gethostname()[:50]}"


def active(session: Session) -> list[Hold]:
    """Every hold a tick has seen within the last hour, oldest first."""
    recent = ledger_now(session) - STALE
    return [Hold(h.name, h.reason, h.since, h.seen_at)
            for h in session.scalars(select(DispatchHold).where(DispatchHold.seen_at >= recent)
                                     .order_by(DispatchHold.since))]
