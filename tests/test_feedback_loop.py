"""What happens after a send changes what is sent next: a signed bounce, a one-click unsubscribe taken from a real
outbox .eml, completed actions imported from a file, and the suppression list the guard reads on every channel."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.cli import cli
from notifier.config import Settings
from notifier.ledger import queries, suppressions
from notifier.ledger.db import transaction
from notifier.ledger.models import DeliveryRow, Recipient
from notifier.web import create_app
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, DEFAULTS, shipped_catalogs_as, without_spread
from tests.ledger_views import FIRST_KEY

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 10:00 WIB, the merged first send
JAKARTA_PLAYLIST_P7D = datetime(2024, 10, 21, 3, 0, tzinfo=UTC)
JAKARTA_REFUND_P30D = datetime(2024, 10, 29, 3, 0, tzinfo=UTC)
P7D = "playlist-transfer@P7D"  # Jakarta's send of 21 Oct
SERVICE = "tiktok-music-shutdown"
MARKETING = "tiktok-music-offers"
SECRET = "a-test-secret-of-enough-length-0123456789"

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


def marketing_text() -> str:
    """The shipped campaign as a marketing campaign of another id (same templates, its own catalogs)."""
    return (without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8")).replace(f"id: {SERVICE}", f"id: {MARKETING}", 1)
            .replace("category: service ", "category: marketing ", 1)
            .replace(f"templates: {SERVICE}", f"templates: {SERVICE}", 1))


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    return shipped_catalogs_as(tmp_path / "locales", MARKETING)


@pytest.fixture
def settings(tmp_path: Path, locales: Path) -> Settings:
    return Settings(outbox_dir=tmp_path / "outbox", locales_dir=locales, secret_key=SECRET,
                    public_url="https://notify.example.com")


def states(sessions: sessionmaker[Session], recipient_id: str, campaign_id: str = SERVICE
           ) -> dict[tuple[str, str], tuple[str, str | None, str | None]]:
    """(send key, channel) → (state, skip reason, last error) of one recipient's rows in one campaign."""
    with sessions() as s:
        rows = s.execute(select(DeliveryRow.send_key, DeliveryRow.channel, DeliveryRow.state, DeliveryRow.skip_reason,
                                DeliveryRow.last_error)
                         .join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
                         .where(Recipient.id == recipient_id, DeliveryRow.campaign_id == campaign_id)).all()
    return {(r.send_key, r.channel): (r.state, r.skip_reason, r.last_error) for r in rows}


def at(sessions: sessionmaker[Session], recipient_id: str, send_key: str, campaign_id: str = SERVICE
       ) -> dict[str, tuple[str, str | None, str | None]]:
    """channel → (state, skip reason, error) of the recipient's rows of one send."""
    return {ch: v for (key, ch), v in states(sessions, recipient_id, campaign_id).items() if key == send_key}


# --- a signed bounce ------------------------------------------------------------------------------------


def signed(key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    signature = base64.b64encode(key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    return body, {"X-Twilio-Email-Event-Webhook-Signature": signature,
                  "X-Twilio-Email-Event-Webhook-Timestamp": stamp, "Content-Type": "application/json"}


def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def test_a_hard_bounce_suppresses_the_address_and_the_next_wave_skips_its_email_with_the_reason(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        settings: Settings) -> None:
    add_recipient("ana", email="ana@example.com", tokens=["ana-phone"])
    add_recipient("bob", email="bob@example.com")
    schedule_campaign(SCHEDULED)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 3}
    with sessions() as s:
        ana_email = s.scalar(select(DeliveryRow.id).join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
                             .where(Recipient.id == "ana", DeliveryRow.channel == "email"))
    key = ec.generate_private_key(ec.SECP256R1())
    client = TestClient(create_app(settings.with_(sendgrid_webhook_key=public_b64(key)), sessions))
    body, headers = signed(key, [{
        "email": "ana@example.com", "timestamp": int(time.time()), "event": "bounce", "type": "bounce",
        "status": "5.1.1", "reason": "550 5.1.1 <ana@example.com>: no such user", "sg_event_id": "ev-bounce-1",
        "delivery_id": str(ana_email), "campaign_id": SERVICE}])
    answer = client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["suppressed"] == 1

    assert dispatcher.tick(JAKARTA_PLAYLIST_P7D).outcomes == {"sent": 2, "skipped": 1}
    assert at(sessions, "ana", P7D)["email"] == ("skipped", "suppressed", "suppressed: bounced")
    assert at(sessions, "ana", P7D)["push"][0] == "sent"  # a bounce stops the address, not the phone
    assert at(sessions, "bob", P7D)["email"][0] == "sent"


def test_a_suppressed_push_token_is_left_out_and_a_recipient_with_only_suppressed_tokens_is_skipped(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        settings: Settings) -> None:
    add_recipient("ana", email=None, tokens=["ana-phone", "ana-tablet"])
    add_recipient("max", email=None, tokens=["max-phone"])
    schedule_campaign(SCHEDULED)
    now = datetime.now(UTC)
    with transaction(sessions) as s:
        suppressions.suppress(s, [("token", "ana-tablet"), ("token", "max-phone")], scope="all", reason="manual",
                              source="test", now=now)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 1, "skipped": 1}
    pushed = json.loads(next((settings.outbox_dir / "push" / SERVICE).glob("*.json")).read_text())
    assert pushed["tokens"] == ["ana-phone"]
    assert at(sessions, "max", FIRST_KEY)["push"] == ("skipped", "suppressed", "suppressed: manual")


# --- one-click unsubscribe from a real .eml ----------------------------------------------------------------


