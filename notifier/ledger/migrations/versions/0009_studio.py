"""the studio: campaign versions and their files, audience uploads, seeds and test sends

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaign_versions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.UniqueConstraint("campaign_id", "version", name="uq_campaign_version"),
    )
    op.create_table(
        "campaign_files",
        sa.Column("version_id", BigId, sa.ForeignKey("campaign_versions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("path", sa.String(300), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "audience_uploads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mapping", sa.JSON, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("read_bytes", sa.BigInteger, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("guessed", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("spool_path", sa.Text, nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_table(
        "audience_upload_rejects",
        sa.Column("upload_id", sa.String(36), sa.ForeignKey("audience_uploads.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "campaign_seeds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(64), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(4096), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("locale", sa.String(35)),
    )
    op.create_table(
        "test_sends",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(64), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("send_key", sa.String(400), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("provider_message_id", sa.String(200)),
        sa.Column("error", sa.Text),
        sa.Column("at", When, nullable=False),
    )


def downgrade() -> None:
    for table in ("test_sends", "campaign_seeds", "audience_upload_rejects", "audience_uploads", "campaign_files",
                  "campaign_versions"):
        op.drop_table(table)
