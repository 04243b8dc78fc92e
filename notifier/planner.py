"""Pure planning: campaign + a recipient's time zone → the sends they get, and why any wave is missing.

No I/O and no clock reads: ``not_before`` (when the recipient joined, when the campaign was scheduled)
is a parameter, so tests can fast-forward time freely.

Rules (pinned down in tests/test_planner.py):
- a whole-day wave (P7D) goes out on the local calendar day that many days before the deadline's local
  date, at ``delivery.local_time``; a sub-day wave (PT6H) at exactly the deadline minus the offset;
- a send outside the window moves to the nearest earlier time inside it (before the window: the
  previous day's window end); with ``delivery.spread``, to the window's end minus the spread, so that its
  spread fits (a send inside the window but later than that moves there too);
- a send's messages go out over its ``spread`` after its time (:func:`~notifier.spread.spread_room`: the
  campaign's spread, cut short so it ends before the earliest deadline the send carries and by the window's end);
- a send at or after its deadline is dropped;
- per local day, at most ``max_per_day`` messages per channel: the day's first ``max_per_day - 1``
  sends go alone and the rest merge into one message at the earliest of their times, carrying every
  deadline they cover;
- a deadline with its own ``channels`` is planned only on those: each channel is merged on its own, so a
  channel's message never carries a deadline that is not announced on it;
- a recipient gets only the sends at or after ``not_before`` (late joiners get the waves still ahead).

:func:`outlook` asks the same question of every time zone at once: which waves will no one get after ``now``?
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import lru_cache

from notifier.campaign import Campaign, Deadline, Wave, resolve_local, zone
from notifier.errors import CampaignError, Problem
from notifier.spread import latest_start, spread_room, window_end


class NoteKind(enum.StrEnum):
    MOVED = "moved"  # moved earlier into the window
    DROPPED = "dropped"  # would have been at or after its deadline
    MERGED = "merged"  # merged with other sends of the same local day
    JOINED_AFTER = "joined_after"  # before the recipient joined / the campaign was scheduled
    DEADLINE_PASSED = "deadline_passed"  # the whole deadline was over before the recipient joined
    CHANNEL_MISSING = "channel_missing"  # the recipient has no address or token for a channel


@dataclass(frozen=True)
class WaveRef:
    """One wave of one deadline."""

    deadline: str
    wave: str


@dataclass(frozen=True)
class Note:
    """Why a wave is missing, moved or merged, in words marketing can read."""

    kind: NoteKind
    message: str
    deadline: str | None = None
    wave: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class PlannedSend:
    """One message per channel at ``send_at`` (aware, in the recipient's zone) covering ``items``, which are in the
    campaign file's order; ``earliest`` is the item whose time the send took (a merged send's earliest wave)."""

    send_key: str
    items: tuple[WaveRef, ...]
    send_at: datetime
    earliest: WaveRef | None = None  # None: the first item
    spread: timedelta = timedelta(0)  # its messages go out over this long after send_at (spread_room)

    @property
    def deadlines(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.deadline for i in self.items))

    @property
    def first(self) -> WaveRef:
        """The item due earliest: it names the send's wave (the ledger's ``wave``, analytics labels)."""
        return self.earliest or self.items[0]

    @property
    def wave(self) -> str:
        return self.first.wave

    @property
    def send_at_utc(self) -> datetime:
        return self.send_at.astimezone(UTC)


@dataclass(frozen=True)
class ZonePlan:
    """Every send of a campaign for one time zone, with the notes that explain moves, drops and merges."""

    zone: str
    sends: tuple[PlannedSend, ...]  # every channel's, once each
    notes: tuple[Note, ...]
    deadline_instants: dict[str, datetime]
    send_channels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # send key → its channels

    def channels_of(self, send_key: str, reachable: Iterable[str] | None = None) -> tuple[str, ...]:
        """Which channels a send goes out on, the one rule (materialization, the recipient page, the plan view and
        the email fallback all ask here): the campaign's channels whose own plan has this send (a deadline with
        channels of its own is planned only on those, each channel merged on its own), in the campaign's order;
        for one recipient, only those of ``reachable``, the channels they can be reached on
        (``notifier.eligibility.reachable``). None: the send's own channels, whoever gets it."""
        planned = self.send_channels.get(send_key, ())
        if reachable is None:
            return planned
        present = set(reachable)
        return tuple(ch for ch in planned if ch in present)


