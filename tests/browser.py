"""Fixtures for tests in a real browser: Debian's Chromium (``/usr/bin/chromium``, or ``NOTIFIER_CHROMIUM``), headless,
driven by Playwright for Python. Playwright never downloads a browser here; ``.ci/run`` installs Debian's package.
A missing browser fails the test that needs it, with what to install: it never skips."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("NOTIFIER_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags, Chromium keeps calling Google's hosts, which this closed network refuses.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module: Playwright's sync API keeps an asyncio loop running in this thread while it is
    open, and asyncio.run elsewhere (firebase-admin's close, say) refuses to run inside it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does) "
                    "or set NOTIFIER_CHROMIUM", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(FLAGS))
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    p = context.new_page()
    p.set_default_timeout(15_000)
    try:
        yield p
    finally:
        context.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where a test's screenshots go: test-artifacts/<test> (NOTIFIER_TEST_ARTIFACTS for another folder)."""
    folder = Path(os.environ.get("NOTIFIER_TEST_ARTIFACTS", "test-artifacts")) / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page: Any, artifacts: Path, name: str) -> Path:
    """A full-page PNG of what the browser shows now."""
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def dashboard_demo(folder: Path, password: str, *, draft: bool = True, pace: float = 0.02,
                   audience: Path | None = None) -> Iterator[str]:
    """``notifier demo --dashboard`` in a thread of this process, on port 0; yields its base URL, stops it after.
    ``audience``: another file of recipients than the demo's 2,000 (a test whose campaign needs fewer)."""
    import re
    import threading

    from notifier.config import load_settings
    from notifier.demo import run_dashboard_demo

    started, stop = threading.Event(), threading.Event()
    found: dict[str, str] = {}

    def echo(line: str) -> None:
        m = re.search(r"dashboard: (\S+)/login", line)
        if m:
            found["url"] = m[1]
            started.set()

    options: dict[str, Any] = {"port": 0, "pace": pace, "echo": echo, "wait": stop.wait, "password": password,
                               "draft": draft}
    if audience is not None:
        options["audience"] = audience
    thread = threading.Thread(target=run_dashboard_demo, daemon=True, args=(load_settings({}), folder),
                              kwargs=options)
    thread.start()
    assert started.wait(60), "the dashboard demo did not start"
    try:
        yield found["url"]
    finally:
        stop.set()
        thread.join(60)
