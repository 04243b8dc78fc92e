"""Dispatcher ticks on SQLite and PostgreSQL: the outbox end to end, the staleness guard, and channel outcomes."""

from __future__ import annotations

import email
import email.policy
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.dispatch import Dispatcher
from notifier.errors import InvalidRecipientError, TransientError
from notifier.events import SendResult
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import (
    CampaignState,
    DeliveryRow,
    DeliveryState,
    PushToken,
    SkipReason,
)
from notifier.planner import send_channels
from notifier.render import Renderer
from notifier.testing import ScriptedChannel, Step
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, without_spread
from tests.ledger_views import FIRST_KEY, events_of, rows_of, the_row

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)  # before anyone's first send
# The first (merged) send, 28 Sep at 10:00 local, in UTC:
SYDNEY_FIRST = datetime(2024, 9, 28, 0, 0, tzinfo=UTC)
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)
SAO_PAULO_FIRST = datetime(2024, 9, 28, 13, 0, tzinfo=UTC)
MEXICO_FIRST = datetime(2024, 9, 28, 16, 0, tzinfo=UTC)
# Jakarta's later sends and deadlines (UTC+7, no DST):
JAKARTA_PLAYLIST_P7D = datetime(2024, 10, 21, 3, 0, tzinfo=UTC)
JAKARTA_PLAYLIST_P1D = datetime(2024, 10, 27, 3, 0, tzinfo=UTC)
JAKARTA_PLAYLIST_DEADLINE = datetime(2024, 10, 27, 17, 0, tzinfo=UTC)  # 28 Oct 00:00 WIB
JAKARTA_REFUND_P30D = datetime(2024, 10, 29, 3, 0, tzinfo=UTC)
JAKARTA_REFUND_DEADLINE = datetime(2024, 11, 27, 17, 0, tzinfo=UTC)  # 28 Nov 00:00 WIB
CAMPAIGN_ID = "tiktok-music-shutdown"
# The shipped campaign without its spread (tests/test_spread.py has it): these tests tick at a send's own time.
CAMPAIGN_FILE_TEXT = without_spread(
    (Path(__file__).resolve().parent.parent / "campaigns" / f"{CAMPAIGN_ID}.yaml").read_text())

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


# --- helpers -----------------------------------------------------------------------------------------


def outbox_files(outbox: Path) -> list[str]:
    return sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file())


def read_email(outbox: Path, row: DeliveryRow) -> MimeMessage:
    path = outbox / "email" / row.campaign_id / f"{row.id}.eml"
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, MimeMessage)
    return msg


def subject_of(msg: MimeMessage) -> str:
    """The decoded subject; CPython's folder may start a long one on a continuation line (a leading space)."""
    return str(msg["Subject"]).strip()


