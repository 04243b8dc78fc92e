"""The studio in a real browser (Debian's Chromium, headless, driven by Playwright), as the marketer of "Acme Stream"
would use it: a price increase on 1 March 2027 in Brazil, Mexico and Indonesia with a 'cancel before' deadline.
Starter → words → two translations (pt-BR side by side, Indonesian through a PO file edited outside with babel) →
preview → an audience CSV with a wrong header mapped in the browser → dry run → a test send into the outbox →
schedule → the demo's simulated clock plays it to its end. Each page is photographed at 1366 and 390 px into
test-artifacts/studio/ (NOTIFIER_TEST_ARTIFACTS), and none scrolls sideways on a phone."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po, write_po
from sqlalchemy import func, select

from notifier.demo import DATA
from notifier.ledger.db import make_engine, session_factory
from notifier.ledger.models import DeliveryRow, Recipient, TestSend
from tests.browser import dashboard_demo

PASSWORD = "the studio test's own password"
ACME = "acme-price-2027"
# The translator of pt-BR, as far as this test needs one: whole phrases, the placeholders kept as they are.
PT = [("The last day to act is", "O último dia para agir é"), ("Find out more", "Saiba mais"),
      ("Last chance", "Última chance"), ("Important dates", "Datas importantes"), ("days left", "dias restantes"),
      ("day left", "dia restante"), ("A reminder", "Um lembrete"), ("Hi ", "Olá "), ("Act now", "Aja agora")]
CSV = ("customer,e-mail,tz,country,locale,name,plan\n"
       "acme-1,ana@example.com,America/Sao_Paulo,BR,pt-BR,Ana,basic\n"
       "acme-2,luis@example.com,America/Mexico_City,MX,en,Luis,premium\n"
       "acme-3,sari@example.com,Asia/Jakarta,ID,id,Sari,basic\n"
       "acme-4,not-an-address,Asia/Jakarta,ID,id,Budi,basic\n"
       "acme-5,rita@example.com,,BR,pt-BR,Rita,basic\n")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The dashboard demo with the first 200 of its 2,000 recipients: Acme's campaign goes to those of them in
    Brazil, Mexico and Indonesia (about 150, in each of its locales, with and without push tokens) besides its own
    four, so its dry run, fast-forward and play take seconds; nothing below depends on how many there are."""
    lines = (DATA / "audience.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "audience.csv").write_text("".join(lines[:201]), encoding="utf-8")  # the header and 200 rows
    with dashboard_demo(tmp_path / "demo", PASSWORD, draft=False, audience=tmp_path / "audience.csv") as url:
        yield url, tmp_path / "demo"


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("NOTIFIER_TEST_ARTIFACTS", "test-artifacts")) / "studio"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Ledger:
    def __init__(self, path: Path) -> None:
        self.engine = make_engine(f"sqlite:///{path}")
        self.sessions = session_factory(self.engine)

    def count(self, query: Any) -> int:
        with self.sessions() as s:
            return s.scalar(query) or 0


# Each framed email loaded again at the new size and painted (two animation frames after its load), at most 2 s;
# a page without one goes on at once.
REPAINT_FRAMES = """() => Promise.all([...document.querySelectorAll('iframe[srcdoc]')].map(f => Promise.race([
    new Promise(painted => {
        f.addEventListener('load', () => requestAnimationFrame(() => requestAnimationFrame(painted)), {once: true});
        f.srcdoc = f.srcdoc;
    }),
    new Promise(late => setTimeout(late, 2000))])))"""


