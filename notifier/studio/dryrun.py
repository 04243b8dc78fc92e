"""Try a campaign before it is real: the dry run counts what scheduling would plan for the audience in the ledger,
and the fast-forward plays it on the demo's simulated clock in a ledger of its own.

The dry run asks the ledger one GROUP BY over the recipients (zone, locale, country, has an address, has an active
push token, joined later, did a ``skip_if`` action) and the planner once per zone, so a million recipients cost a
scan, never a Python object each. It applies the rules scheduling and materialization apply, by calling them:
:func:`notifier.eligibility.reachable` for who may get a channel, ``ZonePlan.channels_of`` for which channels a send
goes on, sends at or after ``now`` as ``queries.plan_groups`` plans them, a recipient who joined after a send's time
left out as ``queries._materialize`` leaves them out, and the locale negotiated as the dispatcher negotiates it. It
only reads. What it cannot see ahead (suppressions, a ``skip_if`` attribute, tokens that die) the live run shows.
"""

from __future__ import annotations

import email.policy
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, literal, literal_column, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import Campaign, load_campaign, zone
from notifier.channels.outbox import campaign_folder
from notifier.config import Settings
from notifier.demo import Simulation
from notifier.eligibility import eligible_sql, has_channel_sql, held_out_sql, push_holders_sql, where_sql
from notifier.i18n import negotiate
from notifier.ledger import queries
from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
from notifier.ledger.models import DeliveryRow, DeliveryState, PushToken, RecipientAction, UTCDateTime
from notifier.ledger.models import Recipient as R
from notifier.planner import NoteKind, ZonePlan, plan_zone
from notifier.render import Content
from notifier.studio import store
from notifier.wiring import build_dispatcher
from notifier.words import Words

__all__ = ["SKIPPED", "DryRun", "DryRunRow", "FastForward", "PreviewMessage", "ZoneSpan", "copy_audience", "dry_run",
           "fast_forward"]

log = logging.getLogger(__name__)


def _(message: str) -> str:
    """Marks a message for the dashboard's catalog; it is translated where it is shown."""
    return message


# Why planned messages will not be sent, by code (the DryRun's ``skipped`` keys), in words.
SKIPPED: dict[str, str] = {
    "country": _("the recipient's country is not one of the campaign's"),
    "condition": _("the recipient does not meet the campaign's condition (audience.where)"),
    "holdout": _("the recipient is in the campaign's holdout (audience.holdout)"),
    "deadline_condition": _("the recipient does not meet the condition of the deadlines it is about (where)"),
    "no_email": _("no email address"),
    "no_push": _("no active push token"),
    "deadline_passed": _("its deadline has passed"),
    "before_now": _("its time has passed (scheduling plans from now on)"),
    "at_deadline": _("it would fall at or after its deadline"),
    "merged": _("merged into another message of the same day (max_per_day)"),
    "joined_later": _("the recipient joins after it is due"),
    "action_done": _("the recipient already did what it asks (skip_if)"),
    "unknown_zone": _("the recipient's time zone is not a known one"),
}


@dataclass(frozen=True)
class DryRunRow:
    """One wave (a send, merged or not) in one locale on one channel: its messages, one per recipient."""

    send_key: str
    words: str  # the send as people say it ("7 days before Price change"), in English
    locale: str
    channel: str
    messages: int
    recipients: int


@dataclass(frozen=True)
class ZoneSpan:
    """When a zone's recipients get their first and last message (aware, in the zone)."""

    zone: str
    recipients: int
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True)
class DryRun:
    """What scheduling the campaign now would send, and what it would not, and why."""

    recipients: int  # who get at least one message
    messages: int
    merged: int  # messages that carry more than one wave
    rows: tuple[DryRunRow, ...]
    skipped: Mapping[str, int]  # reason (SKIPPED) -> messages not planned
    zones: tuple[ZoneSpan, ...]
    seconds: float
    matching: int = 0  # recipients in the audience: its countries and its where (the holdout included)
    held_out: int = 0  # of them, in the holdout (audience.holdout): they get nothing


@dataclass(frozen=True)
class _Group:
    """Recipients alike in everything the plan asks about, and how many."""

    zone: str
    locale: str | None
    country: str | None
    email: bool
    push: bool
    joined: datetime | None  # None: joined by now
    done: frozenset[str]  # skip_if actions they did
    count: int
    meets: bool = True  # the campaign's audience.where
    held: bool = False  # in its holdout
    concerned: frozenset[str] = frozenset()  # the deadlines with a where that they meet


