"""One batch of validated rows into the ledger, in one transaction: duplicates of this run set aside, the rest
upserted with their push tokens.

:class:`BatchStore` touches only the database and returns what each batch did (:class:`StoredBatch`); the caller
counts and tells. PostgreSQL takes a batch through a staging table (:mod:`notifier.ledger.bulk`); SQLite through
the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience._rows import RecipientRecord, Rejection
from notifier.ledger import bulk
from notifier.ledger.models import PushToken, Recipient
from notifier.ledger.queries import dialect_insert

Runs = dict[str, tuple[str | None, int | None]]  # id → the import run and line that last wrote it


@dataclass(frozen=True)
class StoredBatch:
    """What one committed batch did, for the report; ``duplicates`` are its rows rejected for an id seen before."""

    accepted: int
    inserted: int
    guessed_timezones: int
    cleaned_names: int
    through: int  # the batch's last line: every accepted row up to it is now committed
    duplicates: tuple[Rejection, ...]


class BatchStore:
    """Stores the batches of one import run, each in a transaction of its own, on one connection held from the first
    batch to :meth:`close` (a connection checked out per batch costs a ping and, on PostgreSQL, the staging table)."""

    def __init__(self, sessions: sessionmaker[Session], file: str, run: str, now: datetime) -> None:
        self._sessions, self._file, self._run, self._now = sessions, file, run, now
        self._connection: Connection | None = None
        self._stager = bulk.Stager(run, now)
        with sessions() as probe:  # asks the engine, not the server; once, for the dialect and for _connect
            self._engine = probe.get_bind()
            self.postgres = bulk.is_postgres(probe)

    def __call__(self, records: Sequence[RecipientRecord]) -> StoredBatch:
        """One transaction: drop this run's duplicates, upsert the rest, replace their push tokens."""
        if self._connection is None:
            self._connection = self._connect()
        duplicates: list[Rejection] = []
        with self._sessions(bind=self._connection) as session, session.begin():
            ids = list({r.id for r in records})
            existing = bulk.stored_runs(session, ids) if self.postgres else _stored_runs(session, ids)
            fresh = _drop_duplicates(self._file, records, existing, self._run, duplicates)
            if fresh and self.postgres:
                lines = (self._stager.line(r.id, r.email, r.name, r.locale, r.timezone, r.timezone_guessed, r.country,
                                           r.attributes, r.joined_at, r.line, r.push_tokens) for r in fresh)
                bulk.store_recipients(session, lines, joined={r.joined_at is not None for r in fresh},
                                      replace_tokens=any(r.id in existing for r in fresh),
                                      with_tokens=any(r.push_tokens for r in fresh))
            elif fresh:
                seqs = _upsert_recipients(session, fresh, self._run, self._now)
                _replace_tokens(session, [(seqs[r.id], r.push_tokens) for r in fresh])
        inserted = sum(1 for r in fresh if r.id not in existing)
        return StoredBatch(accepted=len(fresh), inserted=inserted,
                           guessed_timezones=sum(1 for r in fresh if r.timezone_guessed),
                           cleaned_names=sum(1 for r in fresh if r.name_cleaned), through=records[-1].line,
                           duplicates=tuple(duplicates))

    def _connect(self) -> Connection:
        connection = self._engine.connect()
        try:
            if self.postgres:
                bulk.create_staging(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        """Give the connection back to the pool."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _stored_runs(session: Session, ids: Iterable[str]) -> Runs:
    """For the ids already in the ledger: the import run and line that last wrote them."""
    query = select(Recipient.id, Recipient.import_run, Recipient.import_line).where(Recipient.id.in_(list(ids)))
    return {rid: (run, line) for rid, run, line in session.execute(query)}


def _drop_duplicates(file: str, batch: Sequence[RecipientRecord], existing: Runs, run: str,
                     duplicates: list[Rejection]) -> list[RecipientRecord]:
    """Rows whose id this run has not stored yet, in an earlier batch or earlier in this one."""
    first: dict[str, int] = {}
    fresh = []
    for record in batch:
        stored_run, stored_line = existing.get(record.id, (None, None))
        first_line = stored_line if stored_run == run else first.get(record.id)
        if first_line is None:
            first[record.id] = record.line
            fresh.append(record)
            continue
        reason = f"duplicate id {record.id} (first on line {first_line})"
        duplicates.append(Rejection(file, record.line, record.id, "id", reason))
    return fresh


def _upsert_recipients(session: Session, records: list[RecipientRecord], run: str, now: datetime) -> dict[str, int]:
    """Insert or update by id; an update keeps the stored joined_at unless the file gives one. Returns id → seq."""
    rows = [{"id": r.id, "email": r.email, "name": r.name, "locale": r.locale, "timezone": r.timezone,
             "timezone_guessed": r.timezone_guessed, "country": r.country, "attributes": r.attributes,
             "joined_at": r.joined_at or now, "import_run": run, "import_line": r.line, "updated_at": now}
            for r in records]
    for keep_joined in (False, True):
        part = [row for row, r in zip(rows, records, strict=True) if (r.joined_at is None) == keep_joined]
        if not part:
            continue
        stmt = dialect_insert(session, Recipient)
        updated = [key for key in part[0] if key != "id" and not (keep_joined and key == "joined_at")]
        stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={k: stmt.excluded[k] for k in updated})
        session.execute(stmt, part)
    query = select(Recipient.id, Recipient.seq).where(Recipient.id.in_([r.id for r in records]))
    return {rid: seq for rid, seq in session.execute(query)}


def _replace_tokens(session: Session, wanted: list[tuple[int, tuple[str, ...]]]) -> None:
    """Each recipient's tokens become the file's set; a token already stored keeps its state (deactivated stays)."""
    want = {(seq, token) for seq, tokens in wanted for token in tokens}
    seqs = [seq for seq, _ in wanted]
    query = select(PushToken.id, PushToken.recipient_seq, PushToken.token).where(PushToken.recipient_seq.in_(seqs))
    have: set[tuple[int, str]] = set()
    stale: list[int] = []
    for token_id, seq, token in session.execute(query):
        have.add((seq, token))
        if (seq, token) not in want:
            stale.append(token_id)
    if stale:
        stmt = delete(PushToken).where(PushToken.id.in_(stale))
        session.execute(stmt, execution_options={"synchronize_session": False})
    new = [{"recipient_seq": seq, "token": token, "active": True}
           for seq, tokens in wanted for token in tokens if (seq, token) not in have]
    if new:
        stmt = dialect_insert(session, PushToken).on_conflict_do_nothing()  # the key differs by database (0013)
        session.execute(stmt, new)
