"""CRLs, the ARL, responder certificates, pre-signed OCSP and the job pass, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import func, select

from ecert.core.errors import Conflict, PolicyViolation
from ecert.services import jobs, publication, revocation
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy, rollover
from ecert.services.context import Context
from ecert.store import db as store_db
from ecert.store.models import CA, Crl, OcspResponse, ResponderCert

from .foundation_fixtures import make_ctx
from .test_revocation import issue_leaf


def _label(ctx: Context, role: str = "ov") -> str:
    with ctx.transaction() as s:
        return s.scalar(select(CA.label).where(CA.role == role, CA.status == "active"))


def _ca_cert(ctx: Context, label: str) -> x509.Certificate:
    with ctx.transaction() as s:
        return x509.load_der_x509_certificate(s.scalar(select(CA.cert_der).where(CA.label == label)))


def test_crl_is_signed_numbered_and_valid_seven_days(any_db_ctx: Context) -> None:
    label = _label(any_db_ctx)
    first = publication.publish_crl(any_db_ctx, label)
    second = publication.publish_crl(any_db_ctx, label)
    crl = x509.load_der_x509_crl(second.der)
    assert crl.is_signature_valid(_ca_cert(any_db_ctx, label).public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == first.number + 1
    assert crl.next_update_utc - crl.last_update_utc == publication.CRL_VALIDITY  # BR 4.9.7: <= 10 days
    assert crl.last_update_utc <= any_db_ctx.clock()
    assert publication.latest_crl(any_db_ctx, label).id == second.id


def test_crl_is_due_when_half_old_or_missing_a_revocation(sqlite_ctx: Context) -> None:
    label = _label(sqlite_ctx)
    assert publication.crl_due(sqlite_ctx, label)
    publication.publish_crl(sqlite_ctx, label)
    assert not publication.crl_due(sqlite_ctx, label)
    start = sqlite_ctx.clock()
    assert publication.crl_due(sqlite_ctx, label, now=start + publication.CRL_REFRESH_AFTER)


def test_rollover_then_ca_revocation_lists_the_old_sub_ca_in_the_arl(any_db_ctx: Context) -> None:
    old = _label(any_db_ctx)
    rollover(any_db_ctx, load_hierarchy_config(None), "ov")
    result = revocation.revoke_ca(any_db_ctx, old, "superseded")
    assert not result.scheduled
    root = _label(any_db_ctx, "root")
    arl = x509.load_der_x509_crl(publication.latest_crl(any_db_ctx, root, arl=True).der)
    entry = arl.get_revoked_certificate_by_serial_number(_ca_cert(any_db_ctx, old).serial_number)
    assert entry is not None
    idp = arl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert idp.only_contains_ca_certs
    assert arl.is_signature_valid(_ca_cert(any_db_ctx, root).public_key())


def test_scheduled_ca_revocation_waits_for_its_date_then_the_job_applies_it(sqlite_ctx: Context) -> None:
    old = _label(sqlite_ctx)
    rollover(sqlite_ctx, load_hierarchy_config(None), "ov")
    start = sqlite_ctx.clock()
    when = start + timedelta(days=30)
    result = revocation.revoke_ca(sqlite_ctx, old, "cessationOfOperation", when)
    assert result.scheduled
    report = jobs.run_once(sqlite_ctx)
    assert report.ca_revocations == () and report.ok
    with sqlite_ctx.transaction() as s:
        assert s.scalar(select(CA.status).where(CA.label == old)) == "retired"

    sqlite_ctx.clock = lambda: when + timedelta(minutes=1)
    report = jobs.run_once(sqlite_ctx)
    assert report.ca_revocations == (old,) and report.ok
    root = _label(sqlite_ctx, "root")
    arl = x509.load_der_x509_crl(publication.latest_crl(sqlite_ctx, root, arl=True).der)
    assert arl.get_revoked_certificate_by_serial_number(_ca_cert(sqlite_ctx, old).serial_number) is not None


@pytest.mark.parametrize(
    ("case", "error"),
    [("active", Conflict), ("root", PolicyViolation), ("certificateHold", PolicyViolation), ("twice", Conflict)],
)
def test_refused_ca_revocations(sqlite_ctx: Context, case: str, error: type[Exception]) -> None:
    label = _label(sqlite_ctx)
    reason = "superseded"
    if case == "root":
        label = _label(sqlite_ctx, "root")
    elif case == "certificateHold":
        rollover(sqlite_ctx, load_hierarchy_config(None), "ov")
        reason = "certificateHold"
    elif case == "twice":
        rollover(sqlite_ctx, load_hierarchy_config(None), "ov")
        revocation.revoke_ca(sqlite_ctx, label, reason)
    with pytest.raises(error):
        revocation.revoke_ca(sqlite_ctx, label, reason)


def test_responder_certificate_is_delegated_short_lived_and_nocheck(sqlite_ctx: Context) -> None:
    label = _label(sqlite_ctx)
    cert = publication.ensure_responder(sqlite_ctx, label)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=publication.RESPONDER_DAYS)
    assert cert.issuer == _ca_cert(sqlite_ctx, label).subject
    assert publication.ensure_responder(sqlite_ctx, label) == cert  # not renewed while young


def test_responder_is_renewed_before_half_its_life(sqlite_ctx: Context) -> None:
    label = _label(sqlite_ctx)
    first = publication.ensure_responder(sqlite_ctx, label)
    start = sqlite_ctx.clock()
    sqlite_ctx.clock = lambda: start + timedelta(days=publication.RESPONDER_DAYS) / 2 + timedelta(minutes=1)
    second = publication.ensure_responder(sqlite_ctx, label)
    assert second != first
    assert second.not_valid_after_utc > first.not_valid_after_utc


def test_presigned_ocsp_validity_is_within_br_limits(any_db_ctx: Context) -> None:
    row, _ = issue_leaf(any_db_ctx)
    label = _label(any_db_ctx)
    assert publication.refresh_ocsp(any_db_ctx, label) == 1
    with any_db_ctx.transaction() as s:
        stored = s.scalar(select(OcspResponse).where(OcspResponse.serial_hex == row.serial_hex))
    answer = ocsp.load_der_ocsp_response(stored.der)
    span = answer.next_update_utc - answer.this_update_utc
    assert timedelta(hours=8) <= span <= timedelta(days=10)  # BR 4.9.10
    assert answer.this_update_utc <= any_db_ctx.clock()  # RFC 6960 2.4: not in the future
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert stored.etag and stored.status == "good"


def test_ocsp_is_refreshed_only_after_half_its_validity(sqlite_ctx: Context) -> None:
    issue_leaf(sqlite_ctx)
    label = _label(sqlite_ctx)
    assert publication.refresh_ocsp(sqlite_ctx, label) == 1
    assert publication.refresh_ocsp(sqlite_ctx, label) == 0
    start = sqlite_ctx.clock()
    sqlite_ctx.clock = lambda: start + publication.OCSP_VALIDITY / 2 - timedelta(hours=2)
    assert publication.refresh_ocsp(sqlite_ctx, label) == 0
    sqlite_ctx.clock = lambda: start + publication.OCSP_VALIDITY / 2 - timedelta(minutes=30)
    assert publication.refresh_ocsp(sqlite_ctx, label) == 1  # refreshed before half has passed
    assert publication.refresh_ocsp(sqlite_ctx, label, force=True) == 1


def test_unknown_serial_is_answered_unknown_and_not_stored(sqlite_ctx: Context) -> None:
    label = _label(sqlite_ctx)
    signed = publication.sign_ocsp_now(sqlite_ctx, label, 0x1234567890ABCDEF)
    assert signed.status == "unknown"
    assert ocsp.load_der_ocsp_response(signed.der).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    with sqlite_ctx.transaction() as s:
        assert s.scalar(select(func.count()).select_from(OcspResponse)) == 0


def test_job_pass_publishes_everything_once_then_nothing(sqlite_ctx: Context) -> None:
    issue_leaf(sqlite_ctx)
    first = jobs.run_once(sqlite_ctx)
    assert first.ok, first.errors
    assert set(first.crls) == set(publication.issuing_cas(sqlite_ctx)) and first.arl
    assert sum(first.ocsp_signed.values()) == 1
    second = jobs.run_once(sqlite_ctx)
    assert second.crls == () and not second.arl and second.ocsp_signed == {}


@pytest.fixture
def pg_ctx(tmp_path: Path, pg_url: str) -> Iterator[Context]:
    ctx = make_ctx(tmp_path, pg_url)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.mark.postgres
def test_four_workers_on_one_postgresql_publish_once_without_errors(pg_ctx: Context, pg_url: str) -> None:
    issue_leaf(pg_ctx)
    # Four workers: own engines (connection pools) on one database, the same key store.
    engines = [store_db.make_engine(pg_url) for _ in range(4)]
    workers = [
        Context(
            settings=pg_ctx.settings,
            engine=e,
            sessions=store_db.session_factory(e),
            readers=store_db.read_only_session_factory(e),
            keys_factory=pg_ctx.keys_factory,
        )
        for e in engines
    ]
    reports: list[jobs.JobReport] = []
    barrier = threading.Barrier(4)

    def work(ctx: Context) -> None:
        barrier.wait(10)
        reports.append(jobs.run_once(ctx))

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert len(reports) == 4
        assert all(r.ok for r in reports), [r.errors for r in reports]
        with pg_ctx.transaction() as s:
            numbers = list(s.execute(select(Crl.ca_id, Crl.number)))
            responders = s.scalar(select(func.count()).select_from(ResponderCert))
        assert len(numbers) == len(set(numbers))
        cas = len(publication.issuing_cas(pg_ctx)) + 1  # and the ARL
        assert len(numbers) == cas  # one winner per issuer, the others saw a fresh CRL and skipped
        assert responders == len(publication.issuing_cas(pg_ctx))
        assert sum(sum(r.ocsp_signed.values()) for r in reports) == 1
    finally:
        for w in workers:
            w.close()
