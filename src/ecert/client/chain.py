"""Putting CA certificates in order behind a leaf, and finding the cross-certificate when there is one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from ecert.client.errors import ClientError
from ecert.client.store import LiveEntry, LocalStore, is_self_signed

__all__ = [
    "ChainPlan",
    "build_chain",
    "cross_certificate_for",
    "is_cross_certificate",
    "issued_by",
    "order_chain",
    "plan_for_live",
    "refresh_live_chains",
]

_MAX_DEPTH = 8


def _key_ids_agree(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """False only when both sides name a key identifier and they differ (RFC 5280 4.2.1.1 and 4.2.1.2).

    Two CAs can share a subject (the old and the new sub-CA, a root and its cross-certificate);
    the AKI/SKI pair tells them apart before any signature is checked.
    """
    try:
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        ski = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return True
    return aki is None or aki == ski


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """True when ``parent``'s subject is ``child``'s issuer, the key identifiers agree and ``parent``'s key
    signed ``child`` (RFC 5280 6.1.3 (a)(1) and (a)(4))."""
    if child.issuer != parent.subject or not _key_ids_agree(child, parent):
        return False
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # noqa: BLE001 - wrong key type, bad signature: not the issuer
        return False
    return True


def is_cross_certificate(cert: x509.Certificate, pool: Iterable[x509.Certificate]) -> bool:
    """A cross-certificate: not self-signed, and a self-signed root in ``pool`` has its subject and key.

    That is what Hongkong Post's "Root CA 3" cross-signed by GlobalSign is (guide, section C step 7):
    the same CA, vouched for by another root. An issuing CA is never one, whatever its subject.
    """
    if is_self_signed(cert) or cert.issuer == cert.subject:
        return False
    key = cert.public_key()
    return any(r.subject == cert.subject and is_self_signed(r) and r.public_key() == key for r in pool)


def _rank(cert: x509.Certificate, now: datetime | None) -> tuple[int, float]:
    """Prefer a CA certificate valid at ``now``, then the one that lasts longest (a renewed sub-CA)."""
    valid = now is None or cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    return (0 if valid else 1, -cert.not_valid_after_utc.timestamp())


def _parents(
    current: x509.Certificate, pool: Sequence[x509.Certificate], now: datetime | None
) -> list[x509.Certificate]:
    return sorted((c for c in pool if c != current and issued_by(current, c)), key=lambda c: _rank(c, now))


def order_chain(
    leaf: x509.Certificate, pool: Iterable[x509.Certificate], *, now: datetime | None = None
) -> list[x509.Certificate]:
    """The intermediates a server sends after ``leaf``, in order, stopping before a self-signed root.

    Cross-certificates are not chosen here when their root is known (a cross-certificate and its root
    share a subject and key); see :func:`cross_certificate_for`. Candidates that are roots end the chain.
    """
    return list(build_chain(leaf, pool, now=now).intermediates)


@dataclass(frozen=True)
class ChainPlan:
    """The chain a server should send after its certificate, and whether it reaches a root.

    ``intermediates`` exclude the root; ``cross`` is a real cross-certificate for the top of the chain
    when one is installed (it is not in ``intermediates``); ``root`` is the self-signed certificate the
    walk ended at; ``missing`` names the issuer that could not be found when the chain stops short of a
    root.
    """

    intermediates: tuple[x509.Certificate, ...]
    complete: bool
    cross: x509.Certificate | None = None
    missing: x509.Name | None = None
    root: x509.Certificate | None = None

    def served(self, *, with_cross: bool) -> list[x509.Certificate]:
        """The certificates after the leaf, with the cross-certificate appended when asked and known."""
        chain = list(self.intermediates)
        if with_cross and self.cross is not None:
            chain.append(self.cross)
        return chain

    def backup(self) -> list[x509.Certificate]:
        """The whole certification path for a PFX backup: intermediates, cross-certificate, root.

        Like Windows' "include all certificates in the certification path", so a restore into an
        empty store can deploy again; restoring never makes the root trusted (see ``ecert import``).
        """
        return [*self.served(with_cross=True), *([self.root] if self.root is not None else [])]

    def gap(self, label: str) -> str:
        """What is missing, in words: the start of the refusal and of the override's warning."""
        issuer = _cn(self.missing) if self.missing is not None else "its issuer"
        return f"the chain of {label} is incomplete: the CA certificate {issuer!r} is not installed"

    def refusal(self, label: str) -> ClientError:
        """One sentence saying which CA certificate to install, for deploy and export to raise."""
        return ClientError(
            f"{self.gap(label)}; get it from the CA and run 'ecert ca install FILE' "
            "(or pass --allow-incomplete-chain to go on without it)",
            rule="RFC 5246 7.4.2",
            value=_cn(self.missing) if self.missing is not None else None,
        )


