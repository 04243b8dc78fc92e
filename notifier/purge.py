"""Deleting personal data after a campaign, as its announcement promises ("account data is deleted after closure").

:func:`purge` removes the emails, names, push tokens and attributes of a campaign's recipients (those with a
delivery row in it) who are in no other live campaign, and the outbox files of the campaign. It keeps what holds
no personal data: delivery rows and their counts, events, and the hashed suppression list. It refuses while the
campaign has not ended or while any of its sends is still pending. ``purge_after: P7D`` in a campaign file makes
the tick do it that long after the campaign's end (:func:`due`).

``purge --rows`` also removes the campaign's delivery rows and events (on PostgreSQL each campaign's are tables of
their own, emptied at once: ``ledger.partitions``); its counts (``delivery_tallies``) stay, so the dashboard and
the report still say what it did, while the recipient page no longer lists its messages.

A campaign has ended when it was cancelled, or when its last deadline has passed in every zone it planned.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, not_, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import zone
from notifier.channels.outbox import campaign_folder
from notifier.eligibility import countries_sql
from notifier.errors import CampaignStateError
from notifier.ledger import audit, partitions, queries, tallies
from notifier.ledger.db import transaction
from notifier.ledger.models import (
    OPEN_STATES,
    CampaignRow,
    CampaignState,
    DeliveryRow,
    PushToken,
    Recipient,
    ResultFirst,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed, in counts."""

    campaign_id: str
    recipients: int  # recipients whose personal data was removed
    kept: int  # recipients left alone: another live campaign still needs them
    emails: int
    names: int
    tokens: int
    outbox_files: int
    rows: int = 0  # delivery rows removed (``purge --rows``)
    earlier: bool = False  # its personal data had gone before (``purge --rows`` after a purge): nothing of it now

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign_id, "recipients": self.recipients, "kept_for_live_campaigns": self.kept,
                "emails": self.emails, "names": self.names, "push_tokens": self.tokens,
                "outbox_files": self.outbox_files, "delivery_rows": self.rows}


def ends_at(row: CampaignRow) -> datetime:
    """When the campaign's last deadline passes in the last of its planned zones (UTC if it planned none)."""
    campaign = queries.campaign_of(row)
    zones = [zone(z) for z in (row.planned_zones or [])] or [UTC]
    return max(d.instant_in(z) for d in campaign.deadlines for z in zones)


def ended(row: CampaignRow, now: datetime) -> bool:
    return row.state == CampaignState.CANCELLED or now >= ends_at(row)


def _refuse_unless_ended(row: CampaignRow, now: datetime) -> None:
    if not ended(row, now):
        raise CampaignStateError(f"campaign {row.id!r} has not ended: its last deadline passes at "
                                 f"{ends_at(row):%Y-%m-%d %H:%M} UTC (or cancel it first)")


def _live_elsewhere(session: Session, campaign_id: str, now: datetime) -> Any:
    """A WHERE clause on Recipient: someone another live campaign still needs (its audience or its rows)."""
    needed = []
    for row in session.scalars(select(CampaignRow).where(CampaignRow.id != campaign_id,
                                                         CampaignRow.state != CampaignState.CANCELLED,
                                                         CampaignRow.purged_at.is_(None))):
        if ended(row, now):
            continue
        countries = queries.campaign_of(row).countries
        needed.append(or_(countries_sql(countries), Recipient.seq.in_(
            select(DeliveryRow.recipient_seq).where(DeliveryRow.campaign_id == row.id))))
    return or_(*needed) if needed else None


