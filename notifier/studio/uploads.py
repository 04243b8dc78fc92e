"""An audience from the browser: sniff the head of a file, map its columns, import it in the background.

The import is the CLI's own (:func:`notifier.audience.import_audience`, the same validation and the same idempotent
upsert, in batches with flat memory), run by a thread of the server that took the file. Its progress and every
rejected row (line and reason, never more personal data than the CLI prints) are written to the ledger as it goes,
so any server can show them and a closed browser loses nothing; an upload left ``importing`` by a process that died
is started again from the top by :func:`resume_uploads` (the upsert makes that harmless).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience import ImportReport, Rejection, import_audience, read_audience
from notifier.audience._columns import KNOWN, PREFIX, suggestion
from notifier.audience._files import FORMATS
from notifier.config import Settings
from notifier.errors import AudienceError, NotFound
from notifier.ledger.models import AudienceUpload, AudienceUploadReject

__all__ = ["HEAD_BYTES", "Sniffed", "UploadStatus", "join_upload", "rejects_csv", "resume_uploads", "sniff",
           "start_upload", "upload_status"]

log = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024  # what the browser sends to sniff
SAMPLE_ROWS = 5
FIELDS = (*KNOWN, f"{PREFIX}NAME", "")  # what a column may map to ("" leaves it out)
EVERY = 0.5  # seconds between progress writes: a bar moves smoothly, the ledger is not asked per batch
KEPT_REJECTS = 5000  # rejections kept in memory before they are written anyway
STALE = timedelta(minutes=2)  # an import writes progress twice a second; one silent this long has lost its process
_running: dict[str, threading.Thread] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Sniffed:
    """What the head of a file says: its format, columns, a mapping to propose, and the first rows as stored."""

    format: str
    columns: tuple[str, ...]
    suggestions: Mapping[str, str | None]  # column -> field (or attributes.NAME); None: no guess, left out
    fields: tuple[str, ...]
    sample: tuple[dict[str, Any], ...]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class UploadStatus:
    """An upload's progress as the ledger has it."""

    id: str
    file_name: str
    state: str
    size_bytes: int
    read_bytes: int
    accepted: int
    rejected: int
    guessed: int
    error: str | None

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        if not self.size_bytes:
            return 0
        return min(99, self.read_bytes * 100 // self.size_bytes)


# --- sniffing -------------------------------------------------------------------------------------------------


def sniff(head: bytes, file_name: str, mapping: Mapping[str, str] | None = None) -> Sniffed:
    """The proposal for a file from its first bytes, through the importer itself (so the sample is what it stores)."""
    fmt = _format(head, file_name)
    whole = _complete_lines(head)
    text = whole.decode("utf-8-sig", errors="replace")
    columns = _csv_columns(text) if fmt == "csv" else _jsonl_keys(text)
    suggestions = {name: _suggest(name) for name in columns}
    chosen = {**{k: v or "" for k, v in suggestions.items()}, **(mapping or {})}
    sample, problems = _sample(whole, fmt, file_name, chosen)
    return Sniffed(fmt, tuple(columns), suggestions, FIELDS, tuple(sample), tuple(problems))


def _format(head: bytes, file_name: str) -> str:
    suffix = Path(file_name).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def _complete_lines(head: bytes) -> bytes:
    """The head without a last line the browser cut in the middle (a head shorter than HEAD_BYTES is the file)."""
    if len(head) < HEAD_BYTES or head.endswith(b"\n"):
        return head
    cut = head.rfind(b"\n")
    return head[:cut + 1] if cut >= 0 else head


def _csv_columns(text: str) -> list[str]:
    first = text.splitlines()[0] if text.strip() else ""
    try:
        delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    row = next(csv.reader(io.StringIO(first), delimiter=delimiter), [])
    return [name.strip() for name in row]


def _jsonl_keys(text: str) -> list[str]:
    import json

    keys: dict[str, None] = {}
    for line in text.splitlines()[:SAMPLE_ROWS * 4]:
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(obj))
    return list(keys)


def _suggest(name: str) -> str | None:
    """A column's field: itself, the audience module's guess (e-mail → email, tz → timezone), or an attribute."""
    if name.lower() in KNOWN or name == "attributes" or name.lower().startswith(PREFIX):
        return name.lower() if name.lower() in KNOWN else name
    if not name or "@" in name:
        return None
    return suggestion(name) or f"{PREFIX}{name}"


