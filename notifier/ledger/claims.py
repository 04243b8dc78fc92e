"""Claims on due rows: take them (to send here or to queue for workers), lease chunks, recover rows whose worker
died, and record outcomes only on rows still held.

Every query is safe with several dispatchers and workers at once: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and
single atomic UPDATEs on SQLite.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    Text,
    and_,
    bindparam,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from notifier.ledger.models import (
    CampaignRow,
    ContentVersion,
    DeliveryEvent,
    DeliveryRow,
    PushToken,
    Recipient,
    RecipientAction,
    SendGroup,
    Suppression,
    UTCDateTime,
    state_is,
)
from notifier.ledger.queries import among, campaign_of, dialect_insert, scheduled_ids
from notifier.ledger.states import CampaignState, DeliveryState, SkipReason
from notifier.ledger.suppressions import NOT_LISTED, Listed, digest, scopes_of

T = TypeVar("T")


@dataclass
class DueCursor:
    """How far one claim loop (one tick, one channel) has walked the due index: the last claimed (due time, id).

    A claimed row leaves a dead entry at the head of the due index until the next vacuum; a loop that started every
    claim at the head again walked every row it had claimed so far, so a wave of N rows cost O(N²) (measured at
    100,000 recipients: 227 index entries read per message sent). Starting after the cursor, each claim reads only
    what it takes. Rows made due during the loop are never behind it: a retry, a wait or a fallback is due at the
    tick's time or later, and a new row has a larger id; anything else behind it (a campaign resumed meanwhile) is
    taken by the next tick, whose loop starts a new cursor."""

    at: datetime | None = None
    id: int = 0

    def passed(self, at: datetime, row_id: int) -> None:
        if self.at is None or (at, row_id) > (self.at, self.id):
            self.at, self.id = at, row_id


def claim_due(session: Session, now: datetime, limit: int, lease_seconds: int, exclude: Iterable[str] = (), *,
              into: DeliveryState = DeliveryState.SENDING, owner: str | None = None,
              channel: str | None = None, cursor: DueCursor | None = None) -> list[int]:
    """Take up to ``limit`` due rows (pending and at their time): ``into`` SENDING to send them here, or QUEUED to
    hand them to a broker. A chunk the broker lost comes back through :func:`requeue_lost` first.

    With ``channel``, the claim walks that channel's due rows in time order on ``ix_deliveries_due`` and stops
    at ``limit``: its cost does not grow with the wave (measured: without it, each claim of 1,000 rows sorted
    every due row, so a wave of N rows cost O(N²)); with a ``cursor`` too, it starts where the last claim of the
    loop stopped (:class:`DueCursor`). Rows held by others are skipped, not waited on (``FOR UPDATE SKIP LOCKED``
    on PostgreSQL). The due rows are read, then taken with one update a campaign.
    """
    # As values, not a subquery: with the subquery PostgreSQL hash-joined the campaigns with the partitions and
    # sorted every due row for each claim (207 tuples read a message at 100,000 recipients, 71 with the values).
    active = scheduled_ids(session, exclude)
    if not active:
        return []
    conditions = [state_is(DeliveryState.PENDING), DeliveryRow.next_attempt_at <= now,
                  DeliveryRow.campaign_id.in_(active)]
    if channel is not None:
        conditions.append(DeliveryRow.channel == channel)
    if cursor is not None and cursor.at is not None:
        conditions.append(tuple_(DeliveryRow.next_attempt_at, DeliveryRow.id)
                          > tuple_(literal(cursor.at, UTCDateTime()), literal(cursor.id, BigInteger())))
    due = session.execute(
        select(DeliveryRow.campaign_id, DeliveryRow.id).where(*conditions)
        .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    values: dict[str, Any] = {"state": into, "lease_until": now + timedelta(seconds=lease_seconds),
                              "lease_owner": owner, "updated_at": now}
    if into == DeliveryState.SENDING:
        values["attempts"] = DeliveryRow.attempts + 1
    taken: list[Any] = []
    # One statement a campaign, naming it: PostgreSQL then updates in its partition alone (migration 0014; a join
    # of the due rows with the whole table hashed every campaign's rows). Still pending: on SQLite, where the read
    # above locks nothing, a dispatcher that claimed the same rows first has moved them on.
    for campaign_id, ids in _by_campaign(due).items():
        taken += session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.campaign_id == campaign_id, among(session, DeliveryRow.id, ids),
                   state_is(DeliveryState.PENDING))
            .values(**values)
            .returning(DeliveryRow.id, DeliveryRow.next_attempt_at)
            .execution_options(synchronize_session=False)
        ).all()
    if cursor is not None and taken:
        at, row_id = max((at, row_id) for row_id, at in taken)
        cursor.passed(at, row_id)
    return sorted(row_id for row_id, _ in taken)


def _by_campaign(pairs: Iterable[tuple[str, T]]) -> dict[str, list[T]]:
    """(campaign, item) pairs as each campaign's items: a statement a campaign, so each touches its partition."""
    out: dict[str, list[T]] = {}
    for campaign_id, item in pairs:
        out.setdefault(campaign_id, []).append(item)
    return out


