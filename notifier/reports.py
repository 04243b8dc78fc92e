"""Read-only summaries of the ledger for people: campaign status and per-wave breakdowns."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifier import approval
from notifier.approval import Approval
from notifier.campaign import zone
from notifier.config import Settings
from notifier.eligibility import deadlines_for, facts_of, reachable
from notifier.errors import NotFound
from notifier.ledger import holds, tallies
from notifier.ledger.models import CampaignRow, DeliveryRow, PushToken, Recipient, SendGroup
from notifier.ledger.queries import campaign_of, get_campaign, rows_to_come, sends_of
from notifier.ledger.states import FINAL_STATES, OPEN_STATES, CampaignState, DeliveryState, Phase, ReportState
from notifier.planner import send_channels

STATES = [s.value for s in DeliveryState]
ToCome = Callable[[Session, CampaignRow], int]  # the rows a campaign's groups not yet due will create
ROWS_TO_COME: ToCome = partial(rows_to_come, channels=send_channels)  # counted now, by the planner's channel rule


def phase_of(state: str, groups: int, groups_done: int, open_rows: bool, blocked: bool = False) -> str:
    """What a person wants to know first: still sending, finished, stopped (paused, cancelled), or blocked: its
    copy changed since it was approved, so the dispatcher sends nothing of it (``approval.check``), not even to a
    zone whose recipients are imported after the rest finished."""
    if state != CampaignState.SCHEDULED:
        return str(state)
    if blocked:
        return Phase.BLOCKED.value
    return Phase.FINISHED.value if groups_done == groups and not open_rows else Phase.SENDING.value


def percent(done: int, planned: int, phase: str) -> int:
    """How far a campaign has come, in messages with an outcome of all the plan makes; a finished one is at 100."""
    if phase == Phase.FINISHED:
        return 100
    return min(100, int(100 * done / planned)) if planned else 0


@dataclass
class CampaignStatus:
    campaign_id: str
    state: str
    groups: int
    groups_done: int
    next_send_at: datetime | None
    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # (send, channel) → state → n
    skips: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str, int]] = field(default_factory=list)  # (channel, reason, rows) failed for good
    waiting: list[tuple[str, str, int]] = field(default_factory=list)  # (channel, reason, rows) pending after a try
    breakdown: list[tuple[str, str, str, str, int]] = field(default_factory=list)  # (send, locale, channel, state, n)
    held: list[str] = field(default_factory=list)  # why the dispatcher sends nothing at all now (holds), if sending
    copy: Approval | None = None  # its copy against the approved one (None: not checked, or not scheduled)
    to_come: int = 0  # rows the send groups not yet due will create (queries.rows_to_come)

    @property
    def phase(self) -> str:
        open_rows = any(c.get(s, 0) for c in self.counts.values() for s in OPEN_STATES)
        blocked = self.copy is not None and self.copy.blocked
        return phase_of(self.state, self.groups, self.groups_done, open_rows, blocked)

    @property
    def planned(self) -> int:
        """Every message of the plan: the rows that exist and those still to come."""
        return sum(sum(n for s, n in c.items() if s in STATES) for c in self.counts.values()) + self.to_come

    @property
    def done(self) -> int:
        """Messages with an outcome: sent, skipped or failed."""
        return sum(c.get(s, 0) for c in self.counts.values() for s in FINAL_STATES)

    @property
    def percent(self) -> int:
        return percent(self.done, self.planned, self.phase)

    @property
    def states(self) -> list[str]:
        return [*STATES, ReportState.UNCERTAIN.value]  # rows the provider may have, unanswered; any state

    def table_rows(self) -> list[list[Any]]:
        rows: list[list[Any]] = [[send, ch, *(c.get(s, 0) for s in self.states)]
                                 for (send, ch), c in self.counts.items()]
        totals = [sum(r[i] for r in rows) for i in range(2, 2 + len(self.states))]
        return [*rows, ["total", "", *totals]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id, "state": self.state, "groups": self.groups, "groups_done": self.groups_done,
            "phase": self.phase, "planned": self.planned, "done": self.done,
            "blocked": self.copy.as_dict() if self.copy else None,
            "next_send_at": self.next_send_at.isoformat() if self.next_send_at else None,
            "counts": [{"send": send, "channel": ch, **c} for (send, ch), c in self.counts.items()],
            "skipped_because": self.skips,
            "failed_because": [{"channel": ch, "reason": why, "rows": n} for ch, why, n in self.failures],
            "waiting_because": [{"channel": ch, "reason": why, "rows": n} for ch, why, n in self.waiting],
            "held": self.held,
        }


NO_REASON = "(no reason recorded)"


def campaign_status(session: Session, campaign_id: str, settings: Settings | None = None,
                    to_come: ToCome = ROWS_TO_COME) -> CampaignStatus:
    """Counts by send (wave), channel and state, by send, locale and channel, and the reasons for skips, failures
    and waiting retries, plus how far the plan has come: from the campaign's tallies, kept as its rows change (a live
    page reads it every few seconds, on campaigns of millions of rows; bench/dashboard_counts.py), and the rows still to
    come (``to_come``: a live page keeps that count a while, queries.RowsToCome). With ``settings``, a scheduled
    campaign's copy is checked against the approved one (its phase may be blocked)."""
    row = get_campaign(session, campaign_id)
    groups, done = _groups_done(session, campaign_id)
    next_at = None if row.state == CampaignState.CANCELLED else session.scalar(
        select(func.min(SendGroup.send_at)).where(SendGroup.campaign_id == campaign_id,
                                                  SendGroup.materialized_upto == 0))
    st = CampaignStatus(row.id, row.state, groups, done, next_at, copy=_copy(row, settings),
                        to_come=to_come(session, row))
    _count_rows(session, st)
    if st.phase in (Phase.SENDING, Phase.BLOCKED):
        st.held = [h.reason for h in holds.active(session)]
    return st


