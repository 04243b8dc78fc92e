"""Audience files: recipients streamed from CSV or JSON Lines into the ledger, each bad row a located Rejection.

:func:`read_audience` parses and validates one row at a time; :func:`import_audience` upserts them in batches
with one commit each, so memory stays flat however long the file is. Duplicate ids are found through the
ledger (every run stamps its rows with ``import_run`` and ``import_line``), not through a set of every id seen,
so a duplicate's rejection arrives when its batch is stored, after rejections of rows read later in that batch.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import IO, Any

from babel import Locale
from babel.core import get_global
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import zone
from notifier.errors import AudienceError
from notifier.i18n import parse_tag, tag_of
from notifier.ledger.models import PushToken, Recipient
from notifier.ledger.queries import dialect_insert

__all__ = ["ImportReport", "RecipientRecord", "Rejection", "import_audience", "read_audience"]

log = logging.getLogger(__name__)

FIELDS = ("id", "email", "name", "locale", "timezone", "country", "push_tokens", "joined_at")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# The zone to assume for our own countries when a row has none: where most of the audience lives.
COUNTRY_ZONES = {"ID": "Asia/Jakarta", "BR": "America/Sao_Paulo", "AU": "Australia/Sydney", "SG": "Asia/Singapore",
                 "MX": "America/Mexico_City"}
# Codes Babel names that are groupings or placeholders, not countries (ZZ would even "guess" Etc/GMT).
_NOT_COUNTRIES = frozenset({"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"})
_MAX_ID, _MAX_NAME, _MAX_LOCALE, _MAX_TIMEZONE = 128, 200, 35, 64
# FCM tokens are ~160 characters, APNs 64; PostgreSQL's unique btree index refuses entries over ~2700 bytes.
_MAX_TOKEN = 1024
_JSON_KINDS = {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number"}


@dataclass(frozen=True)
class RecipientRecord:
    """One validated row, ready for the ledger."""

    id: str
    email: str | None
    name: str | None
    locale: str | None
    timezone: str
    timezone_guessed: bool
    country: str | None
    push_tokens: tuple[str, ...]
    attributes: dict[str, Any]
    joined_at: datetime | None
    line: int


@dataclass(frozen=True)
class Rejection:
    """One row left out of the import, located well enough to fix the file; never carries personal data."""

    file: str
    line: int
    recipient_id: str | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        who = f" id {self.recipient_id}:" if self.recipient_id else ""
        field = f" {self.field}:" if self.field else ""
        return f"{self.file}:{self.line}:{who}{field} {self.reason}"


@dataclass
class ImportReport:
    """What one import did, for the CLI to print and the caller to check."""

    file: str
    accepted: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    guessed_timezones: int = 0


class _RowError(Exception):
    """A row fails validation on ``args[0]`` (a field or None) for reason ``args[1]``."""


# --- reading --------------------------------------------------------------------------------------------


def read_audience(path: str | Path, fmt: str | None = None) -> Iterator[RecipientRecord | Rejection]:
    """Validated rows one at a time, so a file of any size streams through in flat memory."""
    # A bad format or a missing file fails here; a bad header or bad bytes when iterating. Duplicate ids need
    # the ledger, so only import_audience finds them.
    p = Path(path)
    file = str(p)
    kind = _format_of(p, fmt)
    if not p.is_file():
        raise AudienceError(f"{file}: no such file")
    return _records(p, file, kind)


def _format_of(p: Path, fmt: str | None) -> str:
    kind = FORMATS.get(f".{fmt.lower()}" if fmt else p.suffix.lower())
    if kind is None:
        given = f"format {fmt!r}" if fmt else f"file extension {p.suffix!r}"
        raise AudienceError(f"{p}: unknown audience {given} (use .csv, .jsonl or .ndjson, or name the format)")
    return kind


def _records(p: Path, file: str, kind: str) -> Iterator[RecipientRecord | Rejection]:
    try:
        f = p.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise AudienceError(f"{file}: cannot open ({exc.strerror})") from None
    line = 0
    with f:
        rows = _csv_rows(f, file) if kind == "csv" else _jsonl_rows(f, file)
        try:
            for line, raw in rows:
                yield raw if isinstance(raw, Rejection) else _validate(file, line, raw)
        except UnicodeDecodeError:
            raise AudienceError(f"{file}: not UTF-8 text (somewhere after line {line})") from None


def _csv_rows(f: IO[str], file: str) -> Iterator[tuple[int, dict[str, Any] | Rejection]]:
    reader = csv.reader(f)
    header = _csv_header(reader, file)
    end = reader.line_num
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num  # a quoted newline makes one row span several lines
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):
                reason = f"the row has {len(cells)} cells but the header names {len(header)} columns"
                yield start, Rejection(file, start, None, None, reason)
                continue
            yield start, _csv_record(header, cells)
    except csv.Error as exc:
        raise AudienceError(f"{file}:{reader.line_num}: not readable as CSV ({exc})") from None


def _csv_header(reader: Iterator[list[str]], file: str) -> list[str]:
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise AudienceError(f"{file}:1: the file is empty; its first line must name the columns") from None
    except csv.Error as exc:
        raise AudienceError(f"{file}:1: not readable as CSV ({exc})") from None
    if "id" not in header:
        raise AudienceError(f"{file}:1: the header has no id column (the first line must name the columns)")
    twice = [name for name in header if name and header.count(name) > 1]
    if twice:
        raise AudienceError(f"{file}:1: column {twice[0]!r} appears twice in the header")
    return header


def _csv_record(header: list[str], cells: list[str]) -> dict[str, Any]:
    """Known columns by name, push tokens split on '|', every other non-empty cell an attribute."""
    raw: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for name, cell in zip(header, cells, strict=False):
        if name == "push_tokens":
            raw[name] = cell.split("|")
        elif name in FIELDS:
            raw[name] = cell
        elif name and cell.strip():
            attributes[name] = cell.strip()
    raw["attributes"] = attributes
    return raw


def _jsonl_rows(f: IO[str], file: str) -> Iterator[tuple[int, dict[str, Any] | Rejection]]:
    for line, text in enumerate(f, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            where = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "too deep"
            yield line, Rejection(file, line, None, None, f"not valid JSON ({where})")
            continue
        if not isinstance(obj, dict):
            yield line, Rejection(file, line, None, None, f"expected a JSON object, got {_kind(obj)}")
            continue
        yield line, obj


# --- validating -----------------------------------------------------------------------------------------


def _validate(file: str, line: int, raw: dict[str, Any]) -> RecipientRecord | Rejection:
    """One row checked field by field; the first problem rejects it."""
    rid: str | None = None
    try:
        rid = _text(raw, "id", _MAX_ID)
        if rid is None:
            raise _RowError("id", "an id is required")
        email = _email(raw)
        country = _country(raw)
        timezone, guessed = _timezone(raw, country)
        tokens = _tokens(raw)
        if email is None and not tokens:
            raise _RowError(None, "no email address and no push token: nothing can reach this recipient")
        return RecipientRecord(
            id=rid, email=email, name=_text(raw, "name", _MAX_NAME), locale=_locale(raw), timezone=timezone,
            timezone_guessed=guessed, country=country, push_tokens=tokens, attributes=_attributes(raw),
            joined_at=_joined_at(raw), line=line,
        )
    except _RowError as exc:
        return Rejection(file, line, rid, *exc.args)


def _kind(value: Any) -> str:
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def _text(raw: dict[str, Any], field: str, max_len: int | None = None) -> str | None:
    """A stripped text value, or None when missing or empty."""
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _RowError(field, f"expected text, got {_kind(value)}")
    text = str(value).strip()
    if "\x00" in text:
        raise _RowError(field, "contains a NUL character")
    if max_len is not None and len(text) > max_len:
        raise _RowError(field, f"longer than {max_len} characters")
    return text or None


def _email(raw: dict[str, Any]) -> str | None:
    address = _text(raw, "email")
    if address is None:
        return None
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise _RowError("email", f"the email address is not valid ({_scrub(str(exc), address)})") from None


def _scrub(message: str, address: str) -> str:
    """The validator's message without the address or its parts: rejections end up in logs and terminals."""
    local, _, domain = address.rpartition("@")
    for part in sorted({address, local, domain}, key=len, reverse=True):
        if part == address or len(part) >= 4:
            message = re.sub(re.escape(part), "…", message, flags=re.IGNORECASE)
    return message.rstrip(".")


