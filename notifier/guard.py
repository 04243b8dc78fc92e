"""The guard just before a send, pure: a claimed row, its campaign and the clock in; an outcome or a clearance out.

A row goes nowhere now when none of its deadlines is worth a message any more (passed, superseded by a newer
reminder, its action done), when it has no address on its channel, when the suppression list stops it, or when
the recipient's delivery window is closed: then it waits for the window, or is skipped when the window reopens
only after the deadline. What the dispatcher learns during a tick (a channel blocked by its configuration) is not
the guard's business: the dispatcher checks it after the guard.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from notifier.campaign import Campaign, zone
from notifier.eligibility import deadlines_for, facts_of, receives
from notifier.i18n import negotiate
from notifier.ledger import suppressions
from notifier.ledger.claims import ClaimedRow, RowOutcome
from notifier.ledger.states import DeliveryState, SkipReason
from notifier.planner import window_reopens
from notifier.spread import after
from notifier.words import window_wait

__all__ = ["Cleared", "guard", "live_deadlines"]


@dataclass(frozen=True)
class Cleared:
    """A row the guard lets through, with what its message may carry: the live deadlines, the recipient's
    negotiated locale, and the row itself with only the push tokens the suppression list leaves."""

    row: ClaimedRow
    deadlines: tuple[str, ...]
    locale: str

    @property
    def tokens(self) -> tuple[str, ...]:
        """The push tokens left after suppressions (the message goes to these only)."""
        return self.row.tokens


def guard(campaign: Campaign, row: ClaimedRow, now: datetime, *, window_grace: timedelta) -> RowOutcome | Cleared:
    """The outcome of a row that must not go now (skipped, or waiting for the window), else its clearance.

    ``window_grace`` lets a send start that long after the window's end (NOTIFIER_WINDOW_GRACE_SECONDS)."""
    deadlines, reason = live_deadlines(campaign, row, now)
    if reason is None and not (row.email if row.channel == "email" else row.tokens):
        reason = SkipReason.NO_ADDRESS
    if reason is not None:
        return RowOutcome(row.id, DeliveryState.SKIPPED, now, campaign_id=row.campaign_id, skip_reason=reason)
    suppressed, tokens = suppressions.verdict(row.listed, row.channel, row.tokens,
                                              marketing=campaign.honours_opt_outs, campaign=campaign.id)
    if suppressed is not None:
        return RowOutcome(row.id, DeliveryState.SKIPPED, now, campaign_id=row.campaign_id,
                          skip_reason=SkipReason.SUPPRESSED, error=suppressed)
    if tokens != row.tokens:  # some of its push tokens are suppressed: the message goes to the others
        row = dataclasses.replace(row, tokens=tokens)
    closed = _window_closed(campaign, row, deadlines, now, window_grace)
    if closed is not None:
        return closed
    return Cleared(row, deadlines, negotiate(row.locale, campaign.locales, campaign.default_locale))


def live_deadlines(campaign: Campaign, row: ClaimedRow, now: datetime) -> tuple[tuple[str, ...], str | None]:
    """The staleness guard: the row's deadlines still worth a message, else the reason to skip it.

    A deadline drops out when it has passed, when the recipient did its ``skip_if`` action, when a later reminder
    for it is already due (after a pause or an outage only the newest reminder goes out), or when the recipient no
    longer meets its ``where`` (or the campaign's: then every deadline does).
    """
    tz = zone(row.timezone)
    facts = facts_of(row)
    if not receives(campaign, facts, row.recipient_id):  # its attributes changed since the row was made
        return (), SkipReason.NOT_IN_AUDIENCE
    concerned = deadlines_for(campaign, row.deadlines, facts)
    live, reasons = [], []
    for d_id in row.deadlines:
        d = campaign.deadline(d_id)
        if d_id not in concerned:
            reasons.append(SkipReason.NOT_IN_AUDIENCE)
        elif now >= d.instant_in(tz):
            reasons.append(SkipReason.DEADLINE_PASSED)
        elif d_id in row.superseded:
            reasons.append(SkipReason.SUPERSEDED)
        elif d.skip_if and (d.skip_if in row.actions or _truthy(row.attributes.get(d.skip_if))):
            reasons.append(SkipReason.ACTION_DONE)
        else:
            live.append(d_id)
    if live:
        return tuple(live), None
    # Name the most telling reason: what the recipient did, then a newer reminder, then the clock.
    return (), next(r for r in (SkipReason.ACTION_DONE, SkipReason.SUPERSEDED, SkipReason.DEADLINE_PASSED,
                                SkipReason.NOT_IN_AUDIENCE) if r in reasons)


def _window_closed(campaign: Campaign, row: ClaimedRow, deadlines: tuple[str, ...], now: datetime,
                   grace: timedelta) -> RowOutcome | None:
    """Outside the recipient's delivery window: wait until it opens (spread like a wave, the attempt not counted),
    or skip when it opens only after the latest live deadline. None inside the window."""
    tz = zone(row.timezone)
    reopens = window_reopens(now, tz, campaign.delivery.window, grace)
    if reopens is None:
        return None
    if reopens >= max(campaign.deadline(d).instant_in(tz) for d in deadlines):  # the guard drops the rest
        return RowOutcome(row.id, DeliveryState.SKIPPED, now, campaign_id=row.campaign_id,
                          skip_reason=SkipReason.DEADLINE_PASSED,
                          error="outside the delivery window until after the deadline")
    reopens = after(campaign, tz, reopens, deadlines, row.recipient_seq)  # off the hour, as a wave
    return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, next_attempt_at=reopens,
                      attempts=row.attempts - 1, error=window_wait(campaign.delivery.window))


def _truthy(value: Any) -> bool:
    """An attribute read as a flag: "no", "0", "false", "off" and blanks are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "n", "off")
    return bool(value)
