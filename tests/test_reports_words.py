"""Counts printed for people: states as words, never an enum's repr."""

from __future__ import annotations

from notifier.ledger.models import DeliveryState, SkipReason
from notifier.reports import counts_text


def test_states_read_as_words_sorted() -> None:
    assert counts_text({DeliveryState.SENT: 3, DeliveryState.FAILED: 1}) == "failed: 1, sent: 3"
    assert counts_text({SkipReason.ACTION_DONE: 2, "superseded": 1}) == "action_done: 2, superseded: 1"


def test_nothing_to_count_says_so() -> None:
    assert counts_text({}, "nothing due") == "nothing due"
