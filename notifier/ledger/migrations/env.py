"""Alembic environment: runs migrations on the engine notifier hands over (see ledger/db.py)."""

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from notifier.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # notifier's own upgrade(): a connection that holds the migration lock
        _migrate(connection)
        return
    engine = config.attributes.get("engine")
    if engine is None:
        engine = engine_from_config(config.get_section(config.config_ini_section) or {},
                                    prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            _check_foreign_keys(connection)


def _check_foreign_keys(connection: Connection) -> None:
    """SQLite migrates with foreign keys off (ledger/db.py): a row a migration left pointing nowhere stops it
    here, and the whole migration is rolled back."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({f"{row[0]} → {row[2]}" for row in broken})
        raise RuntimeError(f"the migration left {len(broken)} rows whose foreign key points nowhere: "
                           + ", ".join(tables))


run()
