"""content fingerprint: the approved copy per campaign, and the copy each message was sent with

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("content_fingerprint", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("content_manifest", sa.JSON(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("content_fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("content_fingerprint")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("content_manifest")
        batch.drop_column("content_fingerprint")