def _sample(head: bytes, fmt: str, file_name: str,
            mapping: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The first rows through the importer's reader with ``mapping``; what it refuses, as problems."""
    sample: list[dict[str, Any]] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="notifier-sniff-") as tmp:
        path = Path(tmp) / f"head.{fmt}"
        path.write_bytes(head)
        try:
            for item in read_audience(path, fmt, rename=mapping):
                if isinstance(item, Rejection):
                    problems.append(_reason(item))
                else:
                    sample.append(_stored(item))
                if len(sample) + len(problems) >= SAMPLE_ROWS * 2 or len(sample) >= SAMPLE_ROWS:
                    break
        except AudienceError as exc:
            problems.append(str(exc).replace(str(path), file_name))
    return sample, problems


def _stored(record: Any) -> dict[str, Any]:
    return {"line": record.line, "id": record.id, "email": record.email, "name": record.name,
            "locale": record.locale, "timezone": record.timezone, "timezone_guessed": record.timezone_guessed,
            "country": record.country, "push_tokens": list(record.push_tokens), "attributes": record.attributes,
            "joined_at": record.joined_at.isoformat() if record.joined_at else None}


def _reason(rejection: Rejection) -> str:
    """A rejected row as the CLI prints it, without the file's path: line, id, field, reason."""
    who = f"id {rejection.recipient_id}: " if rejection.recipient_id else ""
    field = f"{rejection.field}: " if rejection.field else ""
    return f"line {rejection.line}: {who}{field}{rejection.reason}"


# --- importing --------------------------------------------------------------------------------------------------


def start_upload(sessions: sessionmaker[Session], settings: Settings, spool: Path, *, file_name: str, fmt: str | None,
                 mapping: Mapping[str, str], now: datetime) -> str:
    """Take over the spooled file (moved to ``studio_dir/uploads/<id>``), record the upload, import it in a thread."""
    folder = settings.studio_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    upload_id = spool.name if spool.parent.resolve() == folder.resolve() and _is_uuid(spool.name) else str(uuid.uuid4())
    target = folder / upload_id
    if spool.resolve() != target.resolve():
        shutil.move(spool, target)  # a rename on the same file system
    with target.open("rb") as f:
        kind = FORMATS.get(f".{fmt.lower()}", fmt) if fmt else _format(f.read(HEAD_BYTES), file_name)
    if kind not in ("csv", "jsonl"):
        target.unlink(missing_ok=True)
        raise AudienceError(f"{file_name}: unknown audience format {kind!r} (use csv or jsonl)")
    with sessions.begin() as s:
        s.add(AudienceUpload(id=upload_id, file_name=file_name[:200], format=kind, state="waiting",
                             mapping=dict(mapping), size_bytes=target.stat().st_size, read_bytes=0, accepted=0,
                             rejected=0, guessed=0, spool_path=str(target), created_at=now, updated_at=now))
    _launch(sessions, upload_id, now)
    return upload_id


def _is_uuid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def _launch(sessions: sessionmaker[Session], upload_id: str, now: datetime) -> None:
    thread = threading.Thread(target=_run, args=(sessions, upload_id, now), daemon=True,
                              name=f"upload-{upload_id[:8]}")
    with _lock:
        _running[upload_id] = thread
    thread.start()


def join_upload(upload_id: str, timeout: float | None = None) -> None:
    """Wait for this process's import of ``upload_id`` to end (tests, the bench, a graceful shutdown)."""
    with _lock:
        thread = _running.get(upload_id)
    if thread is not None:
        thread.join(timeout)


class _Progress:
    """Rejections kept until the next progress write, which stores them with the counts in one transaction."""

    def __init__(self, sessions: sessionmaker[Session], upload_id: str, started: datetime) -> None:
        self.sessions, self.upload_id, self.started = sessions, upload_id, started
        self.rejects: list[dict[str, Any]] = []
        self.clock = _Clock(started)
        self.report: ImportReport | None = None  # the import's own, as of the last write

    def reject(self, rejection: Rejection) -> None:
        self.rejects.append({"upload_id": self.upload_id, "line": rejection.line, "reason": _reason(rejection)})

    def write(self, report: ImportReport, read_bytes: int, **final: Any) -> None:
        """Counts and kept rejections into the ledger: at the end, else at most every EVERY seconds."""
        self.report = report
        if not final and self.clock.since_write() < EVERY and len(self.rejects) < KEPT_REJECTS:
            return
        self.clock.wrote()
        with self.sessions.begin() as s:
            if self.rejects:
                s.execute(AudienceUploadReject.__table__.insert(), _distinct_lines(self.rejects))
                self.rejects = []
            s.execute(update(AudienceUpload).where(AudienceUpload.id == self.upload_id).values(
                read_bytes=read_bytes, accepted=report.accepted, rejected=report.rejected,
                guessed=report.guessed_timezones, updated_at=self.clock.now(), **final))


