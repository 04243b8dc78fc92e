"""Reading the ledger back in tests: one recipient's rows and a row's events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.ledger.models import DeliveryEvent, DeliveryRow, Recipient

FIRST_KEY = "playlist-transfer@P30D+refund@P61D"  # the shipped campaign's first, merged send


def rows_of(sessions: sessionmaker[Session], recipient_id: str) -> dict[tuple[str, str], DeliveryRow]:
    """One recipient's ledger rows by (send key, channel)."""
    with sessions() as s:
        rows = s.scalars(select(DeliveryRow).join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
                         .where(Recipient.id == recipient_id))
        return {(r.send_key, r.channel): r for r in rows}


def the_row(sessions: sessionmaker[Session], recipient_id: str, send_key: str = FIRST_KEY,
            channel: str = "email") -> DeliveryRow:
    return rows_of(sessions, recipient_id)[send_key, channel]


def events_of(sessions: sessionmaker[Session], delivery_id: int) -> list[tuple[str, datetime, Any]]:
    with sessions() as s:
        return [(e.type, e.at, e.detail) for e in s.scalars(
            select(DeliveryEvent).where(DeliveryEvent.delivery_id == delivery_id).order_by(DeliveryEvent.id))]
