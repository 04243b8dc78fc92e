"""dashboard sessions logged out before they expired, shared by every serving process

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ended_sessions",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ended_sessions_until", "ended_sessions", ["until"])


def downgrade() -> None:
    op.drop_index("ix_ended_sessions_until", table_name="ended_sessions")
    op.drop_table("ended_sessions")
