"""Distributed delivery: what the Celery tasks in ``celery_app.py`` do, and the settings they run with.

The ledger is the truth and the broker only carries work. Beat runs two tasks every NOTIFIER_TICK_SECONDS:
maintenance (``maintain``: recover, plan, gate the copy, materialize due groups, purge; ``notifier.maintenance``)
and the send path's publisher (``publish_due``: mark due rows ``queued`` and publish chunks of ids on one queue
per channel); a worker leases the rows of its chunk that are still queued, sends them and records each outcome
at once. A chunk the broker loses is queued again by maintenance when its lease runs out; rows a dead worker
held are found by maintenance, marked ``uncertain`` and resent or skipped as the campaign says. No future send
waits in the broker: due times live in the ledger.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from notifier.config import Settings, load_settings
from notifier.dispatch import Dispatcher
from notifier.errors import ConfigError
from notifier.maintenance import Maintenance

log = logging.getLogger(__name__)
QUEUES = ("email", "push", "ticks")

_dispatchers: dict[int, Dispatcher] = {}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for at-least-once delivery of chunks; the ledger makes it at-most-once per message."""
    return {
        "broker_url": settings.broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,  # a chunk is acknowledged after it ran, so a dead worker's chunk is redelivered
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # a worker holds at most the chunk it is running
        # Both below the lease: a task stops before its rows can be recovered as uncertain.
        "task_soft_time_limit": max(1, int(settings.lease_seconds * 0.8)),
        "task_time_limit": max(2, int(settings.lease_seconds * 0.9)),
        "task_routes": {"notifier.tick": {"queue": "ticks"}},
        "task_default_queue": "ticks",  # notifier.maintain's queue too
        "beat_schedule": {"notifier-maintain": {"task": "notifier.maintain", "schedule": settings.tick_seconds},
                          "notifier-tick": {"task": "notifier.tick", "schedule": settings.tick_seconds}},
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": settings.queue_lease_seconds},
        "worker_send_task_events": False,
    }


def dispatcher(settings: Settings | None = None) -> Dispatcher:
    """This process's dispatcher, built after the fork (engines and HTTP pools are never shared across processes)."""
    pid = os.getpid()
    if pid not in _dispatchers:
        from notifier.ledger.db import make_engine, session_factory
        from notifier.wiring import build_dispatcher

        settings = settings or load_settings()
        _dispatchers.clear()
        _dispatchers[pid] = build_dispatcher(settings, session_factory(make_engine(settings.database_url)))
    return _dispatchers[pid]


def now() -> datetime:
    return datetime.now(UTC)


def maintain(at: datetime | None = None) -> dict[str, Any]:
    """The ``notifier.maintain`` task's work: one maintenance pass, sending nothing; counts only. ``at`` is a
    simulated time (tests); on the real clock nothing is done while it disagrees with the ledger's."""
    d = dispatcher()
    done = Maintenance(d.sessions, d.settings, d.gate, simulated_clock=at is not None).run(at or now())
    return {"planned_groups": done.planned_groups, "materialized": done.materialized, "recovered": done.recovered,
            "requeued": done.requeued, "purged": done.purged, "refused": sorted(done.refused),
            **({"failed": done.failed} if done.failed else {}), **({"held": done.held} if done.held else {})}


def publish_due(publish: Callable[[str, list[int]], None], at: datetime | None = None) -> dict[str, Any]:
    """The ``notifier.tick`` task's work, the send path's publisher: due rows of campaigns whose copy may be sent
    become ``queued`` and go out as chunks; counts only. What maintenance has not made due waits for it."""
    d = dispatcher()
    d.simulated_clock = at is not None
    report = d.enqueue(at or now(), publish, d.settings.chunk_size, maintain=False)
    return {"queued": report.claimed, "chunks": report.chunks, "refused": sorted(report.refused),
            **({"held": report.held} if report.held else {})}


def tick(publish: Callable[[str, list[int]], None], at: datetime | None = None) -> dict[str, Any]:
    """Both beat tasks in one call, maintenance then the publisher (tests, and the crash tests' stand-in for beat);
    counts only. ``at`` is a simulated time (tests); on the real clock nothing is published while it disagrees
    with the ledger's."""
    d = dispatcher()
    d.simulated_clock = at is not None  # a given time is simulated; the real clock is checked against the ledger's
    report = d.enqueue(at or now(), publish, d.settings.chunk_size)
    return {"queued": report.claimed, "chunks": report.chunks, "materialized": report.materialized,
            "recovered": report.recovered, "refused": sorted(report.refused),
            **({"held": report.held} if report.held else {})}


def run_chunk(ids: list[int], owner: str, at: datetime | None = None) -> dict[str, int]:
    """A chunk task's work: send the rows of ``ids`` that are still queued; outcome counts only."""
    d = dispatcher()
    d.simulated_clock = at is not None
    return dict(d.run_chunk(ids, owner, at or now()))


def check_services(settings: Settings, app: Any | None = None) -> None:
    """Fail at start-up with one clear line when the ledger or the broker cannot be reached."""
    from sqlalchemy.exc import OperationalError

    from notifier.ledger.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise ConfigError(f"cannot reach the ledger database {where}: {str(exc.orig).strip().splitlines()[0]}") \
            from None
    finally:
        engine.dispose()
    if app is not None:
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=5)
        except Exception as exc:  # kombu raises the transport's own errors (redis, amqp, OSError)
            raise ConfigError(f"cannot reach the broker {_safe_url(settings.broker_url)}: {exc}") from None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not every broker URL is an SQLAlchemy URL; hide nothing we cannot parse
        return url.split("@")[-1]
