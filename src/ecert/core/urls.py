"""Where each published object lives under the instance's base URL.

The profiles write these URLs into AIA and CRLDP and the web layer serves the same paths, so one
table keeps the two in step.
"""

from __future__ import annotations

__all__ = ["ca_cert_path", "crl_path", "arl_path", "OCSP_PATH", "absolute"]

OCSP_PATH = "/ocsp"


def ca_cert_path(label: str, fmt: str = "crt") -> str:
    """A CA certificate: ``.crt`` is DER (RFC 5280 4.2.2.1 caIssuers), ``.pem`` for people."""
    return f"/repository/ca/{label}.{fmt}"


def crl_path(label: str) -> str:
    """The full CRL of an issuing CA (DER, application/pkix-crl)."""
    return f"/crl/{label}.crl"


def arl_path(root_label: str) -> str:
    """The root's Authority Revocation List, the guide's ``RootCA3ARL.crl``."""
    return f"/crl/{root_label}-arl.crl"


def absolute(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path
