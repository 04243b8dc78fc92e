"""What the dashboard's live counts cost on a big campaign, on PostgreSQL.

    python -m bench.dashboard_counts --recipients 700000     (1,050,000 delivery rows; about 75 s here)

Fills a database of its own with N recipients (SQL, in the server), schedules the shipped shutdown campaign moved
so its first wave is due, materializes that wave with the ledger's own code, and spreads the rows over the states
a wave in progress has (sent, pending, sending, skipped, failed with reasons, waiting retries). Then it times,
median of several runs each:

- the baseline: ``SELECT count(*)`` of the campaign's rows, the least any count of them can cost;
- ``views.progress``: everything the live-counts fragment reads (counts per send, locale and channel, failures,
  skips, suppressions);
- the fragment itself, ``GET /campaigns/{id}/progress``, as a logged-in browser polls it;
- the chart's poll (``GET /campaigns/{id}/timeline``) and the campaign list (``GET /campaigns``).

The last line is the summary: ``dashboard-counts: rows=N baseline_ms=X progress_ms=X fragment_ms=X chart_ms=X
list_ms=X ratio=X`` (``ratio``: the fragment against the baseline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bench.population import MARKETS
from bench.services import scratch_database

DEFAULT_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD = "the bench's own password"


def fill(engine: Engine, n: int, now: datetime) -> None:
    """N recipients over the markets' zones and locales, half of them with a push token, in two statements."""
    zones = [(country, tz, locales[0][0]) for country, _, locales, tzs in MARKETS for tz, _ in tzs]
    values = ", ".join(f"({i}, '{c}', '{tz}', '{loc}')" for i, (c, tz, loc) in enumerate(zones))
    with engine.begin() as c:
        c.execute(text(f"""
            INSERT INTO recipients (id, email, name, locale, timezone, timezone_guessed, country, attributes,
                                    joined_at, updated_at)
            SELECT 'u' || g, 'u' || g || '@example.test', 'Recipient ' || g, z.locale, z.tz, false, z.country,
                   '{{}}', :joined, :joined
            FROM generate_series(1, :n) AS g
            JOIN (VALUES {values}) AS z(i, country, tz, locale) ON z.i = g % {len(zones)}
        """), {"n": n, "joined": now.replace(year=now.year - 1)})
        c.execute(text("""
            INSERT INTO push_tokens (recipient_seq, token, active)
            SELECT seq, 'token-' || seq, true FROM recipients WHERE seq % 2 = 0
        """))


def spread(engine: Engine) -> None:
    """The states of a wave in progress: most sent, some pending or in flight, some skipped or failed."""
    with engine.begin() as c:
        c.execute(text("""
            UPDATE deliveries SET
              state = CASE WHEN id % 100 < 55 THEN 'sent' WHEN id % 100 < 75 THEN 'pending'
                           WHEN id % 100 < 78 THEN 'sending' WHEN id % 100 < 90 THEN 'skipped'
                           ELSE 'failed' END,
              skip_reason = CASE WHEN id % 100 BETWEEN 78 AND 89 THEN
                                 (ARRAY['suppressed', 'action_done', 'superseded'])[1 + id % 3] END,
              last_error = CASE WHEN id % 100 >= 90 THEN
                                (ARRAY['sendgrid: 400 invalid address', 'fcm: UNREGISTERED'])[1 + id % 2]
                                WHEN id % 100 BETWEEN 70 AND 74 THEN 'sendgrid: 503 try again' END,
              uncertain = (id % 1000 = 7)
        """))


def median_ms(run: Callable[[], object], times: int) -> float:
    run()  # warm: the first read pulls the pages into the cache
    took = []
    for _ in range(times):
        began = time.perf_counter()
        run()
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took)


def ledger(url: str, recipients: int, now: datetime) -> tuple[Engine, sessionmaker[Session], str, int]:
    """The scratch database filled: engine, sessions, the campaign's id and its delivery rows."""
    from bench.wave import due_now
    from notifier.campaign import parse_campaign
    from notifier.config import load_settings
    from notifier.ledger import queries
    from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
    from notifier.planner import plan_zone, send_channels
    from notifier.render import Content

    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    settings = load_settings({"NOTIFIER_DATABASE_URL": url})
    began = time.perf_counter()
    fill(engine, recipients, now)
    spec, scheduled = due_now(now)
    campaign = parse_campaign(spec, source="bench/tiktok-music-shutdown.yaml")
    with transaction(sessions) as s:
        queries.schedule(s, campaign, spec, scheduled, Content.of(campaign, settings.templates_dir,
                                                                   settings.locales_dir), plan_zone)
    with transaction(sessions) as s:
        rows = queries.materialize_due(s, now, send_channels)
    spread(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("ANALYZE"))  # what autovacuum would have done; no VACUUM: a wave in progress
    print(f"{recipients:,} recipients, {rows:,} delivery rows in {time.perf_counter() - began:.0f} s", flush=True)
    return engine, sessions, campaign.id, rows


def logged_in(url: str, sessions: sessionmaker[Session], **settings_: Any) -> TestClient:
    """A browser's session on the dashboard of this ledger (``settings_``: more settings, an API token say)."""
    from notifier.config import load_settings
    from notifier.web import create_app
    from notifier.web.dashboard.auth import hash_password

    settings = load_settings({"NOTIFIER_DATABASE_URL": url}).with_(
        admin_password_hash=hash_password(PASSWORD), admin_password_was_plain=False, **settings_)
    client = TestClient(create_app(settings, sessions), base_url="http://127.0.0.1")
    token = client.get("/login").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    client.post("/login", data={"password": PASSWORD, "csrf": token}, headers={"Origin": "http://127.0.0.1"})
    return client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=700_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server URL (a database is created)")
    args = parser.parse_args(argv)

    from notifier.ledger.models import DeliveryRow
    from notifier.web.dashboard.views import progress

    with scratch_database(args.server, f"notifier_bench_counts_{os.getpid()}") as url:
        engine, sessions, campaign_id, rows = ledger(url, args.recipients, datetime.now(UTC))
        client = logged_in(url, sessions)

        def baseline() -> object:
            with sessions() as s:
                return s.scalar(select(func.count()).select_from(DeliveryRow)
                                .where(DeliveryRow.campaign_id == campaign_id))

        def read() -> object:
            with sessions() as s:
                return progress(s, campaign_id, True)

        def get(path: str, marker: str) -> Callable[[], object]:
            def run() -> object:
                answer = client.get(path)
                if answer.status_code != 200 or marker not in answer.text:
                    raise SystemExit(f"bench: {path} answered {answer.status_code}")
                return answer
            return run

        ms = {"baseline": median_ms(baseline, args.runs), "progress": median_ms(read, args.runs),
              "fragment": median_ms(get(f"/campaigns/{campaign_id}/progress", "data-every"), args.runs),
              "chart": median_ms(get(f"/campaigns/{campaign_id}/timeline", "data-phase"), args.runs),
              "list": median_ms(get("/campaigns", campaign_id), args.runs)}
        client.close()
        engine.dispose()
    print(f"dashboard-counts: rows={rows} " + " ".join(f"{k}_ms={v:.0f}" for k, v in ms.items())
          + f" ratio={ms['fragment'] / ms['baseline']:.1f}")


if __name__ == "__main__":
    main()
