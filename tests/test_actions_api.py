"""``POST /actions`` on SQLite and PostgreSQL: the bearer token, actions recorded or each rejected alone with its
index, times in UTC, the cap on a body, and the effect: a later wave whose skip_if names the action is skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.ledger import queries
from notifier.ledger.db import make_engine, session_factory
from notifier.ledger.models import DeliveryState, Recipient, RecipientAction, SkipReason
from notifier.web import create_app
from notifier.wiring import build_dispatcher
from tests.conftest import TEST_SECRETS
from tests.ledger_views import rows_of

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 10:00 WIB, the merged first send
JAKARTA_REFUND_P30D = datetime(2024, 10, 29, 3, 0, tzinfo=UTC)  # the refund deadline's P30D wave in Jakarta
NOW = datetime(2024, 10, 1, 9, 0, tzinfo=UTC)  # the app's clock
TOKEN = "an-api-token-nobody-can-guess-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


@pytest.fixture
def settings() -> Settings:
    return Settings(api_token=TOKEN, **TEST_SECRETS)


@pytest.fixture
def client(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(settings, sessions, clock=lambda: NOW)) as c:
        yield c


@pytest.fixture
def campaign(add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    """Ana and Budi in Jakarta, with the shipped campaign (skip_if playlist_transferred / refund_requested)."""
    add_recipient("ana", timezone="Asia/Jakarta", tokens=["ana-phone"])
    add_recipient("budi", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED)


def recorded(sessions: sessionmaker[Session]) -> set[tuple[str, str, datetime]]:
    """(recipient id, action, at) of every recorded action."""
    with sessions() as s:
        return {(r, a, at) for r, a, at in s.execute(
            select(Recipient.id, RecipientAction.action, RecipientAction.at)
            .join(Recipient, Recipient.seq == RecipientAction.recipient_seq))}


def actions(*items: dict[str, Any], force: bool = False) -> dict[str, Any]:
    return {"actions": list(items), "force": force}


# --- the bearer token ---------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token-of-the-same-kind-0123456789"}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {TOKEN}x"},
], ids=["none", "wrong", "basic", "no-scheme", "empty", "longer"])
@pytest.mark.usefixtures("campaign")
def test_actions_without_the_right_bearer_token_are_refused_with_401_and_nothing_is_recorded(
        client: TestClient, sessions: sessionmaker[Session], headers: dict[str, str]) -> None:
    response = client.post("/actions", json=actions({"recipient_id": "ana", "action": "refund_requested"}),
                           headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "a bearer token is required (Authorization: Bearer <NOTIFIER_API_TOKEN>)"}
    assert recorded(sessions) == set()


def test_the_scheme_of_the_bearer_token_is_case_insensitive(client: TestClient) -> None:
    response = client.post("/actions", json=actions(), headers={"Authorization": f"bearer {TOKEN}"})

    assert response.status_code == 200


def test_with_no_api_token_configured_actions_are_off_with_503(sessions: sessionmaker[Session]) -> None:
    with TestClient(create_app(Settings(), sessions)) as client:
        response = client.post("/actions", json=actions(), headers=BEARER)

    assert response.status_code == 503
    assert response.json() == {"error": "NOTIFIER_API_TOKEN is not set: POST /actions is off"}


# --- recorded, or rejected alone ----------------------------------------------------------------------


@pytest.mark.usefixtures("campaign")
def test_actions_for_known_recipients_are_recorded_and_each_unknown_one_is_rejected_alone_with_its_index(
        client: TestClient, sessions: sessionmaker[Session]) -> None:
    response = client.post("/actions", headers=BEARER, json=actions(
        {"recipient_id": "ana", "action": "refund_requested", "at": "2024-09-30T16:00:00+07:00"},
        {"recipient_id": "nobody", "action": "refund_requested"},
        {"recipient_id": "budi", "action": "plan_switched"},
        {"recipient_id": "budi", "action": "playlist_transferred"},
    ))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["recorded"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    assert "no recipient with id 'nobody'" in body["rejected"][0]["reason"]
    assert "action 'plan_switched': no campaign's skip_if uses it" in body["rejected"][1]["reason"]
    assert recorded(sessions) == {("ana", "refund_requested", datetime(2024, 9, 30, 9, 0, tzinfo=UTC)),
                                  ("budi", "playlist_transferred", NOW)}  # no ``at``: the app's now


@pytest.mark.usefixtures("campaign")
def test_an_at_without_an_offset_is_utc(client: TestClient, sessions: sessionmaker[Session]) -> None:
    response = client.post("/actions", headers=BEARER, json=actions(
        {"recipient_id": "ana", "action": "refund_requested", "at": "2024-09-30T16:00:00"}))

    assert response.json() == {"recorded": 1, "rejected": []}
    assert recorded(sessions) == {("ana", "refund_requested", datetime(2024, 9, 30, 16, 0, tzinfo=UTC))}


@pytest.mark.usefixtures("campaign")
def test_force_records_an_action_no_campaign_uses(client: TestClient, sessions: sessionmaker[Session]) -> None:
    response = client.post("/actions", headers=BEARER, json=actions(
        {"recipient_id": "ana", "action": "plan_switched"}, force=True))

    assert response.json() == {"recorded": 1, "rejected": []}
    assert recorded(sessions) == {("ana", "plan_switched", NOW)}


@pytest.mark.usefixtures("campaign")
def test_an_action_recorded_twice_keeps_its_first_time(client: TestClient, sessions: sessionmaker[Session]) -> None:
    first = {"recipient_id": "ana", "action": "refund_requested", "at": "2024-09-30T00:00:00Z"}
    client.post("/actions", headers=BEARER, json=actions(first))

    client.post("/actions", headers=BEARER, json=actions({**first, "at": "2024-10-01T00:00:00Z"}))

    assert recorded(sessions) == {("ana", "refund_requested", datetime(2024, 9, 30, tzinfo=UTC))}


def test_without_a_scheduled_campaign_every_action_is_rejected_as_unused(
        client: TestClient, sessions: sessionmaker[Session], add_recipient: AddRecipient) -> None:
    add_recipient("ana")

    response = client.post("/actions", headers=BEARER, json=actions(
        {"recipient_id": "ana", "action": "refund_requested"}))

    assert response.json()["recorded"] == 0
    assert response.json()["rejected"][0]["index"] == 0
    assert recorded(sessions) == set()


@pytest.mark.parametrize("item", [
    {"recipient_id": "", "action": "refund_requested"},
    {"recipient_id": "a" * 129, "action": "refund_requested"},
    {"recipient_id": "ana", "action": "Refund-Requested"},
    {"recipient_id": "ana", "action": "a" * 65},
    {"recipient_id": "ana", "action": "refund_requested", "at": "yesterday"},
    {"action": "refund_requested"},
], ids=["empty-id", "long-id", "bad-action", "long-action", "bad-at", "no-id"])
@pytest.mark.usefixtures("campaign")
def test_an_action_of_the_wrong_shape_is_refused_with_422(
        client: TestClient, sessions: sessionmaker[Session], item: dict[str, str]) -> None:
    response = client.post("/actions", headers=BEARER, json=actions(item))

    assert response.status_code == 422
    assert recorded(sessions) == set()


@pytest.mark.usefixtures("campaign")
def test_a_body_of_more_than_10000_actions_is_refused_with_422_and_nothing_is_recorded(
        client: TestClient, sessions: sessionmaker[Session]) -> None:
    many = [{"recipient_id": "ana", "action": "refund_requested"}] * 10_001

    response = client.post("/actions", headers=BEARER, json=actions(*many))

    assert response.status_code == 422
    assert recorded(sessions) == set()


@pytest.mark.usefixtures("campaign")
def test_an_at_that_cannot_be_expressed_in_utc_is_refused_with_422(
        settings: Settings, sessions: sessionmaker[Session]) -> None:
    client = TestClient(create_app(settings, sessions, clock=lambda: NOW), raise_server_exceptions=False)
    response = client.post("/actions", headers=BEARER, json=actions(
        {"recipient_id": "ana", "action": "refund_requested", "at": "9999-12-31T23:00:00-05:00"}))

    assert response.status_code == 422


def test_an_unauthenticated_request_is_refused_before_its_body_is_read(client: TestClient) -> None:
    response = client.post("/actions", content=b"{not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 401


def test_a_ledger_that_fails_answers_503(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    eng = make_engine(f"sqlite:///{folder / 'ledger.db'}")
    folder.rmdir()
    try:
        with TestClient(create_app(settings, session_factory(eng))) as client:
            response = client.post("/actions", headers=BEARER, json=actions(
                {"recipient_id": "ana", "action": "refund_requested"}))
    finally:
        eng.dispose()

    assert response.status_code == 503


# --- the effect: a later wave is skipped --------------------------------------------------------------


@pytest.mark.usefixtures("campaign")
def test_after_refund_requested_through_the_api_the_later_refund_wave_is_skipped_with_action_done(
        client: TestClient, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    dispatcher = build_dispatcher(Settings(outbox_dir=tmp_path / "outbox"), sessions, simulated_clock=True)
    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 3}  # ana's email and push, budi's email

    response = client.post("/actions", headers=BEARER, json=actions(
        {"recipient_id": "ana", "action": "refund_requested"}))
    assert response.json() == {"recorded": 1, "rejected": []}

    assert dispatcher.tick(JAKARTA_REFUND_P30D).outcomes == {"sent": 1, "skipped": 2}
    ana = {key: (r.state, r.skip_reason) for key, r in rows_of(sessions, "ana").items() if key[0].startswith("refund@")}
    assert ana == {("refund@P30D", "email"): (DeliveryState.SKIPPED, SkipReason.ACTION_DONE),
                   ("refund@P30D", "push"): (DeliveryState.SKIPPED, SkipReason.ACTION_DONE)}
    budi = {key: r.state for key, r in rows_of(sessions, "budi").items() if key[0].startswith("refund@")}
    assert budi == {("refund@P30D", "email"): DeliveryState.SENT}
