"""Did the campaign work? What became of its messages, and who acted before each deadline, counted as it happens.

Two kinds of counts, both kept in the transaction that stores what they count, so reading them costs the number
of keys, never the number of events (migration 0015):

- **Per message** (``result_tallies``: send group × locale × channel × metric): delivered, bounced (refused by the
  receiving server or dropped by the provider), opened (a reader) and opened_machine (an open the provider marks
  as a machine's, Apple Mail Privacy Protection: counted apart), clicked and ``click:<link>`` (transfer, refund,
  help, unsubscribe, other), unsubscribed, complained, and converted / converted_late (below). Each is counted
  once per message: ``result_firsts`` holds one key per (message, metric) already counted, written with
  ``ON CONFLICT DO NOTHING … RETURNING``, and a tally grows only by the keys that statement wrote. A replayed
  event, a second open, or the same event in two batches at once (the second waits on the first one's key, then
  finds it taken) adds nothing; a batch that rolls back takes its keys and its counts with it.
- **Per deadline** (``action_days``): how many of the campaign's audience (its countries, as the planner takes
  them) first did the deadline's ``skip_if`` action on each UTC day, and how many of those acted after the
  deadline had passed in their zone. ``recipient_actions`` keeps the first time a person does an action, so an
  action is counted once, when it is first recorded.

**Conversions.** A recorded action is attributed to the last message of the campaign about a deadline whose
``skip_if`` it is, sent to that person before the action and at most :data:`ATTRIBUTION_WINDOW` before it, and
counted on that message's send, locale and channel as ``converted``, or ``converted_late`` when the action came
after the message's deadlines had passed. An action with no such message (done before any reminder, or long
after) counts in the funnel only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from notifier.campaign import Campaign, Deadline, zone
from notifier.eligibility import Facts, deadlines_for, deadlines_sql, held_out_sql, in_audience, in_audience_sql
from notifier.errors import NotifierError, UserError
from notifier.events import EventType
from notifier.ledger import queries, tallies
from notifier.ledger.models import (
    ActionDay,
    CampaignRow,
    DeliveryEvent,
    DeliveryRow,
    Recipient,
    RecipientAction,
    ResultFirst,
    ResultTally,
    SendGroup,
)
from notifier.ledger.states import DeliveryState

ATTRIBUTION_WINDOW = timedelta(days=7)  # an action more than this long after a message is not credited to it
METRICS = ("delivered", "bounced", "opened", "opened_machine", "clicked", "unsubscribed", "complained",
           "converted", "converted_late")
PUSH_METRICS = frozenset({"opened", "converted", "converted_late"})  # a push has no delivery receipt nor tracked link
_CHUNK = 500


MessageKey = tuple[int, str, str]  # where a message's results count: (send group, locale or '', channel)


class Hit(NamedTuple):
    """One metric of one message, to be counted once."""

    campaign_id: str
    delivery_id: int
    metric: str


def metrics_of(event_type: str, detail: Mapping[str, Any] | None) -> tuple[str, ...]:
    """What a stored event counts for its message (``feedback._detail`` wrote its detail)."""
    detail = detail or {}
    match event_type:
        case EventType.DELIVERED:
            return ("delivered",)
        case EventType.BOUNCED | EventType.DROPPED:
            return ("bounced",)
        case EventType.OPENED:
            return ("opened_machine",) if detail.get("machine") else ("opened",)
        case EventType.CLICKED:
            return ("clicked", f"click:{detail.get('link') or 'other'}")
        case EventType.UNSUBSCRIBED:
            return ("unsubscribed",)
        case EventType.COMPLAINED:
            return ("complained",)
    return ()


def count(session: Session, hits: Iterable[Hit],
          known: Mapping[tuple[str, int], MessageKey] | None = None) -> int:
    """Count each hit whose (message, metric) was not counted before, in the caller's transaction; returns how
    many were new. Keys are written in one order, so concurrent batches never wait on each other in a cycle.
    ``known``: where the messages count, when the caller has read it already (else it is read here)."""
    wanted = sorted(set(hits))
    new: list[Hit] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = [h._asdict() for h in wanted[start:start + _CHUNK]]
        stmt = (queries.dialect_insert(session, ResultFirst).values(chunk).on_conflict_do_nothing()
                .returning(ResultFirst.campaign_id, ResultFirst.delivery_id, ResultFirst.metric))
        new += [Hit(*row) for row in session.execute(stmt)]
    messages = {(h.campaign_id, h.delivery_id) for h in new}
    keys = known if known is not None and messages <= known.keys() else _keys_of(session, messages)
    _add(session, Counter((h.campaign_id, *keys[(h.campaign_id, h.delivery_id)], h.metric)
                          for h in new if (h.campaign_id, h.delivery_id) in keys))
    return len(new)


def _keys_of(session: Session, messages: set[tuple[str, int]]) -> dict[tuple[str, int], MessageKey]:
    """(campaign, delivery id) → (send group, locale, channel), read on the campaign's partition."""
    found: dict[tuple[str, int], MessageKey] = {}
    by_campaign: dict[str, list[int]] = defaultdict(list)
    for campaign_id, delivery_id in messages:
        by_campaign[campaign_id].append(delivery_id)
    for campaign_id, ids in by_campaign.items():
        ids.sort()
        for start in range(0, len(ids), _CHUNK):
            q = (select(DeliveryRow.id, DeliveryRow.group_id, DeliveryRow.locale, DeliveryRow.channel)
                 .where(DeliveryRow.campaign_id == campaign_id, DeliveryRow.id.in_(ids[start:start + _CHUNK])))
            found.update({(campaign_id, d): (g, loc or "", ch) for d, g, loc, ch in session.execute(q)})
    return found


