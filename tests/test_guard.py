"""The guard just before a send, as a pure function: no ledger, no emulator; a claimed row and the shipped campaign.

Jakarta (UTC+7, no DST) recipients of tiktok-music-shutdown: window 08:00–21:00 local, playlist transfer until
28 Oct 00:00 local, refunds until 28 Nov 00:00 local.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifier.campaign import Campaign, parse_campaign
from notifier.guard import Cleared, guard, live_deadlines
from notifier.ledger.claims import ClaimedRow, RowOutcome
from notifier.ledger.states import DeliveryState, SkipReason
from notifier.ledger.suppressions import Listed, campaign_scope
from notifier.words import window_wait
from tests.conftest import CAMPAIGN_FILE, without_spread

PLAYLIST, REFUND = "playlist-transfer", "refund"
SHIPPED = parse_campaign(CAMPAIGN_FILE.read_text(encoding="utf-8"), source=str(CAMPAIGN_FILE))  # spread PT20M
CAMPAIGN = parse_campaign(without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8")), source=str(CAMPAIGN_FILE))
FIRST_SEND = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 28 Sep 10:00 WIB, both deadlines ahead
PLAYLIST_DEADLINE = datetime(2024, 10, 27, 17, 0, tzinfo=UTC)  # 28 Oct 00:00 WIB
GRACE = timedelta(minutes=15)


def claimed(**changes: Any) -> ClaimedRow:
    """A Jakarta recipient's first (merged) email, claimed once."""
    row = ClaimedRow(id=7, campaign_id=CAMPAIGN.id, group_id=1, channel="email", send_key="unused-by-the-guard",
                     attempts=1, wave="P61D", deadlines=(PLAYLIST, REFUND), send_at=FIRST_SEND, recipient_seq=42,
                     recipient_id="r-42", email="someone@example.test", name="Sari", locale="id",
                     timezone="Asia/Jakarta", country="ID", attributes={}, tokens=(), actions=frozenset(),
                     superseded=frozenset())
    return dataclasses.replace(row, **changes)


def push(*tokens: str, **changes: Any) -> ClaimedRow:
    return claimed(channel="push", email=None, tokens=tokens, **changes)


def skipped(outcome: RowOutcome | Cleared) -> SkipReason | None:
    assert isinstance(outcome, RowOutcome), outcome
    assert outcome.state == DeliveryState.SKIPPED
    return outcome.skip_reason


def cleared(outcome: RowOutcome | Cleared) -> Cleared:
    assert isinstance(outcome, Cleared), outcome
    return outcome


def check(row: ClaimedRow, now: datetime = FIRST_SEND, campaign: Campaign = CAMPAIGN,
          grace: timedelta = GRACE) -> RowOutcome | Cleared:
    return guard(campaign, row, now, window_grace=grace)


# --- staleness: which deadlines are still worth a message ----------------------------------------------------


def test_a_row_due_inside_the_window_is_cleared_with_every_live_deadline_and_its_own_locale() -> None:
    ok = cleared(check(claimed()))
    assert (ok.deadlines, ok.locale, ok.row) == ((PLAYLIST, REFUND), "id", claimed())


def test_a_deadline_that_has_passed_drops_out_and_the_message_carries_the_rest() -> None:
    ok = cleared(check(claimed(), datetime(2024, 10, 28, 3, 0, tzinfo=UTC)))  # 28 Oct 10:00 WIB
    assert ok.deadlines == (REFUND,)


def test_a_row_whose_every_deadline_has_passed_is_skipped_as_deadline_passed() -> None:
    assert skipped(check(claimed(deadlines=(PLAYLIST,)), PLAYLIST_DEADLINE)) == SkipReason.DEADLINE_PASSED


def test_a_deadline_a_later_due_reminder_covers_is_superseded() -> None:
    assert skipped(check(claimed(deadlines=(PLAYLIST,), superseded=frozenset({PLAYLIST})))) == SkipReason.SUPERSEDED
    assert cleared(check(claimed(superseded=frozenset({PLAYLIST})))).deadlines == (REFUND,)


def test_the_recipient_who_did_the_skip_if_action_gets_no_reminder_for_that_deadline() -> None:
    done = claimed(deadlines=(PLAYLIST,), actions=frozenset({"playlist_transferred"}))
    assert skipped(check(done)) == SkipReason.ACTION_DONE


@pytest.mark.parametrize(("value", "skips"), [("yes", True), (True, True), (1, True), ("no", False),
                                               ("false", False), ("0", False), ("", False), (None, False)])
def test_a_skip_if_attribute_counts_as_done_when_it_reads_as_true(value: object, skips: bool) -> None:
    outcome = check(claimed(deadlines=(PLAYLIST,), attributes={"playlist_transferred": value}))
    assert (skipped(outcome) == SkipReason.ACTION_DONE) if skips else cleared(outcome).deadlines == (PLAYLIST,)


def test_with_every_deadline_dropped_the_most_telling_reason_is_named_action_then_newer_reminder_then_clock() -> None:
    row = claimed(actions=frozenset({"refund_requested"}), superseded=frozenset({PLAYLIST}))
    assert live_deadlines(CAMPAIGN, row, FIRST_SEND) == ((), SkipReason.ACTION_DONE)
    assert live_deadlines(CAMPAIGN, row, PLAYLIST_DEADLINE) == ((), SkipReason.ACTION_DONE)
    late = claimed(superseded=frozenset({REFUND}))
    assert live_deadlines(CAMPAIGN, late, PLAYLIST_DEADLINE) == ((), SkipReason.SUPERSEDED)


