"""Completing a pending request: read the CA's .cer/.p7b/chain file, match it to its key, store it live.

Section E of the user guide ("Complete Pending Request"). The certificate is matched to the pending
request by public key, never by name, so a certificate issued for another key is refused outright.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from ecert.client.chain import build_chain
from ecert.client.errors import ClientError
from ecert.client.store import LiveEntry, LocalStore, PendingEntry, is_self_signed, spki_bytes

__all__ = ["Completion", "complete_request", "load_certificates"]

MAX_INPUT_BYTES = 1 << 20  # a chain of a few certificates is a few KiB; refuse anything absurd


def load_certificates(data: bytes, *, source: str = "the file") -> list[x509.Certificate]:
    """Read every certificate in a PEM/DER certificate, a PEM chain, or a PEM/DER PKCS#7 (.p7b).

    Each format is tried in turn; if none parses, one sentence says what the file is not. A
    truncated .p7b fails its DER parse and lands here too.
    """
    if len(data) > MAX_INPUT_BYTES:
        raise ClientError(f"{source} is {len(data)} bytes; a certificate file is at most {MAX_INPUT_BYTES}")
    stripped = data.strip()
    if not stripped:
        raise ClientError(f"{source} is empty")
    if stripped.startswith(b"-----BEGIN"):
        if b"-----BEGIN PKCS7-----" in stripped or b"-----BEGIN CMS-----" in stripped:
            try:
                certs = pkcs7.load_pem_pkcs7_certificates(stripped.replace(b"CMS-----", b"PKCS7-----"))
            except ValueError as exc:
                raise ClientError(f"{source} is a damaged or truncated PKCS#7 (.p7b) file") from exc
        else:
            if b"-----END" not in stripped:
                raise ClientError(f"{source} is a truncated PEM file (no END line)")
            try:
                certs = x509.load_pem_x509_certificates(stripped)
            except ValueError as exc:
                raise ClientError(f"{source} holds no readable certificate (PEM)") from exc
    else:
        certs = _load_der(data, source)
    if not certs:
        raise ClientError(f"{source} holds no certificate")
    return certs


def _load_der(data: bytes, source: str) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        return pkcs7.load_der_pkcs7_certificates(data)
    except ValueError as exc:
        raise ClientError(
            f"{source} is neither a certificate (.cer, PEM or DER) nor a complete PKCS#7 (.p7b); it may be truncated"
        ) from exc


@dataclass(frozen=True)
class Completion:
    """What completing did: the live entry, CA certificates installed on the way, the chain choice."""

    entry: LiveEntry
    installed_cas: tuple[str, ...]
    via_cross: bool
    chain_complete: bool = True
    missing_issuer: str | None = None


def _find_pending(store: LocalStore, certs: list[x509.Certificate]) -> tuple[PendingEntry, x509.Certificate]:
    by_key = {spki_bytes(p.csr.public_key()): p for p in store.pending()}
    for cert in certs:
        pending = by_key.get(spki_bytes(cert.public_key()))
        if pending is not None:
            return pending, cert
    subjects = "; ".join(c.subject.rfc4514_string() for c in certs if not _is_ca(c)) or "none"
    raise ClientError(
        f"no pending request holds the key for this certificate ({subjects}); "
        "it was issued for another key or another machine's request",
    )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def complete_request(
    store: LocalStore, data: bytes, *, now: datetime, source: str = "the file", force: bool = False
) -> Completion:
    """Match the certificate to a pending key, install CA certificates it came with, store it live."""
    store.ensure()
    certs = load_certificates(data, source=source)
    pending, leaf = _find_pending(store, certs)
    extras = [c for c in certs if c is not leaf and _is_ca(c)]
    installed: list[str] = []
    for ca in extras:
        if not is_self_signed(ca):  # roots become trusted only by 'ecert ca install'
            installed.append(store.install_ca(ca).name)
    pool = extras + store.intermediates() + store.roots()
    plan = build_chain(leaf, pool, now=now)
    meta = dict(pending.meta)
    meta.update(
        {
            "serial_hex": format(leaf.serial_number, "x"),
            "issuer": leaf.issuer.rfc4514_string(),
            "not_before": leaf.not_valid_before_utc.isoformat(),
            "not_after": leaf.not_valid_after_utc.isoformat(),
            "completed": now.isoformat(),
            "via_cross": False,
            "cross_available": plan.cross is not None,
            "chain_complete": plan.complete,
        }
    )
    chain = list(plan.intermediates)
    entry = store.write_live(pending.name, cert=leaf, chain=chain, key_pem=pending.key_pem, meta=meta, force=force)
    store.remove_pending(pending.name)
    missing = plan.missing.rfc4514_string() if plan.missing is not None else None
    return Completion(
        entry=entry,
        installed_cas=tuple(installed),
        via_cross=False,
        chain_complete=plan.complete,
        missing_issuer=missing,
    )
