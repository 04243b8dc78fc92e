"""The studio by keyboard alone, in Chromium: Enter in the starter form creates the campaign (not "Add a deadline"),
and a placeholder goes into the text the marketer tabbed into, at its end, without replacing what is written
there, and a screen reader hears it. The journey with the mouse is tests/test_studio_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import dashboard_demo

PASSWORD = "the keyboard test's own password"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    with dashboard_demo(tmp_path / "demo", PASSWORD, draft=False) as url:
        yield url


def created_by_keyboard(p: Any, demo: str, ident: str, name: str) -> Any:
    """Logged in, a campaign made from the starter by pressing Enter in its Name (Enter creates; it does not add a
    deadline); the page is then its words."""
    p.goto(f"{demo}/campaigns/new/starter")
    p.get_by_label("Admin password").fill(PASSWORD)
    p.get_by_role("button", name="Log in").click()
    p.goto(f"{demo}/campaigns/new/starter")
    p.get_by_label("Id", exact=True).fill(ident)
    p.get_by_label("Sender email").fill("news@acme.example")
    p.get_by_label("Date").fill("2027-03-01")
    p.get_by_label("Name", exact=True).fill(name)
    p.get_by_label("Name", exact=True).press("Enter")
    p.wait_for_url(re.compile(rf"/campaigns/{ident}/words\?done=created"))
    return p


def test_by_keyboard_enter_creates_and_a_placeholder_goes_where_the_marketer_tabbed(demo: str, page: Any) -> None:
    p = created_by_keyboard(page, demo, "keys-2027", "Keys")

    subject, preheader, heading = (p.locator(f"#announcement-{f}") for f in ("subject", "preheader", "heading"))
    before = {f: p.locator(f"#announcement-{f}").input_value() for f in ("subject", "preheader", "heading")}
    subject.focus()
    for _ in range(4):  # subject → its menu (one stop) → preheader → its menu → heading, all of it selected
        p.keyboard.press("Tab")
    assert p.evaluate("() => document.activeElement.id") == "announcement-heading"
    assert p.evaluate("() => { const e = document.activeElement; return e.selectionEnd - e.selectionStart; }") \
        == len(before["heading"]) > 0
    p.keyboard.press("Tab")  # the menu, right after the text
    assert p.evaluate("() => document.activeElement.dataset.insert") == "{date}"
    p.keyboard.press("Shift+Tab")  # back to the text: it stays the target
    p.keyboard.press("Tab")
    p.keyboard.press("ArrowRight")
    p.keyboard.press("Enter")
    assert heading.input_value() == before["heading"] + "{days}"
    assert subject.input_value() == before["subject"] and preheader.input_value() == before["preheader"]
    p.wait_for_function("() => document.querySelector('#ph-said').textContent.includes('{days}')")
    assert p.locator("#ph-said").text_content() == "{days} inserted into Heading"
    assert p.evaluate("() => document.activeElement.id") == "announcement-heading"


def test_a_translation_shows_its_problem_as_it_is_typed_and_loses_it_when_fixed(demo: str, page: Any) -> None:
    p = created_by_keyboard(page, demo, "live-2027", "Live")
    p.goto(f"{demo}/campaigns/live-2027/translations/pt-BR")
    entry = p.locator("li.entry").filter(has=p.locator(".source p", has_text=re.compile(r"^[^{]*\{date\}[^{]*$"))).first
    text, problems = entry.locator("textarea").first, entry.locator(".entry-live")
    assert problems.get_attribute("aria-live") == "polite"
    text.fill("")
    text.press_sequentially("Sem a data")
    problems.get_by_text("drops placeholder(s) date").wait_for()
    assert entry.locator(".status").text_content() == "check"
    text.press_sequentially(" {date}")
    p.wait_for_function("e => !e.textContent.includes('drops')", arg=problems.element_handle())
    assert entry.locator(".status").text_content() == "done" and problems.text_content() == ""
    assert p.url.endswith("/translations/pt-BR")  # no reload, nothing saved
    p.reload()
    assert "Sem a data" not in p.locator("ol.entries").text_content()
