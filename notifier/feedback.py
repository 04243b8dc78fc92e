"""What happens after a message is sent changes what is sent next: provider events, unsubscribes, actions.

- :func:`apply_events` takes a verified batch of provider events (``events.ProviderEvent``) in one transaction:
  each event is kept once (by its provider event id), tied to our delivery when it carries our ids, and the ones
  that say an address must not be mailed again (hard bounces, drops for bad addresses, complaints, unsubscribes)
  put it on the suppression list (:data:`SUPPRESSING`).
- :func:`unsubscribe` is the opt-out of an unsubscribe link (one click, or a mail to the ``mailto:`` address):
  from a marketing message the recipient leaves all marketing, from a service message the rest of that campaign,
  on every channel (:func:`opt_out_of` says which, for the page that asks first).
- :func:`record_actions` notes completed actions (``skip_if``) in bulk, each bad one rejected alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier import results
from notifier.errors import NotFound, NotifierError, UserError
from notifier.events import EventType, ProviderEvent, RejectReason
from notifier.ledger import queries, suppressions
from notifier.ledger.models import DeliveryEvent, DeliveryRow, PushToken, Recipient
from notifier.ledger.states import DeliveryState

# (event type, reject reason) → (scope, the reason kept on the list). Soft bounces (blocked, timed out) and
# deferrals suppress nothing: the address may work tomorrow.
SUPPRESSING: dict[tuple[EventType, RejectReason | None], tuple[str, str]] = {
    (EventType.BOUNCED, RejectReason.INVALID): ("all", "bounced"),
    (EventType.DROPPED, RejectReason.INVALID): ("all", "dropped: invalid address"),
    (EventType.DROPPED, RejectReason.BOUNCED): ("all", "dropped: bounced address"),
    (EventType.DROPPED, RejectReason.SPAM): ("all", "dropped: spam report"),
    (EventType.COMPLAINED, None): ("all", "complained"),
    (EventType.DROPPED, RejectReason.UNSUBSCRIBED): ("marketing", "unsubscribed"),
    (EventType.UNSUBSCRIBED, None): ("marketing", "unsubscribed"),
}
_CHUNK = 500  # ids per IN list


@dataclass
class BatchReport:
    """What one webhook batch did, in counts only."""

    received: int = 0
    new: int = 0
    duplicates: int = 0
    unmatched: int = 0  # events that name no delivery of ours: they act on the address only
    suppressed: int = 0  # suppression entries added
    types: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "new": self.new, "duplicates": self.duplicates,
                "unmatched": self.unmatched, "suppressed": self.suppressed, "types": dict(self.types)}


def apply_events(session: Session, events: Sequence[ProviderEvent], now: datetime) -> BatchReport:
    """Keep each new event once and act on it, in the caller's transaction: all of the batch or none of it.

    The batch's suppressions are written first, then its events, each in key order and in as few statements as
    the drivers allow: concurrent batches that name the same addresses in other orders (a bounce spike) lock the
    same keys in the same order, so none of them dies in a deadlock."""
    report = BatchReport(received=len(events))
    unique: dict[tuple[str, str], ProviderEvent] = {}
    for event in events:
        unique.setdefault((event.provider, event.event_id), event)
    seen = _known_events(session, list(unique))
    fresh = [e for key, e in unique.items() if key not in seen]
    report.duplicates = report.received - len(fresh)
    ours = _deliveries(session, {e.delivery_id for e in fresh if e.delivery_id is not None})
    links: dict[str, dict[str, str]] = {}  # campaign → its links by address, for the clicks of the batch
    rows, additions = [], []
    for event in fresh:
        delivery = ours.get(event.delivery_id) if event.delivery_id is not None else None
        if delivery is not None and event.campaign_id not in (None, delivery.campaign_id):
            delivery = None  # our id with another campaign's: not ours after all
        report.unmatched += delivery is None
        report.types[event.type.value] += 1
        rows.append({"delivery_id": event.delivery_id if delivery is not None else None,
                     "campaign_id": delivery.campaign_id if delivery is not None else "", "type": event.type.value,
                     "at": event.at, "provider": event.provider, "provider_event_id": event.event_id,
                     "detail": _detail(event, _links_of(session, links, delivery.campaign_id) if delivery else {})})
        additions += _suppressions(event, delivery)
    report.suppressed = suppressions.add(session, additions, now)
    rows.sort(key=lambda row: (row["provider"], row["provider_event_id"]))
    for start in range(0, len(rows), _CHUNK):
        stmt = queries.dialect_insert(session, DeliveryEvent).values(rows[start:start + _CHUNK])
        # No conflict target: on PostgreSQL the key is each campaign partition's own (migration 0014); an event
        # names one delivery, so a replay meets its first copy in the same partition.
        report.new += session.execute(stmt.on_conflict_do_nothing()).rowcount or 0
    # Counted once per message and metric (results.count), so an event replayed by a concurrent batch adds nothing.
    # Where each message counts was read with it (_deliveries): not read again.
    results.count(session, [results.Hit(row["campaign_id"], row["delivery_id"], metric) for row in rows
                            if row["delivery_id"] is not None
                            for metric in results.metrics_of(row["type"], row["detail"])],
                  known={(d.campaign_id, i): d.key for i, d in ours.items()})
    return report


def _suppressions(event: ProviderEvent, delivery: _Ours | None) -> list[suppressions.Addition]:
    """What ``event`` puts on the list (:data:`SUPPRESSING`): its address, and for an unsubscribe from one of our
    messages its recipient too."""
    effect = SUPPRESSING.get((event.type, event.reject_reason))
    if effect is None or not event.address:
        return []
    scope, reason = effect
    campaign_id = delivery.campaign_id if delivery else event.campaign_id
    values = [("email", event.address)]
    if scope == "marketing" and delivery is not None:
        values.append(("recipient", delivery.recipient_id))
    return [suppressions.Addition(kind, value, scope, reason, event.provider, campaign_id) for kind, value in values]


def _known_events(session: Session, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for provider in {p for p, _ in keys}:
        ids = [i for p, i in keys if p == provider]
        for start in range(0, len(ids), _CHUNK):
            found.update((provider, i) for i in session.scalars(select(DeliveryEvent.provider_event_id).where(
                DeliveryEvent.provider == provider, DeliveryEvent.provider_event_id.in_(ids[start:start + _CHUNK]))))
    return found


@dataclass(frozen=True)
class _Ours:
    """What a batch needs of one of our deliveries: its campaign and recipient, and where its results count."""

    campaign_id: str
    recipient_id: str
    key: results.MessageKey


def _deliveries(session: Session, ids: set[int]) -> dict[int, _Ours]:
    """Delivery id → what the batch needs of it, for the ids that are ours."""
    found: dict[int, _Ours] = {}
    wanted = sorted(i for i in ids if i < 2**63)
    for start in range(0, len(wanted), _CHUNK):
        q = (select(DeliveryRow.id, DeliveryRow.campaign_id, Recipient.id, DeliveryRow.group_id, DeliveryRow.locale,
                    DeliveryRow.channel)
             .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
             .where(DeliveryRow.id.in_(wanted[start:start + _CHUNK])))
        found.update({d: _Ours(c, r, (g, loc or "", ch)) for d, c, r, g, loc, ch in session.execute(q)})
    return found


def _detail(event: ProviderEvent, links: Mapping[str, str]) -> dict[str, Any]:
    detail: dict[str, Any] = {"description": event.description}
    if event.reject_reason is not None:
        detail["reject_reason"] = event.reject_reason.value
    if event.raw is not None:
        detail["raw"] = dict(event.raw)
    if event.type == EventType.OPENED:
        detail["machine"] = event.machine  # counted apart: such an open says nothing of a reader
    if event.type == EventType.CLICKED:
        detail["link"] = link_name(event.url, links)
    return detail


def _links_of(session: Session, cache: dict[str, dict[str, str]], campaign_id: str) -> dict[str, str]:
    """The campaign's links by address (:func:`link_address`), read once a batch."""
    if campaign_id not in cache:
        try:
            named = queries.campaign_of(queries.get_campaign(session, campaign_id)).links
        except NotifierError:  # gone, or its stored file no longer reads: its clicks are "other", the batch goes on
            named = {}
        cache[campaign_id] = {link_address(url): name for name, url in named.items()}
    return cache[campaign_id]


