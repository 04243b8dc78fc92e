"""A dispatcher whose clock disagrees with the ledger database's sends nothing, and every view says why.

On main, a tick whose clock ran a day ahead skipped a whole campaign as ``deadline_passed``, for good. Now every tick
on the real clock compares its time with the database's; past NOTIFIER_MAX_CLOCK_SKEW_SECONDS it does nothing and
leaves a hold in the ledger for ``status``, ``campaign list`` and the dashboard. Simulated clocks (the demo, tests,
``dispatch --now``) say so, and are not checked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from notifier.cli import cli
from notifier.config import Settings
from notifier.ledger import holds
from notifier.ledger.db import transaction
from notifier.ledger.models import DeliveryState
from notifier.reports import campaign_lines, campaign_status
from notifier.wiring import build_dispatcher
from tests.conftest import shipped_catalogs_as, wave_now, wave_spec
from tests.ledger_views import rows_of

CAMPAIGN_ID = "clock-wave"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(outbox_dir=tmp_path / "outbox",
                    locales_dir=shipped_catalogs_as(tmp_path / "locales", CAMPAIGN_ID))


@pytest.fixture
def scheduled(sessions: sessionmaker[Session], add_recipient: object, settings: Settings) -> datetime:
    """One recipient in Jakarta and a wave due now on the real clock; returns that now."""
    from notifier.campaign import parse_campaign
    from notifier.ledger import queries
    from notifier.planner import plan_zone
    from notifier.render import Content

    now = wave_now()
    add_recipient("ana", tokens=["phone-ana"])  # type: ignore[operator]
    spec = wave_spec(now, CAMPAIGN_ID)
    campaign = parse_campaign(spec, source=f"{CAMPAIGN_ID}.yaml")
    with transaction(sessions) as s:
        queries.schedule(s, campaign, spec, now, Content.of(campaign, settings.templates_dir, settings.locales_dir),
                         plan_zone)
    return now


def test_a_tick_on_a_clock_a_day_ahead_sends_nothing_and_every_view_says_why_until_the_clocks_agree(
        sessions: sessionmaker[Session], settings: Settings, scheduled: datetime) -> None:
    dispatcher = build_dispatcher(settings, sessions)  # the real clock: checked against the ledger's

    ahead = dispatcher.tick(datetime.now(UTC) + timedelta(days=1, minutes=1))

    assert ahead.held is not None and "1.0 days ahead of the ledger database's" in ahead.held
    assert "NOTIFIER_MAX_CLOCK_SKEW_SECONDS" in ahead.held
    assert (ahead.materialized, ahead.claimed, dict(ahead.outcomes)) == (0, 0, {})
    assert rows_of(sessions, "ana") == {}  # nothing skipped as deadline_passed: the wave is still owed
    with sessions() as s:
        status, lines = campaign_status(s, CAMPAIGN_ID), campaign_lines(s)
    assert status.held == [ahead.held] and status.as_dict()["held"] == [ahead.held]
    assert lines[0].held == (ahead.held,)

    agreed = dispatcher.tick(datetime.now(UTC))

    assert agreed.held is None
    assert dict(agreed.outcomes) == {"sent": 2}
    with sessions() as s:
        assert holds.active(s) == []
        assert campaign_status(s, CAMPAIGN_ID).held == []
    dispatcher.close()


def test_a_worker_whose_clock_is_behind_leaves_its_chunk_queued(
        sessions: sessionmaker[Session], settings: Settings, scheduled: datetime) -> None:
    ticker = build_dispatcher(settings, sessions)
    published: list[list[int]] = []
    ticker.enqueue(datetime.now(UTC), lambda _channel, ids: published.append(ids), chunk_size=10)
    worker = build_dispatcher(settings, sessions)

    counts = worker.run_chunk(published[0], "worker-behind", datetime.now(UTC) - timedelta(minutes=10))

    assert counts == {}
    assert {r.state for r in rows_of(sessions, "ana").values()} == {DeliveryState.QUEUED}
    assert worker.run_chunk(published[0], "worker-on-time", datetime.now(UTC)) == {"sent": 1}
    ticker.close()
    worker.close()


def test_a_simulated_clock_says_so_and_is_not_checked(
        sessions: sessionmaker[Session], settings: Settings, scheduled: datetime) -> None:
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    report = dispatcher.tick(scheduled + timedelta(minutes=5))
    assert report.held is None and dict(report.outcomes) == {"sent": 2}
    dispatcher.close()


def test_status_and_campaign_list_print_the_hold(engine: Engine, sessions: sessionmaker[Session],
                                                 settings: Settings, scheduled: datetime) -> None:
    dispatcher = build_dispatcher(settings, sessions)
    held = dispatcher.tick(datetime.now(UTC) - timedelta(hours=3, minutes=1)).held
    assert held is not None and "3.0 h behind" in held
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "postgresql":
        with sessions() as s:
            from sqlalchemy import text

            url += f"?options=-csearch_path%3D{s.scalar(text('select current_schema()'))}"
    runner = CliRunner()
    env = {"NOTIFIER_DATABASE_URL": url}

    status = runner.invoke(cli, ["status", CAMPAIGN_ID], env=env)
    listed = runner.invoke(cli, ["campaign", "list"], env=env)
    as_json = runner.invoke(cli, ["campaign", "list", "--json"], env=env)

    assert status.exit_code == 0 and f"held: nothing is sent: {held}" in status.output
    assert listed.exit_code == 0 and f"held: nothing is sent: {held}" in listed.output
    assert json.loads(as_json.output.splitlines()[0])["held"] == [held]
    dispatcher.close()


@pytest.mark.parametrize(("skew", "expected"), [
    (timedelta(seconds=119), None),
    (timedelta(seconds=-119), None),
    (timedelta(minutes=3), "3.0 min ahead of"),
    (timedelta(days=-2), "2.0 days behind"),
])
def test_the_skew_allowed_is_two_minutes_either_way(skew: timedelta, expected: str | None) -> None:
    database = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    why = holds.skew_refusal(database + skew, database, timedelta(seconds=Settings().max_clock_skew_seconds))
    assert (why is None) if expected is None else (why is not None and expected in why)


def test_a_hosts_good_clock_never_clears_another_hosts_hold_and_a_hold_unseen_for_an_hour_is_not_shown(
        sessions: sessionmaker[Session], settings: Settings, scheduled: datetime) -> None:
    with transaction(sessions) as s:
        now = holds.ledger_now(s)
        holds.hold(s, "clock:worker-7", "worker-7's clock is 1.0 days ahead", now)
        holds.hold(s, "clock:gone", "a host since retired", now - timedelta(hours=2))
    dispatcher = build_dispatcher(settings, sessions)

    assert dispatcher.tick(datetime.now(UTC)).held is None  # this host's clock is fine: it sends

    with sessions() as s:
        assert [h.name for h in holds.active(s)] == ["clock:worker-7"]
        assert campaign_status(s, CAMPAIGN_ID).held == []  # the campaign finished: nothing is held any more
    dispatcher.close()
