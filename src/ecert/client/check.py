"""Checking what a live server actually serves: chain completeness and order, host name, expiry, key.

The chain is fetched without verification (we want to see a broken chain, not a handshake error), then
judged by our own verifier. Python 3.11's ``ssl`` has no public way to get the served chain; the C
socket object has had ``get_unverified_chain()`` since 3.10 (public on ``SSLSocket`` from 3.13), so we
use that — no extra dependency and no subprocess — and fall back to ``openssl s_client -showcerts``
if it is missing.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ecert.client.chain import issued_by
from ecert.client.ct_policy import ClientLogList, CtReport, check_ct, not_checked
from ecert.client.errors import ChainInvalid, ClientError
from ecert.client.store import LocalStore, is_self_signed, spki_bytes
from ecert.client.verify import hostname_matches, verify_certificate

__all__ = ["CheckReport", "check_server", "fetch_chain", "judge_completeness", "parse_target"]

Fetcher = Callable[[str, int, str, float], list[bytes]]


def parse_target(url: str) -> tuple[str, int]:
    """``https://host[:port]`` (or ``host[:port]``) → (host, port), default port 443."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme != "https" or not parts.hostname:
        raise ClientError(f"expected https://HOST[:PORT], got {url!r}")
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise ClientError(f"bad port in {url!r}") from exc
    return parts.hostname, port


def fetch_chain(host: str, port: int, server_name: str, timeout: float = 10.0) -> list[bytes]:
    """The DER certificates the server sends, in the order it sends them."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # fetch only; verification is ours, below
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                getter = getattr(tls, "get_unverified_chain", None) or getattr(
                    tls._sslobj,  # type: ignore[attr-defined]  # noqa: SLF001 - see module docstring
                    "get_unverified_chain",
                    None,
                )
                if getter is None:
                    return _openssl_chain(host, port, server_name, timeout)
                return [
                    c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                    for c in getter()
                ]
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"cannot connect to {host}:{port}: {exc}") from exc


def _openssl_chain(host: str, port: int, server_name: str, timeout: float) -> list[bytes]:
    out = subprocess.run(  # noqa: S603
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-servername", server_name, "-showcerts"],
        input=b"",
        capture_output=True,
        timeout=timeout,
    ).stdout
    pems = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
    return [x509.load_pem_x509_certificate(p).public_bytes(Encoding.DER) for p in pems]


@dataclass(frozen=True)
class CheckReport:
    """What the server serves and what is wrong with it, for people and for ``--json``."""

    host: str
    port: int
    served: tuple[str, ...]
    in_order: bool
    complete: bool
    hostname_ok: bool
    days_left: int
    not_after: str
    store_match: str | None
    verified: bool
    problem: str | None
    problem_reason: str | None
    notes: tuple[str, ...] = field(default=())
    incomplete_reason: str | None = None
    ct: CtReport = field(default_factory=not_checked)

    @property
    def ok(self) -> bool:
        """Chain, order and completeness; Certificate Transparency is reported on its own (``ct.met``)."""
        return self.verified and self.in_order and self.complete


def _is_anchor(cert: x509.Certificate, anchors: Sequence[x509.Certificate]) -> bool:
    return any(cert == a or (cert.subject == a.subject and cert.public_key() == a.public_key()) for a in anchors)


def judge_completeness(
    served: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]
) -> tuple[bool, str | None]:
    """Whether the served chain lets a client reach a trust anchor with nothing but what was sent.

    Complete means: each certificate after the first issues the one before it (RFC 5246 7.4.2,
    RFC 8446 4.4.2), and the chain reaches a trust anchor in the store: some certificate in it is an
    anchor or is issued by one (a server may also send a cross-certificate beyond that point). This
    is judged apart from host name and expiry, which are reported on their own lines. Returns the
    verdict and, when incomplete, the reason in words.
    """
    if not served:
        return False, "the server sent no certificate"
    for child, parent in zip(served, served[1:], strict=False):
        if not issued_by(child, parent):
            return False, (
                f"{_cn(parent)!r} does not issue {_cn(child)!r}, which it follows: "
                "the chain is out of order or holds a certificate that does not belong"
            )
    for cert in served:
        if _is_anchor(cert, anchors) or any(issued_by(cert, a) for a in anchors):
            return True, None
    last = served[-1]
    if is_self_signed(last):
        who = "the server's own certificate" if len(served) == 1 else repr(_cn(last))
        return False, f"{who} is self-signed and is not a root installed in the store"
    issuer = _name_cn(last.issuer)
    if len(served) == 1:
        return False, f"the server sends only its own certificate; the issuing CA {issuer!r} is missing"
    return False, (f"the chain stops at {_cn(last)!r}; its issuer {issuer!r} is neither sent nor an installed root")


def _name_cn(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()


def _cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def check_server(
    url: str,
    store: LocalStore,
    *,
    now: datetime,
    server_name: str | None = None,
    fetch: Fetcher = fetch_chain,
    timeout: float = 10.0,
    ct_logs: ClientLogList | None = None,
) -> CheckReport:
    """Connect, fetch the served chain and judge it against the store's roots, CRLs and keys, and its embedded
    SCTs against ``ct_logs`` (Chrome's log_list.json v3; None: Certificate Transparency is not checked)."""
    host, port = parse_target(url)
    name = server_name or host
    ders = fetch(host, port, name, timeout)
    if not ders:
        raise ClientError(f"{host}:{port} sent no certificate")
    served = [x509.load_der_x509_certificate(d) for d in ders]
    leaf, rest = served[0], served[1:]
    in_order = all(issued_by(served[i], served[i + 1]) for i in range(len(served) - 1))
    notes: list[str] = []
    if not in_order:
        notes.append("the served chain is not in order: each certificate should be followed by its issuer")
    roots = store.roots()
    complete, incomplete_reason = judge_completeness(served, roots)
    verified, problem, reason = True, None, None
    issuer = _issuer_of(leaf, [*rest, *store.intermediates(), *roots])
    try:
        result = verify_certificate(
            leaf, hostname=name, roots=roots, intermediates=rest, crls=[c.crl for c in store.crls()], now=now
        )
        notes.extend(result.revocation_notes)
        issuer = result.chain[1] if len(result.chain) > 1 else issuer
    except ChainInvalid as exc:
        verified, problem, reason = False, exc.message, exc.reason
    match = _store_match(store, leaf)
    return CheckReport(
        host=host,
        port=port,
        served=tuple(_cn(c) for c in served),
        in_order=in_order,
        complete=complete,
        incomplete_reason=incomplete_reason,
        hostname_ok=hostname_matches(leaf, name),
        days_left=(leaf.not_valid_after_utc - now).days,
        not_after=leaf.not_valid_after_utc.isoformat(),
        store_match=match,
        verified=verified,
        problem=problem,
        problem_reason=reason,
        notes=tuple(notes),
        ct=check_ct(leaf, issuer, ct_logs, now=now),
    )


def _issuer_of(leaf: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The certificate that signed ``leaf`` among those served or installed: the SCTs' precertificate entry
    names its key (RFC 6962 3.2), so even a chain that does not verify can have its SCTs checked."""
    return next((c for c in candidates if issued_by(leaf, c)), None)


def _store_match(store: LocalStore, leaf: x509.Certificate) -> str | None:
    """The store entry whose key the served certificate uses, if any (live first, then pending)."""
    key = spki_bytes(leaf.public_key())
    for live in store.live():
        if spki_bytes(live.cert.public_key()) == key:
            return f"live/{live.name}"
    for pending in store.pending():
        if spki_bytes(pending.csr.public_key()) == key:
            return f"pending/{pending.name}"
    return None
