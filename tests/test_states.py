"""The ledger's vocabulary (notifier.ledger.states): one place for states, sets, reasons, phases and tick counts."""

from __future__ import annotations

import ast
import sys
from datetime import time
from pathlib import Path

import pytest

from notifier.ledger import models, states
from notifier.ledger.states import (
    FINAL_STATES,
    OPEN_STATES,
    WINDOW_WAIT_TICK,
    CampaignState,
    DeliveryState,
    Phase,
    ReportState,
    SkipReason,
    TickCount,
)


def test_every_delivery_state_is_open_or_final_never_both() -> None:
    assert set(OPEN_STATES) | set(FINAL_STATES) == set(DeliveryState)
    assert not set(OPEN_STATES) & set(FINAL_STATES)
    assert len(OPEN_STATES) + len(FINAL_STATES) == len(DeliveryState)  # no state twice in one set


def test_the_values_stored_and_printed_never_change() -> None:
    assert [s.value for s in CampaignState] == ["scheduled", "paused", "cancelled"]
    assert [s.value for s in DeliveryState] == ["pending", "queued", "sending", "sent", "failed", "skipped"]
    assert OPEN_STATES == ("pending", "queued", "sending")
    assert FINAL_STATES == ("sent", "skipped", "failed")
    assert [s.value for s in SkipReason] == ["deadline_passed", "action_done", "cancelled", "no_address", "uncertain",
                                             "superseded", "suppressed", "not_in_audience", "capped"]
    assert [s.value for s in Phase] == ["draft", "scheduled", "sending", "blocked", "finished", "paused", "cancelled"]
    assert [s.value for s in TickCount] == ["sent", "failed", "skipped", "retry", "waiting for the daily cap"]
    assert WINDOW_WAIT_TICK.format(opens="08:00") == "waiting for 08:00 local"
    assert [s.value for s in ReportState] == ["planned", "uncertain"]


def test_report_words_are_no_state_of_a_row() -> None:
    assert not {s.value for s in ReportState} & {s.value for s in DeliveryState}


def test_the_ledger_models_still_export_the_vocabulary() -> None:
    assert models.CampaignState is CampaignState and models.DeliveryState is DeliveryState
    assert models.SkipReason is SkipReason
    assert models.OPEN_STATES is OPEN_STATES and models.FINAL_STATES is FINAL_STATES


def test_the_vocabulary_imports_nothing_but_the_standard_library() -> None:
    tree = ast.parse(Path(states.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"__future__"}


def test_every_code_people_see_has_its_words() -> None:
    from notifier.words import PHASES, SKIP_REASONS, STATES

    assert set(SKIP_REASONS) == {s.value for s in SkipReason}
    assert set(PHASES) == {s.value for s in Phase}
    assert set(STATES) == {s.value for s in DeliveryState} | {ReportState.PLANNED.value}


def test_a_campaign_phase_is_a_phase() -> None:
    from notifier.reports import phase_of

    seen = {phase_of(state, groups, done, open_rows, blocked) for state in CampaignState
            for groups, done in ((2, 1), (2, 2)) for open_rows in (False, True) for blocked in (False, True)}
    assert seen == {"sending", "finished", "blocked", "paused", "cancelled"}
    assert seen <= {s.value for s in Phase}
    assert all(type(p) is str for p in seen)  # plain words: a log or repr shows "finished", not Phase.FINISHED


@pytest.mark.parametrize("state", [DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED])
def test_a_final_outcome_counts_as_its_state(state: DeliveryState) -> None:
    from notifier.words import tick_word

    assert tick_word(state, "any error") == TickCount(state.value)


def test_a_pending_outcome_counts_as_a_retry_or_a_wait_for_the_window() -> None:
    from notifier.words import tick_word, window_wait

    retry = tick_word(DeliveryState.PENDING, "sendgrid 503: unavailable")
    waits = tick_word(DeliveryState.PENDING, window_wait((time(8, 0), time(21, 0))))
    assert retry == TickCount.RETRY and type(retry) is str
    assert waits == WINDOW_WAIT_TICK.format(opens="08:00")
    assert tick_word(DeliveryState.PENDING, None) == TickCount.RETRY  # blocked channels and in-flight rows too


def test_every_tick_count_is_a_word_tick_word_gives() -> None:
    from notifier.words import cap_wait, tick_word

    given = {tick_word(s, None) for s in (*FINAL_STATES, DeliveryState.PENDING)}
    given.add(tick_word(DeliveryState.PENDING, cap_wait(1, "email", ["notice"])))  # a row the daily cap moved
    assert given == {c.value for c in TickCount}
