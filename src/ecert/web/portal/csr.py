"""Step 4: paste the CSR and submit it (guide C.5); a refusal says what is wrong and what to do.

After a certificate was accepted, pasting a CSR here would make a second certificate by accident (issue 10
point 3): the page explains that a replacement is a deliberate act and leads to the Replace pages
(``portal/certificate.py``) instead. A form posted from a step the application has left (Back, reload,
another tab) goes on to where the application is.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...core.application import Step
from ...core.errors import Conflict, EcertError
from .. import csrf
from . import steps
from .certificate import in_use, replace_page
from .common import app_id_of, ctx_of, error_text, redirect, render, services

router = APIRouter()

# The CSR box holds one PEM request; the services cap it too (BR 6.1.5 keys fit easily in 64 KiB).
MAX_CSR_CHARS = 64 * 1024


def _page(request: Request, app_id: int, status_code: int = 200, **context: object) -> Response:
    return render(
        request,
        "portal/csr.html",
        status_code=status_code,
        app=steps.application(request, app_id),
        dcv=services(request).enrolment.dcv_required(ctx_of(request), app_id),
        **context,
    )


@router.get("/portal/csr")
def csr_page(request: Request) -> Response:
    app_id = app_id_of(request)
    if steps.at_step(request, app_id, Step.DOWNLOAD):
        cert = in_use(request, app_id)
        if cert is not None:
            return replace_page(request, app_id, cert, from_csr=True)
        return _page(request, app_id)  # the accepted certificate was revoked: a new CSR is the next step
    if not steps.at_step(request, app_id, Step.CSR):
        return steps.move_on(request, app_id)
    return _page(request, app_id)


@router.post("/portal/csr")
async def csr_submit(request: Request, csr_text: str = Form("")) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    cert = in_use(request, app_id)
    if cert is not None:  # Back to this step after Accept: never a second certificate by accident
        return replace_page(request, app_id, cert, status_code=409, from_csr=True, csr_text=csr_text[:MAX_CSR_CHARS])
    if not csr_text.strip():
        return _page(request, app_id, status_code=400, csr_missing=True)
    if len(csr_text) > MAX_CSR_CHARS:
        return _page(request, app_id, status_code=413, csr_too_big=True)
    try:
        services(request).certificates.submit_csr(ctx_of(request), app_id, csr_text, actor=steps.actor(request, app_id))
    except Conflict:  # issued already, or not at this step yet (another tab, a reload): go where it is
        return steps.move_on(request, app_id)
    except EcertError as exc:
        status = exc.status if exc.status < 500 else 500
        return _page(
            request,
            app_id,
            status_code=status,
            error=error_text(exc) if exc.status < 500 else None,
            internal_error=exc.status >= 500,
            csr_text=csr_text,
        )
    return redirect(request, "/portal/certificate")
