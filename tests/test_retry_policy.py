"""The retry policy as pure functions: backoff bounds, when to give up, and what an uncertain send becomes.

No ledger, no emulator: a claimed row of the shipped campaign (a Jakarta recipient's first email) and a random
source that returns the ends of its range.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifier.campaign import parse_campaign
from notifier.config import Settings
from notifier.ledger.claims import ClaimedRow
from notifier.ledger.states import DeliveryState, SkipReason
from notifier.retry_policy import IN_FLIGHT, RetryPolicy
from tests.conftest import CAMPAIGN_FILE, without_spread

RESEND = parse_campaign(without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8")), source=str(CAMPAIGN_FILE))
SKIP = dataclasses.replace(RESEND, on_uncertain="skip")
POLICY = RetryPolicy(base_seconds=60.0, max_seconds=900.0, max_attempts=25, give_up_seconds=86_400.0)
DUE = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 28 Sep 10:00 WIB
REFUND_DEADLINE = datetime(2024, 11, 27, 17, 0, tzinfo=UTC)  # 28 Nov 00:00 WIB, the later of the row's two


class Lowest(random.Random):
    """The jitter at the bottom of its range."""

    def uniform(self, a: float, b: float) -> float:
        return a


class Highest(random.Random):
    """The jitter at the top of its range."""

    def uniform(self, a: float, b: float) -> float:
        return b


def claimed(**changes: Any) -> ClaimedRow:
    row = ClaimedRow(id=7, campaign_id=RESEND.id, group_id=1, channel="email", send_key="k", attempts=1,
                     wave="P61D", deadlines=("playlist-transfer", "refund"), send_at=DUE, recipient_seq=42,
                     recipient_id="r-42", email="someone@example.test", name=None, locale="id",
                     timezone="Asia/Jakarta", country="ID", attributes={}, tokens=(), actions=frozenset(),
                     superseded=frozenset())
    return dataclasses.replace(row, **changes)


def seconds(delay: timedelta) -> float:
    return delay.total_seconds()


# --- backoff ----------------------------------------------------------------------------------------------------


def test_the_policy_is_the_settings_retry_fields() -> None:
    settings = Settings(retry_base_seconds=5.0, retry_max_seconds=50.0, max_attempts=3, give_up_seconds=600.0)
    assert RetryPolicy.of(settings) == RetryPolicy(5.0, 50.0, 3, 600.0)


@pytest.mark.parametrize(("attempts", "base"), [(1, 60), (2, 120), (3, 240), (4, 480), (5, 900), (9, 900)])
def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter_between_half_and_all_of_it(
        attempts: int, base: float) -> None:
    assert seconds(POLICY.backoff(attempts, None, Lowest())) == base / 2
    assert seconds(POLICY.backoff(attempts, None, Highest())) == base
    for seed in range(50):
        assert base / 2 <= seconds(POLICY.backoff(attempts, None, random.Random(seed))) <= base


def test_backoff_after_very_many_attempts_stays_at_the_cap() -> None:
    assert seconds(POLICY.backoff(10_000, None, Highest())) == 900


def test_backoff_is_never_sooner_than_the_provider_asked() -> None:
    assert seconds(POLICY.backoff(1, 3600.0, Highest())) == 3600
    assert seconds(POLICY.backoff(9, 3600.0, Highest())) == 3600  # above the cap too
    assert seconds(POLICY.backoff(1, 10.0, Lowest())) == 30  # a shorter ask does not make it sooner


# --- after a failed attempt: again later, or give up ---------------------------------------------------------


def test_a_failure_with_time_and_attempts_left_is_tried_again_after_the_backoff() -> None:
    outcome = POLICY.after_failure(claimed(attempts=2), RESEND, "503 from provider", None, DUE, uncertain=False,
                                   rng=Lowest())
    assert (outcome.state, outcome.error, outcome.next_attempt_at, outcome.uncertain) == (
        DeliveryState.PENDING, "503 from provider", DUE + timedelta(seconds=60), False)


def test_a_retry_after_from_the_provider_sets_the_next_attempt() -> None:
    outcome = POLICY.after_failure(claimed(), RESEND, "429", 600.0, DUE, uncertain=False, rng=Highest())
    assert outcome.next_attempt_at == DUE + timedelta(seconds=600)


def test_it_gives_up_after_the_last_allowed_attempt() -> None:
    outcome = POLICY.after_failure(claimed(attempts=25), RESEND, "503", None, DUE, uncertain=False, rng=Lowest())
    assert (outcome.state, outcome.error) == (DeliveryState.FAILED, "gave up after 25 attempts: 503")


def test_it_gives_up_when_the_deadline_comes_before_the_next_attempt() -> None:
    now = REFUND_DEADLINE - timedelta(seconds=45)
    row = claimed(send_at=now - timedelta(minutes=5))
    outcome = POLICY.after_failure(row, RESEND, "503", None, now, uncertain=False, rng=Highest())
    assert (outcome.state, outcome.error) == (DeliveryState.FAILED,
                                              "gave up: the deadline comes before the next attempt: 503")
    outcome = POLICY.after_failure(row, RESEND, "503", None, now, uncertain=False, rng=Lowest())
    assert outcome.state == DeliveryState.PENDING  # 30 s is still before the deadline


def test_an_earlier_deadline_passing_does_not_end_the_retries_while_the_later_one_is_ahead() -> None:
    just_before_playlist = datetime(2024, 10, 27, 16, 59, 30, tzinfo=UTC)
    row = claimed(send_at=just_before_playlist)
    outcome = POLICY.after_failure(row, RESEND, "503", None, just_before_playlist, uncertain=False, rng=Lowest())
    assert outcome.state == DeliveryState.PENDING


def test_it_gives_up_when_the_send_has_been_failing_for_the_give_up_age() -> None:
    row = claimed(send_at=DUE - timedelta(hours=24) + timedelta(seconds=59))
    outcome = POLICY.after_failure(row, RESEND, "503", None, DUE, uncertain=False, rng=Highest())
    assert (outcome.state, outcome.error) == (DeliveryState.FAILED, "gave up: still failing 24 h after it was due: 503")
    assert POLICY.after_failure(row, RESEND, "503", None, DUE, uncertain=False, rng=Lowest()).state == \
        DeliveryState.PENDING


def test_the_attempt_bound_is_named_before_the_deadline_and_the_age() -> None:
    row = claimed(attempts=30, send_at=REFUND_DEADLINE - timedelta(days=2))
    outcome = POLICY.after_failure(row, RESEND, "x", None, REFUND_DEADLINE - timedelta(seconds=1), uncertain=False,
                                   rng=Lowest())
    assert outcome.error == "gave up after 25 attempts: x"


# --- uncertain sends: the campaign's on_uncertain ------------------------------------------------------------


def test_an_uncertain_failure_is_skipped_when_the_campaign_says_skip() -> None:
    outcome = POLICY.after_failure(claimed(), SKIP, "timed out", None, DUE, uncertain=True, rng=Lowest())
    assert (outcome.state, outcome.skip_reason, outcome.error, outcome.uncertain, outcome.next_attempt_at) == (
        DeliveryState.SKIPPED, SkipReason.UNCERTAIN, "timed out", True, None)


def test_an_uncertain_failure_is_tried_again_and_stays_uncertain_when_the_campaign_says_resend() -> None:
    outcome = POLICY.after_failure(claimed(), RESEND, "timed out", None, DUE, uncertain=True, rng=Lowest())
    assert (outcome.state, outcome.uncertain, outcome.error) == (DeliveryState.PENDING, True, "timed out")


def test_a_certain_failure_is_tried_again_even_when_the_campaign_skips_uncertain_ones() -> None:
    outcome = POLICY.after_failure(claimed(), SKIP, "503", None, DUE, uncertain=False, rng=Lowest())
    assert outcome.state == DeliveryState.PENDING


def test_a_row_in_flight_when_the_channel_failed_is_skipped_or_resent_after_the_base_backoff() -> None:
    skipped = POLICY.in_flight(claimed(), SKIP, DUE)
    assert (skipped.state, skipped.skip_reason, skipped.uncertain, skipped.error) == (
        DeliveryState.SKIPPED, SkipReason.UNCERTAIN, True, IN_FLIGHT)
    resent = POLICY.in_flight(claimed(), RESEND, DUE)
    assert (resent.state, resent.next_attempt_at, resent.uncertain, resent.error) == (
        DeliveryState.PENDING, DUE + timedelta(seconds=60), True,
        "in flight when the channel failed: the provider may have it")


# --- a channel blocked by its configuration ------------------------------------------------------------------


def test_a_blocked_channel_sends_the_row_back_to_pending_its_attempt_not_counted() -> None:
    outcome = POLICY.blocked(claimed(attempts=4), "push: set GOOGLE_APPLICATION_CREDENTIALS", DUE)
    assert (outcome.state, outcome.attempts, outcome.next_attempt_at, outcome.error, outcome.uncertain) == (
        DeliveryState.PENDING, 3, DUE + timedelta(seconds=60), "push: set GOOGLE_APPLICATION_CREDENTIALS", False)
