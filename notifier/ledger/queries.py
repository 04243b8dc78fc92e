"""Ledger queries: schedule and plan groups, materialize due groups, campaign states, tokens and actions.
Claims, leases and recording outcomes live in ``claims.py``. Plans, the channel rule and the copy's fingerprint come
from the caller (``plans.py``): the ledger imports neither the planner nor the renderer.

Every query is safe with several dispatchers at once: inserts rely on the unique constraints (INSERT … SELECT …
ON CONFLICT DO NOTHING), so planning or materializing twice adds nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from notifier.campaign import CHANNELS, Campaign, parse_campaign, zone
from notifier.eligibility import deadlines_sql, eligible_sql, has_channel_sql, push_holders_sql, receives_sql
from notifier.errors import CampaignStateError, ConfigError, NotFound, UserError
from notifier.ledger import audit, partitions, spread
from notifier.ledger.models import (
    CampaignRow,
    ContentVersion,
    DeliveryRow,
    EndedSession,
    PushToken,
    Recipient,
    RecipientAction,
    SendGroup,
    UTCDateTime,
    state_is,
)
from notifier.ledger.plans import CopyStamp, SendChannels, ZonePlanner
from notifier.ledger.states import CampaignState, DeliveryState, SkipReason

MATERIALIZE_CHUNK = 50_000  # recipients per INSERT ... SELECT, so one statement never grows unbounded


def dialect_insert(session: Session, table: Any) -> Any:
    """INSERT for the session's dialect; keeps ``rowcount`` (SQLAlchemy drops it for INSERTs on psycopg: -1)."""
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise ConfigError(f"NOTIFIER_DATABASE_URL: the ledger runs on PostgreSQL or SQLite, not {dialect}")
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.execution_options(preserve_rowcount=True)


def among(session: Session, column: Any, values: Collection[Any]) -> Any:
    """``column IN values``; on PostgreSQL as ``= ANY(array)``, one parameter whatever the batch size, so the driver
    does not parse a new thousand-placeholder statement for every batch (measured: 4% of a worker's time, and 4 s of
    a 100,000-recipient tick for the suppression lookup alone)."""
    values = list(values)
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    element = BigInteger() if column.type.python_type is int else String()
    return column == any_(bindparam(None, values, type_=postgresql.ARRAY(element)))


def _ts(value: datetime) -> Any:
    return literal(value, UTCDateTime())


# --- campaigns ---------------------------------------------------------------------------------------


def get_campaign(session: Session, campaign_id: str) -> CampaignRow:
    row = session.get(CampaignRow, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r} is scheduled (run: notifier campaign schedule FILE)")
    return row


_parsed: dict[tuple[str, str], Campaign] = {}


def campaign_of(row: CampaignRow) -> Campaign:
    """The validated campaign as it was scheduled (parsed once per process and spec)."""
    key = (row.id, row.spec)
    if key not in _parsed:
        _parsed[key] = parse_campaign(row.spec, source=row.source)
    return _parsed[key]


@dataclass(frozen=True)
class ScheduleResult:
    campaign_id: str
    created: bool
    zones: int
    groups: int
    content_changes: tuple[str, ...] = ()  # files of the copy that changed since the last schedule


