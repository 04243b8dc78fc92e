"""A one-slot relay between the claiming thread and a sending thread, so one batch is claimed, read and composed
while the one before it is sent and recorded.

A single-process tick spends a third of its time waiting (for the provider's answers and for the ledger's commits:
measured at 100,000 recipients); both of those run in other processes, so on a 2-core box the next batch can be
composed meanwhile. At most one batch is being delivered and one is waiting for its turn: every batch claimed is
delivered before the tick returns or raises, since its rows are leased and a provider may already have some of them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType


class Handoff:
    """Runs deliveries one after another, in a thread of its own when ``threaded``, else at once in the caller's."""

    def __init__(self, threaded: bool) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notifier-send") if threaded else None
        self._running: Future[None] | None = None

    def submit(self, delivery: Callable[[], None]) -> None:
        """Start ``delivery`` once the one before it is done (raising what that one raised, if it failed)."""
        self.wait()
        if self._pool is None:
            delivery()
        else:
            self._running = self._pool.submit(delivery)

    def wait(self) -> None:
        """Until the delivery running now is done; what it raised is raised here."""
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def __enter__(self) -> Handoff:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc is None:
                self.wait()
            elif self._running is not None:  # the caller failed: the batch already handed over is still delivered
                self._running.exception()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