def _add(session: Session, counts: Mapping[tuple[str, int, str, str, str], int]) -> None:
    """Add ``counts`` to the tallies, keys in order (an upsert: the key's row is locked until commit)."""
    rows = [{"campaign_id": c, "group_id": g, "locale": loc, "channel": ch, "metric": m, "n": n}
            for (c, g, loc, ch, m), n in sorted(counts.items()) if n]
    t = ResultTally.__table__
    for start in range(0, len(rows), _CHUNK):
        stmt = queries.dialect_insert(session, ResultTally).values(rows[start:start + _CHUNK])
        session.execute(stmt.on_conflict_do_update(
            index_elements=["campaign_id", "group_id", "locale", "channel", "metric"],
            set_={"n": t.c.n + stmt.excluded.n}))


# --- actions: the funnel and conversions ----------------------------------------------------------------------------


@dataclass
class ActionCounter:
    """Counts newly recorded actions (and push opens) for every campaign whose deadlines name them in ``skip_if``;
    made once per batch (it reads the campaigns and their send groups once).

    It keeps the batch's counts until :meth:`flush`, which writes them in key order, as ``count`` does for events:
    every action of a day adds to the same funnel row, so two batches that wrote their rows as each action came, in
    other orders (a refund, then a transfer; a transfer, then a refund), would wait on each other in a cycle, and
    PostgreSQL would abort one of them (a 503)."""

    session: Session
    _campaigns: dict[str, list[tuple[Campaign, tuple[str, ...]]]] | None = None  # action → (campaign, deadlines)
    _groups: dict[str, list[tuple[int, str, datetime, tuple[str, ...]]]] = field(default_factory=dict)
    _acted: Counter[tuple[str, str, date]] = field(default_factory=Counter)  # (campaign, deadline, day) → people
    _late: Counter[tuple[str, str, date]] = field(default_factory=Counter)  # of those, after the deadline
    _hits: list[Hit] = field(default_factory=list)

    def hit(self, hit: Hit) -> None:
        """Count ``hit`` (once per message and metric) at :meth:`flush`."""
        self._hits.append(hit)

    def flush(self) -> None:
        """Write the deferred counts: the funnel's days, then the messages' hits, each in key order."""
        for key in sorted(self._acted):
            _add_day(self.session, *key, self._acted[key], self._late[key])
        count(self.session, self._hits)
        self._acted.clear()
        self._late.clear()
        self._hits.clear()

    def _by_action(self) -> dict[str, list[tuple[Campaign, tuple[str, ...]]]]:
        if self._campaigns is None:
            self._campaigns = defaultdict(list)
            # The columns it reads, not the whole row: migration 0015 runs this, and must not read columns that
            # later migrations add. Cancelled campaigns too: people still act.
            for row in self.session.execute(select(CampaignRow.id, CampaignRow.spec, CampaignRow.source)):
                try:
                    campaign = queries.campaign_of(row)  # type: ignore[arg-type]  # id, spec and source are all it reads
                except NotifierError:  # its stored file no longer reads: it counts nothing, the rest go on
                    continue
                for action in {d.skip_if for d in campaign.deadlines if d.skip_if}:
                    ids = tuple(d.id for d in campaign.deadlines if d.skip_if == action)
                    self._campaigns[action].append((campaign, ids))
        return self._campaigns

    def _groups_of(self, campaign_id: str) -> list[tuple[int, str, datetime, tuple[str, ...]]]:
        if campaign_id not in self._groups:
            self._groups[campaign_id] = [
                (g, tz, at, tuple(dl)) for g, tz, at, dl in self.session.execute(
                    select(SendGroup.id, SendGroup.timezone, SendGroup.send_at, SendGroup.deadlines)
                    .where(SendGroup.campaign_id == campaign_id))]
        return self._groups[campaign_id]

    def add(self, seq: int, action: str, at: datetime) -> None:
        """Count a first-time action of recipient ``seq``."""
        campaigns = self._by_action().get(action)
        if not campaigns:
            return
        country, locale, tz, attributes = self.session.execute(
            select(Recipient.country, Recipient.locale, Recipient.timezone, Recipient.attributes)
            .where(Recipient.seq == seq)).one()
        facts = Facts(country, locale, tz, attributes)
        for campaign, all_ids in campaigns:
            deadline_ids = deadlines_for(campaign, all_ids, facts)
            if not deadline_ids or not in_audience(campaign, facts):
                continue
            for deadline_id in deadline_ids:
                day, late = funnel_day(campaign.deadline(deadline_id), at, tz)
                self._acted[(campaign.id, deadline_id, day)] += 1
                self._late[(campaign.id, deadline_id, day)] += late
            self._attribute(campaign, deadline_ids, seq, at)

    def _attribute(self, campaign: Campaign, deadline_ids: tuple[str, ...], seq: int, at: datetime) -> None:
        groups = {g: (tz, dl) for g, tz, send_at, dl in self._groups_of(campaign.id)
                  if send_at <= at and set(dl) & set(deadline_ids)}
        if not groups:
            return
        last = self.session.execute(
            select(DeliveryRow.id, DeliveryRow.group_id)
            .where(DeliveryRow.campaign_id == campaign.id, DeliveryRow.group_id.in_(sorted(groups)),
                   DeliveryRow.recipient_seq == seq, DeliveryRow.state == DeliveryState.SENT,
                   DeliveryRow.sent_at <= at, DeliveryRow.sent_at >= at - ATTRIBUTION_WINDOW)
            .order_by(DeliveryRow.sent_at.desc(), DeliveryRow.id.desc()).limit(1)).first()
        if last is None:
            return
        tz, dl = groups[last.group_id]
        late = all(at > campaign.deadline(d).instant_in(zone(tz)) for d in dl if d in deadline_ids)
        self.hit(Hit(campaign.id, last.id, "converted_late" if late else "converted"))


