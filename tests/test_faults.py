"""Delivery keeps its promise under operational faults, proven with the real SendGrid and FCM SDKs against the
emulator (its own process), on SQLite and PostgreSQL.

The clock is simulated (``dispatcher.tick(now)``) while the emulator's faults are switched on and off in real
time between ticks. Each scenario ends with an audit of the ledger against what the provider accepted: no message
twice, none missing, none unexpected, every row final. ``tests/test_dispatch_faults.py`` holds the same rules with
scripted channels.
"""

from __future__ import annotations

import copy
import email
import email.policy
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
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
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignState, DeliveryRow, DeliveryState, SkipReason
from notifier.ledger.states import OPEN_STATES
from notifier.reports import DeliveryAudit, audit, campaign_status
from notifier.wiring import build_dispatcher
from tests.conftest import NO_FAULTS, TEST_SECRETS, settle
from tests.ledger_views import FIRST_KEY, rows_of

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)  # before anyone's first send
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 28 Sep, 10:00 in Jakarta (UTC+7)
JAKARTA_PLAYLIST_P7D = datetime(2024, 10, 21, 3, 0, tzinfo=UTC)  # a week before the playlist deadline
CAMPAIGN_ID = "tiktok-music-shutdown"
# Every fault off, the on/off flags included (the emulator merges a configuration onto the current one).
CLEAR: dict[str, Any] = {"sendgrid": {**NO_FAULTS["sendgrid"], "403": 0, "reject_api_key": False},
                         "fcm": {**NO_FAULTS["fcm"], "401": 0, "403": 0, "reject_token_exchange": False}}

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


def faults(**providers: dict[str, Any]) -> dict[str, Any]:
    """A full fault configuration: CLEAR with ``providers``' keys on top."""
    out = copy.deepcopy(CLEAR)
    for provider, changes in providers.items():
        out[provider].update(changes)
    return out


@pytest.fixture
def providers(sessions: sessionmaker[Session], fresh_emulator: EmulatorProcess) -> Iterator[Dispatcher]:
    """The dispatcher as production wires it for NOTIFIER_TRANSPORT=providers, with the default retry settings."""
    settings = Settings(transport="providers", sendgrid_api_key="SG.test", sendgrid_host=fresh_emulator.url,
                        google_credentials=fresh_emulator.credentials, fcm_endpoint=fresh_emulator.url, **TEST_SECRETS)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    yield dispatcher
    dispatcher.close()


# --- helpers -----------------------------------------------------------------------------------------


def audience(add_recipient: AddRecipient, n: int, *, push: bool = True) -> list[str]:
    """``n`` recipients in Jakarta, each with an email address and (``push``) one push token; their ids."""
    ids = [f"r{i:03}" for i in range(n)]
    for rid in ids:
        add_recipient(rid, name=f"Name {rid}", tokens=[f"phone-{rid}"] if push else ())
    return ids


def all_rows(sessions: sessionmaker[Session], channel: str | None = None) -> list[DeliveryRow]:
    with sessions() as s:
        q = select(DeliveryRow).order_by(DeliveryRow.id)
        return list(s.scalars(q.where(DeliveryRow.channel == channel) if channel else q))


def accepted(emulator: EmulatorProcess, kind: str) -> int:
    return sum(1 for k, _ in emulator.messages() if k == kind)


def answers(emulator: EmulatorProcess, endpoint: str) -> Counter[str]:
    return Counter(emulator.stats()["requests"].get(endpoint, {}))


