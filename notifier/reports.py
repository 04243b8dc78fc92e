"""Read-only summaries of the ledger for people: campaign status and per-wave breakdowns."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifier.campaign import zone
from notifier.eligibility import eligible
from notifier.errors import CampaignStateError
from notifier.ledger.models import (
    CampaignRow,
    CampaignState,
    DeliveryRow,
    DeliveryState,
    PushToken,
    Recipient,
    SendGroup,
)
from notifier.ledger.queries import campaign_of, get_campaign

STATES = [s.value for s in DeliveryState]


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

    @property
    def phase(self) -> str:
        """What a person wants to know first: still sending, finished, or stopped."""
        if self.state != "scheduled":
            return self.state  # paused, cancelled
        open_rows = sum(c.get(s, 0) for c in self.counts.values() for s in ("pending", "queued", "sending"))
        return "finished" if self.groups_done == self.groups and not open_rows else "sending"

    @property
    def states(self) -> list[str]:
        return [*STATES, "uncertain"]  # uncertain: a worker died with the row in flight (any final state)

    def table_rows(self) -> list[list[Any]]:
        rows: list[list[Any]] = [[send, ch, *(c.get(s, 0) for s in self.states)]
                                 for (send, ch), c in self.counts.items()]
        totals = [sum(r[i] for r in rows) for i in range(2, 2 + len(self.states))]
        return [*rows, ["total", "", *totals]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id, "state": self.state, "groups": self.groups, "groups_done": self.groups_done,
            "phase": self.phase,
            "next_send_at": self.next_send_at.isoformat() if self.next_send_at else None,
            "counts": [{"send": send, "channel": ch, **c} for (send, ch), c in self.counts.items()],
            "skipped_because": self.skips,
            "failed_because": [{"channel": ch, "reason": why, "rows": n} for ch, why, n in self.failures],
            "waiting_because": [{"channel": ch, "reason": why, "rows": n} for ch, why, n in self.waiting],
        }


def campaign_status(session: Session, campaign_id: str) -> CampaignStatus:
    """Counts by send (wave), channel and state, plus how far the plan has come."""
    row = get_campaign(session, campaign_id)
    groups = session.execute(
        select(func.count(), func.count().filter(SendGroup.materialized_upto > 0))
        .where(SendGroup.campaign_id == campaign_id)
    ).one()
    next_at = None if row.state == "cancelled" else session.scalar(select(func.min(SendGroup.send_at)).where(
        SendGroup.campaign_id == campaign_id, SendGroup.materialized_upto == 0))
    st = CampaignStatus(row.id, row.state, groups[0], groups[1], next_at)
    order = select(SendGroup.send_key, func.min(SendGroup.send_at).label("first")).where(
        SendGroup.campaign_id == campaign_id).group_by(SendGroup.send_key).subquery()
    q = (
        select(DeliveryRow.send_key, DeliveryRow.channel, DeliveryRow.state, func.count())
        .join(order, order.c.send_key == DeliveryRow.send_key)
        .where(DeliveryRow.campaign_id == campaign_id)
        .group_by(DeliveryRow.send_key, DeliveryRow.channel, DeliveryRow.state, order.c.first)
        .order_by(order.c.first, DeliveryRow.send_key, DeliveryRow.channel)
    )
    for send, ch, state, n in session.execute(q):
        st.counts.setdefault((send, ch), {})[state] = n
    for send, ch, n in session.execute(
        select(DeliveryRow.send_key, DeliveryRow.channel, func.count()).where(
            DeliveryRow.campaign_id == campaign_id, DeliveryRow.uncertain.is_(True))
        .group_by(DeliveryRow.send_key, DeliveryRow.channel)
    ):
        st.counts.setdefault((send, ch), {})["uncertain"] = n
    for reason, n in session.execute(
        select(DeliveryRow.skip_reason, func.count()).where(
            DeliveryRow.campaign_id == campaign_id, DeliveryRow.state == DeliveryState.SKIPPED)
        .group_by(DeliveryRow.skip_reason).order_by(DeliveryRow.skip_reason)
    ):
        st.skips[reason] = n
    st.failures = _reasons(session, campaign_id, DeliveryRow.state == DeliveryState.FAILED)
    st.waiting = _reasons(session, campaign_id, DeliveryRow.state == DeliveryState.PENDING,
                          DeliveryRow.last_error.is_not(None))
    return st


def _reasons(session: Session, campaign_id: str, *where: Any) -> list[tuple[str, str, int]]:
    """(channel, reason, rows), most rows first: the ledger's own error texts (ids and provider words only)."""
    q = (select(DeliveryRow.channel, DeliveryRow.last_error, func.count())
         .where(DeliveryRow.campaign_id == campaign_id, *where)
         .group_by(DeliveryRow.channel, DeliveryRow.last_error)
         .order_by(func.count().desc(), DeliveryRow.channel, DeliveryRow.last_error))
    return [(ch, why or "(no reason recorded)", n) for ch, why, n in session.execute(q)]


