"""A send's messages spread over the minutes after its time (``delivery.spread``), by a fixed offset per recipient.

Every recipient of a time zone shares a send group's time (10:00 local), and providers advise against sending on
the hour (SendGrid). With a spread, each delivery row is due :func:`offset` after its group's ``send_at``: computed
from the recipient's ledger ``seq`` alone, so materializing again, in another chunk or on another host, gives the
same time. The arithmetic runs in Python (:func:`offset`) and in the INSERT … SELECT (:func:`due_sql`) alike, in
integers below 2**63 that neither SQLite nor PostgreSQL can overflow.

An offset is a whole number of seconds in [1, room], never a multiple of 60: a send at a whole minute (each
``local_time``, window end and whole-minute wave is) has no message on a whole minute, so none at hh:00:00.
How long the room is, the planner's :func:`~notifier.planner.spread_room` decides (the window's end and the
send's deadlines cut it short).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, literal, literal_column

from notifier.campaign import Campaign, zone
from notifier.ledger.models import SendGroup, UTCDateTime
from notifier.planner import spread_room

# A Lehmer generator modulo the prime 2**31 - 1 (multiplier from L'Ecuyer's tables) scatters consecutive seqs over
# the room; (2**31 - 1) * MULTIPLIER < 2**61.
MODULUS = 2_147_483_647
MULTIPLIER = 950_706_376


def slots(room: timedelta) -> int:
    """How many offsets a room holds: its whole seconds from 1 on that are not whole minutes."""
    seconds = int(room.total_seconds())
    return seconds - seconds // 60


def offset(seq: int, room: timedelta) -> timedelta:
    """The recipient's offset after its send's time within ``room`` (zero for a room under a second)."""
    n = slots(room)
    if n <= 0:
        return timedelta(0)
    k = seq % MODULUS * MULTIPLIER % MODULUS % n
    return timedelta(seconds=k + 1 + k // 59)


def due_sql(dialect: str, send_at: datetime, seq: ColumnElement[Any], room: timedelta) -> ColumnElement[Any]:
    """``send_at`` plus :func:`offset` of the ``seq`` column, as SQL for ``dialect`` (postgresql or sqlite)."""
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
    its deadlines (``spread_room``); a deadline the campaign no longer has counts as the group's last."""
    tz = zone(group.timezone)
    known = {d.id: d for d in campaign.deadlines}
    ends = [known[d].instant_in(tz) for d in group.deadlines if d in known] or [group.expires_at]
    return spread_room(campaign.delivery, tz, group.send_at, ends)


def after(campaign: Campaign, tz: tzinfo, start: datetime, deadlines: Iterable[str], seq: int) -> datetime:
    """``start`` plus the recipient's offset in the spread a send at ``start`` carrying ``deadlines`` has: a wait
    for the window to open ends spread like a wave, not on the hour."""
    ends = [campaign.deadline(d).instant_in(tz) for d in deadlines]
    return start + offset(seq, spread_room(campaign.delivery, tz, start, ends))
