"""The team (issue 28) in a real browser (Debian's Chromium, headless, driven by Playwright), on a SQLite ledger:
Ana, the first admin, logs in and invites Eddie (editor) and Paula (approver); each accepts their one-time link in
a browser of their own; Eddie creates a campaign from the studio's starter and rewrites a subject; the campaign
needs an approval that Eddie cannot give (no button, and a POST is refused); Paula approves it after reading the
diff; Eddie schedules it; the audit log names each step and who took it, and its chain is intact. The people page
with its link, the invitation, the approval and the audit log are photographed at 1366 and 390 px into
test-artifacts/team/ (NOTIFIER_TEST_ARTIFACTS), and none scrolls sideways on a phone."""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from notifier.ledger.db import make_engine, session_factory, transaction
from notifier.ledger.models import CampaignRow, Recipient
from notifier.team import people
from notifier.web import create_app, running
from notifier.web.dashboard.auth import hash_password
from tests.conftest import JOINED
from tests.test_dashboard_access import dashboard_settings

NOW = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)  # the server's clock: before the price-change starter's first wave
ID = "price-change"
PASSWORDS = {"ana@example.com": "Ana's own long password", "eddie@example.com": "Eddie's own long password",
             "paula@example.com": "Paula's own long password"}
SUBJECT = "Acme Stream: your new price from {date}"
# What sticks out past the viewport's right edge: outside any box that scrolls on its own, or positioned absolutely
# (an absolute box whose containing block is outside its scrolling box escapes that box's clip: .sr-only, say).
STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = e => { for (let p = e.parentElement; p; p = p.parentElement) {
    if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true; } return false; };
  return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 0.5
    && (!scrolls(e) || ['absolute', 'fixed'].includes(getComputedStyle(e).position))).slice(0, 8)
    .map(e => `${e.tagName.toLowerCase()}.${e.className} "${e.textContent.trim().slice(0, 20)}" `
              + `${e.getBoundingClientRect().right}`);
}"""


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed at a low scrypt cost (the server checks a hash at the cost it was made with)."""
    monkeypatch.setattr(people, "hash_password", functools.partial(hash_password, cost=(2**10, 8, 1)))


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("NOTIFIER_TEST_ARTIFACTS", "test-artifacts")) / "team"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    """A port nobody listens on now: the server's public URL (where invitation links point) must name it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    sessions: sessionmaker[Session]


@pytest.fixture
def server(sqlite_template: Path, tmp_path: Path) -> Iterator[Server]:
    """``notifier serve``'s app on uvicorn in a thread, on a SQLite ledger whose only person is Ana, the admin."""
    shutil.copyfile(sqlite_template, tmp_path / "ledger.db")
    port = free_port()
    settings = dashboard_settings(tmp_path, studio_dir=tmp_path / "studio", outbox_dir=tmp_path / "outbox",
                                  public_url=f"http://127.0.0.1:{port}")
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    with transaction(sessions) as s:
        people.add_admin(s, "ana@example.com", "Ana", PASSWORDS["ana@example.com"], NOW)
        # One recipient in Jakarta: the scheduled campaign has messages to come (with nobody it would be finished).
        s.add(Recipient(id="acme-1", email="sari@example.com", name="Sari", locale="en", timezone="Asia/Jakarta",
                        country="ID", joined_at=JOINED, updated_at=JOINED, attributes={}))
    try:
        with running(create_app(settings, sessions, clock=lambda: NOW), port=port) as url:
            yield Server(url, sessions)
    finally:
        engine.dispose()


@pytest.fixture
def laptops(browser: Any) -> Iterator[tuple[Any, Any, Any]]:
    """Ana's, Eddie's and Paula's pages, each in a browser context of its own (its own cookies)."""
    contexts = [browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US") for _ in range(3)]
    pages = [c.new_page() for c in contexts]
    for page in pages:
        page.set_default_timeout(15_000)
    try:
        yield pages[0], pages[1], pages[2]
    finally:
        for c in contexts:
            c.close()


def photograph(p: Any, folder: Path, name: str, sideways: dict[str, str]) -> None:
    """The page at 1366 and at 390 px, whole; every control has a label; what scrolls sideways on a phone (with
    what sticks out) goes into ``sideways``, checked once the whole story has run."""
    unlabelled = p.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name || e.id)""")
    assert unlabelled == [], f"{name}: controls without a label: {unlabelled}"
    for width, height in ((1366, 900), (390, 844)):
        p.set_viewport_size({"width": width, "height": height})
        p.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        p.locator("details").evaluate_all("ds => ds.forEach(d => d.open = true)")  # the audit log's diffs too
        wide = p.evaluate("() => document.documentElement.scrollWidth")
        if wide > width:
            sideways[f"{name}-{width}"] = f"{wide} px wide: {p.evaluate(STICKING_OUT)}"
    p.set_viewport_size({"width": 1366, "height": 900})


def accept(p: Any, link: str, email: str) -> None:
    p.goto(link)
    p.locator("#password").fill(PASSWORDS[email])
    p.locator("#confirm").fill(PASSWORDS[email])
    p.locator("#accept").click()
    p.wait_for_url(re.compile(r"/campaigns\?done=welcome$"))


@dataclass(frozen=True)
class Line:
    seq: int
    who: str
    action: str
    campaign: str


def audit_lines(p: Any) -> list[Line]:
    """The audit page's table, oldest line first."""
    rows = p.locator("table#audit tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")
    # The columns: #, when, who, action, campaign, detail, from.
    return sorted((Line(int(r[0]), r[2], r[3], r[4]) for r in rows), key=lambda line: line.seq)


