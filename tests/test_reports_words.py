"""Counts printed for people: states as words, never an enum's repr."""

from __future__ import annotations

from notifier.ledger.models import DeliveryState, SkipReason
from notifier.reports import counts_text


def test_states_read_as_words_sorted() -> None:
    assert counts_text({DeliveryState.SENT: 3, DeliveryState.FAILED: 1}) == "failed: 1, sent: 3"
    assert counts_text({SkipReason.ACTION_DONE: 2, "superseded": 1}) == "action_done: 2, superseded: 1"


def test_nothing_to_count_says_so() -> None:
    assert counts_text({}, "nothing due") == "nothing due"


# --- one vocabulary for the CLI and the dashboard (notifier.words) --------------------------------------------

SHIPPED = """\
id: words
name: Words
locales: [en]
default_locale: en
channels: [email, push]
delivery: {max_per_day: 1}
deadlines:
  - {id: playlist-transfer, label: Playlist transfer, at: "2024-10-28T00:00", waves: [P30D, P1W, P1D]}
  - {id: refund, label: Refund, at: "2024-11-28T00:00", waves: [P61D, PT6H, P1DT6H]}
  - {id: closure, at: "2024-11-28T12:00", waves: [PT30M]}
"""


def test_a_wave_reads_as_its_time_before_its_deadline() -> None:
    from notifier.campaign import parse_campaign
    from notifier.words import Words

    campaign, words = parse_campaign(SHIPPED), Words()
    assert words.send(campaign, "playlist-transfer@P30D") == "30 days before Playlist transfer"
    assert words.send(campaign, "playlist-transfer@P1W") == "7 days before Playlist transfer"
    assert words.send(campaign, "playlist-transfer@P1D") == "1 day before Playlist transfer"
    assert words.send(campaign, "refund@PT6H") == "6 hours before Refund"
    assert words.send(campaign, "refund@P1DT6H") == "1 day 6 hours before Refund"
    assert words.send(campaign, "closure@PT30M") == "30 minutes before closure"  # no label: its id
    assert words.send(campaign, "playlist-transfer@P30D+refund@P61D") == \
        "30 days before Playlist transfer, and 61 days before Refund"
    assert words.send(campaign, "playlist-transfer@P1D+refund@P1DT6H+closure@PT30M") == \
        "1 day before Playlist transfer, 1 day 6 hours before Refund, and 30 minutes before closure"
    assert words.send(campaign, "gone@P7D") == "gone@P7D"  # a send of an earlier file: as it is
    assert words.waves(campaign.deadlines[0]) == "30 days, 7 days, 1 day before Playlist transfer"


def test_a_wait_for_the_window_is_counted_and_said_apart_from_a_retry() -> None:
    from datetime import time

    from notifier.words import Words, tick_word, window_wait

    waits = window_wait((time(8, 0), time(21, 0)))
    assert waits == "waiting for the delivery window (08:00–21:00 local time)"  # the ledger's text, as before
    assert tick_word("pending", waits) == "waiting for 08:00 local"
    assert tick_word("pending", "sendgrid 503: unavailable") == "retry"
    assert tick_word("sent", None) == "sent"
    assert Words().waiting(waits) == "waiting for 08:00 local"
    assert Words().waiting("sendgrid 503: unavailable") == "waiting to retry: sendgrid 503: unavailable"


def test_every_skip_reason_reads_as_words_with_its_code_beside_them() -> None:
    from notifier.words import Words

    words = Words()
    for reason in SkipReason:
        said = words.skipped(reason.value)
        assert said.endswith(f" ({reason.value})")
        assert said.removesuffix(f" ({reason.value})") not in (reason.value, reason.value.replace("_", " "))
    assert words.skipped("deadline_passed") == "its deadline had passed (deadline_passed)"
    assert words.reason("skipped", "action_done", None) == "they had already done what it asks (action_done)"
    assert words.reason("failed", None, "sendgrid 400: bad address") == "sendgrid 400: bad address"
    assert words.reason("sent", None, None) == "-"
