"""The daily cap across campaigns (NOTIFIER_DAILY_CAP): at most N messages per recipient, local day and channel,
whichever campaigns they come from.

Just before a channel's batch is sent, each row asks for a place in its recipient's local day (:meth:`DailyCap.admit`):

- the places already taken that day (``cap_slots``: sent, or being sent) count;
- so do the messages of higher priority still to come that day for the same recipient and channel, in the ledger or
  in a send group not yet materialized: service before marketing, then the nearer deadline, then the campaign's id and
  the send group's (a strict order: of two messages waiting for each other, exactly one goes);
- a row that finds room takes a place, under a lock on its recipient, and goes; one that does not waits for the next
  local day at its campaign's ``local_time`` while one of its deadlines is still ahead then, and is otherwise skipped
  as ``capped``, naming the campaigns that took the day.

A place is given back when its message did not go (failed, retried later, skipped); a message the provider may have
(uncertain) keeps it. No day ever gets more than N; a worker dying between the place and the send can waste one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, text, tuple_
from sqlalchemy.orm import Session

from notifier.campaign import Campaign, resolve_local, zone
from notifier.eligibility import deadlines_for, eligible, facts_of
from notifier.guard import live_deadlines
from notifier.ledger import queries
from notifier.ledger.claims import ClaimedRow, RowOutcome
from notifier.ledger.models import CampaignRow, CapSlot, DeliveryRow, SendGroup
from notifier.ledger.states import CampaignState, DeliveryState, SkipReason
from notifier.planner import parse_send_key, send_channels
from notifier.spread import after
from notifier.words import cap_full, cap_wait

__all__ = ["DailyCap", "Priority", "day_notes", "forget_old_days", "local_day"]

_RANK = {"service": 0, "marketing": 1}
_OPEN = (DeliveryState.PENDING.value, DeliveryState.QUEUED.value, DeliveryState.SENDING.value)
_LOCK_CLASS = 0x4E544350  # "NTCP": the advisory lock class of a recipient's cap (PostgreSQL)

Entry = tuple[ClaimedRow, Any, str]  # a ready row of a batch: (row, its message, its locale)


@dataclass(frozen=True, order=True)
class Priority:
    """Which of two messages of one recipient's day goes first: the smaller."""

    rank: int  # service 0, marketing 1
    deadline: datetime  # the nearest deadline it is about
    campaign_id: str
    group_id: int


def local_day(now: datetime, timezone: str) -> tuple[date, datetime]:
    """The recipient's local calendar day at ``now`` and the instant it ends (a DST day has 23 or 25 hours)."""
    tz = zone(timezone)
    day = now.astimezone(tz).date()
    return day, resolve_local(day + timedelta(days=1), time(0), tz)


@dataclass(frozen=True)
class _Rival:
    """A message of higher priority that may still come on the day: it would take a place."""

    priority: Priority
    delivery_id: int | None  # None: its group has not reached the recipient yet


