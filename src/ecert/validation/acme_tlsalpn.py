"""ACME tls-alpn-01 (RFC 8737, BR 3.2.2.4.20): a self-signed certificate offered for ALPN "acme-tls/1".

We resolve the name through the configured resolver, apply the netguard to the address, connect to the
Authorized Port 443 (``https_port``) with the name as SNI, and read the certificate without trusting it: it
must carry exactly this one dNSName and a critical acmeIdentifier extension holding SHA-256(key authorization).
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from ecert.core.dcv_rules import DcvMethod, DomainResult
from ecert.validation.dns import DnsClient
from ecert.validation.netguard import is_forbidden_address

__all__ = ["ACME_IDENTIFIER_OID", "ALPN_PROTOCOL", "check_tls_alpn01"]

ALPN_PROTOCOL = "acme-tls/1"  # RFC 8737 6.2
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 6.1, id-pe-acmeIdentifier


class _Failed(Exception):
    def __init__(self, reason: str, problem: str) -> None:
        super().__init__(reason)
        self.problem = problem


def _context() -> ssl.SSLContext:
    # RFC 8737 3: the certificate is self-signed on purpose; it proves control by its content, not its issuer.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 4: TLS 1.2 or later
    ctx.set_alpn_protocols([ALPN_PROTOCOL])
    return ctx


def _address(client: DnsClient, domain: str, allow_private: bool, evidence: dict[str, Any]) -> str:
    addresses, answers = client.addresses(domain)
    evidence["dns"] = [a.to_evidence() for a in answers]
    if not addresses:
        raise _Failed(f"{domain} has no usable A or AAAA record", "dns")
    allowed = [a for a in addresses if allow_private or not is_forbidden_address(a)]
    if not allowed:
        raise _Failed(f"{domain} resolves to non-public address {addresses[0]}; refusing to connect", "connection")
    evidence["address"] = allowed[0]
    return allowed[0]


def _handshake(address: str, port: int, domain: str, timeout: float) -> bytes:
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            with _context().wrap_socket(raw, server_hostname=domain) as tls:
                if tls.selected_alpn_protocol() != ALPN_PROTOCOL:
                    raise _Failed(f"the server did not negotiate ALPN {ALPN_PROTOCOL}", "tls")
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise _Failed(f"TLS connection to {address}:{port} failed: {type(exc).__name__}: {exc}"[:300], "tls") from None
    if not der:
        raise _Failed("the server sent no certificate", "tls")
    return der


def _check_certificate(der: bytes, domain: str, key_authz: str) -> None:
    """RFC 8737 3: one dNSName, the name; acmeIdentifier critical, an OCTET STRING of the digest."""
    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
        ident = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound as exc:
        raise _Failed(f"the challenge certificate lacks an extension: {exc}", "incorrectResponse") from None
    if [n.lower() for n in names] != [domain]:
        raise _Failed(f"the challenge certificate names {names}, not exactly {domain}", "incorrectResponse")
    digest = hashlib.sha256(key_authz.encode("ascii")).digest()
    value = ident.value.value if isinstance(ident.value, x509.UnrecognizedExtension) else b""
    if not ident.critical or value != b"\x04\x20" + digest:
        raise _Failed("the acmeIdentifier extension is not critical or does not hold the digest", "incorrectResponse")


def check_tls_alpn01(
    client: DnsClient,
    domain: str,
    key_authz: str,
    *,
    port: int = 443,
    allow_private: bool = False,
    timeout: float = 5.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DomainResult:
    started = clock()
    evidence: dict[str, Any] = {"port": port, "resolvers": list(client.resolvers), "started_at": started.isoformat()}
    try:
        der = _handshake(_address(client, domain, allow_private, evidence), port, domain, timeout)
        evidence["certificate_sha256"] = hashlib.sha256(der).hexdigest()
        _check_certificate(der, domain, key_authz)
    except _Failed as exc:
        evidence.update(problem=exc.problem, finished_at=clock().isoformat())
        return DomainResult(domain, DcvMethod.ACME_TLS_ALPN.value, False, str(exc), evidence)
    evidence["finished_at"] = clock().isoformat()
    return DomainResult(
        domain, DcvMethod.ACME_TLS_ALPN.value, True, "the challenge certificate holds the digest", evidence
    )
