"""The embedded demo: the whole TikTok Music shutdown campaign on SQLite, a simulated clock and a local outbox.

The clock jumps from one due moment to the next (a send group falls due, a retry, a recipient's action),
so two months of campaign play out in seconds with exactly the code production runs.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import secrets
import shutil
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from notifier.audience import import_audience
from notifier.campaign import load_campaign
from notifier.config import Settings
from notifier.demo_audience import DEMO_BEHAVIOUR, SimulatedAudience
from notifier.feedback import record_action
from notifier.ledger import queries
from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
from notifier.planner import plan_zone
from notifier.render import Content
from notifier.reports import audit, campaign_status, counts_text, format_table
from notifier.results import ActionCounter, Results, results
from notifier.wiring import build_dispatcher

DATA = Path(__file__).resolve().parent / "demo"
START = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)  # 28 Sep, 00:00 in UTC+12: before anyone's first wave
END = datetime(2024, 11, 29, 12, 0, tzinfo=UTC)  # 29 Nov everywhere: every deadline has passed
CAMPAIGN = "tiktok-music-shutdown"


def _actions(path: Path) -> Iterator[tuple[datetime, str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield datetime.fromisoformat(row["at"]), row["recipient_id"], row["action"]


# Faults the providers demo switches on: throttling, server errors, dropped connections and dead tokens.
DEMO_FAULTS = {
    "sendgrid": {"429": 0.05, "500": 0.02, "503": 0.05, "drop": 0.01, "retry_after": 2},
    "fcm": {"429": 0.01, "500": 0.02, "503": 0.05, "drop": 0.01, "retry_after": 2},
    "seed": 2024,
}


def run_demo(settings: Settings, directory: Path | None, *, progress: bool = True,
             echo: Callable[..., Any] = click.echo, audience: Path = DATA / "audience.csv",
             actions: Path = DATA / "actions.csv", transport: str = "outbox") -> dict[str, int]:
    """Run the campaign end to end; returns the final count of messages per state."""
    root = _demo_folder(directory)
    db_path = root / "ledger.db"
    settings = settings.with_(database_url=f"sqlite:///{db_path}", outbox_dir=root / "outbox", transport="outbox",
                              studio_dir=root / "studio")
    echo(f"demo folder: {root.resolve()}")
    if transport == "outbox":
        return _run(settings, root, progress, echo, audience, actions, None)
    from notifier.emulator.process import run_emulator

    with run_emulator(root) as emulator:
        echo(f"emulator: {emulator.url} (SendGrid v3 and FCM v1), faults: {DEMO_FAULTS}")
        dead = _some_tokens(audience, every=40)  # uninstalled apps: FCM answers UNREGISTERED for these
        emulator.set_faults({**DEMO_FAULTS, "fcm": {**DEMO_FAULTS["fcm"], "unregistered_tokens": dead}})
        # A secret of the demo's own: the links it signs only ever lead to the emulator's log.
        settings = settings.with_(transport="providers", sendgrid_api_key="SG.demo", sendgrid_host=emulator.url,
                                  google_credentials=emulator.credentials, fcm_endpoint=emulator.url,
                                  retry_base_seconds=30.0, secret_key=secrets.token_urlsafe(32),
                                  public_url="https://notifier-demo.invalid")
        return _run(settings, root, progress, echo, audience, actions, emulator)


def _demo_folder(directory: Path | None) -> Path:
    """``directory`` (default: a new notifier-demo-* folder here), refused if it holds a demo already."""
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="notifier-demo-", dir="."))
    root.mkdir(parents=True, exist_ok=True)
    if (root / "ledger.db").exists():
        raise click.UsageError(f"{root} already holds a demo; pass a new --dir")
    return root


def _some_tokens(audience: Path, every: int) -> list[str]:
    with audience.open(newline="", encoding="utf-8") as f:
        tokens = [t for row in csv.DictReader(f) for t in (row.get("push_tokens") or "").split("|") if t]
    return tokens[::every]


def _run(settings: Settings, root: Path, progress: bool, echo: Callable[..., Any], audience: Path, actions: Path,
         emulator: Any) -> dict[str, int]:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    rejected: list[str] = []
    report = import_audience(sessions, audience, now=START, on_reject=lambda r: rejected.append(str(r)))
    echo(f"audience: {report.accepted} recipients imported, {report.rejected} rows rejected, "
         f"{report.guessed_timezones} time zones guessed from the country")
    for line in rejected:
        echo(f"  rejected {line}")
    campaign = load_campaign(settings.campaigns_dir / f"{CAMPAIGN}.yaml")
    content = Content.of(campaign, settings.templates_dir, settings.locales_dir)
    with transaction(sessions) as s:
        result = queries.schedule(s, campaign, Path(campaign.source).read_text(encoding="utf-8"), START, content,
                                  plan_zone)
    with sessions() as s:
        planned = campaign_status(s, campaign.id, settings).planned
    echo(f"scheduled {campaign.id}: {planned:,} messages planned over {result.zones} time zones")

    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    try:
        if emulator is None:
            totals = _simulate(sessions, dispatcher, sorted(_actions(actions)), progress, echo,
                               audience=SimulatedAudience(sessions))
        else:
            totals = _with_feedback(settings, sessions, dispatcher, sorted(_actions(actions)), progress, echo,
                                    emulator)
    finally:
        dispatcher.close()
    with sessions() as s:
        status = campaign_status(s, CAMPAIGN)
        checked = audit(s, CAMPAIGN, emulator.messages()) if emulator is not None else None
    echo("\nMessages per send, locale and channel:")
    echo(format_table(["send", "locale", "channel", "state", "messages"], status.breakdown))
    echo("\nTotals per send and channel:")
    echo(format_table(["send", "channel", *status.states], status.table_rows()))
    echo(f"\nskipped because: {counts_text(status.skips, 'nothing skipped')}")
    with sessions() as s:
        _echo_results(echo, results(s, CAMPAIGN), settings.database_url)
    if checked is None:
        echo(f"outbox: {(root / 'outbox').resolve()}  "
             "(email/<campaign>/*.eml opens in a mail client; push/<campaign>/*.json)")
    else:
        faults = emulator.stats().get("faults", {})
        verdict = "every sent message accepted exactly once" if checked.exactly_once else "MISMATCH"
        echo(f"emulator accepted {counts_text(checked.accepted)} (distinct messages), "
             f"ledger sent {counts_text(checked.sent_rows)}; "
             f"duplicates {checked.duplicates}, missing {checked.missing}, unexpected {checked.unexpected}: "
             f"{verdict}; faults injected: {faults}")
    engine.dispose()
    return totals


def _echo_results(echo: Callable[..., Any], res: Results, database_url: str) -> None:
    """What the campaign achieved, in a few lines: the rest is ``notifier campaign report``."""
    echo(f"\nresults: {res.total('delivered'):,} emails delivered; {res.total('opened'):,} messages opened by people "
         f"(and {res.total('opened_machine'):,} emails by machines), {res.total('clicked'):,} clicked; "
         f"{res.total('converted'):,} people acted after a message")
    for f in res.funnels:
        echo(f"  {f.label}: {f.acted:,} of {f.audience:,} acted ({f.acted / max(1, f.audience):.0%}), "
             f"{f.not_acted:,} have not")
    echo(f"the whole report: NOTIFIER_DATABASE_URL={database_url} notifier campaign report {res.campaign_id}")


def _with_feedback(settings: Settings, sessions: Any, dispatcher: Any, actions: list[tuple[datetime, str, str]],
                   progress: bool, echo: Callable[..., Any], emulator: Any) -> dict[str, int]:
    """The simulation with the loop closed: notifier serve in a thread, the emulator posting signed events to it
    (bounces, drops, spam reports), each tick's events in the ledger before the next tick."""
    from notifier.web import create_app, running

    app = create_app(settings.with_(sendgrid_webhook_key=emulator.events_public_key()), sessions)
    with running(app) as url:
        emulator.set_events({"url": f"{url}/webhooks/sendgrid", **DEMO_EVENTS})
        echo(f"notifier serve: {url} (the emulator posts signed events to /webhooks/sendgrid: {DEMO_EVENTS})")

        def settle_events() -> None:
            emulator.wait_events_posted(int(emulator.events_status()["generated"]), timeout=60)

        totals = _simulate(sessions, dispatcher, actions, progress, echo, after_tick=settle_events,
                           audience=SimulatedAudience(sessions, email_events=False))
    with sessions() as s:
        from sqlalchemy import func, select

        from notifier.ledger.models import DeliveryEvent, Suppression

        kinds = dict(s.execute(select(DeliveryEvent.type, func.count()).where(DeliveryEvent.provider == "sendgrid")
                               .group_by(DeliveryEvent.type)).all())
        listed = s.scalar(select(func.count()).select_from(Suppression)) or 0
    echo(f"feedback: SendGrid events {counts_text(kinds)}; {listed} addresses suppressed "
         "(later messages to them skipped as 'suppressed')")
    return totals


