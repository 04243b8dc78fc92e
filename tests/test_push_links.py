"""Pushes lead somewhere: each deadline's link in the campaign file, in the templates, and on the push a tap opens."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import Campaign, load_campaign, parse_campaign, zone
from notifier.config import Settings
from notifier.errors import CampaignError, Problem
from notifier.ledger import queries
from notifier.links import open_token
from notifier.planner import parse_send_key
from notifier.render import Personal, Renderer, push_link_of
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, ROOT
from tests.ledger_views import FIRST_KEY, the_row

TRANSFER, REFUND = "https://music.tiktok.com/transfer", "https://music.tiktok.com/refund"
SHIPPED = CAMPAIGN_FILE.read_text(encoding="utf-8")
SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # the merged first send, 10:00 in Jakarta
JAKARTA_REFUND_P30D = datetime(2024, 10, 29, 3, 0, tzinfo=UTC)
REFUND_P30D = "refund@P30D"


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(ROOT / "templates", ROOT / "locales")


def _with_refund_link(value: str) -> str:
    """The shipped campaign file with the refund deadline's ``link:`` set to ``value``."""
    assert SHIPPED.count("    link: refund\n") == 1
    return SHIPPED.replace("    link: refund\n", f"    link: {value}\n")


def _problem(text: str) -> Problem:
    with pytest.raises(CampaignError) as info:
        parse_campaign(text, source="shutdown.yaml")
    [problem] = info.value.problems
    return problem


def _refund_link_line() -> int:
    return SHIPPED.splitlines().index("    link: refund") + 1


# --- the campaign file ---------------------------------------------------------------------------------


def test_each_shipped_deadline_links_to_its_page_by_a_name_under_links(campaign: Campaign) -> None:
    assert {d.id: d.link for d in campaign.deadlines} == {"playlist-transfer": TRANSFER, "refund": REFUND}
    assert campaign.links["refund"] == REFUND  # the name resolves to the URL under links:


def test_a_deadline_may_link_to_an_https_page_of_its_own() -> None:
    own = parse_campaign(_with_refund_link("https://music.tiktok.com/refund?from=push"))
    assert own.deadline("refund").link == "https://music.tiktok.com/refund?from=push"


def test_a_deadline_without_a_link_has_none() -> None:
    plain = parse_campaign(SHIPPED.replace("    link: refund\n", ""))
    assert plain.deadline("refund").link is None


def test_an_unknown_link_name_is_located_and_the_close_one_suggested() -> None:
    p = _problem(_with_refund_link("refnud"))
    assert (p.file, p.line, p.field) == ("shutdown.yaml", _refund_link_line(), "deadlines[1].link")
    assert p.message == "'refnud' is neither a name under links (did you mean 'refund'?) nor an https:// URL"


def test_an_unknown_link_name_lists_the_campaigns_links_when_none_is_close() -> None:
    p = _problem(_with_refund_link("shop"))
    assert p.field == "deadlines[1].link"
    assert "the campaign's links are transfer, refund, help" in p.message


@pytest.mark.parametrize(("value", "says"), [
    ("http://music.tiktok.com/refund", "is not an https:// URL"),
    ("javascript:alert(1)", "is not an https:// URL"),
    ('"https://music.tiktok.com/a b"', "may not contain quotes, angle brackets"),
])
def test_a_link_that_is_not_a_safe_https_url_is_refused(value: str, says: str) -> None:
    p = _problem(_with_refund_link(value))
    assert (p.line, p.field) == (_refund_link_line(), "deadlines[1].link")
    assert says in p.message


# --- the templates and the rendered push -----------------------------------------------------------------


def test_templates_see_each_deadlines_link(renderer: Renderer, campaign: Campaign) -> None:
    ctx = renderer.context(campaign, "pt-BR", parse_send_key(FIRST_KEY), zone("America/Sao_Paulo"),
                           date(2024, 9, 28), "BR", Personal())
    assert [(d.id, d.link) for d in ctx["deadlines"]] == [("playlist-transfer", TRANSFER), ("refund", REFUND)]


