"""What the audit log costs, on PostgreSQL: the line every audited action writes, and the check of the whole chain.

    python -m bench.audit_log --transactions 2000 --threads 4 --lines 1000000     (about 3 minutes here)

- Actions: ``--threads`` threads each run their share of ``--transactions`` small transactions that change one row
  (a campaign's state, as pause and resume do). Once without an audit line (the baseline, in the same run), once
  with ``audit.record`` (a line chained to the one before, written at commit under the head's lock: the threads'
  lines wait for each other there). Reported as the mean milliseconds of a transaction, and their ratio.
- The chain: ``--lines`` lines written in batches, then ``audit.verify`` walks them all (what ``notifier audit
  --verify`` and the page's "Check the chain" do), in seconds and lines per second.

The last line is the summary: ``audit-log: transactions=T threads=N plain_ms=X audited_ms=X ratio=X lines=L
verify_s=X lines_per_s=X``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from bench.services import scratch_database
from notifier.ledger import audit
from notifier.ledger.db import make_engine, session_factory, transaction, upgrade

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def run_threads(threads: int, per_thread: int, work: Callable[[int, int], None]) -> float:
    """``work(thread, i)`` for each thread's share, all threads at once; the mean milliseconds of one call."""
    start = threading.Barrier(threads + 1)

    def each(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            work(t, i)

    pool = [threading.Thread(target=each, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    return (time.perf_counter() - began) * 1000 * threads / (threads * per_thread)


def actions(sessions: sessionmaker[Session], threads: int, per_thread: int, audited: bool) -> float:
    """Each transaction flips its thread's row, as a pause or a resume does; with or without its audit line."""
    def work(t: int, i: int) -> None:
        with transaction(sessions) as s:
            s.execute(text("UPDATE bench_rows SET state = :state WHERE id = :id"),
                      {"state": "paused" if i % 2 else "scheduled", "id": t})
            if audited:
                audit.record(s, "pause" if i % 2 else "resume", campaign_id=f"bench-{t}", detail={"i": i})

    return run_threads(threads, per_thread, work)


def fill(sessions: sessionmaker[Session], lines: int, batch: int = 5000) -> None:
    written = 0
    now = datetime.now(UTC)
    while written < lines:
        n = min(batch, lines - written)
        with transaction(sessions) as s:
            for i in range(n):
                audit.record(s, "edit", campaign_id=f"c{(written + i) % 50}", at=now,
                             actor=audit.Actor(f"person:{i % 7 + 1}", f"p{i % 7}@example.com", "10.0.0.1", i % 7 + 1),
                             detail={"version": written + i, "origin": "studio"})
        written += n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_log", description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--lines", type=int, default=100_000, help="lines whose chain is checked")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server (its postgres database)")
    args = parser.parse_args(argv)
    per_thread = max(1, args.transactions // args.threads)
    with scratch_database(args.server, "notifier_bench_audit") as url:
        engine = make_engine(url, pool_size=args.threads + 2)
        upgrade(engine)
        sessions = session_factory(engine)
        with engine.begin() as c:
            c.execute(text("CREATE TABLE bench_rows (id int PRIMARY KEY, state text)"))
            c.execute(text("INSERT INTO bench_rows SELECT g, 'scheduled' FROM generate_series(0, :n) g"),
                      {"n": args.threads})
        actions(sessions, args.threads, max(1, per_thread // 10), audited=True)  # warm both paths' caches
        plain = actions(sessions, args.threads, per_thread, audited=False)
        audited = actions(sessions, args.threads, per_thread, audited=True)
        print(f"actions: {args.threads} threads x {per_thread} transactions: {plain:.2f} ms each without a line, "
              f"{audited:.2f} ms with it ({audited / plain:.2f}x)")
        fill(sessions, max(0, args.lines - args.threads * per_thread * 11 // 10))
        began = time.perf_counter()
        with sessions() as s:
            check = audit.verify(s)
        seconds = time.perf_counter() - began
        assert check.intact, check.problem
        print(f"verify: {check.lines:,} lines in {seconds:.2f} s ({check.lines / seconds:,.0f} lines/s), intact")
        engine.dispose()
    print(f"audit-log: transactions={args.threads * per_thread} threads={args.threads} plain_ms={plain:.2f} "
          f"audited_ms={audited:.2f} ratio={audited / plain:.2f} lines={check.lines} verify_s={seconds:.2f} "
          f"lines_per_s={check.lines / seconds:.0f}")


if __name__ == "__main__":
    main()
