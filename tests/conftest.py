"""Fixtures for the real services: the ledger on SQLite and on PostgreSQL, in one suite."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import parse_campaign
from notifier.config import Settings
from notifier.dispatch import Dispatcher, TickReport
from notifier.emulator.process import EmulatorProcess, run_emulator
from notifier.ledger import queries
from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
from notifier.ledger.models import PushToken, Recipient
from notifier.planner import plan_zone
from notifier.render import Content

DEFAULTS = Settings()
# Real providers refuse the default secret and a localhost public URL; tests bring their own (never a real one).
pytest_plugins = [
    "tests.browser",  # browser, page, artifacts: the dashboard's tests in Chromium
    "tests.waves",  # outbox, dispatcher, now, worker_environment: the distributed and maintenance tests
]

TEST_SECRETS: dict[str, str] = {"secret_key": "notifier-test-suite-" + "0123456789abcdef", "public_url": "https://notifier.test"}
PG_URL = os.environ.get("NOTIFIER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN_FILE = ROOT / "campaigns" / "tiktok-music-shutdown.yaml"
SHIPPED_ID = CAMPAIGN_FILE.stem  # the shipped campaign; its id is its gettext domain


# Migrations run once per test session: into a template SQLite file that each test copies, and into one
# PostgreSQL schema of this run's own that each test gets emptied (TRUNCATE … RESTART IDENTITY). The shared
# database ``test`` only ever sees schemas named t_<random>, dropped at the end of the run.


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite ledger file; tests copy it rather than migrate again."""
    path = tmp_path_factory.mktemp("ledger-template") / "ledger.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()  # checkpoints the WAL into the file
    return path


@dataclass(frozen=True)
class PostgresSchema:
    """This run's migrated schema: its name, the URL that leads any process to it, and its ledger tables."""

    name: str
    url: str
    tables: tuple[str, ...]

    def engine(self) -> Engine:
        return make_engine(PG_URL, connect_args={"options": f"-csearch_path={self.name}"})


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[PostgresSchema]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        eng = make_engine(PG_URL, connect_args={"options": f"-csearch_path={name}"})
        upgrade(eng)
        tables = tuple(sorted(t for t in inspect(eng).get_table_names() if t != "alembic_version"))
        eng.dispose()
        yield PostgresSchema(name, f"{PG_URL}{sep}options=-csearch_path%3D{name}", tables)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def _emptied(schema: PostgresSchema) -> Engine:
    """An engine on the run's schema with every ledger table empty and every id sequence back at 1."""
    eng = schema.engine()
    with eng.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '20s'"))  # a test that left a transaction open fails here
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # the audit log refuses TRUNCATE else
        conn.execute(text(f"TRUNCATE {', '.join(schema.tables)} RESTART IDENTITY CASCADE"))
    return eng


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The migrated ledger, empty, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        eng = make_engine(f"sqlite:///{path}")
    else:
        eng = _emptied(request.getfixturevalue("postgres_schema"))
    yield eng
    eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a ledger nobody migrated yet."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
        yield eng
        eng.dispose()
        return
    name = f"t_new_{tmp_path.name[-20:].replace('-', '_').lower()}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    eng = make_engine(PG_URL, connect_args={"options": f"-csearch_path={name}"})
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


# --- recipients and the shipped campaign, written straight into the ledger ---------------------------

JOINED = datetime(2024, 9, 1, tzinfo=UTC)  # before every send of the shipped campaign


@pytest.fixture
def add_recipient(sessions: sessionmaker[Session]) -> Callable[..., int]:
    """Insert one recipient and their push tokens through the models (not the importer); returns its seq.

    ``email`` defaults to ``<id>@example.com``; pass None for a recipient without an address.
    """

    def add(recipient_id: str, *, timezone: str = "Asia/Jakarta", country: str | None = "ID",
            email: str | None = "{id}@example.com", tokens: Sequence[str] = (),
            inactive_tokens: Sequence[str] = (), locale: str | None = None, name: str | None = None,
            joined_at: datetime = JOINED, attributes: dict[str, Any] | None = None) -> int:
        with transaction(sessions) as s:
            recipient = Recipient(id=recipient_id, email=email.format(id=recipient_id) if email else None,
                                  name=name, locale=locale, timezone=timezone, country=country,
                                  joined_at=joined_at, updated_at=joined_at, attributes=attributes or {})
            s.add(recipient)
            s.flush()
            s.add_all([PushToken(recipient_seq=recipient.seq, token=t, active=True) for t in tokens])
            s.add_all([PushToken(recipient_seq=recipient.seq, token=t, active=False, deactivated_at=joined_at,
                                 deactivated_reason="unregistered") for t in inactive_tokens])
            return recipient.seq

    return add


def without_spread(text: str) -> str:
    """A campaign file's text without its ``delivery.spread``: the tests of other rules tick at a send's own time (the
    spread has tests/test_spread.py, and the demo's test runs the shipped campaign with it)."""
    return re.sub(r"(?m)^ +spread: .*\n", "", text)


@pytest.fixture
def ledger_url(engine: Engine, request: pytest.FixtureRequest) -> str:
    """The URL another process (notifier serve, the CLI) reaches the test's ledger by (on PostgreSQL: with its
    schema)."""
    if engine.dialect.name == "postgresql":
        return str(request.getfixturevalue("postgres_schema").url)
    return str(engine.url.render_as_string(hide_password=False))


