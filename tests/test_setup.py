"""Setting up the ledger as a new operator does: a wrong URL, a missing driver, a server that is down, and
several processes starting on a brand-new ledger at once. Each mistake is one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from notifier.ledger.db import alembic_config, current_revision, make_engine
from tests.conftest import PG_URL, ROOT


def notifier(*args: str, url: str, python: tuple[str, ...] = ("-m", "notifier")) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIFIER_DATABASE_URL": url}
    return subprocess.run([sys.executable, *python, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(("url", "said"), [
    ("postgres://postgres@127.0.0.1/test",
     "error: NOTIFIER_DATABASE_URL: 'postgres://' is not a SQLAlchemy URL; write "
     "postgresql+psycopg://postgres@127.0.0.1/test"),
    ("mysql://root@127.0.0.1/test", "error: NOTIFIER_DATABASE_URL: the ledger runs on SQLite or PostgreSQL, "
                                    "not 'mysql'"),
    ("not a url", "error: NOTIFIER_DATABASE_URL: 'not a url' is not a database URL"),
    ("postgresql+psycopg2://postgres@127.0.0.1/test",
     "error: NOTIFIER_DATABASE_URL: postgresql+psycopg2 needs the psycopg2 module, which is not installed; "
     "notifier's own driver is postgresql+psycopg://"),
    ("postgresql+psycopg://postgres@127.0.0.1:1/test",
     "error: cannot reach the database postgresql+psycopg://postgres@127.0.0.1:1/test: connection failed:"),
    ("postgresql+psycopg://postgres@127.0.0.1:5432/notifier_no_such_db",
     "error: cannot reach the database postgresql+psycopg://postgres@127.0.0.1:5432/notifier_no_such_db:"),
])
def test_a_wrong_or_unreachable_database_url_is_one_line(url: str, said: str) -> None:
    assert one_line_error(notifier("db", "upgrade", url=url)).startswith(said)


def test_a_password_in_the_url_is_never_printed() -> None:
    line = one_line_error(notifier("db", "upgrade", url="postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test"))
    assert "s3cret" not in line and "postgres:***@127.0.0.1:1/test" in line


def test_any_command_on_an_unreachable_database_is_one_line() -> None:
    line = one_line_error(notifier("status", "tiktok-music-shutdown", url="postgresql+psycopg://postgres@127.0.0.1:1/t"))
    assert line.startswith("error: cannot reach the database")


def test_postgresql_without_the_postgres_extra_names_the_extra() -> None:
    without_psycopg = ("-c", "import sys; sys.modules['psycopg'] = None; sys.argv[0] = 'notifier'; "
                             "from notifier.cli import main; main()")
    line = one_line_error(notifier("db", "upgrade", url=PG_URL, python=without_psycopg))
    assert line == ("error: NOTIFIER_DATABASE_URL: postgresql+psycopg needs the psycopg driver, which is not "
                    "installed (pip install 'notifier[postgres]')")


def test_a_plain_postgresql_url_means_our_driver() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


# --- several processes on a brand-new ledger ----------------------------------------------------------------


@pytest.fixture
def new_postgres_schema() -> Iterator[str]:
    """The URL of an empty schema nobody migrated yet."""
    name = f"t_new_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def upgrade_at_once(url: str, processes: int = 5) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "NOTIFIER_DATABASE_URL": url}
    started = [subprocess.Popen([sys.executable, "-m", "notifier", "db", "upgrade"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) for _ in range(processes)]
    results = []
    for p in started:
        out, err = p.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_processes_upgrading_a_brand_new_ledger_at_once_all_succeed(kind: str, tmp_path: Path,
                                                                    request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}" if kind == "sqlite" else request.getfixturevalue("new_postgres_schema")

    results = upgrade_at_once(url)

    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * len(results)
    engine = make_engine(url)
    try:
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        assert current_revision(engine) == head
        assert "deliveries" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