def test_the_emails_button_goes_to_the_deadlines_own_link(renderer: Renderer) -> None:
    own = parse_campaign(_with_refund_link("https://music.tiktok.com/refund?from=mail"))
    variant = renderer.variant(own, "en", parse_send_key(REFUND_P30D), zone("Asia/Jakarta"), JAKARTA_REFUND_P30D,
                               "ID", Personal())
    assert "Request my refund: https://music.tiktok.com/refund?from=mail" in variant.text
    assert 'href="https://music.tiktok.com/refund?from=mail"' in variant.html
    assert variant.push_link == "https://music.tiktok.com/refund?from=mail"


@pytest.mark.parametrize(("send_key", "day", "page"), [
    (FIRST_KEY, JAKARTA_FIRST, TRANSFER),  # both deadlines: the transfer closes first
    ("playlist-transfer@P7D", datetime(2024, 10, 21, 3, 0, tzinfo=UTC), TRANSFER),
    (REFUND_P30D, JAKARTA_REFUND_P30D, REFUND),
])
def test_a_push_opens_the_page_of_its_most_urgent_deadline(renderer: Renderer, campaign: Campaign, send_key: str,
                                                           day: datetime, page: str) -> None:
    variant = renderer.variant(campaign, "id", parse_send_key(send_key), zone("Asia/Jakarta"), day, "ID", Personal())
    assert renderer.push(variant, Personal()).link == page


def test_a_merged_push_opens_the_soonest_deadline_that_has_a_link() -> None:
    soon, late = datetime(2024, 10, 28, tzinfo=UTC), datetime(2024, 11, 28, tzinfo=UTC)
    assert push_link_of([(late, REFUND), (soon, TRANSFER)]) == TRANSFER  # whatever the order given
    assert push_link_of([(soon, ""), (late, REFUND)]) == REFUND  # the soonest has none: the next that has one
    assert push_link_of([(soon, ""), (late, "")]) == ""


def test_without_deadline_links_a_push_opens_the_app_and_the_email_keeps_the_named_links(
        renderer: Renderer) -> None:
    plain = parse_campaign(SHIPPED.replace("    link: transfer", "    #").replace("    link: refund\n", ""))
    variant = renderer.variant(plain, "en", parse_send_key(FIRST_KEY), zone("Asia/Jakarta"), JAKARTA_FIRST, "ID",
                               Personal())
    assert renderer.push(variant, Personal()).link == ""
    assert f"Transfer my playlists: {TRANSFER}" in variant.text and f"Request my refund: {REFUND}" in variant.text


# --- through the dispatcher ---------------------------------------------------------------------------------


def test_the_dispatcher_writes_each_pushs_page_as_its_data_link(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int],
        schedule_campaign: Callable[..., queries.ScheduleResult], tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    add_recipient("ana", locale="id", tokens=["ana-phone"])
    schedule_campaign(SCHEDULED)
    dispatcher = build_dispatcher(Settings(outbox_dir=outbox), sessions, simulated_clock=True)
    try:
        dispatcher.tick(JAKARTA_FIRST)
        dispatcher.tick(JAKARTA_REFUND_P30D)
    finally:
        dispatcher.close()

    def data(send_key: str) -> dict[str, str]:
        row = the_row(sessions, "ana", send_key, channel="push")
        doc = json.loads((outbox / "push" / row.campaign_id / f"{row.id}.json").read_text(encoding="utf-8"))
        return dict(doc["data"])

    assert data(FIRST_KEY)["link"] == TRANSFER
    refund_id = the_row(sessions, "ana", REFUND_P30D, "push").id
    assert data(REFUND_P30D) == {"delivery_id": str(refund_id), "campaign_id": "tiktok-music-shutdown",
                                 "send_key": REFUND_P30D, "link": REFUND,
                                 "open_token": open_token(Settings().secret_key, refund_id)}  # for POST /opens
