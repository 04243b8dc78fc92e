"""One wave of the shutdown campaign to N recipients, against the naive design, on this machine.

    python -m bench --recipients 1000000        (about 6 minutes here; --recipients 2000 is the test's smoke run)

Generates an audience in a stream, imports it into a PostgreSQL database of its own, schedules and plans the
campaign, sends its first wave (email, then push) through the real SDKs to the emulator (ids-only log) with two
Celery workers on a private Redis, measures the box's push and email ceilings (bench/ceiling.py,
bench/email_ceiling.py) and the naive baseline in the same run, and records every figure: a PNG chart and a row of
bench/RESULTS.md. Above 100,000 recipients it also runs at 100,000 first, so memory can be compared across sizes.
The last line printed is the summary (``bench: recipients=N import_s=X ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.population import write_audience
from bench.services import ROOT, Workers, private_redis, scratch_database, wait_for, wait_for_workers

DEFAULT_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRETS = {"NOTIFIER_SECRET_KEY": "bench-" + "k" * 40, "NOTIFIER_PUBLIC_URL": "https://notify.bench.example"}
ACCEPTED = {"email": "emails_accepted", "push": "pushes_accepted"}  # the emulator's counters
SUMMARY = ("recipients", "import_s", "plan_s", "email_per_s", "push_per_s", "push_ceiling_per_s", "push_ratio",
           "baseline_email_per_s", "speedup_email", "peak_rss_mb", "email_ceiling_per_s", "email_ratio",
           "materialize_s", "ledger_bytes_per_message")


@dataclass
class Size:
    """What one run at one audience size measured."""

    recipients: int
    generate_s: float = 0.0
    imported: int = 0
    import_s: float = 0.0
    plan_s: float = 0.0
    materialize_s: float = 0.0
    emails: int = 0
    email_s: float = 0.0
    pushes: int = 0  # FCM requests (one per token)
    push_rows: int = 0
    push_s: float = 0.0
    vacuum_s: float = 0.0  # ANALYZE and VACUUM between phases (what autovacuum would do; off on some servers)
    outcomes: dict[str, int] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)  # process → peak RSS
    ledger_mb: float = 0.0
    samples: list[Any] = field(default_factory=list)

    @property
    def email_per_s(self) -> float:
        return self.emails / self.email_s if self.email_s else 0.0

    @property
    def push_per_s(self) -> float:
        return self.pushes / self.push_s if self.push_s else 0.0

    @property
    def ledger_bytes_per_message(self) -> float:
        """The ledger's bytes on disk over its delivery rows (``outcomes`` counts every row)."""
        rows = sum(self.outcomes.values())
        return self.ledger_mb * 1024 * 1024 / rows if rows else 0.0


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


