"""What becomes of a row whose attempt did not deliver, pure (as Oban's ``backoff.ex``): retry with capped
exponential backoff and jitter while it is still worth it, give up, or skip when the provider may have it.

The random source is a parameter, so tests pin the jitter without patching. The errors' wording is stable: status
groups failures by these texts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.campaign import Campaign, zone
from notifier.config import Settings
from notifier.ledger.claims import ClaimedRow, RowOutcome
from notifier.ledger.states import DeliveryState, SkipReason

__all__ = ["IN_FLIGHT", "RetryPolicy"]

IN_FLIGHT = "in flight when the channel failed: the provider may have it"


@dataclass(frozen=True)
class RetryPolicy:
    """The retry settings (NOTIFIER_RETRY_BASE_SECONDS, _RETRY_MAX_SECONDS, _MAX_ATTEMPTS, _GIVE_UP_SECONDS)."""

    base_seconds: float
    max_seconds: float
    max_attempts: int
    give_up_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        """The policy the settings describe."""
        return cls(settings.retry_base_seconds, settings.retry_max_seconds, settings.max_attempts,
                   settings.give_up_seconds)

    def backoff(self, attempts: int, retry_after: float | None, rng: random.Random) -> timedelta:
        """Capped exponential backoff with jitter (in [base/2, base]), never sooner than the provider asked."""
        base = min(self.base_seconds * 2 ** min(attempts - 1, 30), self.max_seconds)
        delay = max(retry_after or 0.0, rng.uniform(base / 2, base))
        return timedelta(seconds=delay)

    def after_failure(self, row: ClaimedRow, campaign: Campaign, error: str | None, retry_after: float | None,
                      now: datetime, *, uncertain: bool, rng: random.Random) -> RowOutcome:
        """A failed attempt that may be tried again: skipped when the provider may have it and the campaign's
        ``on_uncertain`` says skip (never sent twice); else tried again later, with backoff, while it is still
        worth it: before the deadline, within the give-up age of the send and the attempt bound. A newer reminder
        due meanwhile makes the guard skip it as superseded."""
        if uncertain and campaign.on_uncertain == "skip":
            return RowOutcome(row.id, DeliveryState.SKIPPED, now, campaign_id=row.campaign_id,
                              skip_reason=SkipReason.UNCERTAIN, error=error, uncertain=True)
        error = error or ""
        next_at = now + self.backoff(row.attempts, retry_after, rng)
        # The latest deadline it carries: past an earlier one, the guard sends the rest without it.
        deadline = max(campaign.deadline(d).instant_in(zone(row.timezone)) for d in row.deadlines)
        give_up = row.send_at + timedelta(seconds=self.give_up_seconds)
        # Stable wording, so that status can group the failures by reason.
        if row.attempts >= self.max_attempts:
            why = f"gave up after {self.max_attempts} attempts"
        elif next_at >= deadline:
            why = "gave up: the deadline comes before the next attempt"
        elif next_at >= give_up:
            why = f"gave up: still failing {_hours(timedelta(seconds=self.give_up_seconds))} after it was due"
        else:
            return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, error=error,
                              next_attempt_at=next_at, uncertain=uncertain)
        return RowOutcome(row.id, DeliveryState.FAILED, now, campaign_id=row.campaign_id, error=f"{why}: {error}",
                          uncertain=uncertain)

    def in_flight(self, row: ClaimedRow, campaign: Campaign, now: datetime) -> RowOutcome:
        """A row whose request may have reached the provider with no answer we can use: uncertain, then sent again
        after the base backoff (never within this tick, which would loop on a channel that keeps failing) or
        skipped, as the campaign's ``on_uncertain`` says (the rule ``claims.recover_expired`` applies too)."""
        if campaign.on_uncertain == "skip":
            return RowOutcome(row.id, DeliveryState.SKIPPED, now, campaign_id=row.campaign_id, uncertain=True,
                              skip_reason=SkipReason.UNCERTAIN, error=IN_FLIGHT)
        return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, uncertain=True,
                          next_attempt_at=now + timedelta(seconds=self.base_seconds), error=IN_FLIGHT)

    def blocked(self, row: ClaimedRow, why: str, now: datetime) -> RowOutcome:
        """The channel cannot send at all (credentials, configuration): back to pending after the base backoff,
        the attempt not counted."""
        return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, error=why,
                          attempts=row.attempts - 1, next_attempt_at=now + timedelta(seconds=self.base_seconds))


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"
