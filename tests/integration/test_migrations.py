"""The Alembic migrations build, match the models, and tear down, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from ecert.store import db as store_db
from ecert.store.models import Base, Certificate

EXPECTED_TABLES = {
    "acme_accounts",
    "acme_eab_credentials",
    "acme_authorizations",  # 0011 ACME orders
    "acme_challenges",  # 0011
    "acme_order_authorizations",  # 0011
    "acme_orders",  # 0011
    "acme_limit_counts",  # 0012 ACME rate limits
    "acme_nonces",
    "acme_replacements",  # 0012 RFC 9773 replaces
    "applications",
    "audit_log",
    "audit_inbox",  # 0013 PostgreSQL chains audit events inside COMMIT
    "blocked_keys",
    "caa_checks",
    "cas",
    "contact_preferences",
    "expiry_notices",
    "incident_certificates",
    "incidents",
    "certificates",
    "crls",
    "dcv_challenges",
    "domain_validations",
    "issuance_records",
    "login_attempts",
    "ocsp_responses",
    "organisation_vettings",  # 0005 the registration authority
    "portal_sessions",
    "responder_certs",
    "revocation_challenges",
    "precertificates",  # 0008 certificate transparency
    "scts",
    "ct_log_results",
}


def _head() -> str:
    """The newest revision in the packaged migrations (exactly one head: no branches)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(store_db.alembic_config()).get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


def _tables(url: str) -> set[str]:
    engine = store_db.make_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_and_records_head(empty_db_url: str) -> None:
    store_db.upgrade(empty_db_url)
    assert _tables(empty_db_url) == EXPECTED_TABLES
    assert store_db.current_revision(empty_db_url) == _head()


def test_downgrade_to_base_removes_every_table(empty_db_url: str) -> None:
    store_db.upgrade(empty_db_url)
    store_db.downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) == set()
    assert store_db.current_revision(empty_db_url) is None


def test_upgrade_after_downgrade_succeeds_again(empty_db_url: str) -> None:
    store_db.upgrade(empty_db_url)
    store_db.downgrade(empty_db_url)
    store_db.upgrade(empty_db_url)
    assert _tables(empty_db_url) == EXPECTED_TABLES


def test_models_match_migrations(db_url: str) -> None:
    """A model changed without a migration (or the reverse) shows up here as a diff."""
    engine = store_db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_postgresql_schema_isolation_keeps_alembic_version_inside(pg_url: str) -> None:
    engine = store_db.make_engine(pg_url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            found = conn.execute(
                text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'")
            ).scalars()
            assert schema in set(found)
    finally:
        engine.dispose()


def test_offline_sql_for_postgresql_creates_tables_and_triggers_without_a_server() -> None:
    script = store_db.offline_sql("postgresql://nobody@192.0.2.1:1/none")
    assert "CREATE TABLE audit_log" in script
    assert "CREATE TRIGGER audit_log_refuse_update_delete" in script
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in script


def test_alembic_command_line_prints_offline_sql() -> None:
    """Change control runs the stock ``alembic upgrade head --sql`` against the packaged ini."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(store_db.MIGRATIONS_DIR / "alembic.ini"),
            "-x",
            "url=postgresql://nobody@192.0.2.1:1/none",
            "upgrade",
            "head",
            "--sql",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE certificates" in result.stdout


def test_postgresql_url_without_driver_uses_psycopg() -> None:
    assert store_db.normalize_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert store_db.normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"


def test_sqlite_engine_uses_wal_foreign_keys_and_busy_timeout(sqlite_empty_url: str) -> None:
    engine = store_db.make_engine(sqlite_empty_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == store_db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(session_factory, now: datetime) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        session.add(
            Certificate(
                ca_id=999,
                serial_hex="1",
                not_before=now,
                not_after=now,
                names=[],
                spki_sha256="00",
                profile="ov",
                status="signing",
                created_at=now,
                updated_at=now,
            )
        )
        with pytest.raises(IntegrityError):
            session.flush()


def test_timestamps_come_back_aware_utc(session_factory, make_ca) -> None:  # type: ignore[no-untyped-def]
    hong_kong = timezone(timedelta(hours=8))
    local = datetime(2026, 11, 25, 20, 0, tzinfo=hong_kong)
    with session_factory() as session, session.begin():
        ca = make_ca(session)
        ca.effective_from = local
    with session_factory() as session:
        from ecert.store.models import CA

        stored = session.execute(select(CA.effective_from)).scalar_one()
    assert stored == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert stored.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(session_factory, make_ca) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        ca = make_ca(session)
        ca.effective_from = datetime(2026, 11, 25, 12, 0)
        with pytest.raises(StatementError, match="naive datetime refused"):
            session.flush()


def test_sqlite_readers_do_not_wait_for_a_writer(sqlite_url: str) -> None:
    """Every ordinary transaction takes the write lock up front (BEGIN IMMEDIATE); read-only ones do not."""
    engine = store_db.make_engine(sqlite_url, connect_args={"timeout": 0.2})
    try:
        with engine.begin() as writer:
            writer.exec_driver_sql("INSERT INTO blocked_keys VALUES ('aa', 'r', 's', '2026-11-25 12:00:00')")
            with store_db.read_only_session_factory(engine)() as reader:
                assert reader.execute(text("SELECT count(*) FROM blocked_keys")).scalar_one() == 0
            with pytest.raises(OperationalError, match="locked"), engine.begin() as second_writer:
                second_writer.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()