def purge_ledger(session: Session, campaign_id: str, now: datetime) -> PurgeReport:
    """The ledger's part of :func:`purge`, in the caller's transaction."""
    row = queries.get_campaign(session, campaign_id)
    if row.purged_at is not None:
        raise CampaignStateError(f"campaign {campaign_id!r} was already purged at {row.purged_at:%Y-%m-%d %H:%M} UTC")
    _refuse_unless_ended(row, now)
    unsettled = session.scalar(select(func.count()).select_from(DeliveryRow).where(
        DeliveryRow.campaign_id == campaign_id, DeliveryRow.state.in_(OPEN_STATES))) or 0
    if unsettled:
        raise CampaignStateError(f"campaign {campaign_id!r} still has {unsettled} sends pending, queued or in flight; "
                                 "a tick settles them (notifier dispatch --once), then purge")
    mine = Recipient.seq.in_(select(DeliveryRow.recipient_seq).where(DeliveryRow.campaign_id == campaign_id))
    live = _live_elsewhere(session, campaign_id, now)
    target = and_(mine, Recipient.purged_at.is_(None), not_(live) if live is not None else true())
    kept = session.scalar(select(func.count()).select_from(Recipient).where(mine, live)) if live is not None else 0

    def count(*where: Any) -> int:
        return session.scalar(select(func.count()).select_from(Recipient).where(target, *where)) or 0

    emails, names = count(Recipient.email.is_not(None)), count(Recipient.name.is_not(None))
    tokens = session.scalar(select(func.count()).select_from(PushToken).where(
        PushToken.recipient_seq.in_(select(Recipient.seq).where(target)))) or 0
    session.execute(delete(PushToken).where(PushToken.recipient_seq.in_(select(Recipient.seq).where(target)))
                    .execution_options(synchronize_session=False))
    purged = session.execute(update(Recipient).where(target)
                             .values(email=None, name=None, attributes={}, purged_at=now, updated_at=now)
                             .execution_options(synchronize_session=False)).rowcount or 0
    row.purged_at = now
    return PurgeReport(campaign_id, purged, kept or 0, emails, names, tokens, 0)


def purge(sessions: sessionmaker[Session], campaign_id: str, now: datetime, outbox_dir: Path | None = None, *,
          rows: bool = False) -> PurgeReport:
    """Remove the personal data of an ended campaign (see the module docstring); returns what it removed. With
    ``rows``, its delivery rows and events go too (:func:`purge_rows`), also from a campaign purged before."""
    with transaction(sessions) as s:
        row = queries.get_campaign(s, campaign_id)
        report = purge_ledger(s, campaign_id, now) if not (rows and row.purged_at) else None
        removed = purge_rows(s, campaign_id, now) if rows else 0
        audit.record(s, "purge", campaign_id=campaign_id, at=now,  # one line, whatever it removed
                     detail={"recipients": report.recipients if report else 0, "rows": removed})
    files = _remove_outbox(outbox_dir, campaign_id) if outbox_dir is not None else 0
    found = report or PurgeReport(campaign_id, 0, 0, 0, 0, 0, 0, earlier=True)
    return PurgeReport(**{**found.__dict__, "outbox_files": files, "rows": removed})


def purge_rows(session: Session, campaign_id: str, now: datetime) -> int:
    """Remove an ended, settled campaign's delivery rows and events, and the per-message keys of its results,
    keeping its counts and its results; returns rows removed."""
    row = queries.get_campaign(session, campaign_id)
    _refuse_unless_ended(row, now)
    if tallies.has_open(session, campaign_id):
        raise CampaignStateError(f"campaign {campaign_id!r} still has sends pending, queued or in flight; "
                                 "a tick settles them (notifier dispatch --once), then purge")
    count = session.scalar(select(func.count()).select_from(DeliveryRow).where(
        DeliveryRow.campaign_id == campaign_id)) or 0
    partitions.empty(session, campaign_id)
    session.execute(delete(ResultFirst).where(ResultFirst.campaign_id == campaign_id))  # they name its rows' ids
    return count


def _remove_outbox(root: Path, campaign_id: str) -> int:
    """Delete the campaign's outbox folders (its .eml and push files name and address people)."""
    removed = 0
    for kind in ("email", "push"):
        folder = Path(root) / kind / campaign_folder({"campaign_id": campaign_id})
        if folder.is_dir():
            removed += sum(1 for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
    return removed


def due(session: Session, now: datetime) -> Iterator[str]:
    """Campaigns whose ``purge_after`` has run out since their end, not purged yet, with nothing unsettled. A campaign
    that cannot be judged (its stored file no longer parses) is logged and left out: the others are still purged."""
    for row in session.scalars(select(CampaignRow).where(CampaignRow.purged_at.is_(None))):
        try:
            if _is_due(session, row, now):
                yield row.id
        except Exception:
            log.exception("campaign %s: cannot tell whether its purge is due; the other campaigns go on", row.id)


def _is_due(session: Session, row: CampaignRow, now: datetime) -> bool:
    after = queries.campaign_of(row).purge_after
    if after is None or not ended(row, now):
        return False
    end = row.updated_at if row.state == CampaignState.CANCELLED else ends_at(row)
    return now >= end + after and not tallies.has_open(session, row.id)
