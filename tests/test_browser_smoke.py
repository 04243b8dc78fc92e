"""The browser fixtures themselves: Debian's Chromium opens a page served on 127.0.0.1, a click runs the page's
script, and a screenshot lands in the test's artifacts folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.browser import shot

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>smoke</title></head>
<body>
  <p id="status">waiting</p>
  <button id="go" type="button" onclick="document.getElementById('status').textContent = 'clicked'">Go</button>
</body></html>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A folder with one page, served by http.server on a random port of 127.0.0.1."""
    (tmp_path / "index.html").write_text(PAGE, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_click_runs_the_pages_script(page: Any, artifacts: Path, site: str) -> None:
    page.goto(f"{site}/index.html")
    assert page.text_content("#status") == "waiting"
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent === 'clicked'")
    assert page.text_content("#status") == "clicked"
    png = shot(page, artifacts, "clicked")
    assert png.is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
