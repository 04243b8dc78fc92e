"""The studio at scale: the audience upload and the dry run, each against a baseline measured in the same run.

    python bench/studio.py [--recipients 20000] [--database-url postgresql+psycopg://127.0.0.1:5432/test]

Writes a synthetic audience (bench/population.py), then, each step in a process of its own (so its peak RSS is
its own), each import into an empty ledger of its own (PostgreSQL: databases ``studio_bench_<pid>_cli`` and
``_studio`` on the server of the URL, dropped afterwards; default: SQLite files):

- baseline import: the CLI's ``notifier.audience.import_audience`` of the file into an empty ledger;
- upload: the same file through ``notifier.studio.uploads.start_upload`` (mapping, progress and rejects written to
  the ledger as it goes) into an empty ledger, waited for;
- dry run: ``notifier.studio.dryrun.dry_run`` of the shipped campaign against that audience, against two baselines:
  a plain ``SELECT count(*)`` over the recipients, and the planner asked per recipient (``plan_zone`` and
  ``plan_recipient``, as a per-recipient loop would) on a sample of 20,000, scaled to the audience.

Prints seconds and peak RSS of each, and the ratios; the last line is the summary (``studio: recipients=N ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the project and bench/ importable
    sys.path.insert(0, str(ROOT))

SAMPLE = 20_000  # recipients the per-recipient planner baseline plans
NOW = datetime(2024, 9, 1, tzinfo=UTC)
START = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)  # the demo's start: every wave ahead


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sessions(url: str) -> Any:
    from notifier.ledger.db import make_engine, session_factory, upgrade

    engine = make_engine(url)
    upgrade(engine)
    return session_factory(engine)


# --- the steps, each run in a child process ---------------------------------------------------------------------


def step_import(url: str, path: str, work: str) -> dict[str, Any]:
    from notifier.audience import import_audience

    sessions = _sessions(url)
    start = time.perf_counter()
    report = import_audience(sessions, path, now=NOW)
    return {"seconds": time.perf_counter() - start, "accepted": report.accepted, "rejected": report.rejected}


def step_upload(url: str, path: str, work: str) -> dict[str, Any]:
    from notifier.config import Settings
    from notifier.studio.uploads import join_upload, sniff, start_upload, upload_status

    sessions = _sessions(url)
    settings = Settings().with_(studio_dir=Path(work) / "studio")
    spool = Path(work) / "spool.csv"
    shutil.copyfile(path, spool)  # the web layer's spooled copy, which the upload takes over
    start = time.perf_counter()
    with open(path, "rb") as f:
        mapping = {k: v or "" for k, v in sniff(f.read(64 * 1024), "audience.csv").suggestions.items()}
    upload_id = start_upload(sessions, settings, spool, file_name="audience.csv", fmt=None, mapping=mapping, now=NOW)
    join_upload(upload_id)
    seconds = time.perf_counter() - start
    with sessions() as s:
        status = upload_status(s, upload_id)
    return {"seconds": seconds, "state": status.state, "accepted": status.accepted, "rejected": status.rejected}


def step_dry_run(url: str, path: str, work: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from notifier.campaign import load_campaign
    from notifier.ledger.models import Recipient
    from notifier.studio.dryrun import dry_run

    sessions = _sessions(url)
    campaign = load_campaign(ROOT / "campaigns" / "tiktok-music-shutdown.yaml")
    with sessions() as s:
        start = time.perf_counter()
        count = s.scalar(select(func.count()).select_from(Recipient))
        count_s = time.perf_counter() - start
    with sessions() as s:
        result = dry_run(s, campaign, START)
    return {"seconds": result.seconds, "count_seconds": count_s, "recipients": count,
            "planned_recipients": result.recipients, "messages": result.messages, "rows": len(result.rows),
            "zones": len(result.zones)}


def step_planner(url: str, path: str, work: str) -> dict[str, Any]:
    """The per-recipient baseline: every recipient of a sample loaded and planned on its own."""
    from sqlalchemy import func, select

    from notifier.campaign import load_campaign, zone
    from notifier.eligibility import Facts, reachable
    from notifier.ledger.models import PushToken, Recipient
    from notifier.planner import plan_recipient, plan_zone

    sessions = _sessions(url)
    campaign = load_campaign(ROOT / "campaigns" / "tiktok-music-shutdown.yaml")
    with sessions() as s:
        total = s.scalar(select(func.count()).select_from(Recipient)) or 0
        start = time.perf_counter()
        people = s.execute(select(Recipient.seq, Recipient.id, Recipient.timezone, Recipient.country, Recipient.email)
                           .order_by(Recipient.seq).limit(SAMPLE)).all()
        tokens = {seq for (seq,) in s.execute(select(PushToken.recipient_seq).where(
            PushToken.recipient_seq.in_([p.seq for p in people]), PushToken.active.is_(True)))}
        messages = 0
        for p in people:
            channels = reachable(campaign, Facts(p.country), p.id, p.email, ("t",) if p.seq in tokens else ())
            plan = plan_recipient(campaign, plan_zone(campaign, zone(p.timezone)), channels, START)
            messages += len(plan.sends)
        seconds = time.perf_counter() - start
    scale = total / max(1, len(people))
    return {"seconds": seconds * scale, "sample": len(people), "sample_seconds": seconds}


STEPS = {"import": step_import, "upload": step_upload, "dry_run": step_dry_run, "planner": step_planner}


def child(step: str, url: str, path: str, work: str) -> None:
    result = STEPS[step](url, path, work)
    print(json.dumps({**result, "peak_mib": _peak_mib()}))


def run_step(step: str, url: str, path: Path, work: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", step, url, str(path), str(work)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextmanager
def _database(url: str | None, work: Path, name: str) -> Any:
    """A ledger of its own for one import: SQLite in ``work``, or a scratch database on the PostgreSQL server."""
    if url is None or url.startswith("sqlite"):
        yield f"sqlite:///{work / f'{name}.db'}"
        return
    from bench.services import scratch_database

    with scratch_database(url, f"studio_bench_{os.getpid()}_{name}") as scratch:
        yield scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL server (a scratch database is made on it)")
    args = parser.parse_args()
    from bench.population import write_audience

    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    try:
        path = write_audience(work / "audience.csv", args.recipients)
        print(f"audience: {args.recipients:,} rows, {path.stat().st_size / 2**20:.1f} MiB")
        with _database(args.database_url, work, "cli") as url:  # each import into an empty ledger of its own
            base = run_step("import", url, path, work)
        print(f"baseline import_audience: {base['seconds']:.1f} s, peak {base['peak_mib']:.0f} MiB "
              f"({base['accepted']:,} accepted, {base['rejected']:,} rejected)")
        with _database(args.database_url, work, "studio") as url:
            up = run_step("upload", url, path, work)
            print(f"studio upload: {up['seconds']:.1f} s, peak {up['peak_mib']:.0f} MiB ({up['state']}, "
                  f"{up['accepted']:,} accepted, {up['rejected']:,} rejected); ratio to the CLI import: "
                  f"{up['seconds'] / base['seconds']:.2f}x time, {up['peak_mib'] / base['peak_mib']:.2f}x memory")
            dry = run_step("dry_run", url, path, work)
            plan = run_step("planner", url, path, work)
            print(f"dry run: {dry['seconds']:.2f} s, peak {dry['peak_mib']:.0f} MiB ({dry['messages']:,} messages "
                  f"for {dry['planned_recipients']:,} recipients, {dry['rows']} rows, {dry['zones']} zones); "
                  f"SELECT count(*): {dry['count_seconds']:.2f} s ({dry['seconds'] / dry['count_seconds']:.1f}x); "
                  f"planner per recipient: {plan['seconds']:.1f} s scaled from {plan['sample']:,} "
                  f"({plan['seconds'] / dry['seconds']:.0f}x slower than the dry run)")
            print(f"studio: recipients={args.recipients} upload_s={up['seconds']:.1f} upload_peak_mib="
                  f"{up['peak_mib']:.0f} import_s={base['seconds']:.1f} import_peak_mib={base['peak_mib']:.0f} "
                  f"dry_run_s={dry['seconds']:.2f} count_s={dry['count_seconds']:.2f} "
                  f"planner_per_recipient_s={plan['seconds']:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