def requeue_lost(session: Session, now: datetime) -> int:
    """Rows queued for a broker whose chunk was never picked up before its lease ran out (the broker lost it):
    pending again, so the next claim hands them out anew. Nothing was sent for them, so nothing is uncertain."""
    stmt = (update(DeliveryRow)
            .where(state_is(DeliveryState.QUEUED), DeliveryRow.lease_until < now)
            .values(state=DeliveryState.PENDING, lease_until=None, lease_owner=None, updated_at=now)
            .execution_options(synchronize_session=False))
    return session.execute(stmt).rowcount or 0


def lease_chunk(session: Session, ids: Sequence[int], owner: str, now: datetime, lease_seconds: int,
                exclude: Iterable[str] = ()) -> list[int]:
    """A worker takes the rows of its chunk that are still queued for a scheduled campaign (the rest are done,
    taken by someone else, or paused); only rows it leased here may it send."""
    active = scheduled_ids(session, exclude)
    stmt = (
        update(DeliveryRow)
        .where(among(session, DeliveryRow.id, ids), state_is(DeliveryState.QUEUED),
               DeliveryRow.campaign_id.in_(active))
        .values(state=DeliveryState.SENDING, lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                attempts=DeliveryRow.attempts + 1, updated_at=now)
        .returning(DeliveryRow.id)
        .execution_options(synchronize_session=False)
    )
    leased = sorted(session.scalars(stmt).all())
    # A chunk of a paused campaign goes back to pending, so resuming sends it.
    paused = select(CampaignRow.id).where(CampaignRow.state == CampaignState.PAUSED)
    session.execute(update(DeliveryRow).where(
        among(session, DeliveryRow.id, ids), state_is(DeliveryState.QUEUED),
        DeliveryRow.campaign_id.in_(paused))
        .values(state=DeliveryState.PENDING, lease_until=None, lease_owner=None, updated_at=now)
        .execution_options(synchronize_session=False))
    return leased


def recover_expired(session: Session, now: datetime) -> dict[str, int]:
    """Rows still ``sending`` after their lease: their worker died or hung mid-request, so the provider may or may
    not have them. They are marked uncertain and, by each campaign's ``on_uncertain``, sent again or skipped."""
    expired = and_(state_is(DeliveryState.SENDING), DeliveryRow.lease_until < now)
    counts: dict[str, int] = {}
    for campaign_id in session.scalars(select(DeliveryRow.campaign_id).where(expired).distinct()).all():
        row = session.get(CampaignRow, campaign_id)
        policy = "skip" if row is None or row.state == CampaignState.CANCELLED else campaign_of(row).on_uncertain
        values: dict[str, Any] = {"uncertain": True, "lease_until": None, "lease_owner": None, "updated_at": now}
        if policy == "skip":
            reason = SkipReason.CANCELLED if row is not None and row.state == CampaignState.CANCELLED \
                else SkipReason.UNCERTAIN
            values |= {"state": DeliveryState.SKIPPED, "skip_reason": reason}
        else:
            values |= {"state": DeliveryState.PENDING, "next_attempt_at": now}
        n = session.execute(update(DeliveryRow).where(expired, DeliveryRow.campaign_id == campaign_id)
                            .values(**values).execution_options(synchronize_session=False)).rowcount or 0
        counts[f"{campaign_id}:{'resend' if policy == 'resend' else 'skip'}"] = n
    return counts


