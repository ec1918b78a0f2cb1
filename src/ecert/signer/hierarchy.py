"""CA certificates of the hierarchy: root, issuing (OV/EV) sub-CAs, cross-certificate, CA requests.

Every builder takes its keys and its instant from the caller; nothing here stores or fetches.
Profiles follow BR 7.1.2.1 (root), 7.1.2.2 (cross-certified subordinate) and 7.1.2.6 (TLS
subordinate CA).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ..core.errors import PolicyViolation
from ..core.profiles import OID_EV, OID_OV
from .crl import signature_hash as _hash_for_public_key

__all__ = [
    "CaUrls",
    "new_serial",
    "signature_hash",
    "ca_name",
    "root_certificate",
    "issuing_ca_certificate",
    "cross_certificate",
    "ca_request",
    "sign_ca_request",
    "CaPrivateKey",
]

CaPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CaPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class CaUrls:
    """URLs a certificate issued by a CA points to: the CA's own certificate and its CRL."""

    ca_issuers_url: str
    crl_url: str
    ocsp_url: str | None = None


def new_serial() -> int:
    """A positive serial with 127 bits from the CSPRNG: over BR 7.1's 64 bits, under 2^159 (RFC 5280 4.1.2.2)."""
    while True:
        serial = int.from_bytes(secrets.token_bytes(16), "big") >> 1
        if serial >= 1 << 64:  # also guarantees a 16-byte DER integer never shrinks to a guessable size
            return serial


def signature_hash(key: CaPrivateKey | CaPublicKey) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 keys, SHA-256 for P-256 and RSA (BR 7.1.3.2); the one rule is in signer/crl.py."""
    return _hash_for_public_key(_public(key))


def ca_name(common_name: str, organization: str, country: str) -> x509.Name:
    """CA subject: C, O, CN (BR 7.1.2.10.2)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _public(key: CaPrivateKey | CaPublicKey) -> CaPublicKey:
    return key.public_key() if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else key


def _ski(public_key: CaPublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _aki(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _check_days(days: int, low: int, high: int, what: str, rule: str) -> None:
    if not low <= days <= high:
        raise PolicyViolation(f"{what} validity must be {low}..{high} days, got {days}", value=days, rule=rule)


def root_certificate(*, subject: x509.Name, key: CaPrivateKey, now: datetime, days: int = 9000) -> x509.Certificate:
    """A self-signed root (BR 7.1.2.1): no EKU, no policies, no path length, SKI and AKI."""
    _check_days(days, 2922, 9132, "Root CA", "BR 7.1.2.1.1")
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(now.replace(microsecond=0))
        .not_valid_after(now.replace(microsecond=0) + timedelta(days=days) - timedelta(seconds=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(_ski(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
    )
    return builder.sign(key, signature_hash(key))


def _policies(oids: tuple[str, ...]) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier(o), None) for o in oids])


def _subordinate(
    *,
    issuer_cert: x509.Certificate,
    issuer_key: CaPrivateKey,
    subject: x509.Name,
    public_key: CaPublicKey,
    urls: CaUrls,
    policy_oids: tuple[str, ...],
    now: datetime,
    days: int,
    path_length: int | None,
) -> x509.Certificate:
    not_before = now.replace(microsecond=0)
    not_after = min(not_before + timedelta(days=days) - timedelta(seconds=1), issuer_cert.not_valid_after_utc)
    aia = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(urls.ca_issuers_url)
        )
    ]
    if urls.ocsp_url:
        aia.insert(
            0, x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp_url))
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_policies(policy_oids), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(urls.crl_url)], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(x509.AuthorityInformationAccess(aia), critical=False)
        .add_extension(_ski(public_key), critical=False)
        .add_extension(_aki(issuer_cert), critical=False)
    )
    return builder.sign(issuer_key, signature_hash(issuer_key))


def issuing_ca_certificate(
    *,
    root_cert: x509.Certificate,
    root_key: CaPrivateKey,
    subject: x509.Name,
    public_key: CaPublicKey,
    urls: CaUrls,
    own_policy_oid: str,
    ev: bool,
    now: datetime,
    days: int = 1825,
) -> x509.Certificate:
    """An issuing CA (BR 7.1.2.6): serverAuth-only EKU, pathLen 0, the OV or EV policy plus the CA's own."""
    _check_days(days, 1, 3653, "Issuing CA", "BR 6.3.2")
    reserved = OID_EV.dotted_string if ev else OID_OV.dotted_string
    return _subordinate(
        issuer_cert=root_cert,
        issuer_key=root_key,
        subject=subject,
        public_key=public_key,
        urls=urls,
        policy_oids=(reserved, own_policy_oid),
        now=now,
        days=days,
        path_length=0,
    )


def cross_certificate(
    *,
    external_root_cert: x509.Certificate,
    external_root_key: CaPrivateKey,
    our_root_cert: x509.Certificate,
    urls: CaUrls,
    now: datetime,
    days: int = 3650,
) -> x509.Certificate:
    """Another root certifies ours (BR 7.1.2.2): same subject and key as our root, restricted to serverAuth."""
    return _subordinate(
        issuer_cert=external_root_cert,
        issuer_key=external_root_key,
        subject=our_root_cert.subject,
        public_key=_public(our_root_cert.public_key()),  # type: ignore[arg-type]
        urls=urls,
        policy_oids=(OID_OV.dotted_string, OID_EV.dotted_string),
        now=now,
        days=days,
        path_length=1,
    )


def ca_request(*, subject: x509.Name, key: CaPrivateKey) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for a CA key: what an offline root, or an external root, signs."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, signature_hash(key))
    )


def sign_ca_request(
    *,
    csr: x509.CertificateSigningRequest,
    root_cert: x509.Certificate,
    root_key: CaPrivateKey,
    urls: CaUrls,
    own_policy_oid: str,
    ev: bool,
    now: datetime,
    days: int = 1825,
) -> x509.Certificate:
    """The offline-root ceremony step: check the request's self-signature, then certify it as an issuing CA.

    Only the subject and key are taken from the request; the profile decides every extension.
    """
    if not csr.is_signature_valid:
        raise PolicyViolation("The CA request's signature does not verify", rule="RFC 2986")
    public_key = csr.public_key()
    if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise PolicyViolation("CA keys must be RSA or ECDSA", rule="BR 6.1.5")
    return issuing_ca_certificate(
        root_cert=root_cert,
        root_key=root_key,
        subject=csr.subject,
        public_key=public_key,
        urls=urls,
        own_policy_oid=own_policy_oid,
        ev=ev,
        now=now,
        days=days,
    )
