"""compact delivery rows: the copy a row was sent with is a number, and the unique key holds no campaign id

Two parts of every delivery row were text the ledger already had elsewhere:
- the fingerprint of the copy it was sent with, 65 bytes in every sent row: now a number (4 bytes) naming a row
  of ``content_versions``, which holds each fingerprint once;
- the campaign id in the unique key (campaign, group, recipient, channel), about 25 bytes in every index entry:
  a send group belongs to one campaign, so (group, recipient, channel) is the same rule.

On SQLite the table is rebuilt (batch mode): its partial indexes and the tally triggers of 0011 are made again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")
LEASED = sa.text("lease_until IS NOT NULL")
NEW_KEY = ["group_id", "recipient_seq", "channel"]
OLD_KEY = ["campaign_id", *NEW_KEY]


def _tallies() -> ModuleType:
    """Migration 0011, for its triggers (a SQLite rebuild drops a table's triggers with the old table)."""
    path = Path(__file__).with_name("0011_delivery_tallies.py")
    spec = importlib.util.spec_from_file_location("notifier_migration_0011", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _rebuild_sqlite(change: str) -> None:
    """Rebuild ``deliveries`` on SQLite with ``change`` applied ('up' or 'down'), keeping indexes and triggers."""
    op.drop_index("ix_deliveries_leased", table_name="deliveries")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_delivery", type_="unique")
        if change == "up":
            batch.drop_column("content_fingerprint")
            batch.create_unique_constraint("uq_delivery", NEW_KEY)
        else:
            batch.drop_column("content_version")
            batch.create_unique_constraint("uq_delivery", OLD_KEY)
    op.create_index("ix_deliveries_due", "deliveries", ["channel", "next_attempt_at", "id"], sqlite_where=PENDING)
    op.create_index("ix_deliveries_leased", "deliveries", ["lease_until"], sqlite_where=LEASED)
    _tallies().create_triggers()


def upgrade() -> None:
    op.create_table(
        "content_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.UniqueConstraint("fingerprint", name="uq_content_version"),
    )
    op.execute("INSERT INTO content_versions (fingerprint) SELECT fp FROM ("
               "SELECT content_fingerprint AS fp FROM campaigns UNION "
               "SELECT content_fingerprint FROM deliveries) AS f WHERE fp IS NOT NULL ORDER BY fp")
    op.add_column("deliveries", sa.Column("content_version", sa.Integer(), nullable=True))
    if _postgresql():
        # No count changes: the tally trigger would only read the whole table twice to find that out.
        op.execute("ALTER TABLE deliveries DISABLE TRIGGER deliveries_tally_update")
        op.execute("UPDATE deliveries AS d SET content_version = v.id FROM content_versions AS v "
                   "WHERE v.fingerprint = d.content_fingerprint")
        op.execute("ALTER TABLE deliveries ENABLE TRIGGER deliveries_tally_update")
        op.drop_column("deliveries", "content_fingerprint")
        op.drop_constraint("uq_delivery", "deliveries", type_="unique")
        op.create_unique_constraint("uq_delivery", "deliveries", NEW_KEY)
    else:
        op.execute("UPDATE deliveries SET content_version = (SELECT v.id FROM content_versions AS v "
                   "WHERE v.fingerprint = deliveries.content_fingerprint) WHERE content_fingerprint IS NOT NULL")
        _rebuild_sqlite("up")


def downgrade() -> None:
    op.add_column("deliveries", sa.Column("content_fingerprint", sa.String(64), nullable=True))
    if _postgresql():
        op.execute("ALTER TABLE deliveries DISABLE TRIGGER deliveries_tally_update")
        op.execute("UPDATE deliveries AS d SET content_fingerprint = v.fingerprint FROM content_versions AS v "
                   "WHERE v.id = d.content_version")
        op.execute("ALTER TABLE deliveries ENABLE TRIGGER deliveries_tally_update")
        op.drop_column("deliveries", "content_version")
        op.drop_constraint("uq_delivery", "deliveries", type_="unique")
        op.create_unique_constraint("uq_delivery", "deliveries", OLD_KEY)
    else:
        op.execute("UPDATE deliveries SET content_fingerprint = (SELECT v.fingerprint FROM content_versions AS v "
                   "WHERE v.id = deliveries.content_version) WHERE content_version IS NOT NULL")
        _rebuild_sqlite("down")
    op.drop_table("content_versions")
