"""Who gets a campaign, in a real browser (Debian's Chromium, headless, driven by Playwright): the starter's condition,
holdout and deadline condition checked as they are typed, a marketing copy of the shutdown campaign that speaks to
premium and family plans and holds 10% out, its dry run counting who matches and who is held out, and once the
demo's simulated clock has played it to its end, its results comparing the holdout with those sent to. Each page is
photographed at 1366 and 390 px into test-artifacts/audience-rules/ (NOTIFIER_TEST_ARTIFACTS), and none scrolls
sideways on a phone."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.demo import CAMPAIGN
from tests.browser import dashboard_demo
from tests.conftest import ROOT
from tests.test_studio_browser import photograph

PASSWORD = "the audience rules test's own password"
WHERE = 'plan in ["premium", "family"]'
MARKETING = (ROOT / "campaigns" / f"{CAMPAIGN}.yaml").read_text(encoding="utf-8").replace(
    "category: service ", "category: marketing").replace(
    "  countries: [ID, BR, AU, SG, MX]\n", f"  countries: [ID, BR, AU, SG, MX]\n  where: '{WHERE}'\n  holdout: 10%\n")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    with dashboard_demo(tmp_path / "demo", PASSWORD, draft=False, pace=0.002) as url:  # the dashboard test's pace
        yield url


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("NOTIFIER_TEST_ARTIFACTS", "test-artifacts")) / "audience-rules"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def number(p: Any, test_id: str) -> int:
    return int(re.sub(r"\D", "", p.get_by_test_id(test_id).inner_text()))


def test_marketing_speaks_to_some_plans_holds_some_out_and_sees_the_difference(demo: str, page: Any,
                                                                               shots: Path) -> None:
    p, url = page, demo
    p.set_viewport_size({"width": 1366, "height": 900})
    p.goto(f"{url}/login")
    p.get_by_label("Admin password").fill(PASSWORD)
    p.get_by_role("button", name="Log in").click()
    p.wait_for_url(f"{url}/campaigns")

    # 1. The starter: a condition is checked as it is typed, its problem at the field with the column.
    p.goto(f"{url}/campaigns/new/starter?starter=price-change")
    assert p.locator("[data-field=holdout]").is_hidden()  # a service announcement holds nobody out
    p.get_by_label("Kind of message").select_option("marketing")
    assert p.locator("[data-field=holdout]").is_visible()
    who = p.get_by_label("Who (a condition on recipients' attributes)")
    who.fill('plan in ["premium", "family" and country != "SG"')
    problem = p.locator("[data-field=where] .live-problem")
    problem.wait_for()
    assert problem.inner_text().startswith("column 30: ") and who.get_attribute("aria-invalid") == "true"
    for width in (1366, 390):
        p.set_viewport_size({"width": width, "height": 900})
        p.locator("[data-field=where]").screenshot(path=str(shots / f"1a-where-problem-{width}.png"))
    p.set_viewport_size({"width": 1366, "height": 900})
    who.fill('plan in ["premium", "family"] and country != "SG"')
    p.get_by_label("Hold out (marketing only)").fill("10")
    p.get_by_label("Only for (a condition, optional)").fill('plan == "family"')
    p.locator("#check.ok").wait_for()
    photograph(p, shots, "1-starter-who")

    # 2. The campaign: uploaded, then tried: who matches, who is held out, and why the others get nothing.
    p.goto(f"{url}/campaigns/new")
    p.get_by_label("Upload a campaign file").set_input_files(
        files=[{"name": "marketing.yaml", "mimeType": "text/yaml", "buffer": MARKETING.encode("utf-8")}])
    p.get_by_role("button", name="Check and upload").click()
    p.wait_for_url(re.compile(rf"/campaigns/{CAMPAIGN}\?done=saved"))
    assert WHERE in p.locator("dl.facts").inner_text()
    p.goto(f"{url}/campaigns/{CAMPAIGN}/try")
    p.get_by_role("button", name="Dry run: count what would be sent").click()
    matching, held = number(p, "dry-matching"), number(p, "dry-held-out")
    assert 0 < held < matching and abs(held / matching - 0.10) < 0.03  # about 10% of those who match
    assert WHERE in p.get_by_test_id("audience-rules").inner_text()
    assert "the recipient is in the campaign's holdout" in p.locator("#dry-run").inner_text()
    photograph(p, shots, "2-try-who")

    # 3. Scheduled and played to its end; the results compare the holdout with those sent to.
    p.goto(f"{url}/campaigns/{CAMPAIGN}")
    p.get_by_role("button", name="Schedule").click()
    p.wait_for_url(re.compile(r"done=scheduled"))
    p.locator('#progress [data-phase="finished"]').wait_for(timeout=300_000)
    p.goto(f"{url}/campaigns/{CAMPAIGN}/results")
    block = p.get_by_test_id("holdout-playlist-transfer")
    assert "Held out (got nothing)" in block.inner_text() and "points" in block.inner_text()
    rates = [float(block.locator(f'[data-metric="{m}"]').inner_text().rstrip("%"))
             for m in ("held-rate", "sent-rate")]
    lift = float(block.locator('[data-metric="lift"]').inner_text())
    assert abs(rates[1] - rates[0] - lift) < 0.11  # the difference is the two shares' (each rounded to 0.1)
    photograph(p, shots, "3-results-holdout")
    block.screenshot(path=str(shots / "3b-holdout-block.png"))
    p.goto(f"{url}/campaigns/{CAMPAIGN}/results?lang=id")
    photograph(p, shots, "4-results-holdout-in-indonesian")
