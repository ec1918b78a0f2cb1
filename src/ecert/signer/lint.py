"""The lint gate: pkilint's CA/Browser Forum validators run in-process over a DER certificate.

Building a validator container costs about half a second, so each certificate type's container
is built once and kept; a pass over one certificate then costs milliseconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pkilint import finding_filter, loader
from pkilint.cabf import serverauth
from pkilint.cabf.serverauth.serverauth_constants import CertificateType
from pkilint.pkix import certificate
from pkilint.validation import ValidationFindingSeverity

__all__ = ["Finding", "LintReport", "lint_certificate", "LINT_TYPES"]

LINT_TYPES = {t.name.replace("_", "-"): t for t in CertificateType}


@dataclass(frozen=True)
class Finding:
    """One pkilint finding, kept as plain text so it can be stored and shown."""

    severity: str
    code: str
    message: str | None
    node: str

    def as_dict(self) -> dict[str, str | None]:
        return {"severity": self.severity, "code": self.code, "message": self.message, "node": self.node}


@dataclass(frozen=True)
class LintReport:
    """All findings of one pass; ``blocking`` holds those at ERROR or FATAL (BR: nothing issued)."""

    cert_type: str
    findings: tuple[Finding, ...]

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity in ("FATAL", "ERROR"))

    @property
    def ok(self) -> bool:
        return not self.blocking


_containers: dict[CertificateType, object] = {}
_lock = threading.Lock()


def _container(cert_type: CertificateType) -> object:
    with _lock:
        found = _containers.get(cert_type)
        if found is None:
            found = _build(cert_type)
            _containers[cert_type] = found
        return found


def _build(cert_type: CertificateType) -> object:
    return certificate.create_pkix_certificate_validator_container(
        serverauth.create_decoding_validators(), serverauth.create_validators(cert_type)
    )


def lint_certificate(der: bytes, cert_type: str | CertificateType) -> LintReport:
    """Run the BR validators for ``cert_type`` (e.g. "OV-FINAL-CERTIFICATE") over ``der``."""
    ctype = LINT_TYPES[cert_type] if isinstance(cert_type, str) else cert_type
    doc = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "tbs")
    validator = _container(ctype)
    results = validator.validate(doc.root)  # type: ignore[attr-defined]
    filtered, _ = finding_filter.filter_results(serverauth.create_serverauth_finding_filters(ctype), results)
    findings: list[Finding] = []
    for result in filtered:
        for fd in result.finding_descriptions:
            findings.append(
                Finding(
                    severity=fd.finding.severity.name,
                    code=fd.finding.code,
                    message=fd.message,
                    node=result.node.path,
                )
            )
    findings.sort(key=lambda f: ValidationFindingSeverity[f.severity].value)
    return LintReport(cert_type=ctype.name.replace("_", "-"), findings=tuple(findings))
