"""Step 6: download the certificate (guide C.7) in every format, with the CA certificates and the ARL."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.errors import EcertError
from . import steps
from .common import SECURITY_HEADERS, app_id_of, ctx_of, redirect, render, services

router = APIRouter()

FORMATS = ("pem", "der", "p7b", "fullchain")


@router.get("/portal/download")
def download_page(request: Request) -> Response:
    app_id = app_id_of(request)
    svc = services(request)
    cert = svc.certificates.get_certificate(ctx_of(request), app_id)
    if cert is None or cert.state != "accepted":
        step = steps.current_step(request, app_id)
        # An accepted application whose certificate was revoked has nothing to download: a new CSR is next.
        return redirect(request, "/portal/csr" if step == "/portal/download" else step)
    try:
        links = svc.downloads.certificate_links(ctx_of(request), app_id)
    except EcertError:
        links = None
    return render(request, "portal/download.html", app=steps.application(request, app_id), cert=cert,
                  formats=FORMATS, links=links)


@router.get("/portal/download/{fmt}")
def download_file(request: Request, fmt: str) -> Response:
    app_id = app_id_of(request)
    if fmt not in FORMATS:
        return render(request, "error.html", status_code=404, kind="not_found")
    try:
        item = services(request).downloads.download(ctx_of(request), app_id, fmt,
                                                    actor=steps.actor(request, app_id), channel="portal")
    except EcertError as exc:
        if exc.status == 409:  # issued but not accepted yet (seed C.6 comes before C.7)
            return render(request, "error.html", status_code=409, kind="not_accepted")
        return render(request, "error.html", status_code=404, kind="not_found")
    return attachment(item)


def attachment(item: object) -> Response:
    """A service ``Download`` as a file the browser saves under the name the service chose."""
    filename = str(getattr(item, "filename", "certificate")).replace('"', "").replace("\\", "")
    headers = dict(SECURITY_HEADERS)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(item.data, media_type=str(item.media_type), headers=headers)