def link_address(url: str) -> str:
    """A link's address without its query, fragment or final slash, lower-cased scheme and host: what a click's
    URL is matched on (a provider's tracking may add parameters)."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def link_name(url: str | None, links: Mapping[str, str]) -> str:
    """Which of the campaign's links a click followed: its name (``transfer``, ``refund``, ``help``…),
    ``unsubscribe`` for our unsubscribe link, ``other`` for anything else. The URL itself is never kept: an
    unsubscribe link carries its token."""
    if not url:
        return "other"
    address = link_address(url)
    if address in links:
        return links[address]
    path = urlsplit(url).path
    return "unsubscribe" if path.startswith(("/u/", "/unsubscribe/")) else "other"


@dataclass(frozen=True)
class OptOut:
    """What the unsubscribe link of one delivery stops, and in which language to say so: all marketing (the link of
    a marketing message) or the rest of that one campaign on every channel (a service message: the law lets
    service mail reach someone who left marketing, but nobody should get more of what they asked to stop)."""

    delivery_id: int
    campaign_id: str
    campaign_name: str
    scope: str  # "marketing", or suppressions.campaign_scope(campaign_id)
    locale: str | None

    @property
    def marketing(self) -> bool:
        return self.scope == "marketing"


@dataclass(frozen=True)
class Unsubscribed:
    """The result of an unsubscribe link: what it stopped, and whether it changed anything."""

    opt_out: OptOut
    added: int  # 0: they had already opted out

    @property
    def locale(self) -> str | None:
        return self.opt_out.locale


def _delivery_of(session: Session, delivery_id: int) -> Any:
    """The delivery's campaign and locale, and its recipient's seq, id, address and preferred locale; None: gone."""
    return session.execute(
        select(DeliveryRow.campaign_id, DeliveryRow.locale, Recipient.seq, Recipient.id, Recipient.email,
               Recipient.locale.label("preferred"))
        .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq).where(DeliveryRow.id == delivery_id)).first()


def _opt_out(session: Session, delivery_id: int, found: Any) -> OptOut:
    campaign = queries.campaign_of(queries.get_campaign(session, found.campaign_id))
    scope = "marketing" if campaign.honours_opt_outs else suppressions.campaign_scope(campaign.id)
    return OptOut(delivery_id, campaign.id, campaign.name, scope, found.locale or found.preferred)


def opt_out_of(session: Session, delivery_id: int) -> OptOut | None:
    """What unsubscribing through ``delivery_id``'s link stops; None when the delivery is gone."""
    found = _delivery_of(session, delivery_id)
    return None if found is None else _opt_out(session, delivery_id, found)


