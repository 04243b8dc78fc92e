"""Rendering safety and mechanics: the sandbox, strict variables, escaping of recipient data, variants."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from notifier.campaign import Campaign, load_campaign, parse_campaign, zone
from notifier.planner import parse_send_key
from notifier.render import Personal, Renderer, RenderError
from notifier.review import review
from tests.conftest import CAMPAIGN_FILE, ROOT

FIRST = parse_send_key("playlist-transfer@P30D+refund@P61D")
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)


@pytest.fixture
def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(ROOT / "templates", ROOT / "locales")


@pytest.fixture
def evil_templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates that a test can break on purpose."""
    shutil.copytree(ROOT / "templates" / "tiktok-music-shutdown", tmp_path / "tiktok-music-shutdown")
    return tmp_path


def _render(renderer: Renderer, campaign: Campaign, personal: Personal, locale: str = "en"):
    variant = renderer.variant(campaign, locale, FIRST, zone("Asia/Jakarta"), JAKARTA_FIRST, "ID", personal)
    return variant, renderer.email(variant, personal), renderer.push(variant, personal)


def test_a_script_tag_in_a_name_is_escaped_in_html_and_kept_as_text(renderer: Renderer, campaign: Campaign) -> None:
    personal = Personal("<script>alert(1)</script>")
    _, email, _ = _render(renderer, campaign, personal)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "<script>" not in email.html
    assert "Hi <script>alert(1)</script>," in email.text


def test_template_syntax_in_a_name_is_printed_literally(renderer: Renderer, campaign: Campaign) -> None:
    _, email, _ = _render(renderer, campaign, Personal("{{ 7*7 }} {% raw %}"))
    assert "Hi {{ 7*7 }} {% raw %}," in email.text
    assert "{{ 7*7 }} {% raw %}" in email.html and "49" not in email.text


def test_recipients_share_one_rendered_variant(renderer: Renderer, campaign: Campaign) -> None:
    ana, _, _ = _render(renderer, campaign, Personal("Ana"))
    budi, email, _ = _render(renderer, campaign, Personal("Budi"))
    assert ana is budi
    assert "Hi Budi," in email.text


def test_a_missing_name_greets_without_one(renderer: Renderer, campaign: Campaign) -> None:
    _, email, _ = _render(renderer, campaign, Personal(None))
    assert email.text.startswith("Hello,")


def test_the_html_email_has_inline_styles_a_table_layout_and_its_media_queries(renderer: Renderer,
                                                                               campaign: Campaign) -> None:
    _, email, _ = _render(renderer, campaign, Personal("Ana"))
    assert "<style" in email.html and "@media" in email.html  # MJML (email.mjml) keeps its <style> block
    assert 'style="' in email.html and 'role="presentation"' in email.html and email.html.count("<table") >= 2
    assert len(email.html.encode()) < 100_000


def test_a_template_reaching_for_internals_is_refused_by_the_sandbox(evil_templates: Path,
                                                                        campaign: Campaign) -> None:
    (evil_templates / "tiktok-music-shutdown" / "push_title.txt").write_text("{{ ''.__class__.__mro__ }}")
    renderer = Renderer(evil_templates, ROOT / "locales")
    with pytest.raises(RenderError, match=r"push_title.txt \(en\): refused by the sandbox: .*__class__"):
        _render(renderer, campaign, Personal("Ana"))


def test_an_undefined_variable_is_an_error_not_a_blank(evil_templates: Path, campaign: Campaign) -> None:
    (evil_templates / "tiktok-music-shutdown" / "push_body.txt").write_text("Hello {{ first_nmae }}")
    problems = review(campaign, Renderer(evil_templates, ROOT / "locales"))
    assert problems, "an undefined variable must be reported"
    assert all("'first_nmae' is undefined" in p.message for p in problems)
    where = "template tiktok-music-shutdown/push_body.txt"
    assert {p.message.split(":")[1].strip() for p in problems} == {f"{where} ({loc})" for loc in campaign.locales}


def test_a_missing_catalog_is_named(tmp_path: Path, campaign: Campaign) -> None:
    renderer = Renderer(ROOT / "templates", tmp_path)
    with pytest.raises(Exception, match=r"LC_MESSAGES/tiktok-music-shutdown.po: no catalog for en "
                                            r"\(run: notifier i18n update tiktok-music-shutdown\)"):
        _render(renderer, campaign, Personal("Ana"))


def test_a_push_over_its_limit_is_reported_by_review(evil_templates: Path, campaign: Campaign) -> None:
    (evil_templates / "tiktok-music-shutdown" / "push_title.txt").write_text("{{ 'x' * 70 }}")
    problems = review(dataclasses.replace(campaign, locales=("en",)), Renderer(evil_templates, ROOT / "locales"))
    assert problems and all("push title is 70 characters (limit 65)" in p.message for p in problems)


# --- the template context (docs/templates.md) ---------------------------------------------------------


def test_each_deadline_says_today_tomorrow_or_some_days_away(renderer: Renderer, campaign: Campaign) -> None:
    items = parse_send_key("playlist-transfer@P1D")
    jakarta = zone("Asia/Jakarta")

    def stages(day: date) -> tuple[int, str, str]:
        ctx = renderer.context(campaign, "pt-BR", items, jakarta, day, "BR", Personal())
        return ctx["deadlines"][0].days_left, ctx["deadlines"][0].stage, ctx["stage"]

    assert stages(date(2024, 10, 28)) == (0, "today", "last_day")
    assert stages(date(2024, 10, 27)) == (1, "tomorrow", "last_day")  # the shipped templates' stage is unchanged
    assert stages(date(2024, 10, 21)) == (7, "n_days", "reminder")


