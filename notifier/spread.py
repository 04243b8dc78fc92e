"""The ``delivery.spread`` rules in one pure place, so that the planner, dispatch and the ledger's SQL all ask it.

Every recipient of a time zone shares a send group's time (10:00 local), and providers advise against sending on
the hour (SendGrid). With a spread, each message goes out :func:`offset` after its send's time: computed from the
recipient's ledger ``seq`` alone, so materializing again, in another chunk or on another host, gives the same
time. ``notifier.ledger.spread`` writes the same arithmetic as SQL, in integers below 2**63 that neither SQLite
nor PostgreSQL can overflow.

An offset is a whole number of seconds in [1, room], never a multiple of 60: a send at a whole minute (each
``local_time``, window end and whole-minute wave is) has no message on a whole minute, so none at hh:00:00.
How long the room is, :func:`spread_room` decides (the window's end and the send's deadlines cut it short).
No I/O and no clock reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from notifier.campaign import Campaign, Delivery, resolve_local

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


def window_end(day: date, end: time, tz: tzinfo) -> datetime:
    """The window end on ``day``; when a DST jump skips it, the jump's length earlier, so never past the window."""
    at = resolve_local(day, end, tz)
    if at.time() != end:  # skipped: resolve_local moved it forward, out of the window
        at = datetime.combine(day, end).replace(tzinfo=tz, fold=1).astimezone(UTC).astimezone(tz)
    return at


def latest_start(day: date, end: time, spread: timedelta, tz: tzinfo) -> datetime:
    """The latest time on ``day`` a send may start so that its spread ends by the window's end."""
    return (window_end(day, end, tz).astimezone(UTC) - spread).astimezone(tz)


def spread_room(delivery: Delivery, tz: tzinfo, send_at: datetime, deadlines: Iterable[datetime]) -> timedelta:
    """How long after ``send_at`` a send's messages may go out: the campaign's spread, cut short so that each
    goes by the window's end that local day and a second before the earliest of the send's ``deadlines``; zero
    without a spread. Materialization, the window's wait and the plan view ask here."""
    if not delivery.spread:
        return timedelta(0)
    start = send_at.astimezone(UTC)
    ends = [window_end(send_at.astimezone(tz).date(), delivery.window[1], tz).astimezone(UTC) - start,
            *(d.astimezone(UTC) - start - timedelta(seconds=1) for d in deadlines)]
    return max(timedelta(0), min(delivery.spread, *ends))


def after(campaign: Campaign, tz: tzinfo, start: datetime, deadlines: Iterable[str], seq: int) -> datetime:
    """``start`` plus the recipient's offset in the spread a send at ``start`` carrying ``deadlines`` has: a wait
    for the window to open ends spread like a wave, not on the hour."""
    ends = [campaign.deadline(d).instant_in(tz) for d in deadlines]
    return start + offset(seq, spread_room(campaign.delivery, tz, start, ends))
