"""Helpers for tests of code that sends through notifier: a channel that follows a script (as httpx ships
``MockTransport``), so a dispatcher can be driven through provider answers and faults without a network."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from notifier.channels.base import Channel, Message
from notifier.events import SendResult

Step = Callable[[int], SendResult] | BaseException


def sent(delivery_id: int) -> SendResult:
    """The provider took it (the default answer once the script has run out)."""
    return SendResult.sent(delivery_id, f"fake-{delivery_id}")


class ScriptedChannel(Channel):
    """Answers each batch with the next scripted step: a function giving each message's result, or an exception
    raised for the whole batch (a DeliveryError as a provider's refusal, anything else as a fault).

    ``accepted`` counts what the fake provider took per delivery id, so a test can audit at most once.
    """

    def __init__(self, name: str, *steps: Step) -> None:
        super().__init__()
        self.name = name  # type: ignore[misc]
        self.steps = list(steps)
        self.batches: list[list[int]] = []
        self.accepted: Counter[int] = Counter()

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        self.batches.append([m.delivery_id for m in batch])
        step = self.steps.pop(0) if self.steps else sent
        if isinstance(step, BaseException):
            raise step
        results = [step(m.delivery_id) for m in batch]
        self.accepted.update(r.delivery_id for r in results if r.outcome == "sent")
        return results

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.accepted.values() if n > 1)
