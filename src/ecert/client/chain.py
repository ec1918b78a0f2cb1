"""Putting CA certificates in order behind a leaf, and finding the cross-certificate when there is one."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509

from ecert.client.store import is_self_signed

__all__ = ["issued_by", "order_chain", "cross_certificate_for"]

_MAX_DEPTH = 8


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """True when ``parent``'s subject is ``child``'s issuer and ``parent``'s key signed ``child``."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # noqa: BLE001 - wrong key type, bad signature: not the issuer
        return False
    return True


def order_chain(leaf: x509.Certificate, pool: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """The intermediates a server sends after ``leaf``, in order, stopping before a self-signed root.

    Cross-certificates are not chosen here (a cross-certificate and its root share a subject); see
    :func:`cross_certificate_for`. Candidates that are roots end the chain.
    """
    candidates = [c for c in pool if c != leaf]
    chain: list[x509.Certificate] = []
    current = leaf
    for _ in range(_MAX_DEPTH):
        parents = [c for c in candidates if issued_by(current, c) and c not in chain]
        if not parents:
            break
        # Prefer the self-signed root (ends the chain) over a cross-certificate with the same key.
        roots = [p for p in parents if is_self_signed(p)]
        if roots:
            break
        parent = parents[0]
        chain.append(parent)
        current = parent
    return chain


def cross_certificate_for(chain_top: x509.Certificate, pool: Iterable[x509.Certificate]) -> x509.Certificate | None:
    """A certificate for ``chain_top``'s issuer signed by someone else: the path to an older root.

    Hongkong Post's "Root CA 3" is self-signed and also cross-signed by GlobalSign Root CA - R3
    (guide, section C step 7). Serving the cross-certificate lets clients that only trust the older
    root build a path; clients that trust Root CA 3 stop before it.
    """
    for cert in pool:
        if cert.subject == chain_top.issuer and not is_self_signed(cert) and issued_by(chain_top, cert):
            return cert
    return None