@dataclass(frozen=True)
class ClaimedRow:
    """A leased delivery with what the guard and the renderer need; held in memory for one batch only."""

    id: int
    campaign_id: str
    group_id: int
    channel: str
    send_key: str
    attempts: int  # including the attempt this claim counted
    wave: str
    deadlines: tuple[str, ...]
    send_at: datetime  # when its send group fell due
    recipient_seq: int
    recipient_id: str
    email: str | None
    name: str | None
    locale: str | None
    timezone: str
    country: str | None
    attributes: dict[str, Any]
    tokens: tuple[str, ...]
    actions: frozenset[str]
    superseded: frozenset[str]  # deadlines a later due send of the same zone covers
    listed: Listed = NOT_LISTED  # what the suppression list says about this recipient, its address and tokens


def load_claimed(session: Session, ids: Sequence[int], now: datetime) -> list[ClaimedRow]:
    """The claimed rows with what the guard and the renderer need: plain columns, no ORM objects (a batch is
    read once and thrown away)."""
    d, r = DeliveryRow, Recipient
    rows = session.execute(
        select(d.id, d.campaign_id, d.group_id, d.channel, d.attempts, r.seq, r.id.label("recipient_id"), r.email,
               r.name, r.locale, r.timezone, r.country, r.attributes)
        .join(r, r.seq == d.recipient_seq)
        .where(among(session, d.id, ids))
        .order_by(d.id)
    ).all()
    # A batch has a few send groups: their columns are read (and their deadlines decoded) once, not once a row.
    groups = {g.id: g for g in session.execute(
        select(SendGroup.id, SendGroup.send_key, SendGroup.wave, SendGroup.deadlines, SendGroup.send_at)
        .where(among(session, SendGroup.id, {row.group_id for row in rows})))}
    seqs = sorted({row.seq for row in rows})
    tokens: dict[int, list[str]] = {}
    for seq, token in session.execute(select(PushToken.recipient_seq, PushToken.token).where(
            among(session, PushToken.recipient_seq, seqs), PushToken.active.is_(True)).order_by(PushToken.id)):
        tokens.setdefault(seq, []).append(token)
    actions: dict[int, set[str]] = {}
    for seq, action in session.execute(select(RecipientAction.recipient_seq, RecipientAction.action).where(
            among(session, RecipientAction.recipient_seq, seqs), RecipientAction.at <= now)):
        actions.setdefault(seq, set()).add(action)
    later = _later_due(session, {(row.campaign_id, row.timezone) for row in rows}, now)
    listed = _listed(session, rows, tokens)
    superseded: dict[tuple[int, str], frozenset[str]] = {}  # (group, the recipient's zone) → deadlines covered
    out = []
    for row in rows:
        group = groups[row.group_id]
        deadlines = tuple(group.deadlines)
        covered = superseded.get((row.group_id, row.timezone))
        if covered is None:
            covered = superseded[(row.group_id, row.timezone)] = frozenset(
                dl for at, dls in later.get((row.campaign_id, row.timezone), ()) if at > group.send_at
                for dl in dls if dl in deadlines)
        out.append(ClaimedRow(
            id=row.id, campaign_id=row.campaign_id, group_id=row.group_id, channel=row.channel,
            send_key=group.send_key, attempts=row.attempts, wave=group.wave, deadlines=deadlines,
            send_at=group.send_at, recipient_seq=row.seq, recipient_id=row.recipient_id, email=row.email,
            name=row.name, locale=row.locale, timezone=row.timezone, country=row.country,
            attributes=dict(row.attributes or {}), tokens=tuple(tokens.get(row.seq, ())),
            actions=frozenset(actions.get(row.seq, ())), superseded=covered,
            listed=listed.get(row.seq, NOT_LISTED),
        ))
    return out