def outbox_entries(outbox: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The outbox's emails as provider log entries (its X-Notifier-* headers are the ledger ids)."""
    for path in sorted((outbox / "email").rglob("*.eml")):
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        yield "email", {"custom_args": {"delivery_id": mail["X-Notifier-Delivery-Id"],
                                        "campaign_id": mail["X-Notifier-Campaign-Id"]}}


def assert_exactly_once(sessions: sessionmaker[Session], accepted_by: EmulatorProcess | Path,
                        open_rows: int = 0) -> DeliveryAudit:
    """The ledger against what the emulator (or the outbox folder) accepted: nothing twice, nothing missing,
    nothing unexpected; and no row still open (``open_rows``: how many the caller expects, and says why)."""
    entries: Iterable[tuple[str, dict[str, Any]]] = (
        outbox_entries(accepted_by) if isinstance(accepted_by, Path) else accepted_by.messages())
    with sessions() as s:
        result = audit(s, CAMPAIGN_ID, entries)
    assert (result.duplicates, result.missing, result.unexpected) == (0, 0, 0), result
    still_open = [(r.id, r.channel, r.state) for r in all_rows(sessions) if r.state in OPEN_STATES]
    assert len(still_open) == open_rows, still_open[:10]
    return result


def set_state(sessions: sessionmaker[Session], state: CampaignState, now: datetime) -> None:
    with transaction(sessions) as s:
        queries.set_state(s, CAMPAIGN_ID, state, now)


# --- refused credentials hold their channel, never the other one --------------------------------------


def test_push_credentials_that_cannot_be_refreshed_hold_push_and_never_send_an_email_twice(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    audience(add_recipient, 300)
    schedule_campaign(SCHEDULED)
    fresh_emulator.set_faults(faults(fcm={"reject_token_exchange": True}))

    report = providers.tick(JAKARTA_FIRST)

    assert set(report.blocked) == {"push"} and "GOOGLE_APPLICATION_CREDENTIALS" in report.blocked["push"]
    assert report.outcomes == {"sent": 300, "retry": 300}
    emails_accepted = [accepted(fresh_emulator, "email")]
    pushes = all_rows(sessions, "push")
    assert len(pushes) == 300 and {(r.state, r.attempts) for r in pushes} == {(DeliveryState.PENDING, 0)}
    assert all("GOOGLE_APPLICATION_CREDENTIALS" in (r.last_error or "") for r in pushes)
    for minutes in (5, 10, 20):  # the last two past the 300 s lease: nothing sent is recovered and sent again
        later = providers.tick(JAKARTA_FIRST + timedelta(minutes=minutes))
        assert set(later.blocked) == {"push"} and later.outcomes == {"retry": 300}
        emails_accepted.append(accepted(fresh_emulator, "email"))
    assert emails_accepted == [300, 300, 300, 300]
    assert {(r.state, r.attempts) for r in all_rows(sessions, "push")} == {(DeliveryState.PENDING, 0)}
    assert accepted(fresh_emulator, "push") == 0
    fresh_emulator.set_faults(CLEAR)

    fixed = providers.tick(JAKARTA_FIRST + timedelta(minutes=21))

    assert (fixed.blocked, fixed.outcomes) == ({}, {"sent": 300})
    result = assert_exactly_once(sessions, fresh_emulator)
    assert result.sent_rows == result.accepted == {"email": 300, "push": 300}
    assert {(r.state, r.attempts) for r in all_rows(sessions, "push")} == {(DeliveryState.SENT, 1)}


def test_a_refused_sendgrid_key_holds_every_email_without_failing_it_while_push_goes_out(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    audience(add_recipient, 300)
    schedule_campaign(SCHEDULED)
    fresh_emulator.set_faults(faults(sendgrid={"reject_api_key": True}))

    for minutes in (0, 5):
        report = providers.tick(JAKARTA_FIRST + timedelta(minutes=minutes))
        assert set(report.blocked) == {"email"} and "SENDGRID_API_KEY" in report.blocked["email"]
        emails = all_rows(sessions, "email")
        assert len(emails) == 300 and {(r.state, r.attempts) for r in emails} == {(DeliveryState.PENDING, 0)}
        assert all("SENDGRID_API_KEY" in (r.last_error or "") for r in emails)
    assert answers(fresh_emulator, "sendgrid") == {"401": 2}  # one request a tick told us; the rest was spared
    assert (accepted(fresh_emulator, "email"), accepted(fresh_emulator, "push")) == (0, 300)
    fresh_emulator.set_faults(CLEAR)

    fixed = providers.tick(JAKARTA_FIRST + timedelta(minutes=10))

    assert (fixed.blocked, fixed.outcomes) == ({}, {"sent": 300})
    result = assert_exactly_once(sessions, fresh_emulator)
    assert result.sent_rows == result.accepted == {"email": 300, "push": 300}
    assert not [r for r in all_rows(sessions) if r.state == DeliveryState.FAILED]


# --- an outage of both providers loses nothing with the default retry settings -----------------------


@pytest.mark.parametrize(("outage", "scheduled", "start", "recipients"), [
    (timedelta(minutes=12), SCHEDULED, JAKARTA_FIRST, 300),
    (timedelta(minutes=60), JAKARTA_PLAYLIST_P7D - timedelta(days=1), JAKARTA_PLAYLIST_P7D, 300),
], ids=["12-minutes", "60-minutes-a-week-before-the-deadline"])
def test_an_outage_of_both_providers_loses_nothing_and_sends_everything_once(
        outage: timedelta, scheduled: datetime, start: datetime, recipients: int, sessions: sessionmaker[Session],
        add_recipient: AddRecipient, schedule_campaign: Schedule, providers: Dispatcher,
        fresh_emulator: EmulatorProcess) -> None:
    audience(add_recipient, recipients)
    schedule_campaign(scheduled)
    down = faults(sendgrid={"503": 1.0}, fcm={"503": 1.0})
    is_down = [True]
    fresh_emulator.set_faults(down)

    def switch(now: datetime) -> None:  # the outage ends in real time, between two ticks
        if is_down[0] and now >= start + outage:
            fresh_emulator.set_faults(CLEAR)
            is_down[0] = False

    settle(providers, sessions, start, start + timedelta(hours=3), before_tick=switch, every=timedelta(seconds=30))

    rows = all_rows(sessions)
    assert len(rows) == 2 * recipients and Counter(r.state for r in rows) == {DeliveryState.SENT: 2 * recipients}
    assert answers(fresh_emulator, "sendgrid")["503"] > 0 and answers(fresh_emulator, "fcm")["503"] > 0
    assert all(r.sent_at >= start + outage for r in rows)
    assert max(r.sent_at for r in rows) < start + outage + timedelta(minutes=16)  # within one capped backoff (+tick)
    result = assert_exactly_once(sessions, fresh_emulator)
    assert result.sent_rows == result.accepted == {"email": recipients, "push": recipients}


# --- a recipient's bad data fails alone and says so without quoting it ---------------------------------


def test_a_line_break_in_a_name_injects_no_header_and_a_non_ascii_address_fails_alone_in_the_outbox(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        tmp_path: Path) -> None:
    audience(add_recipient, 498, push=False)
    add_recipient("crlf", name="Eve\r\nBcc: victim@example.net")
    add_recipient("jose", email="josé.müller@example.com", name="José Müller")
    schedule_campaign(SCHEDULED)
    outbox = tmp_path / "outbox"
    dispatcher = build_dispatcher(Settings(outbox_dir=outbox), sessions, simulated_clock=True)
    try:
        report = dispatcher.tick(JAKARTA_FIRST)  # returns normally
    finally:
        dispatcher.close()

    # The name is made plain before any header is built: Eve gets her email, and nobody else does.
    assert report.outcomes == {"sent": 499, "failed": 1}
    assert len(list((outbox / "email").rglob("*.eml"))) == 499
    eve = rows_of(sessions, "crlf")[FIRST_KEY, "email"]
    mail = email.message_from_bytes((outbox / "email" / eve.campaign_id / f"{eve.id}.eml").read_bytes(),
                                    policy=email.policy.default)
    assert mail["Bcc"] is None and [a.addr_spec for a in mail["To"].addresses] == ["crlf@example.com"]
    assert mail["To"].addresses[0].display_name == "Eve Bcc: victim@example.net"
    jose = rows_of(sessions, "jose")[FIRST_KEY, "email"]
    assert jose.state == DeliveryState.FAILED and jose.last_error is not None
    assert jose.last_error.startswith("outbox: cannot build the message: ")
    assert not [word for word in ("jos", "müller", "example", "@") if word in jose.last_error.lower()]
    assert not [r for r in all_rows(sessions) if r.state == DeliveryState.SENDING]
    result = assert_exactly_once(sessions, outbox)
    assert result.sent_rows == result.accepted == {"email": 499}


# --- the window holds at send time -------------------------------------------------------------------


def test_a_campaign_resumed_at_night_sends_nothing_until_the_morning_and_then_everything_once(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    audience(add_recipient, 50)
    schedule_campaign(SCHEDULED)
    set_state(sessions, CampaignState.PAUSED, JAKARTA_FIRST - timedelta(hours=1))
    night = datetime(2024, 9, 28, 20, 0, tzinfo=UTC)  # 03:00 in Jakarta
    morning = datetime(2024, 9, 29, 1, 0, tzinfo=UTC)  # 08:00 in Jakarta, the window opens
    set_state(sessions, CampaignState.SCHEDULED, night)

    assert providers.tick(night).outcomes == {"waiting for 08:00 local": 100}  # a wait for the window, no retry
    for hour in range(1, 5):  # a dispatcher that keeps ticking through the night
        assert providers.tick(night + timedelta(hours=hour)).claimed == 0
    assert providers.tick(morning - timedelta(minutes=1)).claimed == 0

    assert fresh_emulator.stats()["requests"] == {}  # not one request at night
    rows = all_rows(sessions)
    assert {(r.state, r.attempts, r.next_attempt_at) for r in rows} == {(DeliveryState.PENDING, 0, morning)}
    with sessions() as s:
        assert queries.next_wakeup(s, night + timedelta(hours=4)) == morning  # the next moment anything is due

    assert providers.tick(morning).outcomes == {"sent": 100}

    result = assert_exactly_once(sessions, fresh_emulator)
    assert result.sent_rows == result.accepted == {"email": 50, "push": 50}
    assert {r.sent_at for r in all_rows(sessions)} == {morning}


# --- every planned message has a row and a reason ----------------------------------------------------


def test_a_gap_in_dispatching_past_every_deadline_leaves_a_row_for_each_planned_send_and_a_finished_campaign(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    ids = audience(add_recipient, 20)
    schedule_campaign(SCHEDULED)
    assert providers.tick(JAKARTA_FIRST).outcomes == {"sent": 40}
    requests = fresh_emulator.stats()["requests"]

    providers.tick(datetime(2024, 12, 1, tzinfo=UTC))  # nothing dispatched from 28 Sep until December

    assert fresh_emulator.stats()["requests"] == requests  # nothing late reached a provider
    for rid in ids:
        rows = rows_of(sessions, rid)
        assert len(rows) == 12  # six planned sends, each by email and push
        assert {(r.state, r.skip_reason) for (key, _), r in rows.items() if key != FIRST_KEY} == {
            (DeliveryState.SKIPPED, SkipReason.DEADLINE_PASSED)}
    with sessions() as s:
        status = campaign_status(s, CAMPAIGN_ID)
    assert (status.phase, status.groups_done, status.next_send_at) == ("finished", status.groups, None)
    assert status.skips == {SkipReason.DEADLINE_PASSED: 200}
    assert (status.failures, status.waiting) == ([], [])
    result = assert_exactly_once(sessions, fresh_emulator)
    assert result.sent_rows == result.accepted == {"email": 20, "push": 20}


# --- failures are explained, grouped by reason, without personal data ---------------------------------


def test_failures_are_grouped_by_reason_with_counts_and_no_reason_quotes_an_address_token_or_name(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        providers: Dispatcher, fresh_emulator: EmulatorProcess) -> None:
    ids = audience(add_recipient, 40)
    refused = ["r005", "r017", "r031"]  # addresses SendGrid refuses (the importer would not have let these in)
    for rid in refused:
        add_recipient(f"{rid}-bad", email=f"{rid}@localhost", name=f"Name {rid}-bad")
    mismatched = [f"phone-{rid}" for rid in ids[::8]]  # tokens of another Firebase project
    schedule_campaign(SCHEDULED)
    fresh_emulator.set_faults(faults(fcm={"sender_mismatch_tokens": mismatched}))

    assert providers.tick(JAKARTA_FIRST).outcomes == {"sent": 75, "failed": 8}

    with sessions() as s:
        status = campaign_status(s, CAMPAIGN_ID)
    assert status.failures == [("push", "fcm SENDER_ID_MISMATCH (403): SenderId mismatch", 5),
                               ("email", "sendgrid 400: to.0.email: Does not contain a valid address.", 3)]
    assert status.waiting == []
    personal = [*ids, *refused, "Name", "phone", "localhost", "example.com", "@"]
    assert not [(why, word) for _, why, _ in status.failures for word in personal if word in why]
    failed_emails = {rid for rid in (f"{r}-bad" for r in refused)
                     if rows_of(sessions, rid)[FIRST_KEY, "email"].state == DeliveryState.FAILED}
    assert failed_emails == {f"{r}-bad" for r in refused}  # the refused addresses fail alone, their batch goes out
    assert answers(fresh_emulator, "sendgrid") == {"400": 1, "202": 1}
    result = assert_exactly_once(sessions, fresh_emulator)
    assert result.sent_rows == result.accepted == {"email": 40, "push": 35}
