"""An unsubscribe means what it says, through the real ``notifier serve``: from a service campaign's email it stops
the rest of that campaign for that recipient on every channel, while everyone else, and that recipient's other
campaigns, go on; from a marketing email it stops all marketing while service mail goes on. The pages say which, in
the recipient's language; lifting the opt-out on the command line brings the messages back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from alembic import command
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from notifier.cli import cli
from notifier.config import Settings
from notifier.ledger import suppressions
from notifier.ledger.db import alembic_config, session_factory, transaction, upgrade
from notifier.ledger.models import Suppression
from notifier.web import create_app
from notifier.wiring import build_dispatcher
from tests.unsubscribing import (
    PUBLIC_URL,
    SECRET,
    WAVES,
    OwnContent,
    delivery_id,
    list_unsubscribe,
    one_click,
    outbox_email,
    outcomes,
    own_content,
    schedule,
    serve_env,
    serving,
    wave_at,
)

SERVICE, OTHER_SERVICE = "svc-closing", "svc-refunds"
MARKETING, OTHER_MARKETING = "mkt-offers", "mkt-news"
CHANNELS = ("email", "push")
SENT, STOPPED = ("sent", None), ("skipped", "suppressed")


@pytest.fixture
def content(tmp_path: Path) -> OwnContent:
    return own_content(tmp_path / "content", SERVICE, OTHER_SERVICE, MARKETING, OTHER_MARKETING)


@pytest.fixture
def settings(tmp_path: Path, content: OwnContent) -> Settings:
    return Settings(outbox_dir=tmp_path / "outbox", templates_dir=content.templates, locales_dir=content.locales,
                    campaigns_dir=content.campaigns, secret_key=SECRET, public_url=PUBLIC_URL)


@pytest.fixture
def audience(add_recipient: Callable[..., int]) -> None:
    add_recipient("ana", email="ana@example.com", name="Ana Lima", locale="id", tokens=["ana-phone"])
    add_recipient("bob", email="bob@example.com", name="Bob", locale="en", tokens=["bob-phone"])


def every(recipient: str, outcome: tuple[str, str | None] = SENT, *, but_first: bool = False
          ) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    """``outcome`` for each wave and channel of ``recipient`` (with ``but_first``: the first wave sent)."""
    return {(recipient, wave, channel): SENT if but_first and wave == WAVES[0] else outcome
            for wave in WAVES for channel in CHANNELS}


def link_of(settings: Settings, sessions: sessionmaker[Session], campaign_id: str, recipient: str) -> str:
    """The path of the one-click link in ``recipient``'s first email of ``campaign_id``, as the outbox wrote it."""
    message = outbox_email(settings.outbox_dir, campaign_id, delivery_id(sessions, campaign_id, recipient, "P30D"))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [link] = list_unsubscribe(message["List-Unsubscribe"])
    assert link.startswith(f"{PUBLIC_URL}/u/")
    return urlsplit(link).path


def later_waves(settings: Settings, sessions: sessionmaker[Session]) -> None:
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    for wave in WAVES[1:]:
        dispatcher.tick(wave_at(wave))


# --- service mail: the rest of that campaign stops -----------------------------------------------------------


