"""The headers every answer of ``notifier serve`` carries, set in one place (``web.app.SecurityHeaders``):
``nosniff`` on all of them, the JSON API and refusals too; HSTS when NOTIFIER_PUBLIC_URL is https; and on every
HTML page a policy that lets no site frame it and sends no Referer. The dashboard's pages keep their own policy
and get the rest from the same place, each header once."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from notifier.config import Settings
from notifier.ledger.db import make_engine, session_factory
from notifier.web import create_app
from notifier.web.dashboard import pages
from tests.conftest import TEST_SECRETS

TOKEN = "an-api-token-nobody-can-guess-0123456789"
ANSWERS = [  # (method, path, status, content type)
    ("GET", "/healthz", 200, "application/json"),
    ("GET", "/openapi.json", 200, "application/json"),
    ("POST", "/webhooks/sendgrid", 401, "application/json"),
    ("POST", "/actions", 401, "application/json"),
    ("GET", "/nowhere", 404, "application/json"),
    ("GET", "/u/not-a-token", 404, "text/html"),
    ("GET", "/login", 503, "text/html"),  # no admin password: the dashboard says it is off
    ("GET", "/campaigns", 303, None),
    ("POST", "/logout", 401, "text/html"),
    ("GET", "/static/dashboard/dash.css", 200, "text/css"),
    ("GET", "/docs", 200, "text/html"),
]
IDS = [f"{method} {path}" for method, path, _, _ in ANSWERS]


def webhook_key() -> str:
    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture
def ledger(sqlite_template: Path, tmp_path: Path) -> Iterator[Any]:
    shutil.copyfile(sqlite_template, tmp_path / "ledger.db")
    eng = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield session_factory(eng)
    eng.dispose()


def client_for(ledger: Any, public_url: str) -> TestClient:
    settings = Settings(sendgrid_webhook_key=webhook_key(), api_token=TOKEN,
                        **{**TEST_SECRETS, "public_url": public_url})
    return TestClient(create_app(settings, ledger), follow_redirects=False)


def ask(client: TestClient, method: str, path: str) -> Any:
    return client.request(method, path, headers={"Accept": "text/html"} if path == "/logout" else {})


@pytest.mark.parametrize(("method", "path", "status", "kind"), ANSWERS, ids=IDS)
def test_every_answer_says_nosniff_and_over_https_hsts_once(
        ledger: Any, method: str, path: str, status: int, kind: str | None) -> None:
    response = ask(client_for(ledger, "https://notifier.test"), method, path)

    assert response.status_code == status
    assert (response.headers.get("content-type") or "").startswith(kind or "")
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert response.headers.get_list("strict-transport-security") == ["max-age=31536000"]


@pytest.mark.parametrize(("method", "path", "status", "kind"), ANSWERS, ids=IDS)
def test_without_an_https_public_url_no_answer_claims_hsts(
        ledger: Any, method: str, path: str, status: int, kind: str | None) -> None:
    response = ask(client_for(ledger, "http://localhost:8000"), method, path)

    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert "strict-transport-security" not in response.headers


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _, kind in ANSWERS if kind == "text/html"])
def test_every_html_page_may_not_be_framed_and_sends_no_referrer_unless_it_says_otherwise(
        ledger: Any, method: str, path: str) -> None:
    response = ask(client_for(ledger, "https://notifier.test"), method, path)

    [policy] = response.headers.get_list("content-security-policy")
    assert "frame-ancestors 'none'" in policy
    assert response.headers.get_list("x-frame-options") == ["DENY"]
    assert len(response.headers.get_list("referrer-policy")) == 1
    if path == "/login":  # the dashboard: its own policy (its script, its styles), the rest from the app
        assert policy == pages.CSP and response.headers["referrer-policy"] == "same-origin"
    elif path == "/docs":  # FastAPI's page loads its script from a CDN: only its framing is refused
        assert policy == "frame-ancestors 'none'; base-uri 'none'"
    else:
        assert policy.startswith("default-src 'none';") and response.headers["referrer-policy"] == "no-referrer"

