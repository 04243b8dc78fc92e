"""The timeline of an audience file: every planned send, sorted by time, in flat memory.

Plans are computed once per time zone; sorting spools to a temporary SQLite file, so a million
recipients never sit in a Python list.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from notifier.campaign import Campaign, zone
from notifier.campaign._values import parse_spread
from notifier.eligibility import Facts, channels_of, deadlines_for, facts_of, held_out, in_audience
from notifier.planner import Note, PlannedSend, RecipientPlan, ZonePlan, plan_recipient, plan_zone


@dataclass(frozen=True)
class TimelineEntry:
    recipient: str
    channel: str
    deadlines: tuple[str, ...]
    wave: str
    send_key: str
    send_at: datetime  # in the recipient's own zone
    spread: timedelta = timedelta(0)  # the message goes out within this long after send_at (delivery.spread)

    def as_json(self) -> str:
        doc = {"recipient": self.recipient, "channel": self.channel, "deadlines": list(self.deadlines),
               "wave": self.wave, "send_key": self.send_key, "send_at": self.send_at.isoformat()}
        if self.spread:
            doc["spread"] = iso_duration(self.spread)
        return json.dumps(doc, ensure_ascii=False)


def iso_duration(span: timedelta) -> str:
    """A spread as the campaign file writes it: PT20M, PT9M59S, PT1H."""
    seconds = int(span.total_seconds())
    parts = [(seconds // 3600, "H"), (seconds % 3600 // 60, "M"), (seconds % 60, "S")]
    return "PT" + ("".join(f"{n}{unit}" for n, unit in parts if n) or "0S")


class ZonePlans:
    """Zone plans of one campaign, computed once per zone."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self._plans: dict[str, ZonePlan] = {}

    def __call__(self, tz_name: str) -> ZonePlan:
        plan = self._plans.get(tz_name)
        if plan is None:
            plan = self._plans[tz_name] = plan_zone(self.campaign, zone(tz_name))
        return plan


def recipient_plan(plans: ZonePlans, tz_name: str, channels: Iterable[str], joined_at: datetime | None,
                   now: datetime | None) -> RecipientPlan:
    """One recipient's plan: waves before they joined (or before ``now``) are explained, not sent."""
    candidates = [(t, why) for t, why in ((joined_at, "the recipient joined"), (now, "now")) if t is not None]
    not_before, reason = max(candidates, key=lambda c: c[0]) if candidates else (None, "")
    return plan_recipient(plans.campaign, plans(tz_name), tuple(channels), not_before, reason)


def sorted_entries(entries: Iterable[TimelineEntry]) -> Iterator[TimelineEntry]:
    """Yield ``entries`` sorted by instant, then recipient and channel, spooling through SQLite on disk."""
    with tempfile.TemporaryDirectory(prefix="notifier-plan-") as tmp:
        db = sqlite3.connect(Path(tmp) / "spool.db")
        try:
            db.execute("CREATE TABLE s (utc TEXT, recipient TEXT, channel TEXT, doc TEXT)")
            batch: list[tuple[str, str, str, str]] = []
            for e in entries:
                batch.append((e.send_at.astimezone(zone("UTC")).isoformat(), e.recipient, e.channel, e.as_json()))
                if len(batch) >= 10_000:
                    db.executemany("INSERT INTO s VALUES (?, ?, ?, ?)", batch)
                    batch.clear()
            db.executemany("INSERT INTO s VALUES (?, ?, ?, ?)", batch)
            for (doc,) in db.execute("SELECT doc FROM s ORDER BY utc, recipient, channel"):
                d = json.loads(doc)
                yield TimelineEntry(d["recipient"], d["channel"], tuple(d["deadlines"]), d["wave"], d["send_key"],
                                    datetime.fromisoformat(d["send_at"]), parse_spread(d.get("spread") or "PT0M"))
        finally:
            db.close()



def _entry(recipient_id: str, channel: str, s: PlannedSend) -> TimelineEntry:
    return TimelineEntry(recipient_id, channel, s.deadlines, s.wave, s.send_key, s.send_at, s.spread)


def explain(notes: Iterable[Note]) -> list[str]:
    """Notes as sentences, grouped: what was dropped or missed first, then moves and merges."""
    order = {"channel_missing": 0, "deadline_passed": 1, "joined_after": 2, "dropped": 3, "moved": 4, "merged": 5}
    return [n.message for n in sorted(notes, key=lambda n: order[n.kind.value])]


class Member(Protocol):
    """What the plan needs of a recipient, from an audience file or from the ledger."""

    @property
    def id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def country(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def push_tokens(self) -> tuple[str, ...]: ...  # active tokens only
    @property
    def joined_at(self) -> datetime | None: ...


@dataclass
class PlanView:
    """The planned sends of an audience (or of one ``recipient`` in it), with why any wave is missing."""

    campaign: Campaign
    recipient: str | None = None
    now: datetime | None = None
    found: bool = False
    notes: list[str] = field(default_factory=list)

    def entries(self, members: Iterable[Member]) -> Iterator[TimelineEntry]:
        """Unsorted entries of every eligible member (see :mod:`notifier.eligibility`)."""
        plans = ZonePlans(self.campaign)
        for rec in members:
            if self.recipient is not None and rec.id != self.recipient:
                continue
            self.found = True
            facts = facts_of(rec)
            left_out = self._left_out(rec, facts)
            if left_out is not None:
                if self.recipient is not None:
                    self.notes = [left_out]
                continue
            channels = channels_of(self.campaign.channels, rec.email, rec.push_tokens)
            plan = recipient_plan(plans, rec.timezone, channels, rec.joined_at, self.now)
            if self.recipient is not None:
                self.notes = explain(plan.notes)
            for channel, send in plan.sends:
                concerned = deadlines_for(self.campaign, send.deadlines, facts)
                if concerned:
                    yield dataclasses.replace(_entry(rec.id, channel, send), deadlines=concerned)
                elif self.recipient is not None:
                    self.notes.append(f"{send.send_key} on {channel} is not sent: the recipient does not meet the "
                                      f"where of {', '.join(send.deadlines)}")

    def _left_out(self, rec: Member, facts: Facts) -> str | None:
        """Why the campaign sends this recipient nothing at all, in a sentence; None when it sends something."""
        c = self.campaign
        if c.countries and rec.country not in c.countries:
            return (f"the recipient's country ({rec.country or 'none'}) is not among the campaign's "
                    f"audience.countries ({', '.join(c.countries)}); nothing is sent")
        if not in_audience(c, facts):
            return f"the recipient does not meet the campaign's audience.where ({c.where}); nothing is sent"
        if held_out(c, rec.id):
            return (f"the recipient is in the campaign's holdout ({c.holdout / 100:g}% of the audience, who get "
                    "nothing so that the results can compare); nothing is sent")
        return None