def test_one_click_unsubscribe_from_a_real_email_stops_marketing_on_every_channel_but_not_the_service_announcement(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        settings: Settings, locales: Path) -> None:
    add_recipient("ana", email="ana@example.com", tokens=["ana-phone"], locale="id")
    schedule_campaign(SCHEDULED)
    schedule_campaign(SCHEDULED, text=marketing_text(), locales_dir=locales)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 4}  # email and push of both campaigns

    eml = next((settings.outbox_dir / "email" / MARKETING).glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.SMTP)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = urlsplit("".join(str(message["List-Unsubscribe"]).split()).strip("<>"))
    assert link.netloc == "notify.example.com" and link.path.startswith("/u/")
    assert "ana" not in link.path  # the token carries no personal data in clear

    a_day_later = JAKARTA_FIRST + timedelta(days=1)  # the link was made on the simulated day: it expires a year on
    client = TestClient(create_app(settings, sessions, clock=lambda: a_day_later), follow_redirects=False)
    page = client.get(link.path)  # a person (or a link scanner) opening it changes nothing
    assert page.status_code == 200 and 'lang="id"' in page.text and "Berhenti berlangganan" in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    with sessions() as s:
        assert suppressions.find(s, "email", "ana@example.com") == []

    done = client.post(link.path, content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200  # RFC 8058: no redirect
    assert client.post(link.path, content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 200

    assert dispatcher.tick(JAKARTA_PLAYLIST_P7D).outcomes == {"sent": 2, "skipped": 2}
    assert at(sessions, "ana", P7D, MARKETING) == {
        "email": ("skipped", "suppressed", "suppressed: unsubscribed"),
        "push": ("skipped", "suppressed", "suppressed: unsubscribed")}
    assert {v[0] for v in at(sessions, "ana", P7D, SERVICE).values()} == {"sent"}


def test_a_one_click_post_without_its_body_or_with_a_forged_token_changes_nothing(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    from notifier.links import unsubscribe_token

    client = TestClient(create_app(settings, sessions))
    genuine = unsubscribe_token(SECRET, 1, issued=datetime.now(UTC).date())
    assert client.post(f"/u/{genuine}", content=b"", headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 400
    forged = unsubscribe_token("another-secret-of-enough-length", 1, issued=datetime.now(UTC).date())
    assert client.post(f"/u/{forged}", content=b"List-Unsubscribe=One-Click", headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 404
    expired = unsubscribe_token(SECRET, 1, issued=datetime(2020, 1, 1).date())
    assert client.get(f"/u/{expired}").status_code == 404
    with sessions() as s:
        assert suppressions.listing(s) == []


# --- completed actions from a file ------------------------------------------------------------------------


def test_actions_imported_from_a_file_skip_the_later_waves_with_the_reason(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        settings: Settings, tmp_path: Path, ledger_url: str) -> None:
    add_recipient("ana", email="ana@example.com")
    add_recipient("bob", email="bob@example.com")
    schedule_campaign(SCHEDULED)
    actions = tmp_path / "actions.csv"
    actions.write_text("recipient_id,action,at\nana,playlist_transferred,2024-10-01T00:00Z\n"
                       "nobody,refund_requested,\nbob,plan_switched,\nbob,refund_requested,not-a-date\n",
                       encoding="utf-8")
    url = ledger_url
    result = CliRunner().invoke(cli, ["--database-url", url, "actions", "import", str(actions)])
    assert result.exit_code == 0, result.output
    assert "1 actions recorded, 3 rejected" in result.output
    assert f"{actions}:3: no recipient with id 'nobody'" in result.output
    assert f"{actions}:4: action 'plan_switched'" in result.output
    assert f"{actions}:5: at:" in result.output

    build_dispatcher(settings, sessions, simulated_clock=True).tick(JAKARTA_PLAYLIST_P7D)
    assert at(sessions, "ana", P7D)["email"][:2] == ("skipped", "action_done")
    assert at(sessions, "bob", P7D)["email"][0] == "sent"


# --- the suppression list on the command line -------------------------------------------------------------


def test_suppressions_add_check_list_and_remove_on_the_command_line(ledger_url: str) -> None:
    url = ledger_url
    run = CliRunner().invoke

    assert run(cli, ["--database-url", url, "suppressions", "check", "Ana@Example.com"]).exit_code == 1
    assert run(cli, ["--database-url", url, "suppressions", "add", "ana@example.com"]).exit_code == 0
    checked = run(cli, ["--database-url", url, "suppressions", "check", " ANA@example.com "])
    assert checked.exit_code == 0 and "suppressed (all): manual, from cli" in checked.output
    listed = run(cli, ["--database-url", url, "suppressions", "list", "--json"])
    assert "ana@" not in listed.output.lower()  # the list keeps hashes only
    assert json.loads(listed.output)[0]["digest"] == suppressions.digest("email", "ana@example.com")
    assert run(cli, ["--database-url", url, "suppressions", "remove", "ana@example.com"]).exit_code == 0
    assert run(cli, ["--database-url", url, "suppressions", "check", "ana@example.com"]).exit_code == 1
    assert run(cli, ["--database-url", url, "suppressions", "remove", "ana@example.com"]).exit_code != 0


def test_the_guard_rule_on_every_channel() -> None:
    listed = suppressions.Listed(recipient={"marketing": "unsubscribed"}, email={}, tokens={})
    assert suppressions.verdict(listed, "push", ("t",), marketing=True) == ("suppressed: unsubscribed", ())
    assert suppressions.verdict(listed, "push", ("t",), marketing=False) == (None, ("t",))
    bounced = suppressions.Listed(recipient={}, email={"all": "bounced"}, tokens={})
    assert suppressions.verdict(bounced, "email", (), marketing=False) == ("suppressed: bounced", ())
    assert suppressions.verdict(bounced, "push", ("t",), marketing=False) == (None, ("t",))
    assert DEFAULTS.secret_key != SECRET