def _listed(session: Session, rows: Sequence[Any], tokens: dict[int, list[str]]) -> dict[int, Listed]:
    """The suppression list's word on each recipient of a batch, in one query over the hashes (none while the list
    is empty: hashing a batch and shipping its hashes cost 5 s of a 100,000-recipient tick)."""
    if session.scalar(select(Suppression.id).limit(1)) is None:
        return {}
    keys = {}
    for row in rows:
        keys[row.seq] = (digest("recipient", row.recipient_id), digest("email", row.email) if row.email else None,
                         {t: digest("token", t) for t in tokens.get(row.seq, ())})
    found = scopes_of(session, {d for r, e, ts in keys.values() for d in (r, e, *ts.values()) if d})
    if not found:
        return {}
    return {seq: Listed(found.get(r, {}), found.get(e, {}) if e else {},
                        {t: found[d] for t, d in ts.items() if d in found})
            for seq, (r, e, ts) in keys.items()}


def _later_due(session: Session, zones: set[tuple[str, str]], now: datetime
               ) -> dict[tuple[str, str], list[tuple[datetime, list[str]]]]:
    """Due groups per (campaign, zone): a row is stale for a deadline that a later due group also carries."""
    if not zones:
        return {}
    found: dict[tuple[str, str], list[tuple[datetime, list[str]]]] = {}
    q = select(SendGroup.campaign_id, SendGroup.timezone, SendGroup.send_at, SendGroup.deadlines).where(
        SendGroup.campaign_id.in_({c for c, _ in zones}), SendGroup.timezone.in_({z for _, z in zones}),
        SendGroup.send_at <= now)
    for campaign_id, tz, send_at, deadlines in session.execute(q):
        found.setdefault((campaign_id, tz), []).append((send_at, deadlines))
    return found


@dataclass(frozen=True)
class RowOutcome:
    """What happens to one claimed row: its next state and why. The one vocabulary ``record`` writes."""

    id: int
    state: DeliveryState
    at: datetime
    campaign_id: str  # its campaign: the partition it lives in, and which outcomes a cancel concerns
    skip_reason: SkipReason | None = None
    error: str | None = None  # why it failed, waits or was skipped; ids and provider words only, no personal data
    next_attempt_at: datetime | None = None  # pending: when to try again
    provider_message_id: str | None = None
    uncertain: bool = False  # the provider may have it (it is never reset once set)
    locale: str | None = None
    content_fingerprint: str | None = None  # written as its number in content_versions
    attempts: int | None = None  # set when the claim's attempt did not count (blocked channel, closed window)
    keep_error: bool = False  # released unsent (a stop): the row keeps the error it had, if any

    def values(self) -> dict[str, Any]:
        """The columns to write (the lease is always released)."""
        out: dict[str, Any] = {"state": self.state, "updated_at": self.at, "lease_until": None, "lease_owner": None}
        if not self.keep_error:
            out["last_error"] = self.error
        if self.state == DeliveryState.SENT:
            out |= {"sent_at": self.at, "provider_message_id": self.provider_message_id}
        optional = {"skip_reason": self.skip_reason, "next_attempt_at": self.next_attempt_at,
                    "locale": self.locale, "content_fingerprint": self.content_fingerprint, "attempts": self.attempts}
        out |= {k: v for k, v in optional.items() if v is not None}
        if self.uncertain:
            out["uncertain"] = True
        return out

    def event(self) -> dict[str, Any] | None:
        """The delivery event worth keeping: every retry, wait and failure with its reason."""
        if not self.error:
            return None
        kind = "retry" if self.state == DeliveryState.PENDING else str(self.state)
        return {"delivery_id": self.id, "campaign_id": self.campaign_id, "type": kind, "at": self.at,
                "detail": {"error": self.error}}