# --- the dry run ------------------------------------------------------------------------------------------------


def dry_run(session: Session, campaign: Campaign, now: datetime) -> DryRun:
    """The planned totals for the audience in the ledger, counted in SQL per kind of recipient; reads only."""
    started = time.perf_counter()
    tally = _Tally(campaign, now)
    plans: dict[str, ZonePlan | None] = {}
    for group in _groups(session, campaign, now):
        if group.zone not in plans:
            plans[group.zone] = _plan(campaign, group.zone)
        tally.add(group, plans[group.zone])
    return tally.result(time.perf_counter() - started)


def _plan(campaign: Campaign, name: str) -> ZonePlan | None:
    try:
        return plan_zone(campaign, zone(name))
    except ValueError:
        return None


def _groups(session: Session, campaign: Campaign, now: datetime) -> Iterator[_Group]:
    """One row per kind of recipient: zone, locale, country, channels present, joined later, skip_if done, and
    what the conditions and the holdout say of them."""
    holders = push_holders_sql()
    email = case((has_channel_sql("email"), 1), else_=0).label("has_email")
    push = case((holders.c.seq.is_not(None), 1), else_=0).label("has_push")
    later = type_coerce(case((R.joined_at > literal(now, UTCDateTime()), R.joined_at), else_=None),
                        UTCDateTime()).label("joined")
    actions = sorted({d.skip_if for d in campaign.deadlines if d.skip_if})
    done = [exists().where(and_(RecipientAction.recipient_seq == R.seq, RecipientAction.action == a))
            for a in actions]
    conditional = [d for d in campaign.deadlines if d.where is not None]
    flags = [*done, where_sql(campaign.where), held_out_sql(campaign), *(where_sql(d.where) for d in conditional)]
    flag_cols = [case((f, 1), else_=0).label(f"flag_{i}") for i, f in enumerate(flags)]
    keys = [R.timezone, R.locale, R.country, email, push, later, *flag_cols]
    query = (select(*keys, func.count()).select_from(R).outerjoin(holders, holders.c.seq == R.seq)
             .group_by(R.timezone, R.locale, R.country, literal_column("has_email"), literal_column("has_push"),
                       literal_column("joined"), *(literal_column(f"flag_{i}") for i in range(len(flags)))))
    for tz, locale, country, has_email, has_push, joined, *rest in session.execute(query):
        bits, count = [bool(b) for b in rest[:-1]], rest[-1]
        did, (meets, held), met = bits[:len(actions)], bits[len(actions):len(actions) + 2], bits[len(actions) + 2:]
        yield _Group(tz, locale, country, bool(has_email), bool(has_push), joined,
                     frozenset(a for a, flag in zip(actions, did, strict=True) if flag), count, meets, held,
                     frozenset(d.id for d, flag in zip(conditional, met, strict=True) if flag))


