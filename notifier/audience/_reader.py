"""A big audience file read and validated by a child process, so that an import uses both cores.

Validating a row is Python work (about 20 µs), and so is much of storing it; in one process they take turns on
one core (threads share the GIL, and a writer thread waiting on the database gets it back late). The child runs
:func:`notifier.audience.read_audience` and sends the rows, in order and a chunk at a time, through its standard
output (anything the child prints goes to standard error); the importing process stores them meanwhile. A pipe
holds little, so the child runs at most a chunk or two ahead and memory stays flat. What the child raises is
raised here, after the rows it read before it.

The child is a fresh interpreter (``python -c``) given this process's ``sys.path``: not ``multiprocessing``,
whose ``spawn`` re-imports the caller's main script (a script without an ``if __name__ == "__main__"`` guard
would import again) and whose ``fork`` is unsafe in a process with threads, such as the studio's server.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from notifier.audience._columns import ExtraColumns
from notifier.audience._files import Meter
from notifier.audience._rows import RecipientRecord, Rejection

FROM_BYTES = 8 * 1024 * 1024  # smaller files are read in-process: starting the child costs about half a second
CHUNK = 1000  # rows in one message at least; a message holds a batch when batches are bigger

Item = RecipientRecord | Rejection
_BOOT = ("import os, pickle, sys; channel = os.fdopen(os.dup(1), 'wb'); os.dup2(2, 1); "
         "sys.path[:], args = pickle.load(sys.stdin.buffer); "
         "from notifier.audience._reader import serve; serve(channel, *args)")


def read_in_child(path: Path, fmt: str | None, extra_columns: ExtraColumns, rename: Mapping[str, str] | None,
                  meter: Meter, batch_size: int) -> Iterator[Item]:
    """The rows of :func:`notifier.audience.read_audience`, read by a child process; ``meter`` follows its reading.

    The child sends a batch's worth of rows or more at a time, so it validates the next batch while this process
    stores one. Close the iterator when stopping early: that ends the child.
    """
    child = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    told_all = False  # the child said its last word and is ending by itself
    try:
        with contextlib.suppress(BrokenPipeError), child.stdin as order:  # a child that died is reported below
            pickle.dump((sys.path, (str(path), fmt, extra_columns, dict(rename or {}), max(CHUNK, batch_size))), order)
        while True:
            try:
                kind, payload, read = pickle.load(child.stdout)
            except EOFError:
                raise RuntimeError(f"the process reading {path} stopped (exit code {child.wait()})") from None
            meter.tell(read)
            if kind == "rows":
                yield from payload
                continue
            told_all = True
            if kind == "error":
                raise payload
            return
    finally:
        child.stdout.close()
        if not told_all and child.poll() is None:  # the import stopped early: the child need not read on
            child.kill()
        child.wait()


def serve(channel: IO[bytes], path: str, fmt: str | None, extra_columns: ExtraColumns, rename: dict[str, str],
          chunk_size: int) -> None:
    """The child: every row of the file, ``chunk_size`` at a time, then "end", or the error that stopped the reading."""
    from notifier.audience import read_audience

    meter = Meter()
    chunk: list[Item] = []

    def send(kind: str, payload: Any) -> None:
        pickle.dump((kind, payload, meter.read_bytes()), channel, protocol=pickle.HIGHEST_PROTOCOL)
        channel.flush()

    try:
        for item in read_audience(path, fmt, extra_columns=extra_columns, rename=rename, meter=meter):
            chunk.append(item)
            if len(chunk) >= chunk_size:
                send("rows", chunk)
                chunk = []
        send("rows", chunk)
        send("end", None)
    except (BrokenPipeError, KeyboardInterrupt):  # the importing process stopped listening, or was interrupted
        with contextlib.suppress(OSError):
            channel.close()
        return
    except Exception as exc:  # an AudienceError (bad header, bytes that are not UTF-8), or a bug
        send("rows", chunk)
        send("error", _picklable(exc))


def _picklable(exc: Exception) -> Exception:
    """The exception itself when it survives the pipe, else a RuntimeError carrying its traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any failure to round-trip means: send the text instead
        return RuntimeError("reading the audience failed:\n" + "".join(traceback.format_exception(exc)))
    return exc