def schedule(session: Session, campaign: Campaign, spec: str, now: datetime, content: CopyStamp,
             plan: ZonePlanner) -> ScheduleResult:
    """Store the campaign as scheduled with its approved copy (``render.Content``), and plan its send groups for
    every audience zone by ``plan`` (``planner.plan_zone``)."""
    row = session.get(CampaignRow, campaign.id, with_for_update=True)
    created = row is None
    changes: tuple[str, ...] = ()
    if row is None:
        row = CampaignRow(id=campaign.id, name=campaign.name, source=campaign.source, spec=spec,
                          state=CampaignState.SCHEDULED, scheduled_at=now, updated_at=now, planned_zones=[])
        session.add(row)
    else:
        if row.state == CampaignState.CANCELLED:
            raise CampaignStateError(f"campaign {campaign.id!r} was cancelled; give the new campaign its own id")
        if row.source != campaign.source:
            raise CampaignStateError(
                f"{campaign.source}: campaign id {campaign.id!r} is already scheduled from {row.source}"
            )
        if row.spec != spec:
            # Not yet materialized groups are planned again from the new file; sent ones stay as they are.
            session.execute(SendGroup.__table__.delete().where(
                SendGroup.campaign_id == campaign.id, SendGroup.materialized_upto == 0, SendGroup.send_at > now))
            row.planned_zones = []
        changes = changed_files(row.content_manifest or {}, content.manifest)
        row.spec, row.name, row.updated_at = spec, campaign.name, now
    partitions.ensure(session, campaign.id)  # its delivery rows' and events' own tables (PostgreSQL)
    row.content_fingerprint, row.content_manifest = content.fingerprint, dict(content.manifest)
    # Numbered once, so each row sent with this copy names it by number (claims.record).
    session.execute(dialect_insert(session, ContentVersion).values(fingerprint=content.fingerprint)
                    .on_conflict_do_nothing())
    session.flush()
    zones, groups = plan_groups(session, row, now if not created else row.scheduled_at, plan)
    audit.record(session, "schedule", campaign_id=campaign.id, at=now,
                 detail={"copy": content.fingerprint, "first": created, "copy_changes": list(changes)})
    return ScheduleResult(campaign.id, created, zones, groups, changes)


def changed_files(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[str, ...]:
    """'name: added|removed|changed' for each file whose digest differs between two content manifests."""
    return tuple(
        f"{name}: {'added' if name not in old else 'removed' if name not in new else 'changed'}"
        for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name)
    )


def plan_groups(session: Session, row: CampaignRow, not_before: datetime, plan: ZonePlanner) -> tuple[int, int]:
    """Create the send groups, from ``not_before`` on, of audience time zones not planned yet, as ``plan``
    (``planner.plan_zone``) plans each; (zones, groups)."""
    campaign = campaign_of(row)
    zones = audience_zones(session, campaign)
    new_zones = sorted(set(zones) - set(row.planned_zones or ()))
    values = []
    for name in new_zones:
        zone_plan = plan(campaign, zone(name))
        for s in zone_plan.sends:
            if s.send_at < not_before:
                continue
            expires = max(zone_plan.deadline_instants[d] for d in s.deadlines)
            values.append({"campaign_id": row.id, "timezone": name, "send_key": s.send_key, "wave": s.wave,
                           "deadlines": list(s.deadlines), "send_at": s.send_at_utc, "expires_at": expires,
                           "materialized_upto": 0})
    inserted = 0
    for start in range(0, len(values), 1000):
        stmt = dialect_insert(session, SendGroup).values(values[start : start + 1000])
        inserted += session.execute(stmt.on_conflict_do_nothing()).rowcount or 0
    if new_zones:
        row.planned_zones = sorted({*(row.planned_zones or ()), *new_zones})
    return len(zones), inserted


def sends_of(session: Session, campaign_id: str) -> tuple[dict[int, str], dict[str, datetime]]:
    """The campaign's send group ids → their send (key), and each send → when it first goes out: counts name
    groups, people read sends in the order they go out."""
    send_of: dict[int, str] = {}
    first: dict[str, datetime] = {}
    for group_id, send_key, send_at in session.execute(select(SendGroup.id, SendGroup.send_key, SendGroup.send_at)
                                                       .where(SendGroup.campaign_id == campaign_id)):
        send_of[group_id] = send_key
        first[send_key] = min(send_at, first.get(send_key, send_at))
    return send_of, first


ACTION_OF_STATE = {CampaignState.PAUSED: "pause", CampaignState.SCHEDULED: "resume", CampaignState.CANCELLED: "cancel"}


