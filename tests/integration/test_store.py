"""Repositories on SQLite and PostgreSQL: uniqueness, races, atomic counters and literal search."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ecert.core.errors import Conflict, NotFound
from ecert.core.lifecycle import CertAction, CertStatus
from ecert.store import applications as store_apps
from ecert.store import cas, repo
from ecert.store import certificates as certs
from ecert.store import db as store_db
from ecert.store import registration as ra_store
from ecert.store.models import Application, Certificate

T = TypeVar("T")


def _cert(
    session: Any, ca_id: int, serial_hex: str, now: datetime, *, status: str = "signing", **kwargs: Any
) -> Certificate:
    """A certificate row as the pipeline makes it: reserved (``signing``), then moved through core/lifecycle."""
    fields: dict[str, Any] = {
        "profile": "ov",
        "application_id": None,
        "tbs_sha256": "cd" * 32,
        "lint_findings": [],
        "evidence": None,
        "channel": "test",
        "not_before": now,
        "not_after": now + timedelta(days=199),
        "subject_cn": "www.example.hk",
        "names": ("www.example.hk",),
        "spki_sha256": "ab" * 32,
    }
    fields.update(kwargs)
    record_id = certs.reserve_issuance(session, certs.Reservation(ca_id=ca_id, serial_hex=serial_hex, **fields), now)
    if status != "signing":
        certs.store_signed_der(
            session,
            ca_id=ca_id,
            serial_hex=serial_hex,
            record_id=record_id,
            der=b"0",
            accepted=status == "accepted",
            now=now,
        )
    if status == "rejected":
        certs.move_certificate(
            session, ca_id=ca_id, serial_hex=serial_hex, action=CertAction.REJECT, current=CertStatus.ISSUED, now=now
        )
    found = certs.certificate_by_serial(session, serial_hex)
    assert found is not None
    return found


def _race(db_url: str, workers: int, task: Callable[[Any], T]) -> list[T]:
    """Run ``task(session)`` in ``workers`` threads released together, each committing its own transaction."""
    engine = store_db.make_engine(db_url, pool_size=workers, max_overflow=0)
    sessions = store_db.session_factory(engine)
    barrier = threading.Barrier(workers, timeout=30)

    def run() -> T:
        with sessions() as session:
            barrier.wait()
            with session.begin():
                return task(session)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run) for _ in range(workers)]
            return [f.result(timeout=60) for f in futures]
    finally:
        engine.dispose()


# --- serial numbers and the one-live-certificate rule --------------------------------------------


def test_a_serial_is_unique_per_issuer(session_factory, make_ca, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        ca_id = make_ca(session).id
        _cert(session, ca_id, "1f", now)
    with session_factory() as session:
        with pytest.raises(IntegrityError), session.begin():
            _cert(session, ca_id, "1f", now)
    with session_factory() as session:
        # The pipeline tells a serial clash (draw again) from a second live certificate by this lookup.
        assert certs.serial_recorded(session, ca_id, "1f")


def test_the_same_serial_under_another_issuer_is_allowed(session_factory, make_ca, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        first, second = make_ca(session, "ov-2026"), make_ca(session, "ev-2026", role="ev")
        _cert(session, first.id, "1f", now)
        _cert(session, second.id, "1f", now)
    with session_factory() as session:
        assert len(session.execute(select(Certificate)).scalars().all()) == 2


def test_a_second_live_certificate_for_an_application_is_refused(  # type: ignore[no-untyped-def]
    session_factory, make_ca, make_application, now
) -> None:
    with session_factory() as session, session.begin():
        ca, app = make_ca(session), make_application(session)
        ca_id, app_id = ca.id, app.id
        _cert(session, ca_id, "1", now, application_id=app_id, status="issued")
    with session_factory() as session:
        with pytest.raises(IntegrityError), session.begin():
            _cert(session, ca_id, "2", now, application_id=app_id)
    with session_factory() as session:
        assert not certs.serial_recorded(session, ca_id, "2")  # not a clash: the pipeline gives up (409)


def test_a_new_certificate_is_allowed_once_the_first_is_rejected(  # type: ignore[no-untyped-def]
    session_factory, make_ca, make_application, now
) -> None:
    with session_factory() as session, session.begin():
        ca, app = make_ca(session), make_application(session)
        _cert(session, ca.id, "1", now, application_id=app.id, status="rejected")
        _cert(session, ca.id, "2", now, application_id=app.id, status="issued")
    with session_factory() as session:
        statuses = session.execute(select(Certificate.serial_hex, Certificate.status).order_by(Certificate.id))
        assert statuses.all() == [("1", "rejected"), ("2", "issued")]


def test_a_move_the_lifecycle_has_not_is_refused_and_changes_nothing(  # type: ignore[no-untyped-def]
    session_factory, make_ca, now
) -> None:
    with session_factory() as session, session.begin():
        ca_id = make_ca(session).id
        _cert(session, ca_id, "1", now, status="accepted")
    with session_factory() as session, session.begin():
        with pytest.raises(Conflict):  # accepted -> accept again: not in core/lifecycle.py
            certs.move_certificate(
                session, ca_id=ca_id, serial_hex="1", action=CertAction.ACCEPT, current=CertStatus.ACCEPTED, now=now
            )
        with pytest.raises(Conflict):  # the row is not where the caller thinks: compare-and-set misses
            certs.move_certificate(
                session, ca_id=ca_id, serial_hex="1", action=CertAction.ACCEPT, current=CertStatus.ISSUED, now=now
            )
    with session_factory() as session:
        assert session.scalar(select(Certificate.status)) == "accepted"


@pytest.mark.parametrize("bad", ["01f", "1F", "0x1f", "1f:00", ""])
def test_non_canonical_serials_are_refused_on_reservation(session_factory, make_ca, now, bad) -> None:  # type: ignore[no-untyped-def]
    """A second spelling of one serial would slip past UNIQUE(ca_id, serial_hex)."""
    with session_factory() as session:
        ca = make_ca(session)
        with pytest.raises(ValueError, match="serial_hex"):
            _cert(session, ca.id, bad, now)


@pytest.mark.parametrize(
    ("pasted", "stored"),
    [("01:AB:cd", "1abcd"), ("0x00ff", "ff"), (" 7f 00 ", "7f00"), ("000", "0"), ("ABCDEF", "abcdef")],
)
def test_pasted_serials_are_normalized(pasted: str, stored: str) -> None:
    assert repo.normalize_serial_hex(pasted) == stored


@pytest.mark.parametrize("bad", ["", "xyz", "12-34", "0x"])
def test_serials_that_are_not_hex_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        repo.normalize_serial_hex(bad)


def test_a_certificate_is_found_by_its_canonical_serial(session_factory, make_ca, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        ca = make_ca(session)
        _cert(session, ca.id, "1abcd", now)
    with session_factory() as session:
        assert certs.certificate_by_serial(session, repo.normalize_serial_hex("01:AB:CD")) is not None
        assert certs.certificate_by_serial(session, "1abce") is None


# --- the durable issuance record -----------------------------------------------------------------


def test_a_failed_issuance_keeps_its_record_and_frees_the_reservation(  # type: ignore[no-untyped-def]
    session_factory, make_ca, make_application, now
) -> None:
    with session_factory() as session, session.begin():
        ca, app = make_ca(session), make_application(session)
        ca_id, app_id = ca.id, app.id
        record_id = certs.reserve_issuance(
            session,
            certs.Reservation(
                ca_id=ca_id,
                serial_hex="1",
                profile="ov",
                application_id=app_id,
                tbs_sha256="cd" * 32,
                lint_findings=[],
                evidence={"domains": {}},
                channel="portal",
                not_before=now,
                not_after=now,
                subject_cn=None,
                names=("www.example.hk",),
                spki_sha256="ab" * 32,
            ),
            now,
        )
    with session_factory() as session, session.begin():
        certs.fail_reservation(session, record_id, "signed but not stored: OperationalError", now)
    with session_factory() as session:
        record = certs.record_for(session, ca_id, "1")
        assert record is not None and record.state == "failed"
        assert record.error == "signed but not stored: OperationalError"
        assert record.evidence == {"domains": {}} and record.channel == "portal"
        assert session.scalar(select(Certificate.status)) == "failed"
    with session_factory() as session, session.begin():  # the application may take a certificate again
        _cert(session, ca_id, "2", now, application_id=app_id)


def test_a_refused_lint_is_recorded_with_its_findings(session_factory, make_ca, now) -> None:  # type: ignore[no-untyped-def]
    findings: list[dict[str, object]] = [{"validator": "x", "severity": "ERROR", "message": "y"}]
    with session_factory() as session, session.begin():
        ca_id = make_ca(session).id
        certs.record_refused_lint(
            session,
            ca_id=ca_id,
            serial_hex="2",
            application_id=None,
            profile="ov",
            error="lint refused",
            findings=findings,
            evidence=None,
            channel="operator-cli",
            now=now,
        )
    with session_factory() as session:
        record = certs.record_for(session, ca_id, "2")
        assert record is not None and (record.state, record.lint_findings) == ("failed", findings)
        assert session.scalar(select(Certificate.id)) is None  # nothing was reserved, nothing signed


# --- applications: compare-and-set ---------------------------------------------------------------


def test_sixteen_concurrent_compare_and_sets_have_exactly_one_winner(  # type: ignore[no-untyped-def]
    db_url, session_factory, make_application, now
) -> None:
    with session_factory() as session, session.begin():
        app_id = make_application(session, state="validated").id

    results = _race(
        db_url,
        16,
        lambda s: store_apps.compare_and_set_application_state(s, app_id, "validated", "issuing", now=now),
    )

    assert sorted(results) == [False] * 15 + [True]
    with session_factory() as session:
        app = session.get(Application, app_id)
        assert app is not None and (app.state, app.version) == ("issuing", 2)


def test_compare_and_set_from_the_wrong_state_changes_nothing(  # type: ignore[no-untyped-def]
    session_factory, make_application, now
) -> None:
    with session_factory() as session, session.begin():
        app = make_application(session, state="approved")
        assert store_apps.compare_and_set_application_state(session, app.id, "validated", "issuing", now=now) is False
        assert (app.state, app.version) == ("approved", 1)


def test_compare_and_set_refreshes_a_loaded_application(session_factory, make_application, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        app = make_application(session, state="validated")
        assert store_apps.compare_and_set_application_state(session, app.id, "validated", "issuing", now=now)
        assert (app.state, app.version) == ("issuing", 2)


def test_crl_numbers_increase_atomically_under_eight_threads(db_url, session_factory, make_ca) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        ca_id = make_ca(session).id

    def take_three(session: Any) -> list[int]:
        return [repo.next_crl_number(session, ca_id) for _ in range(3)]

    taken = [n for batch in _race(db_url, 8, take_three) for n in batch]

    assert sorted(taken) == list(range(1, 25))
    with session_factory() as session:
        assert cas.ca_by_id(session, ca_id).crl_number == 24  # type: ignore[union-attr]


def test_crl_number_of_an_unknown_ca_is_not_found(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, pytest.raises(NotFound):
        repo.next_crl_number(session, 12345)


# --- search --------------------------------------------------------------------------------------

SEARCH_CASES = [
    # (query, by, serials found)
    ("example.hk", "server_name", ["1", "2", "3"]),
    ("WWW.EXAMPLE.HK", "server_name", ["1"]),
    ("100%", "server_name", ["2"]),
    ("%", "server_name", ["2"]),
    ("_", "server_name", ["3"]),
    ("a_b", "server_name", ["3"]),
    ("\\", "server_name", []),
    ("' OR 1=1--", "server_name", []),
    ("' OR '1'='1", "server_name", []),
    ("1; DROP TABLE certificates;--", "serial", []),
    ("00:02", "serial", ["2"]),
    ("B00000003", "reference", ["3"]),
    ("' OR 1=1--", "reference", []),
]


@pytest.mark.parametrize(("query", "by", "found"), SEARCH_CASES)
def test_search_matches_literally(session_factory, make_ca, make_application, now, query, by, found) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        ca = make_ca(session)
        for serial, cn in (("1", "www.example.hk"), ("2", "100%.example.hk"), ("3", "a_b.example.hk")):
            app = make_application(session, f"B0000000{serial}", server_name=cn)
            _cert(
                session,
                ca.id,
                serial,
                now + timedelta(minutes=int(serial)),
                application_id=app.id,
                subject_cn=cn,
            )
        # A name that "_" or "%" would match as wildcards but not literally.
        _cert(session, ca.id, "4", now, subject_cn="axb.example.org")
    with session_factory() as session:
        results = repo.find_certificates(session, query, by)  # type: ignore[arg-type]
        assert sorted(c.serial_hex for c in results) == found
        assert len(session.execute(select(Certificate)).scalars().all()) == 4


def test_search_lists_newest_first(session_factory, make_ca, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        ca = make_ca(session)
        _cert(session, ca.id, "1", now, subject_cn="old.example.hk")
        _cert(session, ca.id, "2", now + timedelta(days=1), subject_cn="new.example.hk")
    with session_factory() as session:
        assert [c.serial_hex for c in repo.find_certificates(session, "example.hk", "server_name")] == [
            "2",
            "1",
        ]


# --- blocked keys, CAs, login attempts -----------------------------------------------------------


def test_blocked_keys_are_found_whatever_the_case(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    digest = "AB" * 32
    with session_factory() as session, session.begin():
        repo.add_blocked_key(session, spki_sha256=digest, reason="Debian weak key", source="badkeys", now=now)
        repo.add_blocked_key(session, spki_sha256=digest, reason="again", source="manual", now=now)
    with session_factory() as session:
        assert ra_store.is_key_blocked(session, digest.lower())
        assert not ra_store.is_key_blocked(session, "cd" * 32)


def test_cas_are_listed_and_found_by_label(session_factory, make_ca) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        root = make_ca(session, "root-2026", role="root")
        make_ca(session, "ov-2026", role="ov", parent_id=root.id)
    with session_factory() as session:
        assert [c.label for c in repo.list_cas(session)] == ["root-2026", "ov-2026"]
        assert [c.label for c in repo.list_cas(session, role="ov")] == ["ov-2026"]
        ov = repo.get_ca_by_label(session, "ov-2026")
        assert ov is not None and ov.parent_id == root.id and ov.crl_number == 0
        assert repo.get_ca_by_label(session, "missing") is None


def test_failed_logins_are_counted_per_reference_and_per_address(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    attempts = [
        ("A00000001", "192.0.2.1", False, now - timedelta(minutes=5)),
        ("A00000001", "192.0.2.2", False, now - timedelta(minutes=1)),
        ("A00000001", "192.0.2.1", True, now),
        ("A00000002", "192.0.2.1", False, now),
        ("A00000001", "192.0.2.1", False, now - timedelta(hours=2)),  # before the window
    ]
    with session_factory() as session, session.begin():
        for ref, addr, ok, at in attempts:
            store_apps.record_login_attempt(session, reference_number=ref, client_addr=addr, success=ok, now=at)
    since = now - timedelta(minutes=30)
    with session_factory() as session:
        assert store_apps.failure_times(session, since=since, reference_number="A00000001") == [
            now - timedelta(minutes=5),
            now - timedelta(minutes=1),
        ]
        assert len(store_apps.failure_times(session, since=since, client_addr="192.0.2.1")) == 2
        assert store_apps.failure_times(
            session, since=since, reference_number="A00000001", client_addr="192.0.2.1"
        ) == [now - timedelta(minutes=5)]
        assert store_apps.last_reset(session, "A00000001") == now
        assert store_apps.last_reset(session, "A00000002") is None


def test_an_operator_reset_restarts_the_count_but_is_no_failure(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        store_apps.record_login_attempt(
            session,
            reference_number="A00000001",
            client_addr="192.0.2.1",
            success=False,
            now=now - timedelta(minutes=2),
        )
        store_apps.record_login_reset(session, reference_number="A00000001", actor="operator:alice", now=now)
    with session_factory() as session:
        assert store_apps.last_reset(session, "A00000001") == now
        assert len(store_apps.failure_times(session, since=now - timedelta(hours=1), reference_number="A00000001")) == 1


def test_reissue_ends_only_the_open_sessions_of_that_application(  # type: ignore[no-untyped-def]
    session_factory, make_application, now
) -> None:
    with session_factory() as session, session.begin():
        mine, other = make_application(session, "A00000001"), make_application(session, "A00000002")
        for sid, app, expires in [
            ("a" * 64, mine, now + timedelta(minutes=5)),
            ("b" * 64, mine, now - timedelta(minutes=1)),
            ("c" * 64, other, now + timedelta(minutes=5)),
        ]:
            store_apps.add_portal_session(session, session_id=sid, application_id=app.id, now=now, expires_at=expires)
        assert store_apps.end_sessions_of_application(session, mine.id, now=now) == 1
    with session_factory() as session:
        assert store_apps.find_portal_session(session, "a" * 64).ended_at == now  # type: ignore[union-attr]
        assert store_apps.find_portal_session(session, "c" * 64).ended_at is None  # type: ignore[union-attr]
