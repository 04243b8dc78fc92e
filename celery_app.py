"""Celery wiring only: the app, configured from notifier's settings, and three tasks that call notifier.

    celery -A celery_app worker -Q email,push,ticks      as many as you like, on as many machines
    celery -A celery_app beat                            exactly one: both beat entries every NOTIFIER_TICK_SECONDS

The beat's two entries, apart as River and Oban keep them: ``notifier.maintain`` (recover expired leases, requeue
lost chunks, plan new zones, gate the copy, materialize due groups, purge; it sends nothing) and ``notifier.tick``
(the send path's publisher: due rows of approved campaigns become ``queued`` and go out as ``notifier.send_chunk``
tasks on the ``email`` and ``push`` queues). Both run on the ``ticks`` queue.

Tasks carry ledger ids only, never personal data; the ledger decides what is still owed.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from notifier import distributed
from notifier.config import load_settings

settings = load_settings()
app = Celery("notifier", set_as_current=True)
app.conf.update(distributed.celery_config(settings))


@worker_init.connect
def _check_services(**_: Any) -> None:
    """A worker that cannot reach the ledger says so in one line and stops, instead of failing every task."""
    try:
        distributed.check_services(settings)
    except Exception as exc:
        raise SystemExit(f"error: {exc}") from None


@worker_process_init.connect
def _finish_the_chunk_on_sigterm(**_: Any) -> None:
    """A pool process lets SIGTERM pass. systemd's default KillMode sends it to every process of the service at once:
    Celery's pool process would die mid-chunk, leaving its rows to be recovered as uncertain. Ignored here, the chunk
    in hand is sent and recorded, and the main process's warm shutdown then ends the pool (a pool process still dies
    with its main process: Celery sets it to get SIGKILL then)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@app.task(name="notifier.maintain")
def maintain() -> dict[str, Any]:
    """Recover, requeue, plan, gate, materialize and purge; sends nothing."""
    return distributed.maintain()


@app.task(name="notifier.tick")
def tick() -> dict[str, Any]:
    """Publish the due rows maintenance made as chunks of ids, one queue per channel."""
    return distributed.publish_due(lambda channel, ids: send_chunk.apply_async((ids,), queue=channel))


@app.task(name="notifier.send_chunk", bind=True)
def send_chunk(self: Any, ids: list[int]) -> dict[str, int]:
    """Send the rows of ``ids`` that are still queued; a redelivered chunk skips what was done."""
    owner = f"{self.request.id}@{self.request.hostname}:{os.getpid()}"
    return distributed.run_chunk(ids, owner)