def funnel_day(deadline: Deadline, at: datetime, timezone: str) -> tuple[date, int]:
    """Where an action done ``at`` counts in ``deadline``'s funnel: its UTC day, and 1 when it came after the
    deadline had passed in the person's zone (else 0)."""
    return at.astimezone(UTC).date(), int(at > deadline.instant_in(zone(timezone)))


def _add_day(session: Session, campaign_id: str, deadline_id: str, day: date, acted: int, late: int) -> None:
    stmt = queries.dialect_insert(session, ActionDay).values(campaign_id=campaign_id, deadline_id=deadline_id,
                                                              day=day, acted=acted, late=late)
    t = ActionDay.__table__
    session.execute(stmt.on_conflict_do_update(index_elements=["campaign_id", "deadline_id", "day"],
                                               set_={"acted": t.c.acted + acted, "late": t.c.late + late}))


def recount_funnel(session: Session, campaign_id: str) -> None:
    """The campaign's funnel counted again from every action recorded so far, as scheduling it (again) must: the
    actions recorded before it was in the ledger, or under other deadlines or countries, count too. Streamed; the
    days are written in key order."""
    campaign = queries.campaign_of(queries.get_campaign(session, campaign_id))
    session.execute(ActionDay.__table__.delete().where(ActionDay.campaign_id == campaign_id))
    acted: Counter[tuple[str, date]] = Counter()
    late: Counter[tuple[str, date]] = Counter()
    for d in campaign.deadlines:
        if not d.skip_if:
            continue
        q = (select(RecipientAction.at, Recipient.timezone)
             .join(Recipient, Recipient.seq == RecipientAction.recipient_seq)
             .where(RecipientAction.action == d.skip_if, in_audience_sql(campaign), deadlines_sql(campaign, [d.id]))
             .execution_options(yield_per=10_000))
        for at, tz in session.execute(q):
            day, after = funnel_day(d, at, tz)
            acted[(d.id, day)] += 1
            late[(d.id, day)] += after
    for deadline_id, day in sorted(acted):
        _add_day(session, campaign_id, deadline_id, day, acted[(deadline_id, day)], late[(deadline_id, day)])