def test_an_editor_writes_an_approver_approves_and_the_audit_log_names_them(
        server: Server, laptops: tuple[Any, Any, Any], shots: Path) -> None:
    url = server.url
    ana, eddie, paula = laptops
    sideways: dict[str, str] = {}

    # Ana, the admin made in code, logs in with her address and password.
    ana.goto(f"{url}/people")
    assert "/login?next=" in ana.url
    ana.get_by_label("Email address").fill("ana@example.com")
    ana.get_by_label("Password").fill(PASSWORDS["ana@example.com"])
    ana.get_by_role("button", name="Log in").click()
    ana.wait_for_url(f"{url}/people")

    # She invites Eddie as an editor and Paula as an approver: each one-time link is on the page once.
    links = {}
    for email, name, role in (("eddie@example.com", "Eddie", "editor"), ("paula@example.com", "Paula", "approver")):
        ana.locator("#invite-email").fill(email)
        ana.locator("#invite-name").fill(name)
        ana.locator("#invite-role").select_option(role)
        ana.locator("#invite").click()
        links[email] = ana.locator("input#invite-link").input_value()
        assert links[email].startswith(f"{url}/invite/")
        assert ana.locator(f'#people tr[data-email="{email}"]').inner_text().count("invited") == 1
    assert links["eddie@example.com"] != links["paula@example.com"]
    photograph(ana, shots, "1-people-with-link", sideways)

    # Each accepts in a browser of their own, and is logged in by it.
    eddie.goto(links["eddie@example.com"])
    assert eddie.get_by_role("heading", name="Welcome, Eddie").is_visible()
    assert "editor" in eddie.locator("main").inner_text()
    photograph(eddie, shots, "2-invitation", sideways)
    accept(eddie, links["eddie@example.com"], "eddie@example.com")
    accept(paula, links["paula@example.com"], "paula@example.com")
    paula.goto(links["paula@example.com"])  # a used link is gone
    assert paula.locator("#accept").count() == 0

    # Eddie creates a campaign from the starter (in English only: nothing to translate) and rewrites a subject.
    eddie.goto(f"{url}/campaigns/new/starter")
    eddie.get_by_label("Languages (locales)").fill("en")
    eddie.get_by_role("button", name="Create the campaign").click()
    eddie.wait_for_url(re.compile(rf"/campaigns/{ID}/words\?done=created"))
    eddie.locator("#announcement-subject").fill(SUBJECT)
    eddie.get_by_role("button", name="Save the words").click()
    eddie.wait_for_url(re.compile(rf"/campaigns/{ID}/words\?done=saved"))

    # It needs an approval; Eddie wrote it, so he has no button to approve it, and a POST of his is refused.
    eddie.goto(f"{url}/campaigns/{ID}")
    assert "needs an approver's approval" in eddie.locator("p#four-eyes").inner_text()
    assert eddie.locator("#schedule").count() == 0
    eddie.locator("a#needs-approval").click()
    eddie.wait_for_url(f"{url}/campaigns/{ID}/approval")
    assert eddie.locator("span#approval-state").inner_text() == "needs approval"
    assert eddie.locator("#approve").count() == 0
    assert "cannot approve" in eddie.locator("main").inner_text()
    eddie.goto(f"{url}/account")
    csrf = eddie.locator("input[name=csrf]").first.input_value()
    refused = eddie.request.post(f"{url}/campaigns/{ID}/approve", form={"csrf": csrf, "version": "2"},
                                 headers={"Origin": url}, max_redirects=0)
    assert refused.status == 403, refused.text()

    # Paula reads what changed (everything: nothing was approved before) and approves it.
    paula.goto(f"{url}/campaigns/{ID}/approval")
    diff = paula.locator("pre#diff").inner_text()
    assert f"+++ b/campaigns/{ID}.yaml" in diff and SUBJECT in diff
    assert paula.locator("span#approval-state").inner_text() == "needs approval"
    photograph(paula, shots, "3-approval-diff", sideways)
    paula.locator("#approve").click()
    paula.wait_for_url(re.compile(rf"/campaigns/{ID}/approval\?done=approved"))
    assert paula.locator("span#approval-state").inner_text() == "approved"
    assert paula.locator("#approve").count() == 0

    # Eddie schedules the approved version.
    eddie.goto(f"{url}/campaigns/{ID}")
    assert "paula@example.com" in eddie.locator("p#four-eyes").inner_text()
    eddie.locator("#schedule").click()
    eddie.wait_for_url(re.compile(rf"/campaigns/{ID}\?done=scheduled"))
    assert eddie.get_by_role("status").filter(has_text="Scheduled: its sends go out as planned").is_visible()
    assert eddie.locator("#state").inner_text() == "sending"  # the phase of a scheduled campaign with sends to come
    assert eddie.locator("#pause").is_visible() and eddie.locator("#schedule").count() == 0
    with server.sessions() as s:
        row = s.get(CampaignRow, ID)
        assert row is not None and row.state == "scheduled"

    # The audit log: every step, by whom, and a chain that holds.
    ana.goto(f"{url}/audit")
    lines = audit_lines(ana)
    assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
    assert [(line.action, line.who) for line in lines] == [
        ("person_add", "system"),
        ("login", "ana@example.com"),
        ("invite", "ana@example.com"),
        ("invite", "ana@example.com"),
        ("accept", "eddie@example.com"),
        ("accept", "paula@example.com"),
        ("create", "eddie@example.com"),
        ("edit", "eddie@example.com"),
        ("approve", "paula@example.com"),
        ("schedule", "eddie@example.com"),
    ]
    assert {line.campaign for line in lines if line.action in ("create", "edit", "approve", "schedule")} == {ID}
    ana.click("#verify")
    assert ana.locator("span#chain").inner_text() == f"chain intact: {len(lines)} lines"
    photograph(ana, shots, "4-audit", sideways)

    assert sideways == {}, f"these pages scroll sideways: {sideways}"
