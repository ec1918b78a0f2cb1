"""Engines, sessions and programmatic Alembic migrations for SQLite and PostgreSQL.

Nothing here runs at import time: the app factory or the CLI calls :func:`make_engine` with the URL
from :class:`ecert.settings.Settings` and hands the engine down (style habit 10).
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:  # Alembic is imported only when a migration runs: most commands start at head
    from alembic.config import Config

__all__ = [
    "MIGRATIONS_DIR",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_READ_ONLY_OPTION",
    "alembic_config",
    "autocommit_session_factory",
    "current_revision",
    "downgrade",
    "make_engine",
    "normalize_url",
    "offline_sql",
    "read_only_session_factory",
    "session_factory",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Writers queue behind SQLite's single write lock; 30 s outlasts any transaction ecert runs.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Connections kept open per engine: a web worker's thread pool runs up to this many requests at once, and
# an overflow connection is closed on return, so a smaller pool reconnected (and re-ran the PRAGMAs) per request.
POOL_SIZE = 20

# PostgreSQL: how long opening a connection may take, and how long sent data may stay unacknowledged before
# the kernel drops the connection (libpq's connect_timeout and tcp_user_timeout). Without them a server that
# stops answering (a host gone, a firewall dropping packets) held each request for the OS's TCP timeout,
# minutes, instead of failing it with a clear "database unavailable" (issue 10's outage journey).
PG_CONNECT_TIMEOUT_SECONDS = 10
PG_TCP_USER_TIMEOUT_MS = 30_000

# A pooled connection idle longer than this is pinged before use (``_ping_when_idle``).
IDLE_PING_SECONDS = 2.0
_IDLE_SINCE = "ecert_idle_since"

# Execution option a caller may set on a connection that only reads, so SQLite starts a DEFERRED
# transaction instead of taking the write lock up front: ``conn.execution_options(sqlite_read_only=True)``.
SQLITE_READ_ONLY_OPTION = "sqlite_read_only"


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` as a SQLAlchemy URL, pointing bare PostgreSQL URLs at psycopg 3.

    ``postgresql://`` (and Heroku-style ``postgres://``) would otherwise select psycopg2, which is not
    installed; the stack uses psycopg 3 (``postgresql+psycopg://``).
    """
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Build an engine for ``url`` with the settings ecert relies on.

    SQLite gets write-ahead logging (readers do not block the writer), enforced foreign keys, a busy
    timeout, and ``BEGIN IMMEDIATE`` for every transaction: a compare-and-set that starts with a plain
    deferred ``BEGIN`` upgrades its lock at the first write and fails with "database is locked" instead
    of waiting (stack.md, "One certificate per application under races"). SQLAlchemy emits the BEGIN
    itself because pysqlite's own transaction handling cannot be told to (SQLAlchemy docs,
    "Serializable isolation / Savepoints / Transactional DDL").
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed, **kwargs)
    if "poolclass" not in kwargs:  # NullPool and StaticPool take no size
        kwargs.setdefault("pool_size", POOL_SIZE)
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = _pg_timeouts(parsed, kwargs.get("connect_args", {}))
    engine = create_engine(parsed, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


def _pg_timeouts(url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
    """libpq's timeouts, unless the URL or the caller sets them: an operator's own choice wins."""
    chosen = dict(connect_args)
    for name, default in (
        ("connect_timeout", PG_CONNECT_TIMEOUT_SECONDS),
        ("tcp_user_timeout", PG_TCP_USER_TIMEOUT_MS),
    ):
        if name not in url.query:
            chosen.setdefault(name, default)
    return chosen


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only if it sat idle for more than ``IDLE_PING_SECONDS``.

    ``pool_pre_ping`` pinged on every checkout: one extra round trip per transaction, three per issuance
    (py-spy: 10 % of the pipeline on PostgreSQL). A connection handed back a moment ago is as alive as the
    server; one that waited longer may have been cut (restart, outage, idle timeout) and is pinged, and a
    dead one is replaced before use (the pool retries on ``DisconnectionError``). A connection that dies
    while busy still fails its request, as before, and SQLAlchemy then invalidates the rest of the pool.
    """

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since <= IDLE_PING_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:  # any driver error: the pool drops this connection and opens another
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _private_file(database: str) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use 0644 under the usual umask).

    SQLite gives the -wal and -shm files the database file's own mode, so they are private too. The file
    holds PIN hashes, DCV evidence and the audit log: only the CA's account may read it.
    """
    if database.startswith("file:"):
        return  # a URI filename: the caller chose the file and its mode
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except (FileExistsError, FileNotFoundError, PermissionError):
        pass  # there already, or a directory SQLite will refuse too: its own error says it at connect time


def _make_sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory and url.database is not None:
        _private_file(url.database)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    busy_timeout_ms = int(connect_args["timeout"] * 1000)
    connect_args.setdefault("check_same_thread", False)
    if in_memory:
        # One shared connection, or every checkout would see a new empty database.
        kwargs.setdefault("poolclass", StaticPool)
    elif "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", POOL_SIZE)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop pysqlite from emitting its own BEGIN; _on_begin below emits ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(SQLITE_READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for the services layer; objects stay readable after commit (no lazy reload surprises)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def read_only_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for pages and reports that only read: on SQLite they start a DEFERRED transaction, so
    they neither wait for nor block the single writer (WAL readers see the last committed state).
    """
    return sessionmaker(bind=engine.execution_options(**{SQLITE_READ_ONLY_OPTION: True}), expire_on_commit=False)


def autocommit_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose statements each commit on their own (PostgreSQL): for short reads on hot paths, which
    then skip the BEGIN and ROLLBACK round trips. Not for server-side cursors (``yield_per``), which need a
    transaction."""
    return sessionmaker(bind=engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config for the packaged migrations, built without reading any ini file from the cwd."""
    from alembic.config import Config

    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        # ConfigParser treats % as interpolation; escape it so encoded URLs survive.
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


@contextmanager
def _connected(url_or_engine: str | URL | Engine) -> Iterator[Connection]:
    if isinstance(url_or_engine, Engine):
        with url_or_engine.begin() as conn:
            yield conn
        return
    engine = make_engine(url_or_engine)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest migration's id, read from the files' ``revision``/``down_revision`` lines (no Alembic import).

    None when the files do not form one line of revisions; the caller then lets Alembic decide.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = re.search(r'^revision\s*=\s*"([^"]+)"', text, re.M)
        if found is None:
            return None
        revisions.add(found.group(1))
        parents.update(re.findall(r'^down_revision\s*=\s*"([^"]+)"', text, re.M))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the database already stands at the newest migration: one read, no lock, no Alembic."""
    head = head_revision()
    if head is None:
        return False
    with engine.execution_options(**{SQLITE_READ_ONLY_OPTION: True}).connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        return bool(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head)


def upgrade(url_or_engine: str | URL | Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` in one transaction (DDL is transactional on both engines).

    Already at head, it returns after one read: every CLI command calls this, and loading Alembic and
    its scripts took most of a short command's start-up.
    """
    if revision == "head" and isinstance(url_or_engine, Engine) and _at_head(url_or_engine):
        return
    from alembic import command

    with _connected(url_or_engine) as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(url_or_engine: str | URL | Engine, revision: str = "base") -> None:
    """Take the schema down to ``revision``; ``base`` drops every ecert table."""
    from alembic import command

    with _connected(url_or_engine) as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def current_revision(url_or_engine: str | URL | Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with _connected(url_or_engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def offline_sql(url: str | URL, revision: str = "head", *, down: bool = False) -> str:
    """The SQL script Alembic would run (``alembic upgrade head --sql``), for change control review.

    Nothing connects to the database; only the URL's dialect matters.
    """
    from alembic import command

    buffer = io.StringIO()
    cfg = alembic_config(url)
    cfg.output_buffer = buffer
    if down:
        command.downgrade(cfg, revision, sql=True)
    else:
        command.upgrade(cfg, revision, sql=True)
    return buffer.getvalue()