def text_of(msg: MimeMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def read_push(outbox: Path, row: DeliveryRow) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((outbox / "push" / row.campaign_id / f"{row.id}.json").read_text(encoding="utf-8"))
    return doc


def record_action(sessions: sessionmaker[Session], recipient_id: str, action: str, at: datetime) -> None:
    with transaction(sessions) as s:
        queries.record_action(s, recipient_id, action, at)


def set_state(sessions: sessionmaker[Session], state: CampaignState, now: datetime) -> None:
    with transaction(sessions) as s:
        queries.set_state(s, CAMPAIGN_ID, state, now)


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def dispatcher(sessions: sessionmaker[Session], outbox: Path) -> Dispatcher:
    """The real dispatcher with the outbox channels and the shipped templates."""
    return build_dispatcher(Settings(outbox_dir=outbox), sessions, simulated_clock=True)


@pytest.fixture
def audience(add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    """Four recipients in four zones, with the shipped campaign scheduled for them."""
    add_recipient("ana", timezone="Asia/Jakarta", country="ID", locale="id", name="Ana",
                  tokens=["ana-phone", "ana-tablet"], inactive_tokens=["ana-old-phone"])
    add_recipient("bia", timezone="America/Sao_Paulo", country="BR", locale="pt", tokens=["bia-phone"])
    add_recipient("sam", timezone="Australia/Sydney", country="AU", locale="xx")
    add_recipient("max", timezone="America/Mexico_City", country="MX", locale="es-MX", email=None,
                  tokens=["max-phone"])
    schedule_campaign(SCHEDULED)


# --- the outbox, end to end --------------------------------------------------------------------------


@pytest.mark.usefixtures("audience")
def test_each_zone_gets_the_first_message_at_its_own_ten_am(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path) -> None:
    assert dispatcher.tick(SYDNEY_FIRST - timedelta(minutes=1)).claimed == 0
    assert outbox_files(outbox) == []

    assert dispatcher.tick(SYDNEY_FIRST).outcomes == {"sent": 1}
    assert set(rows_of(sessions, "sam")) == {(FIRST_KEY, "email")}

    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 2}
    assert set(rows_of(sessions, "ana")) == {(FIRST_KEY, "email"), (FIRST_KEY, "push")}

    assert dispatcher.tick(MEXICO_FIRST).outcomes == {"sent": 3}  # São Paulo (13:00 UTC) and Mexico City
    assert set(rows_of(sessions, "bia")) == {(FIRST_KEY, "email"), (FIRST_KEY, "push")}
    assert set(rows_of(sessions, "max")) == {(FIRST_KEY, "push")}
    assert len(outbox_files(outbox)) == 6


@pytest.mark.usefixtures("audience")
def test_sent_rows_carry_the_provider_id_and_the_negotiated_locale(
        sessions: sessionmaker[Session], dispatcher: Dispatcher) -> None:
    first = {"sam": SYDNEY_FIRST, "ana": JAKARTA_FIRST, "bia": SAO_PAULO_FIRST, "max": MEXICO_FIRST}
    for at in sorted(set(first.values())):
        dispatcher.tick(at)

    locales = {}
    for who in ("ana", "bia", "sam", "max"):
        for (_, channel), row in rows_of(sessions, who).items():
            assert (row.state, row.sent_at, row.attempts, row.lease_until) == (
                DeliveryState.SENT, first[who], 1, None), (who, channel)
            assert row.provider_message_id
            locales[who, channel] = row.locale
    assert locales == {("ana", "email"): "id", ("ana", "push"): "id", ("bia", "email"): "pt-BR",
                       ("bia", "push"): "pt-BR", ("sam", "email"): "en", ("max", "push"): "es-MX"}


@pytest.mark.usefixtures("audience")
def test_the_first_email_is_multipart_alternative_to_the_recipient_and_covers_both_deadlines(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path) -> None:
    dispatcher.tick(SYDNEY_FIRST)

    row = the_row(sessions, "sam")
    msg = read_email(outbox, row)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["To"].addresses[0].addr_spec == "sam@example.com"
    assert row.provider_message_id == msg["Message-ID"].strip("<>")
    assert subject_of(msg) == ("TikTok Music is closing: transfer your playlists before 28 October 2024 "
                              "and request refunds before 28 November 2024")
    for body in (text_of(msg, "plain"), text_of(msg, "html")):
        assert "Transfer your playlists".lower() in body.lower() and "28 October 2024" in body
        assert "Request a refund".lower() in body.lower() and "28 November 2024" in body
        assert "https://music.tiktok.com/transfer" in body and "https://music.tiktok.com/refund" in body
    assert "(30 days left)" in text_of(msg, "plain")  # counted in Sydney, where it is 28 Sep
    assert "(61 days left)" in text_of(msg, "plain")


@pytest.mark.usefixtures("audience")
def test_the_email_is_addressed_by_name_and_dated_in_the_recipients_locale(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path) -> None:
    dispatcher.tick(JAKARTA_FIRST)

    msg = read_email(outbox, the_row(sessions, "ana"))
    assert msg["To"].addresses[0].display_name == "Ana"
    assert msg["To"].addresses[0].addr_spec == "ana@example.com"
    assert "28 Oktober 2024" in subject_of(msg)  # Indonesian, dated the Indonesian way
    assert text_of(msg, "plain").startswith("Halo, Ana,")


@pytest.mark.usefixtures("audience")
def test_a_merged_push_goes_to_every_active_token_and_lives_until_its_latest_deadline(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path) -> None:
    dispatcher.tick(JAKARTA_FIRST)
    dispatcher.tick(MEXICO_FIRST)

    ana = read_push(outbox, the_row(sessions, "ana", channel="push"))
    assert ana["tokens"] == ["ana-phone", "ana-tablet"]
    # It announces the refund too: dying at the playlist deadline would take the refund's news with it.
    assert datetime.fromisoformat(ana["expires_at"]) == JAKARTA_REFUND_DEADLINE
    assert ana["collapse_key"] == f"{CAMPAIGN_ID}:refund"
    assert ana["data"]["send_key"] == FIRST_KEY
    body = ana["notification"]["body"]
    assert "28 Oktober 2024" in body and "28 November 2024" in body  # both deadlines, in Indonesian
    mexico = read_push(outbox, the_row(sessions, "max", channel="push"))
    assert mexico["tokens"] == ["max-phone"]
    assert datetime.fromisoformat(mexico["expires_at"]) == datetime(2024, 11, 28, 6, 0, tzinfo=UTC)  # 00:00 CST


@pytest.mark.usefixtures("audience")
def test_a_single_deadline_push_expires_at_that_deadline(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path) -> None:
    dispatcher.tick(JAKARTA_PLAYLIST_P7D)

    push = read_push(outbox, the_row(sessions, "ana", "playlist-transfer@P7D", "push"))
    assert datetime.fromisoformat(push["expires_at"]) == JAKARTA_PLAYLIST_DEADLINE
    assert push["collapse_key"] == f"{CAMPAIGN_ID}:playlist-transfer"


@pytest.mark.usefixtures("audience")
def test_a_second_tick_at_the_same_time_sends_nothing_more(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path) -> None:
    first = dispatcher.tick(JAKARTA_FIRST)
    files = outbox_files(outbox)
    sent_ids = {r.provider_message_id for r in rows_of(sessions, "ana").values()}

    again = dispatcher.tick(JAKARTA_FIRST)

    assert (first.materialized, first.claimed) == (3, 3)  # Sydney's and Jakarta's first sends
    assert (again.materialized, again.claimed, again.outcomes) == (0, 0, {})
    assert outbox_files(outbox) == files
    assert {r.provider_message_id for r in rows_of(sessions, "ana").values()} == sent_ids


@pytest.mark.usefixtures("audience")
def test_cancelling_mid_campaign_writes_no_further_files(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path) -> None:
    dispatcher.tick(JAKARTA_FIRST)
    files = outbox_files(outbox)
    assert len(files) == 3

    set_state(sessions, CampaignState.CANCELLED, JAKARTA_FIRST + timedelta(hours=1))
    for now in (SAO_PAULO_FIRST, MEXICO_FIRST, JAKARTA_PLAYLIST_P7D, JAKARTA_REFUND_P30D, JAKARTA_REFUND_DEADLINE):
        assert dispatcher.tick(now).claimed == 0

    assert outbox_files(outbox) == files
    assert rows_of(sessions, "bia") == {}
    assert set(rows_of(sessions, "ana")) == {(FIRST_KEY, "email"), (FIRST_KEY, "push")}


# --- the staleness guard -----------------------------------------------------------------------------


def test_a_recorded_action_skips_the_reminders_of_its_deadline_only(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, outbox: Path) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", tokens=["ana-phone"])
    schedule_campaign(SCHEDULED)
    dispatcher.tick(JAKARTA_FIRST)
    record_action(sessions, "ana", "playlist_transferred", datetime(2024, 10, 1, 9, 0, tzinfo=UTC))
    files = outbox_files(outbox)

    assert dispatcher.tick(JAKARTA_PLAYLIST_P7D).outcomes == {"skipped": 2}

    for channel in ("email", "push"):
        row = the_row(sessions, "ana", "playlist-transfer@P7D", channel)
        assert (row.state, row.skip_reason, row.sent_at) == (DeliveryState.SKIPPED, SkipReason.ACTION_DONE, None)
    assert outbox_files(outbox) == files
    assert dispatcher.tick(JAKARTA_REFUND_P30D).outcomes == {"sent": 2}  # the refund is still open


@pytest.mark.parametrize(("value", "state"), [
    ("true", DeliveryState.SKIPPED), ("yes", DeliveryState.SKIPPED), (True, DeliveryState.SKIPPED),
    ("false", DeliveryState.SENT), ("0", DeliveryState.SENT), ("", DeliveryState.SENT),
])
def test_a_truthy_attribute_named_by_skip_if_skips_the_reminder(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, value: object, state: DeliveryState) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", attributes={"playlist_transferred": value})
    schedule_campaign(SCHEDULED)

    dispatcher.tick(JAKARTA_PLAYLIST_P7D)

    row = the_row(sessions, "ana", "playlist-transfer@P7D")
    assert row.state == state
    assert row.skip_reason == (SkipReason.ACTION_DONE if state == DeliveryState.SKIPPED else None)


def test_a_merged_send_with_one_deadline_done_covers_only_the_live_one(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, outbox: Path) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", tokens=["ana-phone"])
    add_recipient("ben", timezone="Asia/Jakarta", tokens=["ben-phone"])
    schedule_campaign(SCHEDULED)
    record_action(sessions, "ana", "playlist_transferred", SCHEDULED)
    for action in ("playlist_transferred", "refund_requested"):
        record_action(sessions, "ben", action, SCHEDULED)

    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 2, "skipped": 2}

    email_row = the_row(sessions, "ana")
    assert email_row.state == DeliveryState.SENT
    msg = read_email(outbox, email_row)
    assert subject_of(msg) == "TikTok Music is closing on 28 November 2024"  # the refund's first announcement
    assert "transfer your playlists" not in text_of(msg, "plain").lower()
    assert "music.tiktok.com/transfer" not in text_of(msg, "html")
    push = read_push(outbox, the_row(sessions, "ana", channel="push"))
    assert datetime.fromisoformat(push["expires_at"]) == JAKARTA_REFUND_DEADLINE
    assert push["collapse_key"] == f"{CAMPAIGN_ID}:refund"
    assert {(r.state, r.skip_reason) for r in rows_of(sessions, "ben").values()} == {
        (DeliveryState.SKIPPED, SkipReason.ACTION_DONE)}


