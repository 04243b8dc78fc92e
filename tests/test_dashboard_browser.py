"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright): log in, upload the shutdown
campaign, see a broken file's problems next to their lines, open the gallery, schedule, pause and resume, and
watch the demo's progress reach its end, with the counts on screen equal to the ledger's. Screenshots of the
timeline, the gallery and the progress go to test-artifacts/ (NOTIFIER_TEST_ARTIFACTS)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from notifier.demo import CAMPAIGN
from notifier.ledger.db import make_engine, session_factory
from notifier.ledger.models import CampaignRow, DeliveryRow
from tests.browser import dashboard_demo, shot
from tests.conftest import ROOT

PASSWORD = "a browser test's own password"
SHUTDOWN = ROOT / "campaigns" / f"{CAMPAIGN}.yaml"
# Real seconds between two ticks of the demo's clock (``notifier demo --dashboard --pace``). The play is about 2,100
# ticks, each busy for tens of milliseconds: at 0.02 s the pauses alone came to some 40 s. A short one still lets the
# pages' requests in between ticks, and the pause holds however fast the clock goes.
PACE = 0.002


@dataclass
class Demo:
    url: str
    ledger: Path

    def sent(self) -> int:
        engine = make_engine(f"sqlite:///{self.ledger}")
        try:
            with session_factory(engine)() as s:
                return s.scalar(select(func.count()).select_from(DeliveryRow).where(DeliveryRow.state == "sent")) or 0
        finally:
            engine.dispose()

    def in_flight(self) -> int:
        """Rows a tick has claimed and not yet recorded: their batch goes out, pause or not."""
        engine = make_engine(f"sqlite:///{self.ledger}")
        try:
            with session_factory(engine)() as s:
                return s.scalar(select(func.count()).select_from(DeliveryRow)
                                .where(DeliveryRow.state.in_(("queued", "sending")))) or 0
        finally:
            engine.dispose()

    def state(self) -> str | None:
        engine = make_engine(f"sqlite:///{self.ledger}")
        try:
            with session_factory(engine)() as s:
                row = s.get(CampaignRow, CAMPAIGN)
                return str(row.state) if row else None
        finally:
            engine.dispose()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """``notifier demo --dashboard`` in a thread, with no draft: the browser uploads the campaign."""
    with dashboard_demo(tmp_path / "demo", PASSWORD, draft=False, pace=PACE) as url:
        yield Demo(url, tmp_path / "demo" / "ledger.db")


def drained(read: Any, timeout: float = 60) -> None:
    """Wait until ``read`` answers 0."""
    deadline = time.monotonic() + timeout
    while read():
        if time.monotonic() > deadline:
            raise AssertionError(f"still {read()} after {timeout} s")
        time.sleep(0.2)


def counted(page: Any, state: str) -> int:
    text = page.locator(f'#progress [data-state="{state}"]').inner_text()
    return int(re.sub(r"\D", "", text) or 0)


