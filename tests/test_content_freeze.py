"""Content frozen per wave: a copy edited after scheduling is refused until marketing approves it again."""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import load_campaign
from notifier.config import Settings
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import DeliveryRow, DeliveryState
from notifier.planner import plan_zone
from notifier.render import Content
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, ROOT, without_spread

JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)
JAKARTA_PLAYLIST_P7D = datetime(2024, 10, 21, 3, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A private copy of the templates and catalogs, so the test can edit them."""
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    return Settings(templates_dir=tmp_path / "templates", locales_dir=tmp_path / "locales",
                    outbox_dir=tmp_path / "outbox")


def _schedule(sessions: sessionmaker[Session], settings: Settings, now: datetime) -> queries.ScheduleResult:
    campaign = load_campaign(CAMPAIGN_FILE)
    with transaction(sessions) as s:
        return queries.schedule(s, campaign, without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8")), now,
                                Content.of(campaign, settings.templates_dir, settings.locales_dir), plan_zone)


def _fingerprints(sessions: sessionmaker[Session]) -> dict[str, set[str | None]]:
    with sessions() as s:
        rows = s.execute(select(DeliveryRow.send_key, DeliveryRow.content_fingerprint)
                         .where(DeliveryRow.state == DeliveryState.SENT)).all()
    out: dict[str, set[str | None]] = {}
    for key, fp in rows:
        out.setdefault(key, set()).add(fp)
    return out


def test_an_edited_template_stops_sending_until_the_campaign_is_scheduled_again(
        sessions: sessionmaker[Session], add_recipient, settings: Settings) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", country="ID", locale="id", tokens=["ana-phone"])
    first = _schedule(sessions, settings, datetime(2024, 9, 1, tzinfo=UTC))
    assert first.created and first.content_changes == ()
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 2}
    approved = Content.of(load_campaign(CAMPAIGN_FILE), settings.templates_dir, settings.locales_dir).fingerprint

    body = settings.templates_dir / "tiktok-music-shutdown" / "push_body.txt"
    body.write_text(body.read_text(encoding="utf-8") + "{# an unreviewed edit #}\n", encoding="utf-8")
    report = dispatcher.tick(JAKARTA_PLAYLIST_P7D)

    assert report.claimed == 0 and report.materialized == 0
    why = report.refused["tiktok-music-shutdown"]
    assert "templates/tiktok-music-shutdown/push_body.txt: changed" in why
    assert "notifier campaign schedule tiktok-music-shutdown" in why

    again = _schedule(sessions, settings, JAKARTA_PLAYLIST_P7D)
    assert again.content_changes == ("templates/tiktok-music-shutdown/push_body.txt: changed",)
    assert dispatcher.tick(JAKARTA_PLAYLIST_P7D).outcomes == {"sent": 2}

    fingerprints = _fingerprints(sessions)
    assert fingerprints["playlist-transfer@P30D+refund@P61D"] == {approved}
    assert fingerprints["playlist-transfer@P7D"] != {approved}
    assert len(fingerprints["playlist-transfer@P7D"]) == 1


def test_an_edited_translation_counts_as_changed_copy(
        sessions: sessionmaker[Session], add_recipient, settings: Settings) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", country="ID", locale="id")
    _schedule(sessions, settings, datetime(2024, 9, 1, tzinfo=UTC))
    po = settings.locales_dir / "pt_BR" / "LC_MESSAGES" / "tiktok-music-shutdown.po"
    po.write_text(po.read_text(encoding="utf-8").replace('msgstr "Último dia"', 'msgstr "Último dia!"'),
                  encoding="utf-8")

    report = build_dispatcher(settings, sessions, simulated_clock=True).tick(JAKARTA_FIRST)

    assert report.outcomes == {}
    assert "locales/pt_BR/LC_MESSAGES/tiktok-music-shutdown.po: changed" in report.refused["tiktok-music-shutdown"]


def test_a_catalog_resaved_with_other_comments_headers_and_times_is_the_same_copy(settings: Settings) -> None:
    """What counts is what would be sent: not line numbers, comments, the Babel version or the file's mtime."""
    campaign = load_campaign(CAMPAIGN_FILE)
    before = Content.of(campaign, settings.templates_dir, settings.locales_dir)
    po = settings.locales_dir / "es_MX" / "LC_MESSAGES" / "tiktok-music-shutdown.po"
    text = po.read_text(encoding="utf-8").replace("Generated-By: Babel 2.19.0", "Generated-By: Babel 9.9.9")
    po.write_text("# a translator's note\n\n" + text.replace("#: tiktok-music-shutdown/_copy.j2:6\n", ""),
                  encoding="utf-8")
    os.utime(po, (0, 0))
    assert Content.of(campaign, settings.templates_dir, settings.locales_dir) == before


def test_a_running_dispatcher_sends_the_reapproved_translation_not_the_one_it_started_with(
        sessions: sessionmaker[Session], add_recipient, settings: Settings) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", country="ID", locale="id", tokens=["ana-phone"])
    _schedule(sessions, settings, datetime(2024, 9, 1, tzinfo=UTC))
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    assert dispatcher.tick(JAKARTA_FIRST).outcomes == {"sent": 2}  # the Indonesian catalog is loaded and cached
    po = settings.locales_dir / "id" / "LC_MESSAGES" / "tiktok-music-shutdown.po"
    po.write_text(po.read_text(encoding="utf-8").replace("Tinggal %(num)d hari lagi untuk memindahkan",
                                                         "Hanya %(num)d hari lagi untuk memindahkan"), encoding="utf-8")
    assert dispatcher.tick(JAKARTA_PLAYLIST_P7D).claimed == 0  # refused until approved again
    _schedule(sessions, settings, JAKARTA_PLAYLIST_P7D)

    assert dispatcher.tick(JAKARTA_PLAYLIST_P7D).outcomes == {"sent": 2}

    emails = sorted((settings.outbox_dir / "email").rglob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    subject = email.message_from_bytes(emails[-1].read_bytes(), policy=email.policy.default)["Subject"]
    assert subject.startswith("Hanya 7 hari lagi untuk memindahkan"), subject


# --- blocked: every view says what the dispatcher does ---------------------------------------------------------

BLOCKED = "blocked: the copy changed since it was approved: schedule again to approve it"
CHANGED = "templates/tiktok-music-shutdown/push_body.txt: changed"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_a_campaign_whose_copy_changed_is_blocked_in_status_in_the_list_and_for_dispatch(
        tmp_path: Path, settings: Settings) -> None:
    env = {**os.environ, "NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
           "NOTIFIER_TEMPLATES_DIR": str(settings.templates_dir), "NOTIFIER_LOCALES_DIR": str(settings.locales_dir),
           "NOTIFIER_OUTBOX_DIR": str(settings.outbox_dir)}
    audience = tmp_path / "audience.csv"
    audience.write_text("id,email,name,locale,timezone,country,push_tokens,joined_at\n"
                        "ana,ana@example.com,Ana,id,Asia/Jakarta,ID,ana-phone,2024-01-01T00:00:00Z\n", encoding="utf-8")
    assert _cli(env, "audience", "import", str(audience), "--now", "2024-09-01T00:00Z").returncode == 0
    assert _cli(env, "campaign", "schedule", "tiktok-music-shutdown", "--now", "2024-09-01T00:00Z").returncode == 0
    spread = JAKARTA_FIRST + timedelta(minutes=20)  # the shipped campaign spreads the wave over 20 minutes
    assert _cli(env, "dispatch", "--once", "--now", spread.isoformat()).returncode == 0
    body = settings.templates_dir / "tiktok-music-shutdown" / "push_body.txt"
    body.write_text(body.read_text(encoding="utf-8") + "{# a typo fixed after approval #}\n", encoding="utf-8")

    status = _cli(env, "status", "tiktok-music-shutdown").stdout.splitlines()
    assert status[0].startswith("tiktok-music-shutdown: blocked; 2 of 12 messages done")
    assert status[1:4] == [BLOCKED, f"  {CHANGED}", "  approve it: notifier campaign schedule tiktok-music-shutdown"]
    doc = json.loads(_cli(env, "status", "tiktok-music-shutdown", "--json").stdout)
    assert doc["phase"] == "blocked"
    assert doc["blocked"] == {"reason": BLOCKED.removeprefix("blocked: "), "changed": [CHANGED],
                              "command": "notifier campaign schedule tiktok-music-shutdown"}
    listed = _cli(env, "campaign", "list").stdout.splitlines()
    assert listed[0] == f"tiktok-music-shutdown: {BLOCKED} (notifier campaign schedule tiktok-music-shutdown)"
    assert listed[3].split()[:3] == ["tiktok-music-shutdown", "scheduled", "blocked"]
    [line] = [json.loads(x) for x in _cli(env, "campaign", "list", "--json").stdout.splitlines()]
    assert (line["phase"], line["blocked"]["changed"]) == ("blocked", [CHANGED])

    refused = _cli(env, "dispatch", "--once", "--now", JAKARTA_PLAYLIST_P7D.isoformat())
    assert refused.returncode == 2
    assert (f"error: campaign tiktok-music-shutdown: nothing sent: {BLOCKED.removeprefix('blocked: ')} ({CHANGED})"
            in refused.stderr)

    assert _cli(env, "campaign", "schedule", "tiktok-music-shutdown", "--now",
                JAKARTA_PLAYLIST_P7D.isoformat()).returncode == 0  # approve the fixed copy
    assert _cli(env, "status", "tiktok-music-shutdown").stdout.startswith("tiktok-music-shutdown: sending; ")
    assert _cli(env, "dispatch", "--once", "--now", JAKARTA_PLAYLIST_P7D.isoformat()).returncode == 0


def test_the_copy_is_read_again_only_when_one_of_its_files_changed(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live page asks every few seconds: the digest is kept until a file changes, even a write that keeps the
    file's size and puts its mtime back (its ctime moves)."""
    from notifier import approval

    campaign = load_campaign(CAMPAIGN_FILE)
    reads: list[str] = []
    real = Content.of
    monkeypatch.setattr(approval.Content, "of", lambda c, t, loc: reads.append(c.id) or real(c, t, loc))
    first = approval.copy_on_disk(campaign, settings.templates_dir, settings.locales_dir)
    assert approval.copy_on_disk(campaign, settings.templates_dir, settings.locales_dir) is first
    assert reads == [campaign.id]

    body = settings.templates_dir / "tiktok-music-shutdown" / "push_body.txt"
    before = body.stat()
    text = body.read_text(encoding="utf-8")
    body.write_text(text[:-2] + ("X" if text[-2] != "X" else "Y") + text[-1], encoding="utf-8")  # same size
    os.utime(body, ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = approval.copy_on_disk(campaign, settings.templates_dir, settings.locales_dir)
    assert len(reads) == 2 and changed.fingerprint != first.fingerprint
    (settings.templates_dir / "tiktok-music-shutdown" / "extra.txt").write_text("new\n", encoding="utf-8")
    assert approval.copy_on_disk(campaign, settings.templates_dir, settings.locales_dir).manifest != changed.manifest
