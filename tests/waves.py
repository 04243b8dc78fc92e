"""What the distributed and maintenance tests share: a wave due at the real now for three recipients in Jakarta,
the real dispatcher sending to an outbox, a worker's environment for the Celery tasks, the ledger's rows read back.

Registered in ``tests/conftest.py`` (``pytest_plugins``) for the fixtures ``outbox``, ``dispatcher``, ``now`` and
``worker_environment``; ``dispatcher`` and ``worker_environment`` need a ``locales`` fixture from the test module,
which knows its campaigns' ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from notifier import distributed
from notifier.config import Settings
from notifier.dispatch import Dispatcher
from notifier.ledger import queries
from notifier.ledger.models import DeliveryRow
from notifier.wiring import build_dispatcher
from tests.conftest import wave_now, wave_spec

QUEUE_LEASE = Settings().queue_lease_seconds

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]
Published = list[tuple[str, list[int]]]


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def dispatcher(sessions: sessionmaker[Session], outbox: Path, locales: Path) -> Iterator[Dispatcher]:
    """The real dispatcher with the outbox channels (leases: 300 s sending, QUEUE_LEASE s queued)."""
    d = build_dispatcher(Settings(outbox_dir=outbox, locales_dir=locales), sessions, simulated_clock=True)
    yield d
    d.close()


@pytest.fixture
def now() -> datetime:
    """The real now: tick and chunk get it as a parameter, and a lapsed lease is a later one."""
    return wave_now()


def schedule_wave(add_recipient: AddRecipient, schedule_campaign: Schedule, now: datetime, campaign_id: str,
                  locales: Path) -> None:
    """Three recipients in Jakarta, each with an email and one push token, and the wave scheduled at ``now``."""
    for who in ("ana", "ben", "cid"):
        add_recipient(who, tokens=[f"{who}-phone"])
    schedule_campaign(now, wave_spec(now, campaign_id), locales_dir=locales)


def delivery_rows(sessions: sessionmaker[Session]) -> dict[int, DeliveryRow]:
    """Every delivery row in the ledger, by id."""
    with sessions() as s:
        return {r.id: r for r in s.scalars(select(DeliveryRow).order_by(DeliveryRow.id))}


@pytest.fixture
def worker_environment(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, outbox: Path,
                       locales: Path) -> Iterator[None]:
    """The environment a worker process reads (this ledger, outbox and locales, chunks of 2), for the Celery tasks'
    work in process; the dispatcher they build from it is closed afterwards."""
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    if url.startswith("postgresql"):  # the fixture's schema, the way a worker process is told it
        with sessions() as s:
            url += f"?options=-csearch_path%3D{s.scalar(text('select current_schema()'))}"
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", url)
    monkeypatch.setenv("NOTIFIER_OUTBOX_DIR", str(outbox))
    monkeypatch.setenv("NOTIFIER_LOCALES_DIR", str(locales))
    monkeypatch.setenv("NOTIFIER_CHUNK_SIZE", "2")
    monkeypatch.setattr(distributed, "_dispatchers", {})
    try:
        yield
    finally:
        built = distributed.dispatcher()
        built.close()
        built.sessions.kw["bind"].dispose()
