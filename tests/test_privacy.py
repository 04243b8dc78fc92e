"""Personal data (addresses, tokens, names) never reaches logs or the ids a message carries out of the process."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience import import_audience
from notifier.campaign import load_campaign
from notifier.config import Settings
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.planner import plan_zone
from notifier.render import Content
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE

SECRETS = ("secret.person@example.com", "Zelda Secretname", "tok-very-secret-0001")


@pytest.fixture
def audience(tmp_path: Path) -> Path:
    path = tmp_path / "a.csv"
    path.write_text("id,email,name,locale,timezone,country,push_tokens,joined_at\n"
                    f"p1,{SECRETS[0]},{SECRETS[1]},en,Asia/Jakarta,ID,{SECRETS[2]},2024-01-01T00:00:00Z\n"
                    "p2,bad-address,Other,en,Asia/Jakarta,ID,,\n")
    return path


def test_logs_and_message_ids_carry_no_personal_data(sessions: sessionmaker[Session], audience: Path,
                                                     tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    start = datetime(2024, 9, 1, tzinfo=UTC)
    import_audience(sessions, audience, now=start)
    campaign = load_campaign(CAMPAIGN_FILE)
    content = Content.of(campaign, Settings().templates_dir, Settings().locales_dir)
    with transaction(sessions) as s:
        queries.schedule(s, campaign, CAMPAIGN_FILE.read_text(), start, content, plan_zone)
    dispatcher = build_dispatcher(Settings(outbox_dir=tmp_path / "outbox"), sessions, simulated_clock=True)
    report = dispatcher.tick(datetime(2024, 9, 28, 12, tzinfo=UTC))
    assert report.outcomes["sent"] == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "materialized" in logged  # the dispatcher did log; what it logged holds no personal data
    for secret in SECRETS:
        assert secret not in logged
    push = json.loads(next((tmp_path / "outbox" / "push").rglob("*.json")).read_text())
    # ids, the deadline's page from the campaign file (the same for everyone), and the push's own open token (a MAC
    # of its delivery id, for POST /opens): nothing of the recipient's
    assert set(push["data"]) == {"delivery_id", "campaign_id", "send_key", "link", "open_token"}
    assert push["data"]["link"] in dict(campaign.links).values()
    for secret in SECRETS:
        assert secret not in json.dumps(push["data"])
    eml = next((tmp_path / "outbox" / "email").rglob("*.eml")).read_text()
    x_headers = [line for line in eml.splitlines() if line.startswith("X-Notifier-")]
    assert len(x_headers) == 3 and not any(s in h for h in x_headers for s in SECRETS)


def test_a_failed_statement_never_quotes_the_recipients_data(tmp_path: Path) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from notifier.ledger.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine)
    insert = text("INSERT INTO recipients (id, email, timezone, timezone_guessed, attributes, joined_at, updated_at) "
                  "VALUES (:id, :email, 'UTC', 0, '{}', '2024-01-01', '2024-01-01')")
    with engine.begin() as conn:
        conn.execute(insert, {"id": "ana", "email": "ana@example.com"})
    with pytest.raises(IntegrityError) as failed, engine.begin() as conn:
        conn.execute(insert, {"id": "ana", "email": "ana@example.com"})
    assert "ana@example.com" not in str(failed.value)
    engine.dispose()