class DailyCap:
    """The cap of one dispatcher: ``limits`` maps a channel to its messages a day (channels not named: no cap)."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)

    def applies(self, channel: str) -> bool:
        return channel in self.limits

    def admit(self, session: Session, channel: str, batch: Sequence[Entry], campaigns: Mapping[str, Campaign],
              now: datetime) -> tuple[list[Entry], list[RowOutcome]]:
        """The entries that take a place and go now, and the outcomes of the rest (wait or capped); the places are
        written in ``session``, which the caller commits before sending."""
        limit = self.limits[channel]
        _lock(session, sorted({row.recipient_seq for row, _, _ in batch}))
        zone_days = {tz: local_day(now, tz) for tz in {row.timezone for row, _, _ in batch}}
        days = {row.id: zone_days[row.timezone] for row, _, _ in batch}
        slots = _slots(session, channel, {(row.recipient_seq, days[row.id][0]) for row, _, _ in batch})
        rivals = _Rivals(session, channel, now, campaigns, [row for row, _, _ in batch],
                         max(end for _, end in zone_days.values()))
        own = {row.id: _priority(campaigns[row.campaign_id], row, now) for row, _, _ in batch}
        admitted, outcomes, places = [], [], []
        in_batch = {row.id for row, _, _ in batch}
        for entry in sorted(batch, key=lambda e: (e[0].recipient_seq, own[e[0].id])):
            row = entry[0]
            day, day_end = days[row.id]
            taken = slots[(row.recipient_seq, day)]
            if row.id in taken:  # a place taken at an earlier attempt today
                admitted.append(entry)
                continue
            ahead = [r for r in rivals.of(row, day_end) if r.priority < own[row.id]
                     and r.delivery_id not in taken and r.delivery_id not in in_batch]
            if len(taken) + len(ahead) < limit:
                places.append({"delivery_id": row.id, "day": day, "recipient_seq": row.recipient_seq,
                               "channel": channel, "campaign_id": row.campaign_id, "taken_at": now})
                taken[row.id] = row.campaign_id
                admitted.append(entry)
            else:
                by = sorted({*taken.values(), *(r.priority.campaign_id for r in ahead)})
                outcomes.append(_wait_or_skip(campaigns[row.campaign_id], row, day, now, limit, channel, by))
        if places:
            session.execute(insert(CapSlot.__table__), places)
        return admitted, outcomes

    def release(self, session: Session, rows: Iterable[ClaimedRow], now: datetime) -> None:
        """Give back the places of rows whose message did not go."""
        keys = [(row.id, local_day(now, row.timezone)[0]) for row in rows]
        if keys:
            session.execute(delete(CapSlot).where(tuple_(CapSlot.delivery_id, CapSlot.day).in_(keys)))


KEEP_DAYS = 2  # places of days this long gone are dropped: no recipient's local day is that far behind UTC's


def forget_old_days(session: Session, now: datetime) -> int:
    """Drop the places of local days long over (maintenance, every pass: an index range, empty most of the time)."""
    cutoff = now.date() - timedelta(days=KEEP_DAYS)
    return session.execute(delete(CapSlot).where(CapSlot.day < cutoff)).rowcount or 0


def _priority(campaign: Campaign, row: ClaimedRow, now: datetime) -> Priority:
    deadlines, _ = live_deadlines(campaign, row, now)
    return Priority(_RANK.get(campaign.category, 1), _nearest(campaign, deadlines or row.deadlines, row.timezone),
                    campaign.id, row.group_id)


def _nearest(campaign: Campaign, deadline_ids: Iterable[str], timezone: str) -> datetime:
    tz = zone(timezone)
    return min(campaign.deadline(d).instant_in(tz) for d in deadline_ids)


def _lock(session: Session, seqs: Sequence[int]) -> None:
    """Each recipient's cap under a lock until commit, taken in seq order (two batches never wait for each other in
    a circle). SQLite has one writer at a time: nothing to take."""
    if seqs and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:c, CAST(s % 2147483647 AS integer)) "
                             "FROM (SELECT unnest(CAST(:seqs AS bigint[])) AS s ORDER BY 1) AS t"),
                        {"c": _LOCK_CLASS, "seqs": list(seqs)}).all()


def _slots(session: Session, channel: str, keys: set[tuple[int, date]]) -> dict[tuple[int, date], dict[int, str]]:
    """The places taken on each (recipient, day): delivery id → campaign."""
    out: dict[tuple[int, date], dict[int, str]] = defaultdict(dict)
    seqs = sorted({seq for seq, _ in keys})
    for start in range(0, len(seqs), 500):
        for delivery_id, seq, day, campaign_id in session.execute(
                select(CapSlot.delivery_id, CapSlot.recipient_seq, CapSlot.day, CapSlot.campaign_id)
                .where(CapSlot.recipient_seq.in_(seqs[start:start + 500]), CapSlot.channel == channel,
                       CapSlot.day.in_(sorted({d for _, d in keys})))):
            out[(seq, day)][delivery_id] = campaign_id
    return out


class _Rivals:
    """What else may reach a batch's recipients on a channel: their rows still open in the ledger, and the send groups
    of scheduled campaigns that have not reached them yet; read once per batch (a query per zone, one for the rows)."""

    def __init__(self, session: Session, channel: str, now: datetime, campaigns: Mapping[str, Campaign],
                 rows: Sequence[ClaimedRow], before: datetime) -> None:
        self.session, self.channel, self.now = session, channel, now
        self.campaigns: dict[str, Campaign | None] = dict(campaigns)
        self._channels: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self._groups = self._zones(sorted({row.timezone for row in rows}), before)
        self._rows = self._open_rows(rows)

    def of(self, row: ClaimedRow, before: datetime) -> list[_Rival]:
        out = []
        facts = facts_of(row)
        for g in self._groups.get(row.timezone, ()):
            if g.send_at >= before or g.id == row.group_id:
                continue
            campaign = self._campaign(g.campaign_id)
            if campaign is None:
                continue
            if g.materialized_upto >= row.recipient_seq:
                found = self._rows.get((g.id, row.recipient_seq))
                if found is None:
                    continue
                delivery_id, state, next_attempt = found
                if state != DeliveryState.SENDING and next_attempt >= before:
                    continue
            else:
                delivery_id = None
                if not self._would_reach(campaign, g, row, facts):
                    continue
            concerned = deadlines_for(campaign, g.deadlines, facts) or tuple(g.deadlines)
            out.append(_Rival(Priority(_RANK.get(campaign.category, 1), _nearest(campaign, concerned, row.timezone),
                                       campaign.id, g.id), delivery_id))
        return out

    def _would_reach(self, campaign: Campaign, g: Any, row: ClaimedRow, facts: Any) -> bool:
        """Whether materializing this group will give the recipient a row on the channel (the rules of
        ``queries._materialize``, asked in Python of one recipient)."""
        key = (campaign.id, g.timezone, g.send_key)
        if key not in self._channels:
            self._channels[key] = send_channels(campaign, g.timezone, g.send_key)
        return (self.channel in self._channels[key]
                and eligible(campaign, self.channel, facts, row.recipient_id, row.email, row.tokens)
                and bool(deadlines_for(campaign, g.deadlines, facts)))

    def _zones(self, zones: Sequence[str], before: datetime) -> dict[str, list[Any]]:
        """The send groups of scheduled campaigns in ``zones`` due before the last of the batch's days ends and not
        over: one query."""
        out: dict[str, list[Any]] = defaultdict(list)
        for g in self.session.execute(
                select(SendGroup.id, SendGroup.campaign_id, SendGroup.send_key, SendGroup.deadlines,
                       SendGroup.send_at, SendGroup.timezone, SendGroup.materialized_upto)
                .join(CampaignRow, CampaignRow.id == SendGroup.campaign_id)
                .where(CampaignRow.state == CampaignState.SCHEDULED, SendGroup.timezone.in_(zones),
                       SendGroup.send_at < before, SendGroup.expires_at > self.now)):
            out[g.timezone].append(g)
        return out

    def _open_rows(self, rows: Sequence[ClaimedRow]) -> dict[tuple[int, int], tuple[int, str, datetime]]:
        """The batch's recipients' open rows in the groups that reached them: (group, seq) → (id, state, next
        attempt), found by the delivery key (group, recipient, channel)."""
        seqs = sorted({row.recipient_seq for row in rows})
        groups = sorted({g.id for gs in self._groups.values() for g in gs if g.materialized_upto >= seqs[0]}) \
            if seqs else []
        if not groups or not seqs:
            return {}
        return {(group_id, seq): (delivery_id, state, next_attempt)
                for delivery_id, group_id, seq, state, next_attempt in self.session.execute(
                    select(DeliveryRow.id, DeliveryRow.group_id, DeliveryRow.recipient_seq, DeliveryRow.state,
                           DeliveryRow.next_attempt_at)
                    .where(DeliveryRow.group_id.in_(groups), DeliveryRow.recipient_seq.in_(seqs),
                           DeliveryRow.channel == self.channel, DeliveryRow.state.in_(_OPEN)))}

    def _campaign(self, campaign_id: str) -> Campaign | None:
        if campaign_id not in self.campaigns:
            row = self.session.get(CampaignRow, campaign_id)
            self.campaigns[campaign_id] = queries.campaign_of(row) if row is not None else None
        return self.campaigns[campaign_id]


_TO_GO = ("planned", DeliveryState.PENDING.value, DeliveryState.QUEUED.value, DeliveryState.SENDING.value)


def day_notes(messages: Iterable[Any], limits: Mapping[str, int], campaigns: Mapping[str, Campaign]) -> list[str]:
    """Sentences for one recipient (their page, ``notifier recipient show``): each local day and channel where the
    messages already sent and those still to go come to more than the cap, and which go first and which wait.

    ``messages`` are ``reports.RecipientMessage``s of every campaign, ``at`` in the recipient's zone."""
    days: dict[tuple[date, str], list[Any]] = defaultdict(list)
    for m in messages:
        if m.channel in limits and m.campaign_id in campaigns and (m.state == "sent" or m.state in _TO_GO):
            days[(m.at.date(), m.channel)].append(m)
    notes = []
    for (day, channel), ms in sorted(days.items()):
        limit = limits[channel]
        if len(ms) <= limit:
            continue
        sent = [m for m in ms if m.state == "sent"]
        to_go = sorted((m for m in ms if m.state != "sent"), key=lambda m: _rank_of(campaigns[m.campaign_id], m))
        room = max(0, limit - len(sent))
        goes, waits = to_go[:room], to_go[room:]
        names = ", ".join(f"{m.campaign_id} ({campaigns[m.campaign_id].category})" for m in [*sent, *goes])
        notes.append(f"{day:%d %b %Y}, {channel}: {len(ms)} messages for a daily cap of {limit} across campaigns; "
                     f"{names or 'none'} {'go' if len(sent) + len(goes) > 1 else 'goes'} first (service before "
                     f"marketing, then the nearer deadline); {', '.join(m.campaign_id for m in waits)} "
                     f"{'wait' if len(waits) > 1 else 'waits'} for the next day, or is skipped as capped when its "
                     "deadline comes first")
    return notes