def record(session: Session, outcomes: Iterable[RowOutcome], owner: str | None = None) -> int:
    """Write per-row outcomes and their delivery events; returns rows updated.

    With ``owner``, an outcome lands only on a row this owner still holds: a worker that lost its lease (it hung
    and the row was recovered as uncertain) cannot overwrite what happened since. On PostgreSQL a whole batch is
    one ``UPDATE … FROM unnest(arrays)`` a campaign (as River's batch completer), whatever mix of outcomes it holds.
    """
    outcomes = list(outcomes)
    events = [e for e in (o.event() for o in outcomes) if e is not None]
    if not outcomes:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        updated = _complete_batch(session, outcomes, owner)
    else:
        updated = _complete_rows(session, outcomes, owner)
    if events:
        session.execute(dialect_insert(session, DeliveryEvent), events)
    return updated


def _complete_rows(session: Session, outcomes: Sequence[RowOutcome], owner: str | None) -> int:
    """One executemany per set of columns written (SQLite runs it in-process, fast)."""
    table = DeliveryRow.__table__
    by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for outcome in outcomes:
        change = outcome.values()
        by_keys.setdefault(tuple(sorted(change)), []).append(change | {"id": outcome.id})
    updated = 0
    for keys, group in by_keys.items():
        where = [table.c.id == bindparam("b_id")]
        if owner is not None:
            where += [table.c.state == DeliveryState.SENDING.value, table.c.lease_owner == owner]
        values: dict[str, Any] = {k: bindparam(f"b_{k}") for k in keys if k != "content_fingerprint"}
        if "content_fingerprint" in keys:
            values["content_version"] = select(ContentVersion.id).where(
                ContentVersion.fingerprint == bindparam("b_content_fingerprint")).scalar_subquery()
        stmt = table.update().where(*where).values(values)
        params = [{f"b_{k}": _db_value(v) for k, v in change.items()} for change in group]
        updated += session.connection().execute(stmt, params).rowcount or 0
    return updated


# Each column of RowOutcome.values() as one array of the batch; a NULL keeps what the row has (the optional ones).
_COMPLETE = """
UPDATE deliveries AS d SET
  state = v.state, updated_at = v.at, lease_until = NULL, lease_owner = NULL,
  last_error = CASE WHEN v.keep_error THEN d.last_error ELSE v.error END,
  sent_at = CASE WHEN v.state = 'sent' THEN v.at ELSE d.sent_at END,
  provider_message_id = CASE WHEN v.state = 'sent' THEN v.provider_message_id ELSE d.provider_message_id END,
  skip_reason = COALESCE(v.skip_reason, d.skip_reason),
  next_attempt_at = COALESCE(v.next_attempt_at, d.next_attempt_at),
  locale = COALESCE(v.locale, d.locale),
  content_version = COALESCE((SELECT c.id FROM content_versions AS c WHERE c.fingerprint = v.content_fingerprint),
                             d.content_version),
  attempts = COALESCE(v.attempts, d.attempts),
  uncertain = d.uncertain OR v.uncertain
FROM unnest(:ids, :states, :ats, :errors, :provider_message_ids, :skip_reasons, :next_attempt_ats,
            :locales, :content_fingerprints, :attempts, :uncertain, :keep_errors)
  AS v(id, state, at, error, provider_message_id, skip_reason, next_attempt_at, locale,
       content_fingerprint, attempts, uncertain, keep_error)
WHERE d.campaign_id = :campaign AND d.id = v.id"""
# One statement a campaign, naming it: its partition alone is updated (migration 0014). With the campaign as one
# more array, PostgreSQL merge-joined the batch with every partition's rows.
# Planned well only on statistics taken after the wave was materialized (queries.refresh_statistics): on older
# ones (a table of a few rows) the planner walked the whole table for each batch (356 ms a completion at 100,000
# recipients). Saying ``d.id = ANY(:ids)`` as well is no cure: the planner then drove the join from those rows and
# scanned the unnested batch once per row (a batch of 1,000 cost a backend's whole core at 1,000,000 recipients).
_ARRAYS = (
    bindparam("campaign", type_=Text), bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("states", type_=ARRAY(Text)),
    bindparam("ats", type_=ARRAY(DateTime(timezone=True))), bindparam("errors", type_=ARRAY(Text)),
    bindparam("provider_message_ids", type_=ARRAY(Text)), bindparam("skip_reasons", type_=ARRAY(Text)),
    bindparam("next_attempt_ats", type_=ARRAY(DateTime(timezone=True))), bindparam("locales", type_=ARRAY(Text)),
    bindparam("content_fingerprints", type_=ARRAY(Text)), bindparam("attempts", type_=ARRAY(Integer)),
    bindparam("uncertain", type_=ARRAY(Boolean)), bindparam("keep_errors", type_=ARRAY(Boolean)))