def test_an_action_recorded_after_the_tick_time_does_not_count_yet(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher) -> None:
    add_recipient("ana", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED)
    record_action(sessions, "ana", "playlist_transferred", JAKARTA_PLAYLIST_P7D + timedelta(hours=1))

    dispatcher.tick(JAKARTA_PLAYLIST_P7D)

    assert the_row(sessions, "ana", "playlist-transfer@P7D").state == DeliveryState.SENT


def test_a_row_still_pending_after_its_deadline_is_skipped(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, outbox: Path) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", tokens=["ana-phone"])
    schedule_campaign(JAKARTA_PLAYLIST_P7D + timedelta(days=1))  # the playlist's last-day reminder comes first
    with transaction(sessions) as s:  # it falls due and is materialized ...
        assert queries.materialize_due(s, JAKARTA_PLAYLIST_P1D, send_channels) == 2
    set_state(sessions, CampaignState.PAUSED, JAKARTA_PLAYLIST_P1D)  # ... but paused before it is sent
    after = JAKARTA_PLAYLIST_DEADLINE + timedelta(hours=1)
    set_state(sessions, CampaignState.SCHEDULED, after)

    assert dispatcher.tick(after).outcomes == {"skipped": 2}

    for channel in ("email", "push"):
        row = the_row(sessions, "ana", "playlist-transfer@P1D", channel)
        assert (row.state, row.skip_reason) == (DeliveryState.SKIPPED, SkipReason.DEADLINE_PASSED)
    assert outbox_files(outbox) == []