def set_state(session: Session, campaign_id: str, state: CampaignState, now: datetime) -> CampaignRow:
    """Pause, resume or cancel; cancelling skips every row not yet sent."""
    row = get_campaign(session, campaign_id)
    allowed = {
        CampaignState.PAUSED: {CampaignState.SCHEDULED},
        CampaignState.SCHEDULED: {CampaignState.PAUSED},
        CampaignState.CANCELLED: {CampaignState.SCHEDULED, CampaignState.PAUSED},
    }[state]
    if row.state not in allowed:
        raise CampaignStateError(f"campaign {campaign_id!r} is {row.state}; cannot make it {state}")
    row.state, row.updated_at = state, now
    audit.record(session, ACTION_OF_STATE[state], campaign_id=campaign_id, at=now)
    if state == CampaignState.CANCELLED:
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.campaign_id == campaign_id,
                   DeliveryRow.state.in_([DeliveryState.PENDING, DeliveryState.QUEUED]))
            .values(state=DeliveryState.SKIPPED, skip_reason=SkipReason.CANCELLED, updated_at=now)
        )
    return row


def cancelled_among(session: Session, campaign_ids: Iterable[str]) -> set[str]:
    """Which of these campaigns are cancelled, read under a share lock so that a cancel cannot commit before the
    caller's outcomes do (set_state skips only rows not in flight; a retry recorded after it would stay pending)."""
    rows = session.execute(select(CampaignRow.id, CampaignRow.state)
                           .where(CampaignRow.id.in_(list(campaign_ids))).with_for_update(read=True))
    return {campaign_id for campaign_id, state in rows if state == CampaignState.CANCELLED}


def active_campaigns(session: Session) -> list[CampaignRow]:
    return list(session.scalars(select(CampaignRow).where(CampaignRow.state == CampaignState.SCHEDULED)))


def scheduled_ids(session: Session, exclude: Iterable[str] = ()) -> list[str]:
    """The ids of the campaigns whose rows may be sent now (but ``exclude``), as values: named in a statement, they
    leave the other campaigns' partitions out of its plan (PostgreSQL; a subquery would not)."""
    return list(session.scalars(select(CampaignRow.id).where(CampaignRow.state == CampaignState.SCHEDULED,
                                                             CampaignRow.id.not_in(list(exclude)))))


# --- materializing due groups --------------------------------------------------------------------------


def materialize_due(session: Session, now: datetime, channels: SendChannels, exclude: Iterable[str] = ()) -> int:
    """Create delivery rows for every due group of a scheduled campaign (but ``exclude``), on the channels the
    group goes out on (``channels``: ``planner.send_channels``); returns rows created.

    A group whose deadlines all passed before anything dispatched it (an outage, a long pause) still gets its
    rows, as ``skipped: deadline_passed``, so the ledger accounts for every planned message and says why.
    """
    max_seq = session.scalar(select(func.max(Recipient.seq))) or 0
    groups = session.scalars(
        select(SendGroup)
        .join(CampaignRow, CampaignRow.id == SendGroup.campaign_id)
        .where(CampaignRow.state == CampaignState.SCHEDULED, SendGroup.send_at <= now,
               SendGroup.materialized_upto < max_seq,
               or_(CampaignRow.id.not_in(list(exclude)), SendGroup.expires_at <= now))
        .order_by(SendGroup.send_at)
        .with_for_update(skip_locked=True, of=SendGroup)
    ).all()
    created = 0
    for group in groups:
        campaign = campaign_of(session.get(CampaignRow, group.campaign_id))  # type: ignore[arg-type]
        missed = group.expires_at <= now
        group_channels = channels(campaign, group.timezone, group.send_key)
        for lo in range(group.materialized_upto, max_seq, MATERIALIZE_CHUNK):
            hi = min(lo + MATERIALIZE_CHUNK, max_seq)
            for channel in group_channels:
                created += _materialize(session, group, campaign, channel, lo, hi, now,
                                        SkipReason.DEADLINE_PASSED if missed else None)
        group.materialized_upto = max_seq
    return created