# The events the providers demo asks of the emulator: a few hard bounces, drops and spam complaints.
# The emulator's opens and clicks per locale are the simulated audience's (demo_audience), so both demos read alike.
DEMO_EVENTS = {"bounce": 0.02, "dropped": 0.005, "spamreport": 0.005, "seed": 2024, "interval": 0.05,
               "opens": dict(DEMO_BEHAVIOUR.opens), "clicks": dict(DEMO_BEHAVIOUR.clicks),
               "machine_opens": DEMO_BEHAVIOUR.machine_opens}


@dataclass
class Simulation:
    """One campaign on a simulated clock: each step records the recipients' actions that fell due, runs one tick
    and answers the next moment anything is due (None: nothing is, ever again). With an ``audience``, the
    recipients react to what each tick sent (demo_audience): opens, clicks, and actions that come due later."""

    sessions: Any
    dispatcher: Any
    actions: list[tuple[datetime, str, str]]  # (at, recipient id, action), kept as a heap
    after_tick: Callable[[], None] = lambda: None
    audience: SimulatedAudience | None = None
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # The least the clock moves between ticks, as a slow beat would (a real one ticks every 30 s): a send spread over
    # 20 minutes (delivery.spread) goes out in four or five ticks, not in one per recipient; a retry or an action
    # may therefore be taken up to 5 simulated minutes after its time, and the mail is dated by that tick.
    every: timedelta = timedelta(minutes=5)
    follow_actions: bool = True  # record the recipients' actions, the clock stopping at each (the shipped campaign's)

    def __post_init__(self) -> None:
        heapq.heapify(self.actions)

    def step(self, now: datetime) -> datetime | None:
        with transaction(self.sessions) as s:
            counter = ActionCounter(s)
            while self.follow_actions and self.actions and self.actions[0][0] <= now:
                at, rid, action = heapq.heappop(self.actions)
                record_action(s, rid, action, at, force=True, counter=counter)  # the campaign's own actions
            counter.flush()
        for outcome, n in self.dispatcher.tick(now).outcomes.items():
            self.totals[outcome] += n
        self.after_tick()
        if self.audience is not None:
            for action in self.audience.react(now):
                heapq.heappush(self.actions, action)
        with self.sessions() as s:
            wake = queries.next_wakeup(s, now)
        if self.follow_actions and self.actions:
            wake = min(filter(None, (wake, self.actions[0][0])))
        return None if wake is None else max(wake, now + self.every)