def _cn(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()


def build_chain(leaf: x509.Certificate, pool: Iterable[x509.Certificate], *, now: datetime | None = None) -> ChainPlan:
    """Walk from ``leaf`` to a root through ``pool`` by subject, key identifiers and signature.

    The chain is complete when the walk ends at a self-signed certificate in ``pool`` (a root the
    server need not send, RFC 5246 7.4.2), possibly through a cross-certificate to an older root when
    that root is the one installed. Any other end means an issuing CA is missing, and the server would
    send a chain clients cannot build.
    """
    candidates = [c for c in dict.fromkeys(pool) if c != leaf]
    chain: list[x509.Certificate] = []
    current = leaf
    complete = False
    root = None
    for _ in range(_MAX_DEPTH):
        parents = [p for p in _parents(current, candidates, now) if p not in chain]
        if not parents:
            break
        roots = [p for p in parents if is_self_signed(p)]
        if roots:
            complete, root = True, roots[0]  # the root ends the chain; it is never sent
            break
        parent = parents[0]
        chain.append(parent)
        current = parent
    cross = cross_certificate_for(current, candidates) if complete else None
    missing = None if complete else current.issuer
    return ChainPlan(intermediates=tuple(chain), complete=complete, cross=cross, missing=missing, root=root)


def cross_certificate_for(chain_top: x509.Certificate, pool: Iterable[x509.Certificate]) -> x509.Certificate | None:
    """A cross-certificate for ``chain_top``'s issuer: that issuer's subject and key, signed by another CA.

    Hongkong Post's "Root CA 3" is self-signed and also cross-signed by GlobalSign Root CA - R3
    (guide, section C step 7). Serving the cross-certificate lets clients that only trust the older
    root build a path; clients that trust Root CA 3 stop before it. The issuing CA of a leaf is never
    taken for one: a cross-certificate must have a self-signed twin in ``pool`` (same subject and key).
    """
    certs = list(pool)
    for cert in certs:
        if issued_by(chain_top, cert) and is_cross_certificate(cert, certs):
            return cert
    return None


def plan_for_live(store: LocalStore, entry: LiveEntry, *, now: datetime | None = None) -> ChainPlan:
    """The chain for an issued certificate as the store stands now, not as it stood at completion.

    The pool is every installed CA certificate plus what completion kept in ``chain.pem``, so a
    sub-CA or cross-certificate installed after ``ecert request complete`` is found.
    """
    return build_chain(entry.cert, [*entry.chain, *store.intermediates(), *store.roots()], now=now)


def refresh_live_chains(store: LocalStore, *, now: datetime | None = None) -> tuple[str, ...]:
    """Rewrite ``chain.pem``/``fullchain.pem`` of each live entry whose chain the installed CAs now extend.

    Called after ``ecert ca install``: a certificate completed before its issuing CA was installed
    gets the chain it lacked. A chain is only replaced by a complete one or by a longer one, never
    shortened, so a removed old sub-CA does not silently empty a working ``fullchain.pem``.
    """
    updated: list[str] = []
    for entry in store.live():
        plan = plan_for_live(store, entry, now=now)
        meta = {"chain_complete": plan.complete, "cross_available": plan.cross is not None}
        better = plan.complete or len(plan.intermediates) > len(entry.chain)
        if plan.intermediates != entry.chain and better:
            store.update_live_chain(entry.name, list(plan.intermediates), meta)
            updated.append(entry.name)
        elif any(entry.meta.get(k) != v for k, v in meta.items()):
            store.update_live_chain(entry.name, list(entry.chain), meta)  # e.g. a cross-certificate arrived
    return tuple(updated)
