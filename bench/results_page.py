"""What the Results page costs on a big campaign, on PostgreSQL: 1,000,000 recipients and 10,000,000 events.

    python -m bench.results_page --recipients 1000000 --events 10000000     (about 10 minutes here)

Builds the ledger of ``bench.dashboard_counts`` (N recipients, the shutdown campaign's first wave materialized and
spread over the states of a wave in progress), then, in SQL in the server:

- the events: E provider events over the sent email rows (delivered, opens of readers and of machines, clicks on
  the campaign's links, some bounces, unsubscribes and complaints), in the campaign's partition;
- the counts those events and the actions make, as ``notifier.results`` keeps them (one key per message and
  metric in ``result_firsts``, the sums in ``result_tallies``, the funnel in ``action_days``): written here in a
  few statements rather than through the webhook, which would take hours at this size. The test suite proves
  the two ways give the same figures (tests/test_results.py);
- the actions: 40% of the audience does each deadline's action, spread over the campaign's days.

Then it times, median of several runs each:

- the baseline: ``SELECT count(*)`` of the campaign's events, the least a report counting its events would cost;
- ``results.results``: everything the page reads;
- the page, ``GET /campaigns/{id}/results``, as a logged-in browser asks it, and the JSON API's answer;
- one webhook batch of 1,000 new opens and clicks applied through ``feedback.apply_events`` (the counts are kept
  in its transaction: what they add to the write path at this size).

The last line is the summary: ``results-page: recipients=N events=E baseline_ms=X results_ms=X page_ms=X
api_ms=X batch_ms=X ratio=X`` (``ratio``: the page against the baseline).
"""

from __future__ import annotations

import argparse
import os
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select, text

from bench.dashboard_counts import DEFAULT_SERVER, ledger, logged_in, median_ms
from bench.services import scratch_database

TOKEN = "the bench's own api token, long enough"


def fill_events(engine: Engine, campaign_id: str, events: int) -> int:
    """``events`` provider events over the campaign's sent email rows, in one statement; returns how many."""
    with engine.begin() as c:
        sent = c.scalar(text("SELECT count(*) FROM deliveries WHERE campaign_id = :c AND channel = 'email' "
                             "AND state = 'sent'"), {"c": campaign_id}) or 1
        per = max(1, round(events / sent))
        # k = 1 delivered; 2 a machine open on 1 in 5; 3..per-1 readers' opens on 2 in 5 (several each);
        # per a click on 1 in 8; a bounce instead of delivered on 1 in 50; an unsubscribe on 1 in 400.
        c.execute(text("""
            INSERT INTO delivery_events (delivery_id, campaign_id, type, at, detail, provider, provider_event_id)
            SELECT d.id, d.campaign_id,
                   CASE WHEN k = 1 AND d.id % 50 = 0 THEN 'bounced'
                        WHEN k = 1 THEN 'delivered'
                        WHEN k = 2 AND d.id % 400 = 1 THEN 'unsubscribed'
                        WHEN k = 2 AND d.id % 1000 = 3 THEN 'complained'
                        WHEN k = :per AND d.id % 8 = 0 THEN 'clicked'
                        ELSE 'opened' END,
                   coalesce(d.sent_at, d.updated_at) + k * interval '1 minute',
                   CASE WHEN k = :per AND d.id % 8 = 0
                        THEN json_build_object('link', (ARRAY['transfer', 'refund', 'help'])[1 + d.id % 3])
                        ELSE json_build_object('machine', k = 2 AND d.id % 5 = 0) END,
                   'sendgrid', 'bench-' || d.id || '-' || k
            FROM deliveries d CROSS JOIN generate_series(1, :per) AS k
            WHERE d.campaign_id = :c AND d.channel = 'email' AND d.state = 'sent'
        """), {"c": campaign_id, "per": per})
        return int(c.scalar(text("SELECT count(*) FROM delivery_events WHERE campaign_id = :c"),
                            {"c": campaign_id}) or 0)


METRIC_SQL = """CASE WHEN e.type = 'delivered' THEN 'delivered' WHEN e.type IN ('bounced', 'dropped') THEN 'bounced'
    WHEN e.type = 'opened' AND (e.detail->>'machine')::boolean THEN 'opened_machine'
    WHEN e.type = 'opened' THEN 'opened'
    WHEN e.type = 'unsubscribed' THEN 'unsubscribed' WHEN e.type = 'complained' THEN 'complained' END"""