@dataclass(frozen=True)
class RecipientPlan:
    """What one recipient gets on each channel, and why anything else is missing."""

    sends: tuple[tuple[str, PlannedSend], ...]  # (channel, send), sorted by time
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class _Raw:
    deadline: Deadline
    wave: Wave
    order: int
    at: datetime


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M %Z").strip()


def send_key(items: Iterable[WaveRef]) -> str:
    """Stable key of a send: its deadline@wave items."""
    return "+".join(f"{i.deadline}@{i.wave}" for i in items)


@lru_cache(maxsize=4096)  # every row of a send group asks it of the same key
def parse_send_key(key: str) -> tuple[WaveRef, ...]:
    """The deadline@wave items of a send key (the inverse of :func:`send_key`)."""
    return tuple(WaveRef(*part.split("@", 1)) for part in key.split("+"))


def _raw_send(c: Campaign, d: Deadline, w: Wave, tz: tzinfo, deadline_at: datetime,
              notes: list[Note]) -> datetime | None:
    dl = c.delivery
    if w.whole_days:
        at = resolve_local(deadline_at.date() - timedelta(days=w.days), dl.local_time, tz)
    else:
        at = (deadline_at.astimezone(UTC) - w.delta).astimezone(tz)
    original = at
    for _ in range(3):  # a window end inside a DST gap can need a second step
        local = at.time()
        if local > dl.window[1] or (dl.spread and at > latest_start(at.date(), dl.window[1], dl.spread, tz)):
            at = latest_start(at.date(), dl.window[1], dl.spread, tz)
        elif local < dl.window[0]:
            at = latest_start(at.date() - timedelta(days=1), dl.window[1], dl.spread, tz)
        else:
            break
    if at != original:
        inside = dl.window[0] <= original.time() <= dl.window[1]
        why = (f"leaves less than its spread ({_minutes(dl.spread)}) of the window" if inside
               else "is outside the window")
        notes.append(Note(
            NoteKind.MOVED,
            f"{d.id} {w}: {_fmt(original)} {why} "
            f"{dl.window[0]:%H:%M}–{dl.window[1]:%H:%M}; moved earlier to {_fmt(at)}",
            d.id, w.label,
        ))
    if at >= deadline_at:
        notes.append(Note(
            NoteKind.DROPPED,
            f"{d.id} {w}: {_fmt(at)} is not before the deadline {_fmt(deadline_at)}; not sent",
            d.id, w.label,
        ))
        return None
    return at


def plan_zone(campaign: Campaign, tz: tzinfo) -> ZonePlan:
    """All sends of ``campaign`` for recipients in ``tz``, merged per local day (and per channel, when a deadline
    has channels of its own)."""
    instants = {d.id: d.instant_in(tz) for d in campaign.deadlines}
    if not campaign.channels_vary:
        sends, notes = _plan_deadlines(campaign, tz, instants, None)
        return ZonePlan(str(tz), sends, notes, instants, {s.send_key: campaign.channels for s in sends})
    by_key: dict[str, PlannedSend] = {}
    channels: dict[str, list[str]] = defaultdict(list)
    all_notes: dict[Note, None] = {}
    for ch in campaign.channels:
        sends, notes = _plan_deadlines(campaign, tz, instants, ch)
        for s in sends:
            by_key.setdefault(s.send_key, s)
            channels[s.send_key].append(ch)
        all_notes.update(dict.fromkeys(notes))
    ordered = tuple(sorted(by_key.values(), key=lambda s: (s.send_at_utc, s.send_key)))
    return ZonePlan(str(tz), ordered, tuple(all_notes), instants, {k: tuple(v) for k, v in channels.items()})


def send_channels(campaign: Campaign, timezone: str, send_key: str,
                  reachable: Iterable[str] | None = None) -> tuple[str, ...]:
    """The channels a send group goes out on (for one recipient: of those they are ``reachable`` on), by the one
    rule, ``ZonePlan.channels_of``; materialization, the recipient page and the email fallback all ask here. When no
    deadline has channels of its own every send goes on every campaign channel, so the zone is not planned again
    (and a group planned from an earlier file keeps them)."""
    if campaign.channels_vary:
        plan = plan_zone(campaign, zone(timezone))
    else:
        plan = ZonePlan(timezone, (), (), {}, {send_key: campaign.channels})
    return plan.channels_of(send_key, reachable)


