"""The audit log: who did what to which campaign, when and from where, one line per action, in the transaction of
the action itself (a rolled-back action leaves no line; a recorded one always has its line).

Lines are written when the action's transaction commits, after everything else it did (:func:`record`).

Who is acting is set once where a request or a command starts (:func:`acting`): the dashboard and the API set
the person logged in (or whose token it is), the CLI sets ``cli:<os user>``, anything else is ``system``. The
functions that change things (``queries.schedule``, ``set_state``, ``retry_failed``, ``purge``, the studio's
saves, approvals, the team's changes) call :func:`record`, so an action is written once whichever way it came.

The log is append-only: the application has no update or delete of it, and triggers (migration 0016) refuse both
on either database. Each line's hash covers the line before it and ``audit_head`` holds the last one, so
:func:`verify` finds a line removed, inserted or changed by someone who went around the triggers.
"""

from __future__ import annotations

import contextvars
import getpass
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session

from notifier.ledger.models import AuditHead, AuditLine

GENESIS = "0" * 64
MAX_DETAIL = 60_000  # characters of a line's JSON detail (an edit's diff is cut to fit)
ACTIONS = ("login", "login_failed", "logout", "create", "edit", "approve", "schedule", "pause", "resume", "cancel",
           "retry", "purge", "suppress", "unsuppress", "invite", "accept", "role", "disable", "enable",
           "token_create", "token_revoke", "person_add", "password", "reset", "import")


@dataclass(frozen=True)
class Actor:
    """Who is acting: ``person:<id>`` with their email, ``cli:<os user>``, ``api-token`` or ``system``."""

    id: str
    name: str
    address: str = "-"
    person_id: int | None = None


SYSTEM = Actor("system", "system")
_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("notifier_actor", default=None)


def current() -> Actor:
    return _current.get() or SYSTEM


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """Everything recorded inside is done by ``actor`` (the context is copied into worker threads)."""
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def command_line() -> Actor:
    """The operator of a CLI command: whoever the shell runs as (they hold the database's credentials)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    return Actor(f"cli:{user}"[:64], f"cli:{user}"[:254])


def _line_hash(prev: str, seq: int, at: datetime, actor: str, actor_name: str, address: str, action: str,
               campaign_id: str | None, detail: str) -> str:
    doc = json.dumps([seq, at.astimezone(UTC).isoformat(timespec="microseconds"), actor, actor_name, address, action,
                      campaign_id, detail], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev}\n{doc}".encode()).hexdigest()


def _detail(detail: dict[str, Any] | None) -> str:
    text = json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    if len(text) <= MAX_DETAIL:
        return text
    cut = {k: v for k, v in (detail or {}).items() if k != "diff"}
    diff = str((detail or {}).get("diff", ""))
    cut["diff"] = diff[:MAX_DETAIL - len(json.dumps(cut, default=str)) - 200] + "\n[... cut]"
    return json.dumps(cut, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def record(session: Session, action: str, *, campaign_id: str | None = None, detail: dict[str, Any] | None = None,
           at: datetime | None = None, actor: Actor | None = None) -> None:
    """Add one line to ``session``'s transaction. It is written when the transaction commits, last: the chain's head
    is locked only for the moment of the commit, never while the action itself still takes other locks (a cancel
    that waits on rows a retry holds, while the retry waits on the head, would be a deadlock)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    who = actor or current()
    session.info.setdefault(_PENDING, []).append(
        (who, action, campaign_id, _detail(detail), (at or datetime.now(UTC)).astimezone(UTC)))


_PENDING = "notifier_audit_lines"


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Number and chain the transaction's lines, in the order they were recorded, under the head's lock (three
    statements, whatever the number of lines)."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    lock = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    head = session.execute(lock).first()
    if head is None:  # a ledger emptied by TRUNCATE (tests): the chain starts again
        session.execute(_insert_head(session))
        head = session.execute(lock).one()
    seq, prev = head
    rows = []
    for who, action, campaign_id, body, when in pending:
        seq += 1
        digest = _line_hash(prev, seq, when, who.id, who.name, who.address, action, campaign_id, body)
        rows.append({"seq": seq, "at": when, "actor": who.id, "actor_name": who.name, "address": who.address,
                     "action": action, "campaign_id": campaign_id, "detail": body, "prev": prev, "hash": digest})
        prev = digest
    session.execute(insert(AuditLine), rows)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _insert_head(session: Session) -> Any:
    """The head row, when a ledger emptied by TRUNCATE has none (never in a migrated, running ledger)."""
    from notifier.ledger.queries import dialect_insert

    return dialect_insert(session, AuditHead).values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing()