def fill_counts(engine: Engine, campaign_id: str) -> None:
    """The counts of the events, as notifier.results keeps them (one first per message and metric)."""
    with engine.begin() as c:
        for metric in (METRIC_SQL, "CASE WHEN e.type = 'clicked' THEN 'clicked' END",
                       "CASE WHEN e.type = 'clicked' THEN 'click:' || (e.detail->>'link') END"):
            c.execute(text(f"""
                INSERT INTO result_firsts (campaign_id, delivery_id, metric)
                SELECT DISTINCT e.campaign_id, e.delivery_id, {metric} FROM delivery_events e
                WHERE e.campaign_id = :c AND {metric} IS NOT NULL
            """), {"c": campaign_id})
        c.execute(text("""
            INSERT INTO result_tallies (campaign_id, group_id, locale, channel, metric, n)
            SELECT f.campaign_id, d.group_id, coalesce(d.locale, ''), d.channel, f.metric, count(*)
            FROM result_firsts f JOIN deliveries d ON d.campaign_id = f.campaign_id AND d.id = f.delivery_id
            WHERE f.campaign_id = :c GROUP BY 1, 2, 3, 4, 5
        """), {"c": campaign_id})


def fill_actions(engine: Engine, campaign_id: str, start: datetime) -> None:
    """40% of the audience does each deadline's action, over 60 days, and the funnel's days that makes."""
    with engine.begin() as c:
        for action, deadline in (("playlist_transferred", "playlist-transfer"), ("refund_requested", "refund")):
            c.execute(text("""
                INSERT INTO recipient_actions (recipient_seq, action, at)
                SELECT seq, :a, :start + (seq % 60) * interval '1 day' FROM recipients WHERE seq % 5 < 2
            """), {"a": action, "start": start})
            c.execute(text("""
                INSERT INTO action_days (campaign_id, deadline_id, day, acted, late)
                SELECT :c, :d, (at AT TIME ZONE 'UTC')::date, count(*), 0 FROM recipient_actions
                WHERE action = :a GROUP BY 3
            """), {"c": campaign_id, "d": deadline, "a": action})
        c.execute(text("ANALYZE"))


def one_batch(sessions: object, campaign_id: str, seed: int) -> object:
    """1,000 new opens and clicks on random sent emails, applied as the webhook applies a verified batch."""
    from notifier.events import EventType, ProviderEvent
    from notifier.feedback import apply_events
    from notifier.ledger.db import transaction
    from notifier.ledger.models import DeliveryRow

    rng = random.Random(seed)
    with sessions() as s:  # type: ignore[operator]
        ids = s.scalars(select(DeliveryRow.id).where(
            DeliveryRow.campaign_id == campaign_id, DeliveryRow.channel == "email",
            DeliveryRow.state == "sent").limit(20_000)).all()
    now = datetime.now(UTC)
    batch = [ProviderEvent("sendgrid", f"batch-{seed}-{i}", rng.choice([EventType.OPENED, EventType.CLICKED]),
                           now, delivery_id=rng.choice(ids), campaign_id=campaign_id,
                           url="https://music.tiktok.com/transfer") for i in range(1000)]
    with transaction(sessions) as s:  # type: ignore[arg-type]
        return apply_events(s, batch, now)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=None, help="provider events (default: 10 per recipient)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server URL (a database is created)")
    args = parser.parse_args(argv)
    events = args.events if args.events is not None else 10 * args.recipients

    from notifier.ledger.models import DeliveryEvent
    from notifier.results import results

    with scratch_database(args.server, f"notifier_bench_results_{os.getpid()}") as url:
        now = datetime.now(UTC)
        engine, sessions, campaign_id, _rows = ledger(url, args.recipients, now)
        stored = fill_events(engine, campaign_id, events)
        fill_counts(engine, campaign_id)
        fill_actions(engine, campaign_id, now - timedelta(days=30))
        print(f"{stored:,} events and their counts stored", flush=True)
        client = logged_in(url, sessions, api_token=TOKEN)

        def baseline() -> object:
            with sessions() as s:
                return s.scalar(select(func.count()).select_from(DeliveryEvent)
                                .where(DeliveryEvent.campaign_id == campaign_id))

        def read() -> object:
            with sessions() as s:
                return results(s, campaign_id)

        def get(path: str, marker: str, **headers: str) -> object:
            answer = client.get(path, headers=headers)
            if answer.status_code != 200 or marker not in answer.text:
                raise SystemExit(f"bench: {path} answered {answer.status_code}: {answer.text[:200]}")
            return answer

        seeds = iter(range(1_000_000))
        ms = {"baseline": median_ms(baseline, args.runs), "results": median_ms(read, args.runs),
              "page": median_ms(lambda: get(f"/campaigns/{campaign_id}/results", "funnel"), args.runs),
              "api": median_ms(lambda: get(f"/api/v1/campaigns/{campaign_id}/results", "funnels",
                                           Authorization=f"Bearer {TOKEN}"), args.runs),
              "batch": median_ms(lambda: one_batch(sessions, campaign_id, next(seeds)), args.runs)}
        client.close()
        engine.dispose()
    print(f"results-page: recipients={args.recipients} events={stored} "
          + " ".join(f"{k}_ms={v:.0f}" for k, v in ms.items()) + f" ratio={ms['page'] / ms['baseline']:.2f}")


if __name__ == "__main__":
    main()