def test_one_click_on_a_service_email_stops_the_rest_of_that_campaign_on_every_channel_and_nothing_else(
        sessions: sessionmaker[Session], audience: None, content: OwnContent, settings: Settings,
        ledger_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    schedule(sessions, content, SERVICE, "TikTok Music is closing", "service", now)
    schedule(sessions, content, OTHER_SERVICE, "Refunds are open", "service", now)
    assert build_dispatcher(settings, sessions, simulated_clock=True).tick(wave_at("P30D")).outcomes == {"sent": 8}
    ana, bob = link_of(settings, sessions, SERVICE, "ana"), link_of(settings, sessions, SERVICE, "bob")

    with serving(serve_env(ledger_url, content), tmp_path / "serve.log") as base:
        asked, bob_asked = httpx.get(base + ana, timeout=10), httpx.get(base + bob, timeout=10)
        done = one_click(base + ana)
    later_waves(settings, sessions)

    assert outcomes(sessions, SERVICE) == {**every("ana", STOPPED, but_first=True), **every("bob")}
    assert outcomes(sessions, OTHER_SERVICE) == {**every("ana"), **every("bob")}
    assert len(list((settings.outbox_dir / "email" / SERVICE).glob("*.eml"))) == 1 + len(WAVES)  # ana's first, bob's
    # The pages say what the link stops, in the recipient's language, with the campaign's name as their catalog has it.
    assert asked.status_code == 200 and 'lang="id"' in asked.text
    assert ("Tekan tombol ini agar tidak lagi menerima pesan tentang “TikTok Music akan ditutup”, lewat email maupun "
            "notifikasi.") in asked.text
    assert done.status_code == 200 and 'lang="id"' in done.text
    assert ("Anda tidak akan lagi menerima pesan tentang “TikTok Music akan ditutup”, lewat email maupun "
            "notifikasi.") in done.text
    assert "Pesan kami yang lain tidak terpengaruh." in done.text and "pemasaran" not in done.text
    assert bob_asked.status_code == 200 and 'lang="en"' in bob_asked.text
    assert "Press the button to get no more messages about “TikTok Music is closing”, by email or by push." in (
        bob_asked.text)


def test_the_campaign_name_on_the_page_is_escaped(
        sessions: sessionmaker[Session], audience: None, content: OwnContent, settings: Settings) -> None:
    schedule(sessions, content, SERVICE, "Closing <b>soon</b> & more", "service", datetime.now(UTC))
    build_dispatcher(settings, sessions, simulated_clock=True).tick(wave_at("P30D"))
    client = TestClient(create_app(settings, sessions))

    page = client.get(link_of(settings, sessions, SERVICE, "bob")).text

    assert "“Closing &lt;b&gt;soon&lt;/b&gt; &amp; more”" in page and "<b>" not in page


# --- marketing mail: all marketing stops, service goes on ----------------------------------------------------


def test_one_click_on_a_marketing_email_stops_every_marketing_campaign_and_service_mail_goes_on(
        sessions: sessionmaker[Session], audience: None, content: OwnContent, settings: Settings,
        ledger_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    schedule(sessions, content, MARKETING, "TikTok Music offers", "marketing", now)
    schedule(sessions, content, OTHER_MARKETING, "TikTok Music news", "marketing", now)
    schedule(sessions, content, SERVICE, "TikTok Music is closing", "service", now)
    assert build_dispatcher(settings, sessions, simulated_clock=True).tick(wave_at("P30D")).outcomes == {"sent": 12}

    with serving(serve_env(ledger_url, content), tmp_path / "serve.log") as base:
        done = one_click(base + link_of(settings, sessions, MARKETING, "ana"))
    later_waves(settings, sessions)

    for campaign_id in (MARKETING, OTHER_MARKETING):
        assert outcomes(sessions, campaign_id) == {**every("ana", STOPPED, but_first=True), **every("bob")}
    assert outcomes(sessions, SERVICE) == {**every("ana"), **every("bob")}
    assert done.status_code == 200
    assert "Anda tidak akan lagi menerima pesan pemasaran dari kami, lewat email maupun notifikasi." in done.text
    assert "Pesan tentang akun Anda dan layanan itu sendiri tetap akan sampai kepada Anda." in done.text


# --- the list: shown with its scope, lifted on the command line ----------------------------------------------


def test_a_campaign_opt_out_is_listed_with_its_scope_and_lifting_the_address_brings_the_campaign_back(
        sessions: sessionmaker[Session], audience: None, content: OwnContent, settings: Settings,
        ledger_url: str) -> None:
    schedule(sessions, content, SERVICE, "TikTok Music is closing", "service", datetime.now(UTC))
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    dispatcher.tick(wave_at("P30D"))
    assert one_click_in_process(settings, sessions, link_of(settings, sessions, SERVICE, "ana")) == 200
    run = CliRunner().invoke
    scope = f"campaign:{SERVICE}"

    listed = json.loads(run(cli, ["--database-url", ledger_url, "suppressions", "list", "--json"]).output)
    checked = run(cli, ["--database-url", ledger_url, "suppressions", "check", "ana@example.com"])
    refused = run(cli, ["--database-url", ledger_url, "suppressions", "remove", "ana@example.com", "--scope",
                        "campaign:"])
    removed = run(cli, ["--database-url", ledger_url, "suppressions", "remove", "ana@example.com", "--scope", scope])
    dispatcher.tick(wave_at("P7D"))

    assert sorted((e["kind"], e["scope"], e["reason"], e["campaign"]) for e in listed) == [
        (kind, scope, "unsubscribed", SERVICE) for kind in ("email", "recipient", "token")]
    assert checked.exit_code == 0 and f"suppressed ({scope}): unsubscribed, from unsubscribe-link" in checked.output
    assert refused.exit_code == 2 and "scope must be all, marketing or campaign:<campaign id>" in refused.output
    assert removed.exit_code == 0 and "removed 3 entries" in removed.output  # the address, ana and her phone
    assert outcomes(sessions, SERVICE)["ana", "P7D", "email"] == SENT
    assert outcomes(sessions, SERVICE)["ana", "P7D", "push"] == SENT


def one_click_in_process(settings: Settings, sessions: sessionmaker[Session], path: str) -> int:
    client = TestClient(create_app(settings, sessions))
    return client.post(path, content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code


def test_lifting_an_address_lifts_no_bounce_of_its_tokens(sessions: sessionmaker[Session], audience: None) -> None:
    now = datetime.now(UTC)
    with transaction(sessions) as s:
        suppressions.suppress(s, [("token", "ana-phone")], scope="all", reason="bounced", source="test", now=now)
        suppressions.suppress(s, [("recipient", "ana"), ("email", "ana@example.com")], scope="marketing",
                              reason="unsubscribed", source="test", now=now)
    with transaction(sessions) as s:
        assert suppressions.lift(s, "email", "ANA@example.com") == 2
    with sessions() as s:
        assert [(e.kind, e.scope) for e in suppressions.listing(s)] == [("token", "all")]


# --- the guard's rule ---------------------------------------------------------------------------------------


def test_a_campaign_opt_out_stops_that_campaign_on_every_channel_whatever_its_category_and_no_other() -> None:
    listed = suppressions.Listed(recipient={}, email={}, tokens={"t": {f"campaign:{SERVICE}": "unsubscribed"}})
    stopped = ("suppressed: unsubscribed", ())

    for marketing in (False, True):
        assert suppressions.verdict(listed, "email", (), marketing=marketing, campaign=SERVICE) == stopped
        assert suppressions.verdict(listed, "push", ("t",), marketing=marketing, campaign=SERVICE) == stopped
        assert suppressions.verdict(listed, "push", ("t",), marketing=marketing, campaign=OTHER_SERVICE) == (
            None, ("t",))
    with pytest.raises(ValueError, match="scope must be"):
        suppressions.Addition("email", "a@example.com", "campaign:Not A Slug", "manual", "test")


# --- the migration ------------------------------------------------------------------------------------------


def test_the_migration_makes_room_for_a_campaign_scope_and_going_back_drops_only_campaign_opt_outs(
        new_ledger: Engine) -> None:
    upgrade(new_ledger, "0007")
    upgrade(new_ledger)
    sessions = session_factory(new_ledger)
    now, longest = datetime.now(UTC), "c" * 63  # the longest campaign id there is
    with transaction(sessions) as s:
        suppressions.suppress(s, [("email", "ana@example.com")], scope="marketing", reason="unsubscribed",
                              source="test", now=now)
        suppressions.suppress(s, [("email", "ana@example.com")], scope=f"campaign:{longest}",
                              reason="unsubscribed", source="test", now=now)
    with sessions() as s:
        assert sorted(s.scalars(select(Suppression.scope))) == [f"campaign:{longest}", "marketing"]

    with new_ledger.begin() as conn:
        command.downgrade(alembic_config(new_ledger, conn), "0007")
    with new_ledger.connect() as conn:
        assert list(conn.execute(text("SELECT scope FROM suppressions")).scalars()) == ["marketing"]
    upgrade(new_ledger)