def _rank_of(campaign: Campaign, message: Any) -> tuple[int, datetime, str]:
    ids = [ref.deadline for ref in parse_send_key(message.send_key)]
    known = [d for d in ids if any(x.id == d for x in campaign.deadlines)] or [d.id for d in campaign.deadlines]
    tz = message.at.tzinfo or zone("UTC")
    return _RANK.get(campaign.category, 1), min(campaign.deadline(d).instant_in(tz) for d in known), campaign.id


def _wait_or_skip(campaign: Campaign, row: ClaimedRow, day: date, now: datetime, limit: int, channel: str,
                  by: Sequence[str]) -> RowOutcome:
    """The next local day at the campaign's local_time (spread as a wave) while a live deadline is ahead of it, else
    skipped as capped."""
    tz = zone(row.timezone)
    deadlines, _ = live_deadlines(campaign, row, now)
    deadlines = deadlines or row.deadlines
    nxt = after(campaign, tz, resolve_local(day + timedelta(days=1), campaign.delivery.local_time, tz), deadlines,
                row.recipient_seq)
    words = cap_wait(limit, channel, by)
    if nxt < max(campaign.deadline(d).instant_in(tz) for d in deadlines):
        return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, next_attempt_at=nxt,
                          attempts=row.attempts - 1, error=words)
    return RowOutcome(row.id, DeliveryState.SKIPPED, now, campaign_id=row.campaign_id,
                      skip_reason=SkipReason.CAPPED, error=cap_full(limit, channel, by))
