"""Leaf issuance in steps: prepare the TBS, lint a throwaway-key copy, then sign once with the CA key.

Modelled on Boulder's issuance cycle: the certificate the CA key signs must have exactly the
to-be-signed bytes that passed the linter, and a prepared certificate can be signed only once.
The caller (services/issuance.py) stores a durable record between :meth:`Issuer.prepare` and
:meth:`Issuer.sign`, so no certificate can exist that the database does not know.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..core.errors import LintFailed, PolicyViolation
from ..core.profiles import IssuerFacts, LeafPlan
from .hierarchy import CaPrivateKey, CaPublicKey, signature_hash
from .lint import LintReport, lint_certificate

__all__ = ["Issuer", "PreparedCertificate", "IssuedCertificate"]

_throwaway_keys: dict[tuple[str, int], CaPrivateKey] = {}
_throwaway_lock = threading.Lock()


def _throwaway_key_like(public_key: CaPublicKey) -> CaPrivateKey:
    """A key of the CA key's type and size, so the linted copy has the same signature algorithm."""
    if isinstance(public_key, rsa.RSAPublicKey):
        slot = ("rsa", public_key.key_size)
    else:
        slot = (public_key.curve.name, public_key.curve.key_size)
    with _throwaway_lock:
        key = _throwaway_keys.get(slot)
        if key is None:
            if isinstance(public_key, rsa.RSAPublicKey):
                key = rsa.generate_private_key(65537, public_key.key_size)
            else:
                key = ec.generate_private_key(type(public_key.curve)())
            _throwaway_keys[slot] = key
        return key


@dataclass
class PreparedCertificate:
    """A linted TBS waiting for its one real signature (Boulder's issuance token)."""

    serial: int
    builder: x509.CertificateBuilder
    tbs_sha256: str
    lint: LintReport | None
    issuer_label: str
    _used: bool = field(default=False, repr=False)


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: x509.Certificate
    der: bytes
    serial: int


class Issuer:
    """One issuing CA: its certificate, its key (from a key backend) and the URLs its leaves carry."""

    def __init__(self, *, label: str, certificate: x509.Certificate, key: CaPrivateKey, facts: IssuerFacts,
                 lint: bool = True) -> None:
        if key.public_key().public_numbers() != certificate.public_key().public_numbers():  # type: ignore[union-attr]
            raise PolicyViolation(f"The key of {label} does not match its certificate")
        self.label = label
        self.certificate = certificate
        self._key = key
        self.facts = facts
        self._lint = lint
        self._hash = signature_hash(key)
        self._lock = threading.Lock()

    def _builder(self, plan: LeafPlan, public_key: CaPublicKey, serial: int) -> x509.CertificateBuilder:
        if plan.not_after > self.certificate.not_valid_after_utc:
            raise PolicyViolation(f"{self.label} expires before the certificate would", rule="RFC 5280 6.1.3")
        builder = (
            x509.CertificateBuilder()
            .subject_name(plan.subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(plan.not_before)
            .not_valid_after(plan.not_after)
        )
        for ext, critical in plan.extensions:
            builder = builder.add_extension(ext, critical=critical)
        return builder

    def prepare(self, plan: LeafPlan, public_key: CaPublicKey, serial: int) -> PreparedCertificate:
        """Build the TBS, sign a copy with a throwaway key and lint it; refuse on ERROR or FATAL."""
        builder = self._builder(plan, public_key, serial)
        throwaway = builder.sign(_throwaway_key_like(self._key.public_key()), self._hash)
        report = lint_certificate(throwaway.public_bytes(serialization.Encoding.DER), plan.lint_type) \
            if self._lint else None
        tbs_sha256 = hashlib.sha256(throwaway.tbs_certificate_bytes).hexdigest()
        prepared = PreparedCertificate(serial=serial, builder=builder, tbs_sha256=tbs_sha256, lint=report,
                                       issuer_label=self.label)
        if report is not None and not report.ok:
            first = report.blocking[0]
            raise LintFailed(f"pre-issuance lint refused the certificate: {first.code} at {first.node}",
                             rule="BR 4.3.1.2", value=[f.as_dict() for f in report.blocking])
        return prepared

    def sign(self, prepared: PreparedCertificate) -> IssuedCertificate:
        """The one real signature; the TBS must equal the linted one byte for byte."""
        with self._lock:
            if prepared._used:
                raise PolicyViolation("This prepared certificate was already signed")
            if prepared.issuer_label != self.label:
                raise PolicyViolation("Prepared by another issuer")
            prepared._used = True
        certificate = prepared.builder.sign(self._key, self._hash)
        if hashlib.sha256(certificate.tbs_certificate_bytes).hexdigest() != prepared.tbs_sha256:
            raise LintFailed("the signed TBS differs from the linted TBS", rule="BR 4.3.1.2")
        return IssuedCertificate(certificate=certificate,
                                 der=certificate.public_bytes(serialization.Encoding.DER),
                                 serial=prepared.serial)