# Held rows only: the rows this owner still leases.
_COMPLETE_HELD = text(_COMPLETE + " AND d.state = 'sending' AND d.lease_owner = :owner").bindparams(
    *_ARRAYS, bindparam("owner", type_=Text))
_COMPLETE_ANY = text(_COMPLETE).bindparams(*_ARRAYS)


def _complete_batch(session: Session, outcomes: Sequence[RowOutcome], owner: str | None) -> int:
    """A campaign's outcomes of the batch in one statement (a batch is mostly one campaign's): the completion costs
    a round trip, not one per row."""
    updated = 0
    for campaign_id, mine in _by_campaign((o.campaign_id, o) for o in outcomes).items():
        params = {"campaign": campaign_id, **_arrays(mine)}
        if owner is None:
            updated += session.execute(_COMPLETE_ANY, params).rowcount or 0
        else:
            updated += session.execute(_COMPLETE_HELD, params | {"owner": owner}).rowcount or 0
    return updated


def _arrays(outcomes: Sequence[RowOutcome]) -> dict[str, list[Any]]:
    """Each column :data:`_COMPLETE` writes, as one array over ``outcomes``."""
    def column(get: Any) -> list[Any]:
        return [get(o) for o in outcomes]

    return {
        "ids": column(lambda o: o.id), "states": column(lambda o: o.state.value), "ats": column(lambda o: o.at),
        "errors": column(lambda o: o.error), "provider_message_ids": column(lambda o: o.provider_message_id),
        "skip_reasons": column(lambda o: o.skip_reason.value if o.skip_reason else None),
        "next_attempt_ats": column(lambda o: o.next_attempt_at), "locales": column(lambda o: o.locale),
        "content_fingerprints": column(lambda o: o.content_fingerprint), "attempts": column(lambda o: o.attempts),
        "uncertain": column(lambda o: o.uncertain), "keep_errors": column(lambda o: o.keep_error),
    }


def _db_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def add_fallback_emails(session: Session, rows: Sequence[ClaimedRow], now: datetime) -> int:
    """An email row, due now, for each push row whose every token was dead (``fallback: email``)."""
    values = [{"campaign_id": r.campaign_id, "group_id": r.group_id, "recipient_seq": r.recipient_seq,
               "channel": "email", "state": DeliveryState.PENDING.value, "attempts": 0, "next_attempt_at": now,
               "created_at": now, "updated_at": now} for r in rows]
    return session.execute(dialect_insert(session, DeliveryRow).values(values).on_conflict_do_nothing()).rowcount or 0


