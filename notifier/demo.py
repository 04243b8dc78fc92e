"""The embedded demo: the whole TikTok Music shutdown campaign on SQLite, a simulated clock and a local outbox.

The clock jumps from one due moment to the next (a send group falls due, a retry, a recipient's action),
so two months of campaign play out in seconds with exactly the code production runs.
"""

from __future__ import annotations

import csv
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from notifier.audience import import_audience
from notifier.campaign import load_campaign
from notifier.config import Settings
from notifier.ledger import queries
from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
from notifier.render import Content
from notifier.reports import breakdown, campaign_status, format_table
from notifier.wiring import build_dispatcher

DATA = Path(__file__).resolve().parent / "demo"
START = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)  # 28 Sep, 00:00 in UTC+12: before anyone's first wave
END = datetime(2024, 11, 29, 12, 0, tzinfo=UTC)  # 29 Nov everywhere: every deadline has passed
CAMPAIGN = "tiktok-music-shutdown"


def _actions(path: Path) -> Iterator[tuple[datetime, str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield datetime.fromisoformat(row["at"]), row["recipient_id"], row["action"]


def run_demo(settings: Settings, directory: Path | None, *, progress: bool = True,
             echo: Callable[..., Any] = click.echo, audience: Path = DATA / "audience.csv",
             actions: Path = DATA / "actions.csv") -> dict[str, int]:
    """Run the campaign end to end; returns the final count of messages per state."""
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="notifier-demo-", dir="."))
    root.mkdir(parents=True, exist_ok=True)
    db_path = root / "ledger.db"
    if db_path.exists():
        raise click.UsageError(f"{root} already holds a demo; pass a new --dir")
    settings = settings.with_(database_url=f"sqlite:///{db_path}", outbox_dir=root / "outbox", transport="outbox")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    echo(f"demo folder: {root.resolve()}")

    rejected: list[str] = []
    report = import_audience(sessions, audience, now=START, on_reject=lambda r: rejected.append(str(r)))
    echo(f"audience: {report.accepted} recipients imported, {report.rejected} rows rejected, "
         f"{report.guessed_timezones} time zones guessed from the country")
    for line in rejected:
        echo(f"  rejected {line}")
    campaign = load_campaign(settings.campaigns_dir / f"{CAMPAIGN}.yaml")
    content = Content.of(campaign, settings.templates_dir, settings.locales_dir)
    with transaction(sessions) as s:
        result = queries.schedule(s, campaign, Path(campaign.source).read_text(encoding="utf-8"), START, content)
    echo(f"scheduled {campaign.id}: {result.groups} send groups over {result.zones} time zones")

    totals = _simulate(sessions, build_dispatcher(settings, sessions), sorted(_actions(actions)), progress, echo)

    with sessions() as s:
        status = campaign_status(s, CAMPAIGN)
        rows = breakdown(s, CAMPAIGN)
    echo("\nMessages per send, locale and channel:")
    echo(format_table(["send", "locale", "channel", "state", "messages"], rows))
    echo("\nTotals per send and channel:")
    echo(format_table(["send", "channel", *status.states], status.table_rows()))
    echo(f"\nskipped because: {status.skips or 'nothing skipped'}")
    echo(f"outbox: {(root / 'outbox').resolve()}  (open any .eml in a mail client; push/*.json)")
    engine.dispose()
    return totals


def _simulate(sessions: Any, dispatcher: Any, actions: list[tuple[datetime, str, str]], progress: bool,
              echo: Callable[..., Any]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    span = int((END - START).total_seconds() // 3600)
    now, done_hours, next_action = START, 0, 0
    with click.progressbar(length=span, label="simulating 28 Sep → 29 Nov 2024", show_eta=False,
                           hidden=not progress) as bar:
        while now <= END:
            with transaction(sessions) as s:
                while next_action < len(actions) and actions[next_action][0] <= now:
                    at, rid, action = actions[next_action]
                    queries.record_action(s, rid, action, at)
                    next_action += 1
            for outcome, n in dispatcher.tick(now).outcomes.items():
                totals[outcome] += n
            with sessions() as s:
                wake = queries.next_wakeup(s, now)
            if next_action < len(actions):
                wake = min(filter(None, (wake, actions[next_action][0])))
            if wake is None:
                break
            hours = min(span, int((wake - START).total_seconds() // 3600))
            bar.update(max(0, hours - done_hours))
            done_hours = max(done_hours, hours)
            now = wake
        bar.update(span - done_hours)
    echo(f"simulation done: {dict(sorted(totals.items()))}")
    return dict(totals)

