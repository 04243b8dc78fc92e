"""Results (issue 27), the acceptance test: signed SendGrid batches, recipients' actions and push opens fed
through the real ``notifier serve`` (uvicorn in a thread, real HTTP), replays and overlapping concurrent batches
included, and every figure of ``GET /api/v1/campaigns/{id}/results`` checked against a count of the ledger's own
rows made here, row by row (never through ``notifier.results``), on SQLite and PostgreSQL. Then the same counts
made again from nothing (``results.rebuild``) and through migration 0015 down and up again.

The campaign is the shipped one (deadlines ``playlist-transfer``, skip_if ``playlist_transferred``, and
``refund``, skip_if ``refund_requested``; audience ID, BR, AU, SG, MX), sent on a simulated clock to seven
recipients in five zones and four locales by email and push, and to nobody in the United States.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from notifier import results
from notifier.campaign import Campaign, parse_campaign
from notifier.config import Settings
from notifier.dispatch import Dispatcher
from notifier.ledger.db import downgrade, transaction, upgrade
from notifier.ledger.models import (
    ActionDay,
    DeliveryEvent,
    DeliveryRow,
    Recipient,
    RecipientAction,
    ResultFirst,
    ResultTally,
    SendGroup,
)
from notifier.links import open_token, unsubscribe_token
from notifier.web import create_app, running
from tests.conftest import CAMPAIGN_FILE, DEFAULTS, SHIPPED_ID, TEST_SECRETS, settle
from tests.test_webhooks_sendgrid import KEY, encoded, public_b64, sg, signature_headers
from tests.waves import AddRecipient, Schedule

CAMPAIGN_ID = SHIPPED_ID
SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
FIRST = "playlist-transfer@P30D+refund@P61D"  # 28 Sep at 10:00 in each zone: both deadlines at once
P7D = "playlist-transfer@P7D"  # 21 Oct
P1D = "playlist-transfer@P1D"  # 27 Oct
TOKEN = "an-api-token-for-the-results-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
WINDOW = timedelta(days=7)  # an action is credited to a message sent less than this long before it

# id, zone, country, locale, push tokens, has an email address: seven in the campaign's countries, Ed outside them
PEOPLE: list[tuple[str, str, str, str | None, tuple[str, ...], bool]] = [
    ("ana", "Asia/Jakarta", "ID", "id", ("ana-phone",), True),
    ("budi", "Asia/Jakarta", "ID", "id", (), True),
    ("eko", "Asia/Jakarta", "ID", "id", (), True),  # an address that bounces
    ("bia", "America/Sao_Paulo", "BR", "pt-BR", ("bia-phone",), True),
    ("carlos", "America/Mexico_City", "MX", "es-MX", (), True),
    ("dan", "Australia/Sydney", "AU", "en", ("dan-phone",), True),
    ("siti", "Asia/Singapore", "SG", None, ("siti-phone",), False),  # push only, no locale of her own
    ("ed", "America/New_York", "US", "en", (), True),  # out of the audience: gets nothing, acts anyway
]
METRICS = ("delivered", "bounced", "opened", "opened_machine", "clicked", "unsubscribed", "complained",
           "converted", "converted_late")

Key = tuple[str, str, str]  # send key, locale ("-" for none), channel


@pytest.fixture
def locales() -> Path:
    """The shipped campaign's own catalogs (the ``dispatcher`` fixture asks for them)."""
    return DEFAULTS.locales_dir


