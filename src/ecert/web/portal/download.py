"""Step 6: download the certificate (guide C.7) in every format, with the CA certificates and the ARL."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.ca_lifecycle import CaStatus
from ...core.errors import EcertError
from ...core.lifecycle import CertStatus
from ..routing import without_head
from . import steps
from .common import SECURITY_HEADERS, app_id_of, ctx_of, redirect, render, services

router = APIRouter()

FORMATS = ("pem", "der", "p7b", "fullchain")


@router.get("/portal/download")
def download_page(request: Request) -> Response:
    app_id = app_id_of(request)
    svc = services(request)
    cert = svc.certificates.get_certificate(ctx_of(request), app_id)
    if cert is None or cert.state != CertStatus.ACCEPTED:
        step = steps.current_step(request, app_id)
        # An accepted application whose certificate was revoked has nothing to download: a new CSR is next.
        return redirect(request, "/portal/csr" if step == "/portal/download" else step)
    try:
        links = svc.downloads.certificate_links(ctx_of(request), app_id)
    except EcertError:
        links = None
    return render(
        request,
        "portal/download.html",
        app=steps.application(request, app_id),
        cert=cert,
        formats=FORMATS,
        links=links,
        trust=_trust_offer(request, links),
    )


def _trust_offer(request: Request, links: object) -> dict[str, object]:
    """What a relying party needs besides the chain (issue 10 point 14): the roots, the issuing CA's CRL, the ARL,
    each with its SHA-256, so someone who follows this page can run ``ecert verify`` successfully."""
    from ..public_pages import ca_rows, fingerprints

    prints = fingerprints(request)
    try:
        rows = [r for r in ca_rows(request) if r.role == "root" and r.status != CaStatus.REVOKED]
    except EcertError:
        rows = []
    issuer = getattr(links, "issuer", None)
    crl_url = getattr(issuer, "crl_url", None)
    return {"roots": rows, "prints": prints, "crl_url": crl_url, "crl_sha256": prints.get(crl_url or "", "")}


@router.get("/portal/download/{fmt}")
@without_head
def download_file(request: Request, fmt: str) -> Response:
    app_id = app_id_of(request)
    if fmt not in FORMATS:
        return render(request, "error.html", status_code=404, kind="not_found")
    try:
        item = services(request).downloads.download(
            ctx_of(request), app_id, fmt, actor=steps.actor(request, app_id), channel="portal"
        )
    except EcertError as exc:
        if exc.status == 409:  # issued but not accepted yet (seed C.6 comes before C.7)
            return render(request, "error.html", status_code=409, kind="not_accepted")
        return render(request, "error.html", status_code=404, kind="not_found")
    return attachment(item)


def attachment(item: Any) -> Response:
    """A service ``Download`` as a file the browser saves under the name the service chose."""
    filename = str(getattr(item, "filename", "certificate")).replace('"', "").replace("\\", "")
    headers = dict(SECURITY_HEADERS)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(item.data, media_type=str(item.media_type), headers=headers)
