"""cap slots: the messages counted against each recipient's daily cap across campaigns

``cap_slots`` (delivery, local day → recipient, channel, campaign): one line per message that took a place under
NOTIFIER_DAILY_CAP, written just before its send and removed when it did not go (``notifier.daily_cap``).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "cap_slots",
        sa.Column("delivery_id", big, primary_key=True, autoincrement=False),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("recipient_seq", big, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_cap_slots_recipient_day", "cap_slots", ["recipient_seq", "channel", "day"])
    op.create_index("ix_cap_slots_day", "cap_slots", ["day"])  # maintenance drops the days gone by


def downgrade() -> None:
    op.drop_index("ix_cap_slots_day", table_name="cap_slots")
    op.drop_index("ix_cap_slots_recipient_day", table_name="cap_slots")
    op.drop_table("cap_slots")
