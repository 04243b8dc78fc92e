"""One dispatcher tick: plan new zones → materialize due groups → claim due → guard → render → send → record.

The clock is a parameter (``now``), so the demo and the tests fast-forward time without patching.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import Campaign, zone
from notifier.channels.base import Channel, EmailMessage, Message, PushMessage
from notifier.config import Settings
from notifier.events import Outcome, SendResult
from notifier.i18n import negotiate
from notifier.ledger import claims, queries
from notifier.ledger.db import transaction
from notifier.ledger.models import DeliveryState, SkipReason
from notifier.links import unsubscribe_headers
from notifier.planner import parse_send_key
from notifier.render import Content, Personal, Renderer, RenderError

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    """Counts of what one tick did (ids and counts only, never personal data)."""

    planned_groups: int = 0
    materialized: int = 0
    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    refused: dict[str, str] = field(default_factory=dict)  # campaign id → why nothing of it was sent
    recovered: dict[str, int] = field(default_factory=dict)  # "campaign:resend|skip" → rows found uncertain
    chunks: int = 0  # chunk tasks published (distributed tick)


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
                 settings: Settings, rng: random.Random | None = None) -> None:
        self.sessions = sessions
        self.channels = channels
        self.renderer = renderer
        self.settings = settings
        self.rng = rng or random.Random()
        self._content: dict[str, str] = {}  # campaign id → fingerprint of the copy being sent this tick
        self.owner = f"local:{uuid.uuid4().hex}"  # lease owner for rows this process sends itself

    def prepare(self, now: datetime) -> TickReport:
        """What every tick does first: recover rows whose worker died, plan new zones, check the approved copy,
        and materialize the groups that fell due."""
        report = TickReport()
        with transaction(self.sessions) as s:
            report.recovered = claims.recover_expired(s, now)
        with transaction(self.sessions) as s:
            for row in queries.active_campaigns(s):
                report.planned_groups += queries.plan_groups(s, row, row.scheduled_at)[1]
                refusal = self._content_refusal(row)
                if refusal:
                    report.refused[row.id] = refusal
        with transaction(self.sessions) as s:
            report.materialized = queries.materialize_due(s, now, exclude=report.refused)
        for campaign_id, why in report.refused.items():
            log.error("campaign %s: nothing sent: %s", campaign_id, why)
        for key, n in report.recovered.items():
            log.warning("%d rows of %s were in flight when their worker died: marked uncertain", n, key)
        return report

    def tick(self, now: datetime) -> TickReport:
        """Do everything due at ``now`` in this process; returns what was done."""
        report = self.prepare(now)
        while True:
            with transaction(self.sessions) as s:
                ids = claims.claim_due(s, now, self.settings.batch_size, self.settings.lease_seconds,
                                        exclude=report.refused, owner=self.owner)
            if not ids:
                break
            report.claimed += len(ids)
            report.outcomes.update(self._process(ids, now, self.owner))
        if report.claimed or report.materialized:
            log.info("tick at %s: %d rows materialized, %d claimed, outcomes %s",
                     now.isoformat(), report.materialized, report.claimed, dict(report.outcomes))
        return report

    def enqueue(self, now: datetime, publish: Callable[[str, list[int]], None], chunk_size: int) -> TickReport:
        """The distributed tick: hand due rows to workers as chunks of ids, one queue per channel.

        Rows become ``queued`` before their chunk is published; a chunk the broker loses is queued again once
        its lease runs out, so the ledger, not the broker, decides what is still owed.
        """
        report = self.prepare(now)
        for channel in self.channels:
            while True:
                with transaction(self.sessions) as s:
                    ids = claims.claim_due(s, now, chunk_size, self.settings.queue_lease_seconds,
                                            exclude=report.refused, into=DeliveryState.QUEUED, channel=channel)
                if not ids:
                    break
                publish(channel, ids)
                report.claimed += len(ids)
                report.chunks += 1
        return report

    def run_chunk(self, ids: Sequence[int], owner: str, now: datetime) -> Counter[str]:
        """A worker's part: lease the chunk's rows still queued, then guard, render, send and record them."""
        with transaction(self.sessions) as s:
            refused = [row.id for row in queries.active_campaigns(s) if self._content_refusal(row)]
            leased = claims.lease_chunk(s, ids, owner, now, self.settings.lease_seconds, exclude=refused)
        if not leased:
            return Counter()
        return self._process(leased, now, owner)

    def close(self) -> None:
        """Release the channels' connections."""
        for channel in self.channels.values():
            channel.close()

    def _content_refusal(self, row: Any) -> str | None:
        """Why a campaign's copy may not be sent now: it changed since it was scheduled (or cannot be read)."""
        campaign = queries.campaign_of(row)
        current = Content.of(campaign, self.settings.templates_dir, self.settings.locales_dir)
        self._content[row.id] = current.fingerprint
        if current.fingerprint == row.content_fingerprint:
            return None
        changed = "; ".join(queries.changed_files(row.content_manifest or {}, current.manifest))
        return (f"its copy changed since it was scheduled ({changed or 'no approved copy recorded'}); "
                f"review it (notifier preview) and approve it again: notifier campaign schedule {row.id}")

    def _process(self, ids: Sequence[int], now: datetime, owner: str) -> Counter[str]:
        with self.sessions() as s:
            rows = claims.load_claimed(s, ids, now)
            campaigns = {r.campaign_id: queries.campaign_of(queries.get_campaign(s, r.campaign_id)) for r in rows}
        changes: list[dict[str, Any]] = []
        by_channel: dict[str, list[Message]] = {}
        locales: dict[int, str] = {}
        fingerprints = {r.id: self._content.get(r.campaign_id) for r in rows}
        attempts = {r.id: r.attempts for r in rows}
        for row in rows:
            campaign = campaigns[row.campaign_id]
            deadlines, reason = live_deadlines(campaign, row, now)
            if reason is None and not (row.email if row.channel == "email" else row.tokens):
                reason = SkipReason.NO_ADDRESS
            if reason is not None:
                changes.append(_skipped(row.id, reason, now))
                continue
            locales[row.id] = negotiate(row.locale, campaign.locales, campaign.default_locale)
            try:
                message = self._message(campaign, row, deadlines, locales[row.id], now)
            except RenderError:
                self._release(ids, now, owner)  # a broken template holds the rows back; it never fails them
                raise
            by_channel.setdefault(row.channel, []).append(message)
        dead: list[tuple[int, str]] = []  # (recipient seq, token) the provider says will never work
        fallbacks: list[claims.ClaimedRow] = []
        by_id = {r.id: r for r in rows}
        for channel, messages in by_channel.items():
            for result in self.channels[channel].send(messages):
                row = by_id[result.delivery_id]
                outcome = self._outcome(result, attempts[row.id], now, campaigns[row.campaign_id].on_uncertain)
                changes.append(outcome | {"locale": locales[row.id], "content_fingerprint": fingerprints[row.id]})
                dead.extend((row.recipient_seq, t) for t in result.dead_tokens)
                if (result.outcome == Outcome.INVALID_RECIPIENT and channel == "push" and row.email
                        and campaigns[row.campaign_id].fallback == "email"):
                    fallbacks.append(row)
        return self._record(changes, by_id, dead, fallbacks, now, owner)

    def _record(self, changes: list[dict[str, Any]], by_id: Mapping[int, claims.ClaimedRow],
                dead: list[tuple[int, str]], fallbacks: list[claims.ClaimedRow], now: datetime,
                owner: str) -> Counter[str]:
        """Write every outcome at once, on rows this owner still holds; deactivate dead tokens; add fallbacks."""
        campaigns = {r.campaign_id for r in by_id.values()}
        with transaction(self.sessions) as s:
            cancelled = queries.cancelled_among(s, campaigns)
            if cancelled:  # cancelled while these were in flight: a retry is no longer owed
                changes = [c | {"state": DeliveryState.SKIPPED, "skip_reason": SkipReason.CANCELLED}
                           if c["state"] == DeliveryState.PENDING and by_id[c["id"]].campaign_id in cancelled else c
                           for c in changes]
            landed = claims.record(s, changes, [_event(c, now) for c in changes if c.get("last_error")], owner)
            if dead:
                queries.deactivate_tokens(s, dead, now, "provider: token unregistered or invalid")
            if fallbacks:
                claims.add_fallback_emails(s, fallbacks, now)
        if dead:
            log.info("deactivated %d push tokens", len(dead))
        if landed < len(changes):
            log.warning("%d outcomes arrived after their lease was lost (rows recovered as uncertain)",
                        len(changes) - landed)
        return Counter(c["state"] if c["state"] != DeliveryState.PENDING else "retry" for c in changes)

    def _release(self, ids: Sequence[int], now: datetime, owner: str) -> None:
        retry_at = now + timedelta(seconds=self.settings.retry_base_seconds)
        with transaction(self.sessions) as s:
            claims.record(s, [{"id": i, "state": DeliveryState.PENDING, "lease_until": None, "lease_owner": None,
                                "next_attempt_at": retry_at, "last_error": "template failed to render"}
                               for i in ids], owner=owner)

    def _message(self, campaign: Campaign, row: claims.ClaimedRow, deadlines: tuple[str, ...], locale: str,
                 now: datetime) -> Message:
        tz = zone(row.timezone)
        items = tuple(i for i in parse_send_key(row.send_key) if i.deadline in deadlines)
        personal = Personal.of(row.name, row.attributes, locale)
        variant = self.renderer.variant(campaign, locale, items, tz, now, row.country, personal)
        ids = {"delivery_id": str(row.id), "campaign_id": campaign.id, "send_key": row.send_key}
        if row.channel == "email":
            assert row.email is not None
            headers = unsubscribe_headers(self.settings.public_url, self.settings.secret_key, row.id)
            group = self.settings.sendgrid_asm_group if campaign.honours_opt_outs else None
            return EmailMessage(row.id, row.email, row.name, variant.subject, variant.text, variant.html, personal,
                                variant=variant.key, categories=(campaign.id, f"{campaign.id}:{row.wave}"),
                                custom_args=ids, headers=headers, unsubscribe_group=group)
        push = self.renderer.push(variant, personal)
        expires = min(campaign.deadline(d).instant_in(tz) for d in deadlines)
        return PushMessage(row.id, row.tokens, push.title, push.body, expires_at=expires,
                           collapse_key=f"{campaign.id}:{deadlines[0]}", data=ids,
                           analytics_label=_label(f"{campaign.id}-{row.wave}"), ttl=expires - now)

    def _outcome(self, result: SendResult, attempts: int, now: datetime, on_uncertain: str = "resend"
                 ) -> dict[str, Any]:
        base: dict[str, Any] = {"id": result.delivery_id, "updated_at": now, "lease_until": None,
                                "lease_owner": None}
        if result.uncertain:  # the provider may have it: resend (maybe twice) or skip, as the campaign says
            base["uncertain"] = True
            if result.outcome == Outcome.RETRY and on_uncertain == "skip":
                return base | {"state": DeliveryState.SKIPPED, "skip_reason": SkipReason.UNCERTAIN,
                               "last_error": result.error}
        if result.outcome == Outcome.SENT:
            return base | {"state": DeliveryState.SENT, "sent_at": now,
                           "provider_message_id": result.provider_message_id, "last_error": None}
        if result.outcome == Outcome.RETRY and attempts < self.settings.max_attempts:
            return base | {"state": DeliveryState.PENDING, "last_error": result.error,
                           "next_attempt_at": now + self._backoff(attempts, result.retry_after)}
        error = result.error
        if result.outcome == Outcome.RETRY:
            error = f"gave up after {attempts} attempts: {error}"
        return base | {"state": DeliveryState.FAILED, "last_error": error}

    def _backoff(self, attempts: int, retry_after: float | None) -> timedelta:
        """Exponential backoff with full jitter, never sooner than the provider asked."""
        base = self.settings.retry_base_seconds * 2 ** (attempts - 1)
        delay = max(retry_after or 0.0, self.rng.uniform(base / 2, base))
        return timedelta(seconds=delay)


def _label(text: str) -> str:
    """An FCM analytics label: at most 50 of [A-Za-z0-9-_.~%]."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.~%") else "_" for c in text)[:50]


def _skipped(delivery_id: int, reason: str, now: datetime) -> dict[str, Any]:
    return {"id": delivery_id, "state": DeliveryState.SKIPPED, "skip_reason": reason, "updated_at": now,
            "lease_until": None, "lease_owner": None}


def _event(change: dict[str, Any], now: datetime) -> dict[str, Any]:
    state = change["state"]
    return {"delivery_id": change["id"], "type": "retry" if state == DeliveryState.PENDING else str(state),
            "at": now, "detail": {"error": change["last_error"]}}