def as_shipped(spread: bool) -> str | None:
    """The shipped campaign's text with its spread (PT20M), or None: the fixture's text without it."""
    return CAMPAIGN_FILE.read_text(encoding="utf-8") if spread else None


@pytest.mark.parametrize("spread", [False, True], ids=["at-the-send-time", "shipped-spread"])
def test_a_send_due_while_paused_is_not_sent_after_its_deadline(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, outbox: Path, spread: bool) -> None:
    add_recipient("ana", timezone="Asia/Jakarta")
    schedule_campaign(JAKARTA_PLAYLIST_P7D + timedelta(days=1), as_shipped(spread))
    set_state(sessions, CampaignState.PAUSED, JAKARTA_PLAYLIST_P1D - timedelta(hours=1))
    assert dispatcher.tick(JAKARTA_PLAYLIST_P1D).claimed == 0
    after = JAKARTA_PLAYLIST_DEADLINE + timedelta(hours=1)
    set_state(sessions, CampaignState.SCHEDULED, after)

    report = dispatcher.tick(after)

    assert (report.materialized, report.claimed) == (1, 0)  # recorded as skipped, never claimed
    assert outbox_files(outbox) == []
    assert {(r.send_key, r.state, r.skip_reason) for r in rows_of(sessions, "ana").values()} == {
        ("playlist-transfer@P1D", DeliveryState.SKIPPED, SkipReason.DEADLINE_PASSED)}
    # the next send, once its spread (when there is one) has passed
    assert dispatcher.tick(JAKARTA_REFUND_P30D + timedelta(minutes=20 if spread else 0)).outcomes == {"sent": 1}


