"""The dashboard on a phone and on a laptop (Debian's Chromium, headless): at 390 and 1366 CSS pixels wide, the
campaign list, a campaign's page, the gallery and the results never scroll sideways (a wide table or chart may scroll
inside its own box). Full-page screenshots of each go to test-artifacts/ (NOTIFIER_TEST_ARTIFACTS)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.demo import CAMPAIGN
from tests.browser import dashboard_demo, shot

PASSWORD = "a narrow screen's own password"
PAGES = {"campaigns": "/campaigns", "campaign": f"/campaigns/{CAMPAIGN}", "gallery": f"/campaigns/{CAMPAIGN}/gallery",
         "results": f"/campaigns/{CAMPAIGN}/results"}
# What sticks out past the viewport's right edge, outside any box that scrolls on its own: the culprits of a page
# that scrolls sideways.
STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = e => { for (let p = e.parentElement; p; p = p.parentElement) {
    if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true; } return false; };
  return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 0.5
    && !scrolls(e)).slice(0, 8)
    .map(e => `${e.tagName.toLowerCase()}.${e.className} ${e.getBoundingClientRect().right}`);
}"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``notifier demo --dashboard`` with its draft; the fixture's browser schedules it and pauses it once
    messages have gone out, so that every table of the campaign's page has rows."""
    with dashboard_demo(tmp_path_factory.mktemp("narrow") / "demo", PASSWORD) as url:
        yield url


def logged_in(browser: Any, url: str, width: int) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 844 if width < 600 else 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{url}/login")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/campaigns")
    return page


@pytest.fixture(scope="module")
def sent_some(browser: Any, dashboard: str) -> str:
    """Schedule the campaign and pause it once messages have gone out."""
    page = logged_in(browser, dashboard, 1366)
    try:
        page.goto(f"{dashboard}/campaigns/{CAMPAIGN}")
        page.get_by_role("button", name="Schedule").click()
        page.wait_for_url(re.compile(r"done=scheduled"))
        page.wait_for_function("() => parseInt(document.querySelector('#progress [data-state=sent]')"
                               ".textContent.replace(/\\D/g, '')) > 1000", timeout=60_000)
        page.get_by_role("button", name="Pause").click()
        page.wait_for_url(re.compile(r"done=pause"))
    finally:
        page.context.close()
    return dashboard


@pytest.mark.parametrize("width", [390, 1366])
def test_no_page_scrolls_sideways(browser: Any, sent_some: str, width: int, artifacts: Path) -> None:
    page = logged_in(browser, sent_some, width)
    sideways = {}
    try:
        for name, path in PAGES.items():
            page.goto(f"{sent_some}{path}")
            page.wait_for_load_state("load")
            shot(page, artifacts, f"{name}-{width}")
            page.locator("details").evaluate_all("ds => ds.forEach(d => d.open = true)")  # the timeline's table too
            wide, client = page.evaluate("() => [document.documentElement.scrollWidth, "
                                         "document.documentElement.clientWidth]")
            if wide > client:
                sideways[name] = f"{wide} > {client}: {page.evaluate(STICKING_OUT)}"
    finally:
        page.context.close()
    assert sideways == {}, f"at {width} px these pages scroll sideways: {sideways}"