def _copy(row: CampaignRow, settings: Settings | None) -> Approval | None:
    """The scheduled campaign's copy against the approved one, as the dispatcher judges it."""
    if settings is None or row.state != CampaignState.SCHEDULED:
        return None
    return approval.check(row, *settings.copy_dirs(row.id))


def _groups_done(session: Session, campaign_id: str) -> tuple[int, int]:
    """The campaign's send groups, and how many of them have fallen due (their rows exist)."""
    groups, done = session.execute(select(func.count(), func.count().filter(SendGroup.materialized_upto > 0))
                                   .where(SendGroup.campaign_id == campaign_id)).one()
    return groups, done


def _count_rows(session: Session, st: CampaignStatus) -> None:
    """Fill ``st``'s counts, breakdown and reasons from the campaign's tallies (ledger.tallies: one row per key,
    not per message), sends in the order they first go out."""
    send_of, first = sends_of(session, st.campaign_id)  # a tally names its group; the group its send
    counts: dict[tuple[str, str], Counter[str]] = {}
    by_locale: Counter[tuple[str, str, str, str]] = Counter()
    skips: Counter[str] = Counter()
    failed: Counter[tuple[str, str]] = Counter()
    waiting: Counter[tuple[str, str]] = Counter()
    for t in tallies.of_campaign(session, st.campaign_id):
        send = send_of[t.group_id]
        c = counts.setdefault((send, t.channel), Counter())
        c[t.state] += t.n
        c[ReportState.UNCERTAIN.value] += t.uncertain
        by_locale[(send, t.locale or "-", t.channel, t.state)] += t.n
        if t.state == DeliveryState.SKIPPED:
            skips[t.reason] += t.n
        elif t.state == DeliveryState.FAILED:
            failed[(t.channel, t.reason or NO_REASON)] += t.n
        elif t.state == DeliveryState.PENDING and t.reason is not None:
            waiting[(t.channel, t.reason)] += t.n

    def when(send: str) -> tuple[bool, datetime | None, str]:
        at = first.get(send)
        return (at is None, at, send)

    for key in sorted(counts, key=lambda k: (when(k[0]), k[1])):
        st.counts[key] = {s: n for s, n in counts[key].items() if n}
    st.breakdown = [(*k, n) for k, n in sorted(by_locale.items(), key=lambda kv: (when(kv[0][0]), kv[0][1:]))]
    st.skips = {why: skips[why] for why in sorted(skips, key=lambda w: w or "")}
    st.failures = _most_first(failed)
    st.waiting = _most_first(waiting)


