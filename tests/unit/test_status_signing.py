"""CRLs, the ARL, OCSP responses and responder certificates, parsed back with cryptography."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import CRLEntryExtensionOID, ExtendedKeyUsageOID, ExtensionOID, NameOID

from ecert.core.errors import PolicyViolation
from ecert.signer import crl as crl_module
from ecert.signer.status import (
    ALLOWED_CA_REASONS,
    ALLOWED_REASONS,
    RevokedEntry,
    build_crl,
    build_ocsp_error,
    build_ocsp_response,
    build_responder_certificate,
    check_reason,
    issuer_hashes,
)

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
BASE = "http://pki.ecert-demo.hk"
R = x509.ReasonFlags


# --- a throwaway BR-shaped hierarchy -------------------------------------------------------------


def new_key(kind: str):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key({"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}[kind])


def _hash_for(key) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ecert Demo Trust Services"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ku(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class Hierarchy:
    """Root, issuing CA (pathLen 0, EKU serverAuth) and a DV leaf, all with SKI/AKI."""

    root: x509.Certificate
    root_key: object
    int_: x509.Certificate
    int_key: object
    leaf: x509.Certificate


def make_hierarchy(kind: str = "p256", *, now: datetime = NOW) -> Hierarchy:
    root_key, int_key, leaf_key = new_key(kind), new_key(kind), new_key(kind)
    root_name, int_name = _name("Ecert Demo Root CA 3"), _name("Ecert Demo TLS CA 1")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, _hash_for(root_key))
    )
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    int_ = (
        x509.CertificateBuilder()
        .subject_name(int_name)
        .issuer_name(root_name)
        .public_key(int_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=300))
        .not_valid_after(now + timedelta(days=1800))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(int_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(f"{BASE}/crl/RootCA3ARL.crl")], None, None, None
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(f"{BASE}/ca/root3.cer"),
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]),
            critical=False,
        )
        .sign(root_key, _hash_for(root_key))
    )
    int_ski = int_.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(int_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=10))
        .not_valid_after(now + timedelta(days=80))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.ecert-demo.hk")]), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_ku(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(int_ski), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(f"{BASE}/crl/tlsca1.crl")], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(f"{BASE}/ocsp"),
                    ),
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(f"{BASE}/ca/tlsca1.cer"),
                    ),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]),
            critical=False,
        )
        .sign(int_key, _hash_for(int_key))
    )
    return Hierarchy(root, root_key, int_, int_key, leaf)


@pytest.fixture(scope="module", params=["p256", "p384", "rsa"])
def h(request) -> Hierarchy:
    return make_hierarchy(request.param)


@pytest.fixture(scope="module")
def p256() -> Hierarchy:
    return make_hierarchy("p256")


def _crl(h: Hierarchy, entries=(), **kw) -> x509.CertificateRevocationList:
    args = dict(
        issuer_cert=h.int_,
        issuer_key=h.int_key,
        entries=entries,
        number=7,
        this_update=NOW,
        next_update=NOW + timedelta(days=7),
    )
    args.update(kw)
    return x509.load_der_x509_crl(build_crl(**args))


def _responder(h: Hierarchy, **kw):
    key = ec.generate_private_key(ec.SECP256R1())
    args = dict(
        issuer_cert=h.int_,
        issuer_key=h.int_key,
        responder_public_key=key.public_key(),
        subject_cn="Ecert Demo TLS CA 1 OCSP Responder",
        not_before=NOW - timedelta(hours=1),
    )
    args.update(kw)
    return build_responder_certificate(**args), key


def _ocsp(h: Hierarchy, responder=None, **kw) -> ocsp.OCSPResponse:
    cert, key = responder or _responder(h)
    args = dict(
        issuer_cert=h.int_,
        responder_cert=cert,
        responder_key=key,
        cert_serial=h.leaf.serial_number,
        status="good",
        this_update=NOW,
        next_update=NOW + timedelta(days=4),
    )
    args.update(kw)
    return ocsp.load_der_ocsp_response(build_ocsp_response(**args))


# --- CRL --------------------------------------------------------------------------------------------


def test_crl_is_signed_by_the_issuer_with_the_hash_its_key_calls_for(h):
    crl = _crl(h)
    assert crl.is_signature_valid(h.int_.public_key())
    assert crl.issuer == h.int_.subject
    expected = "sha384" if getattr(h.int_key, "curve", None) and h.int_key.curve.name == "secp384r1" else "sha256"
    assert crl.signature_hash_algorithm.name == expected


def test_crl_carries_its_number_and_the_issuers_key_id_non_critical(p256):
    crl = _crl(p256, number=4242)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ski = p256.int_.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert (number.value.crl_number, number.critical) == (4242, False)
    assert (aki.value.key_identifier, aki.critical) == (ski.digest, False)


def test_crl_validity_window_is_what_was_asked(p256):
    crl = _crl(p256, next_update=NOW + timedelta(days=10))
    assert crl.last_update_utc == NOW and crl.next_update_utc == NOW + timedelta(days=10)


def test_reason_code_is_present_non_critical_only_when_a_reason_is_given(p256):
    crl = _crl(
        p256,
        [
            RevokedEntry(11, NOW - timedelta(hours=2), R.key_compromise),
            RevokedEntry(12, NOW - timedelta(hours=1), None),
        ],
    )
    with_reason, without = (
        crl.get_revoked_certificate_by_serial_number(11),
        crl.get_revoked_certificate_by_serial_number(12),
    )
    ext = with_reason.extensions.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON)
    assert (ext.value.reason, ext.critical) == (R.key_compromise, False)
    assert len(without.extensions) == 0
    assert with_reason.revocation_date_utc == NOW - timedelta(hours=2)


def test_entries_may_be_streamed_from_a_generator(p256):
    rows = ((n, NOW - timedelta(minutes=n), R.superseded) for n in range(1, 501))
    crl = _crl(p256, (RevokedEntry(*row) for row in rows))
    assert len(crl) == 500


def test_the_fast_entry_path_encodes_exactly_what_the_documented_builder_chain_does():
    entries = [
        RevokedEntry(2**158 + 5, NOW - timedelta(days=1), R.privilege_withdrawn),
        RevokedEntry(99, datetime(2026, 11, 19, 18, 0, tzinfo=timezone(timedelta(hours=8))), None),
    ]
    fast = crl_module._revoked_certificates(entries, for_ca=False, this_update=NOW)
    for entry, got in zip(entries, fast, strict=True):
        chain = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at)
        if entry.reason is not None:
            chain = chain.add_extension(x509.CRLReason(entry.reason), critical=False)
        want = chain.build()
        assert (got.serial_number, got.revocation_date_utc, list(got.extensions)) == (
            want.serial_number,
            want.revocation_date_utc,
            list(want.extensions),
        )


def test_a_full_subscriber_crl_has_no_issuing_distribution_point(p256):
    with pytest.raises(x509.ExtensionNotFound):
        _crl(p256).extensions.get_extension_for_class(x509.IssuingDistributionPoint)


def test_a_partitioned_crl_names_its_partition_url_and_user_certs_only(p256):
    url = f"{BASE}/crl/tlsca1-p3.crl"
    idp = _crl(p256, idp_url=url).extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical
    assert idp.value.full_name == [x509.UniformResourceIdentifier(url)]
    assert idp.value.only_contains_user_certs and not idp.value.only_contains_ca_certs


def test_the_arl_covers_only_ca_certificates_and_accepts_ca_compromise(p256):
    arl = _crl(
        p256,
        [RevokedEntry(p256.int_.serial_number, NOW - timedelta(days=1), R.ca_compromise)],
        issuer_cert=p256.root,
        issuer_key=p256.root_key,
        is_arl=True,
        next_update=NOW + timedelta(days=180),
    )
    idp = arl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical
    assert idp.value.only_contains_ca_certs and not idp.value.only_contains_user_certs
    assert idp.value.full_name is None
    revoked = arl.get_revoked_certificate_by_serial_number(p256.int_.serial_number)
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason == R.ca_compromise
    assert arl.is_signature_valid(p256.root.public_key())


def _other_key():
    return ec.generate_private_key(ec.SECP256R1())


def _leaf_signer() -> dict:
    """A CRL 'issuer' that is a subscriber certificate, as a wiring mistake would pass it."""
    h = make_hierarchy("p256")
    return dict(issuer_cert=h.leaf, issuer_key=h.int_key)


CRL_REFUSALS = [
    ("validity over 10 days", dict(next_update=NOW + timedelta(days=10, seconds=1)), "BR 4.9.7"),
    ("backwards window", dict(next_update=NOW - timedelta(seconds=1)), "BR 4.9.7"),
    (
        "thisUpdate in the future",
        dict(this_update=NOW + timedelta(minutes=5), next_update=NOW + timedelta(days=7), now=NOW),
        "BR 4.9.7",
    ),
    ("naive thisUpdate", dict(this_update=NOW.replace(tzinfo=None)), "BR 4.9.7"),
    ("ARL over twelve months", dict(is_arl=True, next_update=NOW + timedelta(days=366)), "BR 4.9.7"),
    ("certificateHold", dict(entries=[RevokedEntry(5, NOW, R.certificate_hold)]), "BR 7.2.2"),
    ("unspecified reason", dict(entries=[RevokedEntry(5, NOW, R.unspecified)]), "BR 7.2.2"),
    ("removeFromCRL", dict(entries=[RevokedEntry(5, NOW, R.remove_from_crl)]), "BR 7.2.2"),
    ("cACompromise on a subscriber CRL", dict(entries=[RevokedEntry(5, NOW, R.ca_compromise)]), "BR 7.2.2"),
    (
        "revoked after thisUpdate",
        dict(entries=[RevokedEntry(5, NOW + timedelta(seconds=1))]),
        "RFC 5280 5.1.2.6",
    ),
    ("duplicate serial", dict(entries=[RevokedEntry(5, NOW), RevokedEntry(5, NOW)]), "RFC 5280 5.1.2.6"),
    ("negative CRL number", dict(number=-1), "RFC 5280 5.2.3"),
    ("160-bit CRL number", dict(number=2**159), "RFC 5280 5.2.3"),
    ("https partition URL", dict(idp_url="https://pki.ecert-demo.hk/crl/p1.crl"), "BR 7.2.2"),
    (
        "ARL naming a distribution point",
        dict(is_arl=True, idp_url=f"{BASE}/crl/RootCA3ARL.crl"),
        "BR 7.2.2.1",
    ),
    ("key of another CA", dict(issuer_key=_other_key()), "RFC 5280 5.1.1.3"),
    ("issuer without cRLSign", _leaf_signer(), "RFC 5280 4.2.1.3"),
]


@pytest.mark.parametrize(("case", "change", "rule"), CRL_REFUSALS, ids=[c[0] for c in CRL_REFUSALS])
def test_build_crl_refuses(p256, case, change, rule):
    with pytest.raises(PolicyViolation) as err:
        _crl(p256, **change)
    assert err.value.rule == rule


ENTRY_REFUSALS = [
    ("serial zero", dict(serial=0, revoked_at=NOW), "RFC 5280 4.1.2.2"),
    ("160-bit serial", dict(serial=2**159, revoked_at=NOW), "RFC 5280 4.1.2.2"),
    ("naive revocation time", dict(serial=1, revoked_at=NOW.replace(tzinfo=None)), "RFC 5280 5.1.2.6"),
    (
        "revoked before 1950",
        dict(serial=1, revoked_at=datetime(1949, 12, 31, tzinfo=UTC)),
        "RFC 5280 5.1.2.6",
    ),
]


@pytest.mark.parametrize(("case", "fields", "rule"), ENTRY_REFUSALS, ids=[c[0] for c in ENTRY_REFUSALS])
def test_revoked_entry_refuses(case, fields, rule):
    with pytest.raises(PolicyViolation) as err:
        RevokedEntry(**fields)
    assert err.value.rule == rule


@pytest.mark.parametrize("reason", [None, *ALLOWED_REASONS])
def test_subscriber_reasons_allowed(reason):
    check_reason(reason, for_ca=False)


@pytest.mark.parametrize(
    ("reason", "for_ca"),
    [
        (R.unspecified, False),
        (R.unspecified, True),
        (R.certificate_hold, False),
        (R.certificate_hold, True),
        (R.ca_compromise, False),
        (R.aa_compromise, True),
        (R.remove_from_crl, False),
    ],
)
def test_reasons_refused_name_br_7_2_2(reason, for_ca):
    with pytest.raises(PolicyViolation, match="not allowed") as err:
        check_reason(reason, for_ca=for_ca)
    assert err.value.rule == "BR 7.2.2"


def test_ca_reasons_are_the_subscriber_ones_plus_ca_compromise():
    assert ALLOWED_CA_REASONS - ALLOWED_REASONS == {R.ca_compromise}


# --- OCSP ------------------------------------------------------------------------------------------


def test_good_response_answers_for_the_leaf_as_a_client_would_ask(h):
    responder, key = _responder(h)
    resp = _ocsp(h, (responder, key))
    request = ocsp.OCSPRequestBuilder().add_certificate(h.leaf, h.int_, hashes.SHA1()).build()
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert (resp.issuer_name_hash, resp.issuer_key_hash, resp.serial_number) == (
        request.issuer_name_hash,
        request.issuer_key_hash,
        request.serial_number,
    )
    assert isinstance(resp.hash_algorithm, hashes.SHA1)
    assert (resp.this_update_utc, resp.next_update_utc) == (NOW, NOW + timedelta(days=4))
    responder.public_key().verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))


def test_response_names_its_responder_by_key_hash_and_includes_it_without_a_nonce(p256):
    responder, key = _responder(p256)
    resp = _ocsp(p256, (responder, key))
    assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert resp.responder_name is None
    assert resp.certificates == [responder]
    assert len(resp.extensions) == 0 and len(resp.single_extensions) == 0


def test_revoked_response_carries_time_and_reason(p256):
    when = NOW - timedelta(hours=3)
    resp = _ocsp(p256, status="revoked", revoked_at=when, reason=R.key_compromise)
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert (resp.revocation_time_utc, resp.revocation_reason) == (when, R.key_compromise)


def test_revoked_without_a_reason_omits_it(p256):
    resp = _ocsp(p256, status="revoked", revoked_at=NOW - timedelta(hours=3))
    assert resp.revocation_reason is None


def test_unknown_response_for_a_serial_never_issued(p256):
    resp = _ocsp(p256, status="unknown", cert_serial=0x1234567890ABCDEF)
    assert resp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert resp.serial_number == 0x1234567890ABCDEF


def test_sha256_cert_id_matches_a_sha256_request(p256):
    resp = _ocsp(p256, request_hash=hashes.SHA256())
    request = ocsp.OCSPRequestBuilder().add_certificate(p256.leaf, p256.int_, hashes.SHA256()).build()
    assert (resp.issuer_name_hash, resp.issuer_key_hash) == (
        request.issuer_name_hash,
        request.issuer_key_hash,
    )
    assert issuer_hashes(p256.int_, hashes.SHA256()) == (request.issuer_name_hash, request.issuer_key_hash)


def test_the_ca_may_sign_its_own_responses(p256):
    resp = _ocsp(p256, (p256.int_, p256.int_key))
    assert resp.certificates == []
    assert (
        resp.responder_key_hash == p256.int_.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )


def _leaf_as_responder(h: Hierarchy):
    return h.leaf, _other_key()


OCSP_REFUSALS = [
    ("validity under 8 hours", dict(next_update=NOW + timedelta(hours=7, minutes=59)), "BR 4.9.10"),
    ("validity over 10 days", dict(next_update=NOW + timedelta(days=10, seconds=1)), "BR 4.9.10"),
    ("thisUpdate in the future", dict(this_update=NOW + timedelta(minutes=1), now=NOW), "BR 4.9.10"),
    ("naive thisUpdate", dict(this_update=NOW.replace(tzinfo=None), status="revoked", revoked_at=NOW), "BR 4.9.10"),
    ("certificateHold", dict(status="revoked", revoked_at=NOW, reason=R.certificate_hold), "BR 7.2.2"),
    ("unspecified reason", dict(status="revoked", revoked_at=NOW, reason=R.unspecified), "BR 7.2.2"),
    ("revoked without a time", dict(status="revoked"), "RFC 6960 2.2"),
    (
        "revoked after thisUpdate",
        dict(status="revoked", revoked_at=NOW + timedelta(seconds=1)),
        "RFC 6960 2.2",
    ),
    ("good with a reason", dict(reason=R.superseded), "RFC 6960 2.2"),
    ("unknown with a time", dict(status="unknown", revoked_at=NOW), "RFC 6960 2.2"),
    ("no such status", dict(status="fine"), "RFC 6960 2.2"),
    ("serial zero", dict(cert_serial=0), "RFC 5280 4.1.2.2"),
]


@pytest.mark.parametrize(("case", "change", "rule"), OCSP_REFUSALS, ids=[c[0] for c in OCSP_REFUSALS])
def test_build_ocsp_response_refuses(p256, case, change, rule):
    with pytest.raises(PolicyViolation) as err:
        _ocsp(p256, **change)
    assert err.value.rule == rule


def test_a_responder_without_ocsp_signing_is_refused(p256):
    with pytest.raises(PolicyViolation, match="OCSPSigning") as err:
        _ocsp(p256, _leaf_as_responder(p256))
    assert err.value.rule == "RFC 6960 4.2.2.2"


def test_a_responder_key_that_is_not_the_certificates_is_refused(p256):
    cert, _ = _responder(p256)
    with pytest.raises(PolicyViolation, match="does not match"):
        _ocsp(p256, (cert, _other_key()))


def test_an_expired_responder_is_refused(p256):
    old = _responder(p256, not_before=NOW - timedelta(days=5))
    with pytest.raises(PolicyViolation, match="not valid") as err:
        _ocsp(p256, old)
    assert err.value.rule == "RFC 6960 4.2.2.2"


def test_a_responder_from_another_ca_is_refused(p256):
    with pytest.raises(PolicyViolation, match="not issued by this CA"):
        _ocsp(p256, _responder(p256, issuer_cert=p256.root, issuer_key=p256.root_key))


@pytest.mark.parametrize(
    "status",
    ["malformedRequest", "unauthorized", "internalError", "tryLater", ocsp.OCSPResponseStatus.SIG_REQUIRED],
)
def test_error_responses_are_unsigned_and_carry_their_status(status):
    resp = ocsp.load_der_ocsp_response(build_ocsp_error(status))
    expected = (
        status
        if isinstance(status, ocsp.OCSPResponseStatus)
        else {
            "malformedRequest": ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
            "unauthorized": ocsp.OCSPResponseStatus.UNAUTHORIZED,
            "internalError": ocsp.OCSPResponseStatus.INTERNAL_ERROR,
            "tryLater": ocsp.OCSPResponseStatus.TRY_LATER,
        }[status]
    )
    assert resp.response_status == expected


@pytest.mark.parametrize("status", ["successful", ocsp.OCSPResponseStatus.SUCCESSFUL, "good"])
def test_error_response_refuses_a_non_error_status(status):
    with pytest.raises(PolicyViolation):
        build_ocsp_error(status)


# --- responder certificate -------------------------------------------------------------------------


def _ext(cert: x509.Certificate, oid):
    return cert.extensions.get_extension_for_oid(oid)


def test_responder_certificate_profile(h):
    cert, key = _responder(h)
    eku, ku, bc = (
        _ext(cert, o) for o in (ExtensionOID.EXTENDED_KEY_USAGE, ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS)
    )
    assert list(eku.value) == [ExtendedKeyUsageOID.OCSP_SIGNING] and not eku.critical
    assert ku.critical and ku.value == _ku(ca=False)
    assert bc.critical and bc.value.ca is False
    assert _ext(cert, ExtensionOID.OCSP_NO_CHECK).critical is False
    assert (
        _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier
        == _ext(h.int_, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    )
    assert (
        _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
        == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    )
    cert.verify_directly_issued_by(h.int_)


def test_responder_subject_copies_country_and_organisation_from_the_issuer(p256):
    cert, _ = _responder(p256, subject_cn="OCSP 2026-11")
    assert cert.subject == x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ecert Demo Trust Services"),
            x509.NameAttribute(NameOID.COMMON_NAME, "OCSP 2026-11"),
        ]
    )


def test_responder_is_short_lived_with_a_random_positive_serial(p256):
    first, _ = _responder(p256)
    second, _ = _responder(p256, validity_days=2)
    assert first.not_valid_after_utc - first.not_valid_before_utc == timedelta(days=4, seconds=-1)
    assert second.not_valid_after_utc - second.not_valid_before_utc == timedelta(days=2, seconds=-1)
    for cert in (first, second):
        assert 2**64 < cert.serial_number < 2**159
    assert first.serial_number != second.serial_number


RESPONDER_REFUSALS = [
    ("zero days", dict(validity_days=0), "RFC 6960 4.2.2.2.1"),
    ("over a month", dict(validity_days=31), "RFC 6960 4.2.2.2.1"),
    (
        "P-521 key",
        dict(responder_public_key=ec.generate_private_key(ec.SECP521R1()).public_key()),
        "BR 6.1.5",
    ),
    ("empty CN", dict(subject_cn=""), "RFC 5280 A.1"),
    ("naive notBefore", dict(not_before=NOW.replace(tzinfo=None)), "RFC 5280 4.1.2.5"),
    ("key of another CA", dict(issuer_key=_other_key()), "RFC 5280 4.1.1.3"),
]


@pytest.mark.parametrize(("case", "change", "rule"), RESPONDER_REFUSALS, ids=[c[0] for c in RESPONDER_REFUSALS])
def test_build_responder_certificate_refuses(p256, case, change, rule):
    with pytest.raises(PolicyViolation) as err:
        _responder(p256, **change)
    assert err.value.rule == rule


def test_the_status_module_exports_exactly_its_public_api():
    from ecert.signer import status

    assert sorted(status.__all__) == sorted(
        ["ALLOWED_CA_REASONS", "ALLOWED_REASONS", "ARL_MAX_VALIDITY", "CRL_MAX_VALIDITY", "OCSP_MAX_VALIDITY",
         "OCSP_MIN_VALIDITY", "RESPONDER_MAX_DAYS", "CertStatus", "RevokedEntry", "build_crl", "build_ocsp_error",
         "build_ocsp_response", "build_responder_certificate", "check_reason", "issuer_hashes", "signature_hash"]
    )  # fmt: skip
    assert all(hasattr(status, name) for name in status.__all__)
