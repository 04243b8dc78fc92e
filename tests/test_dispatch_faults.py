"""The dispatcher under faults, with scripted channels on the real ledger (SQLite and PostgreSQL): an outcome is
never lost once a provider may have the message, one bad row fails alone, a refused credential pauses its channel,
retries last as long as they are worth it, and nothing goes out at night.

Each scenario ends with an audit: no message accepted twice, every row in a final state.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import parse_campaign
from notifier.config import Settings
from notifier.dispatch import Dispatcher
from notifier.errors import ChannelConfigError
from notifier.events import SendResult
from notifier.ledger import claims, queries
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignState, DeliveryRow, DeliveryState, SkipReason
from notifier.ledger.states import FINAL_STATES
from notifier.planner import plan_zone
from notifier.render import Content, Renderer
from notifier.reports import campaign_status
from notifier.testing import ScriptedChannel, sent
from tests.conftest import CAMPAIGN_FILE, ROOT, settle, shipped_catalogs_as, without_spread
from tests.ledger_views import FIRST_KEY, rows_of, the_row

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 10:00 WIB
JAKARTA_PLAYLIST_P1D = datetime(2024, 10, 27, 3, 0, tzinfo=UTC)  # 27 Oct 10:00 WIB, the playlist's last day
SPEC = without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8"))  # ticks at the send's own time


def schedule(sessions: sessionmaker[Session], settings: Settings, text: str = SPEC, now: datetime = SCHEDULED) -> None:
    campaign = parse_campaign(text, source=str(CAMPAIGN_FILE))
    with transaction(sessions) as s:
        queries.schedule(s, campaign, text, now, Content.of(campaign, settings.templates_dir, settings.locales_dir),
                         plan_zone)


def make(sessions: sessionmaker[Session], settings: Settings, **channels: ScriptedChannel) -> Dispatcher:
    renderer = Renderer(settings.templates_dir, settings.locales_dir)
    return Dispatcher(sessions, channels, renderer, settings, rng=random.Random(0), simulated_clock=True)


def states(sessions: sessionmaker[Session]) -> dict[int, DeliveryRow]:
    with sessions() as s:
        return {r.id: r for r in s.scalars(select(DeliveryRow))}


def assert_audited(sessions: sessionmaker[Session], *channels: ScriptedChannel) -> None:
    rows = states(sessions)
    assert {r.state for r in rows.values()} <= set(FINAL_STATES), \
        {r.id: r.state for r in rows.values() if r.state not in FINAL_STATES}
    for channel in channels:
        assert channel.duplicates == 0, channel.accepted
        sent_ids = {i for i, r in rows.items() if r.state == DeliveryState.SENT and r.channel == channel.name}
        assert set(channel.accepted) == sent_ids


# --- an outcome is never lost once a provider may have the message -------------------------------------------


def one_dead_then_sent() -> Callable[[int], SendResult]:
    """A push batch where the first recipient's every token is dead (deactivated, email fallback) and the rest
    went out, each also reporting a dead old token: the token hygiene runs after the outcomes are recorded."""
    calls: list[int] = []

    def step(delivery_id: int) -> SendResult:
        calls.append(delivery_id)
        if len(calls) == 1:
            return SendResult.invalid(delivery_id, "fcm UNREGISTERED (404): every push token is invalid",
                                      dead_tokens=("old-phone",))
        return SendResult.sent(delivery_id, f"fake-{delivery_id}", dead_tokens=("old-phone",))

    return step


def boom(*_args: object, **_kw: object) -> None:
    raise RuntimeError("injected fault")


STEPS_AFTER_A_SEND = {
    "building outcomes": (Dispatcher, "_outcome"),
    "deactivating dead tokens": (queries, "deactivate_tokens"),
    "adding fallback emails": (claims, "add_fallback_emails"),
    "token hygiene as a whole": (Dispatcher, "_after_send"),
}


@pytest.mark.parametrize("step", [*STEPS_AFTER_A_SEND, "the second channel raises",
                                  "the second channel is interrupted"])
def test_an_exception_at_any_step_after_a_send_loses_no_outcome_and_sends_nothing_twice(
        step: str, sessions: sessionmaker[Session], add_recipient: Callable[..., int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    for i in range(4):
        add_recipient(f"r{i}", tokens=[f"phone-{i}"], inactive_tokens=[])
    add_recipient("with-dead", tokens=["old-phone", "new-phone"])
    schedule(sessions, settings, SPEC.replace("channels: [email, push]", "channels: [email, push]\nfallback: email"))
    email = ScriptedChannel("email")
    push = ScriptedChannel("push", one_dead_then_sent())
    dispatcher = make(sessions, settings, email=email, push=push)
    if step in STEPS_AFTER_A_SEND:
        monkeypatch.setattr(*STEPS_AFTER_A_SEND[step], boom)
        dispatcher.tick(JAKARTA_FIRST)
    else:
        fault = RuntimeError("injected") if step == "the second channel raises" else KeyboardInterrupt()
        push.steps = [fault]
        if isinstance(fault, KeyboardInterrupt):
            with pytest.raises(KeyboardInterrupt):
                dispatcher.tick(JAKARTA_FIRST)
        else:
            dispatcher.tick(JAKARTA_FIRST)
    # Whatever happened, nothing is left ``sending`` to be recovered (and resent) when its lease runs out.
    assert DeliveryState.SENDING not in {r.state for r in states(sessions).values()}
    monkeypatch.undo()

    settle(dispatcher, sessions, JAKARTA_FIRST + timedelta(minutes=1), JAKARTA_FIRST + timedelta(hours=2))

    assert_audited(sessions, email, push)
    first = {(r.channel, r.state) for r in states(sessions).values() if r.send_key == FIRST_KEY}
    assert first <= {("email", DeliveryState.SENT), ("push", DeliveryState.SENT), ("push", DeliveryState.FAILED)}
    assert len(email.accepted) == 5 and len(push.accepted) >= 4


# --- one bad row fails alone ------------------------------------------------------------------------------------


@pytest.fixture
def broken_for_singapore(tmp_path: Path) -> Settings:
    """The shipped templates, where the push body breaks only for readers in Singapore (a branch no review
    sample takes), next to an intact copy for a second campaign, ``healthy``, with the shipped catalogs."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates" / "tiktok-music-shutdown", templates / "tiktok-music-shutdown")
    broken = Path(shutil.copytree(ROOT / "templates" / "tiktok-music-shutdown", templates / "broken"))
    body = broken / "push_body.txt"
    body.write_text(body.read_text(encoding="utf-8") + '{% if country_name == "Singapore" %}{{ oops }}{% endif %}\n',
                    encoding="utf-8")
    return Settings(templates_dir=templates, locales_dir=shipped_catalogs_as(tmp_path / "locales", "healthy"),
                    max_attempts=3, retry_base_seconds=60)