def unsubscribe(session: Session, delivery_id: int, now: datetime, *, source: str = "unsubscribe-link"
                ) -> Unsubscribed | None:
    """Opt the recipient of ``delivery_id`` out (:func:`opt_out_of`) by its id, its address and its push tokens, so
    that no channel reaches them; None when the delivery is gone."""
    found = _delivery_of(session, delivery_id)
    if found is None:
        return None
    opt_out = _opt_out(session, delivery_id, found)
    tokens = session.scalars(select(PushToken.token).where(PushToken.recipient_seq == found.seq)).all()
    values = [("recipient", found.id), *([("email", found.email)] if found.email else []),
              *(("token", t) for t in tokens)]
    added = suppressions.suppress(session, values, scope=opt_out.scope, reason="unsubscribed", source=source,
                                  now=now, campaign_id=opt_out.campaign_id)
    if added:
        session.add(DeliveryEvent(delivery_id=delivery_id, campaign_id=found.campaign_id,
                                  type=EventType.UNSUBSCRIBED.value, at=now,
                                  provider="notifier", detail={"source": source, "scope": opt_out.scope}))
        results.count(session, [results.Hit(found.campaign_id, delivery_id, "unsubscribed")])
    return Unsubscribed(opt_out, added)


@dataclass(frozen=True)
class ActionRejection:
    """One action that was not recorded, and why (the line of its file, when it came from one)."""

    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line is not None else self.reason