def breakdown(session: Session, campaign_id: str) -> list[tuple[str, str, str, str, int]]:
    """(send, locale, channel, state, count) rows, ordered by the send's first time, then locale and channel."""
    q = (
        select(DeliveryRow.send_key, DeliveryRow.locale, DeliveryRow.channel, DeliveryRow.state, func.count(),
               func.min(DeliveryRow.created_at))
        .where(DeliveryRow.campaign_id == campaign_id)
        .group_by(DeliveryRow.send_key, DeliveryRow.locale, DeliveryRow.channel, DeliveryRow.state)
    )
    rows = sorted(session.execute(q), key=lambda r: (r[5], r[0], r[1] or "", r[2], r[3]))
    return [(key, loc or "-", ch, st, n) for key, loc, ch, st, n, _ in rows]


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

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign_id, "state": self.state, "phase": self.phase, "sent": self.sent,
                "total": self.total, "groups_done": self.groups_done, "groups": self.groups,
                "next_send_at": self.next_send_at.isoformat() if self.next_send_at else None}


def campaign_lines(session: Session) -> list[CampaignLine]:
    """Every campaign in the ledger, by id, with its phase and progress."""
    lines = []
    for campaign_id in session.scalars(select(CampaignRow.id).order_by(CampaignRow.id)):
        st = campaign_status(session, campaign_id)
        sent = sum(c.get(DeliveryState.SENT.value, 0) for c in st.counts.values())
        total = sum(n for c in st.counts.values() for s, n in c.items() if s != "uncertain")
        nxt = st.next_send_at if st.phase not in ("finished", "cancelled") else None
        lines.append(CampaignLine(st.campaign_id, str(st.state), st.phase, sent, total, st.groups_done, st.groups,
                                  nxt))
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
            yield LedgerMember(r.seq, r.id, r.email, r.country, r.timezone, tuple(tokens.get(r.seq, ())), r.joined_at)
        after = rows[-1].seq


def get_member(session: Session, recipient_id: str) -> LedgerMember:
    member = next(ledger_members(session, recipient_id), None)
    if member is None:
        raise CampaignStateError(f"no recipient with id {recipient_id!r} in the ledger (see: notifier audience import)")
    return member


@dataclass(frozen=True)
class RecipientMessage:
    """One planned or actual message of a recipient; ``at`` is in the recipient's own zone."""

    campaign_id: str
    send_key: str
    channel: str
    state: str  # a DeliveryState word, or "planned" for a send not materialized yet
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
        for channel in campaign.channels:
            if eligible(campaign.countries, channel, member.country, member.email, member.push_tokens):
                yield RecipientMessage(row.id, group.send_key, channel, "planned", group.send_at.astimezone(tz))


def counts_text(counts: Mapping[Any, int], empty: str = "nothing") -> str:
    """``sent: 3, skipped: 1``: states (or any keys, enums as their words) sorted, for one line of output."""
    items = sorted((str(k.value if isinstance(k, enum.Enum) else k), n) for k, n in counts.items())
    return ", ".join(f"{k}: {n}" for k, n in items) or empty