def _plan_deadlines(campaign: Campaign, tz: tzinfo, instants: dict[str, datetime],
                    channel: str | None) -> tuple[tuple[PlannedSend, ...], tuple[Note, ...]]:
    """The sends of the deadlines announced on ``channel`` (None: every deadline), merged per local day."""
    notes: list[Note] = []
    raws: list[_Raw] = []
    for order, d in enumerate(campaign.deadlines):
        if channel is not None and channel not in d.channels:
            continue
        deadline_at = instants[d.id]
        for w in d.waves:
            at = _raw_send(campaign, d, w, tz, deadline_at, notes)
            if at is not None:
                raws.append(_Raw(d, w, order, at))
    by_day: dict[object, list[_Raw]] = defaultdict(list)
    for raw in raws:
        by_day[raw.at.date()].append(raw)
    sends: list[PlannedSend] = []
    limit = campaign.delivery.max_per_day
    for day in sorted(by_day):
        day_raws = sorted(by_day[day], key=lambda r: (r.at, r.order))
        alone, merged = day_raws[: limit - 1], day_raws[limit - 1:]
        groups = [[r] for r in alone] + ([merged] if merged else [])
        for group in groups:
            # The campaign file's order, in the key and in what the message lists (not the order of the times).
            items = tuple(sorted((WaveRef(r.deadline.id, r.wave.label) for r in group),
                                 key=lambda i: (_order(campaign, i.deadline), i.wave)))
            first = min(group, key=lambda r: (r.at, r.order))
            at = first.at
            room = spread_room(campaign.delivery, tz, at, (instants[r.deadline.id] for r in group))
            sends.append(PlannedSend(send_key(items), items, at, WaveRef(first.deadline.id, first.wave.label),
                                     room))
            if len(group) > 1:
                on = f" ({channel})" if channel else ""
                for r in group:
                    others = ", ".join(f"{o.deadline.id} {o.wave}" for o in group if o is not r)
                    notes.append(Note(
                        NoteKind.MERGED,
                        f"{r.deadline.id} {r.wave}: merged with {others} into one message{on} at {_fmt(at)} "
                        f"(max_per_day: {limit})",
                        r.deadline.id, r.wave.label, channel,
                    ))
    sends.sort(key=lambda s: (s.send_at_utc, s.send_key))
    return tuple(sends), tuple(notes)


def _order(campaign: Campaign, deadline_id: str) -> int:
    return next(i for i, d in enumerate(campaign.deadlines) if d.id == deadline_id)


def plan_recipient(
    campaign: Campaign,
    zone_plan: ZonePlan,
    channels: Sequence[str],
    not_before: datetime | None = None,
    reason: str = "the recipient joined",
) -> RecipientPlan:
    """The zone's sends on each of the recipient's ``channels`` that are still ahead at ``not_before``."""
    notes = list(zone_plan.notes)
    for ch in campaign.channels:
        if ch not in channels:
            what = "email address" if ch == "email" else "active push token"
            notes.append(Note(NoteKind.CHANNEL_MISSING, f"{ch}: the recipient has no {what}; "
                              f"no {ch} messages", channel=ch))
    sends = []
    passed = set()
    if not_before is not None:
        for d_id, at in zone_plan.deadline_instants.items():
            if at <= not_before:
                passed.add(d_id)
                notes.append(Note(NoteKind.DEADLINE_PASSED, f"{d_id}: the deadline {_fmt(at)} had already "
                                  f"passed when {reason} ({_fmt(not_before.astimezone(at.tzinfo))})", d_id))
    for s in zone_plan.sends:
        if not_before is not None and s.send_at < not_before:
            if not set(s.deadlines) <= passed:
                notes.append(Note(
                    NoteKind.JOINED_AFTER,
                    f"{s.send_key}: due {_fmt(s.send_at)}, before {reason} "
                    f"({_fmt(not_before.astimezone(s.send_at.tzinfo))}); not sent",
                    s.first.deadline, s.wave,
                ))
            continue
        sends.extend((ch, s) for ch in zone_plan.channels_of(s.send_key, channels))
    return RecipientPlan(tuple(sends), tuple(notes))


