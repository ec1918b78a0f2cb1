"""Revocation as the operator, the subscriber and a key holder see it, on SQLite and PostgreSQL.

Every revocation must show in the CA's CRL and OCSP answer as soon as the call returns.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from sqlalchemy import select

from ecert.core.errors import BadCSR, Conflict, Forbidden, NotFound, PolicyViolation
from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance, publication, revocation
from ecert.services.context import Context
from ecert.store.models import AuditEvent, BlockedKey, Certificate, OcspResponse
from tests.integration.foundation_fixtures import application_in_state

SUBJECT = SubjectData("Example Limited")


def issue_leaf(
    ctx: Context, key: ec.EllipticCurvePrivateKey | None = None, name: str = "www.example.com"
) -> tuple[Certificate, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    row = issuance.issue(
        ctx,
        issuance.IssueRequest(cert_type=CertType.SERVER, names=(name,), subject=SUBJECT, public_key=key.public_key()),
    )
    return row, key


def crl_entry(ctx: Context, label: str, serial_hex: str) -> x509.RevokedCertificate | None:
    crl = x509.load_der_x509_crl(publication.latest_crl(ctx, label).der)
    return crl.get_revoked_certificate_by_serial_number(int(serial_hex, 16))


def stored_ocsp(ctx: Context, serial_hex: str) -> ocsp.OCSPResponse:
    with ctx.transaction() as s:
        der = s.scalar(select(OcspResponse.der).where(OcspResponse.serial_hex == serial_hex))
    assert der is not None, "no stored OCSP response"
    return ocsp.load_der_ocsp_response(der)


def ca_label(ctx: Context, row: Certificate) -> str:
    from ecert.store.models import CA

    with ctx.transaction() as s:
        return s.get(CA, row.ca_id).label


def test_operator_revocation_shows_in_crl_and_ocsp_at_once(any_db_ctx: Context) -> None:
    row, _ = issue_leaf(any_db_ctx)
    label = ca_label(any_db_ctx, row)
    publication.publish_crl(any_db_ctx, label)
    publication.refresh_ocsp(any_db_ctx, label)
    assert stored_ocsp(any_db_ctx, row.serial_hex).certificate_status is ocsp.OCSPCertStatus.GOOD

    result = revocation.revoke_certificate(
        any_db_ctx, ca_label=None, serial_hex=row.serial_hex, reason="superseded", actor="operator:test"
    )

    assert result.revoked == ((label, row.serial_hex),) and result.published
    entry = crl_entry(any_db_ctx, label, row.serial_hex)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.superseded
    answer = stored_ocsp(any_db_ctx, row.serial_hex)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.superseded


def test_revocation_without_reason_has_no_reason_code(sqlite_ctx: Context) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    revocation.revoke_certificate(sqlite_ctx, ca_label=None, serial_hex=row.serial_hex, reason=None, actor="t")
    entry = crl_entry(sqlite_ctx, ca_label(sqlite_ctx, row), row.serial_hex)
    assert entry is not None
    with pytest.raises(x509.ExtensionNotFound):  # BR 7.2.2: "unspecified" is the absent extension
        entry.extensions.get_extension_for_class(x509.CRLReason)


def test_revocation_is_audited(sqlite_ctx: Context) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    revocation.revoke_certificate(
        sqlite_ctx, ca_label=None, serial_hex=row.serial_hex, reason="cessationOfOperation", actor="operator:alice"
    )
    with sqlite_ctx.transaction() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.event == "cert.revoked"))
    assert event.subject == row.serial_hex and event.actor == "operator:alice"
    assert event.details["reason"] == "cessationOfOperation"


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("unspecified", PolicyViolation),
        ("certificateHold", PolicyViolation),
        ("removeFromCRL", PolicyViolation),
        ("cACompromise", PolicyViolation),  # a CA reason, not for subscriber certificates
        ("because", PolicyViolation),
    ],
)
def test_refused_reasons(sqlite_ctx: Context, reason: str, error: type[Exception]) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    with pytest.raises(error) as caught:
        revocation.revoke_certificate(sqlite_ctx, ca_label=None, serial_hex=row.serial_hex, reason=reason, actor="t")
    assert caught.value.rule == "BR 7.2.2"


@pytest.mark.parametrize(("serial", "error"), [("abcdef0123", NotFound), ("not-hex", NotFound)])
def test_unknown_serials_are_refused(sqlite_ctx: Context, serial: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        revocation.revoke_certificate(sqlite_ctx, ca_label=None, serial_hex=serial, reason=None, actor="t")


def test_revoking_twice_conflicts_unless_upgrading_to_key_compromise(sqlite_ctx: Context) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    first = revocation.revoke_certificate(
        sqlite_ctx, ca_label=None, serial_hex=row.serial_hex, reason="superseded", actor="t"
    )
    with pytest.raises(Conflict):
        revocation.revoke_certificate(
            sqlite_ctx, ca_label=None, serial_hex=row.serial_hex, reason="superseded", actor="t"
        )
    revocation.revoke_certificate(
        sqlite_ctx, ca_label=None, serial_hex=row.serial_hex, reason="keyCompromise", actor="t"
    )
    entry = crl_entry(sqlite_ctx, ca_label(sqlite_ctx, row), row.serial_hex)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert entry.revocation_date_utc == first.revoked_at.replace(microsecond=0)  # the date stays


def test_key_compromise_blocks_the_key_and_revokes_every_certificate_with_it(any_db_ctx: Context) -> None:
    first, key = issue_leaf(any_db_ctx, name="www.example.com")
    second, _ = issue_leaf(any_db_ctx, key=key, name="shop.example.com")
    other, _ = issue_leaf(any_db_ctx, name="other.example.com")

    result = revocation.revoke_certificate(
        any_db_ctx, ca_label=None, serial_hex=first.serial_hex, reason="keyCompromise", actor="t"
    )

    assert {s for _c, s in result.revoked} == {first.serial_hex, second.serial_hex}
    with any_db_ctx.transaction() as s:
        assert s.get(BlockedKey, first.spki_sha256) is not None
        assert s.get(Certificate, other.id).revoked_at is None
    assert stored_ocsp(any_db_ctx, second.serial_hex).certificate_status is ocsp.OCSPCertStatus.REVOKED
    with pytest.raises(PolicyViolation, match="blocked"):
        issue_leaf(any_db_ctx, key=key, name="new.example.com")


def test_subscriber_revokes_the_certificate_of_its_application(sqlite_ctx: Context) -> None:

    app_id = application_in_state(sqlite_ctx, "accepted", reference="A00000001")
    key = ec.generate_private_key(ec.SECP256R1())
    row = issuance.issue(
        sqlite_ctx,
        issuance.IssueRequest(
            cert_type=CertType.SERVER,
            names=("www.example.com",),
            subject=SUBJECT,
            public_key=key.public_key(),
            application_id=app_id,
        ),
    )
    with sqlite_ctx.transaction() as s:  # the subscriber accepted it (seed C.6), as the portal flow does
        s.get(Certificate, row.id).status = "accepted"
    result = revocation.revoke_for_application(sqlite_ctx, app_id, "cessationOfOperation", actor="subscriber:x")
    assert result.revoked == ((ca_label(sqlite_ctx, row), row.serial_hex),)
    with pytest.raises(NotFound):
        revocation.revoke_for_application(sqlite_ctx, app_id, None, actor="subscriber:x")


def _openssl_proof(tmp_path: Path, key: ec.EllipticCurvePrivateKey, cn: str) -> bytes:
    key_file = tmp_path / "leaf.key"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    out = subprocess.run(
        ["openssl", "req", "-new", "-key", str(key_file), "-subj", f"/CN={cn}"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return out.stdout


def test_revoke_by_key_proof_made_with_openssl_req(any_db_ctx: Context, tmp_path: Path) -> None:
    row, key = issue_leaf(any_db_ctx)
    nonce = revocation.revocation_challenge(any_db_ctx, row.serial_hex)

    result = revocation.revoke_by_key_proof(any_db_ctx, row.serial_hex, _openssl_proof(tmp_path, key, nonce))

    assert result.reason == "keyCompromise" and result.blocked_spki == row.spki_sha256
    assert stored_ocsp(any_db_ctx, row.serial_hex).revocation_reason is x509.ReasonFlags.key_compromise
    with pytest.raises(PolicyViolation, match="blocked"):  # the intake refuses the key from now on
        issue_leaf(any_db_ctx, key=key, name="again.example.com")


def test_a_blocked_key_csr_is_refused_at_intake(sqlite_ctx: Context, tmp_path: Path) -> None:
    from ecert.core import csr as csr_rules

    row, key = issue_leaf(sqlite_ctx)
    nonce = revocation.revocation_challenge(sqlite_ctx, row.serial_hex)
    revocation.revoke_by_key_proof(sqlite_ctx, row.serial_hex, _openssl_proof(tmp_path, key, nonce))
    new_csr = _openssl_proof(tmp_path, key, "www.example.com")
    with sqlite_ctx.transaction() as s, pytest.raises(Exception, match="(?i)block|compromis"):
        csr_rules.check_csr(new_csr, blocked_spki=issuance.BlockedKeys(s))


def _proof_cases() -> list[tuple[str, type[Exception]]]:
    return [
        ("other-key", Forbidden),
        ("wrong-nonce", Forbidden),
        ("used-nonce", Forbidden),
        ("expired-nonce", Forbidden),
        ("garbage", BadCSR),
    ]


@pytest.mark.parametrize(("case", "error"), _proof_cases())
def test_refused_proofs(sqlite_ctx: Context, tmp_path: Path, case: str, error: type[Exception]) -> None:
    row, key = issue_leaf(sqlite_ctx)
    nonce = revocation.revocation_challenge(sqlite_ctx, row.serial_hex)
    signer, cn = key, nonce
    if case == "other-key":
        signer = ec.generate_private_key(ec.SECP256R1())
    elif case == "wrong-nonce":
        cn = "not-the-nonce"
    elif case == "used-nonce":
        second, _ = issue_leaf(sqlite_ctx, name="second.example.com")
        # A nonce for another certificate does not open this one.
        cn = revocation.revocation_challenge(sqlite_ctx, second.serial_hex)
    elif case == "expired-nonce":
        real = sqlite_ctx.clock
        later = real() + revocation.CHALLENGE_LIFETIME + timedelta(minutes=1)
        sqlite_ctx.clock = lambda: later
    proof = (
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        if case == "garbage"
        else _openssl_proof(tmp_path, signer, cn)
    )
    with pytest.raises(error):
        revocation.revoke_by_key_proof(sqlite_ctx, row.serial_hex, proof)
    with sqlite_ctx.transaction() as s:
        assert s.get(Certificate, row.id).revoked_at is None


def test_nonce_in_challenge_password_attribute_also_works(sqlite_ctx: Context) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import AttributeOID, NameOID

    row, key = issue_leaf(sqlite_ctx)
    nonce = revocation.revocation_challenge(sqlite_ctx, row.serial_hex)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")]))
        .add_attribute(AttributeOID.CHALLENGE_PASSWORD, nonce.encode())
        .sign(key, hashes.SHA256())
    )
    result = revocation.revoke_by_key_proof(sqlite_ctx, row.serial_hex, csr.public_bytes(serialization.Encoding.DER))
    assert result.reason == "keyCompromise"


def test_revoking_in_the_future_is_refused_for_a_leaf(sqlite_ctx: Context) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    with pytest.raises(PolicyViolation):
        revocation.revoke_certificate(
            sqlite_ctx,
            ca_label=None,
            serial_hex=row.serial_hex,
            reason=None,
            actor="t",
            at=sqlite_ctx.clock() + timedelta(days=1),
        )


def test_subscriber_revocation_of_a_certificate_awaiting_acceptance_points_to_reject(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Seed C.6: before acceptance the way out is Reject (which revokes at once); revoking would strand it."""
    import uuid as _uuid

    from ecert.core.errors import Conflict
    from ecert.services import applications as apps
    from ecert.services import certificates
    from ecert.services.revocation import revoke_for_application
    from tests.integration.ca_fixtures import build_demo_ctx
    from tests.integration.test_applications import application_input, make_csr

    class _Permit:  # the bench/portal stand-in: this test is about states, not DNS
        def check(self, method, domain, code, **_):  # type: ignore[no-untyped-def]
            from ecert.core.dcv_rules import DomainResult

            return DomainResult(domain, str(method), True, "test: DNS not consulted", {"test": True}, "test")

        def check_caa(self, names, **_):  # type: ignore[no-untyped-def]
            from ecert.core.dcv_rules import CaaDecision

            return [CaaDecision(n, True, "test: CAA not consulted") for n in names]

    ctx = build_demo_ctx(tmp_path / "ca", smtp_port=9)
    ctx.validator = _Permit()  # type: ignore[assignment]
    try:
        from ecert.services.operator_dcv import check_operator_validation, start_operator_validation

        start_operator_validation(ctx, "example.com", actor="t")
        check_operator_validation(ctx, "example.com", actor="t")
        host = f"w{_uuid.uuid4().hex[:8]}.example.com"
        reg = apps.register_application(ctx, application_input(host), actor="t")
        apps.confirm_application(ctx, reg.application_id, use_chinese=False, actor="t")
        certificates.submit_csr(ctx, reg.application_id, make_csr([host]), actor="t")
        with pytest.raises(Conflict, match="reject it instead"):
            revoke_for_application(ctx, reg.application_id, "superseded", actor="t")
        assert apps.get_application(ctx, reg.application_id).state == "issued"
        certificates.reject_certificate(ctx, reg.application_id, reason="wrong", actor="t")
        assert apps.get_application(ctx, reg.application_id).state == "validated"
    finally:
        ctx.close()