def test_marketing_runs_the_shutdown_campaign_in_the_browser(demo: Demo, page: object, artifacts: Path) -> None:
    p: Any = page  # Playwright's Page
    # A stranger is sent to the login page; a wrong password is said so, the right one goes where they wanted.
    p.goto(f"{demo.url}/campaigns/new")
    assert "/login?next=" in p.url
    p.get_by_label("Admin password").fill("not the password")
    p.get_by_role("button", name="Log in").click()
    assert "not right" in p.get_by_role("alert").inner_text()
    p.get_by_label("Admin password").fill(PASSWORD)
    p.get_by_role("button", name="Log in").click()
    p.wait_for_url(f"{demo.url}/campaigns/new")
    assert p.locator("#clock").inner_text() == "Simulated date: 2024-09-27 12:00 UTC"  # the demo's clock, not ours

    # A broken file: every problem under the line it names, and nothing saved.
    broken = SHUTDOWN.read_text(encoding="utf-8").replace('at: "2024-10-28T00:00"', 'at: "2024-10-32T00:00"')
    bad_line = next(i for i, ln in enumerate(broken.splitlines(), start=1) if "2024-10-32" in ln)
    p.get_by_label("Upload a campaign file").set_input_files(
        files=[{"name": "shutdown.yaml", "mimeType": "text/yaml", "buffer": broken.encode("utf-8")}])
    p.get_by_role("button", name="Check and upload").click()
    problem = p.locator(f"#L{bad_line} .problem")
    assert "2024-10-32" in problem.inner_text()
    assert p.locator("ol.source li.bad").count() == 1
    shot(p, artifacts, "1-errors-in-place")

    # The real file: saved as a draft, its timeline planned for the audience's zones.
    p.get_by_label("Upload a campaign file").set_input_files(str(SHUTDOWN))
    p.get_by_role("button", name="Check and upload").click()
    p.wait_for_url(re.compile(rf"/campaigns/{CAMPAIGN}\?done=saved"))
    assert p.locator("#state").inner_text() == "draft"
    assert p.locator("#timeline svg circle").count() > 100

    # The gallery: each email in a sandboxed frame, each push on a phone with the campaign's sender.
    p.get_by_role("link", name="Every message").click()
    p.wait_for_url(re.compile(r"/gallery$"))
    p.wait_for_load_state("load")
    frames = p.locator("iframe.email")
    assert frames.count() >= 16 and frames.first.get_attribute("sandbox") == ""
    assert "TikTok Music" in p.frame_locator("iframe.email").first.locator("body").inner_text()
    assert "TikTok Music" in (p.locator(".phone .app").first.text_content() or "")
    shot(p, artifacts, "2-gallery")

    # Schedule; the counts move without a reload; pause holds them; resume goes on to the end.
    p.get_by_role("link", name="Back to the campaign").click()
    p.get_by_role("button", name="Schedule").click()
    p.wait_for_url(re.compile(r"done=scheduled"))
    p.wait_for_function("() => parseInt(document.querySelector('#progress [data-state=sent]')"
                        ".textContent.replace(/\\D/g, '')) > 0", timeout=60_000)
    p.get_by_role("button", name="Pause").click()
    p.wait_for_url(re.compile(r"done=pause"))
    assert demo.state() == "paused"
    at_pause = demo.sent()
    # The batch a tick had claimed before the pause goes out (however long it takes); no claim comes after it.
    drained(demo.in_flight)
    held = demo.sent()
    assert held - at_pause <= 500  # NOTIFIER_BATCH_SIZE
    time.sleep(3)
    assert (demo.sent(), demo.in_flight()) == (held, 0)  # paused: the clock stands still and nothing is sent
    assert p.locator("#progress [data-phase]").get_attribute("data-phase") == "paused"
    p.get_by_role("button", name="Resume").click()
    p.wait_for_url(re.compile(r"done=resume"))
    shot(p, artifacts, "3-progress-sending")
    p.locator('#progress [data-phase="finished"]').wait_for(timeout=300_000)
    assert p.locator("#state").inner_text() == "finished"
    # Without a reload: nothing left to pause or cancel, and the simulated date has moved on with the ticks.
    p.wait_for_function("() => !document.querySelector('#pause') && !document.querySelector('#cancel')",
                        timeout=10_000)
    assert p.locator("#actions a", has_text="Every message").count() == 1
    assert re.fullmatch(r"Simulated date: 2024-1[01]-\d\d \d\d:\d\d UTC", p.locator("#clock").inner_text())
    assert counted(p, "sent") == demo.sent() > 10_000
    assert counted(p, "pending") == counted(p, "queued") == counted(p, "sending") == 0
    shot(p, artifacts, "4-progress-finished")
    p.locator('#chart [data-phase="finished"]').wait_for(timeout=30_000)  # the chart follows, without a reload
    titles = p.locator("#chart svg circle title").all_text_contents()
    assert titles and not [t for t in titles if "planned" in t]
    p.locator("#timeline").screenshot(path=str(artifacts / "5-timeline.png"))

    # Results: what the demo's recipients did with the messages, and per deadline who has acted, day by day.
    p.get_by_test_id("results-link").click()
    p.wait_for_url(re.compile(r"/results$"))
    figure = {m: int(p.locator(f'[data-metric="{m}"]').inner_text().replace(",", ""))
              for m in ("sent", "delivered", "opened", "clicked", "converted")}
    assert figure["sent"] == demo.sent()
    assert 0 < figure["clicked"] < figure["opened"] < figure["sent"] and figure["delivered"] > 0
    assert figure["converted"] > 0
    assert p.locator("#funnel svg polyline").count() == 2  # one line per deadline with a skip_if
    shot(p, artifacts, "5b-results")
    p.locator("#funnel").screenshot(path=str(artifacts / "5c-funnel.png"))  # README's picture of the funnel
    p.locator("table.sortable thead a", has_text="Opened").click()
    p.wait_for_url(re.compile(r"sort=opened&dir=desc"))
    column = [h.inner_text() for h in p.locator("table.sortable thead th").all()].index("Opened ▼")
    opened = [int(v.replace(",", "")) for v in p.locator(f"table.sortable tbody tr td:nth-child({column + 1})")
              .all_inner_texts()]
    assert opened == sorted(opened, reverse=True) and opened[0] > 0
    left = int(p.get_by_test_id("funnel-playlist-transfer").inner_text().split("; ")[1].split()[0].replace(",", ""))
    with p.expect_download() as download:
        p.get_by_test_id("funnel-playlist-transfer").get_by_role("link").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "recipient_id" and len(lines) - 1 == left > 0
    p.goto(f"{demo.url}/campaigns/{CAMPAIGN}")

    # One recipient: what they got, in their own zone, with reasons.
    p.get_by_label("Recipient id").fill("u00001")
    p.get_by_role("button", name="Show what they get").click()
    assert "Asia/Makassar" in p.locator("dl.facts").inner_text()
    assert p.locator("tbody tr").count() >= 4

    # The dashboard in Indonesian, and every visible form control has a label.
    p.get_by_role("link", name="Bahasa Indonesia").click()
    assert p.locator("html").get_attribute("lang") == "id"
    p.goto(f"{demo.url}/campaigns/{CAMPAIGN}")
    assert p.get_by_role("heading", name="Linimasa").is_visible()
    shot(p, artifacts, "6-campaign-in-indonesian")
    p.keyboard.press("Tab")  # the keyboard reaches the skip link first
    assert p.evaluate("() => document.activeElement.getAttribute('href')") == "#main"
    unlabelled = p.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)""")
    assert unlabelled == []


def test_without_a_session_or_a_token_nothing_changes(demo: Demo, browser: Any) -> None:
    context = browser.new_context()
    try:
        stranger = context.request
        for path in ("/campaigns/new", f"/campaigns/{CAMPAIGN}/schedule", f"/campaigns/{CAMPAIGN}/pause",
                     f"/campaigns/{CAMPAIGN}/cancel", "/logout"):
            assert stranger.post(f"{demo.url}{path}", form={"confirm": "yes"}, max_redirects=0).status == 401, path
        page = context.new_page()
        page.goto(f"{demo.url}/login")
        page.get_by_label("Admin password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{demo.url}/campaigns")
        forged = context.request.post(f"{demo.url}/campaigns/new", form={"text": SHUTDOWN.read_text()},
                                      max_redirects=0)
        assert forged.status == 403  # logged in, but the form has no CSRF token
        assert demo.state() is None and not (demo.ledger.parent / "campaigns" / f"{CAMPAIGN}.yaml").exists()
    finally:
        context.close()