def test_a_message_that_cannot_be_built_fails_alone_after_its_attempts(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], broken_for_singapore: Settings) -> None:
    settings = broken_for_singapore
    add_recipient("budi", timezone="Asia/Jakarta", country="ID", locale="en", tokens=["budi-phone"])
    add_recipient("siti", timezone="Asia/Jakarta", country="SG", locale="en", tokens=["siti-phone"])
    schedule(sessions, settings, SPEC.replace("templates: tiktok-music-shutdown", "templates: broken"))
    schedule(sessions, settings, SPEC.replace("id: tiktok-music-shutdown", "id: healthy"))
    email, push = ScriptedChannel("email"), ScriptedChannel("push")
    dispatcher = make(sessions, settings, email=email, push=push)

    report = dispatcher.tick(JAKARTA_FIRST)

    # Everything but Siti's messages of the broken campaign went out (a variant renders every part at once, so
    # her email fails with her push), the other campaign to her included.
    assert report.outcomes == {"sent": 6, "retry": 2}
    bad = [r for r in states(sessions).values() if r.state != DeliveryState.SENT]
    assert {(r.campaign_id, r.channel, r.state, r.attempts) for r in bad} == {
        ("tiktok-music-shutdown", "email", DeliveryState.PENDING, 1),
        ("tiktok-music-shutdown", "push", DeliveryState.PENDING, 1)}
    reason = ("cannot build the message: RenderError: campaign tiktok-music-shutdown: template broken/push_body.txt "
              "(en): 'oops' is undefined")
    assert {r.last_error for r in bad} == {reason}

    settle(dispatcher, sessions, min(r.next_attempt_at for r in bad), JAKARTA_FIRST + timedelta(hours=2))

    bad = [r for r in states(sessions).values() if r.state != DeliveryState.SENT]
    assert {(r.channel, r.state, r.attempts, r.last_error) for r in bad} == {
        (channel, DeliveryState.FAILED, 3, f"gave up after 3 attempts: {reason}") for channel in ("email", "push")}
    assert_audited(sessions, email, push)
    with sessions() as s:
        assert campaign_status(s, "tiktok-music-shutdown").failures == [
            ("email", f"gave up after 3 attempts: {reason}", 1), ("push", f"gave up after 3 attempts: {reason}", 1)]
        assert campaign_status(s, "healthy").failures == []