def rebuild(session: Session) -> None:
    """Count every stored event and action again from nothing (the migration that made the counts does it once)."""
    for table in (ResultFirst, ResultTally, ActionDay):
        session.execute(table.__table__.delete())
    q = (select(DeliveryEvent.campaign_id, DeliveryEvent.delivery_id, DeliveryEvent.type, DeliveryEvent.detail)
         .where(DeliveryEvent.delivery_id.is_not(None), DeliveryEvent.campaign_id != "")
         .order_by(DeliveryEvent.id).execution_options(yield_per=5000))
    batch: list[Hit] = []
    for campaign_id, delivery_id, kind, detail in session.execute(q):
        batch += [Hit(campaign_id, delivery_id, m) for m in metrics_of(kind, detail)]
        if len(batch) >= 5000:
            count(session, batch)
            batch = []
    count(session, batch)
    counter = ActionCounter(session)
    actions = (select(RecipientAction.recipient_seq, RecipientAction.action, RecipientAction.at)
               .order_by(RecipientAction.id).execution_options(yield_per=5000))
    for n, (seq, action, at) in enumerate(session.execute(actions), 1):
        counter.add(seq, action, at)
        if n % 5000 == 0:
            counter.flush()  # what it keeps stays small
    counter.flush()


# --- reading them -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultRow:
    """One send × locale × channel: sent (the ledger's own count) and what became of those messages."""

    send: str
    locale: str
    channel: str
    sent: int
    metrics: dict[str, int]  # METRICS and click:<link> → messages

    def measured(self, metric: str) -> bool:
        """Whether the channel reports ``metric`` at all (a push's delivery is not reported: a 0 would mislead)."""
        return self.channel != "push" or metric in PUSH_METRICS or metric == "sent"

    def __getitem__(self, metric: str) -> int:
        return self.sent if metric == "sent" else self.metrics.get(metric, 0)

    def as_dict(self) -> dict[str, Any]:
        clicks = {m.split(":", 1)[1]: n for m, n in sorted(self.metrics.items()) if m.startswith("click:")}
        return {"send": self.send, "locale": self.locale, "channel": self.channel, "sent": self.sent,
                **{m: self.metrics.get(m, 0) for m in METRICS}, "clicks_by_link": clicks}


@dataclass(frozen=True)
class FunnelDay:
    day: date
    acted: int  # audience members who first acted that UTC day
    total: int  # who had acted by the end of that day
    late: int  # of ``acted``, after the deadline had passed in their zone


