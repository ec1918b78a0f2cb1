"""A tiny CA for CT tests that need no database: a root, and precertificate/final pairs built from one TBS."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ecert.core.ct import SignedCertificateTimestamp
from ecert.signer.precert import poisoned, with_sct_list

__all__ = ["MiniCa", "NOW"]

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@dataclass
class MiniCa:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls) -> MiniCa:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CT Test CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=900))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def tbs(self, days: int = 90, serial: int = 0x1234) -> x509.CertificateBuilder:
        leaf = ec.generate_private_key(ec.SECP256R1()).public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(leaf)
            .serial_number(serial)
            .not_valid_before(NOW)
            .not_valid_after(NOW + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.com")]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )

    def precert(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return poisoned(builder).sign(self.key, hashes.SHA256())

    def final(self, builder: x509.CertificateBuilder, scts: list[SignedCertificateTimestamp]) -> x509.Certificate:
        return with_sct_list(builder, scts).sign(self.key, hashes.SHA256())