class _Clock:
    """The caller's ``now`` moved on by the wall clock: progress rows say when they were written."""

    def __init__(self, start: datetime) -> None:
        import time

        self._start, self._t0, self._time = start, time.monotonic(), time.monotonic
        self._written = float("-inf")

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._time() - self._t0)

    def since_write(self) -> float:
        return self._time() - self._written

    def wrote(self) -> None:
        self._written = self._time()


def _distinct_lines(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One reason per line (a row is rejected once; this guards the primary key all the same)."""
    return list({row["line"]: row for row in rows}.values())


def _run(sessions: sessionmaker[Session], upload_id: str, now: datetime) -> None:
    """The thread: import the spool into the ledger, progress and rejects as it goes; done or failed at the end."""
    with sessions.begin() as s:
        upload = s.get(AudienceUpload, upload_id)
        if upload is None:
            return
        s.execute(delete(AudienceUploadReject).where(AudienceUploadReject.upload_id == upload_id))
        upload.state, upload.read_bytes, upload.accepted, upload.rejected, upload.guessed = "importing", 0, 0, 0, 0
        upload.error, upload.updated_at = None, now
        spool, fmt, mapping, size, name = (Path(upload.spool_path), upload.format, dict(upload.mapping or {}),
                                           upload.size_bytes, upload.file_name)
    progress = _Progress(sessions, upload_id, now)
    report = ImportReport(file=name)
    try:
        report = import_audience(sessions, spool, now=now, fmt=fmt, on_reject=progress.reject, rename=mapping,
                                 progress=progress.write)
    except AudienceError as exc:  # every row before the unreadable line is stored: the counts say how many
        report = progress.report or report
        progress.write(report, size, state="failed", error=str(exc).replace(str(spool), name))
        log.warning("audience upload %s failed: the file could not be read on", upload_id)
    except Exception as exc:  # the database, or a bug: the row says so. Only the type is logged: a database's
        # message may quote a row's values.
        with contextlib.suppress(Exception):
            progress.write(progress.report or report, 0, state="failed",
                           error=f"the import stopped: {type(exc).__name__}")
        log.error("audience upload %s failed: %s", upload_id, type(exc).__name__)
        return
    else:
        progress.write(report, size, state="done")
        log.info("audience upload %s done: %d accepted, %d rejected", upload_id, report.accepted, report.rejected)
    finally:
        with _lock:
            _running.pop(upload_id, None)
    spool.unlink(missing_ok=True)


# --- reading back -----------------------------------------------------------------------------------------------


def upload_status(session: Session, upload_id: str) -> UploadStatus:
    """An upload's progress; NotFound for an id the ledger does not have."""
    row = session.get(AudienceUpload, upload_id)
    if row is None:
        raise NotFound(f"no audience upload {upload_id!r}")
    return UploadStatus(row.id, row.file_name, row.state, row.size_bytes, row.read_bytes, row.accepted, row.rejected,
                        row.guessed, row.error)


def rejects_csv(session: Session, upload_id: str) -> Iterator[str]:
    """The rejected rows as CSV lines, header first, in line order, streamed (a file may reject a million)."""
    if session.get(AudienceUpload, upload_id) is None:
        raise NotFound(f"no audience upload {upload_id!r}")
    yield _csv_line(["line", "reason"])
    query = (select(AudienceUploadReject.line, AudienceUploadReject.reason)
             .where(AudienceUploadReject.upload_id == upload_id).order_by(AudienceUploadReject.line))
    for line, reason in session.execute(query.execution_options(yield_per=1000)):
        yield _csv_line([str(line), reason])


def _csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([_defused(c) for c in cells])
    return out.getvalue()


def _defused(cell: str) -> str:
    """A cell a spreadsheet will not run as a formula (=, +, -, @ at the start)."""
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@") else cell


def resume_uploads(sessions: sessionmaker[Session], settings: Settings, now: datetime) -> list[str]:
    """Start again the uploads whose import stopped with its process (no progress for STALE) or never started,
    when their spooled file is on this machine; each is claimed by one server (the update that wins)."""
    with sessions() as s:
        rows = s.execute(select(AudienceUpload.id, AudienceUpload.updated_at, AudienceUpload.spool_path).where(
            AudienceUpload.state.in_(("waiting", "importing")), AudienceUpload.updated_at < now - STALE)).all()
    resumed = []
    for upload_id, updated_at, spool in rows:
        with _lock:
            if upload_id in _running:
                continue
        if not Path(spool).is_file():
            continue
        with sessions.begin() as s:
            claim = update(AudienceUpload).where(AudienceUpload.id == upload_id,
                                                 AudienceUpload.updated_at == updated_at).values(updated_at=now)
            won = s.execute(claim).rowcount
        if won:
            log.info("audience upload %s: resumed after a restart", upload_id)
            _launch(sessions, upload_id, now)
            resumed.append(upload_id)
    return resumed