# --- address and suppression ----------------------------------------------------------------------------------


def test_an_email_row_without_an_address_and_a_push_row_without_tokens_are_skipped_as_no_address() -> None:
    assert skipped(check(claimed(email=None))) == SkipReason.NO_ADDRESS
    assert skipped(check(push())) == SkipReason.NO_ADDRESS


def test_a_stale_row_without_an_address_is_named_stale_not_unaddressed() -> None:
    assert skipped(check(claimed(email=None, deadlines=(PLAYLIST,)), PLAYLIST_DEADLINE)) == SkipReason.DEADLINE_PASSED


def test_an_address_on_the_suppression_list_for_all_mail_is_skipped_with_the_lists_reason() -> None:
    outcome = check(claimed(listed=Listed({}, {"all": "hard bounce"}, {})))
    assert skipped(outcome) == SkipReason.SUPPRESSED
    assert isinstance(outcome, RowOutcome) and outcome.error == "suppressed: hard bounce"


def test_an_opt_out_from_this_campaign_stops_every_channel_even_in_a_service_campaign() -> None:
    listed = Listed({campaign_scope(CAMPAIGN.id): "asked to stop"}, {}, {})
    assert skipped(check(claimed(listed=listed))) == SkipReason.SUPPRESSED
    assert skipped(check(push("t1", listed=listed))) == SkipReason.SUPPRESSED


def test_a_service_campaign_ignores_a_marketing_opt_out() -> None:
    assert not CAMPAIGN.honours_opt_outs
    assert isinstance(check(claimed(listed=Listed({"marketing": "unsubscribed"}, {}, {}))), Cleared)


def test_suppressed_push_tokens_are_dropped_and_the_message_goes_to_the_others() -> None:
    ok = cleared(check(push("t1", "t2", "t3", listed=Listed({}, {}, {"t2": {"all": "uninstalled"}}))))
    assert ok.tokens == ok.row.tokens == ("t1", "t3")


def test_a_push_row_whose_every_token_is_suppressed_is_skipped() -> None:
    outcome = check(push("t1", listed=Listed({}, {}, {"t1": {"all": "uninstalled"}})))
    assert skipped(outcome) == SkipReason.SUPPRESSED
    assert isinstance(outcome, RowOutcome) and outcome.error == "suppressed: uninstalled"


# --- the delivery window ----------------------------------------------------------------------------------------


def test_at_night_the_row_waits_for_the_window_to_open_its_attempt_not_counted() -> None:
    night = datetime(2024, 9, 28, 20, 0, tzinfo=UTC)  # 29 Sep 03:00 WIB
    outcome = check(claimed(attempts=3), night)
    assert isinstance(outcome, RowOutcome)
    assert (outcome.state, outcome.next_attempt_at, outcome.attempts, outcome.error) == (
        DeliveryState.PENDING, datetime(2024, 9, 29, 1, 0, tzinfo=UTC), 2, window_wait(CAMPAIGN.delivery.window))


def test_the_wait_for_the_window_ends_spread_like_a_wave_off_the_hour() -> None:
    opens = datetime(2024, 9, 29, 1, 0, tzinfo=UTC)  # 08:00 WIB
    outcome = check(claimed(), datetime(2024, 9, 28, 20, 0, tzinfo=UTC), SHIPPED)
    assert isinstance(outcome, RowOutcome) and outcome.next_attempt_at is not None
    assert opens < outcome.next_attempt_at <= opens + timedelta(minutes=20)
    assert outcome.next_attempt_at.second != 0  # a spread offset is never a whole minute


def test_a_send_may_start_within_the_grace_after_the_windows_end_and_not_later() -> None:
    ten_past_nine = datetime(2024, 9, 28, 14, 10, tzinfo=UTC)  # 21:10 WIB
    assert isinstance(check(claimed(), ten_past_nine), Cleared)
    assert isinstance(check(claimed(), ten_past_nine, grace=timedelta(0)), RowOutcome)
    assert isinstance(check(claimed(), ten_past_nine + timedelta(minutes=10)), RowOutcome)


def test_a_row_whose_window_reopens_only_after_its_deadline_is_skipped_as_deadline_passed() -> None:
    last_evening = datetime(2024, 10, 27, 15, 0, tzinfo=UTC)  # 27 Oct 22:00 WIB, two hours before the deadline
    outcome = check(claimed(deadlines=(PLAYLIST,)), last_evening)
    assert skipped(outcome) == SkipReason.DEADLINE_PASSED
    assert isinstance(outcome, RowOutcome) and outcome.error == "outside the delivery window until after the deadline"


def test_a_merged_row_waits_past_an_earlier_deadline_for_the_later_one() -> None:
    last_evening = datetime(2024, 10, 27, 15, 0, tzinfo=UTC)
    outcome = check(claimed(), last_evening)
    assert isinstance(outcome, RowOutcome) and outcome.state == DeliveryState.PENDING


# --- the locale the message is written in -------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "reads"), [("id", "id"), ("pt-PT", "pt-BR"), ("pt", "pt-BR"), ("es-AR", "es-MX"),
                                              ("fr", "en"), (None, "en")])
def test_the_recipients_locale_is_negotiated_against_the_campaigns(asked: str | None, reads: str) -> None:
    assert cleared(check(claimed(locale=asked))).locale == reads
