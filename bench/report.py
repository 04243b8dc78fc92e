"""What a bench run reports: peak memory from /proc, a sampled send rate and its chart, the RESULTS.md table.

Linux only for memory (it reads /proc); matplotlib only for the chart, imported when a chart is drawn.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Sample = tuple[float, dict[str, int]]  # (time.monotonic(), counts so far per channel)

RESULTS_INTRO = ("Benchmark results of notifier on this box, one row per run. Produce a row with "
                 "`python -m bench --recipients N`; a run appends it to the table under the header it matches.")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MB, 0.0 if it is gone: what a wave cost at its worst."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return 0.0  # a zombie has no memory lines


def _children(pid: int) -> list[int]:
    """Direct children of a process, from /proc/<pid>/task/*/children (kernel 3.5+ with CONFIG_PROC_CHILDREN)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def tree_peak_rss_mb(pid: int) -> float:
    """The largest peak RSS of a process and its live descendants: the biggest worker of a pool, not their sum."""
    best, todo, seen = 0.0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        best = max(best, peak_rss_mb(current))
        todo.extend(_children(current))
    return best


class Sampler:
    """Calls ``probe`` every ``interval`` seconds on a daemon thread, so a wave's rate can be drawn afterwards.

    A probe that raises leaves no sample for that tick (counted in ``skipped``) instead of ending the sampling.
    """

    def __init__(self, probe: Callable[[], dict[str, int]], interval: float = 0.25) -> None:
        self.probe, self.interval = probe, interval
        self.samples: list[Sample] = []
        self.skipped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._take()
            if self._stop.wait(self.interval):
                return

    def _take(self) -> None:
        try:
            counts = dict(self.probe())
        except Exception:  # a probe hiccup (the server busy, a query timing out) is one missing point, not a crash
            self.skipped += 1
            return
        self.samples.append((time.monotonic(), counts))

    def stop(self) -> list[Sample]:
        """Stop, take one last sample (the wave's end), and return every sample in time order."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._take()
        return list(self.samples)


def rates(samples: Sequence[Sample], channel: str, window: int = 3) -> tuple[list[float], list[float]]:
    """Seconds from the first sample and messages/s between consecutive samples, a moving mean over ``window``."""
    points = [(t, c[channel]) for t, c in samples if channel in c]
    if len(points) < 2:
        return [], []
    start = samples[0][0]
    xs, raw = [], []
    for (t0, n0), (t1, n1) in itertools.pairwise(points):
        if t1 > t0:
            xs.append((t0 + t1) / 2 - start)
            raw.append((n1 - n0) / (t1 - t0))
    smooth = [sum(raw[max(0, i - window + 1):i + 1]) / len(raw[max(0, i - window + 1):i + 1]) for i in range(len(raw))]
    return xs, smooth


def chart(samples: Sequence[Sample], path: Path, title: str) -> Path:
    """A PNG of messages per second over the wave, one line per channel, so a stall or a ramp shows at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    channels = sorted({name for _, counts in samples for name in counts})
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    try:
        for name in channels:
            xs, ys = rates(samples, name)
            ax.plot(xs, ys, label=name, linewidth=1.5)
        ax.set_xlabel("seconds since the wave started")
        ax.set_ylabel("messages per second")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if channels:
            ax.legend()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _cell(value: object) -> str:
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _header(columns: Sequence[str]) -> str:
    return f"| {' | '.join(_cell(c) for c in columns)} |\n|{'|'.join('---' for _ in columns)}|\n"


def _columns(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(lines: Sequence[str]) -> list[tuple[list[str], int]]:
    """(columns, index of its last row) of every Markdown table in the file, in the file's order."""
    found = []
    for i in range(1, len(lines)):
        if (lines[i].startswith("|---") or lines[i].startswith("| ---")) and lines[i - 1].startswith("|"):
            end = i
            while end + 1 < len(lines) and lines[end + 1].startswith("|"):
                end += 1
            found.append((_columns(lines[i - 1]), end))
    return found


def append_results(path: Path, row: dict[str, object], heading: str | None = None) -> None:
    """Add one run to the Markdown table with its columns, wherever it is in the file (the last such table); a row
    with other columns starts a new table at the end, under ``heading`` when given, so old rows stay as they were."""
    path = Path(path)
    columns = [_cell(k) for k in row]
    line = f"| {' | '.join(_cell(v) for v in row.values())} |\n"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Bench results\n\n{RESULTS_INTRO}\n\n{_header(columns)}{line}", encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    joins = [end for found, end in _tables([x.rstrip("\n") for x in lines]) if found == columns]
    if joins:
        lines.insert(joins[-1] + 1, line)
    else:
        lines.append(f"\n{heading}\n\n{_header(columns)}{line}" if heading else f"\n{_header(columns)}{line}")
    path.write_text("".join(lines), encoding="utf-8")


def ledger_size_bytes(engine_or_url: Any) -> int:
    """The ledger's size on disk in bytes (PostgreSQL's database size, or the SQLite file and its WAL)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import Engine

    engine = engine_or_url if isinstance(engine_or_url, Engine) else create_engine(engine_or_url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if not database or database == ":memory:":
                return 0
            files = [Path(database), Path(f"{database}-wal")]
            return sum(f.stat().st_size for f in files if f.exists())
        raise ValueError(f"ledger_size_bytes knows PostgreSQL and SQLite, not {engine.dialect.name}")
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def ledger_size_mb(engine_or_url: Any) -> float:
    """The ledger's size on disk in MB (``ledger_size_bytes``): what a wave leaves behind."""
    return ledger_size_bytes(engine_or_url) / (1024 * 1024)