def _materialize(session: Session, group: SendGroup, campaign: Campaign, channel: str,
                 lo: int, hi: int, now: datetime, skipped: SkipReason | None = None) -> int:
    state = DeliveryState.SKIPPED if skipped else DeliveryState.PENDING
    room = timedelta(0) if skipped else spread.room_of(campaign, group)  # each recipient's offset in its spread
    due = spread.due_sql(session.get_bind().dialect.name, group.send_at, Recipient.seq, room)
    source = select(
        literal(group.campaign_id), literal(group.id), Recipient.seq, literal(channel),
        literal(state.value), literal(skipped.value if skipped else None, String), literal(0), due,
        _ts(now), _ts(now),
    ).where(
        Recipient.timezone == group.timezone, Recipient.seq > lo, Recipient.seq <= hi,
        Recipient.joined_at <= _ts(group.send_at), eligible_sql(campaign, [channel]),
        deadlines_sql(campaign, group.deadlines),
    )
    cols = ["campaign_id", "group_id", "recipient_seq", "channel", "state", "skip_reason", "attempts",
            "next_attempt_at", "created_at", "updated_at"]
    stmt = dialect_insert(session, DeliveryRow).from_select(cols, source).on_conflict_do_nothing()
    return session.execute(stmt).rowcount or 0


ANALYZE_AFTER = 10_000  # rows a materialize must add before the statistics are taken again


def refresh_statistics(session: Session, created: int) -> bool:
    """PostgreSQL's statistics of the scheduled campaigns' delivery rows taken again (``ANALYZE`` of their
    partitions, about 0.1 s at 100,000 recipients) after a materialize added ``created`` rows, if that is many
    (``ANALYZE_AFTER``, and a tenth of the rows those partitions were known to hold): the planner otherwise plans
    the wave's claims and reads on figures from before it (a table of a few rows) and walks the whole table for
    each batch of 500, as auto_explain showed at 100,000 recipients. Autovacuum would take them too, but a minute
    or more later, in the middle of the wave. Finished campaigns' partitions are left alone. True when it did."""
    if created < ANALYZE_AFTER or session.get_bind().dialect.name != "postgresql":
        return False
    tables = partitions.existing(session.connection(), "deliveries", scheduled_ids(session))
    if not tables:
        return False
    known = session.scalar(text("SELECT sum(greatest(reltuples, 0)) FROM pg_class "
                                "WHERE oid = ANY(CAST(:t AS regclass[]))"), {"t": tables}) or 0
    if created < 0.1 * known:
        return False
    session.execute(text("ANALYZE " + ", ".join(f'"{t}"' for t in tables)))
    return True


def rows_to_come(session: Session, row: CampaignRow, channels: SendChannels) -> int:
    """The delivery rows the campaign's send groups not yet due will create, as the audience stands now: for each
    group, the recipients of its zone who joined by its time, on each of its channels (``channels``:
    ``planner.send_channels``) they are eligible on, as :func:`_materialize` will take them. With the rows that
    exist: every message of the plan.

    One pass over the recipients of those zones, whatever the number of groups: those who joined before the first
    of them count for every group of their zone; the few who joined later, for the groups they had joined by.
    About 130 ms at 300,000 recipients on PostgreSQL; a live page keeps it a while (:class:`RowsToCome`)."""
    groups = _groups_to_come(session, row)
    return _count_to_come(session, row, groups, channels) if groups else 0


def _groups_to_come(session: Session, row: CampaignRow) -> tuple[Any, ...]:
    if row.state == CampaignState.CANCELLED:
        return ()
    return tuple(session.execute(select(SendGroup.timezone, SendGroup.send_key, SendGroup.send_at,
                                        SendGroup.deadlines).where(
        SendGroup.campaign_id == row.id, SendGroup.materialized_upto == 0).order_by(SendGroup.id)).all())


