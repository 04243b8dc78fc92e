"""The shared channel flow keeps its promise under faults: one result per message, never an exception."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import ClassVar

import pytest

from notifier.channels.base import Channel, EmailMessage, Message, result_for
from notifier.errors import ChannelConfigError, DeliveryError, PermanentError, TransientError
from notifier.events import Outcome, SendResult

Step = Callable[[Sequence[Message]], list[SendResult]]


def sent(batch: Sequence[Message]) -> list[SendResult]:
    return [SendResult.sent(m.delivery_id, f"msg-{m.delivery_id}") for m in batch]


def raises(exc: BaseException) -> Step:
    def step(batch: Sequence[Message]) -> list[SendResult]:
        raise exc

    return step


class ScriptedChannel(Channel):
    """A channel whose batches play a script, one step per batch; it remembers the delivery ids of each batch."""

    name = "email"
    provider = "scripted"
    max_batch: ClassVar[int] = 2

    def __init__(self, *steps: Step) -> None:
        self.pacer = CountingPacer()
        super().__init__(rate_limiter=self.pacer)
        self.steps = list(steps)
        self.batches: list[list[int]] = []

    def _send_batch(self, batch: Sequence[Message]) -> list[SendResult]:
        self.batches.append([m.delivery_id for m in batch])
        return self.steps.pop(0)(batch)


class CountingPacer:
    def __init__(self) -> None:
        self.acquired: list[int] = []

    def acquire(self, n: int = 1) -> float:
        self.acquired.append(n)
        return 0.0


def emails(n: int) -> list[EmailMessage]:
    return [EmailMessage(i, f"person{i}@example.com", f"Person {i}", "Hi", "text", "<p>html</p>")
            for i in range(1, n + 1)]


def test_an_unexpected_exception_is_an_uncertain_retry_and_the_next_batch_still_goes(
        caplog: pytest.LogCaptureFixture) -> None:
    channel = ScriptedChannel(raises(KeyError("personalizations")), sent)

    with caplog.at_level(logging.ERROR, logger="notifier.channels.base"):
        results = channel.send(emails(4))

    assert channel.batches == [[1, 2], [3, 4]]
    assert [(r.delivery_id, r.outcome, r.uncertain) for r in results] == [
        (1, Outcome.RETRY, True), (2, Outcome.RETRY, True), (3, Outcome.SENT, False), (4, Outcome.SENT, False)]
    assert results[0].error == "scripted: unexpected KeyError at test_channel_base.py:24"
    [record] = caplog.records
    assert record.exc_info is None  # the traceback's message may quote an address: only the type and the place
    assert record.getMessage() == ("scripted: unexpected KeyError at test_channel_base.py:24 sending 2 messages "
                                   "(delivery ids 1, 2)")


def test_an_unexpected_error_never_carries_the_text_it_choked_on() -> None:
    [result] = ScriptedChannel(raises(ValueError("bad header for Ana <ana@example.com>"))).send(emails(1))

    assert result.error == "scripted: unexpected ValueError at test_channel_base.py:24"


def test_a_failing_rate_limiter_sends_nothing_and_asks_for_a_retry() -> None:
    class Down:
        def acquire(self, n: int = 1) -> float:
            raise ConnectionError("redis is down")

    channel = ScriptedChannel(sent)
    channel.rate_limiter = Down()

    results = channel.send(emails(3))

    assert channel.batches == []
    assert {(r.outcome, r.uncertain, r.error) for r in results} == {
        (Outcome.RETRY, False, "scripted: rate limiter unavailable: ConnectionError")}


def test_a_wrong_number_of_results_is_an_uncertain_retry_not_a_raise(caplog: pytest.LogCaptureFixture) -> None:
    channel = ScriptedChannel(lambda batch: sent(batch)[:1], sent)

    with caplog.at_level(logging.ERROR, logger="notifier.channels.base"):
        results = channel.send(emails(3))

    assert [(r.outcome, r.uncertain) for r in results] == [(Outcome.RETRY, True)] * 2 + [(Outcome.SENT, False)]
    assert results[0].error == "ScriptedChannel returned 1 results for 2 messages"
    assert caplog.records


def test_a_blocked_channel_spares_the_provider_the_remaining_batches() -> None:
    refused = ChannelConfigError("scripted 401: the key was refused: fix SCRIPTED_KEY", setting="SCRIPTED_KEY",
                                 provider="scripted", status=401)
    channel = ScriptedChannel(raises(refused), sent, sent)

    results = channel.send(emails(5))

    assert channel.batches == [[1, 2]]  # batches 2 and 3 never reached the provider
    assert channel.pacer.acquired == [2]  # nor waited their turn
    assert [r.delivery_id for r in results] == [1, 2, 3, 4, 5]
    assert {(r.outcome, r.error, r.uncertain, r.retry_after) for r in results} == {
        (Outcome.BLOCKED, "scripted 401: the key was refused: fix SCRIPTED_KEY", False, None)}


def test_a_delivery_error_of_one_batch_does_not_stop_the_next() -> None:
    channel = ScriptedChannel(raises(TransientError("scripted 503", retry_after=5)), sent)

    results = channel.send(emails(4))

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY, Outcome.SENT, Outcome.SENT]
    assert results[0].retry_after == 5 and not results[0].uncertain


def test_a_channel_config_error_is_its_own_kind_and_becomes_blocked() -> None:
    exc = ChannelConfigError("fcm: refused: fix GOOGLE_APPLICATION_CREDENTIALS",
                             setting="GOOGLE_APPLICATION_CREDENTIALS", provider="fcm")

    assert isinstance(exc, DeliveryError) and not isinstance(exc, PermanentError | TransientError)
    assert (exc.setting, exc.provider, exc.status) == ("GOOGLE_APPLICATION_CREDENTIALS", "fcm", None)
    assert result_for(9, exc) == SendResult.blocked(9, "fcm: refused: fix GOOGLE_APPLICATION_CREDENTIALS")
    assert SendResult.blocked(9, "why") == SendResult(9, Outcome.BLOCKED, error="why")