# --- configuration and credentials pause their channel, they do not burn the wave -----------------------------


def test_refused_credentials_pause_the_channel_without_spending_attempts(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    settings = Settings(batch_size=2, retry_base_seconds=60)
    for i in range(5):
        add_recipient(f"r{i}", tokens=[f"phone-{i}"])
    schedule(sessions, settings)
    refused = ChannelConfigError("sendgrid 401: the API key was refused: fix SENDGRID_API_KEY",
                                 setting="SENDGRID_API_KEY", provider="sendgrid", status=401)
    email, push = ScriptedChannel("email", refused), ScriptedChannel("push")
    dispatcher = make(sessions, settings, email=email, push=push)

    report = dispatcher.tick(JAKARTA_FIRST)

    assert report.blocked == {"email": str(refused)}
    assert len(email.batches) == 1  # one request told us; the other batches of the tick never went out
    assert report.outcomes == {"sent": 5, "retry": 5}
    emails = [the_row(sessions, f"r{i}") for i in range(5)]
    assert {(r.state, r.attempts, r.last_error) for r in emails} == {(DeliveryState.PENDING, 0, str(refused))}
    assert {r.next_attempt_at for r in emails} == {JAKARTA_FIRST + timedelta(seconds=60)}

    again = dispatcher.tick(JAKARTA_FIRST + timedelta(seconds=60))  # the key was fixed: the script runs out

    assert (again.blocked, again.outcomes) == ({}, {"sent": 5})
    assert {(r.state, r.attempts) for r in (the_row(sessions, f"r{i}") for i in range(5))} == {
        (DeliveryState.SENT, 1)}
    assert_audited(sessions, email, push)


# --- retries are bounded by time ------------------------------------------------------------------------------


def test_an_hour_long_outage_a_week_before_the_deadline_loses_nothing(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    settings = Settings()  # the defaults: backoff from 60 s, capped at 15 minutes, for up to a day
    for i in range(3):
        add_recipient(f"r{i}")
    schedule(sessions, settings)
    clock = {"now": JAKARTA_FIRST}

    def down_for_an_hour(delivery_id: int) -> SendResult:
        if clock["now"] < JAKARTA_FIRST + timedelta(hours=1):
            return SendResult.retry(delivery_id, "sendgrid 503: unavailable")
        return sent(delivery_id)

    email = ScriptedChannel("email", *[down_for_an_hour] * 100)
    dispatcher = make(sessions, settings, email=email)
    settle(dispatcher, sessions, JAKARTA_FIRST, JAKARTA_FIRST + timedelta(hours=3),
           before_tick=lambda now: clock.update(now=now))

    rows = [the_row(sessions, f"r{i}") for i in range(3)]
    assert {r.state for r in rows} == {DeliveryState.SENT}
    assert all(r.sent_at < JAKARTA_FIRST + timedelta(hours=1, minutes=16) for r in rows)  # within one capped backoff
    assert max(r.attempts for r in rows) <= 10
    assert_audited(sessions, email)


def test_retries_stop_before_the_deadline_and_say_why(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    settings = Settings(retry_base_seconds=4 * 3600, retry_max_seconds=8 * 3600)  # long waits: the deadline wins
    add_recipient("ana")
    all_day = SPEC.replace('window: ["08:00", "21:00"]', 'window: ["00:00", "23:59"]')
    schedule(sessions, settings, all_day, now=JAKARTA_PLAYLIST_P1D - timedelta(days=1))
    email = ScriptedChannel("email", *[lambda i: SendResult.retry(i, "sendgrid 503: unavailable")] * 100)
    dispatcher = make(sessions, settings, email=email)

    settle(dispatcher, sessions, JAKARTA_PLAYLIST_P1D, JAKARTA_PLAYLIST_P1D + timedelta(days=1))

    row = the_row(sessions, "ana", send_key="playlist-transfer@P1D")
    assert row.state == DeliveryState.FAILED
    assert row.last_error == "gave up: the deadline comes before the next attempt: sendgrid 503: unavailable"
    assert row.updated_at < datetime(2024, 10, 27, 17, 0, tzinfo=UTC)  # 28 Oct 00:00 WIB


# --- the window holds at send time -----------------------------------------------------------------------------


def set_state(sessions: sessionmaker[Session], state: CampaignState, now: datetime) -> None:
    with transaction(sessions) as s:
        queries.set_state(s, "tiktok-music-shutdown", state, now)


def test_a_campaign_resumed_at_night_waits_for_the_morning(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    settings = Settings()
    add_recipient("ana", tokens=["ana-phone"])
    schedule(sessions, settings)
    set_state(sessions, CampaignState.PAUSED, JAKARTA_FIRST - timedelta(hours=1))
    night = datetime(2024, 9, 28, 20, 0, tzinfo=UTC)  # 03:00 WIB
    set_state(sessions, CampaignState.SCHEDULED, night)
    email, push = ScriptedChannel("email"), ScriptedChannel("push")
    dispatcher = make(sessions, settings, email=email, push=push)

    assert dispatcher.tick(night).outcomes == {"waiting for 08:00 local": 2}  # a wait for the window, no retry

    assert email.batches == push.batches == []
    morning = datetime(2024, 9, 29, 1, 0, tzinfo=UTC)  # 08:00 WIB
    for row in rows_of(sessions, "ana").values():
        assert (row.state, row.attempts, row.next_attempt_at) == (DeliveryState.PENDING, 0, morning)
        assert row.last_error == "waiting for the delivery window (08:00–21:00 local time)"
    assert dispatcher.tick(morning - timedelta(minutes=1)).claimed == 0
    assert dispatcher.tick(morning).outcomes == {"sent": 2}
    assert_audited(sessions, email, push)


def test_a_send_that_could_only_go_out_at_night_before_its_deadline_is_skipped_with_the_reason(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    settings = Settings()
    add_recipient("ana")
    schedule(sessions, settings, now=JAKARTA_PLAYLIST_P1D - timedelta(days=1))
    set_state(sessions, CampaignState.PAUSED, JAKARTA_PLAYLIST_P1D - timedelta(hours=1))
    late = datetime(2024, 10, 27, 15, 30, tzinfo=UTC)  # 22:30 WIB; the deadline is at midnight
    set_state(sessions, CampaignState.SCHEDULED, late)
    email = ScriptedChannel("email")
    dispatcher = make(sessions, settings, email=email)

    dispatcher.tick(late)

    row = the_row(sessions, "ana", send_key="playlist-transfer@P1D")
    assert (row.state, row.skip_reason) == (DeliveryState.SKIPPED, SkipReason.DEADLINE_PASSED)
    assert row.last_error == "outside the delivery window until after the deadline"
    assert email.batches == []


def test_a_send_just_after_the_window_end_still_goes_within_the_grace(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    """A wave planned at 21:00 that a busy dispatcher reaches at 21:05 is not held until the next morning."""
    settings = Settings()
    add_recipient("ana")
    schedule(sessions, settings)
    set_state(sessions, CampaignState.PAUSED, JAKARTA_FIRST - timedelta(hours=1))
    evening = datetime(2024, 9, 28, 14, 5, tzinfo=UTC)  # 21:05 WIB
    set_state(sessions, CampaignState.SCHEDULED, evening)
    email = ScriptedChannel("email")

    assert make(sessions, settings, email=email).tick(evening).outcomes == {"sent": 1}


# --- every planned message has a row and a reason --------------------------------------------------------------


def test_a_campaign_whose_last_deadline_passed_while_nothing_dispatched_is_finished_and_accounted_for(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    settings = Settings()
    add_recipient("ana")
    schedule(sessions, settings)
    email = ScriptedChannel("email")
    dispatcher = make(sessions, settings, email=email)
    dispatcher.tick(JAKARTA_FIRST)  # the first message, then nothing dispatches until December

    dispatcher.tick(datetime(2024, 12, 1, tzinfo=UTC))

    rows = rows_of(sessions, "ana")
    assert len(rows) == 6  # every planned send has its row
    assert {r.skip_reason for (key, _), r in rows.items() if key != FIRST_KEY} == {SkipReason.DEADLINE_PASSED}
    with sessions() as s:
        status = campaign_status(s, "tiktok-music-shutdown")
    assert (status.phase, status.groups_done, status.groups) == ("finished", 6, 6)
    assert status.skips == {SkipReason.DEADLINE_PASSED: 5}
    assert_audited(sessions, email)


def test_a_channel_that_keeps_raising_ends_the_tick_and_its_rows_wait_as_uncertain(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    """A transport that raises out of send itself (not through the shared flow) never loops the tick."""

    class Broken(ScriptedChannel):
        def send(self, messages: object) -> list[SendResult]:
            raise RuntimeError("transport broke")

    settings = Settings(retry_base_seconds=60)
    add_recipient("ana")
    schedule(sessions, settings)
    dispatcher = make(sessions, settings, email=Broken("email"))

    report = dispatcher.tick(JAKARTA_FIRST)

    assert (report.claimed, report.outcomes) == (1, {"retry": 1})
    row = the_row(sessions, "ana")
    assert (row.state, row.uncertain, row.next_attempt_at) == (
        DeliveryState.PENDING, True, JAKARTA_FIRST + timedelta(seconds=60))


def test_the_email_fallback_never_carries_a_deadline_announced_by_push_only(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int]) -> None:
    settings = Settings()
    add_recipient("ana", tokens=["dead-phone"])
    spec = SPEC.replace("channels: [email, push]", "channels: [email, push]\nfallback: email").replace(
        "    skip_if: playlist_transferred", "    skip_if: playlist_transferred\n    channels: [push]")
    schedule(sessions, settings, spec)
    email = ScriptedChannel("email")
    push = ScriptedChannel("push", lambda i: SendResult.invalid(i, "fcm UNREGISTERED (404): every push token is "
                                                                   "invalid", dead_tokens=("dead-phone",)))
    dispatcher = make(sessions, settings, email=email, push=push)

    dispatcher.tick(JAKARTA_FIRST)

    rows = {(key, channel): row.state for (key, channel), row in rows_of(sessions, "ana").items()}
    assert rows[(FIRST_KEY, "push")] == DeliveryState.FAILED
    assert (FIRST_KEY, "email") not in rows  # the playlist deadline is push-only: no email may carry it
    assert rows[("refund@P61D", "email")] == DeliveryState.SENT
