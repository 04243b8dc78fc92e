"""SendGrid's signed Event Webhook on SQLite and PostgreSQL: the signature and its age, the size cap, a malformed
batch refused whole, each SendGrid word in our vocabulary and its effect on the suppression list, replays, and a
ledger that fails answering 503 so SendGrid posts the batch again."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from notifier import feedback
from notifier.channels import sendgrid_events
from notifier.channels.sendgrid_events import (
    BOUNCE_TYPES,
    DROP_REASONS,
    EVENT_TYPES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)
from notifier.config import Settings
from notifier.errors import RequestRefused
from notifier.events import EventType, RejectReason
from notifier.ledger import queries, suppressions
from notifier.ledger.db import make_engine, session_factory
from notifier.ledger.models import DeliveryEvent, Suppression
from notifier.web import create_app
from notifier.wiring import build_dispatcher
from tests.conftest import PG_URL, SharedLedger
from tests.ledger_views import the_row

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 10:00 WIB, the merged first send
NOW = datetime(2024, 9, 29, 8, 0, tzinfo=UTC)  # the app's clock: when events are applied
EVENT_AT = 1727571600  # 2024-09-29 01:00 UTC, when SendGrid says things happened
CAMPAIGN_ID = "tiktok-music-shutdown"
ANA = "ana@example.com"

KEY = ec.generate_private_key(ec.SECP256R1())  # SendGrid's signing key, as far as these tests know
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid's settings page shows it: base64 DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signature_headers(body: bytes, *, key: ec.EllipticCurvePrivateKey = KEY,
                      timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json"}


def encoded(events: list[dict[str, Any]] | bytes) -> bytes:
    return events if isinstance(events, bytes) else json.dumps(events).encode()


def post(client: TestClient, events: list[dict[str, Any]] | bytes, **sign: Any) -> httpx.Response:
    """POST a batch signed by SendGrid's key (or as ``sign`` says)."""
    body = encoded(events)
    return client.post("/webhooks/sendgrid", content=body, headers=signature_headers(body, **sign))


def sg(event_id: str, word: str, *, email: str | None = ANA, at: int = EVENT_AT, **fields: Any) -> dict[str, Any]:
    """One SendGrid event as it posts it (custom args at the top level)."""
    item: dict[str, Any] = {"sg_event_id": event_id, "event": word, "timestamp": at, **fields}
    if email is not None:
        item["email"] = email
    return item


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(provider events, suppression entries) in the ledger."""
    with sessions() as s:
        return (s.scalar(select(func.count()).select_from(DeliveryEvent).where(DeliveryEvent.provider.is_not(None)))
                or 0, s.scalar(select(func.count()).select_from(Suppression)) or 0)


def provider_event(sessions: sessionmaker[Session], event_id: str) -> DeliveryEvent:
    with sessions() as s:
        row = s.scalar(select(DeliveryEvent).where(DeliveryEvent.provider == "sendgrid",
                                                   DeliveryEvent.provider_event_id == event_id))
    assert row is not None, event_id
    return row


def listed(sessions: sessionmaker[Session], *values: tuple[str, str]) -> set[tuple[str, str, str, str]]:
    """(kind, value, scope, reason) of the suppression entries for ``values``."""
    with sessions() as s:
        return {(kind, value, e.scope, e.reason) for kind, value in values for e in suppressions.find(s, kind, value)}


@pytest.fixture
def settings() -> Settings:
    return Settings(sendgrid_webhook_key=public_b64(KEY))


@pytest.fixture
def client(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(settings, sessions, clock=lambda: NOW)) as c:
        yield c


@pytest.fixture
def delivery(sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
             tmp_path: Path) -> str:
    """Ana's first email, sent through the outbox: its id as SendGrid gives it back in custom args."""
    add_recipient("ana", timezone="Asia/Jakarta", country="ID")
    schedule_campaign(SCHEDULED)
    dispatcher = build_dispatcher(Settings(outbox_dir=tmp_path / "outbox"), sessions, simulated_clock=True)
    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 1}
    return str(the_row(sessions, "ana").id)