@cache
def _territories() -> frozenset[str]:
    return frozenset(Locale("en").territories)


def _country(raw: dict[str, Any]) -> str | None:
    code = _text(raw, "country")
    if code is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", code):
        raise _RowError("country", f"{code!r} is not a two-letter ISO 3166 country code")
    code = code.upper()
    if code in _NOT_COUNTRIES or code not in _territories():
        raise _RowError("country", f"{code!r} is not a country code Babel knows")
    return code


def _timezone(raw: dict[str, Any], country: str | None) -> tuple[str, bool]:
    """The row's zone, or one guessed from its country (flagged, so it can be corrected later)."""
    name = _text(raw, "timezone", _MAX_TIMEZONE)
    if name is not None:
        try:
            zone(name)
        except ValueError as exc:
            raise _RowError("timezone", str(exc)) from None
        return name, False
    if country is None:
        raise _RowError("timezone", "no timezone, and no country to guess it from")
    guessed = _country_zone(country)
    if guessed is None:
        raise _RowError("timezone", f"no timezone, and country {country} has none or several: give one")
    return guessed, True


@cache
def _country_zone(country: str) -> str | None:
    """Our own map first, else the country's zone when it has only one; a multi-zone country is no guess."""
    if country in COUNTRY_ZONES:
        return COUNTRY_ZONES[country]
    valid = []
    for name in get_global("territory_zones").get(country, ()):
        try:
            zone(name)
        except ValueError:
            continue
        valid.append(str(name))
    return valid[0] if len(valid) == 1 else None