def _set_faults_off(url: str) -> None:
    request = urllib.request.Request(f"{url}/_emulator/reset", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def run_size(n: int, server_url: str, workdir: Path, *, workers: int, chunk: int, baseline_sample: int,
             progress: Any) -> tuple[Size, Any]:
    """Everything at one size, on fresh services; returns the figures and the naive baseline (or None)."""
    from celery import Celery
    from sqlalchemy import text

    from bench.naive import naive_baseline
    from notifier import distributed
    from notifier.audience import import_audience
    from notifier.campaign import parse_campaign
    from notifier.config import load_settings
    from notifier.emulator.process import run_emulator
    from notifier.ledger import queries
    from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
    from notifier.planner import plan_zone
    from notifier.render import Content
    from notifier.wiring import build_dispatcher

    size = Size(n)
    audience = workdir / f"audience-{n}.csv"
    began = time.perf_counter()
    write_audience(audience, n)
    size.generate_s = time.perf_counter() - began
    progress(f"{n:,} recipients generated in {size.generate_s:.1f} s")
    with scratch_database(server_url, f"notifier_bench_{os.getpid()}") as db_url, private_redis(workdir) as broker, \
            run_emulator(workdir, log="ids") as emulator:
        engine = make_engine(db_url)
        upgrade(engine)
        sessions = session_factory(engine)
        env = {**os.environ, **SECRETS, "NOTIFIER_DATABASE_URL": db_url, "NOTIFIER_BROKER_URL": broker,
               "NOTIFIER_TRANSPORT": "providers", "SENDGRID_API_KEY": "SG.bench",
               "NOTIFIER_SENDGRID_HOST": emulator.url, "NOTIFIER_FCM_ENDPOINT": emulator.url,
               "GOOGLE_APPLICATION_CREDENTIALS": str(emulator.credentials), "NOTIFIER_CHUNK_SIZE": str(chunk),
               "NOTIFIER_BATCH_SIZE": str(chunk), "PYTHONUNBUFFERED": "1"}
        settings = load_settings(env)

        now = datetime.now(UTC)
        began = time.perf_counter()
        imported = import_audience(sessions, audience, now=now, batch_size=1000)
        size.import_s = time.perf_counter() - began
        size.imported = imported.accepted
        size.vacuum_s += _vacuum(engine, "ANALYZE recipients, push_tokens")
        progress(f"imported {imported.accepted:,} ({imported.rejected:,} rejected) in {size.import_s:.1f} s")

        from bench.wave import due_now

        spec, scheduled = due_now(now)
        campaign = parse_campaign(spec, source=str(workdir / "tiktok-music-shutdown.yaml"))
        began = time.perf_counter()
        with transaction(sessions) as s:
            queries.schedule(s, campaign, spec, scheduled, Content.of(campaign, settings.templates_dir,
                                                                       settings.locales_dir), plan_zone)
        size.plan_s = time.perf_counter() - began
        progress(f"scheduled and planned in {size.plan_s:.2f} s")

        baseline = None
        if baseline_sample:
            baseline = naive_baseline(db_url, broker, emulator.url, emulator.credentials, baseline_sample,
                                      workers=workers)
            progress(f"naive baseline on {baseline.emails:,} emails: {baseline.email_per_s:,.0f}/s")
            _set_faults_off(emulator.url)  # forget what the baseline sent: the counts below are ours alone

        fleet = Workers(env, workdir)
        publisher = Celery("bench-tick", set_as_current=False)
        publisher.conf.update(distributed.celery_config(settings))
        dispatcher = build_dispatcher(settings, sessions)
        sampler = report.Sampler(lambda: {k: int(_stats(emulator.url)[ACCEPTED[k]]) for k in ACCEPTED})
        try:
            names = fleet.start(workers)
            wait_for_workers(publisher, names, fleet)
            sampler.start()
            began = time.perf_counter()
            tick = dispatcher.prepare(datetime.now(UTC))
            size.materialize_s = time.perf_counter() - began
            size.vacuum_s += _vacuum(engine, "ANALYZE deliveries")
            progress(f"materialized {tick.materialized:,} delivery rows in {size.materialize_s:.1f} s")

            def publish(channel: str, ids: list[int]) -> None:
                publisher.send_task("notifier.send_chunk", args=(ids,), queue=channel)

            for channel in ("email", "push"):
                before = _stats(emulator.url)[ACCEPTED[channel]]
                began = time.perf_counter()
                expected = before + _expected(engine, channel)
                queued = dispatcher.enqueue(datetime.now(UTC), publish, chunk, channels=[channel],
                                            maintain=False).claimed
                _wait_done(engine, channel, fleet, emulator.url, expected)
                took = time.perf_counter() - began
                sent = _stats(emulator.url)[ACCEPTED[channel]] - before
                if channel == "email":
                    size.emails, size.email_s = sent, took
                else:
                    size.pushes, size.push_rows, size.push_s = sent, queued, took
                progress(f"{channel}: {queued:,} rows, {sent:,} messages in {took:.1f} s = {sent / took:,.0f}/s")
                if channel == "email":  # the email wave left a row version behind per update
                    size.vacuum_s += _vacuum(engine, "VACUUM (ANALYZE) deliveries")
            size.rss_mb = {f"worker{i}": report.peak_rss_mb(pid) for i, pid in enumerate(fleet.pids)}
            size.rss_mb["emulator"] = report.peak_rss_mb(emulator.process.pid)
            size.rss_mb["tick"] = report.peak_rss_mb(os.getpid())
        finally:
            size.samples = sampler.stop()
            fleet.stop()
            publisher.close()
            dispatcher.close()
        with engine.connect() as c:
            size.outcomes = {f"{ch}:{st}": k for ch, st, k in c.execute(text(
                "SELECT channel, state, count(*) FROM deliveries GROUP BY channel, state ORDER BY 1, 2"))}
        size.ledger_mb = report.ledger_size_mb(engine)
        engine.dispose()
    audience.unlink()
    return size, baseline


def _vacuum(engine: Any, statement: str) -> float:
    """Run ``statement`` outside a transaction; its seconds. The benchmark does what autovacuum would have done by
    then (it is off on the shared test server here), so the figures do not depend on the server's setting."""
    from sqlalchemy import text

    began = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(statement))
    return time.perf_counter() - began


def _expected(engine: Any, channel: str) -> int:
    """Messages the due rows of ``channel`` make: one per email row, one per active token of a push row."""
    from sqlalchemy import text

    query = ("SELECT count(*) FROM deliveries WHERE channel = 'email' AND state = 'pending'" if channel == "email" else
             "SELECT count(*) FROM deliveries d JOIN push_tokens t ON t.recipient_seq = d.recipient_seq AND t.active "
             "WHERE d.channel = 'push' AND d.state = 'pending'")
    with engine.connect() as c:
        return int(c.scalar(text(query)))


