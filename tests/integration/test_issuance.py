"""The issuance pipeline: every profile lints clean and verifies; the durable record survives faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

from ecert.core import csr as csr_rules
from ecert.core.errors import Conflict, LintFailed, PolicyViolation
from ecert.core.keys import spki_sha256
from ecert.core.profiles import CertType, LeafPlan, SubjectData
from ecert.services import issuance
from ecert.services.context import Context
from ecert.store.models import CA, BlockedKey, Certificate, IssuanceRecord
from tests.integration.foundation_fixtures import application_in_state

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "csr"
OV = SubjectData("Example Limited")
EV = SubjectData(
    "Example Limited", business_category="Private Organization", jurisdiction_country="HK", serial_number="12345678"
)
PROFILES = [
    (CertType.SERVER, ("www.example.com",), OV),
    (CertType.WILDCARD, ("*.example.com", "example.com"), OV),
    (CertType.MULTI, ("www.example.com", "www1.example.com", "mail.example.com"), OV),
    (CertType.EV, ("www.example.com",), EV),
    (CertType.EV_MULTI, ("www.example.com", "shop.example.com"), EV),
]


def _issue(
    ctx: Context,
    cert_type: CertType,
    names: tuple[str, ...],
    subject: SubjectData,
    key: object | None = None,
    **kw: object,
) -> Certificate:
    public_key = key or ec.generate_private_key(ec.SECP256R1()).public_key()
    return issuance.issue(
        ctx, issuance.IssueRequest(cert_type=cert_type, names=names, subject=subject, public_key=public_key, **kw)
    )  # type: ignore[arg-type]


def _pem_of_ca(ctx: Context, role: str) -> bytes:
    with ctx.transaction() as s:
        row = s.scalar(select(CA).where(CA.role == role))
        return x509.load_der_x509_certificate(row.cert_der).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(("cert_type", "names", "subject"), PROFILES, ids=[p[0].value for p in PROFILES])
def test_every_profile_passes_pkilint_cli_and_openssl_verify_through_root_and_cross(
    sqlite_ctx: Context, tmp_path: Path, cert_type: CertType, names: tuple[str, ...], subject: SubjectData
) -> None:
    row = _issue(sqlite_ctx, cert_type, names, subject, key=rsa.generate_private_key(65537, 2048).public_key())
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(x509.load_der_x509_certificate(row.der).public_bytes(serialization.Encoding.PEM))
    lint = subprocess.run(
        [str(VENV_BIN / "lint_cabf_serverauth_cert"), "lint", "-t", cert_type.lint_type, "-s", "ERROR", str(leaf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    issuing = tmp_path / "issuing.pem"
    issuing.write_bytes(_pem_of_ca(sqlite_ctx, "ev" if cert_type.is_ev else "ov"))
    root = tmp_path / "root.pem"
    root.write_bytes(_pem_of_ca(sqlite_ctx, "root"))
    external = tmp_path / "external.pem"
    external.write_bytes(_pem_of_ca(sqlite_ctx, "external-root"))
    untrusted_cross = tmp_path / "untrusted.pem"
    untrusted_cross.write_bytes(issuing.read_bytes() + _pem_of_ca(sqlite_ctx, "cross"))
    host = names[0].replace("*", "anything")
    for anchor, untrusted in ((root, issuing), (external, untrusted_cross)):
        verify = subprocess.run(
            [
                "openssl",
                "verify",
                "-x509_strict",
                "-purpose",
                "sslserver",
                "-verify_hostname",
                host,
                "-CAfile",
                str(anchor),
                "-untrusted",
                str(untrusted),
                str(leaf),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert verify.returncode == 0 and "leaf.pem: OK" in verify.stdout, verify.stdout + verify.stderr


@pytest.mark.parametrize(("cert_type", "names", "subject"), PROFILES, ids=[p[0].value for p in PROFILES])
def test_issued_certificate_is_stored_with_its_record_on_each_database(
    any_db_ctx: Context, cert_type: CertType, names: tuple[str, ...], subject: SubjectData
) -> None:
    row = _issue(any_db_ctx, cert_type, names, subject)
    cert = x509.load_der_x509_certificate(row.der)
    assert row.status == "issued" and row.names == list(names)
    assert cert.serial_number.bit_length() >= 64 and cert.serial_number < 2**159
    with any_db_ctx.transaction() as s:
        record = s.scalar(select(IssuanceRecord).where(IssuanceRecord.serial_hex == row.serial_hex))
        assert record.state == "stored" and record.tbs_sha256 == row.tbs_sha256


def test_exchange_csr_is_accepted_and_its_ou_does_not_reach_the_certificate(sqlite_ctx: Context) -> None:
    info = csr_rules.check_csr((VECTORS / "exchange_new_certificate_request_crlf.pem").read_bytes())
    assert any("OU" in note for note in info.ignored)
    row = _issue(sqlite_ctx, CertType.MULTI, info.dns_names, OV, key=info.public_key)
    subject = x509.load_der_x509_certificate(row.der).subject
    assert not subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)


def test_serials_are_distinct_across_many_issuances(sqlite_ctx: Context) -> None:
    serials = {_issue(sqlite_ctx, CertType.SERVER, ("www.example.com",), OV).serial_hex for _ in range(20)}
    assert len(serials) == 20


def test_a_blocked_key_gets_no_certificate(sqlite_ctx: Context, now: object) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with sqlite_ctx.transaction() as s:
        s.add(
            BlockedKey(
                spki_sha256=spki_sha256(key), reason="keyCompromise", source="test", created_at=sqlite_ctx.clock()
            )
        )
    with pytest.raises(PolicyViolation, match="blocked"):
        _issue(sqlite_ctx, CertType.SERVER, ("www.example.com",), OV, key=key)


def test_fault_between_signing_and_storing_leaves_the_record_naming_the_serial(
    any_db_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_store(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full while storing the certificate")

    monkeypatch.setattr(issuance, "_store_signed", broken_store)
    with pytest.raises(RuntimeError, match="disk full"):
        _issue(any_db_ctx, CertType.SERVER, ("www.example.com",), OV)
    with any_db_ctx.transaction() as s:
        record = s.scalar(select(IssuanceRecord))
        reserved = s.scalar(select(Certificate))
    assert record.state == "failed" and len(record.serial_hex) >= 16
    assert "signed but not stored" in record.error and "disk full" in record.error
    assert reserved.serial_hex == record.serial_hex and reserved.status == "failed" and reserved.der is None


def test_a_crash_after_the_reservation_is_settled_by_the_jobs(any_db_ctx: Context) -> None:
    """Kill -9 between signing and storing: the rows stay "linted"/"signing"; the reconciler settles them."""
    from datetime import timedelta

    from ecert.services import jobs
    from ecert.store.models import Application

    app_id = application_in_state(any_db_ctx, "issuing", reference="123456780")
    now = any_db_ctx.clock()
    with any_db_ctx.transaction() as s:
        ca_id = s.scalar(select(CA.id).where(CA.role == "ov"))
        s.add(
            IssuanceRecord(
                ca_id=ca_id,
                serial_hex="abc123def4567890",
                application_id=app_id,
                profile="server",
                state="linted",
                tbs_sha256="00" * 32,
                lint_findings=[],
                created_at=now,
                updated_at=now,
            )
        )
        s.add(
            Certificate(
                ca_id=ca_id,
                serial_hex="abc123def4567890",
                der=None,
                tbs_sha256="00" * 32,
                not_before=now,
                not_after=now + timedelta(days=10),
                subject_cn="www.example.com",
                names=["www.example.com"],
                spki_sha256="11" * 32,
                profile="server",
                status="signing",
                application_id=app_id,
                created_at=now - timedelta(hours=1),
                updated_at=now,
            )
        )
        app_id = app_id
    jobs.run_once(any_db_ctx)
    with any_db_ctx.read() as s:
        assert s.scalar(select(Certificate.status).where(Certificate.serial_hex == "abc123def4567890")) == "failed"
        assert s.scalar(select(IssuanceRecord.state)) == "failed"
        assert s.get(Application, app_id).state == "validated"
    # The application can take a new CSR: the reservation no longer blocks it.
    _issue(any_db_ctx, CertType.SERVER, ("www.example.com",), OV, application_id=app_id)


def test_lint_error_refuses_issuance_and_records_the_findings(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_plan = issuance.plan_leaf

    def plan_without_san(*args: object, **kwargs: object) -> LeafPlan:
        plan = real_plan(*args, **kwargs)  # type: ignore[arg-type]
        exts = tuple(e for e in plan.extensions if not isinstance(e[0], x509.SubjectAlternativeName))
        return LeafPlan(
            subject=plan.subject,
            names=plan.names,
            extensions=exts,
            not_before=plan.not_before,
            not_after=plan.not_after,
            lint_type=plan.lint_type,
        )

    monkeypatch.setattr(issuance, "plan_leaf", plan_without_san)
    with pytest.raises(LintFailed, match="pre-issuance lint refused"):
        _issue(sqlite_ctx, CertType.SERVER, ("www.example.com",), OV)
    with sqlite_ctx.transaction() as s:
        record = s.scalar(select(IssuanceRecord))
        assert record.state == "failed"
        codes = {f["code"] for f in record.lint_findings}
        assert "cabf.serverauth.subscriber_common_name_unknown_source" in codes, codes
        assert s.scalar(select(Certificate)) is None


def test_a_second_live_certificate_for_one_application_is_a_conflict(sqlite_ctx: Context) -> None:

    app_id = application_in_state(sqlite_ctx, "validated", reference="123456789")
    _issue(sqlite_ctx, CertType.SERVER, ("www.example.com",), OV, application_id=app_id)
    with pytest.raises(Conflict):
        _issue(sqlite_ctx, CertType.SERVER, ("www.example.com",), OV, application_id=app_id)


def test_retired_issuing_ca_issues_nothing_new(sqlite_ctx: Context) -> None:
    from ecert.services.ca_config import load_hierarchy_config
    from ecert.services.ceremony import rollover

    rollover(sqlite_ctx, load_hierarchy_config(None), "ov")
    row = _issue(sqlite_ctx, CertType.SERVER, ("www.example.com",), OV)
    issuer = x509.load_der_x509_certificate(row.der).issuer
    assert "SSL CA 2" in issuer.rfc4514_string()
