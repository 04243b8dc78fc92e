"""``notifier serve``: it refuses to start without real secrets (one line, exit code 2), it really serves when they
are good, its health check tells a ledger that cannot be reached, no generated request makes it answer 5xx, a
client that hangs up mid-body is one short line in the log, and a connection that goes silent is closed."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.config import Settings
from notifier.ledger.db import make_engine, session_factory
from notifier.links import unsubscribe_token
from notifier.web import create_app
from notifier.web.app import running as in_process
from notifier.web.dashboard.auth import hash_password
from notifier.web.server import _ReadClockFlow
from tests.conftest import PG_URL, ROOT, TEST_SECRETS
from tests.services import free_port, serving

TOKEN = "an-api-token-nobody-can-guess-0123456789"
PATHS = {"/webhooks/sendgrid", "/u/{token}", "/actions", "/healthz"}


def webhook_key() -> str:
    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture
def good_env(tmp_path: Path) -> dict[str, str]:
    """The process environment without any NOTIFIER_* variable, then every serving secret set and good."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    return {**env, "NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "NOTIFIER_SECRET_KEY": TEST_SECRETS["secret_key"], "NOTIFIER_PUBLIC_URL": TEST_SECRETS["public_url"],
            "NOTIFIER_SENDGRID_WEBHOOK_KEY": webhook_key(), "NOTIFIER_API_TOKEN": TOKEN}


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``notifier serve`` that is expected to refuse (a timeout means it started a server instead)."""
    return subprocess.run([sys.executable, "-m", "notifier", "serve", "--port", str(free_port()), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "error"), [
    ({"NOTIFIER_SECRET_KEY": None}, "error: NOTIFIER_SECRET_KEY is the default"),
    ({"NOTIFIER_SECRET_KEY": "short"}, "error: NOTIFIER_SECRET_KEY is too short"),
    ({"NOTIFIER_PUBLIC_URL": None}, "error: NOTIFIER_PUBLIC_URL is 'http://localhost:8000'"),
    ({"NOTIFIER_PUBLIC_URL": "https://localhost"}, "error: NOTIFIER_PUBLIC_URL is 'https://localhost'"),
    ({"NOTIFIER_PUBLIC_URL": "http://notifier.test"}, "error: NOTIFIER_PUBLIC_URL is 'http://notifier.test'"),
    ({"NOTIFIER_SENDGRID_WEBHOOK_KEY": None}, "error: NOTIFIER_SENDGRID_WEBHOOK_KEY is not set"),
    ({"NOTIFIER_API_TOKEN": None}, "error: NOTIFIER_API_TOKEN is not set"),
    ({"NOTIFIER_API_TOKEN": "secret"}, "error: NOTIFIER_API_TOKEN is too weak"),
], ids=["default-secret", "short-secret", "localhost-url", "https-localhost-url", "http-url", "no-webhook-key",
        "no-api-token", "weak-api-token"])
def test_serve_without_dev_refuses_to_start_without_real_secrets_in_one_line(
        good_env: dict[str, str], change: dict[str, str | None], error: str) -> None:
    env = without(good_env, *[k for k, v in change.items() if v is None])
    env.update({k: v for k, v in change.items() if v is not None})

    result = serve(env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(error), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_serve_refuses_a_webhook_key_that_is_not_a_public_key_in_one_line(good_env: dict[str, str]) -> None:
    result = serve({**good_env, "NOTIFIER_SENDGRID_WEBHOOK_KEY": "not-a-key"})

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: NOTIFIER_SENDGRID_WEBHOOK_KEY is not a base64 public key")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("transport", "secret_words", "url_words"), [
    ("outbox", "anyone could forge the unsubscribe links it signs", "set the public https address of notifier serve"),
    ("providers", "with real providers it must be", "with real providers the unsubscribe links must lead"),
], ids=["outbox", "providers"])
def test_serve_with_nothing_set_names_every_missing_setting_at_once_in_the_words_of_its_transport(
        good_env: dict[str, str], transport: str, secret_words: str, url_words: str) -> None:
    env = {**without(good_env, "NOTIFIER_SECRET_KEY", "NOTIFIER_PUBLIC_URL", "NOTIFIER_SENDGRID_WEBHOOK_KEY",
                     "NOTIFIER_API_TOKEN"), "NOTIFIER_TRANSPORT": transport}

    result = serve(env)

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: notifier serve needs these settings (for local use only: notifier serve --dev):"
    assert [line.split(" is ")[0].strip() for line in lines[1:]] == [
        "NOTIFIER_SECRET_KEY", "NOTIFIER_PUBLIC_URL", "NOTIFIER_SENDGRID_WEBHOOK_KEY", "NOTIFIER_API_TOKEN"]
    assert secret_words in lines[1] and url_words in lines[2]
    assert ("real providers" in result.stderr) == (transport == "providers")
    assert all("secrets.token_urlsafe" in lines[i] for i in (1, 4))  # how to make one


def test_serve_names_a_malformed_webhook_key_and_a_plain_password_with_the_rest(good_env: dict[str, str]) -> None:
    env = {**without(good_env, "NOTIFIER_API_TOKEN"), "NOTIFIER_SENDGRID_WEBHOOK_KEY": "not-a-key",
           "NOTIFIER_ADMIN_PASSWORD": "a password long enough to be accepted"}

    result = serve(env)

    assert result.returncode == 2, result.stderr
    named = [line.split(" is ")[0].split(" holds ")[0].strip() for line in result.stderr.strip().splitlines()[1:]]
    assert named == ["NOTIFIER_SENDGRID_WEBHOOK_KEY", "NOTIFIER_ADMIN_PASSWORD", "NOTIFIER_API_TOKEN"]


def test_serve_without_the_web_extra_names_the_extra_before_any_setting(good_env: dict[str, str]) -> None:
    without_fastapi = ("-c", "import sys; sys.modules['fastapi'] = None; sys.argv[0] = 'notifier'; "
                             "from notifier.cli import main; main()")
    result = subprocess.run([sys.executable, *without_fastapi, "serve", "--port", str(free_port())],
                            capture_output=True, text=True, env=without(good_env, "NOTIFIER_API_TOKEN"), cwd=ROOT,
                            timeout=60)

    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: notifier serve needs its web extra: pip install 'notifier[web]'\n"


# --- it really serves -------------------------------------------------------------------------------


@pytest.fixture
def running(request: pytest.FixtureRequest, good_env: dict[str, str]) -> Iterator[str]:
    """``notifier serve`` in its own process, with the arguments of the test's parameter; yields its base URL."""
    env, args = request.param(good_env)
    with serving(env, *args) as base:
        yield base


