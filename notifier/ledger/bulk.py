"""Bulk writes of an audience import on PostgreSQL: ``COPY`` into a staging table, then one upsert per batch.

A thousand-row batch costs a few statements instead of one per row (measured on 100,000 recipients: the ORM
upsert's executemany spent 80% of the import in the driver's per-row round trips). SQLite keeps the plain
executemany, which its in-process driver runs fast. Only the ``COPY`` goes around SQLAlchemy; its errors are
wrapped as SQLAlchemy's, like every other statement's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

RECIPIENT_COLUMNS = ("id", "email", "name", "locale", "timezone", "timezone_guessed", "country", "attributes",
                     "joined_at", "import_run", "import_line", "updated_at")


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``COPY table (columns) FROM STDIN`` with psycopg, in the session's transaction."""
    import psycopg

    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    try:
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def upsert_recipients(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert or update ``rows`` by id; a row whose ``joined_at`` is None keeps the stored one (a new recipient
    gets its ``updated_at``). Returns id → seq of every row."""
    cols = ", ".join(RECIPIENT_COLUMNS)
    session.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS import_recipients ON COMMIT DELETE ROWS AS "
                         f"SELECT {cols} FROM recipients WITH NO DATA"))
    copy_rows(session, "import_recipients", RECIPIENT_COLUMNS,
              (tuple(json.dumps(row[c], ensure_ascii=False, separators=(",", ":")) if c == "attributes" else row[c]
                     for c in RECIPIENT_COLUMNS) for row in rows))
    seqs: dict[str, int] = {}
    for has_joined in {row["joined_at"] is not None for row in rows}:
        updated = ", ".join(f"{c} = EXCLUDED.{c}" for c in RECIPIENT_COLUMNS
                            if c != "id" and (has_joined or c != "joined_at"))
        result = session.execute(text(
            f"INSERT INTO recipients ({cols}) "
            f"SELECT {cols.replace('joined_at', 'COALESCE(joined_at, updated_at)')} FROM import_recipients "
            f"WHERE joined_at IS {'NOT ' if has_joined else ''}NULL "
            f"ON CONFLICT (id) DO UPDATE SET {updated} RETURNING id, seq"))
        seqs.update((rid, seq) for rid, seq in result)
    session.execute(text("TRUNCATE import_recipients"))
    return seqs


def insert_tokens(session: Session, tokens: Sequence[tuple[int, str]]) -> None:
    """Add (recipient seq, token) pairs as active tokens; one already stored keeps its state."""
    session.execute(text("CREATE TEMP TABLE IF NOT EXISTS import_tokens (recipient_seq bigint, token text) "
                         "ON COMMIT DELETE ROWS"))
    copy_rows(session, "import_tokens", ("recipient_seq", "token"), tokens)
    session.execute(text("INSERT INTO push_tokens (recipient_seq, token, active) SELECT recipient_seq, token, true "
                         "FROM import_tokens ON CONFLICT (recipient_seq, token) DO NOTHING"))
    session.execute(text("TRUNCATE import_tokens"))
