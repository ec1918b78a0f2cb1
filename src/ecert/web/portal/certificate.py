"""Step 5: the certificate information page (guide C.6): Accept, or Reject with a reason."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.errors import EcertError
from .. import csrf
from . import steps
from .common import app_id_of, ctx_of, error_text, redirect, render, services

router = APIRouter()


def _page(request: Request, app_id: int, status_code: int = 200, **context: object) -> Response:
    svc = services(request)
    cert = svc.certificates.get_certificate(ctx_of(request), app_id)
    if cert is None:  # nothing issued yet (or the last one was rejected): the CSR step comes first
        return redirect(request, steps.current_step(request, app_id))
    return render(request, "portal/certificate.html", status_code=status_code,
                  app=steps.application(request, app_id), cert=cert, **context)


@router.get("/portal/certificate")
def certificate_page(request: Request) -> Response:
    return _page(request, app_id_of(request))


@router.post("/portal/certificate")
async def certificate_accept(request: Request) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    try:
        services(request).certificates.accept_certificate(ctx_of(request), app_id, actor=steps.actor(request, app_id))
    except EcertError as exc:
        return _page(request, app_id, status_code=min(exc.status, 409), error=error_text(exc))
    return redirect(request, "/portal/download")