@pytest.mark.parametrize("spread", [False, True], ids=["at-the-send-time", "shipped-spread"])
def test_after_a_pause_only_the_newest_reminder_of_each_deadline_goes_out(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, outbox: Path, spread: bool) -> None:
    add_recipient("ana", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED, as_shipped(spread))
    set_state(sessions, CampaignState.PAUSED, SCHEDULED)
    resumed = JAKARTA_PLAYLIST_P1D + timedelta(hours=1)  # paused through the 30-day and 7-day reminders
    set_state(sessions, CampaignState.SCHEDULED, resumed)

    assert dispatcher.tick(resumed).outcomes == {"sent": 2, "skipped": 1}

    p7d = the_row(sessions, "ana", "playlist-transfer@P7D")
    assert (p7d.state, p7d.skip_reason) == (DeliveryState.SKIPPED, SkipReason.SUPERSEDED)
    assert the_row(sessions, "ana", "playlist-transfer@P1D").state == DeliveryState.SENT
    # The first message still goes out, but only for the refund: the playlist has a newer reminder.
    first = the_row(sessions, "ana")
    assert first.state == DeliveryState.SENT
    body = text_of(read_email(outbox, first), "plain")
    assert "request a refund" in body.lower() and "transfer your playlists" not in body.lower()


def test_a_push_row_whose_tokens_were_all_deactivated_is_skipped(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher) -> None:
    seq = add_recipient("ana", timezone="Asia/Jakarta", tokens=["ana-phone"])
    schedule_campaign(SCHEDULED)
    with transaction(sessions) as s:
        queries.materialize_due(s, JAKARTA_FIRST, send_channels)
        s.execute(update(PushToken).where(PushToken.recipient_seq == seq).values(active=False))

    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 1, "skipped": 1}

    row = the_row(sessions, "ana", channel="push")
    assert (row.state, row.skip_reason) == (DeliveryState.SKIPPED, SkipReason.NO_ADDRESS)


# --- channel outcomes, with a scripted channel -------------------------------------------------------


def busy(delivery_id: int) -> SendResult:
    return SendResult.retry(delivery_id, "busy", retry_after=120)


def busy_no_hint(delivery_id: int) -> SendResult:
    return SendResult.retry(delivery_id, "busy")


def no_such_mailbox(delivery_id: int) -> SendResult:
    return SendResult.invalid(delivery_id, "no such mailbox")


def ScriptedEmail(*steps: Step) -> ScriptedChannel:
    return ScriptedChannel("email", *steps)


RETRY_BASE = 10.0
MAX_ATTEMPTS = 3


@pytest.fixture
def scripted(sessions: sessionmaker[Session], add_recipient: AddRecipient,
             schedule_campaign: Schedule) -> Callable[..., tuple[Dispatcher, ScriptedChannel]]:
    """A dispatcher whose email channel follows a script, for ``n`` email-only recipients in Jakarta."""

    def make(*steps: Step, n: int = 1) -> tuple[Dispatcher, ScriptedChannel]:
        for i in range(n):
            add_recipient(f"jkt-{i}", timezone="Asia/Jakarta")
        schedule_campaign(SCHEDULED)
        channel = ScriptedEmail(*steps)
        settings = Settings(retry_base_seconds=RETRY_BASE, max_attempts=MAX_ATTEMPTS)
        renderer = Renderer(settings.templates_dir, settings.locales_dir)
        dispatcher = Dispatcher(sessions, {"email": channel}, renderer, settings, rng=random.Random(0),
                                simulated_clock=True)
        return dispatcher, channel

    return make


