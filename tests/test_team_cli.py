"""The team from the command line: the first admin, invitations, roles, the audit log (table, JSON, CSV, and its
chain checked, exit 1 when a line was removed), and ``notifier api`` calling a running server with a personal
token, as its person, until the token is revoked."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from notifier.config import Settings
from notifier.ledger.db import make_engine, session_factory, transaction
from notifier.team import tokens
from notifier.web import create_app, running
from tests.conftest import ROOT, TEST_SECRETS

PASSWORD = "a long enough password"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "NOTIFIER_PUBLIC_URL": "https://notifier.example.com"}


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300, input=stdin)
    return done.returncode, done.stdout, done.stderr


def test_people_and_the_audit_log_from_the_command_line(env: dict[str, str]) -> None:
    assert cli(env, "people", "list")[1].startswith("no team yet")
    code, out, err = cli(env, "people", "add-admin", "Ana@Example.com", "--name", "Ana", "--password-stdin",
                         stdin=f"{PASSWORD}\n")
    assert code == 0, err
    assert "added ana@example.com (person 1) as admin" in out
    code, out, _ = cli(env, "people", "invite", "bo@example.com", "--name", "Bo", "--role", "approver")
    assert code == 0 and "https://notifier.example.com/invite/" in out
    assert cli(env, "people", "role", "bo@example.com", "viewer")[1].strip() == "bo@example.com is viewer"
    assert cli(env, "people", "disable", "2")[1].strip() == "bo@example.com is disabled"
    code, _, err = cli(env, "people", "disable", "nobody@example.com")
    assert code == 2 and "no such person: 'nobody@example.com'" in err
    weak = cli(env, "people", "add-admin", "cy@example.com", "--name", "Cy", "--password-stdin", stdin="short\n")
    assert weak[0] == 2 and "password: at least 12 characters" in weak[2]

    code, out, _ = cli(env, "audit", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["action"], e["actor"].split(":")[0]) for e in lines] == [
        ("disable", "cli"), ("role", "cli"), ("invite", "cli"), ("person_add", "cli")]
    assert "person_add" in cli(env, "audit")[1] and cli(env, "audit", "--action", "role", "--json")[1].count("\n") == 1
    csv_out = cli(env, "audit", "--csv")[1].splitlines()
    assert csv_out[0].startswith("seq,at,actor") and len(csv_out) == 5
    code, out, _ = cli(env, "audit", "--verify")
    assert code == 0 and re.fullmatch(r"audit log: 4 lines, chain intact; last hash [0-9a-f]{64}\n", out)


    assert cli(env, "suppressions", "add", "Rina@Example.com", "--reason", "asked by phone")[0] == 0
    assert cli(env, "suppressions", "remove", "rina@example.com")[0] == 0
    code, out, _ = cli(env, "audit", "--limit", "2", "--json")
    made, lifted = (json.loads(line) for line in reversed(out.splitlines()))
    assert (made["action"], made["detail"]) == ("suppress", {"kind": "email", "scope": "all",
                                                             "reason": "asked by phone"})
    assert (lifted["action"], lifted["detail"]) == ("unsuppress", {"kind": "email", "scope": None, "removed": 1})
    assert "rina" not in out.lower()  # the audit log names team members, never a recipient
    assert cli(env, "audit", "--verify")[0] == 0

    engine = make_engine(env["NOTIFIER_DATABASE_URL"])  # someone with the database's keys goes around notifier
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    engine.dispose()
    code, out, _ = cli(env, "audit", "--verify")
    assert code == 1 and "line 2 is missing" in out


def test_notifier_api_calls_a_server_as_the_token_s_person_until_it_is_revoked(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", campaigns_dir=ROOT / "campaigns",
                        templates_dir=ROOT / "templates", locales_dir=ROOT / "locales", studio_dir=tmp_path / "studio",
                        **TEST_SECRETS)
    engine = make_engine(settings.database_url)
    from notifier.ledger.db import upgrade
    from notifier.team import people

    upgrade(engine)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with transaction(sessions) as s:
        ana = people.add_admin(s, "ana@example.com", "Ana", PASSWORD, now)
        info, secret = tokens.issue(s, ana.id, "laptop", now)
    env = {**os.environ, "NOTIFIER_TOKEN": secret}
    with running(create_app(settings, sessions)) as url:
        code, out, err = cli(env, "api", "GET", "/api/v1/me", "--server", url)
        assert code == 0, err
        assert json.loads(out) == {"actor": "person:1", "name": "ana@example.com", "role": "admin", "person_id": 1}
        code, out, _ = cli(env, "api", "POST", "/api/v1/tokens", "--server", url, "--data", '{"name": "ci"}')
        assert code == 0 and json.loads(out)["token"].startswith("ntf_")
        code, out, _ = cli(env, "api", "DELETE", f"/api/v1/tokens/{info.id}", "--server", url)
        assert code == 0 and json.loads(out)["revoked_at"]
        code, out, err = cli(env, "api", "GET", "/api/v1/me", "--server", url)
        assert code == 1 and "unknown or revoked" in err
    engine.dispose()
