"""The hash-chained audit log: appending, verifying, tamper detection and the database's refusals."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from ecert.core.errors import StorageFailure
from ecert.store import audit
from ecert.store import db as store_db
from ecert.store.models import AuditEvent


def _append_three(session_factory: Any, now: datetime) -> list[AuditEvent]:
    """Three events in one transaction; the rows as stored, in chain order."""
    with session_factory() as session, session.begin():
        audit.append(session, actor="ra:alice", event="application.approved", subject="A00000001", now=now)
        audit.append(
            session,
            actor="subscriber:A00000001",
            event="csr.submitted",
            subject="A00000001",
            details={"names": ["www.example.hk"], "key": "EC P-256"},
            now=now + timedelta(seconds=1),
        )
        audit.append(
            session,
            actor="system",
            event="certificate.issued",
            subject="A00000001",
            details={"serial": "1f", "ca": "ov-2026"},
            now=now + timedelta(seconds=2),
        )
    with session_factory() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _verify(session_factory: Any, **kwargs: Any) -> audit.AuditVerification:
    with session_factory() as session:
        return audit.verify_chain(session, **kwargs)


def _tamper(engine: Any, *statements: str) -> None:
    """Switch the append-only triggers off, as an attacker with DDL rights could, and run ``statements``."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER audit_log_refuse_update")
            conn.exec_driver_sql("DROP TRIGGER audit_log_refuse_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_canonical_encoding_is_stable() -> None:
    """External verifiers recompute hashes from this exact encoding; changing it breaks old logs."""
    from datetime import UTC

    at = datetime(2026, 11, 25, 20, 0, tzinfo=UTC) - timedelta(hours=8)
    expected = (
        '{"actor":"ra:alice","at":"2026-11-25T12:00:00.000000+00:00","details":{"a":[1,"香港"],"b":true},'
        '"event":"application.approved","prev_hash":"' + "0" * 64 + '","subject":null}'
    )
    digest = audit.compute_hash(
        audit.GENESIS_HASH, at, "ra:alice", "application.approved", None, {"b": True, "a": [1, "香港"]}
    )
    assert digest == hashlib.sha256(expected.encode("utf-8")).hexdigest()


def test_events_chain_from_the_genesis_hash(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    first, second, third = _append_three(session_factory, now)
    assert first.prev_hash == audit.GENESIS_HASH
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)


def test_an_untouched_chain_verifies(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    _append_three(session_factory, now)
    assert _verify(session_factory) == audit.AuditVerification(ok=True, rows_checked=3)


def test_an_empty_log_verifies(session_factory) -> None:  # type: ignore[no-untyped-def]
    assert _verify(session_factory) == audit.AuditVerification(ok=True, rows_checked=0)


def test_an_event_rolled_back_with_its_transaction_leaves_the_chain_valid(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    _append_three(session_factory, now)
    with session_factory() as session, pytest.raises(RuntimeError), session.begin():
        audit.append(session, actor="system", event="certificate.issued", now=now)
        raise RuntimeError("the state change failed")
    with session_factory() as session, session.begin():
        audit.append(session, actor="system", event="crl.published", now=now)
    assert _verify(session_factory).ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'mallory' WHERE id = 2",
        "DELETE FROM audit_log WHERE id = 2",
        "DELETE FROM audit_log",
    ],
)
def test_the_database_refuses_to_change_the_log(engine, session_factory, now, statement) -> None:  # type: ignore[no-untyped-def]
    _append_three(session_factory, now)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert _verify(session_factory).rows_checked == 3


@pytest.mark.postgres
def test_postgresql_refuses_to_truncate_the_log(pg_url, now) -> None:  # type: ignore[no-untyped-def]
    engine = store_db.make_engine(pg_url)
    try:
        _append_three(store_db.session_factory(engine), now)
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE audit_log")
    finally:
        engine.dispose()


TAMPERING = [
    # (what the attacker runs once the triggers are off, first row that fails, reason fragment)
    (["UPDATE audit_log SET actor = 'mallory' WHERE id = 2"], 2, "edited"),
    (["UPDATE audit_log SET subject = NULL WHERE id = 3"], 3, "edited"),
    (["UPDATE audit_log SET at = at + INTERVAL '1 day' WHERE id = 1"], 1, "edited"),
    (["DELETE FROM audit_log WHERE id = 2"], 3, "deleted or reordered"),
    (["DELETE FROM audit_log WHERE id = 1"], 2, "deleted or reordered"),
    (
        [
            "UPDATE audit_log SET id = 100 WHERE id = 2",
            "UPDATE audit_log SET id = 2 WHERE id = 3",
            "UPDATE audit_log SET id = 3 WHERE id = 100",
        ],
        2,
        "deleted or reordered",
    ),
]


@pytest.mark.parametrize(("statements", "first_bad", "reason"), TAMPERING)
def test_tampering_is_detected(engine, session_factory, now, statements, first_bad, reason) -> None:  # type: ignore[no-untyped-def]
    _append_three(session_factory, now)
    if engine.dialect.name == "sqlite":
        statements = [s.replace("at + INTERVAL '1 day'", "datetime(at, '+1 day')") for s in statements]
    _tamper(engine, *statements)
    result = _verify(session_factory)
    assert (result.ok, result.first_bad_id) == (False, first_bad)
    assert reason in (result.reason or "")
    with pytest.raises(StorageFailure):
        result.check()


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(engine, session_factory, now) -> None:  # type: ignore[no-untyped-def]
    first, second, _ = _append_three(session_factory, now)
    forged = audit.compute_hash(first.hash, second.at, "mallory", second.event, second.subject, second.details)
    _tamper(engine, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged}' WHERE id = 2")
    result = _verify(session_factory)
    assert (result.ok, result.first_bad_id) == (False, 3)


def test_rows_cut_from_the_end_are_found_with_a_known_head(engine, session_factory, now) -> None:  # type: ignore[no-untyped-def]
    head = _append_three(session_factory, now)[-1].hash
    _tamper(engine, "DELETE FROM audit_log WHERE id = 3")
    assert _verify(session_factory).ok  # a shorter chain is still a chain...
    result = _verify(session_factory, known_head=head)  # ...but not the one published earlier
    assert (result.ok, result.reason) == (False, "known head not found (rows removed from the end)")


def test_concurrent_appenders_never_fork_the_chain(db_url, session_factory, now) -> None:  # type: ignore[no-untyped-def]
    workers, per_worker = 8, 5
    engine = store_db.make_engine(db_url, pool_size=workers, max_overflow=0)
    sessions = store_db.session_factory(engine)
    barrier = threading.Barrier(workers, timeout=30)

    def work(worker: int) -> None:
        barrier.wait()
        for n in range(per_worker):
            with sessions() as session, session.begin():
                audit.append(session, actor=f"worker:{worker}", event="tick", details={"n": n}, now=now)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(work, w) for w in range(workers)]:
                future.result(timeout=60)
    finally:
        engine.dispose()
    assert _verify(session_factory) == audit.AuditVerification(ok=True, rows_checked=workers * per_worker)


