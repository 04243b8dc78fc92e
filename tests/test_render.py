"""Rendering safety and mechanics: the sandbox, strict variables, escaping of recipient data, variants."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.campaign import Campaign, load_campaign, zone
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


def test_the_html_email_has_inlined_css_and_a_table_layout(renderer: Renderer, campaign: Campaign) -> None:
    _, email, _ = _render(renderer, campaign, Personal("Ana"))
    assert "<style" not in email.html
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
    with pytest.raises(Exception, match=r"LC_MESSAGES/messages.po: no catalog for en \(run: notifier i18n update\)"):
        _render(renderer, campaign, Personal("Ana"))


def test_a_push_over_its_limit_is_reported_by_review(evil_templates: Path, campaign: Campaign) -> None:
    (evil_templates / "tiktok-music-shutdown" / "push_title.txt").write_text("{{ 'x' * 70 }}")
    problems = review(dataclasses.replace(campaign, locales=("en",)), Renderer(evil_templates, ROOT / "locales"))
    assert problems and all("push title is 70 characters (limit 65)" in p.message for p in problems)
