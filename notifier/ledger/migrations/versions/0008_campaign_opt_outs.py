"""opt-outs of one campaign: a suppression's scope may name a campaign (campaign:<id>), so it widens to 80

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.alter_column("scope", existing_type=sa.String(16), type_=sa.String(80), existing_nullable=False)


def downgrade() -> None:
    # The older code knows no campaign scope (and the column cannot hold one): those opt-outs go.
    op.execute("DELETE FROM suppressions WHERE scope LIKE 'campaign:%'")
    with op.batch_alter_table("suppressions") as batch:
        batch.alter_column("scope", existing_type=sa.String(80), type_=sa.String(16), existing_nullable=False)
