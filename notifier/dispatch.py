"""One dispatcher tick: maintenance (``notifier.maintenance``), then the send path, claim → guard → compose →
send → complete: the guard (``notifier.guard``) and the retry policy (``notifier.retry_policy``) are pure, the
messages are built by ``notifier.compose``, and this module moves rows through the ledger around them.

The clock is a parameter (``now``), so the demo and the tests fast-forward time without patching.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from notifier import maintenance
from notifier.campaign import Campaign
from notifier.channels.base import Channel, Message
from notifier.compose import Composed, MessageBuilder, brief, may_fall_back_to_email
from notifier.config import Settings
from notifier.daily_cap import DailyCap
from notifier.events import Outcome, SendResult
from notifier.guard import guard, live_deadlines
from notifier.handoff import Handoff
from notifier.ledger import claims, queries
from notifier.ledger.claims import RowOutcome
from notifier.ledger.db import durably, transaction
from notifier.ledger.states import DeliveryState, SkipReason
from notifier.maintenance import MaintenanceReport
from notifier.render import Renderer
from notifier.retry_policy import RetryPolicy
from notifier.words import tick_word

__all__ = ["Dispatcher", "TickReport", "live_deadlines"]  # live_deadlines lives in notifier.guard

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class TickReport(MaintenanceReport):
    """Counts of what one tick did: its maintenance pass, then the sends (ids and counts only, never personal data)."""

    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    blocked: dict[str, str] = field(default_factory=dict)  # channel → why it could send nothing (the setting to fix)
    chunks: int = 0  # chunk tasks published (distributed tick)
    stopped: bool = False  # a stop was requested: the batch in flight was finished and recorded, nothing more claimed


class Dispatcher:
    """Moves due ledger rows through pending → sending → sent | failed | skipped, in batches."""

    def __init__(self, sessions: sessionmaker[Session], channels: Mapping[str, Channel], renderer: Renderer,
                 settings: Settings, rng: random.Random | None = None, *, simulated_clock: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.sessions = sessions
        self.channels = channels
        self.renderer = renderer
        self.settings = settings
        self.rng = rng or random.Random()
        # A simulated clock (the demo, tests, dispatch --now) says so; a real one is checked against the ledger's.
        self.simulated_clock = simulated_clock
        self.sleep = sleep  # between attempts to reach a ledger that is down
        self.stopping = threading.Event()  # set by request_stop (SIGTERM): finish the batch in hand, claim no more
        self.gate = maintenance.ContentGate(settings, renderer.forget)  # the approval gate, shared with maintenance
        self.retries = RetryPolicy.of(settings)
        self.cap = DailyCap(dict(settings.daily_cap))  # NOTIFIER_DAILY_CAP: messages a day across campaigns
        self._blocked: dict[str, str] = {}  # channel → why it cannot send (credentials, configuration), this tick
        self.owner = f"local:{uuid.uuid4().hex}"  # lease owner for rows this process sends itself

    def prepare(self, now: datetime) -> TickReport:
        """What every tick of this process does first: a maintenance pass (``notifier.maintenance``: recover, plan,
        gate the copy, materialize, purge), then ready to send. A Celery fleet runs that pass as a task of its own."""
        self._blocked = {}
        done = maintenance.Maintenance(self.sessions, self.settings, self.gate,
                                       simulated_clock=self.simulated_clock).run(now)
        return TickReport(**{f.name: getattr(done, f.name) for f in dataclasses.fields(done)})

    def request_stop(self) -> None:
        """Stop soon and cleanly (a deploy's SIGTERM): the batch in hand is sent and recorded, nothing more is
        claimed, and a wait between ticks ends at once. Safe from a signal handler or another thread."""
        self.stopping.set()

    def clock_hold(self, now: datetime) -> str | None:
        """Why a tick at ``now`` must not send: this host's clock disagrees with the ledger's by more than
        NOTIFIER_MAX_CLOCK_SKEW_SECONDS (never for a simulated clock). Noted in the ledger for status."""
        return maintenance.clock_hold(self.sessions, self.settings, now, simulated_clock=self.simulated_clock)

    def tick(self, now: datetime) -> TickReport:
        """Do everything due at ``now`` in this process; returns what was done."""
        report = self.prepare(now)
        claimed = report.held is None
        while claimed:  # again after a pass that sent something: a push may have added a fallback email
            claimed = False
            for channel in self.channels:  # one channel at a time: a claim walks its due rows in time order
                cursor = claims.DueCursor()
                with Handoff(threaded=self._pipelined) as handoff:  # batch k is sent while k + 1 is composed
                    while True:
                        if self.stopping.is_set():
                            report.stopped = True
                            break
                        with transaction(self.sessions) as s:
                            ids = claims.claim_due(s, now, self.settings.batch_size, self.settings.lease_seconds,
                                                    exclude=report.refused, owner=self.owner, channel=channel,
                                                    cursor=cursor)
                        if not ids:
                            break
                        claimed = True
                        report.claimed += len(ids)
                        batch = self._compose(ids, now)
                        handoff.submit(lambda b=batch: report.outcomes.update(self._hand_over(b, now, self.owner)))
        report.blocked = dict(self._blocked)
        for channel, why in report.blocked.items():
            log.error("channel %s sent nothing: %s", channel, why)
        if report.claimed or report.materialized:
            log.info("tick at %s: %d rows materialized, %d claimed, outcomes %s",
                     now.isoformat(), report.materialized, report.claimed, dict(report.outcomes))
        return report

    def enqueue(self, now: datetime, publish: Callable[[str, list[int]], None], chunk_size: int,
                channels: Sequence[str] | None = None, *, maintain: bool = True) -> TickReport:
        """The distributed tick: hand due rows to workers as chunks of ids, one queue per channel (all of them, or
        ``channels``), after a maintenance pass; with ``maintain=False`` (the beat's ``notifier.tick``, whose
        maintenance is ``notifier.maintain``) behind the send path's own checks only: the clock and the copy.

        Rows become ``queued`` before their chunk is published; a chunk the broker loses is queued again once
        its lease runs out, so the ledger, not the broker, decides what is still owed.
        """
        if maintain:
            report = self.prepare(now)
        else:
            held, refused = self._send_checks(now, "nothing sent")
            report = TickReport(held=held, refused=refused)
        for channel in () if report.held else self.channels if channels is None else channels:
            cursor = claims.DueCursor()
            while True:
                if self.stopping.is_set():
                    report.stopped = True
                    break
                with transaction(self.sessions) as s:
                    ids = claims.claim_due(s, now, chunk_size, self.settings.queue_lease_seconds,
                                            exclude=report.refused, into=DeliveryState.QUEUED, channel=channel,
                                            cursor=cursor)
                if not ids:
                    break
                publish(channel, ids)
                report.claimed += len(ids)
                report.chunks += 1
        return report

    def run_chunk(self, ids: Sequence[int], owner: str, now: datetime) -> Counter[str]:
        """A worker's part: lease the chunk's rows still queued, then guard, render, send and record them.

        A worker whose clock disagrees with the ledger's leases nothing: the chunk stays queued and is handed out
        again once its queue lease runs out."""
        held, refused = self._send_checks(now, f"chunk of {len(ids)} rows left queued")
        if held is not None:
            return Counter()
        with transaction(self.sessions) as s:
            leased = claims.lease_chunk(s, ids, owner, now, self.settings.lease_seconds, exclude=refused)
        if not leased:
            return Counter()
        self._blocked = {}
        counts = self._process(leased, now, owner)
        for channel, why in self._blocked.items():
            log.error("channel %s sent nothing of this chunk: %s", channel, why)
        return counts

    def _send_checks(self, now: datetime, held_note: str) -> tuple[str | None, dict[str, str]]:
        """The send path's own checks before it claims (enqueue without maintenance, a worker's chunk): the clock
        hold, logged after ``held_note``, and else the content gate's refusals (campaign id → why)."""
        held = self.clock_hold(now)
        if held is not None:
            log.error("%s: %s", held_note, held)
            return held, {}
        with transaction(self.sessions) as s:
            return None, self.gate.refused(s)

    def close(self) -> None:
        """Release the channels' connections."""
        for channel in self.channels.values():
            channel.close()

    def _process(self, ids: Sequence[int], now: datetime, owner: str) -> Counter[str]:
        """Guard, compose, send and record a claimed batch. Each row and each channel fails alone, and a channel's
        outcomes are in the ledger before the next channel is tried."""
        return self._deliver(self._compose(ids, now), now, owner)

    @property
    def _pipelined(self) -> bool:
        """Whether a tick composes the next batch while one is sent (:class:`~notifier.handoff.Handoff`): on
        PostgreSQL. SQLite takes one writer at a time, and a transaction that read before another's commit cannot
        write: it keeps the plain order."""
        bind = self.sessions.kw.get("bind")
        return bind is not None and bind.dialect.name == "postgresql"

    def _compose(self, ids: Sequence[int], now: datetime) -> Composed:
        """Read a claimed batch and build its messages: the rows that go nowhere now, with their outcomes, and the
        messages ready to send, per channel."""
        def load() -> tuple[list[claims.ClaimedRow], dict[str, Campaign]]:
            with self.sessions() as s:
                rows = claims.load_claimed(s, ids, now)
                return rows, {cid: queries.campaign_of(queries.get_campaign(s, cid))
                              for cid in {r.campaign_id for r in rows}}  # once per campaign, not per row

        rows, campaigns = self.durably(f"reading a claimed batch of {len(ids)} rows", load)
        composed = Composed(campaigns)
        build = MessageBuilder(self.renderer, self.settings, self.simulated_clock)  # the clock as it is now
        for row in rows:
            campaign = campaigns[row.campaign_id]
            try:
                prepared = self._guard_and_compose(campaign, row, now, build)
            except Exception as exc:  # this recipient's message cannot be built: it fails alone, after its attempts
                log.warning("delivery %d: cannot build the message: %s", row.id, type(exc).__name__)
                prepared = self.retries.after_failure(row, campaign, f"cannot build the message: {brief(exc)}",
                                                      None, now, uncertain=False, rng=self.rng)
            if isinstance(prepared, RowOutcome):
                composed.early.append(prepared)
            else:
                composed.ready.setdefault(row.channel, []).append((row, *prepared))
        return composed

    def _hand_over(self, composed: Composed, now: datetime, owner: str) -> Counter[str]:
        """Deliver a batch composed while the one before it was sent; when a stop came meanwhile, nothing of it has
        left and nothing of it will: its rows are released, due as they were, their attempt not counted."""
        if not self.stopping.is_set():
            return self._deliver(composed, now, owner)
        held = [row for batch in composed.ready.values() for row, _, _ in batch]
        released = [RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id,
                               attempts=row.attempts - 1, keep_error=True) for row in held]
        self._record([*composed.early, *released], now, owner)
        log.info("stopping: %d claimed rows released unsent", len(held))
        return Counter(tick_word(o.state, o.error) for o in composed.early)

    def _deliver(self, composed: Composed, now: datetime, owner: str) -> Counter[str]:
        """Record what goes nowhere, then send each channel's messages and record their outcomes. A channel found
        blocked since the batch was composed (by the batch before it) sends nothing of it: its rows wait, as they
        would have had it been known at composing (``_guard_and_compose``)."""
        counts = self._record(composed.early, now, owner)
        for channel, batch in composed.ready.items():
            blocked = self._blocked.get(channel)
            try:
                if blocked is not None:
                    counts += self._record([self.retries.blocked(row, blocked, now) for row, _, _ in batch], now,
                                           owner)
                else:
                    if self.cap.applies(channel):
                        batch, waits = self._admit(channel, batch, composed.campaigns, now)
                        counts += self._record(waits, now, owner)
                    if batch:
                        counts += self._send(channel, batch, composed.campaigns, now, owner)
            except Exception:  # its outcomes are recorded before anything after its send can fail
                log.exception("channel %s: a step after the send failed (%d rows)", channel, len(batch))
        return counts

    def _admit(self, channel: str, batch: list[tuple[claims.ClaimedRow, Message, str]],
               campaigns: Mapping[str, Campaign], now: datetime
               ) -> tuple[list[tuple[claims.ClaimedRow, Message, str]], list[RowOutcome]]:
        """The daily cap across campaigns (``notifier.daily_cap``): the rows that take a place today, committed
        before their send, and the outcomes of those that wait for another day or are capped."""
        def admit() -> tuple[list[tuple[claims.ClaimedRow, Message, str]], list[RowOutcome]]:
            with transaction(self.sessions) as s:
                return self.cap.admit(s, channel, batch, campaigns, now)

        return self.durably(f"the daily cap of {len(batch)} rows", admit)

    def _guard_and_compose(self, campaign: Campaign, row: claims.ClaimedRow, now: datetime, build: MessageBuilder
                           ) -> RowOutcome | tuple[Message, str]:
        """Guard, then compose: an outcome when the row must not go now, else (message, locale). A channel already
        known blocked this tick gets no message built (its rows wait; ``_deliver`` holds back a batch composed
        before the block was found)."""
        cleared = guard(campaign, row, now, window_grace=timedelta(seconds=self.settings.window_grace_seconds))
        if isinstance(cleared, RowOutcome):
            return cleared
        blocked = self._blocked.get(row.channel)
        if blocked is not None:
            return self.retries.blocked(row, blocked, now)
        return build.build(campaign, cleared.row, cleared.deadlines, cleared.locale, now), cleared.locale

    def _send(self, channel: str, batch: list[tuple[claims.ClaimedRow, Message, str]],
              campaigns: Mapping[str, Campaign], now: datetime, owner: str) -> Counter[str]:
        """One channel's messages through its transport, and their outcomes straight into the ledger."""
        rows = {row.id: (row, locale) for row, _, locale in batch}
        try:
            results = self.channels[channel].send([m for _, m, _ in batch])
        except BaseException as exc:  # the provider may have any of them: uncertain, recorded before it goes on
            counts = self._record([self.retries.in_flight(row, campaigns[row.campaign_id], now)
                                   for row, _ in rows.values()], now, owner)
            if not isinstance(exc, Exception):
                raise
            log.exception("channel %s failed on a batch of %d; recorded as uncertain", channel, len(rows))
            return counts
        try:
            outcomes = [self._outcome(r, *rows[r.delivery_id], campaigns[rows[r.delivery_id][0].campaign_id], now)
                        for r in results]
        except Exception:  # what is known still lands: sent as sent, the rest uncertain
            log.exception("channel %s: outcomes of a batch of %d could not be built", channel, len(rows))
            outcomes = [self._known(r, rows[r.delivery_id][0], campaigns, now) for r in results]
        answered = {o.id for o in outcomes}
        outcomes += [self.retries.in_flight(row, campaigns[row.campaign_id], now)
                     for i, (row, _) in rows.items() if i not in answered]
        unsent = [rows[o.id][0] for o in outcomes if o.state != DeliveryState.SENT and not o.uncertain] \
            if self.cap.applies(channel) else []
        counts = self._record(outcomes, now, owner, unsent)
        self._after_send(channel, results, rows, campaigns, now)
        return counts

    def _after_send(self, channel: str, results: Sequence[SendResult], rows: Mapping[int, Any],
                    campaigns: Mapping[str, Campaign], now: datetime) -> None:
        """Token hygiene and email fallbacks, in a transaction of their own: their failure never loses an outcome."""
        dead = [(rows[r.delivery_id][0].recipient_seq, t) for r in results for t in r.dead_tokens]
        fallbacks = [row for row in (rows[r.delivery_id][0] for r in results if r.outcome == Outcome.INVALID_RECIPIENT)
                     if channel == "push" and row.email and campaigns[row.campaign_id].fallback == "email"
                     and may_fall_back_to_email(campaigns[row.campaign_id], row)]
        blocked = next((r.error for r in results if r.outcome == Outcome.BLOCKED), None)
        if blocked is not None:
            self._blocked[channel] = blocked or f"{channel}: blocked"
        if not dead and not fallbacks:
            return
        def write() -> None:
            with transaction(self.sessions) as s:
                if dead:
                    queries.deactivate_tokens(s, dead, now, "provider: token unregistered or invalid")
                if fallbacks:
                    claims.add_fallback_emails(s, fallbacks, now)

        try:  # a fallback email is a message owed: kept through a ledger outage like an outcome
            self.durably(f"deactivating {len(dead)} tokens and adding {len(fallbacks)} fallback emails", write)
        except Exception:
            log.exception("could not deactivate %d tokens / add %d fallback emails", len(dead), len(fallbacks))
            return
        if dead:
            log.info("deactivated %d push tokens", len(dead))

    def _record(self, outcomes: Sequence[RowOutcome], now: datetime, owner: str,
                unsent: Sequence[claims.ClaimedRow] = ()) -> Counter[str]:
        """Write outcomes on rows this owner still holds; a retry of a campaign cancelled meanwhile is skipped. The
        ``unsent`` rows give back their place under the daily cap in the same transaction."""
        if not outcomes:
            return Counter()
        campaigns = {o.campaign_id for o in outcomes}

        def write() -> tuple[int, Sequence[RowOutcome]]:
            final = outcomes
            with transaction(self.sessions) as s:
                cancelled = queries.cancelled_among(s, campaigns)
                if cancelled:  # cancelled while these were in flight: a retry is no longer owed
                    final = [dataclasses.replace(o, state=DeliveryState.SKIPPED, skip_reason=SkipReason.CANCELLED,
                                                 next_attempt_at=None)
                             if o.state == DeliveryState.PENDING and o.campaign_id in cancelled else o
                             for o in outcomes]
                if unsent:
                    self.cap.release(s, unsent, now)
                return claims.record(s, final, owner), final

        landed, outcomes = self.durably(f"recording {len(outcomes)} outcomes", write)
        if landed < len(outcomes):
            log.warning("%d outcomes arrived after their lease was lost (rows recovered as uncertain)",
                        len(outcomes) - landed)
        return Counter(tick_word(o.state, o.error) for o in outcomes)  # a wait for the window is no retry

    def durably(self, what: str, work: Callable[[], T]) -> T:
        """Ledger work that must not be dropped (outcomes a provider already gave, a batch already claimed): while
        the ledger is unreachable, wait and try again for as long as it takes (``ledger.db.durably``); the caller
        claims nothing new meanwhile."""
        return durably(what, work, sleep=self.sleep)

    def _outcome(self, result: SendResult, row: claims.ClaimedRow, locale: str, campaign: Campaign,
                 now: datetime) -> RowOutcome:
        """A provider's answer for one row, as the ledger records it."""
        base = RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, locale=locale,
                          content_fingerprint=self.gate.fingerprints.get(row.campaign_id), uncertain=result.uncertain)
        if result.outcome == Outcome.SENT:
            return dataclasses.replace(base, state=DeliveryState.SENT, provider_message_id=result.provider_message_id)
        if result.outcome == Outcome.BLOCKED:
            return dataclasses.replace(self.retries.blocked(row, result.error or "", now), locale=locale,
                                       content_fingerprint=base.content_fingerprint)
        if result.outcome == Outcome.RETRY:  # again later, given up, or skipped when the provider may have it
            retry = self.retries.after_failure(row, campaign, result.error, result.retry_after, now,
                                               uncertain=result.uncertain, rng=self.rng)
            return dataclasses.replace(retry, locale=locale, content_fingerprint=base.content_fingerprint)
        return dataclasses.replace(base, state=DeliveryState.FAILED, error=result.error)

    def _known(self, result: SendResult, row: claims.ClaimedRow, campaigns: Mapping[str, Campaign],
               now: datetime) -> RowOutcome:
        if result.outcome == Outcome.SENT:
            return RowOutcome(row.id, DeliveryState.SENT, now, campaign_id=row.campaign_id,
                              provider_message_id=result.provider_message_id)
        return self.retries.in_flight(row, campaigns[row.campaign_id], now)