def test_a_retry_goes_back_to_pending_no_sooner_than_asked_and_is_sent_later(
        sessions: sessionmaker[Session], scripted: Callable[..., tuple[Dispatcher, ScriptedChannel]]) -> None:
    dispatcher, _ = scripted(busy)

    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"retry": 1}

    row = the_row(sessions, "jkt-0")
    assert (row.state, row.attempts, row.lease_until, row.last_error) == (DeliveryState.PENDING, 1, None, "busy")
    assert row.next_attempt_at >= JAKARTA_FIRST + timedelta(seconds=120)
    assert events_of(sessions, row.id) == [("retry", JAKARTA_FIRST, {"error": "busy"})]
    assert dispatcher.tick(JAKARTA_FIRST + timedelta(seconds=60)).claimed == 0

    assert dispatcher.tick(row.next_attempt_at).outcomes == {"sent": 1}

    row = the_row(sessions, "jkt-0")
    assert (row.state, row.attempts, row.last_error) == (DeliveryState.SENT, 2, None)
    assert row.provider_message_id == f"fake-{row.id}"
    assert len(events_of(sessions, row.id)) == 1  # a success writes no event


def test_retries_without_a_hint_back_off_exponentially_with_jitter(
        sessions: sessionmaker[Session], scripted: Callable[..., tuple[Dispatcher, ScriptedChannel]]) -> None:
    dispatcher, _ = scripted(busy_no_hint, busy_no_hint)

    dispatcher.tick(JAKARTA_FIRST)
    first = the_row(sessions, "jkt-0").next_attempt_at
    dispatcher.tick(first)
    second = the_row(sessions, "jkt-0").next_attempt_at

    assert timedelta(seconds=RETRY_BASE / 2) <= first - JAKARTA_FIRST <= timedelta(seconds=RETRY_BASE)
    assert timedelta(seconds=RETRY_BASE) <= second - first <= timedelta(seconds=2 * RETRY_BASE)


def test_a_row_that_keeps_failing_transiently_gives_up_after_max_attempts(
        sessions: sessionmaker[Session], scripted: Callable[..., tuple[Dispatcher, ScriptedChannel]]) -> None:
    dispatcher, channel = scripted(*[busy] * MAX_ATTEMPTS)

    now = JAKARTA_FIRST
    for _ in range(MAX_ATTEMPTS):
        dispatcher.tick(now)
        now = the_row(sessions, "jkt-0").next_attempt_at

    row = the_row(sessions, "jkt-0")
    assert (row.state, row.attempts) == (DeliveryState.FAILED, MAX_ATTEMPTS)
    assert row.last_error == f"gave up after {MAX_ATTEMPTS} attempts: busy"
    assert [e[0] for e in events_of(sessions, row.id)] == ["retry", "retry", "failed"]
    assert dispatcher.tick(now + timedelta(days=1)).claimed == 0
    assert len(channel.batches) == MAX_ATTEMPTS


@pytest.mark.parametrize("step", [no_such_mailbox, InvalidRecipientError("no such mailbox", provider="fake")],
                         ids=["result", "raised"])
def test_an_invalid_recipient_fails_at_once(
        sessions: sessionmaker[Session], scripted: Callable[..., tuple[Dispatcher, ScriptedChannel]],
        step: Step) -> None:
    dispatcher, channel = scripted(step)

    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"failed": 1}

    row = the_row(sessions, "jkt-0")
    assert (row.state, row.attempts, row.last_error) == (DeliveryState.FAILED, 1, "no such mailbox")
    assert events_of(sessions, row.id) == [("failed", JAKARTA_FIRST, {"error": "no such mailbox"})]
    assert dispatcher.tick(JAKARTA_FIRST + timedelta(days=1)).claimed == 0
    assert len(channel.batches) == 1


def test_a_transient_error_for_the_whole_batch_retries_every_row_of_it(
        sessions: sessionmaker[Session], scripted: Callable[..., tuple[Dispatcher, ScriptedChannel]]) -> None:
    dispatcher, channel = scripted(TransientError("provider down", retry_after=60, provider="fake"), n=3)

    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"retry": 3}

    rows = [the_row(sessions, f"jkt-{i}") for i in range(3)]
    assert channel.batches == [sorted(r.id for r in rows)]
    for row in rows:
        assert (row.state, row.attempts, row.last_error) == (DeliveryState.PENDING, 1, "provider down")
        assert row.next_attempt_at >= JAKARTA_FIRST + timedelta(seconds=60)
        assert events_of(sessions, row.id) == [("retry", JAKARTA_FIRST, {"error": "provider down"})]

    assert dispatcher.tick(max(r.next_attempt_at for r in rows)).outcomes == {"sent": 3}
    assert {the_row(sessions, f"jkt-{i}").state for i in range(3)} == {DeliveryState.SENT}