def record_actions(session: Session, items: Iterable[tuple[int | None, str, str, datetime] | ActionRejection], *,
                   force: bool = False) -> tuple[int, list[ActionRejection]]:
    """Record (line, recipient id, action, at) items; an unknown recipient or action is rejected alone (as are
    items the reader already rejected, passed through). A caller that can (``POST /actions``) passes them in
    (recipient, action) order: two batches then take their rows' locks in one order and never deadlock."""
    known = None if force else queries.skip_if_actions(session)
    recorded, rejected = 0, []
    counter = results.ActionCounter(session)  # the batch's counts written at its end, in key order
    for item in items:
        if isinstance(item, ActionRejection):
            rejected.append(item)
            continue
        line, recipient_id, action, at = item
        if known is not None and action not in known:
            rejected.append(ActionRejection(line, f"action {action!r}: no campaign's skip_if uses it (known: "
                                                  f"{', '.join(sorted(known)) or 'none'})"))
            continue
        try:  # an unknown recipient is refused before anything is written
            recorded += record_action(session, recipient_id, action, at, force=True, counter=counter)
        except UserError as exc:
            rejected.append(ActionRejection(line, str(exc)))
    counter.flush()
    return recorded, rejected


def record_push_opens(session: Session, items: Iterable[tuple[int, int, datetime]]
                      ) -> tuple[int, list[ActionRejection]]:
    """Record (index, delivery id, at) push opens whose tokens were checked, in delivery id order (two batches
    never wait on each other in a cycle); a push we did not send is rejected alone."""
    recorded, rejected = 0, []
    counter = results.ActionCounter(session)
    for index, delivery_id, at in sorted(items, key=lambda item: (item[1], item[0])):
        try:
            recorded += push_opened(session, delivery_id, at, counter=counter)
        except UserError as exc:
            rejected.append(ActionRejection(index, str(exc)))
    counter.flush()
    return recorded, rejected


def push_opened(session: Session, delivery_id: int, at: datetime, *,
                counter: results.ActionCounter | None = None) -> bool:
    """Keep the app's report that the push ``delivery_id`` was opened, as an ``opened`` event of provider ``app``
    (one per push: a report posted again adds nothing), counted in the results (by ``counter`` when given: a
    batch's, which its caller flushes); False when it was known."""
    found = session.execute(select(DeliveryRow.campaign_id, DeliveryRow.channel, DeliveryRow.state)
                            .where(DeliveryRow.id == delivery_id)).first()
    if found is None or found.channel != "push" or found.state != DeliveryState.SENT:
        raise NotFound(f"delivery {delivery_id}: no push of ours was sent with this id")
    stmt = queries.dialect_insert(session, DeliveryEvent).values(
        delivery_id=delivery_id, campaign_id=found.campaign_id, type=EventType.OPENED.value, at=at, provider="app",
        provider_event_id=f"open-{delivery_id}", detail={"machine": False})
    new = bool(session.execute(stmt.on_conflict_do_nothing()).rowcount)
    own = counter or results.ActionCounter(session)
    own.hit(results.Hit(found.campaign_id, delivery_id, "opened"))
    if counter is None:
        own.flush()
    return new


def record_action(session: Session, recipient_id: str, action: str, at: datetime, *, force: bool = False,
                  counter: results.ActionCounter | None = None) -> bool:
    """Record one action (``queries.record_action``) and, the first time, count it in the results of the
    campaigns it is a goal of (``results.ActionCounter``: pass one to share it across a batch, and flush it at
    the batch's end); False when it was already recorded."""
    seq = queries.record_action(session, recipient_id, action, at, force=force)
    if seq is None:
        return False
    own = counter or results.ActionCounter(session)
    own.add(seq, action, at)
    if counter is None:
        own.flush()
    return True
