"""The ledger's vocabulary in one place, as Celery's ``celery/states.py`` holds every state and its sets: campaign
and delivery states, the open and final sets, skip reasons, the phases people see, what a tick counts, and the
words reports show beside the states that are no state of a row.

Codes only, stdlib only: any layer may import this module. What the codes say to people is in ``notifier.words``.
The values are stored in the ledger and printed in logs and ``--json``: never change one.
"""

from __future__ import annotations

import enum

__all__ = [
    "FINAL_STATES",
    "OPEN_STATES",
    "WINDOW_WAIT_TICK",
    "CampaignState",
    "DeliveryState",
    "Phase",
    "ReportState",
    "SkipReason",
    "TickCount",
]


class CampaignState(enum.StrEnum):
    """What an operator made of a campaign in the ledger (``campaigns.state``)."""

    SCHEDULED = "scheduled"  # its sends go out as they fall due
    PAUSED = "paused"  # nothing of it is claimed until it is resumed
    CANCELLED = "cancelled"  # for good: its pending and queued rows are skipped (SkipReason.CANCELLED)


class DeliveryState(enum.StrEnum):
    """Where one message (a delivery row) is (``deliveries.state``)."""

    PENDING = "pending"  # due at next_attempt_at (first attempt or a retry)
    QUEUED = "queued"  # handed to the broker in a chunk task; re-queued if still here at lease_until
    SENDING = "sending"  # leased by one worker until lease_until; past it, the outcome is uncertain
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # never sent on purpose; skip_reason says why


# Rows whose outcome is still to come: a campaign with one of these has not finished. Tuples, so that the SQL
# (``state IN (...)``) and anything printed from them keep one order.
OPEN_STATES: tuple[DeliveryState, ...] = (DeliveryState.PENDING, DeliveryState.QUEUED, DeliveryState.SENDING)
# Rows with an outcome: their state stays, save ``campaign retry`` reopening failed ones (queries.retry_failed).
FINAL_STATES: tuple[DeliveryState, ...] = (DeliveryState.SENT, DeliveryState.SKIPPED, DeliveryState.FAILED)


class SkipReason(enum.StrEnum):
    """Why a row was skipped (``deliveries.skip_reason``)."""

    DEADLINE_PASSED = "deadline_passed"
    ACTION_DONE = "action_done"
    CANCELLED = "cancelled"
    NO_ADDRESS = "no_address"
    UNCERTAIN = "uncertain"  # the provider may have it (a dead worker, no answer) and the campaign says skip
    SUPERSEDED = "superseded"  # a later reminder for the same deadline is already due (after a pause or outage)
    SUPPRESSED = "suppressed"  # the address, token or recipient is on the suppression list (bounce, complaint, opt-out)
    NOT_IN_AUDIENCE = "not_in_audience"  # the recipient no longer meets the campaign's or its deadlines' ``where``
    CAPPED = "capped"  # the daily cap across campaigns was full on every day left before the deadline


class Phase(enum.StrEnum):
    """What a person wants to know first about a campaign (``reports.phase_of``); not stored."""

    DRAFT = "draft"  # in the studio, never scheduled: the ledger has no row of it
    SCHEDULED = "scheduled"  # the campaign state's word; phase_of never gives it (sending, finished or blocked)
    SENDING = "sending"  # scheduled, with sends still to fall due or rows still open
    BLOCKED = "blocked"  # scheduled, but its copy changed since it was approved: nothing of it is sent
    FINISHED = "finished"  # scheduled, every send fallen due and every row final
    PAUSED = "paused"  # CampaignState.PAUSED
    CANCELLED = "cancelled"  # CampaignState.CANCELLED


class TickCount(enum.StrEnum):
    """The keys of a tick's outcome counts (``TickReport.outcomes``, from ``words.tick_word``), besides the window
    waits (``WINDOW_WAIT_TICK``)."""

    SENT = "sent"  # rows the provider took
    FAILED = "failed"  # rows failed for good: a permanent error, or retries given up
    SKIPPED = "skipped"  # rows not sent on purpose (skip_reason says why)
    RETRY = "retry"  # rows pending again after a try: a failed attempt, a blocked channel (attempt not counted)
    CAP_WAIT = "waiting for the daily cap"  # rows moved to the next local day by NOTIFIER_DAILY_CAP


# A row pending until the recipient's delivery window opens: one key per opening time ("waiting for 08:00 local").
WINDOW_WAIT_TICK = "waiting for {opens} local"


class ReportState(enum.StrEnum):
    """Words reports show beside the DeliveryState columns that are no state of a row."""

    PLANNED = "planned"  # a send whose rows do not exist yet (its group has not fallen due): not a state of a row
    UNCERTAIN = "uncertain"  # rows marked uncertain, counted across their states: a column, not a state of a row
