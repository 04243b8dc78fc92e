"""Fixtures for the real services: the ledger on SQLite and on PostgreSQL, in one suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from notifier.ledger.db import make_engine, session_factory, upgrade

PG_URL = os.environ.get("NOTIFIER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN_FILE = ROOT / "campaigns" / "tiktok-music-shutdown.yaml"


def _postgres_engine() -> Iterator[Engine]:
    """A fresh schema in the test database, dropped afterwards, so runs never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The migrated ledger, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
    else:
        gen = _postgres_engine()
        eng = next(gen)
        upgrade(eng)
        yield eng
        gen.close()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)
