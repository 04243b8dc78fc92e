"""delivery tallies: the live counts kept as rows change, instead of counted over every row at each look

A campaign's live counts (per send group, locale, channel, state and reason, with how many are uncertain) were one
GROUP BY over all of its delivery rows at every look: 280 ms at a million rows, on a page that polls. The tallies
hold the same counts, kept in the transaction that changes a row, by triggers, so no code path can forget them.

- PostgreSQL: statement-level triggers with transition tables append one delta per key a statement changed (a
  batch of 500 rows adds a few rows, never one per row, and takes no lock another worker waits on);
  ``tallies.roll_up`` (each maintenance pass) folds the deltas into one row per key.
- SQLite: row-level triggers add to one row per key (UPSERT on ``uq_delivery_tally``); one writer at a time, so no
  row is contended.

Key columns hold '' for NULL (a locale not resolved yet, no reason), so the key is one unique value on both.
A later migration that rebuilds ``deliveries`` on SQLite (batch mode copies the table) must create the triggers
again: ``create_triggers`` is importable for that.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ("campaign_id", "group_id", "locale", "channel", "state", "reason")
TRIGGERS = ("deliveries_tally_insert", "deliveries_tally_update", "deliveries_tally_delete")


def _reason(row: str) -> str:
    """A row's reason as the live counts show it: why it was skipped, why it failed, why it waits."""
    return (f"CASE WHEN {row}.state = 'skipped' THEN COALESCE({row}.skip_reason, '') "
            f"WHEN {row}.state = 'failed' OR ({row}.state = 'pending' AND {row}.last_error IS NOT NULL) "
            f"THEN COALESCE({row}.last_error, '') ELSE '' END")


def _key(row: str) -> str:
    return (f"{row}.campaign_id, {row}.group_id, COALESCE({row}.locale, ''), {row}.channel, {row}.state, "
            f"{_reason(row)}")


_COLUMNS = ", ".join(KEY) + ", n, uncertain"
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION notifier_tally_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO delivery_tallies ({_COLUMNS})
    SELECT {_key('r')}, count(*), count(*) FILTER (WHERE r.uncertain) FROM new_rows AS r GROUP BY 1, 2, 3, 4, 5, 6;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO delivery_tallies ({_COLUMNS})
    SELECT {_key('r')}, -count(*), -count(*) FILTER (WHERE r.uncertain) FROM old_rows AS r GROUP BY 1, 2, 3, 4, 5, 6;
  ELSE
    INSERT INTO delivery_tallies ({_COLUMNS})
    SELECT c1, c2, c3, c4, c5, c6, sum(d), sum(u) FROM (
      SELECT {_key('r')}, 1 AS d, r.uncertain::int AS u FROM new_rows AS r
      UNION ALL
      SELECT {_key('r')}, -1, -(r.uncertain::int) FROM old_rows AS r
    ) AS x(c1, c2, c3, c4, c5, c6, d, u)
    GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(d) <> 0 OR sum(u) <> 0;
  END IF;
  RETURN NULL;
END $$"""
_PG_TRIGGERS = (
    "CREATE TRIGGER deliveries_tally_insert AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION notifier_tally_deliveries()",
    "CREATE TRIGGER deliveries_tally_update AFTER UPDATE ON deliveries REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifier_tally_deliveries()",
    "CREATE TRIGGER deliveries_tally_delete AFTER DELETE ON deliveries REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION notifier_tally_deliveries()",
)


def _sqlite_add(row: str, sign: str) -> str:
    return (f"INSERT INTO delivery_tallies ({_COLUMNS}) VALUES ({_key(row)}, {sign}1, {sign}{row}.uncertain) "
            "ON CONFLICT (" + ", ".join(KEY) + ") DO UPDATE SET n = n + excluded.n, "
            "uncertain = uncertain + excluded.uncertain;")


_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in (
    "campaign_id", "group_id", "locale", "channel", "state", "skip_reason", "last_error", "uncertain"))
_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER deliveries_tally_insert AFTER INSERT ON deliveries BEGIN {_sqlite_add('NEW', '+')} END",
    f"CREATE TRIGGER deliveries_tally_update AFTER UPDATE ON deliveries WHEN {_CHANGED} BEGIN "
    f"{_sqlite_add('OLD', '-')} {_sqlite_add('NEW', '+')} END",
    f"CREATE TRIGGER deliveries_tally_delete AFTER DELETE ON deliveries BEGIN {_sqlite_add('OLD', '-')} END",
)


def create_triggers() -> None:
    """The triggers that keep ``delivery_tallies`` in step with ``deliveries``, for this dialect."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for ddl in _PG_TRIGGERS:
            op.execute(ddl)
    else:
        for ddl in _SQLITE_TRIGGERS:
            op.execute(ddl)


def upgrade() -> None:
    op.create_table(
        "delivery_tallies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("uncertain", sa.BigInteger(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_delivery_tallies_campaign", "delivery_tallies", ["campaign_id"])
    else:  # one row per key, added to in place
        op.create_index("uq_delivery_tally", "delivery_tallies", list(KEY), unique=True)
    create_triggers()
    # What is already in the ledger, counted once.
    op.execute(f"INSERT INTO delivery_tallies ({_COLUMNS}) SELECT {_key('d')}, count(*), "
               "sum(CASE WHEN d.uncertain THEN 1 ELSE 0 END) FROM deliveries AS d GROUP BY 1, 2, 3, 4, 5, 6")


def downgrade() -> None:
    for name in TRIGGERS:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON deliveries")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS notifier_tally_deliveries()")
    op.drop_table("delivery_tallies")
