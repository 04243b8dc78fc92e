"""What the audience rules cost, on PostgreSQL: materializing a wave with a condition or a holdout, and a tick that
sends under the daily cap, each against the same work without them in the same run.

    python -m bench.audience_rules --recipients 100000      (about 3 minutes here)

Imports the benchmark's audience (``bench/population.py``: its ``plan`` attribute is premium, family or student),
then for the shipped campaign moved so that its first wave is due now (``bench/wave.py``), under four ids in turn:

- ``plain``: no rule (the baseline): the wave's rows are made (``queries.materialize_due``), then one tick sends them
  through the SDKs to the emulator (ids-only mode);
- ``where``: ``audience.where: plan in ["premium", "family"] and country != "SG"`` and a deadline's ``where``; the
  rows are made (fewer of them: the seconds are reported per recipient of the zone groups read, as the baseline's);
- ``holdout``: a marketing copy with ``audience.holdout: 10%``; the rows are made;
- ``capped``: the baseline's campaign again under ``NOTIFIER_DAILY_CAP=2`` (every message still goes: what is measured
  is the place each one takes, and the check of what else may come that day); the rows are made and one tick sends.

The last line is the summary: ``audience-rules: recipients=N plain_s=X where_s=X where_ratio=X holdout_s=X
holdout_ratio=X send_plain_per_s=X send_capped_per_s=X cap_ratio=X``.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.__main__ import DEFAULT_SERVER, SECRETS
from bench.population import write_audience
from bench.services import scratch_database
from bench.wave import due_now

WHERE = "plan in [\"premium\", \"family\"] and country != \"SG\""


def variant(spec: str, name: str) -> str:
    """The shipped campaign (its wave due now) under another id, with the rules of ``name``."""
    text = spec.replace("id: tiktok-music-shutdown", f"id: {name}", 1)
    if name == "where":
        text = re.sub(r"(?m)^  countries: (.*)$", lambda m: f"  countries: {m[1]}\n  where: '{WHERE}'", text, count=1)
        text = text.replace("    skip_if: refund_requested\n",
                            "    skip_if: refund_requested\n    where: 'plan != \"student\"'\n", 1)
    if name == "holdout":
        text = text.replace("category: service", "category: marketing", 1)
        text = re.sub(r"(?m)^  countries: (.*)$", lambda m: f"  countries: {m[1]}\n  holdout: 10%", text, count=1)
    return text


def catalogs_as(folder: Path, ids: tuple[str, ...]) -> Path:
    """The shipped catalogs copied to ``folder``, also as each of ``ids``' (a campaign's id is its gettext domain)."""
    import shutil

    from notifier.config import Settings

    shutil.copytree(Settings().locales_dir, folder, dirs_exist_ok=True)
    for po in [*folder.glob("*/LC_MESSAGES/tiktok-music-shutdown.po"), folder / "tiktok-music-shutdown.pot"]:
        for ident in ids:
            shutil.copyfile(po, po.with_name(f"{ident}{po.suffix}"))
    return folder


def run(n: int, server: str, workdir: Path) -> dict[str, float]:
    from sqlalchemy import text

    from notifier.audience import import_audience
    from notifier.campaign import parse_campaign
    from notifier.config import load_settings
    from notifier.emulator.process import run_emulator
    from notifier.ledger import queries
    from notifier.ledger.db import make_engine, session_factory, transaction, upgrade
    from notifier.planner import plan_zone, send_channels
    from notifier.render import Content
    from notifier.wiring import build_dispatcher
    audience = write_audience(workdir / "audience.csv", n)
    locales = catalogs_as(workdir / "locales", ("plain", "where", "holdout", "capped"))
    out: dict[str, float] = {}
    with scratch_database(server, f"notifier_bench_rules_{os.getpid()}") as url, \
            run_emulator(workdir, log="ids") as emulator:
        engine = make_engine(url)
        upgrade(engine)
        sessions = session_factory(engine)
        env = {**os.environ, **SECRETS, "NOTIFIER_DATABASE_URL": url, "NOTIFIER_TRANSPORT": "providers",
               "SENDGRID_API_KEY": "SG.bench", "NOTIFIER_SENDGRID_HOST": emulator.url,
               "NOTIFIER_FCM_ENDPOINT": emulator.url, "GOOGLE_APPLICATION_CREDENTIALS": str(emulator.credentials),
               "NOTIFIER_LOCALES_DIR": str(locales)}
        now = datetime.now(UTC)
        import_audience(sessions, audience, now=now, batch_size=1000)
        spec, scheduled = due_now(now)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("ANALYZE"))
        for name in ("plain", "where", "holdout", "capped"):
            settings = load_settings({**env, **({"NOTIFIER_DAILY_CAP": "2"} if name == "capped" else {})})
            text_ = variant(spec, name)
            campaign = parse_campaign(text_, source=str(workdir / f"{name}.yaml"))
            with transaction(sessions) as s:
                queries.schedule(s, campaign, text_, scheduled, Content.of(campaign, settings.templates_dir,
                                                                            settings.locales_dir), plan_zone)
            began = time.perf_counter()
            with transaction(sessions) as s:
                rows = queries.materialize_due(s, datetime.now(UTC), send_channels)
            out[f"{name}_s"] = time.perf_counter() - began
            out[f"{name}_rows"] = rows
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("ANALYZE"))
            if name in ("plain", "capped"):
                dispatcher = build_dispatcher(settings, sessions)
                try:
                    began = time.perf_counter()
                    report = dispatcher.tick(datetime.now(UTC))
                    seconds = time.perf_counter() - began
                finally:
                    dispatcher.close()
                out[f"send_{name}_per_s"] = report.outcomes.get("sent", 0) / seconds
                out[f"send_{name}_sent"] = report.outcomes.get("sent", 0)
            with transaction(sessions) as s:  # the next variant's tick sends its own rows only
                s.execute(text("UPDATE campaigns SET state = 'cancelled' WHERE id = :id"), {"id": name})
        engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audience_rules", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a PostgreSQL server URL (a database is created)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="notifier-rules-") as tmp:
        got: dict[str, Any] = run(args.recipients, args.server, Path(tmp))
    for name in ("plain", "where", "holdout", "capped"):
        print(f"  {name}: {got[f'{name}_rows']:,} rows made in {got[f'{name}_s']:.2f} s")
    for name in ("plain", "capped"):
        print(f"  {name}: {got[f'send_{name}_sent']:,} sent, {got[f'send_{name}_per_s']:,.0f}/s")
    summary = {"recipients": args.recipients, "plain_s": round(got["plain_s"], 2), "where_s": round(got["where_s"], 2),
               "where_ratio": round(got["where_s"] / got["plain_s"], 2), "holdout_s": round(got["holdout_s"], 2),
               "holdout_ratio": round(got["holdout_s"] / got["plain_s"], 2),
               "send_plain_per_s": round(got["send_plain_per_s"]), "send_capped_per_s": round(got["send_capped_per_s"]),
               "cap_ratio": round(got["send_capped_per_s"] / got["send_plain_per_s"], 2)}
    print("audience-rules: " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)


if __name__ == "__main__":
    main()