def _wait_done(engine: Any, channel: str, fleet: Workers, emulator: str, expected: int) -> None:
    """Until the emulator has every message and no row of ``channel`` is queued or being sent (the ledger, not
    the broker, says the wave is done). Polls the emulator, not the ledger, while messages are still arriving."""
    from sqlalchemy import text

    last = [-1, time.monotonic()]  # the emulator's count, and when it last moved

    def done() -> bool:
        if not fleet.alive():
            raise SystemExit(f"bench: a worker died\n{fleet.log_tail()}")
        accepted = _stats(emulator)[ACCEPTED[channel]]
        if accepted != last[0]:
            last[:] = [accepted, time.monotonic()]
        if accepted < expected and time.monotonic() - last[1] < 2:  # still arriving (a refusal never arrives)
            return False
        with engine.connect() as c:
            return not c.scalar(text("SELECT EXISTS (SELECT 1 FROM deliveries WHERE channel = :c AND state IN "
                                     "('queued', 'sending'))"), {"c": channel})

    wait_for(done, 3600, f"the {channel} wave did not finish", interval=0.05)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=1000, help="rows per chunk task (NOTIFIER_CHUNK_SIZE)")
    parser.add_argument("--baseline-sample", type=int, default=1000, help="recipients sent the naive way")
    parser.add_argument("--ceiling-requests", type=int, default=20000)
    parser.add_argument("--email-ceiling-requests", type=int, default=200,
                        help="1,000-personalization bodies posted to the emulator for the email ceiling")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server URL (a database of its own "
                                                                  "is created and dropped there)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where the chart and RESULTS.md go")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the services are still stopped and dropped
    if args.recipients < 1:
        parser.error("--recipients must be at least 1")

    from bench.ceiling import push_ceiling
    from bench.email_ceiling import email_ceiling

    def progress(line: str) -> None:
        print(f"  {line}", flush=True)

    sizes = [100_000, args.recipients] if args.recipients > 100_000 else [args.recipients]
    runs: list[Size] = []
    baseline = None
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
        for n in sizes:
            print(f"bench: {n:,} recipients", flush=True)
            sample = min(args.baseline_sample, n) if n == sizes[-1] else 0
            size, got = run_size(n, args.server, Path(tmp), workers=args.workers, chunk=args.chunk,
                                 baseline_sample=sample, progress=progress)
            runs.append(size)
            baseline = got or baseline
        email = email_ceiling(Path(tmp), requests=args.email_ceiling_requests)
    progress(f"email ceiling (pooled {email.client} → the emulator, prebuilt {email.body_bytes:,}-byte bodies of "
             f"1,000): {email.per_s:,.0f}/s, the emulator at {email.emulator_cpu_share:.0%} of a core, "
             f"{email.emulator_us_per_message:.1f} µs CPU a message")
    ceiling = push_ceiling(requests=args.ceiling_requests)
    progress(f"push ceiling (pooled aiohttp → bare aiohttp server): {ceiling.per_s:,.0f}/s")
    last = runs[-1]
    when = datetime.now(UTC)
    chart = report.chart(last.samples, args.out / f"wave-{last.recipients}.png",
                         f"{last.recipients:,} recipients, {os.cpu_count()} cores, {when:%Y-%m-%d}")
    baseline_email = baseline.email_per_s if baseline else 0.0
    summary = {
        "recipients": last.recipients, "import_s": round(last.import_s, 1), "plan_s": round(last.plan_s, 2),
        "email_per_s": round(last.email_per_s), "push_per_s": round(last.push_per_s),
        "push_ceiling_per_s": round(ceiling.per_s), "push_ratio": round(last.push_per_s / ceiling.per_s, 2),
        "baseline_email_per_s": round(baseline_email, 1),
        "speedup_email": round(last.email_per_s / baseline_email, 1) if baseline_email else 0.0,
        "peak_rss_mb": round(max(last.rss_mb.values()), 1),
        "email_ceiling_per_s": round(email.per_s), "email_ratio": round(last.email_per_s / email.per_s, 3),
        "materialize_s": round(last.materialize_s, 1),
        "ledger_bytes_per_message": round(last.ledger_bytes_per_message),
    }
    for run in runs:
        progress(f"{run.recipients:,}: peak RSS MB {json.dumps({k: round(v, 1) for k, v in run.rss_mb.items()})}, "
                 f"ledger {run.ledger_mb:,.0f} MB, outcomes {json.dumps(run.outcomes)}")
    progress(f"chart: {chart}")
    if not args.no_results:
        small = runs[0]
        row: dict[str, object] = {
            "date": f"{when:%Y-%m-%d %H:%M}", "cores": os.cpu_count(), **summary, "vacuum_s": round(last.vacuum_s, 1),
            "emails": last.emails, "email_s": round(last.email_s, 1),
            "pushes": last.pushes, "push_s": round(last.push_s, 1),
            "worker_rss_mb": round(max(v for k, v in last.rss_mb.items() if k.startswith("worker")), 1),
            "emulator_rss_mb": round(last.rss_mb["emulator"], 1), "tick_rss_mb": round(last.rss_mb["tick"], 1),
            "worker_rss_mb_100k": round(max(v for k, v in small.rss_mb.items() if k.startswith("worker")), 1)
            if small.recipients == 100_000 else "",
            "ledger_mb": round(last.ledger_mb), "ledger_mb_100k": round(small.ledger_mb)
            if small.recipients == 100_000 else "",
            "baseline_sample": baseline.emails if baseline else 0,
        }
        report.append_results(args.out / "RESULTS.md", row,
                              heading=f"## `python -m bench`, columns as of {when:%Y-%m-%d}")
    print("bench: " + " ".join(f"{k}={summary[k]}" for k in SUMMARY), flush=True)


if __name__ == "__main__":
    main()