def _simulate(sessions: Any, dispatcher: Any, actions: list[tuple[datetime, str, str]], progress: bool,
              echo: Callable[..., Any], after_tick: Callable[[], None] = lambda: None,
              audience: SimulatedAudience | None = None) -> dict[str, int]:
    sim = Simulation(sessions, dispatcher, actions, after_tick, audience)
    span = int((END - START).total_seconds() // 3600)
    now, done_hours = START, 0
    with click.progressbar(length=span, label="simulating 28 Sep → 29 Nov 2024", show_eta=False,
                           hidden=not progress) as bar:
        while now <= END:
            wake = sim.step(now)
            if wake is None:
                break
            hours = min(span, int((wake - START).total_seconds() // 3600))
            bar.update(max(0, hours - done_hours))
            done_hours = max(done_hours, hours)
            now = wake
        bar.update(span - done_hours)
    echo(f"simulation done: {counts_text(sim.totals)}")
    return dict(sim.totals)


# --- the demo in the dashboard ------------------------------------------------------------------------------------


class SimulatedClock:
    """The demo's clock, shared by the dashboard (what "now" is when someone schedules or pauses) and the ticks."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, to: datetime) -> None:
        with self._lock:
            self._now = max(self._now, to)


def play(sim: Simulation, clock: SimulatedClock, campaign_id: str, stop: threading.Event, pace: float) -> None:
    """Run ``sim`` while any campaign is scheduled, ``pace`` real seconds between ticks: the shipped one
    (``campaign_id``) or one made in the studio, whose sends may be years ahead (the clock jumps to the ledger's
    next wakeup). While nothing is scheduled, and once nothing is due any more, the simulated clock stands still
    until the ledger's campaigns change (one scheduled, resumed or scheduled again)."""
    idle: tuple[Any, ...] | None = None  # the scheduled campaigns when nothing was due any more
    while not stop.is_set():
        scheduled = _scheduled(sim.sessions)
        if not scheduled or scheduled == idle:
            stop.wait(0.1)
            continue
        sim.follow_actions = campaign_id in {c[0] for c in scheduled}  # the actions are the shipped one's
        wake = sim.step(clock.now())
        if wake is None or (wake > END and {c[0] for c in scheduled} == {campaign_id}):
            idle = scheduled  # the shipped campaign ends with its last deadline, as in the terminal demo
            continue
        idle = None
        clock.advance(wake)
        stop.wait(pace)


def _scheduled(sessions: Any) -> tuple[Any, ...]:
    """(id, scheduled at, updated at) of each scheduled campaign: a change wakes an idle clock."""
    from sqlalchemy import select

    from notifier.ledger.models import CampaignRow, CampaignState

    with sessions() as s:
        rows = s.execute(select(CampaignRow.id, CampaignRow.scheduled_at, CampaignRow.updated_at)
                         .where(CampaignRow.state == CampaignState.SCHEDULED).order_by(CampaignRow.id)).all()
    return tuple(tuple(r) for r in rows)


def run_dashboard_demo(settings: Settings, directory: Path | None, *, host: str = "127.0.0.1", port: int = 8000,
                       pace: float = 0.25, echo: Callable[..., Any] = click.echo,
                       wait: Callable[[], None] | None = None, password: str | None = None,
                       draft: bool = True, audience: Path = DATA / "audience.csv") -> None:
    """The demo in a browser: notifier serve with the dashboard on a simulated clock. The campaign file waits as a
    draft (or, without ``draft``, for someone to upload it); once someone schedules it there, two months play out in
    a few minutes, and pause and resume hold. ``wait`` returns when the demo should end (default: Ctrl-C).
    ``audience`` is the file of recipients imported first (the demo's 2,000; a test may pass fewer)."""
    from notifier.web.app import require_web_extra

    require_web_extra("notifier demo --dashboard")  # before any folder, thread or server
    from notifier.web import create_app, running
    from notifier.web.dashboard.auth import hash_password

    root = _demo_folder(directory)
    password = password or secrets.token_urlsafe(12)
    (root / "campaigns").mkdir(exist_ok=True)  # uploads of the demo land here, not in the project's folder
    if draft:
        shutil.copyfile(settings.campaigns_dir / f"{CAMPAIGN}.yaml", root / "campaigns" / f"{CAMPAIGN}.yaml")
    settings = settings.with_(database_url=f"sqlite:///{root / 'ledger.db'}", outbox_dir=root / "outbox",
                              campaigns_dir=root / "campaigns", studio_dir=root / "studio",
                              api_token=secrets.token_urlsafe(24),
                              transport="outbox", secret_key=secrets.token_urlsafe(32),
                              admin_password_hash=hash_password(password), admin_password_was_plain=False)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    report = import_audience(sessions, audience, now=START)
    clock = SimulatedClock(START)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    stop = threading.Event()
    sim = Simulation(sessions, dispatcher, sorted(_actions(DATA / "actions.csv")), audience=SimulatedAudience(sessions))
    player = threading.Thread(target=play, args=(sim, clock, CAMPAIGN, stop, pace), daemon=True, name="demo-clock")
    try:
        app = create_app(settings, sessions, clock=clock.now)
        app.state.dashboard.simulated_clock = True  # the pages show the simulated date
        with running(app, host, port) as url:
            player.start()
            echo(f"demo folder: {root.resolve()}; {report.accepted} recipients imported")
            echo(f"dashboard: {url}/login  password: {password}  (this demo's own; its clock starts at "
                 f"{START:%d %b %Y})")
            echo(f"studio: {url}/campaigns/new/starter (a campaign of your own); JSON API: {url}/docs with "
                 f"Authorization: Bearer {settings.api_token}")
            echo(f"open {CAMPAIGN} (or a campaign of yours), press Schedule, and watch; Ctrl-C ends the demo")
            (wait or _forever)()
    finally:
        stop.set()
        if player.ident is not None:  # started: the server came up
            player.join(timeout=30)
        dispatcher.close()
        engine.dispose()


def _forever() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
