"""Single sign-on by OpenID Connect against a real provider over HTTP (tests/oidc_provider.py): the code flow with
PKCE, the ID token checked (signature, audience, expiry, nonce), the person added with the role their claim maps
to and brought up to date on the next sign-in, and every way it must be refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from notifier.config import Settings, load_settings
from notifier.errors import ConfigError
from notifier.ledger import audit
from notifier.ledger.db import session_factory
from notifier.team import people, sso
from notifier.web import create_app, running
from tests.conftest import ROOT, TEST_SECRETS
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Idp


@pytest.fixture
def idp() -> Iterator[tuple[Idp, str]]:
    provider = Idp()
    with running(provider.app()) as url:
        sso._cache.clear()  # each test's provider has its own address and keys
        yield provider, url


def settings_for(tmp_path: Path, issuer: str, roles: str = "marketing=editor,marketing-leads=approver") -> Settings:
    env = {"NOTIFIER_OIDC_ISSUER": issuer, "NOTIFIER_OIDC_CLIENT_ID": CLIENT_ID,
           "NOTIFIER_OIDC_CLIENT_SECRET": CLIENT_SECRET, "NOTIFIER_OIDC_ROLES": roles}
    sso_settings = load_settings(env)
    return Settings(database_url="sqlite://", campaigns_dir=tmp_path / "campaigns", templates_dir=ROOT / "templates",
                    locales_dir=ROOT / "locales", studio_dir=tmp_path / "studio", **TEST_SECRETS).with_(
        public_url="http://127.0.0.1", oidc_issuer=sso_settings.oidc_issuer, oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET, oidc_role_claim=sso_settings.oidc_role_claim,
        oidc_roles=sso_settings.oidc_roles)


def sign_in(client: TestClient, next_: str = "/campaigns/x") -> httpx.Response:
    """A browser's round trip: to the provider and back with its code; the answer of the callback."""
    start = client.get(f"/login/sso?next={next_}", follow_redirects=False)
    assert start.status_code == 303, start.text
    back = httpx.get(start.headers["location"], follow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["location"])
    assert target.path == "/login/sso/callback"
    return client.get(f"{target.path}?{target.query}", follow_redirects=False)


def test_the_first_sign_in_adds_the_person_with_the_role_their_claim_maps_to(
        tmp_path: Path, engine: Engine, idp: tuple[Idp, str]) -> None:
    provider, url = idp
    sessions = session_factory(engine)
    with TestClient(create_app(settings_for(tmp_path, url), sessions), base_url="http://127.0.0.1") as client:
        answer = sign_in(client)
        assert answer.status_code == 303 and answer.headers["location"] == "/campaigns/x"
        assert client.get("/api/v1/me").status_code in (401, 503)  # the session is the dashboard's, not the API's
        page = client.get("/account")
        assert page.status_code == 200 and "ana@corp.example" in page.text
        with sessions() as s:
            (ana,) = people.listing(s)
            lines = list(audit.entries(s))
        assert (ana.email, ana.role, ana.state, ana.name) == ("ana@corp.example", "editor", "active", "Ana Corp")
        assert [(e.action, e.detail.get("via")) for e in reversed(lines)] == [("person_add", "sso"), ("login", "sso")]

        provider.user["groups"] = ["marketing", "marketing-leads"]  # promoted in the provider: the highest role wins
        assert sign_in(client).status_code == 303
        with sessions() as s:
            assert people.listing(s)[0].role == "approver"
            assert [e.action for e in audit.entries(s, limit=2)] == ["login", "role"]


@pytest.mark.parametrize("fault", ["audience", "expired", "nonce", "key", "unverified", "unsaid"])
def test_an_id_token_that_does_not_hold_is_refused_and_nobody_is_added(
        tmp_path: Path, engine: Engine, idp: tuple[Idp, str], fault: str) -> None:
    provider, url = idp
    provider.fault = fault
    sessions = session_factory(engine)
    with TestClient(create_app(settings_for(tmp_path, url), sessions), base_url="http://127.0.0.1") as client:
        answer = sign_in(client)
        assert answer.status_code == 403, answer.text
        assert "notifier_session" not in answer.cookies
        assert client.get("/campaigns", follow_redirects=False).status_code == 303  # still a stranger
    with sessions() as s:
        assert people.listing(s) == []


