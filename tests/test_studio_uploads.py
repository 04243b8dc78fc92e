"""The studio's audience upload: sniffed with suggestions, mapped, imported in the background, rejects as CSV."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience import import_audience
from notifier.config import Settings
from notifier.errors import AudienceError, NotFound
from notifier.ledger.models import AudienceUpload, PushToken, Recipient
from notifier.studio.uploads import (
    HEAD_BYTES,
    join_upload,
    rejects_csv,
    resume_uploads,
    sniff,
    start_upload,
    upload_status,
)

NOW = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
WRONG_HEADER = (
    "user id;E-Mail;tz;Language;country;plan\n"
    "u1;ana@example.com;America/Sao_Paulo;pt-BR;BR;gold\n"
    "u2;not-an-address;America/Mexico_City;es-MX;MX;silver\n"
    "u3;budi@example.com;Asia/Jakarta;id;ID;\n"
)


def _settings(tmp_path: Path) -> Settings:
    return Settings().with_(studio_dir=tmp_path / "studio")


def _spool(settings: Settings, data: bytes, name: str = "spool.part") -> Path:
    folder = settings.studio_dir / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _wait(sessions: sessionmaker[Session], upload_id: str) -> None:
    join_upload(upload_id, timeout=120)
    with sessions() as s:
        assert upload_status(s, upload_id).state in ("done", "failed")


def test_sniff_proposes_the_audience_modules_suggestions_and_shows_rows_as_stored() -> None:
    sniffed = sniff(WRONG_HEADER.encode(), "acme.csv")
    assert sniffed.format == "csv"
    assert sniffed.columns == ("user id", "E-Mail", "tz", "Language", "country", "plan")
    assert sniffed.suggestions == {"user id": "id", "E-Mail": "email", "tz": "timezone", "Language": "locale",
                                   "country": "country", "plan": "attributes.plan"}
    assert "" in sniffed.fields and "timezone" in sniffed.fields
    first = sniffed.sample[0]
    assert (first["id"], first["email"], first["timezone"], first["locale"]) == (
        "u1", "ana@example.com", "America/Sao_Paulo", "pt-BR")
    assert first["attributes"] == {"plan": "gold"}
    assert [row["id"] for row in sniffed.sample] == ["u1", "u3"]
    assert len(sniffed.problems) == 1 and sniffed.problems[0].startswith("line 3: id u2: email:")
    assert "not-an-address" not in sniffed.problems[0]  # the CLI's reason, which never quotes the address


def test_sniff_with_a_chosen_mapping_and_without_one_that_works() -> None:
    ignored = sniff(WRONG_HEADER.encode(), "acme.csv", {"plan": ""})
    assert ignored.sample[0]["attributes"] == {}
    broken = sniff(WRONG_HEADER.encode(), "acme.csv", {"E-Mail": "", "tz": "tz"})
    assert broken.sample == ()
    assert any("'tz'" in p and "did you mean 'timezone'" in p and "acme.csv:1" in p for p in broken.problems)


def test_sniff_drops_the_line_the_head_cut_and_reads_json_lines() -> None:
    rows = [{"id": f"r{i}", "mail": f"r{i}@example.com", "tz": "Asia/Jakarta"} for i in range(3000)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    head = data[:HEAD_BYTES]
    assert not head.endswith(b"\n")
    sniffed = sniff(head, "people.ndjson")
    assert sniffed.format == "jsonl"
    assert sniffed.suggestions == {"id": "id", "mail": "email", "tz": "timezone"}
    assert len(sniffed.sample) == 5 and sniffed.problems == ()
    assert sniff(data[:200], "upload.bin").format == "jsonl"  # no extension: the content tells


def test_upload_imports_in_the_background_with_the_mapping_and_lists_rejects(
        sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings(tmp_path)
    spool = _spool(settings, WRONG_HEADER.encode())
    mapping = dict(sniff(WRONG_HEADER.encode(), "acme.csv").suggestions)
    upload_id = start_upload(sessions, settings, spool, file_name="acme.csv", fmt=None, mapping=mapping, now=NOW)
    _wait(sessions, upload_id)
    with sessions() as s:
        status = upload_status(s, upload_id)
        assert (status.state, status.accepted, status.rejected, status.percent) == ("done", 2, 1, 100)
        assert status.read_bytes == status.size_bytes == len(WRONG_HEADER.encode())
        ana = s.scalars(select(Recipient).where(Recipient.id == "u1")).one()
        assert (ana.email, ana.timezone, ana.attributes) == ("ana@example.com", "America/Sao_Paulo", {"plan": "gold"})
        rows = list(csv.reader(io.StringIO("".join(rejects_csv(s, upload_id)))))
    assert rows[0] == ["line", "reason"]
    assert rows[1][0] == "3" and rows[1][1].startswith("line 3: id u2: email:")
    assert not spool.exists() and not (settings.studio_dir / "uploads" / upload_id).exists()  # taken over, then gone
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "example.com" not in logged and "not-an-address" not in logged and upload_id in logged


def test_a_large_upload_writes_progress_as_it_goes_and_every_reject(sessions: sessionmaker[Session],
                                                                    tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    lines = ["uid,Email Address,Time Zone,token"]
    for i in range(5000):
        zone = "Nowhere/City" if i % 1000 == 7 else "Europe/Lisbon"
        lines.append(f"p{i},p{i}@example.com,{zone},tok-{i}")
    data = ("\n".join(lines) + "\n").encode()
    seen: list[int] = []
    spool = _spool(settings, data)
    mapping = {"uid": "id", "Email Address": "email", "Time Zone": "timezone", "token": "push_tokens"}
    upload_id = start_upload(sessions, settings, spool, file_name="big.csv", fmt="csv", mapping=mapping, now=NOW)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with sessions() as s:
            status = upload_status(s, upload_id)
        seen.append(status.accepted)
        if status.state in ("done", "failed"):
            break
        time.sleep(0.01)
    join_upload(upload_id, timeout=60)
    with sessions() as s:
        status = upload_status(s, upload_id)
        assert (status.state, status.accepted, status.rejected) == ("done", 4995, 5)
        assert s.scalar(select(func.count()).select_from(PushToken)) == 4995
        rejects = list(rejects_csv(s, upload_id))
    assert len(rejects) == 6 and rejects[1].startswith("9,")
    assert "Nowhere/City" in rejects[1] or "time zone" in rejects[1]
    assert seen == sorted(seen)  # progress only ever goes forward


def test_the_import_tells_its_progress_after_every_batch(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("id,email,timezone\n" + "".join(f"p{i},p{i}@example.com,UTC\n" for i in range(30_000)) +
                    "bad,not-an-address,UTC\n" * 2500, encoding="utf-8")
    told: list[tuple[int, int, int]] = []
    report = import_audience(sessions, path, now=NOW, batch_size=1000, rename={"email": "email"},
                             progress=lambda r, read: told.append((r.accepted, r.rejected, read)))
    assert (report.accepted, report.rejected) == (30_000, 2500)
    assert [a for a, _, _ in told[:3]] == [1000, 2000, 3000]
    assert told[-1] == (30_000, 2500, path.stat().st_size)
    assert any(rejected == 1000 for _, rejected, _ in told)  # rejections alone also move the bar
    reads = [read for _, _, read in told]
    assert reads == sorted(reads) and 0 < reads[0] < path.stat().st_size


def test_an_unreadable_file_fails_with_the_file_name_not_the_spool(sessions: sessionmaker[Session],
                                                                  tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    spool = _spool(settings, b"id,email,timezone\nu1,a@example.com,UTC\nu2,b\xff@example.com,UTC\n")
    upload_id = start_upload(sessions, settings, spool, file_name="latin1.csv", fmt=None, mapping={}, now=NOW)
    _wait(sessions, upload_id)
    with sessions() as s:
        status = upload_status(s, upload_id)
    assert status.state == "failed" and status.accepted == 1
    assert status.error is not None and "latin1.csv:3" in status.error and "uploads" not in status.error
    with sessions() as s, pytest.raises(NotFound):
        upload_status(s, "no-such-upload")


def test_an_upload_left_importing_by_a_dead_process_is_resumed_and_stores_each_row_once(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    folder = settings.studio_dir / "uploads"
    folder.mkdir(parents=True)
    upload_id = "0f0e0d0c-0b0a-4908-8706-050403020100"
    (folder / upload_id).write_text(WRONG_HEADER, encoding="utf-8")
    mapping = {"user id": "id", "E-Mail": "email", "tz": "timezone", "Language": "locale", "plan": ""}
    then = NOW - timedelta(minutes=30)
    with sessions.begin() as s:  # what a process killed mid-import leaves: half the counts, the spool
        s.add(AudienceUpload(id=upload_id, file_name="acme.csv", format="csv", state="importing", mapping=mapping,
                             size_bytes=len(WRONG_HEADER), read_bytes=40, accepted=1, rejected=0, guessed=0,
                             spool_path=str(folder / upload_id), created_at=then, updated_at=then))
    fresh = "1a1b1c1d-0b0a-4908-8706-050403020100"
    with sessions.begin() as s:  # one still making progress elsewhere is left alone
        s.add(AudienceUpload(id=fresh, file_name="b.csv", format="csv", state="importing", mapping={},
                             size_bytes=1, read_bytes=0, accepted=0, rejected=0, guessed=0,
                             spool_path=str(folder / fresh), created_at=NOW, updated_at=NOW))
    (folder / fresh).write_text("id,email\n", encoding="utf-8")
    assert resume_uploads(sessions, settings, NOW) == [upload_id]
    _wait(sessions, upload_id)
    assert resume_uploads(sessions, settings, NOW + timedelta(minutes=1)) == []
    with sessions() as s:
        status = upload_status(s, upload_id)
        assert (status.state, status.accepted, status.rejected) == ("done", 2, 1)
        assert s.scalar(select(func.count()).select_from(Recipient)) == 2
        assert len(list(rejects_csv(s, upload_id))) == 2


def test_an_unknown_format_is_refused_at_once_and_leaves_nothing(sessions: sessionmaker[Session],
                                                                 tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    spool = _spool(settings, b"PK\x03\x04 a spreadsheet")
    with pytest.raises(AudienceError, match=r"sheet\.xlsx: unknown audience format 'xlsx'"):
        start_upload(sessions, settings, spool, file_name="sheet.xlsx", fmt="xlsx", mapping={}, now=NOW)
    assert list((settings.studio_dir / "uploads").iterdir()) == [] and not spool.exists()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AudienceUpload)) == 0