def with_good_secrets(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    return env, []


def dev_without_secrets(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    return without(env, "NOTIFIER_SECRET_KEY", "NOTIFIER_PUBLIC_URL", "NOTIFIER_SENDGRID_WEBHOOK_KEY",
                   "NOTIFIER_API_TOKEN"), ["--dev"]


@pytest.mark.parametrize("running", [with_good_secrets, dev_without_secrets], indirect=True,
                         ids=["good-secrets", "dev"])
def test_serve_answers_its_health_check_and_lists_every_endpoint_in_openapi(running: str) -> None:
    health = httpx.get(f"{running}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "ledger": "reachable"}

    openapi = httpx.get(f"{running}/openapi.json", timeout=5)
    assert openapi.status_code == 200
    assert set(openapi.json()["paths"]) >= PATHS
    assert "/unsubscribe/{token}" not in openapi.json()["paths"]  # the old links work but are not advertised


# --- health -----------------------------------------------------------------------------------------


def test_healthz_answers_503_when_the_ledger_is_unreachable() -> None:
    user = PG_URL.split("@", 1)[0]  # postgresql+psycopg://user
    eng = make_engine(f"{user}@127.0.0.1:1/test", connect_args={"connect_timeout": 2})
    try:
        with TestClient(create_app(Settings(), session_factory(eng))) as client:
            response = client.get("/healthz")
    finally:
        eng.dispose()

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "ledger": "unreachable"}


def test_healthz_answers_200_when_the_ledger_answers(sqlite_template: Path, tmp_path: Path) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "ledger.db")
    eng = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with TestClient(create_app(Settings(), session_factory(eng))) as client:
            assert client.get("/healthz").json() == {"status": "ok", "ledger": "reachable"}
    finally:
        eng.dispose()


# --- no generated request gets a 5xx ----------------------------------------------------------------
# Schemathesis's pytest loader (``schemathesis.pytest.from_fixture``) reads ``request.node._nodeid``, which pytest 9
# no longer has; each operation's strategy drives Hypothesis directly instead, on a ledger of this test's own.


@pytest.fixture
def app(sqlite_template: Path, tmp_path: Path) -> Iterator[Any]:
    """The application on a SQLite ledger, with a webhook key and an API token."""
    shutil.copyfile(sqlite_template, tmp_path / "ledger.db")
    eng = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield create_app(Settings(sendgrid_webhook_key=webhook_key(), api_token=TOKEN, studio_dir=tmp_path / "studio",
                              **TEST_SECRETS), session_factory(eng))
    eng.dispose()


def test_no_request_generated_from_the_openapi_document_makes_the_app_answer_5xx(app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= PATHS
    auth = {"Authorization": f"Bearer {TOKEN}"}  # so that POST /actions gets past its token to the ledger

    for operation in operations:
        cases = st.one_of(*(operation.as_strategy(mode) for mode in schemathesis.GenerationMode))

        # 25 requests an operation, valid and invalid ones, drawn afresh on every run (no example database), for
        # every operation of the document; drawing them is most of the test's time.
        @given(case=cases)
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def answers_below_500(case: Any) -> None:
            response = case.call(headers=auth)
            assert response.status_code < 500, (f"{case.method} {case.formatted_path}: {response.status_code} "
                                                f"{response.text[:300]}")

        answers_below_500()


# --- clients that hang up, or go silent -------------------------------------------------------------------


def hang_up_mid_body(base: str, path: str, headers: dict[str, str]) -> None:
    """Say a body of 1000 bytes, send 100 of them, and close the connection."""
    url = urlsplit(base)
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": url.netloc, "Content-Length": "1000", **headers}.items())
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + b"[" * 100)
        time.sleep(0.01)


def test_clients_that_hang_up_mid_body_leave_one_short_line_each_and_no_traceback(
        good_env: dict[str, str], tmp_path: Path) -> None:
    env = {**good_env, "NOTIFIER_ADMIN_PASSWORD": hash_password("a long admin password for this test")}
    token = unsubscribe_token(TEST_SECRETS["secret_key"], 1, issued=date.today())
    clients = [("/webhooks/sendgrid", {"Content-Type": "application/json"})] * 20 + [
        (f"/u/{token}", {"Content-Type": "application/x-www-form-urlencoded"})] * 5 + [
        ("/actions", {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})] * 5 + [
        ("/login", {"Content-Type": "application/x-www-form-urlencoded"})] * 5
    log = tmp_path / "serve.log"
    with log.open("w") as stderr, serving(env, options=("-v",), stderr=stderr) as base:
        for path, headers in clients:
            hang_up_mid_body(base, path, headers)
        deadline = time.monotonic() + 20
        while log.read_text().count("went away") < len(clients) and time.monotonic() < deadline:
            time.sleep(0.1)
    text = log.read_text()

    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[:3000]
    lines = [line for line in text.splitlines() if "went away" in line]
    assert len(lines) == len(clients)
    assert set(lines) == {f"INFO notifier.web.app: a client went away before sending its whole body: POST {route}"
                          for route in ("/webhooks/sendgrid", "/u/{token}", "/actions", "/login")}
    assert token not in text


@pytest.mark.parametrize(("sent", "trickle"), [
    (b"", False),
    (b"POST /actions HTTP/1.1\r\nHost: test\r\n", False),
    (b"POST /actions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer " + TOKEN.encode()
     + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"actions": [', False),
    (b"POST /actions HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 200, True),
], ids=["nothing", "half-a-head", "half-a-body", "a-head-trickled-a-byte-at-a-time"])
def test_a_connection_that_goes_silent_or_trickles_its_head_is_closed_within_the_read_timeout(
        app: Any, sent: bytes, trickle: bool) -> None:
    with in_process(app, read_timeout=0.5) as base:
        url = urlsplit(base)
        with socket.create_connection((url.hostname, url.port)) as sock:
            started = time.monotonic()
            answer = _closed(sock, sent, trickle=trickle)
            took = time.monotonic() - started

    assert answer == b""  # closed without a word
    assert 0.4 < took < 3


def _closed(sock: socket.socket, sent: bytes, *, trickle: bool) -> bytes | None:
    """What the server sent before it closed ``sock`` (None: still open after 10 s)."""
    if not trickle:
        sock.sendall(sent)
    sock.settimeout(0.1)
    for i in range(100):
        if trickle and i < len(sent):
            try:
                sock.sendall(sent[i:i + 1])
            except OSError:
                return b""
        try:
            return sock.recv(1024)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return b""
    return None


def test_the_read_clock_starts_again_when_the_application_resumes_reading() -> None:
    """Time during which the application had not taken the body is not the client's: resuming reading restarts
    the client's clock (else a timer due just then closed a connection whose bytes were on their way)."""
    class Transport:
        paused = 0

        def pause_reading(self) -> None:
            self.paused += 1

        def resume_reading(self) -> None:
            self.paused -= 1

    restarts: list[bool] = []
    flow = _ReadClockFlow(Transport(), lambda: restarts.append(True))  # type: ignore[arg-type]
    flow.resume_reading()
    assert restarts == []  # not paused: nothing resumes, the clock runs on
    flow.pause_reading()
    flow.resume_reading()
    assert restarts == [True] and not flow.read_paused


def test_a_slow_but_steady_body_and_a_slow_application_are_not_cut_by_the_read_timeout(app: Any) -> None:
    slow = FastAPI()

    @slow.post("/slow")
    async def wait_then_read(request: Request) -> dict[str, int]:
        await asyncio.sleep(1.5)  # longer than the read timeout, with a big body waiting unread
        return {"bytes": len(await request.body())}

    def steady() -> Iterator[bytes]:
        for _ in range(8):
            time.sleep(0.2)
            yield b" "
        yield b'{"actions": []}'

    with in_process(app, read_timeout=0.5) as base:
        steady_answer = httpx.post(f"{base}/actions", content=steady(), timeout=10,
                                   headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with in_process(slow, read_timeout=0.5) as base:
        slow_answer = httpx.post(f"{base}/slow", content=b"x" * 1_000_000, timeout=10)

    assert steady_answer.status_code == 200, steady_answer.text
    assert slow_answer.status_code == 200 and slow_answer.json() == {"bytes": 1_000_000}
