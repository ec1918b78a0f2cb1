"""Leaf issuance in steps: prepare the TBS, lint a throwaway-key copy, then sign once with the CA key.

With Certificate Transparency the same steps run twice: first for the precertificate (the TBS with the
poison, linted as a precertificate), then for the final certificate built from the very same TBS with the
SCT list in place of the poison (linted as final, and checked to differ in exactly that way).

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

from ..core.ct import SignedCertificateTimestamp
from ..core.errors import LintFailed, PolicyViolation
from ..core.profiles import IssuerFacts, LeafPlan
from .hierarchy import CaPrivateKey, CaPublicKey, signature_hash
from .lint import LintReport, lint_certificate
from .precert import PRE_LINT_TYPES, check_final_matches, poisoned, with_sct_list

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
    linted: x509.Certificate | None = field(default=None, repr=False)  # the throwaway-key copy that was linted
    base_builder: x509.CertificateBuilder | None = field(default=None, repr=False)  # precertificates: no poison
    final_lint_type: str | None = None  # precertificates: how the final certificate is linted
    _used: bool = field(default=False, repr=False)


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: x509.Certificate
    der: bytes
    serial: int


class Issuer:
    """One issuing CA: its certificate, its key (from a key backend) and the URLs its leaves carry."""

    def __init__(
        self, *, label: str, certificate: x509.Certificate, key: CaPrivateKey, facts: IssuerFacts, lint: bool = True
    ) -> None:
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
        return self._prepare(self._builder(plan, public_key, serial), serial, plan.lint_type)

    def prepare_precertificate(self, plan: LeafPlan, public_key: CaPublicKey, serial: int) -> PreparedCertificate:
        """The TBS with the poison (RFC 6962 3.1), linted with pkilint's precertificate validators.

        The prepared precertificate keeps the unpoisoned builder, so that :meth:`prepare_final` can build the
        final certificate from the very TBS that was promised, not from a re-parse of it.
        """
        base = self._builder(plan, public_key, serial)
        prepared = self._prepare(poisoned(base), serial, PRE_LINT_TYPES.get(plan.lint_type, plan.lint_type))
        prepared.base_builder = base
        prepared.final_lint_type = plan.lint_type
        return prepared

    def prepare_final(
        self, precert: PreparedCertificate, precertificate: x509.Certificate, scts: list[SignedCertificateTimestamp]
    ) -> PreparedCertificate:
        """The final certificate: the precertificate's TBS with the SCT list instead of the poison, linted as
        final and checked to differ from ``precertificate`` in exactly that way (RFC 6962 3.3)."""
        if precert.base_builder is None or precert.final_lint_type is None:
            raise PolicyViolation("not a prepared precertificate")
        prepared = self._prepare(with_sct_list(precert.base_builder, scts), precert.serial, precert.final_lint_type)
        assert prepared.linted is not None
        check_final_matches(precertificate, prepared.linted)
        return prepared

    def _prepare(self, builder: x509.CertificateBuilder, serial: int, lint_type: str) -> PreparedCertificate:
        throwaway = builder.sign(_throwaway_key_like(self._key.public_key()), self._hash)
        report = lint_certificate(throwaway.public_bytes(serialization.Encoding.DER), lint_type) if self._lint else None
        tbs_sha256 = hashlib.sha256(throwaway.tbs_certificate_bytes).hexdigest()
        prepared = PreparedCertificate(
            serial=serial,
            builder=builder,
            tbs_sha256=tbs_sha256,
            lint=report,
            issuer_label=self.label,
            linted=throwaway,
        )
        if report is not None and not report.ok:
            first = report.blocking[0]
            raise LintFailed(
                f"pre-issuance lint refused the certificate: {first.code} at {first.node}",
                rule="BR 4.3.1.2",
                value=[f.as_dict() for f in report.blocking],
            )
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
        return IssuedCertificate(
            certificate=certificate, der=certificate.public_bytes(serialization.Encoding.DER), serial=prepared.serial
        )
