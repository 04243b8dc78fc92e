"""One dispatcher tick: maintenance (``notifier.maintenance``) → claim due → guard → render → send → record.

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
from notifier.campaign import Campaign, zone
from notifier.channels.base import Channel, EmailMessage, Message, PushMessage
from notifier.config import Settings
from notifier.errors import UserError, raised_at
from notifier.events import Outcome, SendResult
from notifier.handoff import Handoff
from notifier.i18n import negotiate
from notifier.ledger import claims, queries, suppressions
from notifier.ledger.claims import RowOutcome
from notifier.ledger.db import durably, transaction
from notifier.ledger.states import DeliveryState, SkipReason
from notifier.links import unsubscribe_headers
from notifier.maintenance import MaintenanceReport
from notifier.planner import parse_send_key, window_reopens
from notifier.render import Personal, Renderer
from notifier.spread import after
from notifier.words import tick_word, window_wait

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


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "n", "off")
    return bool(value)


def live_deadlines(campaign: Campaign, row: claims.ClaimedRow, now: datetime) -> tuple[tuple[str, ...], str | None]:
    """The staleness guard: the row's deadlines still worth a message, else the reason to skip it.

    A deadline drops out when it has passed, when the recipient did its ``skip_if`` action, or when a later
    reminder for it is already due (after a pause or an outage only the newest reminder goes out).
    """
    tz = zone(row.timezone)
    live, reasons = [], []
    for d_id in row.deadlines:
        d = campaign.deadline(d_id)
        if now >= d.instant_in(tz):
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
    return (), next(r for r in (SkipReason.ACTION_DONE, SkipReason.SUPERSEDED, SkipReason.DEADLINE_PASSED)
                    if r in reasons)


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
        self._content = self.gate.fingerprints  # campaign id → fingerprint of the copy being sent (the gate's)
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
            report = TickReport(held=self.clock_hold(now))
            if report.held is not None:
                log.error("nothing sent: %s", report.held)
            else:
                with transaction(self.sessions) as s:
                    report.refused = self.gate.refused(s)
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
        held = self.clock_hold(now)
        if held is not None:
            log.error("chunk of %d rows left queued: %s", len(ids), held)
            return Counter()
        with transaction(self.sessions) as s:
            refused = self.gate.refused(s)
            leased = claims.lease_chunk(s, ids, owner, now, self.settings.lease_seconds, exclude=refused)
        if not leased:
            return Counter()
        self._blocked = {}
        counts = self._process(leased, now, owner)
        for channel, why in self._blocked.items():
            log.error("channel %s sent nothing of this chunk: %s", channel, why)
        return counts

    def close(self) -> None:
        """Release the channels' connections."""
        for channel in self.channels.values():
            channel.close()

    def _process(self, ids: Sequence[int], now: datetime, owner: str) -> Counter[str]:
        """Guard, build, send and record a claimed batch. Each row and each channel fails alone, and a channel's
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
        for row in rows:
            try:
                prepared = self._prepare(campaigns[row.campaign_id], row, now)
            except Exception as exc:  # this recipient's message cannot be built: it fails alone, after its attempts
                log.warning("delivery %d: cannot build the message: %s", row.id, type(exc).__name__)
                prepared = self._retry(row, campaigns[row.campaign_id], f"cannot build the message: {_brief(exc)}",
                                       None, now, uncertain=False)
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
                               attempts=row.attempts - 1) for row in held]
        self._record([*composed.early, *released], now, owner)
        log.info("stopping: %d claimed rows released unsent", len(held))
        return Counter(tick_word(o.state, o.error) for o in composed.early)

    def _deliver(self, composed: Composed, now: datetime, owner: str) -> Counter[str]:
        """Record what goes nowhere, then send each channel's messages and record their outcomes. A channel found
        blocked since the batch was composed (by the batch before it) sends nothing of it: its rows wait, as the
        guard would have had them wait."""
        counts = self._record(composed.early, now, owner)
        for channel, batch in composed.ready.items():
            blocked = self._blocked.get(channel)
            try:
                if blocked is not None:
                    counts += self._record([self._blocked_outcome(row, blocked, now) for row, _, _ in batch], now,
                                           owner)
                else:
                    counts += self._send(channel, batch, composed.campaigns, now, owner)
            except Exception:  # its outcomes are recorded before anything after its send can fail
                log.exception("channel %s: a step after the send failed (%d rows)", channel, len(batch))
        return counts

    def _prepare(self, campaign: Campaign, row: claims.ClaimedRow, now: datetime
                 ) -> RowOutcome | tuple[Message, str]:
        """The guard just before a send, then the message: an outcome when it must not go now, else (message,
        locale)."""
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
        tz = zone(row.timezone)
        grace = timedelta(seconds=self.settings.window_grace_seconds)
        reopens = window_reopens(now, tz, campaign.delivery.window, grace)
        if reopens is not None:
            if reopens >= max(campaign.deadline(d).instant_in(tz) for d in deadlines):  # the guard drops the rest
                return RowOutcome(row.id, DeliveryState.SKIPPED, now, campaign_id=row.campaign_id,
                                  skip_reason=SkipReason.DEADLINE_PASSED,
                                  error="outside the delivery window until after the deadline")
            reopens = after(campaign, tz, reopens, deadlines, row.recipient_seq)  # off the hour, as a wave
            return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, next_attempt_at=reopens,
                              attempts=row.attempts - 1, error=window_wait(campaign.delivery.window))
        blocked = self._blocked.get(row.channel)
        if blocked is not None:
            return self._blocked_outcome(row, blocked, now)
        locale = negotiate(row.locale, campaign.locales, campaign.default_locale)
        return self._message(campaign, row, deadlines, locale, now), locale

    def _send(self, channel: str, batch: list[tuple[claims.ClaimedRow, Message, str]],
              campaigns: Mapping[str, Campaign], now: datetime, owner: str) -> Counter[str]:
        """One channel's messages through its transport, and their outcomes straight into the ledger."""
        rows = {row.id: (row, locale) for row, _, locale in batch}
        try:
            results = self.channels[channel].send([m for _, m, _ in batch])
        except BaseException as exc:  # the provider may have any of them: uncertain, recorded before it goes on
            counts = self._record([self._in_flight(row, campaigns[row.campaign_id], now) for row, _ in rows.values()],
                                  now, owner)
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
        outcomes += [self._in_flight(row, campaigns[row.campaign_id], now)
                     for i, (row, _) in rows.items() if i not in answered]
        counts = self._record(outcomes, now, owner)
        self._after_send(channel, results, rows, campaigns, now)
        return counts

    def _after_send(self, channel: str, results: Sequence[SendResult], rows: Mapping[int, Any],
                    campaigns: Mapping[str, Campaign], now: datetime) -> None:
        """Token hygiene and email fallbacks, in a transaction of their own: their failure never loses an outcome."""
        dead = [(rows[r.delivery_id][0].recipient_seq, t) for r in results for t in r.dead_tokens]
        fallbacks = [row for row in (rows[r.delivery_id][0] for r in results if r.outcome == Outcome.INVALID_RECIPIENT)
                     if channel == "push" and row.email and campaigns[row.campaign_id].fallback == "email"
                     and _may_fall_back_to_email(campaigns[row.campaign_id], row)]
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

    def _record(self, outcomes: Sequence[RowOutcome], now: datetime, owner: str) -> Counter[str]:
        """Write outcomes on rows this owner still holds; a retry of a campaign cancelled meanwhile is skipped."""
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

    def _message(self, campaign: Campaign, row: claims.ClaimedRow, deadlines: tuple[str, ...], locale: str,
                 now: datetime) -> Message:
        tz = zone(row.timezone)
        items = tuple(i for i in parse_send_key(row.send_key) if i.deadline in deadlines)
        personal = Personal.of(row.name, row.attributes, locale, row.country)
        variant = self.renderer.variant(campaign, locale, items, tz, now, row.country, personal)
        ids = {"delivery_id": str(row.id), "campaign_id": campaign.id, "send_key": row.send_key}
        if row.channel == "email":
            assert row.email is not None
            headers = unsubscribe_headers(self.settings.public_url, self.settings.secret_key, row.id,
                                          issued=now.date(), mailto=self.settings.unsubscribe_mailto)
            return EmailMessage(row.id, row.email, personal.name, variant.subject, variant.text, variant.html, personal,
                                variant=variant.key, tags=(campaign.id, f"{campaign.id}:{row.wave}"),
                                metadata=ids, headers=headers, marketing=campaign.honours_opt_outs,
                                sender=campaign.sender.from_header if campaign.sender else None,
                                reply_to=campaign.sender.reply_to if campaign.sender else None,
                                date=now if self.simulated_clock else None)  # a simulated run's mail is dated by it
        push = self.renderer.push(variant, personal)
        # A merged push speaks for every deadline it carries: it lives, and collapses, with the latest of them.
        expires, latest = max((campaign.deadline(d).instant_in(tz), d) for d in deadlines)
        return PushMessage(row.id, row.tokens, push.title, push.body, expires_at=expires,
                           collapse_key=f"{campaign.id}:{latest}", metadata=ids,
                           tags=(f"{campaign.id}-{row.wave}",), marketing=campaign.honours_opt_outs, ttl=expires - now,
                           link=push.link or None)

    def _outcome(self, result: SendResult, row: claims.ClaimedRow, locale: str, campaign: Campaign,
                 now: datetime) -> RowOutcome:
        """A provider's answer for one row, as the ledger records it."""
        base = RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, locale=locale,
                          content_fingerprint=self._content.get(row.campaign_id), uncertain=result.uncertain)
        if result.outcome == Outcome.SENT:
            return dataclasses.replace(base, state=DeliveryState.SENT, provider_message_id=result.provider_message_id)
        if result.outcome == Outcome.BLOCKED:
            return dataclasses.replace(self._blocked_outcome(row, result.error or "", now), locale=locale,
                                       content_fingerprint=base.content_fingerprint)
        if result.outcome == Outcome.RETRY:
            if result.uncertain and campaign.on_uncertain == "skip":  # the provider may have it: do not resend
                return dataclasses.replace(base, state=DeliveryState.SKIPPED, skip_reason=SkipReason.UNCERTAIN,
                                           error=result.error)
            retry = self._retry(row, campaign, result.error or "", result.retry_after, now, uncertain=result.uncertain)
            return dataclasses.replace(retry, locale=locale, content_fingerprint=base.content_fingerprint)
        return dataclasses.replace(base, state=DeliveryState.FAILED, error=result.error)

    def _retry(self, row: claims.ClaimedRow, campaign: Campaign, error: str, retry_after: float | None,
               now: datetime, *, uncertain: bool) -> RowOutcome:
        """Try again later, with backoff, while it is still worth it: before the deadline, within the give-up age
        of the send and the attempt bound. A newer reminder due meanwhile makes the guard skip it as superseded."""
        next_at = now + self._backoff(row.attempts, retry_after)
        # The latest deadline it carries: past an earlier one, the guard sends the rest without it.
        deadline = max(campaign.deadline(d).instant_in(zone(row.timezone)) for d in row.deadlines)
        give_up = row.send_at + timedelta(seconds=self.settings.give_up_seconds)
        # Stable wording, so that status can group the failures by reason.
        if row.attempts >= self.settings.max_attempts:
            why = f"gave up after {self.settings.max_attempts} attempts"
        elif next_at >= deadline:
            why = "gave up: the deadline comes before the next attempt"
        elif next_at >= give_up:
            why = f"gave up: still failing {_hours(timedelta(seconds=self.settings.give_up_seconds))} after it was due"
        else:
            return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, error=error,
                              next_attempt_at=next_at, uncertain=uncertain)
        return RowOutcome(row.id, DeliveryState.FAILED, now, campaign_id=row.campaign_id, error=f"{why}: {error}",
                          uncertain=uncertain)

    def _blocked_outcome(self, row: claims.ClaimedRow, why: str, now: datetime) -> RowOutcome:
        """The channel cannot send at all (credentials, configuration): back to pending, the attempt not counted."""
        return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, error=why,
                          attempts=row.attempts - 1,
                          next_attempt_at=now + timedelta(seconds=self.settings.retry_base_seconds))

    def _in_flight(self, row: claims.ClaimedRow, campaign: Campaign, now: datetime) -> RowOutcome:
        """A row whose request may have reached the provider with no answer we can use: uncertain, then sent again
        after the base backoff (never within this tick, which would loop on a channel that keeps failing) or
        skipped, as the campaign's ``on_uncertain`` says (the rule ``recover_expired`` applies too)."""
        why = "in flight when the channel failed: the provider may have it"
        if campaign.on_uncertain == "skip":
            return RowOutcome(row.id, DeliveryState.SKIPPED, now, campaign_id=row.campaign_id, uncertain=True,
                              skip_reason=SkipReason.UNCERTAIN, error=why)
        return RowOutcome(row.id, DeliveryState.PENDING, now, campaign_id=row.campaign_id, uncertain=True,
                          next_attempt_at=now + timedelta(seconds=self.settings.retry_base_seconds), error=why)

    def _known(self, result: SendResult, row: claims.ClaimedRow, campaigns: Mapping[str, Campaign],
               now: datetime) -> RowOutcome:
        if result.outcome == Outcome.SENT:
            return RowOutcome(row.id, DeliveryState.SENT, now, campaign_id=row.campaign_id,
                              provider_message_id=result.provider_message_id)
        return self._in_flight(row, campaigns[row.campaign_id], now)

    def _backoff(self, attempts: int, retry_after: float | None) -> timedelta:
        """Capped exponential backoff with jitter, never sooner than the provider asked."""
        base = min(self.settings.retry_base_seconds * 2 ** min(attempts - 1, 30), self.settings.retry_max_seconds)
        delay = max(retry_after or 0.0, self.rng.uniform(base / 2, base))
        return timedelta(seconds=delay)


@dataclass
class Composed:
    """A claimed batch read and built: its campaigns, the outcomes of rows that go nowhere now (the guard's), and the
    messages ready to send per channel, each with its row and locale."""

    campaigns: dict[str, Campaign]
    early: list[RowOutcome] = field(default_factory=list)
    ready: dict[str, list[tuple[claims.ClaimedRow, Message, str]]] = field(default_factory=dict)


def _may_fall_back_to_email(campaign: Campaign, row: claims.ClaimedRow) -> bool:
    """A fallback email takes a dead push's place: always in a campaign without email, else only when the send
    goes by email too (the one rule, ``queries.send_channels``), so it never carries a deadline announced by push
    only, nor one that email merges into another send."""
    return "email" not in campaign.channels or "email" in queries.send_channels(campaign, row.timezone, row.send_key)


def _brief(exc: BaseException) -> str:
    """An exception as one short line for the ledger: our own errors with their message (a render error names
    template, locale and line, never recipient data), anything else by type and place only."""
    if isinstance(exc, UserError):
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:300]
    return f"{type(exc).__name__} at {raised_at(exc)}"


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"