def _count_to_come(session: Session, row: CampaignRow, groups: Sequence[Any], channels: SendChannels) -> int:
    campaign = campaign_of(row)
    first = min(g.send_at for g in groups)
    late = type_coerce(case((Recipient.joined_at > _ts(first), Recipient.joined_at), else_=None), UTCDateTime())
    holders = push_holders_sql()
    present = {"email": has_channel_sql("email"), "push": holders.c.seq.is_not(None)}
    # A send carries deadlines whose ``where`` may leave some recipients out: one count per set of deadlines.
    carried = sorted({tuple(g.deadlines) for g in groups})
    counts = [func.count().filter(present[ch] & deadlines_sql(campaign, ds))
              for ds in carried for ch in campaign.channels]
    q = (select(Recipient.timezone, late.label("late"), *counts)
         .outerjoin(holders, holders.c.seq == Recipient.seq)
         .where(Recipient.timezone.in_(sorted({g.timezone for g in groups})), receives_sql(campaign))
         .group_by(Recipient.timezone, literal_column("late")))
    keys = [(ds, ch) for ds in carried for ch in campaign.channels]
    eligible: dict[str, list[tuple[datetime | None, dict[tuple[tuple[str, ...], str], int]]]] = {}
    for tz, joined, *numbers in session.execute(q):
        eligible.setdefault(tz, []).append((joined, dict(zip(keys, numbers, strict=True))))
    return sum(n[(tuple(g.deadlines), ch)] for g in groups for ch in channels(campaign, g.timezone, g.send_key)
               for joined, n in eligible.get(g.timezone, ()) if joined is None or joined <= g.send_at)


class RowsToCome:
    """:func:`rows_to_come` for a page that asks every few seconds: each campaign's count is kept ``max_age``
    seconds while its groups still to come and the newest recipient stay the same (an import counts at once; a
    token found dead, or an address removed, shows that much later). One per serving app, so one per ledger."""

    def __init__(self, channels: SendChannels, max_age: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.channels, self.max_age, self.clock = channels, max_age, clock
        self._kept: dict[str, tuple[Any, float, int]] = {}  # campaign id → (what was counted, when, the count)
        self._lock = threading.Lock()

    def __call__(self, session: Session, row: CampaignRow) -> int:
        groups = _groups_to_come(session, row)
        if not groups:
            return 0
        key = (row.spec, groups, session.scalar(select(func.max(Recipient.seq))))
        with self._lock:
            kept = self._kept.get(row.id)
        if kept is not None and kept[0] == key and self.clock() - kept[1] < self.max_age:
            return kept[2]
        count = _count_to_come(session, row, groups, self.channels)
        with self._lock:
            self._kept[row.id] = (key, self.clock(), count)
        return count


def audience_zones(session: Session, campaign: Campaign, limit: int | None = None) -> list[str]:
    """The time zones of the campaign's audience in the ledger (eligible on one of its channels), by name."""
    q = (select(Recipient.timezone).distinct().where(eligible_sql(campaign, campaign.channels))
         .order_by(Recipient.timezone))
    return list(session.scalars(q if limit is None else q.limit(limit)))


# --- claiming and recording ----------------------------------------------------------------------------


def deactivate_tokens(session: Session, dead: Sequence[tuple[int, str]], now: datetime, reason: str) -> None:
    """Never use these (recipient seq, token) pairs again."""
    for seq, token in dead:
        session.execute(update(PushToken).where(PushToken.recipient_seq == seq, PushToken.token == token,
                                                PushToken.active.is_(True))
                        .values(active=False, deactivated_at=now, deactivated_reason=reason))


def skip_if_actions(session: Session) -> set[str]:
    """Every action that some campaign in the ledger honours in a deadline's ``skip_if``."""
    rows = session.scalars(select(CampaignRow)).all()
    return {d.skip_if for row in rows for d in campaign_of(row).deadlines if d.skip_if}


def record_action(session: Session, recipient_id: str, action: str, at: datetime, *, force: bool = False
                  ) -> int | None:
    """Note that a recipient did something that can make reminders pointless (see skip_if); the recipient's seq,
    or None when it was already noted (the first time is kept). ``feedback.record_action`` also counts it for the
    campaigns' results: call that one.

    An action no campaign's ``skip_if`` uses is refused unless ``force``: "plan_swiched" would change nothing.
    """
    seq = session.scalar(select(Recipient.seq).where(Recipient.id == recipient_id))
    if seq is None:
        raise NotFound(f"no recipient with id {recipient_id!r}")
    if not force:
        known = skip_if_actions(session)
        if action not in known:
            raise UserError(f"no campaign's skip_if uses the action {action!r} (known: "
                            f"{', '.join(sorted(known)) or 'none, no campaign is scheduled'}); check the spelling, "
                            "or pass --force to record it anyway")
    stmt = dialect_insert(session, RecipientAction).values(recipient_seq=seq, action=action, at=at)
    return seq if session.execute(stmt.on_conflict_do_nothing()).rowcount else None


def next_wakeup(session: Session, after: datetime) -> datetime | None:
    """The next moment something becomes due (a group, a retry or an expired lease), for simulated clocks."""
    active = select(CampaignRow.id).where(CampaignRow.state == CampaignState.SCHEDULED)
    candidates = [
        session.scalar(select(func.min(SendGroup.send_at)).where(
            SendGroup.campaign_id.in_(active), SendGroup.send_at > after)),
        *(session.scalar(select(func.min(DeliveryRow.next_attempt_at)).where(  # per channel: on the due index
            DeliveryRow.channel == channel, DeliveryRow.campaign_id.in_(active), state_is(DeliveryState.PENDING),
            DeliveryRow.next_attempt_at > after)) for channel in CHANNELS),
        session.scalar(select(func.min(DeliveryRow.lease_until)).where(
            DeliveryRow.campaign_id.in_(active), state_is(DeliveryState.SENDING),
            DeliveryRow.lease_until > after)),
    ]
    found = [UTCDateTime().process_result_value(c, None) if isinstance(c, datetime) else c for c in candidates]
    return min((c for c in found if c is not None), default=None)


@dataclass(frozen=True)
class RetryResult:
    campaign_id: str
    retried: int  # failed rows put back to pending
    too_late: int  # failed rows left as they are: their send's deadlines have passed

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign_id, "retried": self.retried, "refused_deadline_passed": self.too_late}


