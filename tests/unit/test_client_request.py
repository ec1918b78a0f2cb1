"""`ecert request new` and the pure request/verify helpers: names, CSR contents, refusals."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from tests.unit.test_client_pki import NOW, TestPKI

from ecert.client.errors import ChainInvalid, ClientError
from ecert.client.request import KeyType, RequestSpec, build_request
from ecert.client.verify import verify_certificate
from ecert.core.errors import BadName


def _csr(req) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(req.csr_pem)


def test_wildcard_gives_star_and_base_with_cn_and_hk_subject() -> None:
    req = build_request(RequestSpec("w", wildcard="example.com", key_type=KeyType.P256), None)
    csr = _csr(req)
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["*.example.com", "example.com"]
    subject = {a.oid: a.value for a in csr.subject}
    assert subject[NameOID.COMMON_NAME] == "*.example.com"
    assert (
        subject[NameOID.COUNTRY_NAME],
        subject[NameOID.STATE_OR_PROVINCE_NAME],
        subject[NameOID.LOCALITY_NAME],
    ) == ("HK", "Hong Kong", "Hong Kong")
    assert b"-----BEGIN CERTIFICATE REQUEST-----" in req.csr_pem


def test_chinese_name_becomes_a_label_with_both_forms_shown() -> None:
    req = build_request(RequestSpec("idn", names=("香港郵政.香港",), key_type=KeyType.P256), None)
    assert req.names == ("xn--5bvv2rbn4a0hh.xn--j6w193g",)
    assert req.unicode_names == ("香港郵政.香港",)


def test_chosen_common_name_is_used_and_ou_is_noted_as_ignored() -> None:
    req = build_request(
        RequestSpec(
            "m",
            names=("www.example.com", "mail.example.com"),
            common_name="mail.example.com",
            organizational_unit="IT",
            key_type=KeyType.P256,
        ),
        None,
    )
    assert req.common_name == "mail.example.com"
    assert any("ignores OU" in n for n in req.notes)


def test_default_key_is_rsa_2048_and_encrypted_when_a_passphrase_is_given() -> None:
    req = build_request(RequestSpec("r", names=("www.example.com",)), b"secret")
    assert _csr(req).public_key().key_size == 2048
    assert b"ENCRYPTED PRIVATE KEY" in req.key_pem


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (RequestSpec("x"), ClientError),
        (RequestSpec("x", names=("localhost",)), BadName),
        (RequestSpec("x", names=("a..example.com",)), BadName),
        (RequestSpec("x", names=("www.example.com",), common_name="other.example.com"), BadName),
        (RequestSpec("x", names=("www.example.com",), country="HKG"), ClientError),
    ],
    ids=["no-names", "internal-name", "empty-label", "cn-not-in-names", "bad-country"],
)
def test_request_refusals(spec: RequestSpec, error: type[Exception]) -> None:
    with pytest.raises(error):
        build_request(spec, None)


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def _leaf(pki: TestPKI, names=("www.example.com",), **kw):
    from cryptography.hazmat.primitives.asymmetric import ec

    return pki.issue(ec.generate_private_key(ec.SECP256R1()), list(names), **kw)


def test_verify_finds_path_through_cross_certificate_to_the_other_root(pki: TestPKI) -> None:
    leaf = _leaf(pki)
    # Root CA 3 is known (installed --intermediate, not trusted): that is how the cross is recognised.
    result = verify_certificate(
        leaf,
        hostname="www.example.com",
        roots=[pki.old_root],
        intermediates=[pki.sub, pki.cross, pki.root],
        now=NOW,
    )
    assert result.chain[-1] == pki.old_root
    assert result.via_cross


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "expired"),
        ("wrong-host", "wrong-host"),
        ("unknown-issuer", "unknown-issuer"),
        ("revoked", "revoked"),
        ("sub-ca-revoked", "sub-ca-revoked"),
    ],
)
def test_verify_explains_each_failure(pki: TestPKI, case: str, reason: str) -> None:
    from datetime import timedelta

    leaf = _leaf(pki, days=10) if case == "expired" else _leaf(pki)
    now = NOW + timedelta(days=30) if case == "expired" else NOW
    host = "other.example.net" if case == "wrong-host" else "www.example.com"
    inter = [] if case == "unknown-issuer" else [pki.sub]
    crls = []
    if case == "revoked":
        crls = [pki.crl(pki.sub, pki.sub_key, [leaf.serial_number])]
    if case == "sub-ca-revoked":
        crls = [pki.crl(pki.root, pki.root_key, [pki.sub.serial_number])]
    with pytest.raises(ChainInvalid) as info:
        verify_certificate(leaf, hostname=host, roots=[pki.root], intermediates=inter, crls=crls, now=now)
    assert info.value.reason == reason


def test_crl_signed_by_someone_else_is_ignored(pki: TestPKI) -> None:
    leaf = _leaf(pki)
    forged = pki.crl(pki.sub, pki.root_key, [leaf.serial_number])  # right issuer name, wrong key
    result = verify_certificate(
        leaf, hostname="www.example.com", roots=[pki.root], intermediates=[pki.sub], crls=[forged], now=NOW
    )
    assert any("no CRL" in n for n in result.revocation_notes)