def test_the_context_documents_each_deadline_and_the_recipients_place(renderer: Renderer, campaign: Campaign) -> None:
    ctx = renderer.context(campaign, "pt-BR", FIRST, zone("America/Sao_Paulo"), date(2024, 9, 28), "br", Personal())
    transfer, refund = ctx["deadlines"]
    assert (transfer.id, transfer.label, transfer.date, transfer.time, transfer.days_left, transfer.stage) == (
        "playlist-transfer", "Playlist transfer", "28 de outubro de 2024", "00:00", 30, "n_days")
    assert refund.label == "Refund requests and service closure"
    assert (ctx["locale"], ctx["country_code"], ctx["country_name"]) == ("pt-BR", "BR", "Brasil")
    assert ctx["sender_name"] == "TikTok Music"  # NOTIFIER_EMAIL_FROM's name: the campaign has no sender
    assert ctx["links"]["refund"] == "https://music.tiktok.com/refund"


def test_a_deadline_time_is_written_the_locales_way(renderer: Renderer, campaign: Campaign) -> None:
    noon = dataclasses.replace(campaign, deadlines=tuple(
        dataclasses.replace(d, at=d.at.replace(hour=12)) for d in campaign.deadlines))
    ctx = renderer.context(noon, "en", FIRST, zone("Asia/Jakarta"), date(2024, 9, 28), "ID", Personal())
    assert ctx["deadlines"][0].time.lower().replace("\u202f", " ") == "12:00 pm"  # a 12-hour clock
    ctx = renderer.context(noon, "id", FIRST, zone("Asia/Jakarta"), date(2024, 9, 28), "ID", Personal())
    assert ctx["deadlines"][0].time == "12.00"


def _last_day(renderer: Renderer, campaign: Campaign, where: str, day: date) -> tuple[str, str, int, str]:
    """(date, last_day, last_day_left, last_day_until) of the transfer deadline's P1D in English, seen from ``where``
    on ``day`` (the 12-hour clock's narrow space and case made plain)."""
    ctx = renderer.context(campaign, "en", parse_send_key("playlist-transfer@P1D"), zone(where), day, "ID", Personal())
    d = ctx["deadlines"][0]
    return d.date, d.last_day, d.last_day_left, d.last_day_until.replace("\u202f", " ").lower()


def _transfer_at(campaign: Campaign, at: datetime) -> Campaign:
    return dataclasses.replace(campaign, deadlines=tuple(
        dataclasses.replace(d, at=at) if d.id == "playlist-transfer" else d for d in campaign.deadlines))


def test_a_midnight_deadlines_last_day_is_the_day_before_all_of_it(renderer: Renderer, campaign: Campaign) -> None:
    # at: 2024-10-28T00:00: the P1D wave goes out on 27 October, which is the last day itself.
    assert _last_day(renderer, campaign, "Asia/Jakarta", date(2024, 10, 27)) == (
        "28 October 2024", "27 October 2024", 0, "")
    assert _last_day(renderer, campaign, "Asia/Jakarta", date(2024, 10, 21)) == (
        "28 October 2024", "27 October 2024", 6, "")


def test_a_deadline_at_another_time_leaves_its_own_day_until_that_time(renderer: Renderer, campaign: Campaign) -> None:
    nine = _transfer_at(campaign, datetime(2024, 10, 28, 9, 0))
    assert _last_day(renderer, nine, "Asia/Jakarta", date(2024, 10, 27)) == (
        "28 October 2024", "28 October 2024", 1, "9:00 am")


def test_an_instants_last_day_is_read_on_each_recipients_clock(renderer: Renderer, campaign: Campaign) -> None:
    from datetime import timedelta, timezone

    instant = _transfer_at(campaign, datetime(2024, 10, 28, 0, 0, tzinfo=timezone(timedelta(hours=7))))
    assert _last_day(renderer, instant, "Asia/Jakarta", date(2024, 10, 27)) == (
        "28 October 2024", "27 October 2024", 0, "")  # midnight in Jakarta
    assert _last_day(renderer, instant, "Europe/London", date(2024, 10, 26)) == (
        "27 October 2024", "27 October 2024", 1, "5:00 pm")  # 17:00 on the 27th in London


def test_the_sender_name_is_the_campaigns_else_the_default_senders() -> None:
    text = CAMPAIGN_FILE.read_text() + "sender:\n  name: Acme Radio\n  email: news@acme.example\n"
    own = parse_campaign(text)
    plain = load_campaign(CAMPAIGN_FILE)
    assert Renderer(ROOT / "templates", ROOT / "locales").sender_name(own) == "Acme Radio"
    assert Renderer(ROOT / "templates", ROOT / "locales", default_sender="Radio X <x@x.example>").sender_name(
        plain) == "Radio X"
    assert Renderer(ROOT / "templates", ROOT / "locales", default_sender="x@x.example").sender_name(
        plain) == "TikTok Music is closing"  # no name anywhere: the campaign's


def test_deadlines_are_listed_in_the_file_order_whatever_the_order_of_the_send(renderer: Renderer,
                                                                                campaign: Campaign) -> None:
    reordered = dataclasses.replace(campaign, deadlines=campaign.deadlines[::-1])  # refund listed first
    ctx = renderer.context(reordered, "en", FIRST, zone("Asia/Jakarta"), date(2024, 9, 28), "ID", Personal())
    assert [d.id for d in ctx["deadlines"]] == ["refund", "playlist-transfer"]
    assert ctx["closing_date"] == "28 November 2024"  # the latest deadline, wherever it is listed