def retry_failed(session: Session, campaign_id: str, now: datetime, *, reason: str | None = None,
                 channel: str | None = None) -> RetryResult:
    """Put a campaign's failed rows (those whose error contains ``reason``, on ``channel``) back to pending for one
    more round of attempts, due now; rows whose deadlines have all passed stay failed. The guard still runs."""
    row = get_campaign(session, campaign_id)
    if row.state == CampaignState.CANCELLED:
        raise CampaignStateError(f"campaign {campaign_id!r} is cancelled; nothing of it is sent again")
    failed = [DeliveryRow.campaign_id == campaign_id, DeliveryRow.state == DeliveryState.FAILED]
    if reason:
        failed.append(DeliveryRow.last_error.contains(reason, autoescape=True))
    if channel:
        failed.append(DeliveryRow.channel == channel)
    live = select(SendGroup.id).where(SendGroup.campaign_id == campaign_id, SendGroup.expires_at > now)
    retried = session.execute(
        update(DeliveryRow).where(*failed, DeliveryRow.group_id.in_(live))
        .values(state=DeliveryState.PENDING, attempts=0, next_attempt_at=now, last_error=None, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount or 0
    too_late = session.scalar(select(func.count()).select_from(DeliveryRow).where(*failed)) or 0
    audit.record(session, "retry", campaign_id=campaign_id, at=now,
                 detail={"reason": reason, "channel": channel, "retried": retried, "left_failed": too_late})
    return RetryResult(campaign_id, retried, too_late)


# --- dashboard logouts ------------------------------------------------------------------------------------------


def end_session(session: Session, digest: str, until: datetime, now: datetime) -> None:
    """Remember a logged-out session (by its token's hash) until ``until``; forget those whose cookies ran out."""
    session.execute(delete(EndedSession).where(EndedSession.until <= now))
    session.execute(dialect_insert(session, EndedSession).values(digest=digest, until=until).on_conflict_do_nothing())


def session_ended(session: Session, digest: str) -> bool:
    return session.get(EndedSession, digest) is not None
