"""partitions by campaign: a campaign's delivery rows and events in tables of their own (PostgreSQL)

On PostgreSQL ``deliveries`` and ``delivery_events`` become ``PARTITION BY LIST (campaign_id)``, one partition each
per campaign (``ledger.partitions``: scheduling makes them), so a campaign's counts and report read only its rows,
and its rows can be removed at once. The tables are made anew and the rows copied (a partitioned table cannot be
made from a plain one in place); the tallies (0011) already count the rows, so their triggers come back after the
copy.

- ``deliveries``: the parent indexes ``id`` (unkeyed: one sequence gives it) and keeps the partial due and lease
  indexes; the unique key (group, recipient, channel) is each partition's own.
- ``delivery_events`` gains ``campaign_id`` (both databases; '' for an event that names no delivery of ours, kept in
  ``delivery_events_unmatched``); its unique key on (provider, provider_event_id) is each partition's own; its
  foreign key to ``deliveries`` goes on PostgreSQL (a key to a partitioned table would have to carry the campaign,
  and nothing deletes single delivery rows: a campaign's rows and events go together).

SQLite keeps its plain tables and only gains the column.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from notifier.ledger import partitions

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_tallies = importlib.import_module("notifier.ledger.migrations.versions.0011_delivery_tallies")

_DELIVERY_INDEXES = (
    "CREATE INDEX ix_deliveries_due ON {t} (channel, next_attempt_at, id) WHERE state = 'pending'",
    "CREATE INDEX ix_deliveries_leased ON {t} (lease_until) WHERE lease_until IS NOT NULL",
    "CREATE STATISTICS deliveries_counted (ndistinct) ON group_id, channel, state, locale FROM {t}",
)


def _drop_tally_triggers(table: str) -> None:
    for trigger in _tallies.TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")


def _drop_delivery_indexes() -> None:
    op.execute("DROP INDEX ix_deliveries_due")
    op.execute("DROP INDEX ix_deliveries_leased")
    op.execute("DROP STATISTICS deliveries_counted")


def upgrade() -> None:
    op.add_column("delivery_events", sa.Column("campaign_id", sa.String(64), nullable=False, server_default=""))
    op.execute("UPDATE delivery_events SET campaign_id = COALESCE((SELECT d.campaign_id FROM deliveries AS d "
               "WHERE d.id = delivery_events.delivery_id), '')")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE delivery_events DROP CONSTRAINT delivery_events_delivery_id_fkey")
    _drop_tally_triggers("deliveries")
    _drop_delivery_indexes()
    op.execute("ALTER TABLE deliveries RENAME TO deliveries_0013")
    op.execute("ALTER TABLE deliveries_0013 DROP CONSTRAINT deliveries_pkey, DROP CONSTRAINT uq_delivery")
    op.execute("CREATE TABLE deliveries (LIKE deliveries_0013 INCLUDING DEFAULTS) PARTITION BY LIST (campaign_id)")
    op.execute("ALTER SEQUENCE deliveries_id_seq OWNED BY deliveries.id")
    op.execute("CREATE INDEX ix_deliveries_id ON deliveries (id)")
    for ddl in _DELIVERY_INDEXES:
        op.execute(ddl.format(t="deliveries"))

    op.execute("ALTER TABLE delivery_events RENAME TO delivery_events_0013")
    op.execute("ALTER TABLE delivery_events_0013 DROP CONSTRAINT delivery_events_pkey, "
               "DROP CONSTRAINT uq_provider_event")
    op.execute("DROP INDEX ix_delivery_events_delivery_id")
    op.execute("CREATE TABLE delivery_events (LIKE delivery_events_0013 INCLUDING DEFAULTS) "
               "PARTITION BY LIST (campaign_id)")
    op.execute("ALTER SEQUENCE delivery_events_id_seq OWNED BY delivery_events.id")
    op.execute("CREATE INDEX ix_delivery_events_id ON delivery_events (id)")
    op.execute("CREATE INDEX ix_delivery_events_delivery_id ON delivery_events (delivery_id)")
    op.execute(f"CREATE TABLE {partitions.UNMATCHED} PARTITION OF delivery_events FOR VALUES IN ('')")
    op.execute(f"ALTER TABLE {partitions.UNMATCHED} ADD CONSTRAINT {partitions.UNMATCHED}_key "
               "UNIQUE (provider, provider_event_id)")

    conn = op.get_bind()
    for (campaign_id,) in conn.execute(sa.text(
            "SELECT id FROM campaigns UNION SELECT DISTINCT campaign_id FROM deliveries_0013 "
            "UNION SELECT DISTINCT campaign_id FROM delivery_events_0013 WHERE campaign_id <> '' ORDER BY 1")):
        partitions.create(conn, campaign_id)
    op.execute("INSERT INTO deliveries SELECT * FROM deliveries_0013")
    op.execute("INSERT INTO delivery_events SELECT * FROM delivery_events_0013")
    op.execute("DROP TABLE deliveries_0013, delivery_events_0013")
    _tallies.create_triggers()
    op.execute("ANALYZE deliveries")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _drop_tally_triggers("deliveries")
        _drop_delivery_indexes()
        op.execute("DROP INDEX ix_deliveries_id")
        op.execute("ALTER TABLE deliveries RENAME TO deliveries_0014")
        op.execute("CREATE TABLE deliveries (LIKE deliveries_0014 INCLUDING DEFAULTS)")
        op.execute("ALTER SEQUENCE deliveries_id_seq OWNED BY deliveries.id")
        op.execute("INSERT INTO deliveries SELECT * FROM deliveries_0014")
        op.execute("ALTER TABLE deliveries ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id), "
                   "ADD CONSTRAINT uq_delivery UNIQUE (group_id, recipient_seq, channel)")
        for ddl in _DELIVERY_INDEXES:
            op.execute(ddl.format(t="deliveries"))

        op.execute("DROP INDEX ix_delivery_events_id")
        op.execute("DROP INDEX ix_delivery_events_delivery_id")
        op.execute("ALTER TABLE delivery_events RENAME TO delivery_events_0014")
        op.execute("CREATE TABLE delivery_events (LIKE delivery_events_0014 INCLUDING DEFAULTS)")
        op.execute("ALTER SEQUENCE delivery_events_id_seq OWNED BY delivery_events.id")
        op.execute("INSERT INTO delivery_events SELECT * FROM delivery_events_0014")
        op.execute("ALTER TABLE delivery_events ADD CONSTRAINT delivery_events_pkey PRIMARY KEY (id), "
                   "ADD CONSTRAINT uq_provider_event UNIQUE (provider, provider_event_id), "
                   "ADD CONSTRAINT delivery_events_delivery_id_fkey FOREIGN KEY (delivery_id) "
                   "REFERENCES deliveries (id) ON DELETE CASCADE")
        op.execute("CREATE INDEX ix_delivery_events_delivery_id ON delivery_events (delivery_id)")
        op.execute("DROP TABLE deliveries_0014, delivery_events_0014")
        _tallies.create_triggers()
    with op.batch_alter_table("delivery_events") as batch:
        batch.drop_column("campaign_id")