SECRET_DETAILS = [
    {"pin": "123456"},
    {"PIN": "123456"},
    {"newPin": "123456"},
    {"pin_hash": "$argon2id$..."},
    {"password": "x"},
    {"key_passphrase": "x"},
    {"private_key": "-----BEGIN PRIVATE KEY-----"},
    {"privateKey": "x"},
    {"client_secret": "x"},
    {"session-token": "x"},
    {"csr": {"challengePassword": "x"}},
    {"attempts": [{"reference": "A00000001", "pin": "000000"}]},
]


@pytest.mark.parametrize("details", SECRET_DETAILS)
def test_secrets_never_reach_the_log(session_factory, now, details) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        with pytest.raises(ValueError, match="must not hold secrets"):
            audit.append(session, actor="system", event="x", details=details, now=now)
        assert session.query(AuditEvent).count() == 0


@pytest.mark.parametrize(
    "details",
    [{"spki_sha256": "ab" * 32}, {"pinned": True}, {"key_type": "EC P-256"}, {"reference": "A00000001"}],
)
def test_ordinary_details_are_accepted(session_factory, now, details) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        audit.append(session, actor="system", event="x", details=details, now=now)
    with session_factory() as session:
        assert session.scalars(select(AuditEvent.details)).one() == details


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"ratio": 0.5}, "floats"),
        ({"checks": [{"perspective": "a", "ratio": 0.5}]}, "floats"),
        ({"when": datetime(2026, 1, 1)}, "plain JSON"),
        ({"bytes": b"\x00"}, "plain JSON"),
    ],
)
def test_details_that_would_not_hash_reproducibly_are_refused(session_factory, now, details, message) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, pytest.raises(ValueError, match=message):
        audit.append(session, actor="system", event="x", details=details, now=now)