@dataclass(frozen=True)
class Funnel:
    """One deadline: the share of the audience that has acted, day by day, with its waves' first sends."""

    deadline_id: str
    label: str
    action: str
    deadline: datetime  # as the campaign file writes it (naive: the wall time in each recipient's zone)
    audience: int
    days: tuple[FunnelDay, ...]
    waves: tuple[tuple[str, datetime], ...]  # (wave, its first send) in time order
    holdout: Holdout | None = None  # the campaign's holdout against the rest (marketing with audience.holdout)

    @property
    def acted(self) -> int:
        return self.days[-1].total if self.days else 0

    @property
    def late(self) -> int:
        return sum(d.late for d in self.days)

    @property
    def not_acted(self) -> int:
        return max(0, self.audience - self.acted)

    def as_dict(self) -> dict[str, Any]:
        return {"deadline": self.deadline_id, "label": self.label, "action": self.action,
                "deadline_at": self.deadline.isoformat(), "audience": self.audience, "acted": self.acted,
                "acted_before_deadline": self.acted - self.late, "acted_after_deadline": self.late,
                "not_acted": self.not_acted,
                "days": [{"day": d.day.isoformat(), "acted": d.acted, "total": d.total, "late": d.late}
                         for d in self.days],
                "waves": [{"wave": w, "first_send_at": at.isoformat()} for w, at in self.waves],
                "holdout": self.holdout.as_dict() if self.holdout else None}


@dataclass(frozen=True)
class Results:
    campaign_id: str
    name: str
    rows: tuple[ResultRow, ...]
    funnels: tuple[Funnel, ...]

    def total(self, metric: str, channel: str | None = None) -> int:
        """``metric`` over every row, or over one channel's."""
        return sum(r[metric] for r in self.rows if channel in (None, r.channel))

    @property
    def links(self) -> dict[str, int]:
        """Unique clicks per link, over the whole campaign."""
        out: Counter[str] = Counter()
        for r in self.rows:
            out.update({m.split(":", 1)[1]: n for m, n in r.metrics.items() if m.startswith("click:")})
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign_id, "name": self.name,
                "totals": {m: self.total(m) for m in ("sent", *METRICS)}, "clicks_by_link": self.links,
                "rows": [r.as_dict() for r in self.rows], "funnels": [f.as_dict() for f in self.funnels],
                "attribution_window_days": ATTRIBUTION_WINDOW.days}


COLUMNS = ("send", "locale", "channel", "sent", *METRICS)


def results(session: Session, campaign_id: str) -> Results:
    """The campaign's results, from its counts (a few thousand rows at most, whatever the audience) and one count
    of its audience."""
    row = queries.get_campaign(session, campaign_id)
    campaign = queries.campaign_of(row)
    send_of, first = queries.sends_of(session, campaign_id)
    sent: Counter[tuple[str, str, str]] = Counter()
    for t in tallies.of_campaign(session, campaign_id):
        if t.state == DeliveryState.SENT:
            sent[(send_of[t.group_id], t.locale or "-", t.channel)] += t.n
    metrics: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for g, loc, ch, m, n in session.execute(
            select(ResultTally.group_id, ResultTally.locale, ResultTally.channel, ResultTally.metric, ResultTally.n)
            .where(ResultTally.campaign_id == campaign_id)):
        metrics[(send_of.get(g, "?"), loc or "-", ch)][m] += n
    keys = sorted(set(sent) | set(metrics), key=lambda k: (first.get(k[0], datetime.max.replace(tzinfo=UTC)), k))
    rows = tuple(ResultRow(*k, sent[k], dict(metrics[k])) for k in keys)
    return Results(campaign_id, row.name, rows, tuple(_funnels(session, campaign, first)))


def _funnels(session: Session, campaign: Campaign, first: Mapping[str, datetime]) -> Iterator[Funnel]:
    days: dict[str, list[tuple[date, int, int]]] = defaultdict(list)
    for deadline_id, day, acted, late in session.execute(
            select(ActionDay.deadline_id, ActionDay.day, ActionDay.acted, ActionDay.late)
            .where(ActionDay.campaign_id == campaign.id).order_by(ActionDay.day)):
        days[deadline_id].append((day, acted, late))
    sizes: dict[str | None, int] = {}  # one count per deadline condition: those without one share the campaign's
    for d in campaign.deadlines:
        if not d.skip_if:
            continue
        key = d.where.text if d.where else None
        if key not in sizes:
            sizes[key] = audience_size(session, campaign, d.id)
        audience = sizes[key]
        total, out = 0, []
        for day, acted, late in days.get(d.id, []):
            total += acted
            out.append(FunnelDay(day, acted, total, late))
        waves: dict[str, datetime] = {}
        for send, at in first.items():
            for item in send.split("+"):
                deadline_id, _, wave = item.partition("@")
                if deadline_id == d.id:
                    waves[wave] = min(at, waves.get(wave, at))
        yield Funnel(d.id, d.label or d.id, d.skip_if, d.at, audience, tuple(out),
                     tuple(sorted(waves.items(), key=lambda kv: kv[1])), _holdout(session, campaign, d))