@dataclass(frozen=True)
class Check:
    """What :func:`verify` found: how many lines hold together, and the first place where the chain breaks."""

    lines: int
    problem: str | None = None
    head: str = field(default=GENESIS, compare=False)  # the last line's hash: kept elsewhere, it shows a rebuilt chain

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(session: Session) -> Check:
    """Walk the chain from the first line: each number one more than the last, each ``prev`` the hash before, each
    hash what the line says, and the head at the last line. Streams; a million lines take seconds."""
    prev, expected, n = GENESIS, 1, 0
    rows = session.execute(select(AuditLine).order_by(AuditLine.seq).execution_options(yield_per=2000)).scalars()
    for line in rows:
        if line.seq != expected:
            return Check(n, f"line {expected} is missing (the next line is {line.seq})")
        if line.prev != prev:
            return Check(n, f"line {line.seq} does not follow line {line.seq - 1}: a line before it was changed, "
                            "removed or inserted")
        if _line_hash(line.prev, line.seq, line.at, line.actor, line.actor_name, line.address, line.action,
                      line.campaign_id, line.detail) != line.hash:
            return Check(n, f"line {line.seq} was changed after it was written")
        prev, expected, n = line.hash, expected + 1, n + 1
    head = session.get(AuditHead, 1)
    if head is None:
        return Check(n, "the chain's head is missing") if n else Check(0)
    if head.seq != n or head.hash != prev:
        return Check(n, f"the log ends at line {n}, but line {head.seq} was written: the last lines were removed")
    return Check(n, head=prev)


@dataclass(frozen=True)
class Entry:
    """A line as the dashboard, the API and ``notifier audit`` show it."""

    seq: int
    at: datetime
    actor: str
    actor_name: str
    address: str
    action: str
    campaign_id: str | None
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.isoformat(), "actor": self.actor, "actor_name": self.actor_name,
                "address": self.address, "action": self.action, "campaign_id": self.campaign_id,
                "detail": self.detail}


def entries(session: Session, *, campaign_id: str | None = None, actor: str | None = None,
            action: str | None = None, before: int | None = None, limit: int | None = None) -> Iterator[Entry]:
    """Lines, newest first, filtered by campaign, actor (``person:<id>`` or an email) and action; streamed."""
    query = select(AuditLine).order_by(AuditLine.seq.desc())
    if campaign_id:
        query = query.where(AuditLine.campaign_id == campaign_id)
    if actor:
        query = query.where((AuditLine.actor == actor) | (AuditLine.actor_name == actor.lower()))
    if action:
        query = query.where(AuditLine.action == action)
    if before:
        query = query.where(AuditLine.seq < before)
    if limit:
        query = query.limit(limit)
    for line in session.execute(query.execution_options(yield_per=2000)).scalars():
        yield Entry(line.seq, line.at, line.actor, line.actor_name, line.address, line.action, line.campaign_id,
                    json.loads(line.detail))


CSV_HEADER = ("seq", "at", "actor", "actor_name", "address", "action", "campaign_id", "detail")


def csv_rows(found: Iterator[Entry]) -> Iterator[list[Any]]:
    """The header, then each line as a CSV row (its detail as JSON): what ``results.csv_lines`` is to the results,
    written by the downloads' ``csv_response`` and by ``notifier audit --csv``."""
    yield list(CSV_HEADER)
    for e in found:
        yield [e.seq, e.at.isoformat(), e.actor, e.actor_name, e.address, e.action, e.campaign_id or "",
               json.dumps(e.detail, ensure_ascii=False, sort_keys=True)]
