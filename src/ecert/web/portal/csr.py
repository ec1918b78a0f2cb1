"""Step 4: paste the CSR and submit it (guide C.5); a refusal names the rule and the name at fault."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...core.errors import EcertError
from .. import csrf
from . import steps
from .common import app_id_of, ctx_of, error_text, redirect, render, services

router = APIRouter()

# The CSR box holds one PEM request; the services cap it too (BR 6.1.5 keys fit easily in 64 KiB).
MAX_CSR_CHARS = 64 * 1024


def _page(request: Request, app_id: int, status_code: int = 200, **context: object) -> Response:
    return render(request, "portal/csr.html", status_code=status_code, app=steps.application(request, app_id),
                  dcv=services(request).enrolment.dcv_required(ctx_of(request), app_id), **context)


@router.get("/portal/csr")
def csr_page(request: Request) -> Response:
    return _page(request, app_id_of(request))


@router.post("/portal/csr")
async def csr_submit(request: Request, csr_text: str = Form("")) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    if not csr_text.strip():
        return _page(request, app_id, status_code=400, csr_missing=True)
    if len(csr_text) > MAX_CSR_CHARS:
        return _page(request, app_id, status_code=413, csr_too_big=True)
    try:
        services(request).certificates.submit_csr(ctx_of(request), app_id, csr_text, actor=steps.actor(request, app_id))
    except EcertError as exc:
        status = exc.status if exc.status < 500 else 500
        return _page(request, app_id, status_code=status, error=error_text(exc) if exc.status < 500 else None,
                     internal_error=exc.status >= 500, csr_text=csr_text)
    return redirect(request, "/portal/certificate")
