"""Alembic environment for ecert: online with a given connection or URL, offline (--sql) from a URL.

SQLite runs in batch mode (copy-and-move) so later revisions can alter tables it cannot ALTER. The
engine enforces foreign keys and PRAGMA foreign_keys cannot change inside the migration's transaction,
so a batch operation on a table that others reference must keep its rows (batch copies them) and names.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, pool

from ecert.store.db import make_engine, normalize_url
from ecert.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or use ecert.store.db.upgrade(url)")
    return url


def run_migrations_offline() -> None:
    url = normalize_url(_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = make_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            _run_with(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
