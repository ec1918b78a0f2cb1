"""The public repository pages: CA certificates, Search and Download Certificate, notices and privacy.

Like the portal, these pages only render what ``ecert.services.downloads`` returns; the CA rows are
sorted and labelled here ("Effective from DD/MM/YYYY", old and new issuing CAs) for people to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..core import urls
from ..core.ca_lifecycle import CaStatus
from ..core.errors import EcertError
from .portal.common import ctx_of, error_text, render, services
from .routing import without_head

__all__ = ["router", "CaRow", "ca_rows", "fingerprints", "rollover_notice", "revocation_notice", "SEARCH_KINDS"]

router = APIRouter(include_in_schema=False)

SEARCH_KINDS = ("server_name", "serial", "reference")
PUBLIC_FORMATS = ("pem", "der", "p7b", "fullchain")
_SERIAL = re.compile(r"^[0-9a-f]{1,64}$")
MAX_QUERY = 255
ISSUING_ROLES = ("ov", "ev")


@dataclass(frozen=True)
class CaRow:
    """One CA as the pages list it, with the links people download from."""

    label: str
    role: str
    name: str
    effective_from: datetime | None
    not_after: datetime | None
    crt_url: str
    pem_url: str
    crl_url: str | None
    generation: str  # "current", "new" (not yet effective), "old" (superseded) or "" for roots/cross
    status: str = "active"
    revoked_at: datetime | None = None
    sha256: str = ""  # "AB:CD:..." of the certificate's DER, for people to compare (empty if unknown)
    crl_sha256: str = ""  # the same for its current CRL (issuing CA) or ARL (root)


def _field(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return default


def fingerprints(request: Request) -> dict[str, str]:
    """SHA-256 fingerprints of every published CA certificate, CRL and ARL, keyed by their site-relative URL.

    From ``ecert.services.trust``, the list ``/repository/index.json`` serves too, so the page and
    ``ecert ca fetch`` show the same values. A test's fake services without it get no fingerprints.
    """
    trust = getattr(services(request), "trust", None)
    if trust is None and getattr(request.app.state, "portal_services", None) is None:
        from ..services import trust
    if trust is None:
        return {}
    try:
        items = trust.trust_items(ctx_of(request))
    except EcertError:
        return {}
    out = {}
    for item in items:
        out[item.url] = item.fingerprint
        if item.der_url:
            out[item.der_url] = item.fingerprint
    return out


def ca_rows(request: Request) -> list[CaRow]:
    """The CA certificates from the services, issuing CAs labelled old, current or new by effective date."""
    ctx = ctx_of(request)
    links = list(services(request).downloads.ca_links(ctx))
    now = ctx.clock()
    rows: list[CaRow] = []
    prints = fingerprints(request)
    newest: dict[str, datetime] = {}
    for link in links:
        role = str(_field(link, "role", default=""))
        eff = _field(link, "effective_from")
        if role in ISSUING_ROLES and eff is not None and eff <= now and (role not in newest or eff > newest[role]):
            newest[role] = eff
    for link in links:
        label = str(_field(link, "label"))
        role = str(_field(link, "role", default=""))
        eff = _field(link, "effective_from")
        generation = ""
        if role in ISSUING_ROLES:
            if eff is not None and eff > now:
                generation = "new"
            elif eff is not None and newest.get(role) == eff:
                generation = "current"
            else:
                generation = "old"
        crl = _field(link, "crl_url")
        if crl is None and role in ISSUING_ROLES:
            crl = urls.crl_path(label)
        elif crl is None and role == "root":
            crl = urls.arl_path(label)
        pem_url = str(_field(link, "pem_url", default=urls.ca_cert_path(label, "pem")))
        rows.append(
            CaRow(
                label=label,
                role=role,
                name=str(_field(link, "common_name", "name", default=label)),
                effective_from=eff,
                not_after=_field(link, "not_after"),
                crt_url=str(_field(link, "crt_url", "url", default=urls.ca_cert_path(label, "crt"))),
                pem_url=pem_url,
                crl_url=crl,
                generation=generation,
                status=str(_field(link, "status", default="active")),
                revoked_at=_field(link, "revoked_at"),
                sha256=prints.get(pem_url, ""),
                crl_sha256=prints.get(crl or "", ""),
            )
        )
    order = {"root": 0, "cross": 1, "ov": 2, "ev": 3}
    rows.sort(key=lambda r: (order.get(r.role, 9), -(r.effective_from.timestamp() if r.effective_from else 0)))
    return rows


def rollover_notice(request: Request) -> datetime | None:
    """The date new issuing CAs took (or take) over: the log-in page's notice (seed C.2).

    Only when a role has more than one generation; a single generation has nothing to switch from.
    """
    try:
        rows = ca_rows(request)
    except (EcertError, ModuleNotFoundError):
        return None
    dates = []
    for role in ISSUING_ROLES:
        generations = [r for r in rows if r.role == role]
        if len(generations) > 1:
            dates += [
                r.effective_from
                for r in generations
                if r.effective_from is not None and r.generation in ("current", "new")
            ]
    return max(dates) if dates else None


def revocation_notice(request: Request) -> datetime | None:
    """When retired Sub CAs are scheduled to be revoked (the seed's "will be revoked before <date>" line)."""
    try:
        rows = ca_rows(request)
    except (EcertError, ModuleNotFoundError):
        return None
    now = ctx_of(request).clock()
    dates = [
        r.revoked_at
        for r in rows
        if r.role in ISSUING_ROLES and r.status == CaStatus.RETIRED and r.revoked_at is not None and r.revoked_at > now
    ]
    return min(dates) if dates else None


@router.get("/repository")
@router.get("/repository/")
def repository_page(request: Request) -> Response:
    from .repository import INDEX_PATH

    return render(request, "public/repository.html", cas=ca_rows(request), index_path=INDEX_PATH)


@router.get("/search")
def search_page(request: Request, by: str = "server_name", q: str = "") -> Response:
    """Search and Download Certificate: accepted certificates only, by name, serial or reference number."""
    if by not in SEARCH_KINDS:
        by = "server_name"
    query = q.strip()[:MAX_QUERY]
    hits: list[Any] | None = None
    error = None
    if query:
        try:
            hits = list(services(request).downloads.search_certificates(ctx_of(request), by=by, query=query))
        except EcertError as exc:
            error = error_text(exc)
            hits = []
    return render(
        request,
        "public/search.html",
        by=by,
        q=query,
        hits=hits,
        kinds=SEARCH_KINDS,
        error=error,
        formats=PUBLIC_FORMATS,
        status_code=400 if error else 200,
    )


@router.get("/search/download/{serial_hex}/{fmt}")
@without_head
def public_download(request: Request, serial_hex: str, fmt: str) -> Response:
    """A published certificate by serial; anything not a plain hex serial and a known format is 404."""
    from .portal.download import attachment

    serial = serial_hex.lower()
    if not _SERIAL.match(serial) or fmt not in PUBLIC_FORMATS:
        return render(request, "error.html", status_code=404, kind="not_found")
    try:
        item = services(request).downloads.public_download(
            ctx_of(request),
            serial,
            fmt,
            actor=f"public:{request.client.host if request.client else 'unknown'}",
            channel="search",
        )
    except EcertError:
        return render(request, "error.html", status_code=404, kind="not_found")
    return attachment(item)


@router.get("/notices")
def notices_page(request: Request) -> Response:
    return render(request, "public/notices.html")


@router.get("/privacy")
def privacy_page(request: Request) -> Response:
    return render(request, "public/privacy.html")