def timed_out(delivery_id: int) -> SendResult:
    return SendResult.retry(delivery_id, "no answer", uncertain=True)


def test_a_request_that_may_have_been_taken_is_resent_and_flagged_uncertain(
        sessions: sessionmaker[Session], scripted: Callable[..., tuple[Dispatcher, ScriptedChannel]]) -> None:
    dispatcher, _ = scripted(timed_out)

    dispatcher.tick(JAKARTA_FIRST)
    row = the_row(sessions, "jkt-0")
    assert (row.state, row.uncertain) == (DeliveryState.PENDING, True)  # a service announcement is resent

    dispatcher.tick(row.next_attempt_at)
    row = the_row(sessions, "jkt-0")
    assert (row.state, row.uncertain) == (DeliveryState.SENT, True)  # and stays counted as possibly twice


def test_a_marketing_campaign_skips_a_message_that_may_have_been_taken(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule) -> None:
    add_recipient("jkt-0", timezone="Asia/Jakarta")
    text = CAMPAIGN_FILE_TEXT.replace("category: service", "category: marketing")
    schedule_campaign(SCHEDULED, text=text)
    settings = Settings()
    dispatcher = Dispatcher(sessions, {"email": ScriptedEmail(timed_out)},
                            Renderer(settings.templates_dir, settings.locales_dir), settings, simulated_clock=True)

    dispatcher.tick(JAKARTA_FIRST)

    row = the_row(sessions, "jkt-0")
    assert (row.state, row.skip_reason, row.uncertain) == (DeliveryState.SKIPPED, SkipReason.UNCERTAIN, True)


# --- the campaign's sender -----------------------------------------------------------------------------


def test_a_campaign_sender_is_the_from_and_reply_to_of_its_emails(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, outbox: Path) -> None:
    add_recipient("ana", timezone="Asia/Jakarta")
    schedule_campaign(SCHEDULED, CAMPAIGN_FILE_TEXT + "sender:\n  name: Acme Radio\n  email: news@acme.example\n"
                                                      "  reply_to: help@acme.example\n")

    dispatcher.tick(JAKARTA_FIRST)

    msg = read_email(outbox, the_row(sessions, "ana"))
    assert (msg["From"].addresses[0].display_name, msg["From"].addresses[0].addr_spec) == (
        "Acme Radio", "news@acme.example")
    assert msg["Reply-To"].addresses[0].addr_spec == "help@acme.example"


@pytest.mark.usefixtures("audience")
def test_without_a_campaign_sender_emails_come_from_the_global_sender(
        sessions: sessionmaker[Session], dispatcher: Dispatcher, outbox: Path) -> None:
    dispatcher.tick(JAKARTA_FIRST)

    msg = read_email(outbox, the_row(sessions, "ana"))
    assert msg["From"].addresses[0].addr_spec == "no-reply@music.example.com"  # NOTIFIER_EMAIL_FROM's default
    assert msg["Reply-To"] is None


# --- per-deadline channels ------------------------------------------------------------------------------


def test_rows_are_created_only_on_the_channels_of_the_deadlines_a_send_carries(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        dispatcher: Dispatcher, outbox: Path) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", tokens=["ana-phone"])
    email_only_refund = CAMPAIGN_FILE_TEXT.replace("    skip_if: refund_requested\n",
                                                   "    skip_if: refund_requested\n    channels: [email]\n")
    assert email_only_refund != CAMPAIGN_FILE_TEXT
    schedule_campaign(SCHEDULED, email_only_refund)

    dispatcher.tick(JAKARTA_FIRST)
    dispatcher.tick(JAKARTA_REFUND_P30D)

    rows = rows_of(sessions, "ana")
    assert {key for key, channel in rows if channel == "push"} == {
        "playlist-transfer@P30D", "playlist-transfer@P7D", "playlist-transfer@P1D"}  # no refund on push
    assert {key for key, channel in rows if channel == "email"} == {
        FIRST_KEY, "playlist-transfer@P7D", "playlist-transfer@P1D", "refund@P30D"}  # merged as before
    push = read_push(outbox, rows["playlist-transfer@P30D", "push"])
    assert "28 November" not in push["notification"]["body"]  # the refund is not announced on push
    assert push["collapse_key"] == f"{CAMPAIGN_ID}:playlist-transfer"