def test_a_naive_time_is_refused(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, pytest.raises(ValueError):
        audit.append(session, actor="system", event="x", now=datetime(2026, 11, 25, 12, 0))


@pytest.mark.postgres
def test_an_open_transaction_that_appended_does_not_hold_up_other_appenders(pg_url, now) -> None:  # type: ignore[no-untyped-def]
    """The chain's lock is taken at commit: a slow request that audited early no longer stalls every other
    audited request of the instance until it ends (it did, and ACME orders queued behind it)."""
    engine = store_db.make_engine(pg_url, pool_size=2, max_overflow=0)
    sessions = store_db.session_factory(engine)
    try:
        with sessions() as slow, slow.begin():
            audit.append(slow, actor="system", event="slow.started", now=now)
            with sessions() as quick, quick.begin():
                quick.execute(text("SET LOCAL lock_timeout = '2s'"))  # blocked on the chain: fails, not hangs
                audit.append(quick, actor="system", event="quick.done", now=now)
        with sessions() as session:
            events = list(session.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))
            verified = audit.verify_chain(session)
    finally:
        engine.dispose()
    assert events == ["quick.done", "slow.started"]  # chained in commit order
    assert verified.ok


@pytest.mark.postgres
def test_events_written_before_commit_do_not_take_the_chains_lock(pg_url, now) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL the chain's lock is taken inside COMMIT (migration 0013), not when a transaction writes
    its events: events a savepoint wrote at once leave every other appender free until that COMMIT."""
    engine = store_db.make_engine(pg_url, pool_size=2, max_overflow=0)
    sessions = store_db.session_factory(engine)
    try:
        with sessions() as slow, slow.begin():
            with slow.begin_nested():
                audit.append(slow, actor="system", event="slow.written", now=now)  # in a savepoint: written now
            with sessions() as quick, quick.begin():
                quick.execute(text("SET LOCAL lock_timeout = '2s'"))  # blocked on the chain: fails, not hangs
                audit.append(quick, actor="system", event="quick.done", now=now)
        with sessions() as session:
            events = list(session.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))
            waiting = session.scalar(text("SELECT count(*) FROM audit_inbox"))
            verified = audit.verify_chain(session)
    finally:
        engine.dispose()
    assert events == ["quick.done", "slow.written"]
    assert waiting == 0  # COMMIT moved every event into the chain
    assert verified.ok


@pytest.mark.postgres
def test_commit_takes_the_chains_lock(pg_url, now) -> None:  # type: ignore[no-untyped-def]
    """The chaining inside COMMIT takes the one lock every appender shares (AUDIT_LOCK_KEY): while another
    session holds it, a commit with events waits, and nothing of it is kept when it gives up."""
    engine = store_db.make_engine(pg_url, pool_size=2, max_overflow=0)
    sessions = store_db.session_factory(engine)
    try:
        with sessions() as holder, holder.begin():
            holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit.AUDIT_LOCK_KEY})
            with pytest.raises(DBAPIError, match="lock timeout"), sessions() as blocked, blocked.begin():
                blocked.execute(text("SET LOCAL lock_timeout = '500ms'"))
                audit.append(blocked, actor="system", event="blocked", now=now)
        with sessions() as session:
            events = list(session.scalars(select(AuditEvent.event)))
            waiting = session.scalar(text("SELECT count(*) FROM audit_inbox"))
    finally:
        engine.dispose()
    assert (events, waiting) == ([], 0)


@pytest.mark.postgres
def test_the_database_hashes_exactly_as_the_canonical_encoding_says(pg_url, now) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL finishes each hash inside COMMIT: it must be the digest an external verifier computes from
    the canonical encoding, non-ASCII text, nested details and a null subject included."""
    engine = store_db.make_engine(pg_url)
    sessions = store_db.session_factory(engine)
    details = {"b": True, "a": [1, "香港"], "nested": {"z": None, "y": "e-Cert (伺服器)"}}
    try:
        with sessions() as session, session.begin():
            audit.append(session, actor="ra:alice", event="application.approved", details=details, now=now)
            audit.append(session, actor="system", event="x", subject="A00000001", now=now)
        with sessions() as session:
            rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    finally:
        engine.dispose()
    first, second = rows
    assert first.hash == audit.compute_hash(audit.GENESIS_HASH, now, "ra:alice", "application.approved", None, details)
    assert second.hash == audit.compute_hash(first.hash, now, "system", "x", "A00000001", {})
    assert second.prev_hash == first.hash


def test_an_event_in_a_rolled_back_savepoint_is_not_kept(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        audit.append(session, actor="system", event="kept", now=now)
        with pytest.raises(RuntimeError), session.begin_nested():
            audit.append(session, actor="system", event="undone", now=now)
            raise RuntimeError("the savepoint's change failed")
    with session_factory() as session:
        assert list(session.scalars(select(AuditEvent.event))) == ["kept"]
    assert _verify(session_factory).ok


def test_a_reader_in_the_same_transaction_sees_its_events(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        audit.append(session, actor="system", event="x", now=now)
        assert audit.verify_chain(session) == audit.AuditVerification(ok=True, rows_checked=1)
