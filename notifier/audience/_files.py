"""Audience files read line by line in bounded memory: raw rows with their physical line, or row Rejections.

Every physical line is read with a size limit and checked for bytes that are not UTF-8 on its own, so an
over-long line costs at most one row and a bad byte is reported on its exact line. The limits and what
happens at each are described in :mod:`notifier.audience`.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from notifier.audience._columns import Column, ExtraColumns, csv_header, first_record, split_record, unknown_keys
from notifier.audience._rows import RecipientRecord, Rejection, kind, validate
from notifier.errors import AudienceError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_ROW = 1024 * 1024  # characters in one row: a JSONL line, or every line of one CSV record
MAX_CELL = 64 * 1024  # characters in one CSV cell
DELIMITERS = ",;\t"  # what csv.Sniffer may choose from, on the header line
_SKIP_CHUNK = 64 * 1024
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")

Row = tuple[int, dict[str, Any] | Rejection]


class _TooLong(Exception):
    """The row grew past MAX_ROW at physical line ``args[0]``; the rest of that line has been skipped."""


class _Lines:
    """Physical lines of a text file, each at most MAX_ROW characters, each checked for bytes that are not UTF-8.

    An iterator class rather than a generator: csv.reader calls it, and after a row that raised _TooLong the
    next row must still be readable. ``number`` counts the physical lines read, ``row`` the characters read
    since the caller last reset it.
    """

    def __init__(self, f: IO[str], file: str) -> None:
        self._f = f
        self._file = file
        self.number = 0
        self.row = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        text = self._readline(MAX_ROW + 1)
        if not text:
            raise StopIteration
        self.number += 1
        if len(text) > MAX_ROW:
            piece = text
            while piece and not piece.endswith(("\n", "\r")):
                piece = self._readline(_SKIP_CHUNK)
            raise _TooLong(self.number)
        if not text.isascii():
            bad = _NOT_UTF8.search(text)
            if bad is not None:
                byte = ord(bad.group()) - 0xDC00
                raise AudienceError(f"{self._file}:{self.number}: not UTF-8 text (byte 0x{byte:02X} at column "
                                    f"{bad.start() + 1}); save the file as UTF-8")
        self.row += len(text)
        if self.row > MAX_ROW:
            raise _TooLong(self.number)
        return text

    def _readline(self, limit: int) -> str:
        """One line of at most ``limit`` characters; a CR LF that the limit split is joined again."""
        text = self._f.readline(limit)
        if len(text) == limit and text.endswith("\r"):
            at = self._f.tell()
            if self._f.read(1) != "\n":
                self._f.seek(at)
            else:
                text += "\n"
        return text


def format_of(p: Path, fmt: str | None) -> str:
    kind_ = FORMATS.get(f".{fmt.lower()}" if fmt else p.suffix.lower())
    if kind_ is None:
        given = f"format {fmt!r}" if fmt else f"file extension {p.suffix!r}"
        raise AudienceError(f"{p}: unknown audience {given} (use .csv, .jsonl or .ndjson, or name the format)")
    return kind_


class Meter:
    """How far into the file reading has come, in bytes (read ahead by up to a buffer), for a progress bar."""

    def __init__(self) -> None:
        self._f: IO[bytes] | None = None
        self._size = 0
        self._told: int | None = None

    def attach(self, f: IO[bytes]) -> None:
        self._f, self._size = f, os.fstat(f.fileno()).st_size

    def tell(self, read: int) -> None:
        """Bytes read by a reader that is not attached here (a child process, :mod:`._reader`)."""
        self._told = read

    def read_bytes(self) -> int:
        """Bytes read so far; the whole file once reading has ended."""
        if self._told is not None:
            return self._told
        f = self._f
        if f is None:
            return 0
        return self._size if f.closed else min(f.tell(), self._size)


def records(p: Path, file: str, fmt: str, extra: ExtraColumns, rename: Mapping[str, str] | None = None,
            meter: Meter | None = None) -> Iterator[RecipientRecord | Rejection]:
    """Validated rows of the file, in order; AudienceError when the file cannot be read (on from that line) or its
    columns are not ours (before the first row: see :mod:`notifier.audience._columns`). ``rename`` gives a
    column (a JSON Lines key) of the file the name of a field, or "" to leave it out, before anything is checked."""
    try:
        # surrogateescape: a byte that is not UTF-8 survives decoding, and _Lines reports it on its own line
        f = p.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise AudienceError(f"{file}: cannot open ({exc.strerror})") from None
    if meter is not None:
        meter.attach(f.buffer)
    with f:
        lines = _Lines(f, file)
        renamed = dict(rename or {})
        rows = _csv_rows(lines, file, extra, renamed) if fmt == "csv" else _jsonl_rows(lines, file, extra, renamed)
        for line, raw in rows:
            yield raw if isinstance(raw, Rejection) else validate(file, line, raw)


def _too_long(file: str, start: int, at: int) -> Rejection:
    where = "" if at == start else f" (by line {at})"
    return Rejection(file, start, None, None, f"the row is longer than {MAX_ROW:,} characters{where}")


def _csv_rows(lines: _Lines, file: str, extra: ExtraColumns, rename: dict[str, str]) -> Iterator[Row]:
    # csv's own limit (131,072 by default, and process-wide) is raised above ours, so our caps speak first.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_ROW + 2))
    first = _first_line(lines, file)
    reader = csv.reader(itertools.chain([first], lines), delimiter=_delimiter(first))
    names, columns = _csv_header(reader, file, extra, rename)
    while True:
        start, lines.row = lines.number + 1, 0  # a quoted newline makes one row span several lines
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _TooLong as exc:  # reading goes on with the next physical line
            yield start, _too_long(file, start, exc.args[0])
            continue
        except csv.Error as exc:
            yield start, Rejection(file, start, None, None, f"not readable as CSV ({exc})")
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(names):
            reason = f"the row has {len(cells)} cells but the header names {len(names)} columns"
            yield start, Rejection(file, start, None, None, reason)
            continue
        if max(map(len, cells)) > MAX_CELL:
            yield start, _cell_too_long(file, start, names, columns, cells)
            continue
        yield start, _csv_record(columns, cells)


def _cell_too_long(file: str, line: int, names: list[str], columns: list[Column], cells: list[str]) -> Rejection:
    """The row's rejection, naming the first over-long cell's column and, when it looks like one, the row's id."""
    column = next(name for name, cell in zip(names, cells, strict=False) if len(cell) > MAX_CELL)
    at = next(i for i, c in enumerate(columns) if c.field == "id")
    rid = _shown_id(cells[at] if at < len(cells) else None)
    return Rejection(file, line, rid, column or None, f"the cell is longer than {MAX_CELL:,} characters")


