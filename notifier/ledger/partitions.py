"""A campaign's delivery rows and events in tables of their own (PostgreSQL; migration 0014).

On PostgreSQL ``deliveries`` and ``delivery_events`` are partitioned by campaign (``LIST (campaign_id)``): a
campaign's counts, report and recipient rows read only its partition, and :func:`empty` removes a finished
campaign's rows at once (``TRUNCATE``) instead of deleting them one by one. Scheduling a campaign makes its
partitions (:func:`ensure`); events that name no delivery of ours go to ``delivery_events_unmatched``.

What each partition holds:

- ``deliveries_<digest>``: the unique key (group, recipient, channel) is the partition's own index, not the
  parent's. A group belongs to one campaign, so unique in each partition is unique everywhere, and the key need not
  carry the campaign id (about 25 bytes an entry). ``id`` comes from one sequence; the parent indexes it, unkeyed.
- ``delivery_events_<digest>``: its own unique key on (provider, provider_event_id). One provider event names one
  delivery and so one campaign: a replay lands in the same partition and is refused there.

SQLite keeps the plain tables; every function here does nothing on it but :func:`empty`, which deletes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import Connection, delete, or_, select, text
from sqlalchemy.orm import Session

from notifier.ledger import tallies
from notifier.ledger.models import DeliveryEvent, DeliveryRow

UNMATCHED = "delivery_events_unmatched"  # events with campaign_id '' (no delivery of ours)
# Each partitioned table, and the unique key each of its partitions has of its own.
KEYS = {"deliveries": "group_id, recipient_seq, channel", "delivery_events": "provider, provider_event_id"}


def name(table: str, campaign_id: str) -> str:
    """The partition of ``table`` that holds ``campaign_id``'s rows: a digest, since an id may be any text."""
    return f"{table}_{hashlib.sha256(campaign_id.encode()).hexdigest()[:16]}"


def _literal(value: str) -> str:
    """A SQL string literal (DDL takes no bound parameters); ``standard_conforming_strings`` is on since 9.1."""
    return "'" + value.replace("'", "''") + "'"


def is_partitioned(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    return bool(connection.execute(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.oid = to_regclass('deliveries')")).first())


def _exists(connection: Connection, table: str) -> bool:
    return connection.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar_one()


def existing(connection: Connection, table: str, campaign_ids: Iterable[str]) -> list[str]:
    """The partitions of ``table`` that hold these campaigns' rows (those made so far)."""
    return [part for part in (name(table, c) for c in campaign_ids) if _exists(connection, part)]


def create(connection: Connection, campaign_id: str) -> bool:
    """Make ``campaign_id``'s partitions if they are missing; True when it made them.

    Each is made apart and attached (``ATTACH PARTITION`` locks the parent in SHARE UPDATE EXCLUSIVE mode, which lets
    workers go on claiming and completing other campaigns' rows; ``CREATE TABLE … PARTITION OF`` would stop them).
    """
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('notifier.partitions'), hashtext(:c))"),
                       {"c": campaign_id})
    made = False
    value = _literal(campaign_id)
    for table, key in KEYS.items():
        part = name(table, campaign_id)
        if _exists(connection, part):
            continue
        connection.execute(text(f'CREATE TABLE "{part}" (LIKE {table} INCLUDING DEFAULTS)'))
        connection.execute(text(f'ALTER TABLE "{part}" ADD CONSTRAINT "{part}_key" UNIQUE ({key})'))
        connection.execute(text(f'ALTER TABLE {table} ATTACH PARTITION "{part}" FOR VALUES IN ({value})'))
        made = True
    return made


def ensure(session: Session, campaign_id: str) -> bool:
    """:func:`create` in the session's transaction, on a partitioned ledger (nothing to do on SQLite)."""
    connection = session.connection()
    return create(connection, campaign_id) if is_partitioned(connection) else False


def empty(session: Session, campaign_id: str) -> None:
    """Remove every delivery row and event of ``campaign_id`` (TRUNCATE of its partitions on PostgreSQL). The
    live counts (``delivery_tallies``) are kept: they hold no row and say what the campaign did."""
    connection = session.connection()
    if is_partitioned(connection):
        found = [part for table in KEYS for part in existing(connection, table, [campaign_id])]
        if found:
            # TRUNCATE fires no row or statement trigger of the tallies: the counts stay as they were.
            connection.execute(text("TRUNCATE " + ", ".join(f'"{p}"' for p in found)))
        return
    kept = tallies.of_campaign(session, campaign_id)  # SQLite's row triggers count the deletes: put them back
    rows = select(DeliveryRow.id).where(DeliveryRow.campaign_id == campaign_id)
    session.execute(delete(DeliveryEvent).where(or_(DeliveryEvent.campaign_id == campaign_id,
                                                    DeliveryEvent.delivery_id.in_(rows))))
    session.execute(delete(DeliveryRow).where(DeliveryRow.campaign_id == campaign_id))
    tallies.replace(session, campaign_id, kept)
