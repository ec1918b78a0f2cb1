"""What a relying party needs to trust the chain: every published CA certificate, CRL and ARL, with fingerprints.

The repository pages show these fingerprints for people to compare, and ``/repository/index.json`` lists
them for ``ecert ca fetch``: one list, so the page, the index and the tool can never disagree. URLs are
site-relative, as on the pages (absolute URLs belong only in certificates).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from ..core import urls
from ..core.ca_lifecycle import CaStatus
from ..core.errors import EcertError, NotFound
from ..store import repo
from . import publication
from .context import Context

__all__ = ["INDEX_SCHEMA", "PUBLISHED_ROLES", "TrustItem", "ca_certificate_der", "index_document", "trust_items"]

INDEX_SCHEMA = 1
# Which CA rows a relying party is offered: our roots, the cross-certificates and the issuing CAs.
PUBLISHED_ROLES = ("root", "cross", "ov", "ev")


@dataclass(frozen=True)
class TrustItem:
    """One downloadable object: a CA certificate (``kind`` "certificate") or a CRL/ARL (``kind`` "crl"/"arl")."""

    kind: str
    label: str
    role: str
    name: str
    url: str
    sha256: str  # of the DER bytes, lower-case hex (what `openssl x509 -fingerprint -sha256` shows)
    status: str = "active"
    not_after: datetime | None = None  # certificates: notAfter; CRLs: nextUpdate
    der_url: str | None = None

    @property
    def fingerprint(self) -> str:
        """The SHA-256 as people compare it: upper-case pairs joined by colons."""
        return ":".join(self.sha256[i : i + 2] for i in range(0, len(self.sha256), 2)).upper()


def _cn(cert: x509.Certificate, default: str) -> str:
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else default


def ca_certificate_der(ctx: Context, label: str) -> bytes:
    """The DER of the CA certificate ``label`` (the AIA caIssuers target), or NotFound.

    Kept in memory once read: a label's certificate never changes, and it stays servable while the
    database is unreachable (issue 10 point 7).
    """
    known = ctx.memo.ca_der
    if label in known:
        return known[label]
    with ctx.read() as session:
        row = repo.get_ca_by_label(session, label)
        if row is None:
            raise NotFound("no such CA certificate", value=label)
        known[label] = bytes(row.cert_der)
        return known[label]


def _certificate_items(ctx: Context) -> list[tuple[TrustItem, str]]:
    """The published CA certificates, each with the label of the CRL it stands behind ("" for a cross)."""
    with ctx.read() as session:
        rows = [ca for ca in repo.list_cas(session) if ca.role in PUBLISHED_ROLES and ca.status != CaStatus.REVOKED]
        out = []
        for ca in rows:
            cert = x509.load_der_x509_certificate(ca.cert_der)
            item = TrustItem(
                kind="certificate",
                label=ca.label,
                role=ca.role,
                name=_cn(cert, ca.label),
                url=urls.ca_cert_path(ca.label, "pem"),
                der_url=urls.ca_cert_path(ca.label, "crt"),
                sha256=hashlib.sha256(ca.cert_der).hexdigest(),
                status=ca.status,
                not_after=ca.not_after,
            )
            out.append((item, ca.label if ca.role != "cross" else ""))
        return out


def _crl_item(ctx: Context, ca: TrustItem) -> TrustItem | None:
    """The current CRL of an issuing CA or the ARL of a root; None when it cannot be had (said on the page)."""
    arl = ca.role == "root"
    try:
        row = publication.current_crl(ctx, ca.label, arl=arl)
    except EcertError:
        return None
    return TrustItem(
        kind="arl" if arl else "crl",
        label=ca.label,
        role=ca.role,
        name=f"{ca.name} {'ARL' if arl else 'CRL'}",
        url=urls.arl_path(ca.label) if arl else urls.crl_path(ca.label),
        sha256=hashlib.sha256(row.der).hexdigest(),
        not_after=row.next_update,
    )


def trust_items(ctx: Context, *, with_crls: bool = True) -> list[TrustItem]:
    """Every CA certificate that is published, then the CRL of each issuing CA and the ARL of each root."""
    certs = _certificate_items(ctx)
    items = [item for item, _ in certs]
    if with_crls:
        for item, crl_label in certs:
            if crl_label and item.role in (*publication.ISSUING_ROLES, "root"):
                crl = _crl_item(ctx, item)
                if crl is not None:
                    items.append(crl)
    return items


def index_document(ctx: Context) -> dict[str, Any]:
    """``/repository/index.json``: what ``ecert ca fetch`` installs, each entry with its role, URL and SHA-256."""

    def entry(i: TrustItem) -> dict[str, Any]:
        data: dict[str, Any] = {"label": i.label, "role": i.role, "name": i.name, "url": i.url, "sha256": i.sha256}
        if i.kind == "certificate":
            data.update(der_url=i.der_url, status=i.status, not_after=i.not_after.isoformat() if i.not_after else None)
        else:
            data.update(kind=i.kind, next_update=i.not_after.isoformat() if i.not_after else None)
        return data

    items = trust_items(ctx)
    return {
        "schema": INDEX_SCHEMA,
        "certificates": [entry(i) for i in items if i.kind == "certificate"],
        "crls": [entry(i) for i in items if i.kind != "certificate"],
    }
