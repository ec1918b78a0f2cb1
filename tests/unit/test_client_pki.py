"""A small test PKI for the subscriber-tool tests: root, cross-signed root, sub-CA, leaves, CRL and ARL.

Shaped like Hongkong Post's: "Root CA 3" is self-signed and also cross-signed by an older root, and the
sub-CA issues the server certificates. Other client tests import :class:`TestPKI` from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Post"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_cert(subject: x509.Name, key, issuer: x509.Name, issuer_key, start, days, path_len=None):
    pub = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - timedelta(days=1))
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class TestPKI:
    """Build once per test; everything is in memory."""

    __test__ = False  # not a test class
    start: datetime = NOW
    root_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    old_root_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    sub_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        self.root = _ca_cert(
            _name("Test Root CA 3"), self.root_key, _name("Test Root CA 3"), self.root_key, self.start, 3650
        )
        self.old_root = _ca_cert(
            _name("Old Global Root R3"),
            self.old_root_key,
            _name("Old Global Root R3"),
            self.old_root_key,
            self.start,
            3650,
        )
        self.cross = _ca_cert(
            _name("Test Root CA 3"),
            self.root_key,
            _name("Old Global Root R3"),
            self.old_root_key,
            self.start,
            1000,
        )
        self.sub = _ca_cert(
            _name("Test e-Cert SSL CA 3 - 17"),
            self.sub_key,
            _name("Test Root CA 3"),
            self.root_key,
            self.start,
            1800,
            path_len=0,
        )

    def pem(self, *certs: x509.Certificate) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    def issue(
        self,
        csr_or_key,
        names: list[str],
        *,
        days: int = 199,
        start: datetime | None = None,
        serial: int | None = None,
    ) -> x509.Certificate:
        """A DV leaf for a CSR (or public key) from the sub-CA."""
        pub = csr_or_key.public_key() if hasattr(csr_or_key, "public_key") else csr_or_key
        begin = start or self.start
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.sub.subject)
            .public_key(pub)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(begin - timedelta(hours=1))
            .not_valid_after(begin + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.sub_key.public_key()), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .sign(self.sub_key, hashes.SHA256())
        )

    def crl(self, issuer: x509.Certificate, issuer_key, serials: list[int]) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(self.start - timedelta(hours=1))
            .next_update(self.start + timedelta(days=7))
            .add_extension(x509.CRLNumber(1), critical=False)
        )
        for s in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(s)
                .revocation_date(self.start - timedelta(hours=2))
                .build()
            )
        return builder.sign(issuer_key, hashes.SHA256())


def test_pki_chain_is_well_formed() -> None:
    pki = TestPKI()
    pki.sub.verify_directly_issued_by(pki.root)
    pki.cross.verify_directly_issued_by(pki.old_root)
    assert pki.cross.public_key() == pki.root.public_key()