class _Tally:
    """The counts, kind of recipient by kind of recipient, by the rules of scheduling and materialization."""

    def __init__(self, campaign: Campaign, now: datetime) -> None:
        self.campaign, self.now = campaign, now
        self.messages: Counter[tuple[str, str, str]] = Counter()  # (send key, locale, channel)
        self.skipped: Counter[str] = Counter()
        self.merged = 0
        self.recipients = 0
        self.matching = self.held_out = 0
        self.zone_recipients: Counter[str] = Counter()
        self.spans: dict[str, tuple[datetime, datetime]] = {}
        self.first_at: dict[str, datetime] = {}  # send key -> its earliest time in any zone (UTC), for the order

    def add(self, g: _Group, plan: ZonePlan | None) -> None:
        c = self.campaign
        present = tuple(ch for ch in c.channels if (g.email if ch == "email" else g.push))
        if g.meets and not (c.countries and g.country not in c.countries):
            self.matching += g.count
            self.held_out += g.count if g.held else 0
        if plan is None:
            self.skipped["unknown_zone"] += g.count
            return
        outside = next((why for why, out in (("country", c.countries and g.country not in c.countries),
                                             ("condition", not g.meets), ("holdout", g.held)) if out), None)
        if present and outside:  # present channels, but outside the audience or held out
            self._not_planned(g, plan, present, outside)
            return
        reach = present if not outside else ()
        self._dropped(g, plan, present)
        locale = negotiate(g.locale, c.locales, c.default_locale)
        got = False
        for send in plan.sends:
            reason = self._passed(g, plan, send)  # no row is made (scheduling, materialization)
            concerned = [d for d in send.deadlines if c.deadline(d).where is None or d in g.concerned]
            if reason is None and not concerned:
                reason = "deadline_condition"  # materialization makes no row for them
            done = bool(g.done) and all(c.deadline(d).skip_if in g.done for d in concerned)  # row skipped
            for ch in plan.channels_of(send.send_key):
                if reason is not None:
                    self.skipped[reason] += g.count
                elif ch not in reach:
                    self.skipped[f"no_{ch}"] += g.count
                elif done:
                    self.skipped["action_done"] += g.count
                else:
                    got = True
                    self._count(g, plan, send, locale, ch)
        if got:
            self.recipients += g.count
            self.zone_recipients[g.zone] += g.count

    def _passed(self, g: _Group, plan: ZonePlan, send: Any) -> str | None:
        """Why scheduling now, or materializing, leaves this send out for these recipients (None: it does not)."""
        if send.send_at < self.now:
            over = all(plan.deadline_instants[d] <= self.now for d in send.deadlines)
            return "deadline_passed" if over else "before_now"
        if g.joined is not None and g.joined > send.send_at:
            return "joined_later"
        return None

    def _count(self, g: _Group, plan: ZonePlan, send: Any, locale: str, channel: str) -> None:
        self.messages[(send.send_key, locale, channel)] += g.count
        self.first_at[send.send_key] = min(send.send_at_utc, self.first_at.get(send.send_key, send.send_at_utc))
        if len(send.items) > 1:
            self.merged += g.count
            self.skipped["merged"] += g.count * (len(send.items) - 1)
        first, last = self.spans.get(g.zone, (send.send_at, send.send_at))
        self.spans[g.zone] = (min(first, send.send_at), max(last, send.send_at))

    def _dropped(self, g: _Group, plan: ZonePlan, present: tuple[str, ...]) -> None:
        """Waves the planner drops (at or after their deadline), once per channel that would have carried them."""
        for note in plan.notes:
            if note.kind == NoteKind.DROPPED and note.deadline is not None:
                on = self.campaign.deadline(note.deadline).channels
                self.skipped["at_deadline"] += g.count * sum(1 for ch in present if ch in on)

    def _not_planned(self, g: _Group, plan: ZonePlan, present: tuple[str, ...], reason: str) -> None:
        self.skipped[reason] += g.count * sum(len(plan.channels_of(s.send_key, present)) for s in plan.sends
                                              if s.send_at >= self.now)

    def result(self, seconds: float) -> DryRun:
        words = Words()
        rows = tuple(DryRunRow(key, words.send(self.campaign, key), locale, ch, n, n)
                     for (key, locale, ch), n in sorted(self.messages.items(), key=self._order))
        zones = tuple(ZoneSpan(tz, self.zone_recipients[tz], *self.spans[tz])
                      for tz in sorted(self.spans, key=lambda t: (self.spans[t][0], t)))
        return DryRun(self.recipients, sum(self.messages.values()), self.merged, rows,
                      {k: v for k, v in sorted(self.skipped.items()) if v}, zones, seconds, self.matching,
                      self.held_out)

    def _order(self, item: tuple[tuple[str, str, str], int]) -> tuple[datetime, str, int, int]:
        """Rows by when their wave first goes out anywhere, then the campaign's order of locales and channels."""
        (key, locale, ch), _n = item
        c = self.campaign
        return (self.first_at[key], key, c.locales.index(locale) if locale in c.locales else len(c.locales),
                c.channels.index(ch) if ch in c.channels else len(c.channels))


# --- the fast-forward -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewMessage:
    """One message of the preview outbox."""

    channel: str
    locale: str
    send_key: str
    subject: str  # an email's subject, a push's title
    path: Path


@dataclass(frozen=True)
class FastForward:
    """A campaign played to its end in a ledger of its own: the count per state and the messages it wrote."""

    directory: Path
    counts: Mapping[str, int]
    messages: tuple[PreviewMessage, ...]