def photograph(p: Any, folder: Path, name: str) -> None:
    """The page at 1366 and at 390 px; on a phone nothing may scroll sideways; every control has a label."""
    unlabelled = p.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)""")
    assert unlabelled == [], f"{name}: controls without a label: {unlabelled}"
    for width, height in ((1366, 900), (390, 844)):
        p.set_viewport_size({"width": width, "height": height})
        wide = p.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert width > 390 or wide <= 0, f"{name}: the page scrolls {wide} px sideways at 390 px"
        # The whole page in one tall viewport rather than a full-page capture: Chromium does not paint a framed
        # email outside the viewport into a full-page capture (a person who scrolls to it sees it).
        p.set_viewport_size({"width": width, "height": p.evaluate("() => document.documentElement.scrollHeight")})
        p.evaluate(REPAINT_FRAMES)
        p.screenshot(path=str(folder / f"{name}-{width}.png"))
    p.set_viewport_size({"width": 1366, "height": 900})


def portuguese(text: str) -> str:
    for en, pt in PT:
        text = text.replace(en, pt)
    return text


def test_the_marketer_of_acme_runs_a_campaign_in_the_studio(demo: tuple[str, Path], page: Any, shots: Path,
                                                            tmp_path: Path) -> None:
    url, folder = demo
    ledger = Ledger(folder / "ledger.db")
    p = page
    p.set_viewport_size({"width": 1366, "height": 900})
    p.goto(f"{url}/campaigns")
    p.get_by_label("Admin password").fill(PASSWORD)
    p.get_by_role("button", name="Log in").click()
    p.wait_for_url(f"{url}/campaigns")
    p.get_by_role("link", name="New campaign").first.click()
    p.wait_for_url(re.compile(r"/campaigns/new/starter"))

    # 1. The starter: checked as it is typed, the date says what midnight means.
    p.get_by_label("Name", exact=True).fill("Acme Stream price increase")
    p.get_by_label("Id", exact=True).fill(ACME)
    p.get_by_label("Sender name").fill("Acme Stream")
    p.get_by_label("Sender email").fill("not an address")
    p.locator("#check.bad").wait_for()
    assert "sender_email" in p.locator("[data-field=sender_email]").get_attribute("data-field")
    p.locator("[data-field=sender_email] .live-problem").wait_for()
    p.get_by_label("Sender email").fill("news@acme.example")
    p.get_by_label("Languages (locales)").fill("en, pt-BR, id")
    p.get_by_label("Countries").fill("BR, MX, ID")
    p.get_by_label("What happens").fill("Cancel before the new price")
    p.get_by_label("Deadline id").fill("cancel")
    p.get_by_label("Date").fill("2027-03-01")
    p.get_by_label("Time").fill("00:00")
    assert "the last day to act is the day before" in p.locator("[data-meaning]").inner_text()
    p.get_by_label("The action that ends the reminders (optional)").fill("plan_cancelled")
    p.locator("#check.ok").wait_for()
    assert p.locator("#check").inner_text() == "No problems: the campaign can be created."
    photograph(p, shots, "1-starter")
    p.get_by_role("button", name="Create the campaign").click()
    p.wait_for_url(re.compile(rf"/campaigns/{ACME}/words\?done=created"))

    # 2. The words, once, in English: a placeholder from the menu, a plural form per form of the language.
    subject = p.locator("#announcement-subject")
    subject.fill("Acme Stream: new prices. Cancel by ")
    subject.press("End")
    p.locator("[data-insert='{date}']").click()
    assert subject.input_value() == "Acme Stream: new prices. Cancel by {date}"
    assert p.locator("fieldset.plural").count() >= 3  # {days}: one and other
    photograph(p, shots, "2-words")
    p.get_by_role("button", name="Save and translate").click()
    p.wait_for_url(re.compile(rf"/campaigns/{ACME}/translations\?done=saved"))
    assert p.locator("[data-testid=gate]").count() == 1
    photograph(p, shots, "3-translations")

    # 3a. pt-BR side by side in the browser.
    p.get_by_role("link", name="pt-BR").click()
    entries = p.locator("li.entry")
    assert entries.count() > 10
    shown = " ".join(p.locator("li.entry .source").all_inner_texts())
    assert "{date}" in shown and "{days}" in shown and "%(" not in shown  # the marketer's placeholders, not gettext's
    for i in range(entries.count()):
        entry = entries.nth(i)
        sources = entry.locator(".source p:not(.muted)").all_inner_texts()
        boxes = entry.locator("textarea")
        for j in range(boxes.count()):
            boxes.nth(j).fill(portuguese(sources[min(j, len(sources) - 1)] if j else sources[0]))
    p.get_by_role("button", name="Save the translations").click()
    p.locator(".flash", has_text="saved").wait_for()
    assert p.locator("li.entry.status-missing").count() == 0
    photograph(p, shots, "4-translate-pt-BR")

    # 3b. Indonesian through a PO file: downloaded, translated outside with babel, imported back.
    p.goto(f"{url}/campaigns/{ACME}/translations/id")
    with p.expect_download() as download:
        p.get_by_role("link", name="Download PO").click()
    po = download.value.path()
    catalog = read_po(io.BytesIO(Path(po).read_bytes()), locale="id")
    for message in catalog:
        if message.id:  # Indonesian has one plural form
            message.string = ("ID " + message.id[1],) if isinstance(message.id, tuple) else "ID " + message.id
            message.flags.discard("fuzzy")
    edited = tmp_path / "acme-id.po"
    with edited.open("wb") as f:
        write_po(f, catalog)
    p.get_by_label("Import a translated PO or XLIFF file").set_input_files(str(edited))
    p.get_by_role("button", name="Import", exact=True).click()
    p.locator(".flash", has_text="imported").wait_for()
    assert p.locator("li.entry.status-missing").count() == 0
    photograph(p, shots, "5-translate-id-imported")
    p.goto(f"{url}/campaigns/{ACME}/translations")
    assert "Yes: every message renders" in p.locator("[data-testid=gate]").inner_text()

    # 4. The preview: email at phone and desktop widths, push on a phone.
    p.goto(f"{url}/campaigns/{ACME}/preview?locale=pt-BR")
    p.wait_for_load_state("load")
    assert p.locator("iframe.w375").count() == 1 and p.locator("iframe.w800").count() == 1
    assert "Olá" in p.frame_locator("iframe.w375").locator("body").inner_text()
    assert p.locator("[data-testid=push-title]").inner_text()
    photograph(p, shots, "6-preview")

    # 5. The audience: a CSV whose header says e-mail and tz, mapped in the browser.
    p.get_by_role("link", name="Audience").click()
    photograph(p, shots, "7-audience-file")
    p.locator("#audience-file").set_input_files(
        files=[{"name": "acme.csv", "mimeType": "text/csv", "buffer": CSV.encode("utf-8")}])
    p.wait_for_url(re.compile(rf"/campaigns/{ACME}/audience/[0-9a-f-]{{36}}"))
    assert p.locator("select[data-column='e-mail']").input_value() == "email"
    assert p.locator("select[data-column='tz']").input_value() == "timezone"
    p.locator("select[data-column='customer']").select_option("id")
    p.locator("#sample td", has_text="acme-1").first.wait_for()
    photograph(p, shots, "8-audience-mapping")
    p.get_by_role("button", name="Import", exact=True).click()
    p.wait_for_url(re.compile(r"/audience/uploads/"))
    p.locator("#upload-status[data-state=done]").wait_for(timeout=60_000)
    assert p.locator("[data-count=accepted]").inner_text() == "4"
    assert p.locator("[data-count=rejected]").inner_text() == "1"
    with p.expect_download() as download:
        p.get_by_role("link", name=re.compile("Download the rejected rows")).click()
    rejected = Path(download.value.path()).read_text(encoding="utf-8")
    assert rejected.splitlines()[0].startswith("line") and rejected.splitlines()[1].startswith("5,")
    photograph(p, shots, "9-audience-imported")
    assert ledger.count(select(func.count()).select_from(Recipient).where(Recipient.id.like("acme-%"))) == 4

    # 6. Try it: a dry run with its totals.
    p.get_by_role("link", name="Try it").click()
    p.get_by_role("button", name="Dry run: count what would be sent").click()
    messages = int(re.sub(r"\D", "", p.locator("[data-testid=dry-messages]").inner_text()))
    assert messages > 0 and p.locator("#dry-table tbody tr").count() >= 9  # 3 waves x 3 locales at least
    photograph(p, shots, "10-dry-run")
    p.get_by_role("button", name="Fast-forward into a preview outbox").click(timeout=240_000)
    assert p.locator("#ff-list li").count() >= 18  # 3 waves x 3 locales x 2 channels
    photograph(p, shots, "10b-fast-forward")
    p.locator("#ff-list a").first.click()
    p.wait_for_load_state("load")
    assert "Acme Stream" in p.frame_locator("iframe.w375").locator("body").inner_text()
    photograph(p, shots, "10c-outbox-message")

    # 7. A test send to the seed list, into the demo's outbox.
    p.get_by_role("link", name="Test send").click()
    p.locator("#s0-address").fill("marketer@acme.example")
    p.get_by_role("button", name="Save the seed list").click()
    p.locator(".flash", has_text="seed list").wait_for()
    p.locator("#t-locale").select_option("pt-BR")
    p.get_by_role("button", name="Send the test").click()
    p.locator("#test-results li.ok").first.wait_for()
    photograph(p, shots, "11-test-send")
    assert ledger.count(select(func.count()).select_from(TestSend).where(TestSend.outcome == "sent")) >= 1
    mails = [f for f in (folder / "outbox").rglob("*.eml") if ACME in str(f)]
    assert mails and "[Test]" in mails[0].read_text(encoding="utf-8", errors="replace")

    # 8. Schedule; the simulated clock plays it to its end.
    p.get_by_role("link", name="Campaign", exact=True).click()
    p.get_by_role("button", name="Schedule").click()
    p.wait_for_url(re.compile(r"done=scheduled"))
    p.locator('#progress [data-phase="finished"]').wait_for(timeout=300_000)
    photograph(p, shots, "12-finished")
    sent = ledger.count(select(func.count()).select_from(DeliveryRow)
                        .where(DeliveryRow.campaign_id == ACME, DeliveryRow.state == "sent"))
    assert sent == messages  # every message the dry run counted, and the test send is not one of them
    assert re.search(r"Simulated date: 2027-0[23]", p.locator("#clock").inner_text())  # it jumped to 2027
    # The studio in Indonesian.
    p.goto(f"{url}/campaigns/new/starter?lang=id")
    assert p.locator("html").get_attribute("lang") == "id"
    assert p.get_by_role("heading", name="Kampanye baru").is_visible()
    photograph(p, shots, "13-starter-in-indonesian")
    p.goto(f"{url}/campaigns/{ACME}/words")
    photograph(p, shots, "14-words-in-indonesian")
    ledger.engine.dispose()