@dataclass
class Clock:
    """The app's clock, moved on with the simulated sends (suppressions and the unsubscribe link read it)."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Fed:
    """The ledger once everything was posted: the app that took it, and the delivery ids by whom and what."""

    sessions: sessionmaker[Session]
    app: Any
    ids: dict[tuple[str, str, str], int]  # (recipient, send key, channel) → delivery id
    answers: dict[str, Any] = field(default_factory=dict)  # what some posts answered, by name

    def report(self) -> dict[str, Any]:
        """GET /api/v1/campaigns/{id}/results through a running notifier serve."""
        with running(self.app) as url, httpx.Client(base_url=url, timeout=30) as client:
            response = client.get(f"/api/v1/campaigns/{CAMPAIGN_ID}/results", headers=BEARER)
        assert response.status_code == 200, response.text
        return dict(response.json())


# --- posting through notifier serve -----------------------------------------------------------------------------


def post_events(client: httpx.Client, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    body = encoded(list(events))
    response = client.post("/webhooks/sendgrid", content=body, headers=signature_headers(body))
    assert response.status_code == 200, response.text
    return dict(response.json())


def post_actions(client: httpx.Client, *items: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/actions", json={"actions": list(items)}, headers=BEARER)
    assert response.status_code == 200, response.text
    return dict(response.json())


def opened(delivery_id: int, token: str | None = None) -> dict[str, Any]:
    """A push open as the app posts it: the delivery id and open token of the push's data."""
    return {"delivery_id": delivery_id, "token": token or open_token(TEST_SECRETS["secret_key"], delivery_id)}


def post_opens(client: httpx.Client, *items: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/opens", json={"opens": list(items)})  # no bearer token: each open proves itself
    assert response.status_code == 200, response.text
    return dict(response.json())


Request = tuple[bytes, dict[str, str]]  # a body and its headers


def signed(events: Sequence[dict[str, Any]]) -> Request:
    """A SendGrid batch signed with its key."""
    body = encoded(list(events))
    return body, signature_headers(body)


def with_token(items: Sequence[dict[str, Any]]) -> Request:
    """A POST /actions body with the bearer token."""
    return json.dumps({"actions": list(items)}).encode(), {**BEARER, "Content-Type": "application/json"}


def concurrently(url: str, path: str, requests: Sequence[Request]) -> list[dict[str, Any]]:
    """POST ``requests`` to ``path`` at once, each on a connection of its own, released together by a barrier; all
    must be answered 200 (a deadlock answers 503)."""
    barrier = threading.Barrier(len(requests))

    def one(request: Request) -> tuple[int, Any]:
        body, headers = request
        with httpx.Client(base_url=url, timeout=60) as client:
            client.get("/healthz")  # connected before the barrier, so the posts start together
            barrier.wait()
            response = client.post(path, content=body, headers=headers)
        return response.status_code, response.json()

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(one, requests))
    assert [status for status, _ in answers] == [200] * len(requests), answers
    return [answer for _, answer in answers]


def delivery_ids(sessions: sessionmaker[Session]) -> dict[tuple[str, str, str], int]:
    with sessions() as s:
        rows = s.execute(select(Recipient.id, SendGroup.send_key, DeliveryRow.channel, DeliveryRow.id)
                         .join(SendGroup, SendGroup.id == DeliveryRow.group_id)
                         .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
                         .where(DeliveryRow.campaign_id == CAMPAIGN_ID, DeliveryRow.state == "sent")).all()
    return {(who, key, channel): d for who, key, channel, d in rows}


