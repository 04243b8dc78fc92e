"""the feedback loop: provider event ids on delivery events, the suppression list, purge marks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("delivery_events") as batch:
        batch.alter_column("delivery_id", existing_type=BigId, nullable=True)
        batch.add_column(sa.Column("provider", sa.String(32), nullable=True))
        batch.add_column(sa.Column("provider_event_id", sa.String(128), nullable=True))
        batch.create_unique_constraint("uq_provider_event", ["provider", "provider_event_id"])
    op.create_table(
        "suppressions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("digest", "scope", name="uq_suppression"),
    )
    op.add_column("recipients", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("campaigns", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("campaigns", "purged_at")
    op.drop_column("recipients", "purged_at")
    op.drop_table("suppressions")
    op.execute("DELETE FROM delivery_events WHERE delivery_id IS NULL")
    with op.batch_alter_table("delivery_events") as batch:
        batch.drop_constraint("uq_provider_event", type_="unique")
        batch.drop_column("provider_event_id")
        batch.drop_column("provider")
        batch.alter_column("delivery_id", existing_type=BigId, nullable=False)
