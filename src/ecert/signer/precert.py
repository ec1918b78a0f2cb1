"""Precertificates and their final certificates (RFC 6962 3.1 and 3.3), as builders: no keys, no I/O.

The precertificate is the prepared TBS plus the critical poison extension; the final certificate is the same
TBS with the poison replaced, at the same position, by the SCT list. :func:`check_final_matches` proves it
by comparing the two TBSs with those extensions removed, which is exactly what logs and browsers compare.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from ..core.ct import (
    POISON_OID,
    SCT_LIST_OID,
    SignedCertificateTimestamp,
    sct_list_extension_value,
    tbs_without_extension,
)
from ..core.errors import LintFailed

__all__ = ["poisoned", "with_sct_list", "check_final_matches", "is_precertificate", "PRE_LINT_TYPES"]

# The pkilint certificate type a precertificate is linted as, for each final type.
PRE_LINT_TYPES = {
    "DV-FINAL-CERTIFICATE": "DV-PRE-CERTIFICATE",
    "OV-FINAL-CERTIFICATE": "OV-PRE-CERTIFICATE",
    "IV-FINAL-CERTIFICATE": "IV-PRE-CERTIFICATE",
    "EV-FINAL-CERTIFICATE": "EV-PRE-CERTIFICATE",
}


def poisoned(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    """The precertificate's builder: the TBS plus the poison, critical, as the last extension (RFC 6962 3.1)."""
    return builder.add_extension(x509.PrecertPoison(), critical=True)


def with_sct_list(builder: x509.CertificateBuilder, scts: list[SignedCertificateTimestamp]) -> x509.CertificateBuilder:
    """The final certificate's builder: the same TBS with the SCT list where the poison was (RFC 6962 3.3)."""
    ext = x509.UnrecognizedExtension(ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, sct_list_extension_value(scts))
    return builder.add_extension(ext, critical=False)


def is_precertificate(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_oid(ExtensionOID.PRECERT_POISON).critical
    except x509.ExtensionNotFound:
        return False


def check_final_matches(precertificate: x509.Certificate, final: x509.Certificate) -> None:
    """Raise unless ``final`` is ``precertificate`` with the poison replaced by an SCT list, nothing else.

    Mozilla and the BR (7.1.2.9) treat a precertificate as a promise to issue exactly this certificate.
    """
    if not is_precertificate(precertificate):
        raise LintFailed("the precertificate carries no critical poison extension", rule="RFC 6962 3.1")
    try:
        pre = tbs_without_extension(precertificate.tbs_certificate_bytes, POISON_OID)
        fin = tbs_without_extension(final.tbs_certificate_bytes, SCT_LIST_OID)
    except ValueError as exc:
        raise LintFailed(f"final certificate and precertificate differ: {exc}", rule="RFC 6962 3.3") from None
    if pre != fin:
        raise LintFailed(
            "the final certificate differs from its precertificate beyond the SCT list",
            rule="RFC 6962 3.3",
            value=format(final.serial_number, "x"),
        )