def _most_first(reasons: Counter[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """(channel, reason, rows), most rows first: the ledger's own error texts (ids and provider words only)."""
    return [(ch, why, n) for (ch, why), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]


def campaign_phase(session: Session, campaign_id: str) -> str:
    """The phase alone, without counting the campaign's rows: it only asks whether one is still open."""
    row = get_campaign(session, campaign_id)
    if row.state != CampaignState.SCHEDULED:
        return str(row.state)
    groups, done = _groups_done(session, campaign_id)
    if done < groups:
        return phase_of(row.state, groups, done, True)  # sends still to come: no need to look at rows
    return phase_of(row.state, groups, done, tallies.has_open(session, campaign_id))


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table; numbers right-aligned."""
    cells = [[str(h) for h in header]] + [[str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(v.rjust(w) if n and v.isdigit() else v.ljust(w) for v, w in zip(r, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


@dataclass
class DeliveryAudit:
    """The ledger against what a provider (the emulator) accepted: the at-most-once and at-least-once check."""

    sent_rows: dict[str, int] = field(default_factory=dict)  # channel → rows the ledger says were sent
    accepted: dict[str, int] = field(default_factory=dict)  # channel → distinct delivery ids the provider took
    duplicates: int = 0  # the same message (push: the same token) accepted more than once
    missing: int = 0  # sent in the ledger, never accepted
    unexpected: int = 0  # accepted, but the ledger does not say sent

    @property
    def exactly_once(self) -> bool:
        return self.duplicates == 0 and self.missing == 0 and self.unexpected == 0


def audit(session: Session, campaign_id: str, entries: Iterable[tuple[str, dict[str, Any]]]) -> DeliveryAudit:
    """Compare the ledger's sent rows with the provider's log entries ("email" | "push", entry)."""
    seen: Counter[tuple[str, int, str | None]] = Counter()
    for kind, entry in entries:
        ids = entry.get("custom_args") if kind == "email" else entry.get("data")
        if not ids or ids.get("campaign_id") != campaign_id:
            continue
        seen[(kind, int(ids["delivery_id"]), entry.get("token"))] += 1
    accepted = {(ch, did) for ch, did, _ in seen}
    sent = set(session.execute(select(DeliveryRow.channel, DeliveryRow.id).where(
        DeliveryRow.campaign_id == campaign_id, DeliveryRow.state == DeliveryState.SENT)).all())
    result = DeliveryAudit(duplicates=sum(n - 1 for n in seen.values()), missing=len(sent - accepted),
                           unexpected=len(accepted - sent))
    for ch, _ in sent:
        result.sent_rows[ch] = result.sent_rows.get(ch, 0) + 1
    for ch, _ in accepted:
        result.accepted[ch] = result.accepted.get(ch, 0) + 1
    return result


# --- campaigns at a glance, one recipient's messages, the ledger's audience -------------------------------


@dataclass(frozen=True)
class CampaignLine:
    """One campaign for ``notifier campaign list``."""

    campaign_id: str
    state: str
    phase: str
    sent: int
    total: int  # messages in the ledger so far (rows are created as their send falls due)
    groups_done: int
    groups: int
    next_send_at: datetime | None
    held: tuple[str, ...] = ()  # why the dispatcher sends nothing at all now (holds), if it is sending
    planned: int = 0  # every message of the plan: the rows so far and those its groups not yet due will create
    done: int = 0  # messages with an outcome: sent, skipped or failed
    copy: Approval | None = None  # its copy against the approved one (None: not checked, or not scheduled)

    @property
    def percent(self) -> int:
        return percent(self.done, self.planned, self.phase)

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign_id, "state": self.state, "phase": self.phase, "sent": self.sent,
                "total": self.total, "planned": self.planned, "done": self.done,
                "groups_done": self.groups_done, "groups": self.groups,
                "next_send_at": self.next_send_at.isoformat() if self.next_send_at else None,
                "held": list(self.held), "blocked": self.copy.as_dict() if self.copy else None}


def campaign_lines(session: Session, settings: Settings | None = None,
                   to_come: ToCome = ROWS_TO_COME) -> list[CampaignLine]:
    """Every campaign in the ledger, by id, with its phase and progress, from the tallies. With
    ``settings``, each scheduled campaign's copy is checked against the approved one (as campaign_status does)."""
    rows = tallies.by_state(session)
    plans = {campaign_id: (n, done, nxt) for campaign_id, n, done, nxt in session.execute(
        select(SendGroup.campaign_id, func.count(), func.count().filter(SendGroup.materialized_upto > 0),
               func.min(SendGroup.send_at).filter(SendGroup.materialized_upto == 0))
        .group_by(SendGroup.campaign_id))}
    lines = []
    held = tuple(h.reason for h in holds.active(session))
    for row in session.scalars(select(CampaignRow).order_by(CampaignRow.id)):
        counts = rows.get(row.id, Counter())
        groups, done, nxt = plans.get(row.id, (0, 0, None))
        copy = _copy(row, settings)
        blocked = copy is not None and copy.blocked
        phase = phase_of(row.state, groups, done, any(counts[s] for s in OPEN_STATES), blocked)
        # blocked: nothing goes out then
        nxt = nxt if phase not in (Phase.FINISHED, Phase.CANCELLED, Phase.BLOCKED) else None
        lines.append(CampaignLine(row.id, str(row.state), phase, counts[DeliveryState.SENT.value], counts.total(),
                                  done, groups, nxt, held if phase in (Phase.SENDING, Phase.BLOCKED) else (),
                                  counts.total() + to_come(session, row), sum(counts[s] for s in FINAL_STATES),
                                  copy))
    return lines


@dataclass(frozen=True)
class LedgerMember:
    """A recipient as the ledger holds it, with only its active push tokens (see notifier.timeline.Member)."""

    seq: int
    id: str
    email: str | None
    country: str | None
    timezone: str
    push_tokens: tuple[str, ...]
    joined_at: datetime | None
    locale: str | None = None
    attributes: Mapping[str, Any] | None = None


def ledger_members(session: Session, recipient_id: str | None = None, chunk: int = 1000) -> Iterator[LedgerMember]:
    """The ledger's audience in seq order (or the one recipient), tokens read per chunk: flat memory."""
    after = 0
    while True:
        q = select(Recipient).where(Recipient.seq > after).order_by(Recipient.seq).limit(chunk)
        if recipient_id is not None:
            q = q.where(Recipient.id == recipient_id)
        rows = session.scalars(q).all()
        if not rows:
            return
        tokens: dict[int, list[str]] = {}
        for seq, token in session.execute(select(PushToken.recipient_seq, PushToken.token).where(
                PushToken.recipient_seq.in_([r.seq for r in rows]), PushToken.active.is_(True))
                .order_by(PushToken.id)):
            tokens.setdefault(seq, []).append(token)
        for r in rows:
            yield LedgerMember(r.seq, r.id, r.email, r.country, r.timezone, tuple(tokens.get(r.seq, ())), r.joined_at,
                               r.locale, r.attributes)
        after = rows[-1].seq


def get_member(session: Session, recipient_id: str) -> LedgerMember:
    member = next(ledger_members(session, recipient_id), None)
    if member is None:
        raise NotFound(f"no recipient with id {recipient_id!r} in the ledger (see: notifier audience import)")
    return member


@dataclass(frozen=True)
class RecipientMessage:
    """One planned or actual message of a recipient; ``at`` is in the recipient's own zone."""

    campaign_id: str
    send_key: str
    channel: str
    state: str  # a DeliveryState word, or ReportState.PLANNED for a send not materialized yet
    at: datetime  # sent_at when sent, otherwise when the send is (or was) due
    skip_reason: str | None = None
    last_error: str | None = None
    delivery_id: int | None = None

    @property
    def reason(self) -> str:
        return "; ".join(r for r in (self.skip_reason, self.last_error) if r)

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign_id, "send_key": self.send_key, "channel": self.channel,
                "state": self.state, "at": self.at.isoformat(), "skip_reason": self.skip_reason,
                "last_error": self.last_error, "delivery_id": self.delivery_id}


def recipient_messages(session: Session, member: LedgerMember, campaign_id: str | None = None
                       ) -> list[RecipientMessage]:
    """Every delivery row of the recipient, and every send still to be materialized that they are eligible for."""
    tz = zone(member.timezone)
    where = [DeliveryRow.recipient_seq == member.seq]
    if campaign_id is not None:
        get_campaign(session, campaign_id)
        where.append(DeliveryRow.campaign_id == campaign_id)
    q = (select(DeliveryRow, SendGroup.send_at).join(SendGroup, SendGroup.id == DeliveryRow.group_id)
         .where(*where))
    found = [RecipientMessage(d.campaign_id, d.send_key, d.channel, str(d.state), (d.sent_at or at).astimezone(tz),
                              d.skip_reason, d.last_error, d.id) for d, at in session.execute(q)]
    return sorted([*found, *_planned(session, member, campaign_id)],
                  key=lambda m: (m.at, m.campaign_id, m.send_key, m.channel))


def cap_notes(session: Session, member: LedgerMember, limits: Mapping[str, int]) -> list[str]:
    """The days on which the daily cap across campaigns (NOTIFIER_DAILY_CAP) holds some of the recipient's messages
    back, in sentences (``daily_cap.day_notes``); none without a cap."""
    if not limits:
        return []
    from notifier.daily_cap import day_notes

    messages = recipient_messages(session, member)
    campaigns = {cid: campaign_of(get_campaign(session, cid)) for cid in {m.campaign_id for m in messages}}
    return day_notes(messages, limits, campaigns)


def _planned(session: Session, member: LedgerMember, campaign_id: str | None) -> Iterator[RecipientMessage]:
    """Sends of the recipient's zone whose rows do not exist yet (their group has not reached this recipient)."""
    tz = zone(member.timezone)
    q = (select(SendGroup, CampaignRow).join(CampaignRow, CampaignRow.id == SendGroup.campaign_id)
         .where(SendGroup.timezone == member.timezone, SendGroup.materialized_upto < member.seq,
                CampaignRow.state.in_([CampaignState.SCHEDULED, CampaignState.PAUSED]))
         .order_by(SendGroup.send_at))
    if campaign_id is not None:
        q = q.where(SendGroup.campaign_id == campaign_id)
    for group, row in session.execute(q):
        campaign = campaign_of(row)
        if member.joined_at is not None and member.joined_at > group.send_at:
            continue
        facts = facts_of(member)
        if not deadlines_for(campaign, group.deadlines, facts):
            continue
        on = reachable(campaign, facts, member.id, member.email, member.push_tokens)
        for channel in send_channels(campaign, group.timezone, group.send_key, on):
            yield RecipientMessage(row.id, group.send_key, channel, ReportState.PLANNED.value,
                                   group.send_at.astimezone(tz))


def counts_text(counts: Mapping[Any, int], empty: str = "nothing") -> str:
    """``sent: 3, skipped: 1``: states (or any keys, enums as their words) sorted, for one line of output."""
    items = sorted((str(k.value if isinstance(k, enum.Enum) else k), n) for k, n in counts.items())
    return ", ".join(f"{k}: {n}" for k, n in items) or empty
