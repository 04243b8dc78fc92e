"""The demo as a newcomer meets it: installed without the web extra, ``notifier demo --dashboard`` names the extra in
one line; installed from a wheel, with no source tree anywhere, ``notifier demo`` plays the shipped campaign in an
empty folder (the wheel carries its campaign, templates and catalogs), and what it prints, sends and records agree."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from notifier.config import Settings
from tests.conftest import ROOT

# Without these, the environment would lead the installed notifier back to the source tree or to other settings.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFIER_", "PYTHON"))}


def test_demo_dashboard_without_the_web_extra_names_the_extra_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    without_web = ("import sys; sys.modules['fastapi'] = sys.modules['uvicorn'] = None; sys.argv[0] = 'notifier'; "
                   "from notifier.cli import main; main()")

    result = subprocess.run([sys.executable, "-c", without_web, "demo", "--dashboard"], capture_output=True,
                            text=True, cwd=tmp_path, env={**CLEAN_ENV, "PYTHONPATH": str(ROOT)}, timeout=60)

    assert (result.returncode, result.stderr) == (
        2, "error: notifier demo --dashboard needs its web extra: pip install 'notifier[web]'\n")
    assert list(tmp_path.iterdir()) == []  # no demo folder, no ledger


def test_in_the_source_tree_the_shipped_folders_are_those_at_the_root() -> None:
    settings = Settings()
    assert (settings.templates_dir, settings.locales_dir, settings.campaigns_dir) == (
        ROOT / "templates", ROOT / "locales", ROOT / "campaigns")


# --- from a wheel --------------------------------------------------------------------------------------------------

# What the wheel is built from: the project without its caches, environments, demo runs and test trees.
NOT_BUILT = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                   ".hypothesis", "test-artifacts", "notifier-demo-*", "outbox", "*.db", "tests",
                                   "bench", "docs", "scripts")


def build_wheel(into: Path) -> Path:
    """``pip wheel`` of a copy of the project (the build writes build/ and *.egg-info beside its sources). pip gets
    the build backend that pyproject.toml's [build-system] asks for from the package index, as ``pip install -e .``
    does: the test environment's own setuptools may be older."""
    source = into / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_BUILT)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(into)],
                   check=True, capture_output=True, text=True, env=CLEAN_ENV, timeout=300)
    (wheel,) = into.glob("notifier-*.whl")
    return wheel


def fresh_venv(path: Path, wheel: Path) -> Path:
    """A new venv holding only the wheel; the dependencies come from this environment's site-packages, added as a
    plain path (its .pth files, among them the editable install of the source tree, are not read)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True, env=CLEAN_ENV, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path


@pytest.mark.wheel
def test_the_wheel_alone_plays_the_demo_in_an_empty_folder(tmp_path: Path) -> None:
    started = time.monotonic()
    venv = fresh_venv(tmp_path / "venv", build_wheel(tmp_path / "dist"))
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import notifier.config as c; print(c.__file__); "
                            "print(c.Settings().campaigns_dir)"], capture_output=True, text=True, cwd=empty,
                           env=CLEAN_ENV, check=True).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # the wheel's notifier, not the source tree's

    result = subprocess.run([str(venv / "bin" / "notifier"), "demo", "--no-progress"], capture_output=True,
                            text=True, cwd=empty, env=CLEAN_ENV, timeout=300)

    assert result.returncode == 0, result.stdout[-1000:] + result.stderr[-3000:]
    (folder,) = empty.glob("notifier-demo-*")
    out = result.stdout
    assert "simulation done: " in out and "Totals per send and channel:" in out
    assert f"outbox: {folder.resolve() / 'outbox'}" in out
    assert "rows rejected" in out and "rejected notifier/demo/audience.csv" not in out
    for locale in ("id", "pt-BR", "es-MX", "en"):
        assert f" {locale} " in out
    # What the ledger says was sent is what the outbox holds, every message has its outcome, and some recipients
    # acted, so reminders to them were skipped (the one play of the whole demo in the suite; it is slow).
    status = subprocess.run([str(venv / "bin" / "notifier"), "status", "tiktok-music-shutdown", "--json"],
                            capture_output=True, text=True, cwd=empty, timeout=120,
                            env={**CLEAN_ENV, "NOTIFIER_DATABASE_URL": f"sqlite:///{folder / 'ledger.db'}"})
    totals = json.loads(status.stdout)
    sent = {ch: sum(c.get("sent", 0) for c in totals["counts"] if c["channel"] == ch) for ch in ("email", "push")}
    assert sent["email"] == len(list((folder / "outbox" / "email").rglob("*.eml"))) > 1000
    assert sent["push"] == len(list((folder / "outbox" / "push").rglob("*.json"))) > 1000
    assert all(c.get("pending", 0) == 0 and c.get("sending", 0) == 0 for c in totals["counts"])
    assert totals["skipped_because"].get("action_done", 0) > 0
    # It ends with results: the simulated audience opened, clicked and acted, and the funnel says who has not.
    figures = re.search(r"^results: ([\d,]+) emails delivered; ([\d,]+) messages opened by people \(and ([\d,]+) "
                        r"emails by machines\), ([\d,]+) clicked; ([\d,]+) people acted after a message$", out, re.M)
    assert figures is not None, out[-2000:]
    delivered, opened, machine, clicked, acted = (int(g.replace(",", "")) for g in figures.groups())
    assert delivered == sent["email"] and 0 < clicked < opened and machine > 0 and acted > 0
    assert re.search(r"^  Playlist transfer: [\d,]+ of [\d,]+ acted \(\d+%\), [\d,]+ have not$", out, re.M)

    # A new campaign never lands in site-packages: the shipped folders are read, not written.
    new = subprocess.run([str(venv / "bin" / "notifier"), "campaign", "new", "acme-stream"], capture_output=True,
                         text=True, cwd=empty, env=CLEAN_ENV, timeout=120)
    assert new.returncode == 2 and "shipped inside the installed package" in new.stderr, new.stderr
    assert "NOTIFIER_CAMPAIGNS_DIR, NOTIFIER_TEMPLATES_DIR and NOTIFIER_LOCALES_DIR" in new.stderr
    assert not list(venv.rglob("acme-stream*"))
    own = {"NOTIFIER_CAMPAIGNS_DIR": str(empty / "campaigns"), "NOTIFIER_TEMPLATES_DIR": str(empty / "templates"),
           "NOTIFIER_LOCALES_DIR": str(empty / "locales")}
    made = subprocess.run([str(venv / "bin" / "notifier"), "campaign", "new", "acme-stream"], capture_output=True,
                          text=True, cwd=empty, env={**CLEAN_ENV, **own}, timeout=120)
    assert made.returncode == 0, made.stderr
    assert (empty / "campaigns" / "acme-stream.yaml").is_file()
    print(f"wheel built, installed and its demo played in {time.monotonic() - started:.0f} s")