def _first_line(lines: _Lines, file: str) -> str:
    try:
        return next(lines)
    except StopIteration:
        raise AudienceError(f"{file}:1: the file is empty; its first line must name the columns") from None
    except _TooLong:
        raise AudienceError(f"{file}:1: the header is longer than {MAX_ROW:,} characters") from None


def _delimiter(header_line: str) -> str:
    """',' or, from a spreadsheet in a locale whose decimal mark is a comma (pt-BR, es-MX), ';' (or a tab)."""
    try:
        return csv.Sniffer().sniff(header_line, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or nothing to tell: the standard comma
        return ","


def _csv_header(reader: Iterator[list[str]], file: str, extra: ExtraColumns,
                rename: dict[str, str]) -> tuple[list[str], list[Column]]:
    """The header's names as written, and where each column goes; every problem with it is an AudienceError."""
    try:
        names = [name.strip() for name in next(reader)]
    except StopIteration:
        raise AudienceError(f"{file}:1: the file is empty; its first line must name the columns") from None
    except _TooLong:
        raise AudienceError(f"{file}:1: the header is longer than {MAX_ROW:,} characters") from None
    except csv.Error as exc:
        raise AudienceError(f"{file}:1: not readable as CSV ({exc})") from None
    if rename:
        names = [rename.get(name, name).strip() for name in names]
    return names, csv_header(file, names, extra)


def _csv_record(columns: list[Column], cells: list[str]) -> dict[str, Any]:
    """Fields by column, push tokens split on '|', every non-empty attribute cell under ``attributes``."""
    raw: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for column, cell in zip(columns, cells, strict=False):
        if column.field == "push_tokens":
            raw["push_tokens"] = cell.split("|")
        elif column.field is not None:
            raw[column.field] = cell
        elif column.attribute is not None and cell.strip():
            attributes[column.attribute] = cell.strip()
    raw["attributes"] = attributes
    return raw


def _jsonl_rows(lines: _Lines, file: str, extra: ExtraColumns, rename: dict[str, str]) -> Iterator[Row]:
    first = True
    while True:
        lines.row = 0
        try:
            text = next(lines)
        except StopIteration:
            return
        except _TooLong as exc:
            yield exc.args[0], _too_long(file, exc.args[0], exc.args[0])
            continue
        line = lines.number
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line, Rejection(file, line, None, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            yield line, Rejection(file, line, None, None, "not valid JSON (too deep)")
            continue
        except ValueError:  # the one other ValueError json.loads raises: an integer of too many digits
            reason = f"not valid JSON (a number with more than {sys.get_int_max_str_digits():,} digits)"
            yield line, Rejection(file, line, None, None, reason)
            continue
        if not isinstance(obj, dict):
            yield line, Rejection(file, line, None, None, f"expected a JSON object, got {kind(obj)}")
            continue
        if _ESCAPED_SURROGATE.search(text) and _has_lone_surrogate({k: v for k, v in obj.items() if k != "name"}):
            reason = "not valid JSON text (an unpaired surrogate escape such as \\ud800 is not a character)"
            yield line, Rejection(file, line, None, None, reason)
            continue
        if rename:
            obj = _renamed(obj, rename)
        if first:  # JSON Lines has no header: the first record's keys stand for one
            first_record(file, line, obj, extra)
            first = False
        raw, unknown = split_record(obj, extra)
        if unknown:
            yield line, Rejection(file, line, _shown_id(obj.get("id")), None, unknown_keys(unknown))
            continue
        yield line, raw


def _renamed(obj: dict[str, Any], rename: dict[str, str]) -> dict[str, Any]:
    """A record's keys under the names the caller mapped them to; a key mapped to "" is left out."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = rename.get(key, key)
        if name:
            out[name] = value
    return out


def _shown_id(value: Any) -> str | None:
    """The id of a row rejected before validation, for its rejection, when it looks like one."""
    rid = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return rid if 0 < len(rid) <= 128 and rid.isprintable() else None


def _has_lone_surrogate(obj: dict[str, Any]) -> bool:
    """A \\uD800-\\uDFFF escape that is not half of a pair: text no database can store (a name is cleaned instead)."""
    try:
        return _SURROGATE.search(json.dumps(obj, ensure_ascii=False)) is not None
    except (RecursionError, ValueError):
        return True
