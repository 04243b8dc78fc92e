"""On PostgreSQL a big audience file is read by a child process while the import stores its rows through COPY
text. The promises are the same as reading in-process: every rejection with its line, duplicates across batches,
the rows before an unreadable byte stored, a failure that says what is stored, the child never outliving the
import, and every value stored as given. Every test imports into the real ledger on PostgreSQL (SQLite reads
in-process and stores through the ORM: tests/test_audience*.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience import ImportReport, Rejection, _reader, import_audience
from notifier.errors import AudienceError
from notifier.ledger.models import Recipient
from tests.test_audience import HEADER, NOW, csv_file, jsonl_file, stored, tokens_of
from tests.test_audience_hostile import latin1_at, third_batch_fails

pytestmark = pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Every file is read by a child process, a few rows a message; the children started, to check they ended."""
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def recorded(*args: Any, **kw: Any) -> subprocess.Popen[bytes]:
        process = popen(*args, **kw)
        started.append(process)
        return process

    monkeypatch.setattr(_reader, "FROM_BYTES", 0)
    monkeypatch.setattr(_reader, "CHUNK", 2)
    monkeypatch.setattr(_reader.subprocess, "Popen", recorded)
    return started


def test_duplicates_and_rejections_read_by_a_child_arrive_as_in_process(
    sessions: sessionmaker[Session], tmp_path: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    path = csv_file(tmp_path,
                    "u1,first@example.com,,,UTC,,",   # line 2, batch 1
                    "u2,b@example.com,,,UTC,,",       # line 3, batch 1
                    "u3,broken,,,UTC,,",              # line 4, rejected
                    "u1,second@example.com,,,UTC,,",  # line 5, batch 2: u1 was stored by batch 1
                    "u4,d@example.com,,,UTC,,",       # line 6, batch 2
                    "u4,e@example.com,,,UTC,,")       # line 7, batch 3: u4 was stored by batch 2
    seen: list[Rejection] = []
    report = import_audience(sessions, path, now=NOW, on_reject=seen.append, batch_size=2)
    assert [(r.line, r.field) for r in seen] == [(4, "email"), (5, "id"), (7, "id")]
    assert str(seen[1]) == f"{path}:5: id u1: id: duplicate id u1 (first on line 2)"
    assert report == ImportReport(file=str(path), accepted=3, inserted=3, rejected=3)
    rows = stored(sessions)
    assert (set(rows), rows["u1"].email, rows["u4"].email) == ({"u1", "u2", "u4"}, "first@example.com",
                                                               "d@example.com")
    assert len(child) == 1 and child[0].poll() == 0


def test_a_byte_that_is_not_utf8_stops_a_child_read_import_after_storing_every_row_before_it(
    sessions: sessionmaker[Session], tmp_path: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    path = latin1_at(tmp_path / "audience.csv", 30, 20)
    with pytest.raises(AudienceError) as raised:
        import_audience(sessions, path, now=NOW, batch_size=4)
    assert str(raised.value) == (
        f"{path}:20: not UTF-8 text (byte 0xE9 at column 24); save the file as UTF-8; the import stopped there: "
        "18 rows stored (every accepted row through line 19), 0 rejected")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Recipient)) == 18
    assert child[0].poll() is not None


def test_an_unknown_column_read_by_a_child_stops_the_import_before_anything_is_stored(
    sessions: sessionmaker[Session], tmp_path: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    path = csv_file(tmp_path, "u1,a@example.com,,,UTC,,,x", header=HEADER + ",e-mail")
    with pytest.raises(AudienceError, match="did you mean 'email'"):
        import_audience(sessions, path, now=NOW)
    assert stored(sessions) == {}


def test_a_child_that_dies_is_an_error_saying_which_rows_are_stored(
    sessions: sessionmaker[Session], tmp_path: Path, child: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child sends the file's first three rows, then dies as a killed process would.
    dies = ("import os, pickle, sys; channel = os.fdopen(os.dup(1), 'wb'); os.dup2(2, 1); "
            "sys.path[:], args = pickle.load(sys.stdin.buffer); "
            "from notifier.audience import read_audience; rows = list(read_audience(args[0]))[:3]; "
            "pickle.dump(('rows', rows, 0), channel); channel.flush(); os._exit(9)")
    monkeypatch.setattr(_reader, "_BOOT", dies)
    path = csv_file(tmp_path, *(f"u{i},u{i}@example.com,,,UTC,," for i in range(1, 7)))
    with pytest.raises(RuntimeError, match="stopped \\(exit code 9\\)") as raised:
        import_audience(sessions, path, now=NOW, batch_size=2)
    assert raised.value.__notes__ == [
        "2 rows stored (every accepted row through line 3), 0 rejected; 1 row accepted on line 4 not stored"]
    assert set(stored(sessions)) == {"u1", "u2"}


def test_a_database_failure_ends_the_child_and_says_which_batches_are_stored(
    sessions: sessionmaker[Session], engine: Engine, tmp_path: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    path = csv_file(tmp_path, *(f"u{i},u{i}@example.com,,,UTC,," for i in range(1, 2001)))
    with third_batch_fails(engine, Exception("disk I/O error")), pytest.raises(OperationalError) as raised:
        import_audience(sessions, path, now=NOW, batch_size=3)
    assert raised.value.__notes__ == [
        "6 rows stored (every accepted row through line 7), 0 rejected; 3 rows accepted on lines 8-10 not stored"]
    assert set(stored(sessions)) == {f"u{i}" for i in range(1, 7)}
    assert child[0].poll() is not None  # ended, though it had 1,990 rows left to send


def test_progress_hears_the_bytes_the_child_has_read(sessions: sessionmaker[Session], tmp_path: Path,
                                                    child: list[subprocess.Popen[bytes]]) -> None:
    path = csv_file(tmp_path, *(f"u{i},u{i}@example.com,,,UTC,," for i in range(1, 11)))
    heard: list[int] = []
    import_audience(sessions, path, now=NOW, batch_size=3, progress=lambda report, read: heard.append(read))
    assert heard == sorted(heard) and heard[-1] == path.stat().st_size


def test_backslashes_tabs_and_newlines_are_stored_as_given(sessions: sessionmaker[Session], tmp_path: Path,
                                                            child: list[subprocess.Popen[bytes]]) -> None:
    # COPY text gives backslash, tab, newline and carriage return a meaning; \N alone would be NULL.
    attributes = {"path": "C:\\new\\table", "note": "a\tb\nc\rd", "null": "\\N", "quote": 'say "hi"'}
    path = jsonl_file(tmp_path, {"id": "u\t1\\", "email": "a@example.com", "name": "\\N", "timezone": "UTC",
                                 "push_tokens": ["tok\\1", "tok\t2"], "attributes": attributes})
    report = import_audience(sessions, path, now=NOW)
    assert (report.accepted, report.rejected) == (1, 0)
    [(rid, row)] = stored(sessions).items()
    assert (rid, row.name, row.attributes) == ("u\t1\\", "\\N", attributes)
    assert tokens_of(sessions, "u\t1\\") == {"tok\\1": True, "tok\t2": True}
