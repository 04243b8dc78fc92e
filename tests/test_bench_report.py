"""The bench's reporting helpers (memory, sampling, chart, results table, ledger size) and the push and email
ceilings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench import ceiling, email_ceiling, report
from tests.conftest import PostgresSchema

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- memory ---------------------------------------------------------------------------------------------


def test_peak_rss_of_this_process_is_positive() -> None:
    assert report.peak_rss_mb(os.getpid()) > 0


def test_peak_rss_of_a_process_that_is_gone_is_zero() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert report.peak_rss_mb(child.pid) == 0.0


def test_tree_peak_rss_sees_a_child_bigger_than_its_parent() -> None:
    # A small parent of its own (the test process may itself have a big peak), whose child touches 200 MB.
    grandchild = ("import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
                  "print(flush=True); time.sleep(30)")
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', "
                               f"{grandchild!r}])"], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert parent.stdout is not None
        parent.stdout.readline()  # the child has touched its 200 MB
        assert report.tree_peak_rss_mb(parent.pid) >= 200 > report.peak_rss_mb(parent.pid)
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


# --- sampling -------------------------------------------------------------------------------------------


def test_sampler_records_stamped_counts_and_skips_a_failing_probe() -> None:
    calls = iter(range(1000))
    lock = threading.Lock()

    def probe() -> dict[str, int]:
        with lock:
            n = next(calls)
        if n == 1:
            raise ConnectionError("the emulator is busy")
        return {"email": n * 10, "push": n}

    sampler = report.Sampler(probe, interval=0.01)
    sampler.start()
    time.sleep(0.1)
    samples = sampler.stop()

    assert len(samples) >= 3 and sampler.skipped == 1
    stamps = [t for t, _ in samples]
    assert stamps == sorted(stamps)
    assert all(c["email"] == 10 * c["push"] for _, c in samples)
    assert {"email": 10, "push": 1} not in [c for _, c in samples]  # the failed probe left no sample


def test_rates_are_messages_per_second_between_samples() -> None:
    samples = [(100.0, {"push": 0}), (101.0, {"push": 500}), (102.0, {"push": 1000})]
    xs, ys = report.rates(samples, "push", window=1)
    assert (xs, ys) == ([0.5, 1.5], [500.0, 500.0])


# --- chart ----------------------------------------------------------------------------------------------


def test_chart_writes_a_png(tmp_path: Path) -> None:
    samples = [(float(t), {"email": 1000 * t, "push": 300 * t * t}) for t in range(20)]

    path = report.chart(samples, tmp_path / "charts" / "wave.png", "one wave, 1000 recipients")

    data = path.read_bytes()
    assert path == tmp_path / "charts" / "wave.png"
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


# --- the results table ----------------------------------------------------------------------------------


def test_the_first_row_brings_an_explanation_and_the_table_header(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"

    report.append_results(results, {"recipients": 1000, "email/s": 812.25, "push/s": 640.0})

    text_ = results.read_text()
    assert "python -m bench --recipients N" in text_
    assert text_.endswith("| recipients | email/s | push/s |\n|---|---|---|\n| 1000 | 812.2 | 640.0 |\n")


def test_a_row_with_the_same_columns_joins_the_table(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    report.append_results(results, {"recipients": 1000, "push/s": 640.0})
    report.append_results(results, {"recipients": 2000, "push/s": 655.5})

    lines = results.read_text().splitlines()
    assert lines[-4:] == ["| recipients | push/s |", "|---|---|", "| 1000 | 640.0 |", "| 2000 | 655.5 |"]
    assert results.read_text().count("|---|") == 1


def test_a_row_with_other_columns_starts_a_new_table(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    report.append_results(results, {"recipients": 1000, "push/s": 640.0})
    report.append_results(results, {"recipients": 1000, "push/s": 650.0, "peak MB": 120.0})

    tail = results.read_text().split("| 1000 | 640.0 |\n", 1)[1]
    assert tail == "\n| recipients | push/s | peak MB |\n|---|---|---|\n| 1000 | 650.0 | 120.0 |\n"


def test_a_row_joins_the_table_with_its_columns_even_when_other_sections_follow(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    report.append_results(results, {"recipients": 1000, "push/s": 640.0})
    with results.open("a") as out:
        out.write("\n## The studio\n\n| step | seconds |\n|---|---|\n| upload | 87.5 |\n")

    report.append_results(results, {"recipients": 2000, "push/s": 655.5})

    assert results.read_text().endswith("| recipients | push/s |\n|---|---|\n| 1000 | 640.0 |\n| 2000 | 655.5 |\n"
                                        "\n## The studio\n\n| step | seconds |\n|---|---|\n| upload | 87.5 |\n")


def test_a_row_with_new_columns_starts_a_table_at_the_end_under_its_heading(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    report.append_results(results, {"recipients": 1000, "push/s": 640.0})
    with results.open("a") as out:
        out.write("\n## The studio\n\n| step | seconds |\n|---|---|\n| upload | 87.5 |")  # no final newline

    report.append_results(results, {"recipients": 1000, "push/s": 650.0, "email_ratio": 0.4}, heading="## New")

    old, new = results.read_text().split("| upload | 87.5 |\n", 1)
    assert old.endswith("| recipients | push/s |\n|---|---|\n| 1000 | 640.0 |\n\n## The studio\n\n| step | seconds |\n"
                        "|---|---|\n")  # the old table is left as it was
    assert new == "\n## New\n\n| recipients | push/s | email_ratio |\n|---|---|---|\n| 1000 | 650.0 | 0.4 |\n"


# --- ledger size ----------------------------------------------------------------------------------------


def test_ledger_size_of_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x BLOB)"))
        connection.execute(text("INSERT INTO t VALUES (zeroblob(2000000))"))
    engine.dispose()

    assert 1.9 < report.ledger_size_mb(url) < 3
    assert report.ledger_size_bytes(url) == report.ledger_size_mb(url) * 1024 * 1024


@pytest.mark.postgres
def test_ledger_size_of_a_postgres_database(postgres_schema: PostgresSchema) -> None:
    engine = postgres_schema.engine()
    try:
        assert report.ledger_size_mb(engine) > 1  # an empty PostgreSQL database already takes a few MB
    finally:
        engine.dispose()


# --- the push ceiling -----------------------------------------------------------------------------------


def test_a_tiny_push_ceiling_has_a_rate_and_leaves_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real_start = ceiling.start_server

    def start_server(port: int) -> subprocess.Popen[bytes]:
        started.append(real_start(port))
        return started[-1]

    monkeypatch.setattr(ceiling, "start_server", start_server)

    result = ceiling.push_ceiling(requests=300, concurrency=16)

    assert result.per_s > 0 and result.server_peak_rss_mb > 0
    [server] = started
    assert server.poll() is not None  # stopped and reaped
    assert not Path(f"/proc/{server.pid}").exists()


def test_the_ceiling_body_is_about_the_size_of_a_real_push() -> None:
    assert 600 < len(ceiling.fcm_body(1)) < 1200


# --- the email ceiling ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mail_body() -> bytes:
    return email_ceiling.mail_body()


def test_the_email_ceiling_body_is_a_full_batch_as_the_sendgrid_adapter_builds_it(mail_body: bytes) -> None:
    body = json.loads(mail_body)
    personalizations = body["personalizations"]

    assert len(personalizations) == 1000
    assert len({p["to"][0]["email"] for p in personalizations}) == 1000  # varied addresses
    assert len({p["custom_args"]["delivery_id"] for p in personalizations}) == 1000
    assert all("List-Unsubscribe" in p["headers"] and p["substitutions"] for p in personalizations)
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert 300_000 < len(mail_body) < 1_000_000


def test_a_tiny_email_ceiling_counts_what_the_emulator_accepted(tmp_path: Path, mail_body: bytes) -> None:
    for client in email_ceiling.CLIENTS:
        result = email_ceiling.email_ceiling(tmp_path, requests=3, concurrency=2, client=client, body=mail_body)

        assert (result.messages, result.requests, result.client) == (3000, 3, client)
        assert result.per_s > 0 and result.emulator_peak_rss_mb > 0 and result.emulator_cpu_share > 0


def test_the_email_ceiling_fails_when_the_emulator_refuses_the_body(tmp_path: Path, mail_body: bytes) -> None:
    body = json.loads(mail_body)
    body["personalizations"][3]["to"][0]["email"] = "not-an-address"

    with pytest.raises(RuntimeError, match="the emulator answered 400"):
        email_ceiling.email_ceiling(tmp_path, requests=2, concurrency=1, body=json.dumps(body).encode())