def fast_forward(settings: Settings, live: sessionmaker[Session], campaign_id: str, directory: Path, *,
                 start: datetime, limit: int = 2000) -> FastForward:
    """The demo's simulated clock for any campaign: ``limit`` recipients of the live ledger copied into a new SQLite
    ledger in ``directory``, the campaign scheduled there at ``start`` and played to the end into directory/outbox.
    The live ledger is only read."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _clear(directory)
    with live() as s:
        bundle = store.stored_bundle(s, campaign_id)
    with store.content_of(settings, campaign_id, bundle) as (path, templates_dir, locales_dir):
        campaign = load_campaign(path)
        local = settings.with_(database_url=f"sqlite:///{directory / 'ledger.db'}", outbox_dir=directory / "outbox",
                               transport="outbox", templates_dir=templates_dir, locales_dir=locales_dir,
                               studio_dir=directory / "studio")  # no studio copy here: these folders are the copy
        engine = make_engine(local.database_url)
        try:
            upgrade(engine)
            sessions = session_factory(engine)
            copied = copy_audience(live, sessions, campaign, limit)
            content = Content.of(campaign, templates_dir, locales_dir)
            with transaction(sessions) as s:
                queries.schedule(s, campaign, path.read_text(encoding="utf-8-sig"), start, content, plan_zone)
            dispatcher = build_dispatcher(local, sessions, simulated_clock=True)
            try:
                _play(Simulation(sessions, dispatcher, []), start, campaign)
            finally:
                dispatcher.close()
            counts, messages = _outbox(sessions, directory / "outbox")
        finally:
            engine.dispose()
    log.info("fast-forward of %s: %d recipients, %s", campaign_id, copied, dict(counts))
    return FastForward(directory, counts, messages)


def _clear(directory: Path) -> None:
    """What an earlier fast-forward in the same folder left (its ledger and outbox), so this one starts fresh."""
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / "outbox", ignore_errors=True)


def copy_audience(live: sessionmaker[Session], local: sessionmaker[Session], campaign: Campaign, limit: int) -> int:
    """The first ``limit`` recipients eligible for the campaign, with their active tokens and actions, copied."""
    fields = ("seq", "id", "email", "name", "locale", "timezone", "timezone_guessed", "country", "attributes",
              "joined_at", "updated_at")
    with live() as s:
        people = [dict(row._mapping) for row in s.execute(
            select(*(getattr(R, f) for f in fields)).where(eligible_sql(campaign, campaign.channels))
            .order_by(R.seq).limit(limit))]
        seqs = [p["seq"] for p in people]
        tokens = s.execute(select(PushToken.recipient_seq, PushToken.token)
                           .where(PushToken.recipient_seq.in_(seqs), PushToken.active.is_(True))).all()
        actions = s.execute(select(RecipientAction.recipient_seq, RecipientAction.action, RecipientAction.at)
                            .where(RecipientAction.recipient_seq.in_(seqs))).all()
        s.rollback()
    with transaction(local) as s:
        if people:
            s.execute(insert(R), people)
        if tokens:
            s.execute(insert(PushToken), [{"recipient_seq": q, "token": t, "active": True}
                                                      for q, t in tokens])
        if actions:
            s.execute(insert(RecipientAction), [{"recipient_seq": q, "action": a, "at": at}
                                                           for q, a, at in actions])
    return len(people)


def _play(sim: Simulation, start: datetime, campaign: Campaign) -> None:
    """Tick from ``start`` until nothing is due any more (every deadline is over in every zone by ``end``)."""
    end = max(d.instant_in(zone("Etc/GMT+12")) for d in campaign.deadlines) + timedelta(days=1)
    now: datetime | None = start
    while now is not None and now <= end:
        now = sim.step(now)


def _outbox(sessions: sessionmaker[Session], outbox: Path) -> tuple[dict[str, int], tuple[PreviewMessage, ...]]:
    """The count per state, and each message sent with the file the outbox wrote for it."""
    with sessions() as s:
        counts = dict(s.execute(select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)).all())
        sent = s.execute(select(DeliveryRow.id, DeliveryRow.campaign_id, DeliveryRow.channel, DeliveryRow.locale,
                                DeliveryRow.send_key).where(DeliveryRow.state == DeliveryState.SENT)
                         .order_by(DeliveryRow.sent_at, DeliveryRow.id)).all()
    messages = []
    for delivery_id, campaign_id, channel, locale, key in sent:
        folder = outbox / channel / campaign_folder({"campaign_id": campaign_id})
        path = folder / (f"{delivery_id}.eml" if channel == "email" else f"{delivery_id}.json")
        messages.append(PreviewMessage(channel, locale or "", key, _subject(path, channel), path))
    return counts, tuple(messages)


def _subject(path: Path, channel: str) -> str:
    """An email's subject or a push's title, as the outbox wrote it."""
    try:
        if channel == "email":
            with path.open("rb") as f:
                return str(BytesHeaderParser(policy=email.policy.default).parse(f).get("Subject", ""))
        return str(json.loads(path.read_text(encoding="utf-8"))["notification"]["title"])
    except (OSError, ValueError, KeyError):
        return ""
