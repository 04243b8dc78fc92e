"""The benchmark's smoke run: ``python -m bench`` end to end at 2,000 recipients, on the real services.

It proves the harness works (every phase ran, the figures are there, the chart and the results row are written),
not how fast anything is: speed is measured by ``python -m bench --recipients 1000000`` (bench/RESULTS.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL, ROOT

SUMMARY = re.compile(
    r"bench: recipients=2000 import_s=(?P<import_s>[\d.]+) plan_s=[\d.]+ email_per_s=(?P<email>\d+) "
    r"push_per_s=(?P<push>\d+) push_ceiling_per_s=(?P<ceiling>\d+) push_ratio=[\d.]+ "
    r"baseline_email_per_s=(?P<baseline>[\d.]+) speedup_email=[\d.]+ peak_rss_mb=(?P<rss>[\d.]+) "
    r"email_ceiling_per_s=(?P<email_ceiling>\d+) email_ratio=(?P<email_ratio>[\d.]+) "
    r"materialize_s=(?P<materialize>[\d.]+) ledger_bytes_per_message=(?P<bytes_per_message>\d+)")


@pytest.mark.postgres
def test_bench_smoke_run_prints_the_summary_line_and_writes_chart_and_results(tmp_path: Path) -> None:
    server = make_url(PG_URL).set(database="postgres").render_as_string(hide_password=False)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--recipients", "2000", "--baseline-sample", "60", "--ceiling-requests",
         "2000", "--email-ceiling-requests", "10", "--server", server, "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    found = SUMMARY.fullmatch(last)
    assert found, last
    assert all(float(found[k]) > 0 for k in ("import_s", "email", "push", "ceiling", "baseline", "rss",
                                             "email_ceiling", "email_ratio", "bytes_per_message"))
    assert float(found["materialize"]) >= 0
    assert int(found["email_ceiling"]) > int(found["email"])  # nothing of notifier in the way: faster than the wave
    assert float(found["email_ratio"]) == pytest.approx(int(found["email"]) / int(found["email_ceiling"]), abs=1e-3)
    assert 100 < int(found["bytes_per_message"]) < 1_000_000  # a 2,000-recipient database is mostly fixed overhead
    assert "email: " in result.stdout and "push: " in result.stdout
    png = tmp_path / "wave-2000.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "RESULTS.md").read_text(encoding="utf-8").splitlines()
    header, ruler, row = lines[-3:]
    assert ruler.startswith("|---")
    cells = dict(zip(_cells(header), _cells(row), strict=True))
    assert cells["recipients"] == "2000" and cells["cores"] == str(os.cpu_count())
    assert (cells["email_per_s"], cells["push_per_s"]) == (found["email"], found["push"])  # the row is this run's
    assert (cells["email_ceiling_per_s"], cells["ledger_bytes_per_message"]) == (found["email_ceiling"],
                                                                                 found["bytes_per_message"])
    assert int(cells["emails"]) > 0 and int(cells["pushes"]) > 0


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def summary_line(module: str, *args: str) -> str:
    """``python -m MODULE ARGS --server <this machine's PostgreSQL>``'s last line, once it exited 0."""
    server = make_url(PG_URL).set(database="postgres").render_as_string(hide_password=False)
    result = subprocess.run([sys.executable, "-m", module, *args, "--server", server],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.postgres
def test_dashboard_counts_smoke_run_prints_its_summary_line() -> None:
    """``python -m bench.dashboard_counts`` at 2,000 recipients: the harness works (its figures are in
    README's Measured, from a run at 700,000)."""
    last = summary_line("bench.dashboard_counts", "--recipients", "2000", "--runs", "1")
    found = re.fullmatch(r"dashboard-counts: rows=3000 baseline_ms=\d+ progress_ms=\d+ fragment_ms=\d+ "
                         r"chart_ms=\d+ list_ms=\d+ ratio=[\d.]+", last)
    assert found, last


@pytest.mark.postgres
def test_results_page_smoke_run_prints_its_summary_line() -> None:
    """``python -m bench.results_page`` at 2,000 recipients and 20,000 events: the harness works (its figures are
    in README's Measured, from a run at 1,000,000 recipients and 10,000,000 events)."""
    last = summary_line("bench.results_page", "--recipients", "2000", "--runs", "1")
    found = re.fullmatch(r"results-page: recipients=2000 events=(\d+) baseline_ms=\d+ results_ms=\d+ page_ms=\d+ "
                         r"api_ms=\d+ batch_ms=\d+ ratio=[\d.]+", last)
    assert found and int(found[1]) > 10_000, last


@pytest.mark.postgres
def test_audit_log_smoke_run_prints_its_summary_line() -> None:
    """``python -m bench.audit_log`` small: the harness works and the chain it wrote holds (its figures are in
    README's Measured, from a run at 1,000,000 lines)."""
    last = summary_line("bench.audit_log", "--transactions", "40", "--threads", "2", "--lines", "300")
    found = re.fullmatch(r"audit-log: transactions=40 threads=2 plain_ms=[\d.]+ audited_ms=[\d.]+ ratio=[\d.]+ "
                         r"lines=(\d+) verify_s=[\d.]+ lines_per_s=\d+", last)
    assert found and int(found[1]) >= 300, last


@pytest.mark.postgres
def test_audience_rules_smoke_run_makes_fewer_rows_under_its_rules_and_sends_every_message_under_the_cap() -> None:
    """``python -m bench.audience_rules`` at 300 recipients: the condition and the holdout leave rows out, and the
    capped tick sends as much as the plain one (its figures are in README's Measured, from a run at 100,000)."""
    server = make_url(PG_URL).set(database="postgres").render_as_string(hide_password=False)
    result = subprocess.run([sys.executable, "-m", "bench.audience_rules", "--recipients", "300", "--server", server],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = dict(re.findall(r"(?m)^  (\w+): ([\d,]+) rows made", result.stdout))
    sent = dict(re.findall(r"(?m)^  (\w+): ([\d,]+) sent", result.stdout))
    assert int(rows["where"]) < int(rows["holdout"]) < int(rows["plain"]) == int(rows["capped"]), rows
    assert sent == {"plain": rows["plain"], "capped": rows["capped"]}, sent
    assert re.fullmatch(r"audience-rules: recipients=300 plain_s=[\d.]+ where_s=[\d.]+ where_ratio=[\d.]+ "
                        r"holdout_s=[\d.]+ holdout_ratio=[\d.]+ send_plain_per_s=\d+ send_capped_per_s=\d+ "
                        r"cap_ratio=[\d.]+", result.stdout.strip().splitlines()[-1])


@pytest.mark.postgres
def test_dispatch_once_smoke_run_sends_every_message_and_prints_its_summary_line() -> None:
    """``python -m bench.dispatch_once`` at 300 recipients: every message of the wave went out in the one tick,
    and the ledger's counters were read (its figures are in README's Measured, from a run at 100,000)."""
    server = make_url(PG_URL).set(database="postgres").render_as_string(hide_password=False)
    result = subprocess.run(
        [sys.executable, "-m", "bench.dispatch_once", "--recipients", "300", "--server", server,
         "--email-ceiling-requests", "3", "--push-ceiling-requests", "300"],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    found = re.fullmatch(r"dispatch-once: recipients=300 messages=(?P<messages>\d+) seconds=[\d.]+ per_s=\d+ "
                         r"ceiling_per_s=\d+ ratio=[\d.]+ cpu_us=\d+ wal_bytes=(?P<wal>\d+) "
                         r"rows_written=(?P<written>[\d.]+) tuples_read=[\d.]+ ledger_bytes=(?P<bytes>\d+)", last)
    assert found, last
    assert int(found["messages"]) > 300 and int(found["wal"]) > 0
    assert int(found["bytes"]) > 1000  # 300 recipients in a database of its own: mostly the empty database's bytes
    assert re.search(r"bytes per message after VACUUM: .*\bdeliveries [\d,]+", result.stdout), result.stdout
    assert float(found["written"]) >= 2.5  # created, claimed, completed, and at 300 recipients the plan's own rows
