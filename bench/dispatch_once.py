"""One ``notifier dispatch --once`` tick at N recipients, both channels, in one process: the path small installations
use, against the box's own ceiling for the same messages in the same run.

    python -m bench.dispatch_once --recipients 100000      (about 3 minutes here)

Imports the benchmark's audience into a PostgreSQL database of its own, schedules the shipped campaign moved so its
first wave is due now (``bench/wave.py``), and times one ``Dispatcher.tick`` (maintenance, then every due message
through the SendGrid and firebase-admin SDKs to the emulator in ids-only mode). Around the tick it reads what the
process spent in CPU and what PostgreSQL did (``pg_stat_database``, WAL bytes), per message. The baseline is the
ceiling of the same mix: the seconds the emulator alone takes to accept that many emails from prebuilt bodies
(``bench/email_ceiling.py``) plus that many pushes from a bare pooled client (``bench/ceiling.py``). The last line is
the summary: ``dispatch-once: recipients=N messages=X seconds=X per_s=X ceiling_per_s=X ratio=X cpu_us=X wal_bytes=X
rows_written=X tuples_read=X ledger_bytes=X`` (the database's bytes on disk per message after a VACUUM; the line
before it splits them by table).

Two settings help find where PostgreSQL reads: ``BENCH_READS=1`` prints the tables and indexes read most (sequential
and index reads, the whole run), ``BENCH_EXPLAIN=30ms`` loads auto_explain so every statement slower than that
writes its plan to the server's log.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.__main__ import DEFAULT_SERVER, SECRETS
from bench.population import write_audience
from bench.services import scratch_database
from bench.wave import due_now


def _ledger_counters(engine: Any) -> list[int]:
    """WAL position, commits, rows inserted, rows updated, tuples read: the database's own counters."""
    from sqlalchemy import text

    with engine.connect() as c:
        wal = c.scalar(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
        stats = c.execute(text("SELECT xact_commit, tup_inserted, tup_updated, tup_returned + tup_fetched "
                               "FROM pg_stat_database WHERE datname = current_database()")).one()
    return [int(wal), *map(int, stats)]


def run(n: int, server: str, workdir: Path) -> dict[str, float]:
    """The tick's figures at ``n`` recipients."""
    from sqlalchemy import text

    from notifier.audience import import_audience
    from notifier.campaign import parse_campaign
    from notifier.config import load_settings
    from notifier.emulator.process import run_emulator
    from notifier.ledger import queries
    from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
    from notifier.planner import plan_zone
    from notifier.render import Content
    from notifier.wiring import build_dispatcher

    audience = workdir / "audience.csv"
    write_audience(audience, n)
    with scratch_database(server, f"notifier_bench_once_{os.getpid()}") as url, \
            run_emulator(workdir, log="ids") as emulator:
        engine = make_engine(url)
        if os.environ.get("BENCH_EXPLAIN"):  # slow statements' plans go to the server's log (auto_explain)
            from sqlalchemy import event

            @event.listens_for(engine, "connect")
            def _explain(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cur:
                    cur.execute("LOAD 'auto_explain'")
                    cur.execute(f"SET auto_explain.log_min_duration = '{os.environ['BENCH_EXPLAIN']}'")
                dbapi_conn.commit()
        upgrade(engine)
        sessions = session_factory(engine)
        settings = load_settings({**os.environ, **SECRETS, "NOTIFIER_DATABASE_URL": url,
                                  "NOTIFIER_TRANSPORT": "providers", "SENDGRID_API_KEY": "SG.bench",
                                  "NOTIFIER_SENDGRID_HOST": emulator.url, "NOTIFIER_FCM_ENDPOINT": emulator.url,
                                  "GOOGLE_APPLICATION_CREDENTIALS": str(emulator.credentials)})
        now = datetime.now(UTC)
        import_audience(sessions, audience, now=now, batch_size=1000)
        spec, scheduled = due_now(now)
        campaign = parse_campaign(spec, source=str(workdir / "tiktok-music-shutdown.yaml"))
        with transaction(sessions) as s:
            queries.schedule(s, campaign, spec, scheduled, Content.of(campaign, settings.templates_dir,
                                                                       settings.locales_dir), plan_zone)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("ANALYZE"))
        dispatcher = build_dispatcher(settings, sessions)
        try:
            before, cpu, began = _ledger_counters(engine), time.process_time(), time.perf_counter()
            report = dispatcher.tick(datetime.now(UTC))
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        finally:
            dispatcher.close()
        time.sleep(1)  # pg_stat_database is updated by the backends shortly after their transactions
        if os.environ.get("BENCH_READS"):
            with engine.connect() as c:
                for row in c.execute(text(
                        "SELECT relname, seq_tup_read, idx_tup_fetch FROM pg_stat_user_tables "
                        "ORDER BY seq_tup_read + coalesce(idx_tup_fetch, 0) DESC LIMIT 6")):
                    print("  reads", *row)
                for row in c.execute(text(
                        "SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes ORDER BY 2 DESC LIMIT 6")):
                    print("  index reads", *row)
        spent = [b - a for a, b in zip(before, _ledger_counters(engine), strict=True)]
        with engine.connect() as c:
            by_channel = dict(c.execute(text("SELECT channel, count(*) FROM deliveries WHERE state = 'sent' "
                                             "GROUP BY channel")).all())
            pushes = int(c.scalar(text("SELECT count(*) FROM deliveries d JOIN push_tokens t ON "
                                       "t.recipient_seq = d.recipient_seq AND t.active WHERE d.channel = 'push' "
                                       "AND d.state = 'sent'")))
        sizes, parts = _sizes(engine)
        engine.dispose()
    messages = sum(report.outcomes.values())
    print("  bytes per message after VACUUM: " + ", ".join(
        f"{table} {size / messages:,.0f}" for table, size in sizes.items() if size / messages >= 1)
        + f"; the whole database {sum(sizes.values()) / messages:,.0f}")
    print("  of which deliveries: " + ", ".join(f"{name} {size / messages:,.0f}" for name, size in parts.items()))
    return {"messages": messages, "seconds": seconds, "emails": by_channel.get("email", 0), "pushes": pushes,
            "cpu_us": cpu / messages * 1e6, "wal_bytes": spent[0] / messages,
            "rows_written": (spent[2] + spent[3]) / messages, "tuples_read": spent[4] / messages,
            "ledger_bytes": sum(sizes.values()) / messages}


def _sizes(engine: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Each table's bytes on disk with its indexes and TOAST, after a VACUUM (what autovacuum leaves), largest
    first (``(rest)`` is what the database holds besides: catalogs, an empty database's own); and the delivery
    rows' heap and each of their indexes."""
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM"))
        tables = dict(c.execute(text(  # a partition counts as its table (migration 0014)
            "SELECT COALESCE(pg_partition_root(oid), oid)::regclass::text, sum(pg_total_relation_size(oid)) "
            "FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace GROUP BY 1 "
            "ORDER BY 2 DESC")).all())
        whole = int(c.scalar(text("SELECT pg_database_size(current_database())")))
        parts = dict(c.execute(text(  # the delivery rows' heap and each of their indexes, over the partitions
            "SELECT 'heap', sum(pg_table_size(relid)) FROM pg_partition_tree('deliveries') WHERE isleaf "
            "UNION ALL SELECT replace(i.relname, t.relname, 'deliveries'), sum(pg_relation_size(i.oid)) "
            "FROM pg_partition_tree('deliveries') AS p JOIN pg_class AS t ON t.oid = p.relid "
            "JOIN pg_index AS x ON x.indrelid = p.relid JOIN pg_class AS i ON i.oid = x.indexrelid "
            "WHERE p.isleaf GROUP BY 1 ORDER BY 2 DESC")).all())
        columns = [r[0] for r in c.execute(text(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'deliveries'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"))]
        widths = c.execute(text("SELECT " + ", ".join(f'avg(pg_column_size("{name}"))' for name in columns)
                                + " FROM deliveries")).one()
    print("  a delivery row's columns, mean bytes: " + ", ".join(
        f"{name} {float(w or 0):.0f}" for name, w in zip(columns, widths, strict=True)))
    return {**{k: int(v) for k, v in tables.items()}, "(rest)": whole - sum(tables.values())}, \
        {k: int(v) for k, v in parts.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch_once", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server URL (a database is created)")
    parser.add_argument("--email-ceiling-requests", type=int, default=100, help="1,000-message bodies posted")
    parser.add_argument("--push-ceiling-requests", type=int, default=20_000)
    args = parser.parse_args(argv)

    from bench.ceiling import push_ceiling
    from bench.email_ceiling import email_ceiling

    with tempfile.TemporaryDirectory(prefix="notifier-once-") as tmp:
        got = run(args.recipients, args.server, Path(tmp))
        email = email_ceiling(Path(tmp), requests=args.email_ceiling_requests)
    push = push_ceiling(requests=args.push_ceiling_requests)
    ceiling_seconds = got["emails"] / email.per_s + got["pushes"] / push.per_s
    per_s = got["messages"] / got["seconds"]
    ceiling = got["messages"] / ceiling_seconds
    print(f"  {got['messages']:,} messages ({got['emails']:,} emails, {got['pushes']:,} pushes) in "
          f"{got['seconds']:.1f} s; ceiling of the same mix: emails {email.per_s:,.0f}/s, pushes {push.per_s:,.0f}/s")
    summary = {"recipients": args.recipients, "messages": got["messages"], "seconds": round(got["seconds"], 1),
               "per_s": round(per_s), "ceiling_per_s": round(ceiling), "ratio": round(per_s / ceiling, 3),
               "cpu_us": round(got["cpu_us"]), "wal_bytes": round(got["wal_bytes"]),
               "rows_written": round(got["rows_written"], 2), "tuples_read": round(got["tuples_read"], 1),
               "ledger_bytes": round(got["ledger_bytes"])}
    print("dispatch-once: " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)


if __name__ == "__main__":
    main()
