"""results: what became of the sent messages, counted as events and actions arrive

``result_tallies`` (campaign, send group, locale, channel, metric → n), ``result_firsts`` (one key per message and
metric already counted) and ``action_days`` (a deadline's funnel: audience members who first acted, per UTC day).
``notifier.results`` keeps them in the transaction that stores an event or an action; the Results page and
``notifier campaign report`` read them, never the events. Events and actions already in the ledger are counted
here once (``results.rebuild``).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "result_tallies",
        sa.Column("id", big, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("group_id", sa.BigInteger, nullable=False),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(80), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("campaign_id", "group_id", "locale", "channel", "metric", name="uq_result_tally"),
    )
    op.create_table(
        "result_firsts",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("delivery_id", sa.BigInteger, primary_key=True),
        sa.Column("metric", sa.String(80), primary_key=True),
    )
    op.create_table(
        "action_days",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("deadline_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("acted", sa.BigInteger, nullable=False),
        sa.Column("late", sa.BigInteger, nullable=False),
    )
    from sqlalchemy.orm import Session

    from notifier import results

    results.rebuild(Session(bind=op.get_bind()))


def downgrade() -> None:
    op.drop_table("action_days")
    op.drop_table("result_firsts")
    op.drop_table("result_tallies")
