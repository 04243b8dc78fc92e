"""A send's messages spread over the minutes after its time (``delivery.spread``), as the SQL that dates each row.

The rule itself is pure and lives in :mod:`notifier.spread`; here it becomes the INSERT … SELECT's due time
(:func:`due_sql`, the same arithmetic as :func:`~notifier.spread.offset`) and a send group's room
(:func:`room_of`), so the ledger stays at the bottom and takes the rule as data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, literal, literal_column

from notifier.campaign import Campaign, zone
from notifier.ledger.models import SendGroup, UTCDateTime
from notifier.spread import MODULUS, MULTIPLIER, slots, spread_room


def due_sql(dialect: str, send_at: datetime, seq: ColumnElement[Any], room: timedelta) -> ColumnElement[Any]:
    """``send_at`` plus :func:`~notifier.spread.offset` of the ``seq`` column, as SQL for ``dialect``
    (postgresql or sqlite)."""
    n = slots(room)
    if n <= 0:
        return literal(send_at, UTCDateTime())
    k = seq % MODULUS * MULTIPLIER % MODULUS % n
    seconds = k + 1 + k // 59
    if dialect == "postgresql":
        interval = seconds.self_group().op("*")(literal_column("INTERVAL '1 second'")).self_group()
        return literal(send_at, UTCDateTime()).op("+")(interval)
    # SQLite keeps UTC as 'YYYY-MM-DD HH:MM:SS.ffffff': datetime() adds the seconds to the whole part, and the
    # send's fraction is put back, so the text compares and reads back like every other stored time.
    utc = send_at.astimezone(UTC)
    whole = literal(utc.strftime("%Y-%m-%d %H:%M:%S"), String)
    shift = literal("+", String).concat(cast(seconds, String)).concat(" seconds")
    return func.datetime(whole, shift, type_=String).concat(f".{utc.microsecond:06d}")


def room_of(campaign: Campaign, group: SendGroup) -> timedelta:
    """The spread of a send group's messages: the campaign's, cut short by the window's end and by the earliest of
    its deadlines the campaign still has (``spread_room``); when it has none of them, by the group's expiry."""
    tz = zone(group.timezone)
    known = {d.id: d for d in campaign.deadlines}
    ends = [known[d].instant_in(tz) for d in group.deadlines if d in known] or [group.expires_at]
    return spread_room(campaign.delivery, tz, group.send_at, ends)