@pytest.fixture
def schedule_campaign(sessions: sessionmaker[Session]) -> Callable[..., queries.ScheduleResult]:
    """Schedule the shipped campaign file without its spread (or ``text`` as if it were that file) at ``now``."""

    def schedule(now: datetime, text: str | None = None, source: Path = CAMPAIGN_FILE,
                 locales_dir: Path = DEFAULTS.locales_dir) -> queries.ScheduleResult:
        spec = without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8")) if text is None else text
        campaign = parse_campaign(spec, source=str(source))
        content = Content.of(campaign, DEFAULTS.templates_dir, locales_dir)
        with transaction(sessions) as s:
            return queries.schedule(s, campaign, spec, now, content, plan_zone)

    return schedule


# --- the provider emulator (SendGrid v3, FCM v1, Google's token endpoint) in its own process -----------

NO_FAULTS: dict[str, Any] = {
    "sendgrid": {"429": 0, "500": 0, "503": 0, "drop": 0, "latency_ms": 0, "retry_after": 1},
    "fcm": {"429": 0, "500": 0, "503": 0, "drop": 0, "latency_ms": 0, "retry_after": 1,
            "unregistered_tokens": [], "invalid_tokens": [], "sender_mismatch_tokens": []},
}


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator process for the whole run, reached through the real SDKs; its credentials file is trusted."""
    with run_emulator(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


@pytest.fixture
def fresh_emulator(emulator: EmulatorProcess) -> EmulatorProcess:
    """The emulator with an empty log, zeroed counters and no faults (issued access tokens stay valid)."""
    emulator.reset()
    emulator.set_faults(NO_FAULTS)
    return emulator


# --- a PostgreSQL ledger other processes (Celery workers) can reach -------------------------------------


@dataclass(frozen=True)
class SharedLedger:
    """The migrated, emptied PostgreSQL ledger: ``url`` leads another process (a worker) to the same schema."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture
def postgres_ledger(postgres_schema: PostgresSchema) -> Iterator[SharedLedger]:
    eng = _emptied(postgres_schema)
    try:
        yield SharedLedger(postgres_schema.url, eng, session_factory(eng))
    finally:
        eng.dispose()


# --- a wave due right now, for tests whose workers read the real clock ----------------------------------

WAVE_ZONE = "Asia/Jakarta"


def wave_now() -> datetime:
    """The real now to the second, outside the last minute of Jakarta's day, where the wave's 00:00-23:59 window
    would move its send a few seconds before now (and scheduling plans no send in the past)."""
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo(WAVE_ZONE))
    if local.hour == 23 and local.minute == 59:
        time.sleep(61 - local.second)
        now = datetime.now(UTC)
    return now.replace(microsecond=0)


def shipped_catalogs_as(locales_dir: Path, *campaign_ids: str) -> Path:
    """A copy of the shipped catalogs at ``locales_dir``, also as the catalogs of each of ``campaign_ids``.

    Each campaign is its own gettext domain (``locales/<locale>/LC_MESSAGES/<campaign-id>.po``), so a test
    campaign written with the shipped templates under another id needs catalogs of its own.
    """
    shutil.copytree(DEFAULTS.locales_dir, locales_dir, dirs_exist_ok=True)
    for po in [*locales_dir.glob(f"*/LC_MESSAGES/{SHIPPED_ID}.po"), locales_dir / f"{SHIPPED_ID}.pot"]:
        for campaign_id in campaign_ids:
            shutil.copyfile(po, po.with_name(f"{campaign_id}{po.suffix}"))
    return locales_dir


def wave_spec(now: datetime, campaign_id: str, on_uncertain: str | None = None) -> str:
    """A one-wave service campaign due at ``now`` (deadline ``refund`` three hours later, wave PT3H), written with
    the shipped templates, so it needs the shipped catalogs under its id (``shipped_catalogs_as``); schedule it
    at ``now`` for recipients in Jakarta."""
    policy = f"on_uncertain: {on_uncertain}\n" if on_uncertain else ""
    return f"""\
id: {campaign_id}
name: A wave due right now
category: service
templates: tiktok-music-shutdown
locales: [en]
default_locale: en
channels: [email, push]
{policy}links:
  transfer: https://music.tiktok.com/transfer
  refund: https://music.tiktok.com/refund
  help: https://support.tiktok.com/music-closing
delivery: {{local_time: "00:00", window: ["00:00", "23:59"], max_per_day: 1}}
deadlines:
  - id: refund
    label: Refund requests and service closure
    at: "{(now + timedelta(hours=3)).isoformat()}"
    waves: [PT3H]
"""


# --- a simulated clock that ticks when something falls due ------------------------------------------------


def settle(dispatcher: Dispatcher, sessions: sessionmaker[Session], start: datetime, until: datetime,
           before_tick: Callable[[datetime], None] = lambda now: None,
           every: timedelta = timedelta(seconds=1)) -> list[TickReport]:
    """Tick when something falls due (retries, leases, groups) from ``start`` until ``until``, at most once per
    ``every`` (a beat ticks every NOTIFIER_TICK_SECONDS, 30 s by default)."""
    now, reports = start, []
    while now <= until:
        before_tick(now)
        reports.append(dispatcher.tick(now))
        with sessions() as s:
            wakeup = queries.next_wakeup(s, now)
        if wakeup is None:
            break
        now = max(wakeup, now + every)
    return reports
