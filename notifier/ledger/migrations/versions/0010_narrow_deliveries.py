"""narrow delivery rows: the send key lives on the send group only; the due and lease indexes hold open rows only

A delivery row is written three times (created, claimed, completed): every index on it is written each time the
row's new version matches it. The send key (a text of up to 400 characters, in the row and in the unique index)
is read from its group; the unique key is (campaign, group, recipient, channel); the due index holds pending rows
(in claim order: channel, due time, id) and the lease index the rows under a lease (queued or sending), so a
completed row leaves both and a claim or a completion writes fewer index entries (bench/RESULTS.md).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")
LEASED = sa.text("lease_until IS NOT NULL")
COUNTED = "deliveries_counted"


# The foreign keys of a delivery row (its campaign, group and recipient): checked for every row written, they were
# half of what materializing a wave cost (measured at 100,000 recipients: 7.1 s with them, 3.7 s without). The
# ledger writes these rows only from the rows they name and deletes none of those, so they go.
FOREIGN_KEYS = (("campaign_id", "campaigns", "id"), ("group_id", "send_groups", "id"),
                ("recipient_seq", "recipients", "seq"))
# How SQLite's unnamed constraints are named for batch mode to find them (PostgreSQL named them <table>_<col>_fkey).
CONVENTION = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _fk_name(column: str, table: str) -> str:
    return f"deliveries_{column}_fkey" if op.get_bind().dialect.name == "postgresql" else \
        f"fk_deliveries_{column}_{table}"


def upgrade() -> None:
    with op.batch_alter_table("deliveries", naming_convention=CONVENTION) as batch:
        for column, table, _ in FOREIGN_KEYS:
            batch.drop_constraint(_fk_name(column, table), type_="foreignkey")
        batch.drop_index("ix_deliveries_due")
        batch.drop_index("ix_deliveries_group")
        batch.drop_constraint("uq_delivery", type_="unique")
        batch.drop_column("send_key")
        batch.create_unique_constraint("uq_delivery", ["campaign_id", "group_id", "recipient_seq", "channel"])
    op.create_index("ix_deliveries_due", "deliveries", ["channel", "next_attempt_at", "id"], postgresql_where=PENDING,
                    sqlite_where=PENDING)
    op.create_index("ix_deliveries_leased", "deliveries", ["lease_until"], postgresql_where=LEASED,
                    sqlite_where=LEASED)
    if op.get_bind().dialect.name == "postgresql":
        # The live counts group a campaign's rows by these: hundreds of groups, which without this the planner takes
        # for the product of each column's distinct values and aggregates alone instead of in parallel (measured at
        # 1,050,000 rows: 350 ms against 254).
        op.execute(f"CREATE STATISTICS {COUNTED} (ndistinct) ON group_id, locale, channel, state FROM deliveries")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP STATISTICS IF EXISTS {COUNTED}")
    op.drop_index("ix_deliveries_leased", table_name="deliveries")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("send_key", sa.String(400), nullable=True))
    op.execute("UPDATE deliveries SET send_key = (SELECT send_key FROM send_groups WHERE send_groups.id = "
               "deliveries.group_id)")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("send_key", nullable=False)
        batch.drop_constraint("uq_delivery", type_="unique")
        batch.create_unique_constraint("uq_delivery", ["campaign_id", "send_key", "recipient_seq", "channel"])
        batch.create_index("ix_deliveries_group", ["group_id", "state"])
        batch.create_index("ix_deliveries_due", ["state", "channel", "next_attempt_at"])
        for column, table, key in FOREIGN_KEYS:
            batch.create_foreign_key(_fk_name(column, table), table, [column], [key], ondelete="CASCADE")
