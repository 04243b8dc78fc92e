"""Audience import speed on PostgreSQL: the bench's audience into a fresh database, with and without the reader process.

Run:  python bench/import_speed.py [--recipients 1000000] [--server postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Writes the bench's audience (bench/population.py), then imports it twice, each time in a process of its own into
a scratch database of its own, as the bench does (``batch_size=1000``): once as ``import_audience`` runs a big
file (read and validated by a child process while the import stores), and once on the simple path, all in one
process, as a file under notifier.audience._reader.FROM_BYTES is read. Prints the time and peak RSS of both and
the ratio of their times. The issue's target: 1,000,000 recipients in 60 s or less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def child(path: str, server: str, simple: bool) -> None:
    """One import into a scratch database; prints its figures as JSON."""
    from bench.services import scratch_database
    from notifier.audience import _reader, import_audience
    from notifier.ledger.db import make_engine, session_factory, upgrade

    if simple:
        _reader.FROM_BYTES = sys.maxsize
    with scratch_database(server, f"notifier_import_speed_{os.getpid()}") as url:
        engine = make_engine(url)
        upgrade(engine)
        began = time.perf_counter()
        report = import_audience(session_factory(engine), path, now=datetime.now(UTC), batch_size=1000)
        seconds = time.perf_counter() - began
        engine.dispose()
    print(json.dumps({"accepted": report.accepted, "rejected": report.rejected, "seconds": seconds,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "reader_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def measure(path: Path, server: str, simple: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(path), "--server", server] + (["--simple"] if simple else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server URL (a database of its own "
                        "is created and dropped on it)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--simple", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.server, args.simple)
        return
    from bench.population import write_audience

    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
        path = write_audience(Path(tmp) / "audience.csv", args.recipients)
        fast = measure(path, args.server, simple=False)
        simple = measure(path, args.server, simple=True)
    for label, r in (("two cores", fast), ("one process", simple)):
        reader = f" (reader process {r['reader_peak_mib']:.0f} MiB)" if r["reader_peak_mib"] else ""
        print(f"{label:>11}: {r['accepted']:>9,} accepted, {r['rejected']:,} rejected in {r['seconds']:6.1f} s = "
              f"{r['accepted'] / r['seconds']:7,.0f} rows/s, peak RSS {r['peak_mib']:.0f} MiB{reader}")
    print(f"one process / two cores: {simple['seconds'] / fast['seconds']:.2f}x the time")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