def ours(delivery_id: str) -> dict[str, str]:
    return {"delivery_id": delivery_id, "campaign_id": CAMPAIGN_ID}


# --- a signed batch, once -----------------------------------------------------------------------------


def test_a_correctly_signed_batch_is_applied_and_answered_in_counts(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    batch = [sg("e1", "processed", **ours(delivery)), sg("e2", "delivered", **ours(delivery)),
             sg("e3", "open", **ours(delivery)), sg("e4", "bounce", email="gone@example.com", type="bounce")]

    response = post(client, batch)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 4, "new": 4, "duplicates": 0, "unmatched": 1, "suppressed": 1,
                               "types": {"queued": 1, "delivered": 1, "opened": 1, "bounced": 1}}
    assert counts(sessions) == (4, 1)


def test_the_same_batch_posted_again_adds_nothing(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    batch = [sg("e1", "delivered", **ours(delivery)), sg("e2", "bounce", type="bounce", **ours(delivery))]
    assert post(client, batch).json()["new"] == 2
    before = counts(sessions)

    again = post(client, batch)

    assert again.status_code == 200
    assert again.json() == {"received": 2, "new": 0, "duplicates": 2, "unmatched": 0, "suppressed": 0, "types": {}}
    assert counts(sessions) == before


def test_an_event_repeated_inside_one_batch_is_kept_once(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    response = post(client, [sg("e1", "delivered", **ours(delivery)), sg("e1", "delivered", **ours(delivery))])

    assert (response.json()["new"], response.json()["duplicates"]) == (1, 1)
    assert counts(sessions) == (1, 0)


# --- opens and clicks, for the results ---------------------------------------------------------------


def test_an_open_a_machine_made_is_kept_apart_from_a_readers_open(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    # Apple Mail Privacy Protection fetches every image of a message on delivery: SendGrid marks those opens.
    batch = [sg("o1", "open", sg_machine_open=True, **ours(delivery)),
             sg("o2", "open", sg_machine_open=False, **ours(delivery)),
             sg("o3", "open", sg_machine_open="true", **ours(delivery)),  # not a boolean: not SendGrid's mark
             sg("d1", "delivered", **ours(delivery))]

    assert post(client, batch).json()["new"] == 4

    assert [provider_event(sessions, e).detail.get("machine") for e in ("o1", "o2", "o3", "d1")] == [
        True, False, False, None]


def test_a_click_names_the_campaign_link_it_followed_and_keeps_no_url(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    token = "A" * 32
    urls = {"c1": "https://music.tiktok.com/refund?utm_source=sendgrid&utm_campaign=x",
            "c2": "HTTPS://Music.TikTok.com/transfer/",
            "c3": f"https://notifier.example.com/u/{token}",
            "c4": "https://music.tiktok.com/refund-elsewhere",
            "c5": None}
    batch = [sg(e, "click", **ours(delivery), **({"url": url} if url else {})) for e, url in urls.items()]
    batch.append(sg("c6", "click", url="https://music.tiktok.com/refund"))  # not one of our messages

    assert post(client, batch).json()["new"] == 6

    names = {e: provider_event(sessions, e).detail["link"] for e in urls}
    assert names == {"c1": "refund", "c2": "transfer", "c3": "unsubscribe", "c4": "other", "c5": "other"}
    assert provider_event(sessions, "c6").detail["link"] == "other"  # no campaign to name its links
    assert not any(token in json.dumps(provider_event(sessions, e).detail) or "utm_source" in json.dumps(
        provider_event(sessions, e).detail) for e in urls)


def test_link_names_ignore_the_query_the_fragment_and_a_final_slash() -> None:
    links = {feedback.link_address(u): n for n, u in {"help": "https://support.tiktok.com/music-closing"}.items()}
    assert feedback.link_name("https://SUPPORT.tiktok.com/music-closing/#top", links) == "help"
    assert feedback.link_name("https://support.tiktok.com/music-closing/more", links) == "other"
    assert feedback.link_name("http://support.tiktok.com/music-closing", links) == "other"  # another scheme
    assert feedback.link_name("", links) == "other"


# --- who signed it, and when ------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_a_batch_without_its_signature_headers_is_refused_with_401(
        client: TestClient, sessions: sessionmaker[Session], missing: str) -> None:
    body = encoded([sg("e1", "bounce", type="bounce")])
    headers = {k: v for k, v in signature_headers(body).items() if k != missing}

    response = client.post("/webhooks/sendgrid", content=body, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": f"missing {missing} header"}
    assert counts(sessions) == (0, 0)


def test_a_tampered_body_is_refused_with_403(client: TestClient, sessions: sessionmaker[Session]) -> None:
    body = encoded([sg("e1", "delivered")])
    tampered = body.replace(b"delivered", b"spamreport")

    response = client.post("/webhooks/sendgrid", content=tampered, headers=signature_headers(body))

    assert response.status_code == 403
    assert response.json() == {"error": "the signature does not match the body and timestamp"}
    assert counts(sessions) == (0, 0)


def test_a_batch_signed_with_another_key_is_refused_with_403(
        client: TestClient, sessions: sessionmaker[Session]) -> None:
    response = post(client, [sg("e1", "spamreport")], key=OTHER_KEY)

    assert response.status_code == 403
    assert counts(sessions) == (0, 0)


@pytest.mark.parametrize("signature", ["not base64!", base64.b64encode(b"not a DER signature").decode(), "=" * 8])
def test_a_garbled_signature_is_refused_with_403(client: TestClient, signature: str) -> None:
    body = encoded([sg("e1", "delivered")])
    headers = {**signature_headers(body), SIGNATURE_HEADER: signature}

    assert client.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 403


@pytest.mark.parametrize("timestamp", [b"yesterday", b"-1", b"1e9", b"1" * 13, "١٧٢٧٥٧١٦٠٠".encode()],
                         ids=["word", "negative", "float", "too-long", "arabic-digits"])
def test_a_timestamp_that_is_not_a_unix_time_is_refused_with_403(client: TestClient, timestamp: bytes) -> None:
    body = encoded([sg("e1", "delivered")])
    headers: dict[str, str | bytes] = {**signature_headers(body), TIMESTAMP_HEADER: timestamp}

    response = client.post("/webhooks/sendgrid", content=body, headers=headers)

    assert response.status_code == 403


@pytest.mark.parametrize("offset", [-601, 601], ids=["older", "from-the-future"])
def test_a_batch_signed_beyond_the_tolerance_is_refused_with_403_as_a_replay(
        client: TestClient, sessions: sessionmaker[Session], offset: int) -> None:
    response = post(client, [sg("e1", "spamreport")], timestamp=int(time.time()) + offset)

    assert response.status_code == 403
    assert "NOTIFIER_WEBHOOK_TOLERANCE_SECONDS" in response.json()["error"]
    assert counts(sessions) == (0, 0)


def test_a_batch_signed_just_inside_the_tolerance_is_accepted(client: TestClient) -> None:
    assert post(client, [sg("e1", "delivered")], timestamp=int(time.time()) - 590).status_code == 200


def test_with_tolerance_zero_an_old_archived_batch_is_accepted(
        settings: Settings, sessions: sessionmaker[Session]) -> None:
    app = create_app(settings.with_(webhook_tolerance_seconds=0), sessions, clock=lambda: NOW)
    with TestClient(app) as client:
        response = post(client, [sg("e1", "bounce", type="bounce")], timestamp=EVENT_AT)

    assert response.status_code == 200, response.text
    assert counts(sessions) == (1, 1)


def test_without_a_verification_key_the_webhook_is_off_with_503(sessions: sessionmaker[Session]) -> None:
    with TestClient(create_app(Settings(), sessions)) as client:
        response = post(client, [sg("e1", "delivered")])

    assert response.status_code == 503
    assert "NOTIFIER_SENDGRID_WEBHOOK_KEY" in response.json()["error"]


def test_a_malformed_body_without_a_signature_is_refused_for_the_signature_first(client: TestClient) -> None:
    response = client.post("/webhooks/sendgrid", content=b"{not json")

    assert response.status_code == 401


# --- the size cap -------------------------------------------------------------------------------------


def small_cap(settings: Settings, sessions: sessionmaker[Session], limit: int = 1000) -> TestClient:
    return TestClient(create_app(settings.with_(webhook_max_bytes=limit), sessions, clock=lambda: NOW))


def test_a_body_over_the_cap_with_its_content_length_is_refused_with_413(
        settings: Settings, sessions: sessionmaker[Session]) -> None:
    batch = [sg(f"e{i}", "delivered") for i in range(30)]
    with small_cap(settings, sessions) as client:
        response = post(client, batch)  # signed and well-formed: the size alone refuses it

    assert len(encoded(batch)) > 1000
    assert response.status_code == 413
    assert response.json() == {"error": f"the body is {len(encoded(batch))} bytes; at most 1000"}
    assert counts(sessions) == (0, 0)


def test_a_streamed_body_over_the_cap_is_refused_with_413(
        settings: Settings, sessions: sessionmaker[Session]) -> None:
    body = encoded([sg(f"e{i}", "delivered") for i in range(30)])
    headers = signature_headers(body)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start:start + 100]

    with small_cap(settings, sessions) as client:
        response = client.post("/webhooks/sendgrid", content=chunks(), headers=headers)

    assert response.status_code == 413
    assert response.json() == {"error": "the body is over 1000 bytes"}
    assert counts(sessions) == (0, 0)


def test_a_streamed_body_stops_being_read_once_it_passes_the_cap(
        settings: Settings, sessions: sessionmaker[Session]) -> None:
    app = create_app(settings.with_(webhook_max_bytes=1000), sessions)
    received: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:  # an endless client, 100 bytes at a time, with no Content-Length
        received.append(100)
        return {"type": "http.request", "body": b" " * 100, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/webhooks/sendgrid", "raw_path": b"/webhooks/sendgrid", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80), "state": {}}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=10))

    assert sent[0]["status"] == 413
    assert sum(received) <= 1100


# --- a malformed batch changes nothing ----------------------------------------------------------------


@pytest.mark.parametrize(("body", "error"), [
    (b"{not json", "the body is not JSON"),
    (b'{"sg_event_id": "e1", "event": "bounce"}', "the body is not a JSON array of events"),
    (json.dumps([sg("e0", "bounce", type="bounce"), "bounce"]).encode(), "event 1: not a JSON object"),
    (json.dumps([sg("e0", "bounce", type="bounce"), {"event": "bounce", "timestamp": EVENT_AT}]).encode(),
     "event 1: sg_event_id: expected a string of 1 to 128 characters"),
    (json.dumps([sg("e0", "bounce", type="bounce"), sg("x" * 129, "bounce")]).encode(),
     "event 1: sg_event_id: expected a string of 1 to 128 characters"),
    (json.dumps([sg("e0", "bounce", type="bounce"), sg("e1", "")]).encode(), "event 1: event: expected a string"),
    (json.dumps([sg("e0", "bounce", type="bounce"), sg("e1", "spamreport", at="yesterday")]).encode(),  # type: ignore[arg-type]
     "event 1: timestamp: expected a Unix time"),
    (json.dumps([sg("e0", "bounce", type="bounce"), sg("e1", "spamreport", at=-5)]).encode(),
     "event 1: timestamp: expected a Unix time"),
    (json.dumps([sg("e0", "bounce", type="bounce"), {**sg("e1", "spamreport"), "timestamp": True}]).encode(),
     "event 1: timestamp: expected a Unix time"),
    (json.dumps([sg("e0", "bounce", type="bounce"), {**sg("e1", "spamreport"), "email": ["a@b"]}]).encode(),
     "event 1: email: expected a string"),
    (b"[" * 100_000 + b"]" * 100_000, "the body's JSON is nested too deeply"),
    (json.dumps([sg("e0", "bounce", type="bounce")]).encode()[:-2] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000
     + b"}]", "the body's JSON is nested too deeply"),
], ids=["not-json", "not-an-array", "not-an-object", "no-sg_event_id", "long-sg_event_id",
        "empty-event", "timestamp-string", "timestamp-negative", "timestamp-bool", "email-list", "nested-100000",
        "field-nested-100000"])
def test_a_malformed_batch_is_refused_whole_with_400_naming_the_event_and_field(
        client: TestClient, sessions: sessionmaker[Session], body: bytes, error: str) -> None:
    before = counts(sessions)

    response = post(client, body)

    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert counts(sessions) == before == (0, 0)


def test_fields_nested_as_deep_as_json_allows_are_read_as_no_value_not_a_crash(
        client: TestClient, sessions: sessionmaker[Session]) -> None:
    deep = json.loads("[" * 800 + "]" * 800)  # parses, but would exhaust the stack if turned into text

    response = post(client, [sg("e0", "bounce", type=deep, status=deep), sg("e1", "dropped", reason=deep)])

    assert response.status_code == 200, response.text
    assert response.json()["types"] == {"bounced": 1, "dropped": 1}
    assert provider_event(sessions, "e0").detail == {"description": "bounce; status=; type=",
                                                     "reject_reason": RejectReason.OTHER.value}
    assert counts(sessions) == (2, 0)  # a bounce of no known type suppresses nothing


def test_a_batch_whose_later_event_is_bad_applies_none_of_its_valid_first_events(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    valid = [sg(f"e{i}", "bounce", email=f"u{i}@example.com", type="bounce") for i in range(50)]
    valid.append(sg("e50", "spamreport", **ours(delivery)))
    bad = {"sg_event_id": "e51", "event": "delivered", "timestamp": "2024-09-29T01:00:00Z"}

    response = post(client, [*valid, bad])

    assert response.status_code == 400
    assert response.json() == {"error": "event 51: timestamp: expected a Unix time"}
    assert counts(sessions) == (0, 0)
    assert post(client, valid).json()["new"] == 51  # the same events, without the bad one, go through


# --- each SendGrid word, and what it does to the suppression list ------------------------------------

ALL = "all"
MARKETING = "marketing"


@pytest.mark.parametrize(("word", "fields", "type_", "reason", "entries"), [
    ("bounce", {"type": "bounce"}, "bounced", "invalid", {("email", ANA, ALL, "bounced")}),
    ("bounce", {"type": "blocked"}, "bounced", "blocked", set()),
    ("dropped", {"reason": "Bounced Address"}, "dropped", "bounced", {("email", ANA, ALL, "dropped: bounced address")}),
    ("dropped", {"reason": "Invalid"}, "dropped", "invalid", {("email", ANA, ALL, "dropped: invalid address")}),
    ("dropped", {"reason": "Spam Reporting Address"}, "dropped", "spam", {("email", ANA, ALL, "dropped: spam report")}),
    ("dropped", {"reason": "Unsubscribed Address"}, "dropped", "unsubscribed",
     {("email", ANA, MARKETING, "unsubscribed"), ("recipient", "ana", MARKETING, "unsubscribed")}),
    ("dropped", {"reason": "Recipient List over Package Quota"}, "dropped", "other", set()),
    ("spamreport", {}, "complained", None, {("email", ANA, ALL, "complained")}),
    ("unsubscribe", {}, "unsubscribed", None,
     {("email", ANA, MARKETING, "unsubscribed"), ("recipient", "ana", MARKETING, "unsubscribed")}),
    ("group_unsubscribe", {"asm_group_id": 42}, "unsubscribed", None,
     {("email", ANA, MARKETING, "unsubscribed"), ("recipient", "ana", MARKETING, "unsubscribed")}),
    ("delivered", {"response": "250 OK"}, "delivered", None, set()),
    ("open", {"useragent": "Mozilla/5.0"}, "opened", None, set()),
    ("click", {"url": "https://music.tiktok.com/refund"}, "clicked", None, set()),
    ("deferred", {"attempt": "2"}, "deferred", None, set()),
    ("processed", {}, "queued", None, set()),
])
def test_an_event_for_our_delivery_is_kept_with_its_ids_and_acts_on_the_suppression_list_by_the_table(
        client: TestClient, sessions: sessionmaker[Session], delivery: str, word: str, fields: dict[str, Any],
        type_: str, reason: str | None, entries: set[tuple[str, str, str, str]]) -> None:
    response = post(client, [sg("sg-1", word, **fields, **ours(delivery))])

    assert response.status_code == 200, response.text
    row = provider_event(sessions, "sg-1")
    assert (row.provider, row.provider_event_id, row.delivery_id, row.type) == (
        "sendgrid", "sg-1", int(delivery), type_)
    assert row.at == datetime.fromtimestamp(EVENT_AT, UTC)
    assert row.detail is not None and row.detail.get("reject_reason") == reason
    assert listed(sessions, ("email", ANA), ("recipient", "ana")) == entries
    assert response.json()["suppressed"] == len(entries)


def test_a_hard_bounce_puts_the_address_on_the_list_for_every_campaign_from_sendgrid(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    post(client, [sg("sg-1", "bounce", email=" Ana@Example.COM ", type="bounce", **ours(delivery))])

    with sessions() as s:
        [entry] = suppressions.find(s, "email", ANA)  # the address as we would send to it
    assert (entry.kind, entry.scope, entry.reason, entry.source, entry.campaign_id, entry.created_at) == (
        "email", "all", "bounced", "sendgrid", CAMPAIGN_ID, NOW)
    assert entry.digest == suppressions.digest("email", ANA)


def test_an_unknown_event_word_is_kept_as_unknown_with_its_raw_event_and_no_address(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    event = sg("sg-1", "machine_opened", note="opened by a scanner for ana@example.com", **ours(delivery))

    response = post(client, [event])

    assert response.json()["types"] == {"unknown": 1}
    row = provider_event(sessions, "sg-1")
    assert (row.type, row.delivery_id) == ("unknown", int(delivery))
    assert row.detail is not None
    raw = row.detail["raw"]
    assert (raw["event"], raw["sg_event_id"], raw["delivery_id"]) == ("machine_opened", "sg-1", delivery)
    assert "email" not in raw
    assert "ana@" not in json.dumps(row.detail) and "example.com" not in json.dumps(row.detail)
    assert counts(sessions) == (1, 0)


def test_an_event_without_our_ids_still_suppresses_the_address_and_is_kept_without_a_delivery(
        client: TestClient, sessions: sessionmaker[Session]) -> None:
    response = post(client, [sg("sg-1", "bounce", email="stranger@example.com", type="bounce")])

    assert response.json()["unmatched"] == 1
    row = provider_event(sessions, "sg-1")
    assert (row.delivery_id, row.type) == (None, "bounced")
    assert listed(sessions, ("email", "stranger@example.com")) == {
        ("email", "stranger@example.com", "all", "bounced")}


@pytest.mark.parametrize("ids", [
    {"delivery_id": "987654321", "campaign_id": CAMPAIGN_ID},  # an id that is not (or no longer) in the ledger
    {"delivery_id": "{delivery}", "campaign_id": "another-campaign"},  # our id with another campaign's
    {"delivery_id": "not-a-number"},
    {"delivery_id": "1" * 19},
], ids=["unknown-id", "other-campaign", "not-digits", "too-long"])
def test_an_event_whose_ids_are_not_ours_is_kept_without_a_delivery(
        client: TestClient, sessions: sessionmaker[Session], delivery: str, ids: dict[str, str]) -> None:
    ids = {k: v.format(delivery=delivery) for k, v in ids.items()}

    response = post(client, [sg("sg-1", "spamreport", **ids)])

    assert response.status_code == 200
    assert response.json()["unmatched"] == 1
    assert provider_event(sessions, "sg-1").delivery_id is None
    assert listed(sessions, ("email", ANA)) == {("email", ANA, "all", "complained")}


def test_an_unsubscribe_without_our_ids_opts_out_the_address_only(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    post(client, [sg("sg-1", "unsubscribe")])

    assert listed(sessions, ("email", ANA), ("recipient", "ana")) == {("email", ANA, "marketing", "unsubscribed")}


def test_the_stored_detail_of_a_bounce_whose_reason_quotes_the_address_does_not_contain_it(
        client: TestClient, sessions: sessionmaker[Session], delivery: str) -> None:
    bounce = sg("sg-1", "bounce", type="bounce", status="5.1.1", bounce_classification="Invalid Address",
                reason="550 5.1.1 <ana@example.com>: Recipient address rejected: User unknown (ana@example.com)",
                **ours(delivery))

    post(client, [bounce])

    detail = provider_event(sessions, "sg-1").detail
    assert detail is not None
    stored = json.dumps(detail)
    assert "ana@example.com" not in stored and "ana@" not in stored
    assert "550 5.1.1 <address> Recipient address rejected" in detail["description"]
    assert "status=5.1.1" in detail["description"] and "bounce_classification=Invalid Address" in detail[
        "description"]


# --- the mapping tables -------------------------------------------------------------------------------


def parsed_one(item: dict[str, Any]) -> Any:
    [one] = sendgrid_events.parse(json.dumps([item]).encode())
    return one


@pytest.mark.parametrize(("word", "expected"), [
    ("processed", EventType.QUEUED), ("deferred", EventType.DEFERRED), ("delivered", EventType.DELIVERED),
    ("bounce", EventType.BOUNCED), ("dropped", EventType.DROPPED), ("spamreport", EventType.COMPLAINED),
    ("unsubscribe", EventType.UNSUBSCRIBED), ("group_unsubscribe", EventType.UNSUBSCRIBED),
    ("open", EventType.OPENED), ("click", EventType.CLICKED),
    ("group_resubscribe", EventType.UNKNOWN), ("Delivered", EventType.UNKNOWN),
])
def test_sendgrid_event_words_map_to_our_event_types(word: str, expected: EventType) -> None:
    assert EVENT_TYPES.get(word, EventType.UNKNOWN) == expected
    assert parsed_one(sg("e1", word)).type == expected


def test_every_event_type_sendgrid_words_map_to_is_one_of_ours_and_unknown_is_not_mapped() -> None:
    assert set(EVENT_TYPES.values()) <= set(EventType)
    assert EventType.UNKNOWN not in EVENT_TYPES.values()


@pytest.mark.parametrize(("bounce_type", "expected"), [
    ("bounce", RejectReason.INVALID), ("Bounce", RejectReason.INVALID), ("blocked", RejectReason.BLOCKED),
    ("BLOCKED", RejectReason.BLOCKED), ("expired", RejectReason.OTHER), (None, RejectReason.INVALID),
], ids=str)
def test_a_bounce_type_maps_to_a_reject_reason_and_no_type_is_a_hard_bounce(
        bounce_type: str | None, expected: RejectReason) -> None:
    fields = {} if bounce_type is None else {"type": bounce_type}
    assert parsed_one(sg("e1", "bounce", **fields)).reject_reason == expected
    if bounce_type is not None and bounce_type in BOUNCE_TYPES:
        assert BOUNCE_TYPES[bounce_type] == expected


@pytest.mark.parametrize(("reason", "expected"), [
    ("Invalid", RejectReason.INVALID), ("Invalid Address", RejectReason.INVALID),
    ("Invalid SMTPAPI header", RejectReason.OTHER), ("Bounced Address", RejectReason.BOUNCED),
    ("Spam Reporting Address", RejectReason.SPAM), ("Spam Content (if spam checker app enabled)", RejectReason.OTHER),
    ("Unsubscribed Address", RejectReason.UNSUBSCRIBED), ("Recipient List over Package Quota", RejectReason.OTHER),
    ("  bounced address ", RejectReason.BOUNCED), ("something new", RejectReason.OTHER),
])
def test_a_drop_reason_maps_to_a_reject_reason_whatever_its_case(reason: str, expected: RejectReason) -> None:
    assert parsed_one(sg("e1", "dropped", reason=reason)).reject_reason == expected
    assert all(key == key.lower().strip() for key in DROP_REASONS)


def test_only_bounces_and_drops_carry_a_reject_reason_and_only_unknown_events_their_raw_event() -> None:
    events = sendgrid_events.parse(json.dumps([sg(f"e-{w}", w) for w in [*EVENT_TYPES, "new_word"]]).encode())

    assert {e.type for e in events if e.reject_reason is not None} == {EventType.BOUNCED, EventType.DROPPED}
    assert [e.type for e in events if e.raw is not None] == [EventType.UNKNOWN]


def test_a_batch_over_max_events_is_refused_with_413() -> None:
    body = json.dumps([sg(f"e{i}", "open", email=None) for i in range(sendgrid_events.MAX_EVENTS + 1)]).encode()

    with pytest.raises(RequestRefused) as refused:
        sendgrid_events.parse(body)

    assert refused.value.status == 413


# --- a big batch, in one transaction ------------------------------------------------------------------


def test_a_batch_of_5000_events_is_accepted_in_one_request_and_one_transaction(
        client: TestClient, sessions: sessionmaker[Session], engine: Engine, delivery: str) -> None:
    batch = [sg(f"d{i}", "open" if i % 2 else "delivered", **ours(delivery)) for i in range(4000)]
    batch += [sg(f"b{i}", "bounce", email=f"user{i}@example.com", type="bounce") for i in range(1000)]
    commits: list[object] = []

    def committed(conn: object) -> None:
        commits.append(conn)

    event.listen(engine, "commit", committed)
    try:
        started = time.monotonic()
        response = post(client, batch)
        took = time.monotonic() - started
    finally:
        event.remove(engine, "commit", committed)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 5000, "new": 5000, "duplicates": 0, "unmatched": 1000,
                               "suppressed": 1000, "types": {"delivered": 2000, "opened": 2000, "bounced": 1000}}
    assert len(commits) == 1
    assert counts(sessions) == (5000, 1000)
    assert took < 30


# --- a ledger that fails ------------------------------------------------------------------------------


def sqlite_in_a_deleted_dir(tmp_path: Path) -> Engine:
    folder = tmp_path / "gone"
    eng = make_engine(f"sqlite:///{folder / 'ledger.db'}")  # creates the folder ...
    folder.rmdir()  # ... which then disappears
    return eng


def postgres_on_a_closed_port(_tmp_path: Path) -> Engine:
    host = PG_URL.split("@", 1)[0]  # postgresql+psycopg://user
    return make_engine(f"{host}@127.0.0.1:1/test", connect_args={"connect_timeout": 2})


@pytest.mark.parametrize("broken", [sqlite_in_a_deleted_dir, pytest.param(postgres_on_a_closed_port,
                                                                          marks=pytest.mark.postgres)])
def test_a_ledger_that_fails_answers_503_so_sendgrid_posts_again(
        settings: Settings, tmp_path: Path, broken: Callable[[Path], Engine]) -> None:
    eng = broken(tmp_path)
    try:
        with TestClient(create_app(settings, session_factory(eng), clock=lambda: NOW)) as client:
            response = post(client, [sg("e1", "bounce", type="bounce")])
    finally:
        eng.dispose()

    assert response.status_code == 503
    assert response.json() == {"error": "the ledger is unavailable; try again later"}


def test_a_ledger_whose_table_is_gone_answers_503(settings: Settings, tmp_path: Path,
                                                  sqlite_template: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(sqlite_template.read_bytes())
    eng = make_engine(f"sqlite:///{path}")
    with eng.begin() as conn:
        DeliveryEvent.__table__.drop(conn)
    try:
        with TestClient(create_app(settings, session_factory(eng), clock=lambda: NOW)) as client:
            response = post(client, [sg("e1", "delivered")])
    finally:
        eng.dispose()

    assert response.status_code == 503


@pytest.mark.postgres
@pytest.mark.parametrize("field", ["sg_event_id", "campaign_id"])
def test_a_nul_character_in_a_text_field_is_refused_with_400_not_retried_forever(
        settings: Settings, field: str, postgres_ledger: SharedLedger) -> None:
    with TestClient(create_app(settings, postgres_ledger.sessions, clock=lambda: NOW)) as client:
        response = post(client, [{**sg("nul-1", "bounce", type="bounce"), field: "x\u0000y"}])

    assert response.status_code == 400
