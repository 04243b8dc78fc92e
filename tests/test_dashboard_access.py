"""Who may use the dashboard: only the admin, with a hashed password, a signed session and a CSRF token on every
form; a stranger is sent to /login (pages) or refused (state changes); guessing is throttled."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from notifier.config import Settings, load_settings, require_serving_secrets
from notifier.errors import ConfigError
from notifier.ledger.db import make_engine, session_factory
from notifier.ledger.models import EndedSession
from notifier.web import create_app
from notifier.web.dashboard.auth import (
    Devices,
    LoginLimiter,
    Sessions,
    check_password_hash,
    hash_password,
    verify_password,
)
from tests.conftest import ROOT, TEST_SECRETS

PASSWORD = "correct horse battery staple"
FAST = (2**14, 8, 1)  # the cheapest cost the settings accept: these tests hash many times
PAGES = ["/campaigns", "/campaigns/new", "/campaigns/x", "/campaigns/x/edit", "/campaigns/x/gallery",
         "/campaigns/x/cancel", "/campaigns/x/progress", "/campaigns/x/recipients/r1"]
CONTROLS = ["/logout", "/campaigns/new", "/campaigns/x/edit", "/campaigns/x/schedule", "/campaigns/x/pause",
            "/campaigns/x/resume", "/campaigns/x/cancel", "/campaigns/x/retry"]


def dashboard_settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", campaigns_dir=tmp_path / "campaigns",
                    templates_dir=ROOT / "templates", locales_dir=ROOT / "locales",
                    admin_password_hash=hash_password(PASSWORD, cost=FAST), **TEST_SECRETS).with_(
        **{"public_url": "http://127.0.0.1", **changes})


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(dashboard_settings(tmp_path)), base_url="http://127.0.0.1") as c:
        yield c


def nonce_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found[1]


def log_in(client: TestClient, password: str = PASSWORD, next_: str = "/campaigns") -> object:
    page = client.get("/login")
    return client.post("/login", data={"csrf": nonce_of(page.text), "password": password, "next": next_},
                       follow_redirects=False)


def test_a_stranger_is_sent_to_login_from_every_page(client: TestClient) -> None:
    for path in PAGES:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next="), path


def test_a_stranger_cannot_change_anything(client: TestClient) -> None:
    for path in CONTROLS:
        r = client.post(path, data={"csrf": "x", "confirm": "yes"}, follow_redirects=False)
        assert r.status_code == 401, path


def test_a_form_without_its_csrf_token_is_refused(client: TestClient) -> None:
    assert log_in(client).status_code == 303
    for path in CONTROLS:
        for data in ({}, {"csrf": "forged"}):
            r = client.post(path, data={**data, "confirm": "yes"}, follow_redirects=False)
            assert r.status_code == 403, (path, data)


def test_a_form_posted_from_another_site_is_refused(client: TestClient) -> None:
    log_in(client)
    csrf = nonce_of(client.get("/campaigns").text)
    r = client.post("/campaigns/x/pause", data={"csrf": csrf}, headers={"Origin": "https://evil.example"},
                    follow_redirects=False)
    assert r.status_code == 403


def test_the_login_form_needs_its_own_token(client: TestClient) -> None:
    client.get("/login")
    r = client.post("/login", data={"password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403


def test_a_login_sets_a_strict_http_only_session_and_goes_where_it_was_asked(client: TestClient) -> None:
    r = log_in(client, next_="/campaigns/new")
    assert r.status_code == 303 and r.headers["location"] == "/campaigns/new"
    cookie = r.headers["set-cookie"]
    assert "notifier_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/campaigns").status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(client: TestClient, target: str) -> None:
    assert log_in(client, next_=target).headers["location"] == "/campaigns"


def test_over_https_the_cookie_is_secure_and_host_only(tmp_path: Path) -> None:
    settings = dashboard_settings(tmp_path, public_url="https://notifier.example.com")
    with TestClient(create_app(settings), base_url="https://notifier.example.com") as c:
        cookie = log_in(c).headers["set-cookie"]
    assert cookie.startswith("__Host-notifier_session=") and "Secure" in cookie and "Path=/" in cookie


def test_failed_logins_are_throttled_per_client(client: TestClient) -> None:
    for _ in range(5):
        assert log_in(client, "wrong password!!").status_code == 401
    r = log_in(client)  # even the right password waits now
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert client.get("/campaigns", follow_redirects=False).status_code == 303


def test_the_limiter_forgets_after_its_window_and_limits_everyone_together() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_client=2, overall=3, window=60, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") > 0 and limiter.retry_after("b") == 0
    limiter.failed("b")
    assert limiter.retry_after("c") > 0  # three failures in all: a distributed guesser waits too
    now[0] = 61
    assert limiter.retry_after("a") == 0 and limiter.retry_after("c") == 0


def log_out(client: TestClient) -> None:
    client.post("/logout", data={"csrf": nonce_of(client.get("/campaigns").text)})


def guessed_from_everywhere(app: object) -> None:
    """A distributed guesser fills the cap on everyone: 100 failures from 100 addresses."""
    limiter = app.state.dashboard.limiter  # type: ignore[attr-defined]
    for i in range(limiter.overall):
        limiter.failed(f"203.0.113.{i}")


def test_a_guesser_who_fills_the_cap_locks_out_strangers_but_not_a_browser_that_logged_in_before(
        tmp_path: Path) -> None:
    app = create_app(dashboard_settings(tmp_path))
    with TestClient(app, base_url="http://127.0.0.1") as admin, \
            TestClient(app, base_url="http://127.0.0.1") as stranger:
        assert log_in(admin).status_code == 303  # the admin's browser now holds a device cookie
        log_out(admin)
        guessed_from_everywhere(app)
        r = log_in(stranger)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert log_in(admin).status_code == 303
        assert admin.get("/campaigns").status_code == 200


def test_a_device_that_guesses_is_limited_on_its_own_and_never_fills_the_cap(tmp_path: Path) -> None:
    app = create_app(dashboard_settings(tmp_path))
    limiter = app.state.dashboard.limiter
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert log_in(c).status_code == 303
        log_out(c)
        for _ in range(5):
            assert log_in(c, "wrong password!!").status_code == 401
        assert log_in(c).status_code == 429  # this device waits now, like any client
        assert len(limiter._all) == 0  # its failures were not counted against everyone
        c.cookies.delete("notifier_device")
        assert log_in(c).status_code == 303  # the same address without that cookie: a client with no failures


@pytest.mark.parametrize("forged", ["x.y", "not-a-cookie", "e30.AAAA"])
def test_a_forged_device_cookie_is_no_device(tmp_path: Path, forged: str) -> None:
    app = create_app(dashboard_settings(tmp_path))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        guessed_from_everywhere(app)
        c.cookies.set("notifier_device", forged)
        assert log_in(c).status_code == 429


def test_a_device_cookie_is_strict_lasts_90_days_and_ends_with_the_password() -> None:
    now = [1000.0]
    devices = Devices.of("k" * 32, "hash-1", clock=lambda: now[0])
    cookie = devices.issue()
    assert devices.read(cookie)
    assert Devices.of("k" * 32, "hash-2").read(cookie) is None  # the password changed
    assert Sessions.of("k" * 32, "hash-1", clock=lambda: now[0]).read(cookie) is None  # not a session
    session, _ = Sessions.of("k" * 32, "hash-1", clock=lambda: now[0]).issue("admin")
    assert devices.read(session) is None  # and a session is not a device
    now[0] += 90 * 86400
    assert devices.read(cookie) is None


def test_over_https_the_device_cookie_is_secure_and_host_only(tmp_path: Path) -> None:
    settings = dashboard_settings(tmp_path, public_url="https://notifier.example.com")
    with TestClient(create_app(settings), base_url="https://notifier.example.com") as c:
        cookies = log_in(c).headers.get_list("set-cookie")
    (device,) = [k for k in cookies if k.startswith("__Host-notifier_device=")]
    assert all(f in device for f in ("Secure", "HttpOnly", "SameSite=strict", "Path=/", f"Max-Age={90 * 86400}"))


def test_a_tampered_expired_or_outdated_session_is_no_session() -> None:
    now = [1000.0]
    sessions = Sessions.of("k" * 32, "hash-1", lifetime=60, clock=lambda: now[0])
    cookie, ident = sessions.issue("admin")
    assert sessions.read(cookie) == ident
    payload, _, mac = cookie.rpartition(".")
    assert sessions.read(payload[:-2] + "AA." + mac) is None
    assert sessions.read(cookie + "x") is None
    assert Sessions.of("k" * 32, "hash-2", clock=lambda: now[0]).read(cookie) is None  # the password changed
    assert Sessions.of("another secret key!", "hash-1", clock=lambda: now[0]).read(cookie) is None
    now[0] += 61
    assert sessions.read(cookie) is None


def test_a_password_is_kept_only_as_its_scrypt_hash() -> None:
    stored = hash_password(PASSWORD, cost=FAST)
    assert PASSWORD not in stored and stored.startswith("scrypt$16384$8$1$")
    assert verify_password(stored, PASSWORD) and not verify_password(stored, PASSWORD + " ")
    assert hash_password(PASSWORD, cost=FAST) != stored  # salted
    settings = load_settings({"NOTIFIER_ADMIN_PASSWORD": PASSWORD})
    assert settings.admin_password_hash and verify_password(settings.admin_password_hash, PASSWORD)
    assert PASSWORD not in repr(settings)


# A P-256 public key as SendGrid's Signed Event Webhook shows it (serve checks that the key is one).
WEBHOOK_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0S1U2YL2nuTv4ivACRAjgl2zuDpuyxVH7j/dXzfkPDfnseBWTu/AGpPiKV/V2mG7sqH"
               "NRhVIv8B/kfmqDGUGTg==")


def test_serve_refuses_a_password_in_plain_text_and_accepts_its_hash(tmp_path: Path) -> None:
    base = {"NOTIFIER_SECRET_KEY": TEST_SECRETS["secret_key"], "NOTIFIER_PUBLIC_URL": "https://n.example.com",
            "NOTIFIER_SENDGRID_WEBHOOK_KEY": WEBHOOK_KEY, "NOTIFIER_API_TOKEN": "an-api-token-nobody-can-guess"}
    with pytest.raises(ConfigError, match="NOTIFIER_ADMIN_PASSWORD holds a password"):
        require_serving_secrets(load_settings({**base, "NOTIFIER_ADMIN_PASSWORD": PASSWORD}))
    require_serving_secrets(load_settings({**base, "NOTIFIER_ADMIN_PASSWORD": hash_password(PASSWORD, cost=FAST)}))


@pytest.mark.parametrize("value, error", [
    ("short", "too weak"), ("change-me-please", "too weak"), ("scrypt$1$8$1$c2FsdHNhbHRzYWx0c2FsdA$xx", "not a"),
    ("scrypt$1024$8$1$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43, "cost"),
])
def test_a_weak_password_or_a_bad_hash_is_refused_naming_the_setting(value: str, error: str) -> None:
    with pytest.raises(ConfigError, match=f"NOTIFIER_ADMIN_PASSWORD.*{error}"):
        load_settings({"NOTIFIER_ADMIN_PASSWORD": value})


def test_without_an_admin_password_the_dashboard_is_off(tmp_path: Path) -> None:
    with TestClient(create_app(dashboard_settings(tmp_path, admin_password_hash=None))) as c:
        page = c.get("/login")
        assert page.status_code == 503 and "NOTIFIER_ADMIN_PASSWORD" in page.text
        assert c.post("/login", data={"password": ""}, follow_redirects=False).status_code == 503
        assert c.get("/campaigns", follow_redirects=False).status_code == 303


def test_check_password_hash_accepts_what_hash_password_writes() -> None:
    stored = hash_password("x" * 20, cost=FAST)
    assert check_password_hash(stored) == stored


def test_with_a_well_known_secret_nobody_can_forge_a_session(tmp_path: Path) -> None:
    settings = dashboard_settings(tmp_path, secret_key="change-me")  # serve --dev with the default secret
    forged, _ = Sessions.of("change-me", settings.admin_password_hash or "-").issue("admin")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        c.cookies.set("notifier_session", forged)
        assert c.get("/campaigns", follow_redirects=False).status_code == 303
        assert log_in(c).status_code == 303 and c.get("/campaigns").status_code == 200


def test_hash_password_prints_a_hash_and_refuses_a_weak_password() -> None:
    done = subprocess.run([sys.executable, "-m", "notifier", "admin", "hash-password", "--stdin"], cwd=ROOT,
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and verify_password(done.stdout.strip(), PASSWORD)
    weak = subprocess.run([sys.executable, "-m", "notifier", "admin", "hash-password", "--stdin"], cwd=ROOT,
                          input="short\n", capture_output=True, text=True, timeout=60)
    assert weak.returncode == 2 and "too weak" in weak.stderr and "Traceback" not in weak.stderr


def test_a_session_cookie_replayed_after_logout_proves_nothing(client: TestClient) -> None:
    log_in(client)
    cookie = client.cookies.get("notifier_session")
    assert cookie
    client.post("/logout", data={"csrf": nonce_of(client.get("/campaigns").text)}, follow_redirects=False)
    client.cookies.set("notifier_session", cookie)
    assert client.get("/campaigns", follow_redirects=False).status_code == 303


def test_a_logout_holds_in_every_serving_process_and_after_a_restart(tmp_path: Path) -> None:
    settings = dashboard_settings(tmp_path)
    first, second = create_app(settings), create_app(settings)  # two workers, or one before and after a restart
    with TestClient(first, base_url="http://127.0.0.1") as a, TestClient(second, base_url="http://127.0.0.1") as b:
        log_in(a)
        cookie = a.cookies.get("notifier_session")
        assert cookie
        b.cookies.set("notifier_session", cookie)
        page = b.get("/campaigns", follow_redirects=False)
        assert page.status_code == 200  # one key: the cookie holds in both
        token = nonce_of(page.text)  # the session's CSRF token
        log_out(a)
        assert b.get("/campaigns", follow_redirects=False).status_code == 303
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as restarted:
        restarted.cookies.set("notifier_session", cookie)
        assert restarted.get("/campaigns", follow_redirects=False).status_code == 303
    with session_factory(make_engine(settings.database_url))() as s:
        (kept,) = s.scalars(select(EndedSession)).all()
    assert kept.digest == hashlib.sha256(token.encode()).hexdigest()  # a hash of the token, never the token


def test_a_logout_is_forgotten_once_its_cookie_would_have_expired(tmp_path: Path) -> None:
    settings = dashboard_settings(tmp_path)
    app = create_app(settings)
    dash = app.state.dashboard
    now = [1_000_000.0]
    dash.sessions = Sessions(dash.sessions.key, dash.sessions.epoch, lifetime=60, clock=lambda: now[0])
    old, _ = dash.sessions.issue("admin")
    dash.end(dash.sessions.read(old))
    now[0] += 61
    fresh, _ = dash.sessions.issue("admin")
    dash.end(dash.sessions.read(fresh))  # each logout clears those whose cookies ran out
    with session_factory(make_engine(settings.database_url))() as s:
        assert s.scalar(select(func.count()).select_from(EndedSession)) == 1


def test_a_burst_of_logins_in_parallel_is_limited_like_one_after_another() -> None:
    import threading

    limiter = LoginLimiter(per_client=5, overall=100, window=900)
    allowed: list[int] = []
    threads = [threading.Thread(target=lambda: allowed.append(limiter.attempt("a"))) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(0) == 5  # each attempt is counted before its password is checked
    limiter.succeeded("a")
    assert limiter.attempt("a") == 0


def test_a_cookie_that_is_not_ascii_is_no_session_and_no_error(client: TestClient) -> None:
    assert Sessions.of("k" * 32, "h").read("\xe9\xe9.abc") is None
    r = client.get("/campaigns", headers={"cookie": "notifier_session=\xe9\xe9.abc".encode("latin-1")},
                   follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/login", headers={"cookie": "notifier_session=\xe9.x".encode("latin-1")}).status_code == 200


def test_the_login_page_sends_someone_logged_in_on(client: TestClient) -> None:
    log_in(client)
    r = client.get("/login?next=/campaigns/new", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/campaigns/new"


def test_an_origin_is_ours_only_with_our_scheme_or_the_public_url(tmp_path: Path) -> None:
    settings = dashboard_settings(tmp_path, public_url="https://notifier.example.com")
    with TestClient(create_app(settings), base_url="https://backend.internal") as c:  # a proxy rewrote Host
        for origin, status in (("http://backend.internal", 403), ("https://evil.example", 403),
                               ("https://notifier.example.com", 401), ("https://backend.internal", 401)):
            nonce = nonce_of(c.get("/login").text)  # each answer to a wrong password brings a new one
            r = c.post("/login", data={"csrf": nonce, "password": "wrong password!!"}, follow_redirects=False,
                       headers={"origin": origin})
            assert r.status_code == status, origin


def test_a_refusal_on_a_dashboard_page_is_a_page_for_a_browser(client: TestClient) -> None:
    log_in(client)
    r = client.post("/campaigns/x/pause", data={"csrf": "forged"}, headers={"accept": "text/html"},
                    follow_redirects=False)
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html") and "CSRF" in r.text
    api = client.post("/actions", content=b"{}", headers={"accept": "text/html"})
    assert api.headers["content-type"].startswith("application/json")
