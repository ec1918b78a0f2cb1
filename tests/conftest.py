"""Shared fixtures: a fixed clock, migrated, isolated databases on SQLite and PostgreSQL, and the fixture modules.

``db_url`` runs a test twice, once on an SQLite file and once on PostgreSQL in a fresh schema of its own
(so parallel runs never clash); ``session_factory`` gives sessions on it. PostgreSQL is expected on
127.0.0.1:5432 (database ``test``, trust auth); set ``ECERT_TEST_PG_URL`` to point elsewhere. A missing
server fails the tests: it is never skipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from ecert.store import db as store_db

# The fixture modules shared across directories (integration, interop, browser): registered here once, so a
# test module asks for ``knot_dns`` or ``sqlite_ctx`` by name and imports only the helpers it calls.
pytest_plugins = (
    "tests.integration.foundation_fixtures",
    "tests.integration.ca_fixtures",
    "tests.integration.dcv_fixtures",
    "tests.integration.hsm_fixtures",
    "tests.integration.acme_fixtures",
    "tests.integration.acme_ca_fixtures",
    "tests.ct_log.fixtures",
)

FIXED_NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

PG_CANDIDATE_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
PG_START_HINT = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture
def now() -> datetime:
    """The instant tests run at: 2026-11-25T12:00:00Z."""
    return FIXED_NOW


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A URL of the running PostgreSQL server that may create schemas (the first candidate that connects)."""
    candidates = [os.environ["ECERT_TEST_PG_URL"]] if os.environ.get("ECERT_TEST_PG_URL") else PG_CANDIDATE_URLS
    failures: list[str] = []
    for candidate in candidates:
        engine = store_db.make_engine(candidate, poolclass=NullPool, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return store_db.normalize_url(candidate).render_as_string(hide_password=False)
        except Exception as exc:  # noqa: BLE001 - report every candidate's reason below
            failures.append(f"{candidate}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
        finally:
            engine.dispose()
    pytest.fail("PostgreSQL is not reachable (" + "; ".join(failures) + "); " + PG_START_HINT)


def _schema_url(server_url: str, schema: str) -> str:
    """The server URL with every connection's search_path set to ``schema`` (alembic_version included)."""
    url: URL = store_db.normalize_url(server_url)
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@contextmanager
def _fresh_schema(server_url: str) -> Iterator[str]:
    """A new, uniquely named PostgreSQL schema (its URL), dropped on exit."""
    schema = f"ecert_test_{uuid.uuid4().hex[:12]}"
    admin = store_db.make_engine(server_url, poolclass=NullPool)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield _schema_url(server_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_empty_url(pg_server_url: str) -> Iterator[str]:
    """An empty PostgreSQL schema of this test's own, dropped afterwards (for migration tests)."""
    with _fresh_schema(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def _pg_migrated_schema(pg_server_url: str) -> Iterator[str]:
    # Migrating costs ~0.3 s; do it once per run (per xdist worker) and empty the tables per test.
    with _fresh_schema(pg_server_url) as url:
        store_db.upgrade(url)
        yield url


def _empty_pg_tables(url: str) -> None:
    """Delete every row and restart every id sequence (cheaper than TRUNCATE, which rewrites files).

    ``session_replication_role = replica`` pauses the append-only and foreign-key triggers for this
    transaction only, so tables can be emptied in any order.
    """
    engine = store_db.make_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))  # a leaked open transaction fails loudly
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            tables = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename <> 'alembic_version'"
                )
            ).scalars()
            for name in tables:
                conn.execute(text(f'DELETE FROM "{name}"'))
            conn.execute(
                text(
                    "SELECT setval(format('%I.%I', schemaname, sequencename), 1, false) "
                    "FROM pg_sequences WHERE schemaname = current_schema()"
                )
            )
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(_pg_migrated_schema: str) -> str:
    """A migrated (head) PostgreSQL database URL in this run's own schema, with every table empty."""
    _empty_pg_tables(_pg_migrated_schema)
    return _pg_migrated_schema


@pytest.fixture
def sqlite_empty_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ecert.db'}"


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "ecert.db"
    # NullPool closes the connection after the migration; the last close folds the WAL into the file.
    engine = store_db.make_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        store_db.upgrade(engine)
    finally:
        engine.dispose()
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated (head) SQLite database file of this test's own (a copy of one migrated template)."""
    target = tmp_path / "ecert.db"
    shutil.copyfile(_sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each engine in turn (for migration tests)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_empty_url"))
    return str(request.getfixturevalue("pg_empty_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated (head), empty database URL on each engine in turn; nothing leaks between tests."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = store_db.make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the migrated test database (``with session_factory() as s, s.begin(): ...``)."""
    return store_db.session_factory(engine)


@pytest.fixture
def make_ca(now: datetime):  # type: ignore[no-untyped-def]
    """Insert a CA row with placeholder certificate bytes: ``make_ca(session, "ov-2026")``."""
    from ecert.store import repo

    def _make(session: Session, label: str = "ov-2026", *, role: str = "ov", parent_id: int | None = None):  # type: ignore[no-untyped-def]
        return repo.add_ca(
            session,
            label=label,
            role=role,
            subject_dn=f"CN=Test {label},O=ecert test,C=HK",
            cert_der=b"0\x03\x02\x01\x00",
            key_ref=f"file:keys/{label}.key",
            not_before=now,
            not_after=now.replace(year=now.year + 10),
            spki_sha256=uuid.uuid5(uuid.NAMESPACE_DNS, label).hex * 2,
            now=now,
            parent_id=parent_id,
        )

    return _make


@pytest.fixture
def make_application(now: datetime):  # type: ignore[no-untyped-def]
    """Insert an application: ``make_application(session, "A12345678", state="csr_submitted")``."""
    from tests.rows import new_application

    def _make(  # type: ignore[no-untyped-def]
        session: Session,
        reference_number: str = "A00000001",
        *,
        state: str = "approved",
        server_name: str = "www.example.hk",
    ):
        return new_application(
            session, now=now, reference_number=reference_number, state=state, server_name=server_name
        )

    return _make
