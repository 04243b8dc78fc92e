"""The dispatcher and ledger with the real SendGrid and FCM channels, against the emulator, on SQLite and PostgreSQL.

Retries, token deactivation, the email fallback and the staleness guard, each seen from both ends: the ledger's
rows and events, and what the emulator accepted.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.dispatch import Dispatcher
from notifier.emulator.process import EmulatorProcess
from notifier.ledger import queries
from notifier.ledger.models import DeliveryRow, DeliveryState, PushToken, Recipient, SkipReason
from notifier.links import open_token
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, TEST_SECRETS, without_spread
from tests.ledger_views import FIRST_KEY, events_of, rows_of, the_row

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)  # before anyone's first send
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 28 Sep, 10:00 in Jakarta (UTC+7)
JAKARTA_PLAYLIST_P7D = datetime(2024, 10, 21, 3, 0, tzinfo=UTC)
JAKARTA_PLAYLIST_P1D = datetime(2024, 10, 27, 3, 0, tzinfo=UTC)
JAKARTA_PLAYLIST_DEADLINE = datetime(2024, 10, 27, 17, 0, tzinfo=UTC)  # 28 Oct 00:00 WIB
JAKARTA_REFUND_DEADLINE = datetime(2024, 11, 27, 17, 0, tzinfo=UTC)  # 28 Nov 00:00 WIB
CAMPAIGN_ID = "tiktok-music-shutdown"
MAX_ATTEMPTS = 3
DEAD_TOKEN_REASON = "provider: token unregistered or invalid"

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


@pytest.fixture
def providers(sessions: sessionmaker[Session], fresh_emulator: EmulatorProcess) -> Iterator[Dispatcher]:
    """The dispatcher as production wires it for NOTIFIER_TRANSPORT=providers, pointed at the emulator."""
    settings = Settings(transport="providers", sendgrid_api_key="SG.test", sendgrid_host=fresh_emulator.url,
                        google_credentials=fresh_emulator.credentials, fcm_endpoint=fresh_emulator.url,
                        retry_base_seconds=60, max_attempts=MAX_ATTEMPTS, **TEST_SECRETS)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    yield dispatcher
    dispatcher.close()


# --- helpers -----------------------------------------------------------------------------------------


def tokens_of(sessions: sessionmaker[Session], recipient_id: str) -> dict[str, PushToken]:
    with sessions() as s:
        tokens = s.scalars(select(PushToken).join(Recipient, Recipient.seq == PushToken.recipient_seq)
                           .where(Recipient.id == recipient_id))
        return {t.token: t for t in tokens}


def accepted(emulator: EmulatorProcess, kind: str) -> list[dict[str, Any]]:
    return [entry for k, entry in emulator.messages() if k == kind]


def answers(emulator: EmulatorProcess, endpoint: str) -> Counter[str]:
    return Counter(emulator.stats()["requests"].get(endpoint, {}))


def ledger_ids(row: DeliveryRow) -> dict[str, str]:
    return {"delivery_id": str(row.id), "campaign_id": CAMPAIGN_ID, "send_key": row.send_key}


# --- what the providers receive ----------------------------------------------------------------------


def test_the_providers_receive_ledger_ids_and_no_personal_data_beside_the_message(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    add_recipient("ana", name="Ana Lima", locale="id", tokens=["ana-phone"])
    schedule_campaign(SCHEDULED)

    assert providers.tick(JAKARTA_FIRST).outcomes == {"sent": 2}

    email_row, push_row = the_row(sessions, "ana"), the_row(sessions, "ana", channel="push")
    [mail] = accepted(fresh_emulator, "email")
    assert mail["to"] == ["ana@example.com"] and mail["message_id"] == email_row.provider_message_id
    assert mail["custom_args"] == ledger_ids(email_row)
    assert sorted(mail["categories"]) == [CAMPAIGN_ID, f"{CAMPAIGN_ID}:P30D"]  # the campaign and its wave
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["text"].startswith("Halo, Ana Lima,")
    for field in ("custom_args", "categories", "headers"):
        assert "ana" not in str(mail[field]).lower() and "lima" not in str(mail[field]).lower(), field
    [note] = accepted(fresh_emulator, "push")
    assert (note["token"], note["name"]) == ("ana-phone", push_row.provider_message_id)
    # The page a tap opens: the transfer, the sooner of the two deadlines it announces (docs/templates.md).
    # and the push's own open token, for the app's POST /opens (a MAC of the delivery id: nothing of Ana's).
    assert note["data"] == {**ledger_ids(push_row), "link": "https://music.tiktok.com/transfer",
                            "open_token": open_token(TEST_SECRETS["secret_key"], push_row.id)}
    assert note["webpush"] == {"fcm_options": {"link": "https://music.tiktok.com/transfer"}}
    assert note["android"]["ttl"] == "2419200s"  # the refund is 60 days away: FCM keeps 28 days at most
    # The first message announces both deadlines: it lives, and collapses, with the later one.
    assert note["apns"]["headers"]["apns-expiration"] == str(int(JAKARTA_REFUND_DEADLINE.timestamp()))
    assert note["android"]["collapse_key"] == f"{CAMPAIGN_ID}:refund"
    assert note["fcm_options"] == {"analytics_label": f"{CAMPAIGN_ID}-P30D"}  # campaign and wave, as before
    assert "asm" not in mail or mail["asm"] is None  # a service campaign: no unsubscribe group


@pytest.mark.parametrize(("category", "group", "asm"), [
    ("marketing", 42, {"group_id": 42}), ("marketing", None, None), ("service", 42, None)])
def test_the_asm_group_goes_only_on_a_marketing_campaigns_mail_when_configured(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        fresh_emulator: EmulatorProcess, category: str, group: int | None, asm: dict[str, int] | None) -> None:
    add_recipient("ana")
    schedule_campaign(SCHEDULED, text=without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8")).replace(
        "category: service", f"category: {category}"))
    settings = Settings(transport="providers", sendgrid_api_key="SG.test", sendgrid_host=fresh_emulator.url,
                        google_credentials=fresh_emulator.credentials, fcm_endpoint=fresh_emulator.url,
                        sendgrid_asm_group=group, **TEST_SECRETS)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    try:
        assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 1}
    finally:
        dispatcher.close()

    [mail] = accepted(fresh_emulator, "email")
    assert mail.get("asm") == asm


# --- retries -----------------------------------------------------------------------------------------


def test_a_503_goes_back_to_pending_with_full_jitter_and_is_sent_when_due(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    add_recipient("ana")
    schedule_campaign(SCHEDULED)
    fresh_emulator.set_faults({"sendgrid": {"503": 1.0}})
    t = JAKARTA_FIRST

    assert providers.tick(t).outcomes == {"retry": 1}

    row = the_row(sessions, "ana")
    assert (row.state, row.attempts, row.lease_until) == (DeliveryState.PENDING, 1, None)
    assert t + timedelta(seconds=30) <= row.next_attempt_at <= t + timedelta(seconds=60)  # base 60, full jitter
    assert row.last_error is not None and row.last_error.startswith("sendgrid 503: ")
    assert events_of(sessions, row.id) == [("retry", t, {"error": row.last_error})]
    fresh_emulator.set_faults({"sendgrid": {"503": 0}})
    assert providers.tick(t + timedelta(seconds=10)).claimed == 0
    assert answers(fresh_emulator, "sendgrid") == {"503": 1}

    assert providers.tick(row.next_attempt_at).outcomes == {"sent": 1}

    row = the_row(sessions, "ana")
    assert (row.state, row.attempts, row.last_error) == (DeliveryState.SENT, 2, None)
    [mail] = accepted(fresh_emulator, "email")
    assert mail["message_id"] == row.provider_message_id
    assert answers(fresh_emulator, "sendgrid") == {"503": 1, "202": 1}


def test_throttling_waits_until_sendgrids_rate_limit_resets(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    add_recipient("ana")
    schedule_campaign(SCHEDULED)
    fresh_emulator.set_faults({"sendgrid": {"429": 1.0, "retry_after": 120}})

    assert providers.tick(JAKARTA_FIRST).outcomes == {"retry": 1}

    row = the_row(sessions, "ana")
    waited = row.next_attempt_at - JAKARTA_FIRST
    assert timedelta(seconds=118) <= waited <= timedelta(seconds=120)  # X-RateLimit-Reset, not the 30-60 s jitter
    assert row.last_error == "sendgrid 429: request: too many requests"


def test_a_row_that_keeps_failing_gives_up_after_max_attempts(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    add_recipient("ana")
    schedule_campaign(SCHEDULED)
    fresh_emulator.set_faults({"sendgrid": {"503": 1.0}})

    now = JAKARTA_FIRST
    for _ in range(MAX_ATTEMPTS):
        assert providers.tick(now).claimed == 1
        now = the_row(sessions, "ana").next_attempt_at

    row = the_row(sessions, "ana")
    assert (row.state, row.attempts) == (DeliveryState.FAILED, MAX_ATTEMPTS)
    assert row.last_error is not None
    assert row.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts: sendgrid 503: ")
    assert [e[0] for e in events_of(sessions, row.id)] == ["retry", "retry", "failed"]
    assert providers.tick(now + timedelta(days=1)).claimed == 0
    assert answers(fresh_emulator, "sendgrid") == {"503": MAX_ATTEMPTS}


# --- dead push tokens --------------------------------------------------------------------------------


def test_an_unregistered_token_is_deactivated_and_never_used_again(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    add_recipient("ana", email=None, tokens=["ana-old-phone", "ana-phone"])
    add_recipient("ben", email=None, tokens=["ben-old-phone"])
    schedule_campaign(SCHEDULED)
    fresh_emulator.set_faults({"fcm": {"unregistered_tokens": ["ana-old-phone", "ben-old-phone"]}})

    assert providers.tick(JAKARTA_FIRST).outcomes == {"sent": 1, "failed": 1}

    assert the_row(sessions, "ana", channel="push").state == DeliveryState.SENT
    ben_row = the_row(sessions, "ben", channel="push")
    assert ben_row.state == DeliveryState.FAILED
    assert ben_row.last_error is not None and ben_row.last_error.startswith("every push token is invalid: ")
    assert "ben-old-phone" not in ben_row.last_error
    ana_tokens, ben_tokens = tokens_of(sessions, "ana"), tokens_of(sessions, "ben")
    old = ana_tokens["ana-old-phone"]
    assert (old.active, old.deactivated_at, old.deactivated_reason) == (False, JAKARTA_FIRST, DEAD_TOKEN_REASON)
    assert (ana_tokens["ana-phone"].active, ana_tokens["ana-phone"].deactivated_at) == (True, None)
    assert (ben_tokens["ben-old-phone"].active, ben_tokens["ben-old-phone"].deactivated_reason) == (
        False, DEAD_TOKEN_REASON)
    assert [p["token"] for p in accepted(fresh_emulator, "push")] == ["ana-phone"]
    assert answers(fresh_emulator, "fcm") == {"200": 1, "404": 2}

    fresh_emulator.reset()  # no faults any more: a push to a deactivated token would now be accepted and logged
    assert providers.tick(JAKARTA_PLAYLIST_P7D).outcomes == {"sent": 1}

    assert [p["token"] for p in accepted(fresh_emulator, "push")] == ["ana-phone"]
    assert answers(fresh_emulator, "fcm") == {"200": 1}
    assert set(rows_of(sessions, "ben")) == {(FIRST_KEY, "push")}  # no push row materialized for the next wave


def test_with_fallback_email_a_recipient_whose_tokens_are_all_dead_gets_the_email(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    spec = without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8"))  # ticks at the send's own time
    assert "channels: [email, push]\n" in spec
    add_recipient("ana", tokens=["ana-old-phone"])
    add_recipient("ben", tokens=["ben-phone"])
    schedule_campaign(SCHEDULED, text=spec.replace("channels: [email, push]\n", "channels: [push]\nfallback: email\n"))
    fresh_emulator.set_faults({"fcm": {"unregistered_tokens": ["ana-old-phone"]}})

    report = providers.tick(JAKARTA_FIRST)

    assert report.outcomes == {"sent": 2, "failed": 1}  # ben's push, ana's fallback email; ana's push
    ana = rows_of(sessions, "ana")
    assert set(ana) == {(FIRST_KEY, "push"), (FIRST_KEY, "email")}
    assert ana[FIRST_KEY, "push"].state == DeliveryState.FAILED
    email_row = ana[FIRST_KEY, "email"]
    assert (email_row.state, email_row.group_id) == (DeliveryState.SENT, ana[FIRST_KEY, "push"].group_id)
    [mail] = accepted(fresh_emulator, "email")
    assert mail["to"] == ["ana@example.com"]
    assert mail["custom_args"] == ledger_ids(email_row)
    assert set(rows_of(sessions, "ben")) == {(FIRST_KEY, "push")}  # a live token: no email
    assert tokens_of(sessions, "ana")["ana-old-phone"].active is False


# --- the staleness guard before a retry --------------------------------------------------------------


def test_a_retry_due_after_its_deadline_is_skipped_and_never_reaches_the_provider(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    add_recipient("ana")
    schedule_campaign(JAKARTA_PLAYLIST_P7D + timedelta(days=1))  # the playlist's last-day reminder comes first
    fresh_emulator.set_faults({"sendgrid": {"503": 1.0}})
    assert providers.tick(JAKARTA_PLAYLIST_P1D).outcomes == {"retry": 1}
    fresh_emulator.reset()  # the provider is back: anything sent now would be accepted
    after = JAKARTA_PLAYLIST_DEADLINE + timedelta(hours=1)

    assert providers.tick(after).outcomes == {"skipped": 1}

    row = the_row(sessions, "ana", "playlist-transfer@P1D")
    assert (row.state, row.skip_reason, row.sent_at) == (DeliveryState.SKIPPED, SkipReason.DEADLINE_PASSED, None)
    assert fresh_emulator.stats()["requests"] == {}
    assert accepted(fresh_emulator, "email") == []


# --- the demo ----------------------------------------------------------------------------------------


def test_the_providers_demo_sends_every_message_exactly_once_through_injected_faults(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFIER_", "SENDGRID_", "GOOGLE_"))}
    notifier = Path(sys.executable).with_name("notifier")

    done = subprocess.run([str(notifier), "demo", "--transport", "providers", "--no-progress", "--dir",
                           str(tmp_path / "demo")], capture_output=True, text=True, env=env, timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "every sent message accepted exactly once" in out
    verdict = re.search(r"duplicates (\d+), missing (\d+), unexpected (\d+): .*; faults injected: (\{.*\})$", out,
                        re.MULTILINE)
    assert verdict is not None, out[-2000:]
    assert verdict.group(1, 2, 3) == ("0", "0", "0")
    injected = ast.literal_eval(verdict.group(4))
    assert set(injected) == {"sendgrid", "fcm"}
    assert {"429", "500", "503", "drop"} <= set(injected["sendgrid"])
    assert {"429", "500", "503", "drop", "unregistered"} <= set(injected["fcm"])
    assert all(n > 0 for counts in injected.values() for n in counts.values())
    # The loop is closed: signed events came back through notifier serve and later waves skipped those addresses.
    feedback = re.search(r"^feedback: SendGrid events (.*); (\d+) addresses suppressed", out, re.MULTILINE)
    assert feedback is not None, out[-2000:]
    assert "bounced: " in feedback.group(1) and "complained: " in feedback.group(1) and int(feedback.group(2)) > 0
    # The emulator's opens (some by machines) and clicks came back through the webhook and were counted.
    results = re.search(r"^results: [\d,]+ emails delivered; ([\d,]+) messages opened by people \(and ([\d,]+) emails "
                        r"by machines\), ([\d,]+) clicked", out, re.MULTILINE)
    assert results is not None, out[-2000:]
    assert all(int(g.replace(",", "")) > 0 for g in results.groups())
    skips = re.search(r"^skipped because: (.*)$", out, re.MULTILINE)
    assert skips is not None and "suppressed: " in skips.group(1)
