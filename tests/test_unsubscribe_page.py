"""The one-click unsubscribe page: a token has one spelling, and the page keeps its token to itself (no Referer,
no framing, nothing loaded) while its own style and its button still work in a real browser."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.ledger import queries, suppressions
from notifier.links import unsubscribe_token
from notifier.web import create_app, running
from notifier.web.unsubscribe import CSP
from notifier.wiring import build_dispatcher
from tests.ledger_views import the_row

pytest_plugins = ["tests.browser"]

SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 10:00 WIB, the merged first send
A_DAY_LATER = JAKARTA_FIRST + timedelta(days=1)
SECRET = "a-test-secret-of-enough-length-0123456789"
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(outbox_dir=tmp_path / "outbox", secret_key=SECRET, public_url="https://notify.example.com")


@pytest.fixture
def token(sessions: sessionmaker[Session], add_recipient: Callable[..., int],
          schedule_campaign: Callable[..., queries.ScheduleResult], settings: Settings) -> str:
    """The unsubscribe token of Ana's first email, sent through the outbox."""
    add_recipient("ana", email="ana@example.com")
    schedule_campaign(SCHEDULED)
    assert build_dispatcher(settings, sessions, simulated_clock=True).tick(JAKARTA_FIRST).outcomes == {"sent": 1}
    return unsubscribe_token(SECRET, the_row(sessions, "ana").id, issued=JAKARTA_FIRST.date())


@pytest.fixture
def client(settings: Settings, sessions: sessionmaker[Session]) -> TestClient:
    return TestClient(create_app(settings, sessions, clock=lambda: A_DAY_LATER))


# --- one token, one spelling -----------------------------------------------------------------------------


@pytest.mark.parametrize("spell", [
    lambda t: f"{t[:10]}.{t[10:]}",
    lambda t: f"{t}=",
    lambda t: f"{t[:10]} {t[10:]}",
    lambda t: f"{t}A",
    lambda t: f"{t[:10]}%0A{t[10:]}",  # a newline, percent-encoded in the path
    lambda t: t.replace("-", "+").replace("_", "/") if set(t) & set("-_") else f"+{t[1:]}",
], ids=["stray-dot", "padding", "space", "trailing-char", "newline", "standard-alphabet"])
def test_a_token_spelled_any_other_way_is_refused_and_the_genuine_one_still_works(
        client: TestClient, sessions: sessionmaker[Session], token: str, spell: Callable[[str], str]) -> None:
    other = spell(token)
    assert other != token

    assert client.get(f"/u/{other}").status_code == 404
    assert client.post(f"/u/{other}", **ONE_CLICK).status_code == 404
    with sessions() as s:
        assert suppressions.listing(s) == []

    assert client.get(f"/u/{token}").status_code == 200
    assert client.post(f"/u/{token}", **ONE_CLICK).status_code == 200
    with sessions() as s:
        assert suppressions.find(s, "email", "ana@example.com") != []


# --- the page keeps its token to itself --------------------------------------------------------------------


def test_every_unsubscribe_page_is_sent_with_no_referrer_no_framing_and_a_policy_that_loads_nothing(
        client: TestClient, token: str) -> None:
    pages = [client.get(f"/u/{token}"), client.get("/u/not-a-token"), client.post(f"/u/{token}", **ONE_CLICK),
             client.get(f"/unsubscribe/{token}")]

    assert [p.status_code for p in pages] == [200, 404, 200, 200]
    for page in pages:
        assert page.headers.get_list("content-security-policy") == [CSP]
        assert page.headers.get_list("referrer-policy") == ["no-referrer"]  # the token is in the URL
        assert page.headers.get_list("x-content-type-options") == ["nosniff"]
        assert page.headers.get_list("x-frame-options") == ["DENY"]
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["strict-transport-security"] == "max-age=31536000"
    assert "frame-ancestors 'none'" in CSP and CSP.startswith("default-src 'none';")
    assert "unsafe-inline" not in CSP


def test_the_policy_allows_exactly_the_style_the_page_carries(client: TestClient, token: str) -> None:
    html = client.get(f"/u/{token}").text
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)

    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CSP
    assert "<script" not in html and " style=" not in html  # nothing else the policy would have to allow


def test_in_a_browser_the_page_keeps_its_style_and_its_button_unsubscribes(
        settings: Settings, sessions: sessionmaker[Session], token: str, page: Any) -> None:
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    with running(create_app(settings, sessions, clock=lambda: A_DAY_LATER)) as base:
        page.goto(f"{base}/u/{token}")
        width = page.evaluate("getComputedStyle(document.body).maxWidth")
        page.click("button[type=submit]")
        page.wait_for_selector("text=You are unsubscribed")

    assert width == "512px"  # page.html's 32rem: the inline style applied
    assert refused == []
    with sessions() as s:
        assert suppressions.find(s, "email", "ana@example.com") != []
