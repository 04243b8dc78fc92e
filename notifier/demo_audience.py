"""The demo's recipients: after each message they get, some open it, some click, some do what it asks.

So that ``notifier demo`` and ``notifier demo --dashboard`` end with real results: opens and clicks per locale, and
a funnel that climbs after each wave. Each reaction goes in through the same doors as in production:

- an email's delivery, opens and clicks as provider events (``feedback.apply_events``, provider ``demo``); with
  the providers transport the SendGrid emulator posts them to the webhook instead (``email_events=False``);
- a push's open as the app reports it (``feedback.record_push_opens``, what ``POST /opens`` does);
- the deadline's ``skip_if`` action some hours later, returned to the simulation, which records it when its time
  comes (``feedback.record_action``), so later waves are skipped for them.

Seeded: the same demo gives the same results.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from notifier.events import EventType, ProviderEvent
from notifier.feedback import apply_events, record_push_opens
from notifier.i18n import share_for
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import DeliveryRow, Recipient, SendGroup
from notifier.ledger.states import DeliveryState
from notifier.planner import parse_send_key


@dataclass(frozen=True)
class Behaviour:
    """Shares by locale (``*`` for any other): of emails, opened by a reader; of those, clicked; of pushes,
    opened; of everyone who got a message, acting on it within ``within``."""

    opens: Mapping[str, float]
    clicks: Mapping[str, float]
    push_opens: Mapping[str, float]
    acts: Mapping[str, float]
    machine_opens: float = 0.0  # of emails: opened by the mailbox itself (Apple Mail Privacy Protection)
    within: timedelta = timedelta(hours=36)


# Indonesian and Brazilian audiences read and act more than the English one: enough to tell the rows apart.
DEMO_BEHAVIOUR = Behaviour(
    opens={"id": 0.46, "pt-BR": 0.40, "es-MX": 0.36, "*": 0.30},
    clicks={"id": 0.30, "pt-BR": 0.26, "es-MX": 0.24, "*": 0.20},
    push_opens={"id": 0.22, "pt-BR": 0.18, "es-MX": 0.16, "*": 0.12},
    acts={"id": 0.10, "pt-BR": 0.08, "es-MX": 0.07, "*": 0.05},
    machine_opens=0.15,
)


@dataclass
class SimulatedAudience:
    sessions: Any
    behaviour: Behaviour = DEMO_BEHAVIOUR
    email_events: bool = True  # False: the SendGrid emulator posts the emails' events itself
    seed: int = 2024
    _seen: set[int] = field(default_factory=set)
    _since: datetime | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def react(self, now: datetime) -> list[tuple[datetime, str, str]]:
        """React to every message sent since the last call; returns the actions to come (at, recipient, action)."""
        with self.sessions() as s:
            q = (select(DeliveryRow.id, DeliveryRow.campaign_id, DeliveryRow.channel, DeliveryRow.locale,
                        DeliveryRow.sent_at, SendGroup.send_key, Recipient.id.label("rid"))
                 .join(SendGroup, SendGroup.id == DeliveryRow.group_id)
                 .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
                 .where(DeliveryRow.state == DeliveryState.SENT).order_by(DeliveryRow.id))
            if self._since is not None:
                q = q.where(DeliveryRow.sent_at >= self._since)
            sent = [r for r in s.execute(q) if r.id not in self._seen]
            campaigns = {c: queries.campaign_of(queries.get_campaign(s, c)) for c in {r.campaign_id for r in sent}}
        events: list[ProviderEvent] = []
        opened: list[tuple[int, datetime]] = []
        actions: list[tuple[datetime, str, str]] = []
        b, rng = self.behaviour, self._rng
        for r in sent:
            self._seen.add(r.id)
            self._since = max(self._since or r.sent_at, r.sent_at)
            campaign = campaigns[r.campaign_id]
            deadlines = [campaign.deadline(i.deadline) for i in parse_send_key(r.send_key)]
            if r.channel == "email" and self.email_events:
                events += self._email(r, [d.link for d in deadlines if d.link] or list(campaign.links.values()))
            elif r.channel == "push" and rng.random() < share_for(b.push_opens, r.locale):
                opened.append((r.id, r.sent_at + timedelta(minutes=rng.randint(1, 120))))
            goals = [d.skip_if for d in deadlines if d.skip_if]
            if goals and rng.random() < share_for(b.acts, r.locale):
                later = timedelta(seconds=rng.randint(600, int(b.within.total_seconds())))
                actions.append((r.sent_at + later, r.rid, rng.choice(goals)))
        if events or opened:
            with transaction(self.sessions) as s:
                apply_events(s, events, now)
                record_push_opens(s, [(i, delivery_id, at) for i, (delivery_id, at) in enumerate(opened)])
        return actions

    def _email(self, r: Any, links: list[str]) -> list[ProviderEvent]:
        b, rng = self.behaviour, self._rng
        at = r.sent_at + timedelta(seconds=rng.randint(5, 90))

        def event(kind: EventType, n: int, **extra: Any) -> ProviderEvent:
            return ProviderEvent("demo", f"{r.id}-{kind.value}-{n}", kind, at + timedelta(minutes=n * 37),
                                 delivery_id=r.id, campaign_id=r.campaign_id, **extra)

        out = [event(EventType.DELIVERED, 0)]
        if rng.random() < b.machine_opens:
            out.append(event(EventType.OPENED, 1, machine=True))
        if rng.random() < share_for(b.opens, r.locale):
            out.append(event(EventType.OPENED, 2))
            if rng.random() < share_for(b.opens, r.locale):  # some read it twice: still one unique open
                out.append(event(EventType.OPENED, 3))
            if links and rng.random() < share_for(b.clicks, r.locale):
                out.append(event(EventType.CLICKED, 4, url=rng.choice(links)))
        return out
