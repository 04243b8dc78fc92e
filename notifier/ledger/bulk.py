"""Bulk writes of an audience import on PostgreSQL: ``COPY`` into a staging table, then a few set-based statements.

A batch costs the same handful of statements whatever its size (measured on 100,000 recipients: the ORM upsert's
executemany spent 80% of the import in the driver's per-row round trips). The rows are formatted as ``COPY`` text
by :class:`Stager` (what they share, once per import); their push tokens travel with them as a JSON array and are
inserted by looking up the recipients they became, so no seq makes a round trip through Python. Every lookup goes
through an index whatever the planner thinks of the tables' sizes: its statistics lag behind an import, and it
knows nothing of the staging table, which is never analyzed. SQLite keeps the plain executemany, which its
in-process driver runs fast. Only the ``COPY`` goes around SQLAlchemy; its errors are wrapped as SQLAlchemy's,
like every other statement's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

RECIPIENT_COLUMNS = ("id", "email", "name", "locale", "timezone", "timezone_guessed", "country", "attributes",
                     "joined_at", "import_run", "import_line", "updated_at")
# A staged row: what Stager.line takes, then what every row of an import shares.
_ROW_COLUMNS = ("id", "email", "name", "locale", "timezone", "timezone_guessed", "country", "attributes",
                "joined_at", "import_line", "push_tokens")
_STAGED = (*_ROW_COLUMNS, "import_run", "updated_at")
_COLS = ", ".join(RECIPIENT_COLUMNS)
# Emptied at every commit; each store_recipients call is one transaction of its own.
_STAGING = (f"CREATE TEMP TABLE IF NOT EXISTS import_batch ON COMMIT DELETE ROWS AS "
            f"SELECT {_COLS}, NULL::json AS push_tokens FROM recipients WITH NO DATA")
# One index probe per id, whatever the planner guesses: "WHERE id = ANY(:ids)" scans the whole table while it is
# about 100,000 to 300,000 rows (measured at 150,000: 14 ms a batch, against 1 ms); OFFSET 0 keeps the subquery
# from being merged into a join, so each probe stays an index scan.
_STORED_RUNS = ("SELECT r.id, r.import_run, r.import_line FROM unnest(CAST(:ids AS text[])) AS wanted(id) "
                "CROSS JOIN LATERAL (SELECT id, import_run, import_line FROM recipients "
                "WHERE recipients.id = wanted.id OFFSET 0) AS r")
# Tokens a re-imported recipient has in the ledger but not in the file (kept ones keep their state). Found per staged
# row through indexes, then deleted by id from an array whose length the planner does not know: written as a join,
# the planner (with statistics that lag behind an import) hashed all of push_tokens, 23 ms a batch at 112,000
# tokens against 4.5 ms.
_DROP_STALE_TOKENS = ("DELETE FROM push_tokens WHERE id = ANY(ARRAY("
                      "SELECT stale.id FROM import_batch t CROSS JOIN LATERAL ("
                      "SELECT p.id FROM push_tokens p "
                      "WHERE p.recipient_seq = (SELECT seq FROM recipients r WHERE r.id = t.id) "
                      "AND p.token NOT IN (SELECT json_array_elements_text(t.push_tokens)) OFFSET 0) AS stale))")
# Each seq is looked up by a subquery through the unique index on id, never a join whose plan depends on the
# staging table's size (written as a join, this statement grew with the ledger: 15 ms a batch at 100,000
# recipients, 117 ms at 900,000).
_ADD_TOKENS = ("INSERT INTO push_tokens (recipient_seq, token, active) "
               "SELECT (SELECT seq FROM recipients r WHERE r.id = t.id), token, true FROM import_batch t "
               "CROSS JOIN LATERAL json_array_elements_text(t.push_tokens) AS token "
               "WHERE json_array_length(t.push_tokens) > 0 ON CONFLICT DO NOTHING")  # the digest key (0013)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def copy_text(session: Session, table: str, columns: Sequence[str], data: str) -> None:
    """``COPY table (columns) FROM STDIN`` of ``data`` (lines of ``COPY`` text), in the session's transaction."""
    import psycopg

    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    try:
        connection = session.connection().connection.driver_connection
        with connection.cursor() as cur, cur.copy(statement) as copy:  # type: ignore[union-attr]
            copy.write(data.encode(connection.info.encoding))  # type: ignore[union-attr]
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def create_staging(connection: Connection) -> None:
    """The connection's staging table for store_recipients (temporary: each connection has its own, kept empty)."""
    with connection.begin():
        connection.execute(text(_STAGING))


