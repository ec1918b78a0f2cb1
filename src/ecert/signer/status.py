"""The signing side of certificate status: one import point for CRLs, the ARL and OCSP.

The work lives in ``crl.py`` (CRL, ARL, reason codes) and ``ocsp.py`` (responses, responder
certificates); services import from here so the split can change without touching them.
"""

from __future__ import annotations

from ecert.signer.crl import (
    ALLOWED_CA_REASONS,
    ALLOWED_REASONS,
    ARL_MAX_VALIDITY,
    CRL_MAX_VALIDITY,
    RevokedEntry,
    build_crl,
    check_reason,
    signature_hash,
)
from ecert.signer.ocsp import (
    OCSP_MAX_VALIDITY,
    OCSP_MIN_VALIDITY,
    RESPONDER_MAX_DAYS,
    CertStatus,
    build_ocsp_error,
    build_ocsp_response,
    build_responder_certificate,
    issuer_hashes,
)

__all__ = [
    "ALLOWED_CA_REASONS",
    "ALLOWED_REASONS",
    "ARL_MAX_VALIDITY",
    "CRL_MAX_VALIDITY",
    "OCSP_MAX_VALIDITY",
    "OCSP_MIN_VALIDITY",
    "RESPONDER_MAX_DAYS",
    "CertStatus",
    "RevokedEntry",
    "build_crl",
    "build_ocsp_error",
    "build_ocsp_response",
    "build_responder_certificate",
    "check_reason",
    "issuer_hashes",
    "signature_hash",
]