def audience_size(session: Session, campaign: Campaign, deadline_id: str | None = None) -> int:
    """Every recipient of the campaign's audience in the ledger (of those its deadline concerns): the funnel's
    whole, its holdout included."""
    concerned = deadlines_sql(campaign, [deadline_id]) if deadline_id else true()
    return session.scalar(select(func.count()).select_from(Recipient)
                          .where(in_audience_sql(campaign), concerned)) or 0


@dataclass(frozen=True)
class Holdout:
    """A deadline's action among the campaign's holdout (sent nothing) and among the rest of its audience."""

    held: int
    held_acted: int
    sent: int
    sent_acted: int

    @property
    def held_rate(self) -> float | None:
        return self.held_acted / self.held if self.held else None

    @property
    def sent_rate(self) -> float | None:
        return self.sent_acted / self.sent if self.sent else None

    @property
    def lift(self) -> float | None:
        """Percentage points the messages added: the rest's rate less the holdout's."""
        if self.held_rate is None or self.sent_rate is None:
            return None
        return (self.sent_rate - self.held_rate) * 100

    def as_dict(self) -> dict[str, Any]:
        return {"held_out": self.held, "held_out_acted": self.held_acted, "sent": self.sent,
                "sent_acted": self.sent_acted, "lift_points": None if self.lift is None else round(self.lift, 2)}


def _holdout(session: Session, campaign: Campaign, d: Deadline) -> Holdout | None:
    """One pass over the deadline's audience, split by the holdout; None for a campaign without one."""
    if not campaign.holdout or not d.skip_if:
        return None
    acted = (select(RecipientAction.id).where(RecipientAction.recipient_seq == Recipient.seq,
                                              RecipientAction.action == d.skip_if).exists())
    held = held_out_sql(campaign)
    q = select(func.count().filter(held), func.count().filter(held & acted), func.count().filter(~held),
               func.count().filter(~held & acted)).where(in_audience_sql(campaign), deadlines_sql(campaign, [d.id]))
    return Holdout(*session.execute(q).one())


def not_acted(session: Session, campaign_id: str, deadline_id: str, chunk: int = 5000) -> Iterator[str]:
    """The ids of the campaign's audience who have not done the deadline's ``skip_if`` action, in id order,
    streamed (for a CRM: ids only). The campaign and the deadline are checked now, before the first id."""
    campaign = queries.campaign_of(queries.get_campaign(session, campaign_id))
    action = next((d.skip_if for d in campaign.deadlines if d.id == deadline_id), None)
    if action is None:
        known = ", ".join(d.id for d in campaign.deadlines if d.skip_if) or "none"
        raise UserError(f"{campaign_id} has no deadline {deadline_id!r} with a skip_if action (those it has: {known})")
    acted = select(RecipientAction.id).where(RecipientAction.recipient_seq == Recipient.seq,
                                             RecipientAction.action == action)
    q = (select(Recipient.id).where(in_audience_sql(campaign), deadlines_sql(campaign, [deadline_id]), ~acted.exists())
         .order_by(Recipient.id).execution_options(yield_per=chunk))
    return iter(session.scalars(q))


def table_rows(res: Results, missing: str = "") -> list[list[Any]]:
    """The rows as cells in ``COLUMNS`` order; ``missing`` where the channel does not report a metric."""
    return [[getattr(r, c) if c in ("send", "locale", "channel") else r[c] if r.measured(c) else missing
             for c in COLUMNS] for r in res.rows]


def csv_lines(res: Results) -> Iterator[list[Any]]:
    """The table as CSV lines: the header, then a line per send × locale × channel (blank where not reported)."""
    yield list(COLUMNS)
    yield from table_rows(res)