def test_a_claim_that_maps_to_no_role_and_a_disabled_person_are_refused(
        tmp_path: Path, engine: Engine, idp: tuple[Idp, str]) -> None:
    provider, url = idp
    sessions = session_factory(engine)
    with TestClient(create_app(settings_for(tmp_path, url), sessions), base_url="http://127.0.0.1") as client:
        provider.user["groups"] = ["finance"]
        refused = sign_in(client)
        assert refused.status_code == 403 and "no role" in refused.text
        provider.user["groups"] = ["marketing"]
        assert sign_in(client).status_code == 303
        from datetime import UTC, datetime

        from notifier.ledger.db import transaction
        with transaction(sessions) as s:
            (ana,) = people.listing(s)
            people.set_enabled(s, ana.id, False, datetime.now(UTC), None)
        assert client.get("/campaigns", follow_redirects=False).status_code == 303  # the session ended at once
        assert sign_in(client).status_code == 403


def test_a_callback_whose_state_or_cookie_is_not_ours_is_refused_before_the_provider_is_asked(
        tmp_path: Path, engine: Engine, idp: tuple[Idp, str]) -> None:
    provider, url = idp
    with TestClient(create_app(settings_for(tmp_path, url), session_factory(engine)),
                    base_url="http://127.0.0.1") as client:
        start = client.get("/login/sso", follow_redirects=False)
        back = urlsplit(httpx.get(start.headers["location"], follow_redirects=False, timeout=10).headers["location"])
        forged = back.query.replace("state=", "state=x")
        assert client.get(f"{back.path}?{forged}", follow_redirects=False).status_code == 403
        client.cookies.clear()  # another browser: no flow of ours
        assert client.get(f"{back.path}?{back.query}", follow_redirects=False).status_code == 403
        assert provider.token_calls == 0


def test_single_sign_on_settings_come_together_and_are_checked() -> None:
    base = {"NOTIFIER_OIDC_ISSUER": "https://id.example", "NOTIFIER_OIDC_CLIENT_ID": "c",
            "NOTIFIER_OIDC_CLIENT_SECRET": "s", "NOTIFIER_OIDC_ROLES": "marketing=editor, *=viewer"}
    found = load_settings(base)
    assert found.sso and found.oidc_roles == (("marketing", "editor"), ("*", "viewer"))
    with pytest.raises(ConfigError, match="NOTIFIER_OIDC_CLIENT_SECRET"):
        load_settings({k: v for k, v in base.items() if k != "NOTIFIER_OIDC_CLIENT_SECRET"})
    with pytest.raises(ConfigError, match="must be an https URL"):
        load_settings({**base, "NOTIFIER_OIDC_ISSUER": "http://id.example"})
    with pytest.raises(ConfigError, match="'boss' is not one of"):
        load_settings({**base, "NOTIFIER_OIDC_ROLES": "marketing=boss"})
    assert not load_settings({}).sso


def test_an_issuer_ending_with_a_slash_is_compared_as_the_provider_writes_it(
        tmp_path: Path, engine: Engine, idp: tuple[Idp, str]) -> None:
    provider, url = idp
    provider.slash = True
    with TestClient(create_app(settings_for(tmp_path, url), session_factory(engine)),
                    base_url="http://127.0.0.1") as client:
        assert sign_in(client).status_code == 303


def test_single_sign_on_never_takes_over_an_account_that_logs_in_with_a_password(
        tmp_path: Path, engine: Engine, idp: tuple[Idp, str]) -> None:
    from datetime import UTC, datetime

    from notifier.ledger.db import transaction

    _provider, url = idp
    sessions = session_factory(engine)
    with transaction(sessions) as s:
        admin = people.add_admin(s, "ana@corp.example", "Ana", "a long local password", datetime.now(UTC))
    with TestClient(create_app(settings_for(tmp_path, url), sessions), base_url="http://127.0.0.1") as client:
        refused = sign_in(client)
        assert refused.status_code == 403 and "already logs in here with a password" in refused.text
        with transaction(sessions) as s:  # an admin gives her a new link: her password goes, and sign-on may link
            people.reset(s, admin.id, datetime.now(UTC))
        assert sign_in(client).status_code == 303
    with sessions() as s:
        (ana,) = people.listing(s)
    assert (ana.id, ana.state, ana.role) == (admin.id, "active", "admin")  # the last admin stays one


def test_a_very_long_next_goes_to_the_campaigns_instead_of_breaking_the_sign_in(
        tmp_path: Path, engine: Engine, idp: tuple[Idp, str]) -> None:
    _provider, url = idp
    with TestClient(create_app(settings_for(tmp_path, url), session_factory(engine)),
                    base_url="http://127.0.0.1") as client:
        answer = sign_in(client, next_="/campaigns/" + "x" * 1500)
        assert answer.status_code == 303 and answer.headers["location"] == "/campaigns"
