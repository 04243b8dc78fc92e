"""The notifier command as marketing uses it: clear one-line errors, plans, schedule → dispatch → status, demo."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CAMPAIGN_FILE, ROOT

AUDIENCE = """\
id,email,name,locale,timezone,country,push_tokens,joined_at
ana,ana@example.com,Ana,pt-BR,America/Sao_Paulo,BR,tok-ana,2024-01-01T00:00:00Z
budi,budi@example.com,Budi,id,Asia/Jakarta,ID,,2024-01-01T00:00:00Z
late,late@example.com,Late,es-MX,America/Mexico_City,MX,,2024-11-22T00:00:00Z
noah,,Noah,en,Australia/Sydney,AU,tok-noah,2024-01-01T00:00:00Z
bad,not-an-email,Bad,en,Asia/Jakarta,ID,,
"""


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=300)


@pytest.fixture
def audience_file(tmp_path: Path) -> Path:
    path = tmp_path / "audience.csv"
    path.write_text(AUDIENCE, encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "NOTIFIER_OUTBOX_DIR": str(tmp_path / "outbox")}


def test_validate_accepts_the_shipped_campaign() -> None:
    result = run("campaign", "validate", str(CAMPAIGN_FILE), "--now", "2024-09-01T00:00Z")  # before its first wave
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "tiktok-music-shutdown: 2 deadlines, 7 waves" in result.stdout


def test_validate_reports_file_line_and_field_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CAMPAIGN_FILE.read_text().replace("waves: [P30D, P7D, P1D]", "waves: [P30D, P7X, P1D]", 1))
    result = run("campaign", "validate", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "P7X" in t)
    assert f"error: {bad}:{line}: deadlines[0].waves[1]: 'P7X' is not an ISO-8601 duration" in result.stderr


def test_a_negative_wave_is_told_what_a_wave_is_on_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "after.yaml"
    bad.write_text(CAMPAIGN_FILE.read_text().replace("waves: [P30D, P7D, P1D]", "waves: [P30D, P7D, -P1D]", 1))
    result = run("campaign", "validate", str(bad))
    line = _line_of(bad, "-P1D")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: {bad}:{line}: deadlines[0].waves[2]: '-P1D': a wave is a duration before the deadline (such as P7D), "
        "never negative: nothing is sent after a deadline"]


# --- waves that will not be sent, and campaigns that would send nothing -------------------------------------


def _line_of(path: Path, text: str, start: int = 1) -> int:
    """The first line of ``path`` at or after ``start`` that contains ``text``."""
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if i >= start and text in t)


def test_validate_and_schedule_name_each_wave_already_past_and_go_on(env: dict[str, str]) -> None:
    now = "2024-10-22T00:00Z"  # the playlist P30D and P7D and the refund P61D went out, even at UTC-12
    transfer, refund = _line_of(CAMPAIGN_FILE, "waves: [P30D"), _line_of(CAMPAIGN_FILE, "waves: [P61D")
    expected = [
        "deadlines[0].waves[0]: P30D will not be sent: it was due by 2024-09-28 22:00 UTC in every time zone, "
        "before now (2024-10-22 00:00 UTC)",
        "deadlines[0].waves[1]: P7D will not be sent: it was due by 2024-10-21 22:00 UTC in every time zone, "
        "before now (2024-10-22 00:00 UTC)",
        "deadlines[1].waves[0]: P61D will not be sent: it was due by 2024-09-28 22:00 UTC in every time zone, "
        "before now (2024-10-22 00:00 UTC)",
    ]
    lines = (transfer, transfer, refund)

    validated = run("campaign", "validate", str(CAMPAIGN_FILE), "--now", now)
    assert validated.returncode == 0, validated.stderr
    assert validated.stderr.splitlines() == [f"warning: {CAMPAIGN_FILE}:{n}: {e}"
                                             for n, e in zip(lines, expected, strict=True)]
    assert ": ok — tiktok-music-shutdown" in validated.stdout

    scheduled = run("campaign", "schedule", "tiktok-music-shutdown", "--now", now, env=env)
    assert scheduled.returncode == 0, scheduled.stderr
    assert scheduled.stderr == validated.stderr
    assert scheduled.stdout.startswith("scheduled tiktok-music-shutdown: ")


def test_a_campaign_that_would_send_nothing_is_refused_unless_allowed(tmp_path: Path, env: dict[str, str]) -> None:
    wrong = tmp_path / "wrong-year.yaml"  # 2023 instead of 2024: every deadline is over
    wrong.write_text(CAMPAIGN_FILE.read_text().replace('"2024-1', '"2023-1'))
    now = ("--now", "2024-09-01T00:00Z")
    transfer = _line_of(wrong, 'at: "2023-10-28T00:00"')
    refund = _line_of(wrong, 'at: "2023-11-28T00:00"')
    why = [
        f"{wrong}:{transfer}: deadlines[0].at: 2023-10-28T00:00 has passed in every time zone (the last at "
        "2023-10-28 12:00 UTC; now is 2024-09-01 00:00 UTC): none of its waves (P30D, P7D, P1D) will be sent",
        f"{wrong}:{refund}: deadlines[1].at: 2023-11-28T00:00 has passed in every time zone (the last at "
        "2023-11-28 12:00 UTC; now is 2024-09-01 00:00 UTC): none of its waves (P61D, P30D, P7D, P1D) will be sent",
    ]
    refusal = (f"{wrong}: nothing will be sent: no wave of any deadline is still ahead in any time zone; fix the "
               "dates, or pass --allow-empty to accept a campaign that sends nothing")

    for command in ("schedule", "validate"):
        refused = run("campaign", command, str(wrong), *now, env=env)
        assert (refused.returncode, refused.stdout) == (2, ""), (command, refused.stdout)
        assert refused.stderr.splitlines() == [f"error: {w}" for w in [*why, refusal]], command

    allowed = run("campaign", "schedule", str(wrong), *now, "--allow-empty", env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.startswith("scheduled tiktok-music-shutdown: 0 messages planned")  # refused: nothing stored
    assert allowed.stderr.splitlines() == [
        *(f"warning: {w}" for w in why),
        f"warning: {wrong}: nothing will be sent: no wave of any deadline is still ahead in any time zone "
        "(accepted: --allow-empty)"]


def test_the_shipped_campaign_validated_today_is_refused_for_its_past_deadlines() -> None:
    result = run("campaign", "validate", str(CAMPAIGN_FILE))  # the clock: its deadlines were in 2024
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].endswith("fix the dates, or pass --allow-empty to accept a campaign that "
                                                   "sends nothing")


def test_validate_reports_malformed_yaml_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: x\nname: [unclosed\nlocales: [en]\n")
    result = run("campaign", "validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "YAML syntax error" in result.stderr


def test_plan_json_is_sorted_with_each_recipients_own_offset(audience_file: Path) -> None:
    result = run("campaign", "plan", str(CAMPAIGN_FILE), "--audience", str(audience_file), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    from datetime import datetime

    instants = [datetime.fromisoformat(e["send_at"]) for e in lines]
    assert instants == sorted(instants)
    budi_p7d = [e for e in lines if e["recipient"] == "budi" and e["send_key"] == "refund@P7D"]
    assert budi_p7d == [{"recipient": "budi", "channel": "email", "deadlines": ["refund"], "wave": "P7D",
                         "send_key": "refund@P7D", "send_at": "2024-11-21T10:00:00+07:00", "spread": "PT20M"}]
    # Noah has no email, Budi no push token: those channels never appear for them.
    assert {e["channel"] for e in lines if e["recipient"] == "noah"} == {"push"}
    assert {e["channel"] for e in lines if e["recipient"] == "budi"} == {"email"}
    # The late joiner (22 Nov) only gets the last-day reminder.
    assert {e["send_key"] for e in lines if e["recipient"] == "late"} == {"refund@P1D"}
    assert "rejected" in result.stderr and ":6:" in result.stderr


def test_plan_for_one_recipient_explains_missing_and_merged_waves(audience_file: Path) -> None:
    result = run("campaign", "plan", str(CAMPAIGN_FILE), "--audience", str(audience_file), "--recipient", "late")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "refund@P7D: due 2024-11-21 10:00 CST, before the recipient joined" in out
    assert "playlist-transfer: the deadline 2024-10-28 00:00 CST had already passed when the recipient joined" in out
    assert "push: the recipient has no active push token" in out
    assert "merged with refund P61D" in out
    table = out.split("\nWhy some waves")[0].splitlines()
    assert table[0].split()[-1] == "wave" and "1 day before Refund requests and service closure" in table[1]
    assert not any("@P" in line for line in table)  # waves in words, not send keys


def test_plan_unknown_recipient_is_a_clear_error(audience_file: Path) -> None:
    result = run("campaign", "plan", str(CAMPAIGN_FILE), "--audience", str(audience_file), "--recipient", "nobody")
    assert result.returncode == 2
    assert "no valid recipient with id 'nobody'" in result.stderr


def test_schedule_dispatch_status_pause_and_cancel(audience_file: Path, env: dict[str, str], tmp_path: Path) -> None:
    assert run("db", "upgrade", env=env).returncode == 0
    imported = run("audience", "import", str(audience_file), "--now", "2024-09-01T00:00Z", env=env)
    assert imported.returncode == 0, imported.stderr
    assert "4 accepted" in imported.stdout and "1 rejected" in imported.stdout
    assert "audience.csv:6" in imported.stderr
    scheduled = run("campaign", "schedule", "tiktok-music-shutdown", "--now", "2024-09-01T00:00Z", env=env)
    assert scheduled.returncode == 0, scheduled.stderr
    sent = run("dispatch", "--once", "--now", "2024-09-28T14:00Z", env=env)
    assert sent.returncode == 0, sent.stderr
    emails = sorted((tmp_path / "outbox" / "email").rglob("*.eml"))
    pushes = sorted((tmp_path / "outbox" / "push").rglob("*.json"))
    # 14:00Z is past 10:00 in São Paulo, Jakarta and Sydney: Ana and Budi by email, Ana by push. Noah's push
    # waits: it is midnight in Sydney, outside the campaign's 08:00–21:00 window.
    assert len(emails) == 2 and len(pushes) == 1
    msg = email.message_from_bytes(emails[0].read_bytes(), policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    status = run("status", "tiktok-music-shutdown", "--json", env=env)
    doc = json.loads(status.stdout)
    first = [c for c in doc["counts"] if c["send"] == "playlist-transfer@P30D+refund@P61D"]
    assert sum(c.get("sent", 0) for c in first) == 3
    assert doc["phase"] == "sending"
    assert doc["waiting_because"] == [
        {"channel": "push", "reason": "waiting for the delivery window (08:00–21:00 local time)", "rows": 1}]
    morning = run("dispatch", "--once", "--now", "2024-09-28T22:20Z", env=env)  # 08:00 in Sydney, and its spread
    assert morning.returncode == 0, morning.stderr
    assert len(list((tmp_path / "outbox" / "push").rglob("*.json"))) == 2
    paused = run("campaign", "pause", "tiktok-music-shutdown", env=env)
    assert paused.stdout.strip() == "tiktok-music-shutdown is paused"
    assert run("dispatch", "--once", "--now", "2024-10-22T12:00Z", env=env).returncode == 0
    assert len(list((tmp_path / "outbox" / "email").rglob("*.eml"))) == 2
    again = run("campaign", "pause", "tiktok-music-shutdown", env=env)
    assert again.returncode == 2 and "is paused; cannot make it paused" in again.stderr
    assert run("campaign", "cancel", "tiktok-music-shutdown", env=env).returncode == 0
    assert run("dispatch", "--once", "--now", "2024-11-27T12:00Z", env=env).returncode == 0
    assert len(list((tmp_path / "outbox" / "email").rglob("*.eml"))) == 2
    table = run("status", "tiktok-music-shutdown", env=env).stdout
    assert "cancelled" in table


def test_status_explains_failures_and_retry_sends_them_once_the_cause_is_fixed(
        audience_file: Path, env: dict[str, str], tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("the outbox cannot live here")
    broken = {**env, "NOTIFIER_OUTBOX_DIR": str(blocked), "NOTIFIER_MAX_ATTEMPTS": "1"}
    assert run("audience", "import", str(audience_file), "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    assert run("campaign", "schedule", "tiktok-music-shutdown", "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    # Jakarta, Sydney (10:00 there, and the shipped campaign's 20-minute spread).
    assert run("dispatch", "--once", "--now", "2024-09-28T03:20Z", env=broken).returncode == 0

    doc = json.loads(run("status", "tiktok-music-shutdown", "--json", env=env).stdout)
    assert doc["phase"] == "sending"
    failed = doc["failed_because"]
    assert sorted(f["channel"] for f in failed) == ["email", "push"] and all(f["rows"] == 1 for f in failed)
    assert all(f["reason"].startswith("gave up after 1 attempts: outbox: ") for f in failed)
    assert not any("@" in f["reason"] or "budi" in f["reason"].lower() for f in failed)
    table = run("status", "tiktok-music-shutdown", env=env).stdout
    assert "failed because:" in table and "gave up after 1 attempts: outbox" in table

    retried = run("campaign", "retry", "tiktok-music-shutdown", "--channel", "email", "--json",
                  "--now", "2024-09-28T03:25Z", env=env)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {"campaign": "tiktok-music-shutdown", "retried": 1,
                                          "refused_deadline_passed": 0}
    assert run("dispatch", "--once", "--now", "2024-09-28T03:26Z", env=env).returncode == 0
    assert len(list((tmp_path / "outbox" / "email").rglob("*.eml"))) == 1
    doc = json.loads(run("status", "tiktok-music-shutdown", "--json", env=env).stdout)
    assert [f["channel"] for f in doc["failed_because"]] == ["push"]  # only the channel asked for

    late = run("campaign", "retry", "tiktok-music-shutdown", "--now", "2024-12-01T00:00Z", env=env)
    assert late.returncode == 0, late.stderr
    assert late.stdout.strip() == ("tiktok-music-shutdown: 0 failed messages are pending again; 1 left failed: "
                                   "their deadline has passed")


def test_the_dispatch_daemon_survives_a_failing_tick(audience_file: Path, env: dict[str, str], tmp_path: Path) -> None:
    import sqlite3
    import time

    assert run("audience", "import", str(audience_file), "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    assert run("campaign", "schedule", "tiktok-music-shutdown", "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:  # the ledger breaks under the running daemon
        db.execute("DROP TABLE send_groups")
    daemon = subprocess.Popen([sys.executable, "-m", "notifier", "dispatch", "--interval", "0.2"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        assert daemon.poll() is None, daemon.communicate()
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=30)
    failures = [line for line in err.splitlines() if "error: the tick failed (OperationalError)" in line]
    assert len(failures) >= 2, err
    assert "send_groups" not in "".join(failures)  # one line each; the details go to the log


def test_real_providers_refuse_to_start_with_the_default_secret(env: dict[str, str]) -> None:
    providers = {**env, "NOTIFIER_TRANSPORT": "providers", "SENDGRID_API_KEY": "SG.x",
                 "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent.json", "NOTIFIER_PUBLIC_URL": "https://notifier.test"}
    providers.pop("NOTIFIER_SECRET_KEY", None)
    result = run("dispatch", "--once", env=providers)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: NOTIFIER_SECRET_KEY is the default: with real providers it must be")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_campaign_status_is_a_clear_error(env: dict[str, str]) -> None:
    result = run("status", "nope", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no campaign 'nope' is scheduled (run: notifier campaign schedule FILE)"


def test_now_without_once_is_refused(env: dict[str, str]) -> None:
    result = run("dispatch", "--now", "2024-10-01T00:00Z", env=env)
    assert result.returncode == 2 and "--now needs --once" in result.stderr


# --- views on the ledger: campaign list, recipient show, plan against the ledger's audience --------------


def scheduled_and_dispatched(audience_file: Path, env: dict[str, str]) -> None:
    assert run("audience", "import", str(audience_file), "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    assert run("campaign", "schedule", "tiktok-music-shutdown", "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    assert run("dispatch", "--once", "--now", "2024-09-28T14:00Z", env=env).returncode == 0


def test_campaign_list_shows_state_phase_progress_and_next_send(audience_file: Path, env: dict[str, str]) -> None:
    empty = run("campaign", "list", env=env)
    assert empty.stdout.strip() == "no campaign is scheduled (run: notifier campaign schedule FILE)"
    scheduled_and_dispatched(audience_file, env)
    [doc] = [json.loads(line) for line in run("campaign", "list", "--json", env=env).stdout.splitlines()]
    assert doc == {"campaign": "tiktok-music-shutdown", "state": "scheduled", "phase": "sending", "sent": 3,
                   "total": 4, "planned": 25, "done": 3, "groups_done": 3, "groups": 24,
                   "next_send_at": "2024-09-28T16:00:00+00:00", "held": [], "blocked": None}
    table = run("campaign", "list", env=env).stdout.splitlines()
    assert table[0].split() == ["campaign", "state", "phase", "sent/planned", "done", "next", "send", "(UTC)"]
    assert table[2].split() == ["tiktok-music-shutdown", "scheduled", "sending", "3/25", "12%", "2024-09-28", "16:00"]


def test_right_after_scheduling_the_list_and_status_show_the_planned_total(
        audience_file: Path, env: dict[str, str]) -> None:
    """Ana 2 × 6 sends, Budi (email) and Noah (push) 6 each, Late (joined 22 Nov) only the refund's last day."""
    assert run("audience", "import", str(audience_file), "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    assert run("campaign", "schedule", "tiktok-music-shutdown", "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    [doc] = [json.loads(line) for line in run("campaign", "list", "--json", env=env).stdout.splitlines()]
    assert (doc["sent"], doc["done"], doc["planned"], doc["total"]) == (0, 0, 25, 0)
    assert run("campaign", "list", env=env).stdout.splitlines()[2].split()[3:5] == ["0/25", "0%"]
    status = run("status", "tiktok-music-shutdown", env=env).stdout
    assert status.startswith("tiktok-music-shutdown: sending; 0 of 25 messages done (0%), next at 2024-09-28 ")
    assert "send groups" not in status
    assert json.loads(run("status", "tiktok-music-shutdown", "--json", env=env).stdout)["planned"] == 25
    # Once every send is past (all rows made, the late ones skipped), the ledger holds exactly the planned total.
    assert run("dispatch", "--once", "--now", "2024-12-01T00:00Z", env=env).returncode == 0
    done = json.loads(run("status", "tiktok-music-shutdown", "--json", env=env).stdout)
    assert sum(c[s] for c in done["counts"] for s in ("sent", "skipped", "failed") if s in c) == 25
    assert (done["planned"], done["done"], done["phase"]) == (25, 25, "finished")


def test_status_speaks_in_waves_messages_and_reasons(audience_file: Path, env: dict[str, str]) -> None:
    scheduled_and_dispatched(audience_file, env)
    lines = run("status", "tiktok-music-shutdown", env=env).stdout.splitlines()
    assert lines[0] == "tiktok-music-shutdown: sending; 3 of 25 messages done (12%), next at 2024-09-28 16:00 UTC"
    first = "30 days before Playlist transfer, and 61 days before Refund requests and service closure"
    assert [ln.split("  ")[0] for ln in lines[3:5]] == [first, first]
    assert "playlist-transfer@P30D" not in "\n".join(lines)
    assert lines[lines.index("waiting because:") + 1].split() == ["1", "push", "waiting", "for", "08:00", "local"]
    over = run("status", "tiktok-music-shutdown", env={**env, "NOTIFIER_CAMPAIGNS_DIR": "/nonexistent"}).stdout
    assert over.splitlines()[0] == lines[0]  # the campaign file is not needed: the ledger has it
    late = run("dispatch", "--once", "--now", "2024-12-01T00:00Z", env=env)
    assert late.returncode == 0, late.stderr
    skipped = run("status", "tiktok-music-shutdown", env=env).stdout.splitlines()
    assert skipped[skipped.index("skipped because:") + 1].split("  ")[-1].strip() == \
        "its deadline had passed (deadline_passed)"


def test_recipient_show_lists_actual_and_planned_messages_in_their_own_zone(
        audience_file: Path, env: dict[str, str]) -> None:
    scheduled_and_dispatched(audience_file, env)
    doc = json.loads(run("recipient", "show", "noah", "--json", env=env).stdout)
    assert (doc["recipient"], doc["timezone"]) == ("noah", "Australia/Sydney")
    first, *later = doc["messages"]
    assert first == {"campaign": "tiktok-music-shutdown", "send_key": "playlist-transfer@P30D+refund@P61D",
                     "channel": "push", "state": "pending", "at": "2024-09-28T10:00:00+10:00", "skip_reason": None,
                     "last_error": "waiting for the delivery window (08:00–21:00 local time)", "delivery_id": 1}
    assert later and all(m["state"] == "planned" and m["channel"] == "push" for m in later)  # Noah has no address
    assert later[0]["at"] == "2024-10-21T10:00:00+11:00"  # daylight saving time began in Sydney on 6 Oct
    table = run("recipient", "show", "ana", "--campaign", "tiktok-music-shutdown", env=env).stdout
    assert table.startswith("ana: time zone America/Sao_Paulo, country BR, reachable by email, push; 12 messages")
    first = "30 days before Playlist transfer, and 61 days before Refund requests and service closure"
    assert f"{first}  email    sent     2024-09-28 11:00 -0300" in table
    assert "playlist-transfer@P30D" not in table
    noah = run("recipient", "show", "noah", env=env).stdout.splitlines()
    assert noah[3].endswith("  waiting for 08:00 local")
    unknown = run("recipient", "show", "nobody", env=env)
    assert unknown.returncode == 2 and "no recipient with id 'nobody'" in unknown.stderr


def test_plan_against_the_ledger_matches_the_audience_file(audience_file: Path, env: dict[str, str]) -> None:
    assert run("audience", "import", str(audience_file), "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    from_file = run("campaign", "plan", str(CAMPAIGN_FILE), "--audience", str(audience_file), "--json", env=env)
    from_ledger = run("campaign", "plan", "tiktok-music-shutdown", "--json", env=env)
    assert from_ledger.returncode == 0, from_ledger.stderr
    assert from_ledger.stdout == from_file.stdout and from_ledger.stdout.count("\n") > 10
    late = run("campaign", "plan", "tiktok-music-shutdown", "--recipient", "late", env=env)
    assert "push: the recipient has no active push token; no push messages" in late.stdout
    missing = run("campaign", "plan", "tiktok-music-shutdown", "--recipient", "nobody", env=env)
    assert missing.returncode == 2 and "the ledger: no valid recipient with id 'nobody'" in missing.stderr


def test_plan_leaves_out_a_recipient_without_a_country_as_scheduling_does(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,email,timezone,country\nwith,w@example.com,Asia/Jakarta,ID\nwithout,o@example.com,"
                    "Asia/Jakarta,\n", encoding="utf-8")
    plan = run("campaign", "plan", str(CAMPAIGN_FILE), "--audience", str(path), "--json")
    assert {json.loads(line)["recipient"] for line in plan.stdout.splitlines()} == {"with"}
    why = run("campaign", "plan", str(CAMPAIGN_FILE), "--audience", str(path), "--recipient", "without")
    assert why.returncode == 0, why.stderr
    assert "the recipient's country (none) is not among the campaign's audience.countries" in why.stdout


# --- small things: actions, version, verbose, states as words ----------------------------------------------


def test_an_action_no_campaign_uses_is_refused_unless_forced(audience_file: Path, env: dict[str, str]) -> None:
    scheduled_and_dispatched(audience_file, env)
    typo = run("audience", "action", "ana", "plan_swiched", env=env)
    assert typo.returncode == 2
    assert typo.stderr.strip() == ("error: no campaign's skip_if uses the action 'plan_swiched' (known: "
                                   "playlist_transferred, refund_requested); check the spelling, or pass --force "
                                   "to record it anyway")
    assert run("audience", "action", "ana", "refund_requested", env=env).stdout.strip() == \
        "recorded refund_requested for ana"
    assert run("audience", "action", "ana", "plan_swiched", "--force", env=env).returncode == 0


def test_version_and_quiet_verbose(env: dict[str, str]) -> None:
    from notifier import __version__

    assert run("--version").stdout.strip() == f"notifier {__version__}"
    verbose = run("-v", "campaign", "list", env=env)  # a fresh ledger: Alembic migrates it
    assert verbose.returncode == 0 and "alembic" not in verbose.stderr


def test_dispatch_prints_states_as_words(audience_file: Path, env: dict[str, str]) -> None:
    assert run("audience", "import", str(audience_file), "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    assert run("campaign", "schedule", "tiktok-music-shutdown", "--now", "2024-09-01T00:00Z", env=env).returncode == 0
    out = run("dispatch", "--once", "--now", "2024-09-28T14:00Z", env=env).stdout
    # Noah's push waits for 08:00 in Sydney: a wait for the window, not a retry.
    assert out.rstrip().endswith("materialized 4, claimed 4, sent: 3, waiting for 08:00 local: 1")
    assert "DeliveryState" not in out and "retry" not in out