@lru_cache(maxsize=4096)  # pure; the guard asks it for every row of a zone in a batch, at the same clock
def window_reopens(now: datetime, tz: tzinfo, window: tuple[time, time],
                   grace: timedelta = timedelta(0)) -> datetime | None:
    """None when ``now`` is inside the delivery window in ``tz`` (ends included, the end ``grace`` later, so a
    wave planned at the window's end may finish); else the UTC instant it opens next.

    The guard asks this just before a send, so a retry or a paused campaign's resumed send waits for the
    morning instead of going out at 03:00 local time.
    """
    local = now.astimezone(tz)
    start, end = window
    opens = resolve_local(local.date(), start, tz)
    closes = window_end(local.date(), end, tz) + grace
    if opens <= local <= closes:
        return None
    day = local.date() if local < opens else local.date() + timedelta(days=1)
    return resolve_local(day, start, tz).astimezone(UTC)


NOTHING_SENT = "nothing will be sent: no wave of any deadline is still ahead in any time zone"


@dataclass(frozen=True)
class Outlook:
    """Which waves of a campaign some time zone still gets at or after ``now``, and a located Problem for every wave
    that none does: its deadline is over, its time has passed everywhere, or it falls at or after its deadline."""

    campaign: Campaign
    not_sent: tuple[Problem, ...]
    waves: int  # every wave of every deadline
    waves_ahead: int  # the waves some time zone still gets

    @property
    def sends_nothing(self) -> bool:
        return self.waves_ahead == 0

    def refuse_if_empty(self, allow_empty: bool = False) -> None:
        """CampaignError (every wave not sent, and why the whole is refused) for a campaign that would send nothing,
        unless ``allow_empty``: schedule's rule, and validate's."""
        if self.sends_nothing and not allow_empty:
            raise CampaignError([*self.not_sent, Problem(
                self.campaign.source, None, None,
                f"{NOTHING_SENT}; fix the dates, or pass --allow-empty to accept a campaign that sends nothing")])


def outlook(campaign: Campaign, zones: Iterable[tzinfo], now: datetime) -> Outlook:
    """What of ``campaign`` is still to be sent at ``now`` in any of ``zones`` (a send is planned when its time is at
    or after ``now``, as scheduling plans it). Pass every zone a recipient may be in
    (``notifier.zones.every_zone()``): a wave is reported only when no one anywhere gets it."""
    zones = tuple(zones)
    if not zones:
        raise ValueError("an outlook needs at least one time zone")
    ahead: set[tuple[str, str]] = set()
    last_send: dict[tuple[str, str], datetime] = {}  # each wave's latest send time over the zones
    # Each deadline's latest instant over the zones: every send is before its deadline, so when all are over (a
    # wrong year) nothing needs planning.
    last_deadline = {d.id: max(d.instant_in(tz) for tz in zones) for d in campaign.deadlines}
    total = sum(len(d.waves) for d in campaign.deadlines)
    for tz in zones if any(at > now for at in last_deadline.values()) else ():
        plan = plan_zone(campaign, tz)
        for s in plan.sends:
            for item in s.items:
                key = (item.deadline, item.wave)
                last_send[key] = max(s.send_at, last_send.get(key, s.send_at))
                if s.send_at >= now:
                    ahead.add(key)
        if len(ahead) == total:  # the usual answer for a campaign ahead of us: one zone tells
            break
    problems: list[Problem] = []
    for d in campaign.deadlines:
        missed = [w for w in d.waves if (d.id, w.label) not in ahead]
        over = last_deadline[d.id]
        if missed and over <= now:
            problems.append(Problem(
                campaign.source, d.at_line, f"{d.path}.at",
                f"{d.at.isoformat(timespec='minutes')} has passed in every time zone (the last at {_utc(over)}; now "
                f"is {_utc(now)}): none of its waves ({', '.join(w.label for w in d.waves)}) will be sent"))
            continue
        for w in missed:
            last = last_send.get((d.id, w.label))
            why = (f"it was due by {_utc(last)} in every time zone, before now ({_utc(now)})" if last is not None
                   else "in every time zone it falls at or after its deadline")
            problems.append(Problem(campaign.source, w.line, w.path, f"{w.label} will not be sent: {why}"))
    return Outlook(campaign, tuple(problems), total, len(ahead))


def _utc(dt: datetime) -> str:
    return f"{dt.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _minutes(span: timedelta) -> str:
    """A spread in words: '20 min', '90 s'."""
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
