"""Audience import at scale: peak memory must stay flat as the file grows.

Run:  python bench/import_memory.py [--small 50000] [--large 1000000]

Each size is imported into a fresh SQLite ledger in its own process (so peak RSS is that import's own);
the small run is the baseline measured in the same run. Prints rows/s and peak RSS for both, and the
ratio large/small of peak RSS: about 1.0 means memory does not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ZONES = [("ID", "Asia/Jakarta"), ("BR", "America/Sao_Paulo"), ("MX", "America/Mexico_City"),
         ("AU", "Australia/Sydney"), ("SG", "Asia/Singapore")]
LOCALES = ["id", "pt-BR", "es-MX", "en-AU", "en-SG"]


def write_audience(path: Path, rows: int) -> None:
    """A synthetic CSV, written line by line (the generator holds nothing either)."""
    rng = random.Random(rows)
    with path.open("w", encoding="utf-8") as f:
        f.write("id,email,name,locale,timezone,country,push_tokens\n")
        for i in range(rows):
            k = rng.randrange(5)
            country, tz = ZONES[k]
            token = f"tok{i:08d}{rng.getrandbits(64):016x}" if rng.random() < 0.6 else ""
            f.write(f"r{i:08d},user{i}@example.com,User {i},{LOCALES[k]},{tz},{country},{token}\n")


def child(path: str, db: str) -> None:
    from notifier.audience import import_audience
    from notifier.ledger.db import make_engine, session_factory, upgrade

    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    start = time.perf_counter()
    report = import_audience(session_factory(engine), path, now=datetime(2024, 9, 1, tzinfo=UTC))
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": report.accepted, "rejected": report.rejected, "seconds": seconds,
                      "peak_mib": peak_kib / 1024}))


def measure(rows: int, tmp: Path) -> dict[str, float]:
    csv_path, db = tmp / f"audience-{rows}.csv", tmp / f"ledger-{rows}.db"
    write_audience(csv_path, rows)
    out = subprocess.run([sys.executable, __file__, "--child", str(csv_path), str(db)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
        small = measure(args.small, Path(tmp))
        large = measure(args.large, Path(tmp))
    for label, r in (("baseline", small), ("large", large)):
        print(f"{label:>8}: {r['rows']:>9,} rows in {r['seconds']:6.1f} s = {r['rows'] / r['seconds']:8,.0f} rows/s, "
              f"peak RSS {r['peak_mib']:6.1f} MiB")
    print(f"peak RSS ratio large/baseline: {large['peak_mib'] / small['peak_mib']:.2f} "
          f"for {args.large / args.small:.0f}x the rows (1.00 = flat)")


if __name__ == "__main__":
    main()