def stored_runs(session: Session, ids: list[str]) -> dict[str, tuple[str | None, int | None]]:
    """For the ids already in the ledger: the import run and line that last wrote them (one array parameter)."""
    return {rid: (run, line) for rid, run, line in session.execute(text(_STORED_RUNS), {"ids": ids})}


class Stager:
    """The rows of one import as lines of ``COPY`` text for store_recipients; what they share is formatted once.

    Text is escaped as ``COPY`` needs it (backslash, tab, newline, carriage return), None is ``\\N``, attributes
    and push tokens are JSON.
    """

    def __init__(self, run: str, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use aware UTC datetimes")
        self._shared = f"{_text(run)}\t{now.isoformat()}\n"

    def line(self, rid: str, email: str | None, name: str | None, locale: str | None, timezone: str,
             timezone_guessed: bool, country: str | None, attributes: dict[str, Any], joined_at: datetime | None,
             import_line: int, push_tokens: Sequence[str]) -> str:
        """One row; every row of the import shares its run and time (``import_run``, ``updated_at``)."""
        if joined_at is not None and joined_at.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use aware UTC datetimes")
        return (f"{_text(rid)}\t{_maybe(email)}\t{_maybe(name)}\t{_maybe(locale)}\t{_text(timezone)}\t"
                f"{'t' if timezone_guessed else 'f'}\t{_maybe(country)}\t{_text(_JSON.encode(attributes))}\t"
                f"{_NULL if joined_at is None else joined_at.isoformat()}\t{import_line:d}\t"
                f"{_text(_JSON.encode(push_tokens))}\t{self._shared}")


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # made once: json.dumps makes one per call
_NULL = "\\N"
_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _text(value: str) -> str:
    if "\\" in value or not value.isprintable():  # both quick; only then look for what needs escaping
        return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], value)
    return value


def _maybe(value: str | None) -> str:
    return _NULL if value is None else _text(value)


def store_recipients(session: Session, lines: Iterable[str], *, joined: set[bool], replace_tokens: bool,
                     with_tokens: bool) -> None:
    """Insert or update the rows of ``lines`` (made by :class:`Stager`) by id, with their push tokens.

    A row whose ``joined_at`` is None keeps the stored one (a new recipient gets its ``updated_at``); ``joined``
    says which kinds the rows have. ``replace_tokens`` (some rows are already stored) first deletes the tokens
    the file no longer lists; ``with_tokens`` says whether any row has one.
    """
    copy_text(session, "import_batch", _STAGED, "".join(lines))
    if replace_tokens:
        session.execute(text(_DROP_STALE_TOKENS))
    for has_joined in sorted(joined):
        updated = ", ".join(f"{c} = EXCLUDED.{c}" for c in RECIPIENT_COLUMNS
                            if c != "id" and (has_joined or c != "joined_at"))
        session.execute(text(
            f"INSERT INTO recipients ({_COLS}) "
            f"SELECT {_COLS.replace('joined_at', 'COALESCE(joined_at, updated_at)')} FROM import_batch "
            f"WHERE joined_at IS {'NOT ' if has_joined else ''}NULL ON CONFLICT (id) DO UPDATE SET {updated}"))
    if with_tokens:
        session.execute(text(_ADD_TOKENS))