def sent_at(sessions: sessionmaker[Session], delivery_id: int) -> datetime:
    with sessions() as s:
        at = s.scalar(select(DeliveryRow.sent_at).where(DeliveryRow.id == delivery_id))
    assert at is not None
    return at


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def fed(sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher) -> Fed:
    """The campaign sent on a simulated clock in three stretches (the first send, P7D, P1D), with SendGrid's
    events, the actions and the push opens of each stretch posted to notifier serve in between, so that the
    actions and suppressions skip later waves as they would."""
    for who, tz, country, locale, tokens, has_email in PEOPLE:
        add_recipient(who, timezone=tz, country=country, locale=locale, tokens=list(tokens),
                      email="{id}@example.com" if has_email else None)
    schedule_campaign(SCHEDULED)
    clock = Clock(utc("2024-10-01T12:00"))
    settings = Settings(api_token=TOKEN, sendgrid_webhook_key=public_b64(KEY), **TEST_SECRETS)
    app = create_app(settings, sessions, clock=clock)
    fed = Fed(sessions, app, {})

    def ours(event_id: str, word: str, who: str, send: str, **more: Any) -> dict[str, Any]:
        """A SendGrid event about the email ``send`` of ``who``, carrying our ids back as custom args."""
        return sg(event_id, word, email=f"{who}@example.com", delivery_id=str(fed.ids[(who, send, "email")]),
                  campaign_id=CAMPAIGN_ID, **more)

    def push(who: str, send: str) -> int:
        return fed.ids[(who, send, "push")]

    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        # -- the first send, everywhere; then what SendGrid and the recipients say of it ---------------------------
        settle(dispatcher, sessions, SCHEDULED, utc("2024-09-29T00:00"))
        fed.ids = delivery_ids(sessions)
        assert len(fed.ids) == 10  # ana 2, budi, eko, bia 2, carlos, dan 2, siti's push; nothing for Ed
        dan_link = unsubscribe_token(TEST_SECRETS["secret_key"], fed.ids[("dan", FIRST, "email")],
                                     issued=clock.now.date())
        first_batch = [
            ours("a-d", "delivered", "ana", FIRST),
            ours("a-o1", "open", "ana", FIRST),  # a reader, three times over
            ours("a-o2", "open", "ana", FIRST, sg_machine_open=False),
            ours("a-o3", "open", "ana", FIRST),
            ours("a-om", "open", "ana", FIRST, sg_machine_open=True),  # and Apple's proxy
            ours("a-c1", "click", "ana", FIRST, url="https://music.tiktok.com/transfer?utm_source=sendgrid"),
            ours("a-c2", "click", "ana", FIRST, url="https://music.tiktok.com/refund/"),
            ours("a-c3", "click", "ana", FIRST, url="HTTPS://MUSIC.TIKTOK.COM/transfer#again"),
            ours("b-d", "delivered", "budi", FIRST),
            ours("b-om", "open", "budi", FIRST, sg_machine_open=True),
            ours("b-o", "open", "budi", FIRST, sg_machine_open=False),
            ours("b-c", "click", "budi", FIRST, url="https://elsewhere.example/tiktok-music"),  # no link of ours
            ours("b-gu", "group_unsubscribe", "budi", FIRST),  # marketing only: the service goes on
            ours("e-b", "bounce", "eko", FIRST, type="bounce", status="5.1.1"),
            ours("e-x", "dropped", "eko", FIRST, reason="Bounced Address"),  # the same message, refused twice
            ours("bi-d", "delivered", "bia", FIRST),
            ours("bi-df", "deferred", "bia", FIRST),  # counts nothing
            ours("bi-o", "open", "bia", FIRST),
            ours("bi-s", "spamreport", "bia", FIRST),
            ours("c-d", "delivered", "carlos", FIRST),
            ours("c-b", "bounce", "carlos", FIRST, type="blocked"),  # a soft bounce: later mail goes on
            ours("d-d", "delivered", "dan", FIRST),
            ours("d-c", "click", "dan", FIRST, url=f"https://notifier.test/u/{dan_link}"),
            ours("d-u", "unsubscribe", "dan", FIRST),
            sg("n-1", "delivered", email="ghost@example.com", delivery_id="999999", campaign_id=CAMPAIGN_ID),
            sg("n-2", "bounce", email="stranger@example.com", type="bounce"),  # not sent by us
            sg("n-3", "open", email="ana@example.com", delivery_id=str(fed.ids[("ana", FIRST, "email")]),
               campaign_id="another-campaign"),  # our id with another campaign's: not ours
        ]
        fed.answers["first"] = post_events(client, first_batch)
        one_click = client.post(f"/u/{dan_link}", content=b"List-Unsubscribe=One-Click",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert one_click.status_code == 200, one_click.text
        eko_sent = sent_at(sessions, fed.ids[("eko", FIRST, "email")])
        fed.answers["first actions"] = post_actions(
            client,
            {"recipient_id": "ana", "action": "playlist_transferred", "at": "2024-09-30T02:00:00Z"},
            {"recipient_id": "bia", "action": "playlist_transferred", "at": "2024-09-28T10:00:00Z"},  # before hers
            {"recipient_id": "ed", "action": "refund_requested", "at": "2024-09-30T08:00:00Z"},  # not audience
            {"recipient_id": "eko", "action": "refund_requested", "at": eko_sent.isoformat()},  # at the send
            {"recipient_id": "dan", "action": "refund_requested", "at": "2024-10-01T00:00:00Z"},
        )
        fed.answers["ana again"] = post_actions(  # the same action again, later: its first time is kept
            client, {"recipient_id": "ana", "action": "playlist_transferred", "at": "2024-10-01T00:00:00Z"})

        # -- P7D: ana and bia have transferred, dan has unsubscribed, eko bounced: budi, carlos and siti remain ------
        settle(dispatcher, sessions, utc("2024-09-29T00:00"), utc("2024-10-22T00:00"))
        clock.now = utc("2024-10-22T00:00")
        fed.ids = delivery_ids(sessions)
        assert sorted(k[0] for k in fed.ids if k[1] == P7D) == ["budi", "carlos", "siti"]
        p7d_batch = [
            ours("b7-d", "delivered", "budi", P7D),
            ours("b7-o", "open", "budi", P7D),
            ours("b7-c", "click", "budi", P7D, url="https://support.tiktok.com/music-closing/#faq"),
            ours("c7-d", "delivered", "carlos", P7D),
            ours("c7-om", "open", "carlos", P7D, sg_machine_open=True),
        ]
        fed.answers["p7d"] = post_events(client, p7d_batch)
        fed.answers["first again"] = post_events(client, first_batch)  # SendGrid posts a batch again
        fed.answers["p7d actions"] = post_actions(
            client,
            {"recipient_id": "siti", "action": "refund_requested", "at": "2024-10-10T00:00:00Z"},  # 12 days on
            {"recipient_id": "budi", "action": "playlist_transferred", "at": "2024-10-21T05:00:00Z"},
            {"recipient_id": "budi", "action": "refund_requested", "at": "2024-10-21T06:00:00Z"},
            {"recipient_id": "dan", "action": "refund_requested", "at": "2024-10-02T00:00:00Z"},  # known already
            {"recipient_id": "dan", "action": "refund_requested", "at": "2024-10-03T00:00:00Z"},
        )

        # -- P1D: carlos and siti; then late actions, replays, concurrent batches, push opens -------------------------
        settle(dispatcher, sessions, utc("2024-10-22T00:00"), utc("2024-10-28T00:00"))
        clock.now = utc("2024-10-29T00:00")
        fed.ids = delivery_ids(sessions)
        assert sorted(k[0] for k in fed.ids if k[1] == P1D) == ["carlos", "siti"]
        p1d_batch = [
            ours("c1-d", "delivered", "carlos", P1D),
            ours("c1-o", "open", "carlos", P1D),
            ours("c1-c", "click", "carlos", P1D, url="https://music.tiktok.com/transfer"),
        ]
        fed.answers["p1d"] = post_events(client, p1d_batch)
        fed.answers["p7d again"] = post_events(client, p7d_batch)
        mixed = [*first_batch[:6], *p1d_batch, ours("c1-o2", "open", "carlos", P1D),
                 ours("c7-c", "click", "carlos", P7D, url="https://music.tiktok.com/refund?x=1"),
                 ours("b7-x", "spamreport", "budi", P7D)]
        fed.answers["mixed"] = post_events(client, mixed)
        fed.answers["late actions"] = post_actions(
            client,
            {"recipient_id": "carlos", "action": "playlist_transferred", "at": "2024-10-28T12:00:00Z"},  # late
            {"recipient_id": "bia", "action": "refund_requested", "at": "2024-10-28T12:00:00Z"},
            {"recipient_id": "siti", "action": "playlist_transferred", "at": "2024-10-27T12:00:00Z"},
        )
        opens = [opened(d) for d in (
            push("ana", FIRST), push("siti", P1D), push("siti", P1D), push("bia", FIRST), push("siti", P7D),
            fed.ids[("ana", FIRST, "email")], 999_999)]  # an email is no push; nor is an id nobody sent
        fed.answers["push opens"] = post_opens(client, *opens)
        forged = opened(push("dan", FIRST), open_token("another key entirely, 0123456789", push("dan", FIRST)))
        fed.answers["push opens again"] = post_opens(client, *opens[:2], forged, opened(push("dan", FIRST), "x" * 22),
                                                     opened(push("dan", FIRST)))
        # Overlapping batches at once, new to all of them (and each shared event twice within each): each event, and
        # each message's metric, is taken by one (on PostgreSQL the others wait on its keys and find them taken:
        # ON CONFLICT DO NOTHING).
        fed.answers["concurrent"] = []
        for round_ in range(3):
            shared = [ours(f"k{round_}-o", "open", "carlos", P1D),
                      ours(f"k{round_}-c", "click", "budi", P7D, url="https://music.tiktok.com/refund"),
                      ours(f"k{round_}-m", "open", "budi", FIRST, sg_machine_open=True),
                      ours(f"k{round_}-u", "unsubscribe", "carlos", P1D)]
            batches = [[*shared, ours(f"k{round_}-{n}", "open", "carlos", P7D,
                                      sg_machine_open=bool(n % 2)), *reversed(shared)] for n in range(3)]
            fed.answers["concurrent"].append(concurrently(url, "/webhooks/sendgrid", [signed(b) for b in batches]))
    return fed


# --- the expectation, counted row by row from the ledger here ------------------------------------------------------


def metrics_of_row(kind: str, detail: dict[str, Any] | None) -> list[str]:
    """What one stored event says of its message, as the issue defines the figures."""
    detail = detail or {}
    if kind == "delivered":
        return ["delivered"]
    if kind in ("bounced", "dropped"):
        return ["bounced"]
    if kind == "opened":
        return ["opened_machine" if detail.get("machine") is True else "opened"]
    if kind == "clicked":
        return ["clicked", f"click:{detail['link']}"]
    if kind in ("unsubscribed", "complained"):
        return [kind]
    return []


def expected_report(sessions: sessionmaker[Session], campaign: Campaign) -> dict[str, Any]:
    """The report as the ledger's rows say it should be: each figure a count of distinct messages (or people)."""
    with sessions() as s:
        groups = {g.id: g for g in s.scalars(select(SendGroup).where(SendGroup.campaign_id == campaign.id))}
        deliveries = {d.id: d for d in s.scalars(select(DeliveryRow).where(DeliveryRow.campaign_id == campaign.id))}
        events = s.execute(select(DeliveryEvent.delivery_id, DeliveryEvent.type, DeliveryEvent.detail)
                           .join(DeliveryRow, DeliveryRow.id == DeliveryEvent.delivery_id)
                           .where(DeliveryRow.campaign_id == campaign.id)).all()
        people = {r.seq: (r.country, r.timezone) for r in s.scalars(select(Recipient))}
        acts = s.execute(select(RecipientAction.recipient_seq, RecipientAction.action, RecipientAction.at)).all()

    def key(d: DeliveryRow) -> Key:
        return groups[d.group_id].send_key, d.locale or "-", d.channel

    def in_audience(seq: int) -> bool:
        return not campaign.countries or people[seq][0] in campaign.countries

    hits: set[tuple[int, str]] = {(d, m) for d, kind, detail in events for m in metrics_of_row(kind, detail)}
    # Conversions: the last message sent to that person about a deadline the action is the skip_if of, sent at
    # or before the action and less than WINDOW before it; late when those deadlines had passed in its zone.
    for seq, action, at in acts:
        goals = {d.id: d.at for d in campaign.deadlines if d.skip_if == action}
        if not goals or not in_audience(seq):
            continue
        credited = [d for d in deliveries.values() if d.recipient_seq == seq and d.state == "sent"
                    and d.sent_at is not None and d.sent_at <= at and at - d.sent_at < WINDOW
                    and set(groups[d.group_id].deadlines) & set(goals)]
        if credited:
            last = max(credited, key=lambda d: (d.sent_at, d.id))
            group = groups[last.group_id]
            late = all(at > goals[g].replace(tzinfo=ZoneInfo(group.timezone)) for g in group.deadlines if g in goals)
            hits.add((last.id, "converted_late" if late else "converted"))

    sent = Counter(key(d) for d in deliveries.values() if d.state == "sent")
    counted: dict[Key, Counter[str]] = defaultdict(Counter)
    for d, metric in hits:
        counted[key(deliveries[d])][metric] += 1
    first: dict[str, datetime] = {}
    for g in groups.values():
        first[g.send_key] = min(g.send_at, first.get(g.send_key, g.send_at))
    rows = []
    for k in sorted(set(sent) | set(counted), key=lambda k: (first[k[0]], k)):
        row: dict[str, Any] = {"send": k[0], "locale": k[1], "channel": k[2], "sent": sent[k]}
        row |= {m: counted[k][m] for m in METRICS}
        row["clicks_by_link"] = dict(sorted((m.removeprefix("click:"), n) for m, n in counted[k].items()
                                            if m.startswith("click:")))
        rows.append(row)
    links: Counter[str] = Counter()
    for row in rows:
        links.update(row["clicks_by_link"])

    audience = sum(in_audience(seq) for seq in people)
    funnels = []
    for deadline in campaign.deadlines:
        if not deadline.skip_if:
            continue
        acted: Counter[date] = Counter()
        late: Counter[date] = Counter()
        for seq, action, at in acts:
            if action == deadline.skip_if and in_audience(seq):
                acted[at.astimezone(UTC).date()] += 1
                late[at.astimezone(UTC).date()] += at > deadline.at.replace(tzinfo=ZoneInfo(people[seq][1]))
        days, total = [], 0
        for day in sorted(acted):
            total += acted[day]
            days.append({"day": day.isoformat(), "acted": acted[day], "total": total, "late": late[day]})
        waves: dict[str, datetime] = {}
        for g in groups.values():
            for item in g.send_key.split("+"):
                deadline_id, wave = item.split("@")
                if deadline_id == deadline.id:
                    waves[wave] = min(g.send_at, waves.get(wave, g.send_at))
        funnels.append({
            "deadline": deadline.id, "label": deadline.label, "action": deadline.skip_if,
            "deadline_at": deadline.at.isoformat(), "audience": audience, "acted": total,
            "acted_before_deadline": total - sum(late.values()), "acted_after_deadline": sum(late.values()),
            "not_acted": audience - total, "days": days,
            "waves": [{"wave": w, "first_send_at": at.isoformat()} for w, at in sorted(waves.items(),
                                                                                          key=lambda kv: kv[1])],
            "holdout": None})  # a service campaign holds nobody out
    return {"campaign": campaign.id, "name": campaign.name,
            "totals": {m: sum(r[m] for r in rows) for m in ("sent", *METRICS)},
            "clicks_by_link": dict(sorted(links.items(), key=lambda kv: (-kv[1], kv[0]))),
            "rows": rows, "funnels": funnels, "attribution_window_days": WINDOW.days}


@pytest.fixture
def campaign() -> Campaign:
    return parse_campaign(CAMPAIGN_FILE.read_text(encoding="utf-8"), source=str(CAMPAIGN_FILE))


def row_of(report: dict[str, Any], send: str, locale: str, channel: str) -> dict[str, Any]:
    found = [r for r in report["rows"] if (r["send"], r["locale"], r["channel"]) == (send, locale, channel)]
    assert len(found) == 1, (send, locale, channel, report["rows"])
    return dict(found[0])


def counts(sessions: sessionmaker[Session]) -> tuple[list[tuple[Any, ...]], ...]:
    """The count tables as they stand (the tallies without their ids)."""
    with sessions() as s:
        return (sorted(s.execute(select(ResultTally.campaign_id, ResultTally.group_id, ResultTally.locale,
                                        ResultTally.channel, ResultTally.metric, ResultTally.n)).all()),
                sorted(s.execute(select(ResultFirst.campaign_id, ResultFirst.delivery_id, ResultFirst.metric))
                       .all()),
                sorted(s.execute(select(ActionDay.campaign_id, ActionDay.deadline_id, ActionDay.day, ActionDay.acted,
                                        ActionDay.late)).all()))


# --- the tests ------------------------------------------------------------------------------------------------------


def test_every_figure_of_the_report_is_a_row_by_row_count_of_the_ledger_replays_and_concurrent_batches_included(
        fed: Fed, campaign: Campaign) -> None:
    report = fed.report()

    assert report == expected_report(fed.sessions, campaign)

    # A few figures known by hand, so that the comparison above cannot pass with both sides empty or doubled.
    first_id = row_of(report, FIRST, "id", "email")  # ana, budi, eko
    assert {m: first_id[m] for m in ("sent", "delivered", "bounced", "opened", "opened_machine", "clicked",
                                     "unsubscribed", "complained", "converted", "converted_late")} == {
        "sent": 3, "delivered": 2, "bounced": 1, "opened": 2, "opened_machine": 2, "clicked": 2,
        "unsubscribed": 1, "complained": 0, "converted": 1, "converted_late": 0}  # eko converted at his send
    assert first_id["clicks_by_link"] == {"other": 1, "refund": 1, "transfer": 1}
    assert row_of(report, FIRST, "en", "email")["unsubscribed"] == 1  # SendGrid's and the one-click: one message
    assert row_of(report, FIRST, "en", "email")["clicks_by_link"] == {"unsubscribe": 1}
    assert row_of(report, FIRST, "pt-BR", "email")["complained"] == 1
    assert row_of(report, FIRST, "pt-BR", "push")["opened"] == 1  # bia's push, opened in the app
    carlos_p1d = row_of(report, P1D, "es-MX", "email")
    assert (carlos_p1d["opened"], carlos_p1d["opened_machine"], carlos_p1d["unsubscribed"],
            carlos_p1d["converted_late"]) == (1, 0, 1, 1)
    assert row_of(report, P7D, "es-MX", "email")["opened_machine"] == 1  # and a reader's open
    assert row_of(report, P7D, "es-MX", "email")["opened"] == 1
    # ana (first send), eko (at his send), dan (first send), budi (P7D), siti (P1D push); carlos late (P1D)
    assert (report["totals"]["converted"], report["totals"]["converted_late"]) == (5, 1)
    assert report["totals"]["sent"] == 15
    assert report["clicks_by_link"] == {"refund": 3, "transfer": 2, "help": 1, "other": 1, "unsubscribe": 1}
    playlist, refund = report["funnels"]
    assert (playlist["audience"], playlist["acted"], playlist["acted_after_deadline"]) == (7, 5, 1)
    assert [(d["day"], d["acted"], d["total"], d["late"]) for d in playlist["days"]] == [
        ("2024-09-28", 1, 1, 0), ("2024-09-30", 1, 2, 0), ("2024-10-21", 1, 3, 0), ("2024-10-27", 1, 4, 0),
        ("2024-10-28", 1, 5, 1)]
    assert [w["wave"] for w in playlist["waves"]] == ["P30D", "P7D", "P1D"]
    assert (refund["acted"], refund["not_acted"]) == (5, 2)  # Ed's is not counted: he is not in the audience

    # What notifier serve answered: replays added nothing, a known action or push open was not recorded twice.
    answers = fed.answers
    assert answers["first"]["unmatched"] == 3
    assert answers["first again"] == {"received": 27, "new": 0, "duplicates": 27, "unmatched": 0, "suppressed": 0,
                                      "types": {}}
    assert answers["p7d again"]["new"] == 0
    assert (answers["mixed"]["new"], answers["mixed"]["duplicates"]) == (3, 9)
    assert answers["first actions"] == {"recorded": 5, "rejected": []}
    assert answers["ana again"] == {"recorded": 0, "rejected": []}
    assert answers["p7d actions"]["recorded"] == 3
    assert answers["push opens"]["recorded"] == 4
    assert [r["index"] for r in answers["push opens"]["rejected"]] == [5, 6]
    assert answers["push opens again"]["recorded"] == 1  # dan's only, with the token of his push
    assert [(r["index"], r["reason"]) for r in answers["push opens again"]["rejected"]] == [
        (i, "no push of ours has this delivery_id and open_token") for i in (2, 3)]  # forged: another key, none
    for round_ in answers["concurrent"]:
        assert sum(a["new"] for a in round_) == 4 + 3  # the shared events once, each batch's own once


def test_rebuild_counts_from_the_stored_events_and_actions_exactly_what_was_counted_as_they_arrived(
        fed: Fed, campaign: Campaign) -> None:
    live, report = counts(fed.sessions), fed.report()
    assert live[0] and live[1] and live[2]

    with transaction(fed.sessions) as s:
        results.rebuild(s)

    assert counts(fed.sessions) == live
    assert fed.report() == report == expected_report(fed.sessions, campaign)


def test_migration_0015_down_to_0014_and_up_again_keeps_the_counts(
        fed: Fed, campaign: Campaign, engine: Engine) -> None:
    live, report = counts(fed.sessions), fed.report()

    downgrade(engine, "0014")
    try:
        assert not {"result_tallies", "result_firsts", "action_days"} & set(inspect(engine).get_table_names())
    finally:
        upgrade(engine)  # 0015 counts the stored events and actions once

    assert counts(fed.sessions) == live
    assert fed.report() == report == expected_report(fed.sessions, campaign)


def test_concurrent_action_batches_in_other_orders_are_each_taken_whole_and_counted_once(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, campaign: Campaign) -> None:
    """Two POST /actions at once, transfers and refunds in other orders, two of the same actions in both in other
    orders, then two POST /opens with a push open in both: every action of a day adds to the same row of its
    deadline's funnel, and each conversion to its send's tally. Each batch writes its actions in (recipient,
    action) order and those rows in one order at its end (on PostgreSQL, rows written as each action came
    deadlocked: one batch of the pair answered 503)."""
    people = [f"p{i:02}" for i in range(6 * 6)]
    for who in people:
        add_recipient(who, tokens=[f"{who}-phone"])  # Jakarta, by email and push
    schedule_campaign(SCHEDULED)
    settle(dispatcher, sessions, SCHEDULED, utc("2024-09-29T00:00"))
    ids = delivery_ids(sessions)
    app = create_app(Settings(api_token=TOKEN, **TEST_SECRETS), sessions, clock=lambda: utc("2024-10-01T12:00"))

    def act(who: str, action: str, hour: int) -> dict[str, Any]:
        return {"recipient_id": who, "action": action, "at": f"2024-10-01T{hour:02}:00:00Z"}

    def opened_by(who: str) -> dict[str, Any]:
        return opened(ids[(who, FIRST, "push")])

    def opens(items: Sequence[dict[str, Any]]) -> Request:
        return json.dumps({"opens": list(items)}).encode(), {"Content-Type": "application/json"}

    answers = []
    with running(app) as url:
        for round_ in range(6):
            a, b, c, d, x, e = people[6 * round_:6 * round_ + 6]
            # x's refund and e's open are in both, in the same order relative to each other
            one = [act(a, "playlist_transferred", 1), act(x, "refund_requested", 2), act(b, "refund_requested", 3),
                   act(e, "refund_requested", 7)]
            two = [act(e, "refund_requested", 7), act(c, "refund_requested", 4), act(x, "refund_requested", 5),
                   act(d, "playlist_transferred", 6)]  # x and e in other orders: sorted before they are written
            answers.append(concurrently(url, "/actions", [with_token(one), with_token(two)]))
            answers.append(concurrently(url, "/opens", [opens([opened_by(e), opened_by(a)]),
                                                        opens([opened_by(b), opened_by(e)])]))
    fed = Fed(sessions, app, ids)
    report = fed.report()

    assert report == expected_report(sessions, campaign)
    assert [sum(a["recorded"] for a in pair) for pair in answers] == [6, 3] * 6  # x's and e's refunds, e's open once
    assert [(f["acted"], f["days"]) for f in report["funnels"]] == [
        (12, [{"day": "2024-10-01", "acted": 12, "total": 12, "late": 0}]),
        (24, [{"day": "2024-10-01", "acted": 24, "total": 24, "late": 0}])]
    assert report["totals"]["converted"] == 6 * 6  # everyone of each round (on their push, sent last)
    assert report["totals"]["opened"] == 18
