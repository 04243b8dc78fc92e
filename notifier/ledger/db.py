"""Engines, sessions and schema upgrades for the ledger (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from notifier.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The dispatcher's logger: what it says about holding outcomes belongs with its other lines.
log = logging.getLogger("notifier.dispatch")


HOLDOUT_BUCKETS = 10_000  # a recipient's bucket in a campaign: 0..9999, from an MD5 of the two ids


def holdout_bucket(key: str) -> int:
    """The bucket of ``campaign id:recipient id``: the first 32 bits of its MD5, modulo :data:`HOLDOUT_BUCKETS`. SQLite
    calls this very function (``notifier_bucket``); PostgreSQL computes the same with its own ``md5``
    (``eligibility.held_out_sql``)."""
    return int(hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()[:8], 16) % HOLDOUT_BUCKETS


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, foreign_keys: bool = True) -> None:
    dbapi_conn.create_function("notifier_bucket", 1, holdout_bucket, deterministic=True)
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# Database kinds the ledger runs on, with the driver and the extra that installs it.
DRIVERS = {"sqlite": ("sqlite", None, None), "postgresql": ("postgresql+psycopg", "psycopg", "postgres")}
_EXAMPLE = "sqlite:///notifier.db or postgresql+psycopg://user@host:5432/db"


def _ledger_url(url: str) -> URL:
    """The URL as SQLAlchemy takes it; a plain postgresql:// means our driver (psycopg 3), not psycopg2."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"NOTIFIER_DATABASE_URL: {url!r} is not a database URL (such as {_EXAMPLE})") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        fixed = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=True)
        raise ConfigError(f"NOTIFIER_DATABASE_URL: 'postgres://' is not a SQLAlchemy URL; write {fixed}")
    if backend not in DRIVERS:
        raise ConfigError(f"NOTIFIER_DATABASE_URL: the ledger runs on SQLite or PostgreSQL, not {backend!r} "
                          f"(such as {_EXAMPLE})")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=DRIVERS[backend][0])
    return parsed


def make_engine(url: str, **kw: Any) -> Engine:
    """An engine for ``url`` with the settings the ledger relies on; a wrong URL or a missing driver is one line."""
    parsed = _ledger_url(url)
    backend = parsed.get_backend_name()
    kw.setdefault("hide_parameters", True)  # a failed statement's message and log never quote a recipient's data
    try:
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, **kw)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(parsed, pool_pre_ping=True, **kw)
    except NoSuchModuleError:
        raise ConfigError(f"NOTIFIER_DATABASE_URL: unknown driver {parsed.drivername!r} "
                          f"(use {DRIVERS[backend][0]}://)") from None
    except ImportError as exc:
        ours, module, extra = DRIVERS[backend]
        if parsed.drivername != ours:
            raise ConfigError(f"NOTIFIER_DATABASE_URL: {parsed.drivername} needs the {exc.name} module, which is "
                              f"not installed; notifier's own driver is {ours}://") from None
        hint = f"pip install 'notifier[{extra}]'" if extra else "it is missing from this Python"
        raise ConfigError(f"NOTIFIER_DATABASE_URL: {ours} needs the {module} driver, which is not installed "
                          f"({hint})") from None


def database_error(exc: BaseException, url: URL | None = None) -> str | None:
    """One line for a database failure that is the server's or the network's, not a bug; else None."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return None
    first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
    where = url.render_as_string(hide_password=True) if url is not None else "the ledger database"
    return f"{where}: {first}"


# SQLite's OperationalErrors that pass: a busy or locked file, a disk that failed a write. Its others ("no such
# table", a syntax error) are bugs or a wrong file, and waiting would not mend them.
_SQLITE_PASSING = ("locked", "busy", "disk i/o", "unable to open", "disk is full", "readonly")


def ledger_unreachable(exc: BaseException) -> bool:
    """The ledger cannot be reached or answered with a passing failure (a restart, a network blip, a lock):
    trying the same work again later may succeed. A bug in a statement is not one."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        return any(word in str(exc.orig).lower() for word in _SQLITE_PASSING)
    return True  # PostgreSQL: connection refused or lost, admin shutdown, deadlock, serialization failure


LEDGER_RETRY_FIRST = 0.5  # seconds before trying the ledger again, doubling up to LEDGER_RETRY_MAX
LEDGER_RETRY_MAX = 30.0
T = TypeVar("T")


def durably(what: str, work: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """``work()``, tried again while the ledger is unreachable (:func:`ledger_unreachable`), 0.5 s doubling up to
    30 s, for as long as it takes; a bug in a statement is raised at once. For work that must not be dropped: the
    outcomes a provider already gave, a batch already claimed."""
    delay, waited = LEDGER_RETRY_FIRST, 0.0
    while True:
        try:
            result = work()
        except Exception as exc:
            if not ledger_unreachable(exc):
                raise
            log.warning("the ledger is unreachable while %s (%s); held in memory, trying again in %.1f s",
                        what, database_error(exc), delay)
            sleep(delay)
            waited += delay
            delay = min(delay * 2, LEDGER_RETRY_MAX)
            continue
        if waited:
            log.warning("the ledger is back: %s done after %.0f s", what, waited)
        return result


def _connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except (OperationalError, InterfaceError) as exc:
        raise ConfigError(f"cannot reach the database {database_error(exc, engine.url)}") from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine, connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` with Alembic, one process at a time.

    Several processes may start on a brand-new ledger at once (every command and worker upgrades first): on
    PostgreSQL they queue on an advisory lock for the schema, on SQLite on an exclusive transaction that
    holds the whole migration, so the first one migrates and the others find the schema at head.
    """
    from alembic import command

    with _migration_connection(engine) as conn:
        command.upgrade(alembic_config(engine, conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision``, with the same lock and SQLite settings as ``upgrade``."""
    from alembic import command

    with _migration_connection(engine) as conn:
        command.downgrade(alembic_config(engine, conn), revision)


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with _connect(engine) as conn:
            key = conn.scalar(text("select hashtext(current_schema() || '/notifier-ledger-migrations')"))
            conn.execute(text("select pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("select pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
        return
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        # Foreign keys off while the schema changes, as SQLite's own recipe for altering a table says: a batch
        # migration copies a table and drops the old one, and with them on, that DROP deleted every row that
        # referenced it through ON DELETE CASCADE (0010 rebuilt deliveries and took every delivery event with
        # it). The migration checks them itself before it commits (migrations/env.py).
        exclusive = create_engine(engine.url, poolclass=NullPool)
        event.listen(exclusive, "connect", lambda conn, record: _sqlite_pragmas(conn, record, foreign_keys=False))
        event.listen(exclusive, "connect", _driver_leaves_transactions_to_us)
        event.listen(exclusive, "begin", lambda conn: conn.exec_driver_sql("BEGIN EXCLUSIVE"))
        try:
            with _connect(exclusive) as conn:
                yield conn
        finally:
            exclusive.dispose()
        return
    with _connect(engine) as conn:
        yield conn


def _driver_leaves_transactions_to_us(dbapi_conn: Any, _record: Any) -> None:
    """pysqlite would commit before each DDL statement; this lets one transaction hold the whole migration."""
    dbapi_conn.isolation_level = None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