def _locale(raw: dict[str, Any]) -> str | None:
    """Normalized like campaign locales when Babel knows the tag; otherwise kept, to fall back at render time."""
    tag = _text(raw, "locale", _MAX_LOCALE)
    if tag is None:
        return None
    loc = parse_tag(tag)
    return tag_of(loc) if loc is not None else tag


def _tokens(raw: dict[str, Any]) -> tuple[str, ...]:
    value = raw.get("push_tokens")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise _RowError("push_tokens", f"expected a list of strings, got {_kind(value)}")
    tokens = tuple(dict.fromkeys(t.strip() for t in value if t.strip()))
    for i, token in enumerate(tokens):
        if len(token) > _MAX_TOKEN or "\x00" in token:
            raise _RowError("push_tokens", f"token {i + 1} is not a push token (too long or contains NUL)")
    return tokens


def _attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """The attributes object plus every unknown top-level key; the explicit object wins on a clash."""
    given = raw.get("attributes")
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise _RowError("attributes", f"expected an object, got {_kind(given)}")
    extra = {k: v for k, v in raw.items() if k not in FIELDS and k != "attributes"}
    attributes = {**extra, **given}
    try:
        json.dumps(attributes, allow_nan=False)  # what the ledger's JSON column (and PostgreSQL) will accept
    except ValueError:
        raise _RowError("attributes", "NaN and Infinity are not valid JSON") from None
    return attributes


def _joined_at(raw: dict[str, Any]) -> datetime | None:
    text = _text(raw, "joined_at")
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _RowError("joined_at", f"{text!r} is not an ISO date-time such as 2024-05-01T09:30:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- importing ------------------------------------------------------------------------------------------


def import_audience(sessions: sessionmaker[Session], path: str | Path, *, now: datetime, fmt: str | None = None,
                    on_reject: Callable[[Rejection], None] | None = None, batch_size: int = 1000) -> ImportReport:
    """Upsert every valid row in batches of ``batch_size``, one commit each; bad rows go to ``on_reject``."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    file = str(Path(path))
    run = str(uuid.uuid4())
    report = ImportReport(file=file)

    def reject(rejection: Rejection) -> None:
        report.rejected += 1
        if on_reject is not None:
            on_reject(rejection)

    batch: list[RecipientRecord] = []
    for item in read_audience(path, fmt):
        if isinstance(item, Rejection):
            reject(item)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            _store_batch(sessions, file, batch, run, now, report, reject)
            batch = []
    if batch:
        _store_batch(sessions, file, batch, run, now, report, reject)
    log.info("audience import %s: %d accepted (%d inserted, %d updated, %d zones guessed), %d rejected",
             run, report.accepted, report.inserted, report.updated, report.guessed_timezones, report.rejected)
    return report


def _store_batch(sessions: sessionmaker[Session], file: str, batch: list[RecipientRecord], run: str, now: datetime,
                 report: ImportReport, reject: Callable[[Rejection], None]) -> None:
    """One transaction: drop this run's duplicates, upsert the rest, replace their push tokens."""
    with sessions() as session, session.begin():
        existing = _stored_runs(session, {r.id for r in batch})
        fresh = _drop_duplicates(file, batch, existing, run, reject)
        if not fresh:
            return
        _upsert_recipients(session, fresh, run, now)
        query = select(Recipient.id, Recipient.seq).where(Recipient.id.in_([r.id for r in fresh]))
        seqs = {rid: seq for rid, seq in session.execute(query)}
        _replace_tokens(session, [(seqs[r.id], r.push_tokens) for r in fresh])
    inserted = sum(1 for r in fresh if r.id not in existing)
    report.accepted += len(fresh)
    report.inserted += inserted
    report.updated += len(fresh) - inserted
    report.guessed_timezones += sum(1 for r in fresh if r.timezone_guessed)


def _stored_runs(session: Session, ids: Iterable[str]) -> dict[str, tuple[str | None, int | None]]:
    """For the ids already in the ledger: the import run and line that last wrote them."""
    query = select(Recipient.id, Recipient.import_run, Recipient.import_line).where(Recipient.id.in_(list(ids)))
    return {rid: (run, line) for rid, run, line in session.execute(query)}


def _drop_duplicates(file: str, batch: list[RecipientRecord], existing: dict[str, tuple[str | None, int | None]],
                     run: str, reject: Callable[[Rejection], None]) -> list[RecipientRecord]:
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
        reject(Rejection(file, record.line, record.id, "id", reason))
    return fresh


def _upsert_recipients(session: Session, records: list[RecipientRecord], run: str, now: datetime) -> None:
    """Insert or update by id; an update keeps the stored joined_at unless the file gives one."""
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
        stmt = dialect_insert(session, PushToken).on_conflict_do_nothing(index_elements=["recipient_seq", "token"])
        session.execute(stmt, new)
