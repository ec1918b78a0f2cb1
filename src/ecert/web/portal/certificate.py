"""Step 5: the certificate information page (guide C.6): Accept, or Reject with a reason; later, Replace.

A replacement (a new key, a lost key, a renewal inside the subscription) is a deliberate act with its own
page (issue 10 point 3): the subscriber says what happens to the certificate in use (revoked as superseded
once the new one is issued, or left to expire) and pastes the new CSR; the page calls
``certificates.replace_certificate`` and nothing else.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...core.application import Step
from ...core.errors import Conflict, EcertError
from ...core.lifecycle import CertStatus
from ...services import sct_view
from .. import csrf
from . import steps
from .common import app_id_of, ctx_of, error_text, redirect, render, services

router = APIRouter()


def _page(request: Request, app_id: int, status_code: int = 200, **context: object) -> Response:
    svc = services(request)
    cert = svc.certificates.get_certificate(ctx_of(request), app_id)
    if cert is None:  # nothing issued yet (or the last one was rejected): the CSR step comes first
        return redirect(request, steps.current_step(request, app_id))
    return render(
        request,
        "portal/certificate.html",
        status_code=status_code,
        app=steps.application(request, app_id),
        cert=cert,
        ct=transparency(request, cert),
        **context,
    )


def transparency(request: Request, cert: Any) -> Any:
    """The certificate's SCTs (log, operator, time), shown on the page (issue 12: CT shown to people)."""
    view = getattr(services(request), "sct_view", sct_view)
    return view.certificate_transparency(ctx_of(request), cert.certificate_id)


@router.get("/portal/certificate")
def certificate_page(request: Request) -> Response:
    return _page(request, app_id_of(request))


@router.post("/portal/certificate")
async def certificate_accept(request: Request) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    try:
        services(request).certificates.accept_certificate(ctx_of(request), app_id, actor=steps.actor(request, app_id))
    except Conflict:  # accepted already (a reload, another tab) or rejected meanwhile: go where it is
        accepted = steps.at_step(request, app_id, Step.DOWNLOAD)
        return steps.move_on(request, app_id, "already_accepted" if accepted else "moved_on")
    except EcertError as exc:
        return _page(request, app_id, status_code=min(exc.status, 409), error=error_text(exc))
    return redirect(request, "/portal/download")


# --- Replace certificate ---------------------------------------------------------------------------

REPLACE_CHOICES = ("keep", "revoke")
MAX_CSR_CHARS = 64 * 1024


def in_use(request: Request, app_id: int) -> Any:
    """The accepted certificate still in use, or None: with one, a new CSR is a replacement, not a step."""
    cert = services(request).certificates.get_certificate(ctx_of(request), app_id)
    return cert if cert is not None and cert.state == CertStatus.ACCEPTED else None


def replace_page(request: Request, app_id: int, cert: Any, status_code: int = 200, **context: Any) -> Response:
    """The two choices for the certificate in use, and the CSR box (also shown when a CSR came to step 4)."""
    available = hasattr(services(request).certificates, "replace_certificate")
    context.setdefault("choice", "")
    return render(
        request,
        "portal/replace.html",
        status_code=status_code,
        app=steps.application(request, app_id),
        cert=cert,
        available=available,
        **context,
    )


@router.get("/portal/replace")
def replace_form(request: Request) -> Response:
    app_id = app_id_of(request)
    cert = in_use(request, app_id)
    if cert is None:  # nothing in use to replace (not accepted yet, or revoked): the current step says what to do
        return steps.move_on(request, app_id)
    return replace_page(request, app_id, cert)


def _replace_refusal(csr_text: str, current: str) -> dict[str, bool] | None:
    """What is missing from the form, as the page's flags; None when it can be sent to the service."""
    if current not in REPLACE_CHOICES:
        return {"choice_missing": True}
    if not csr_text.strip():
        return {"csr_missing": True}
    return None


@router.post("/portal/replace")
async def replace_submit(
    request: Request, csr_text: str = Form(""), current: str = Form(""), replaces: str = Form("")
) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    cert = in_use(request, app_id)
    if cert is None or replaces != cert.serial_hex:
        # The form was for a certificate that is no longer the one in use (replaced already: Back and Submit
        # again, a second tab): a stale form never issues another certificate.
        return steps.move_on(request, app_id, "already_replaced")
    csr_text = csr_text[: MAX_CSR_CHARS + 1]
    missing = _replace_refusal(csr_text, current)
    if missing is not None:
        return replace_page(request, app_id, cert, status_code=400, csr_text=csr_text, choice=current, **missing)
    try:
        services(request).certificates.replace_certificate(
            ctx_of(request), app_id, csr_text, revoke_current=current == "revoke", actor=steps.actor(request, app_id)
        )
    except Conflict:  # replaced meanwhile (another tab, a reload): go where the application is
        return steps.move_on(request, app_id)
    except EcertError as exc:
        internal = exc.status >= 500
        return replace_page(
            request,
            app_id,
            cert,
            status_code=500 if internal else exc.status,
            csr_text=csr_text,
            choice=current,
            error=None if internal else error_text(exc),
            internal_error=internal,
        )
    return redirect(request, "/portal/certificate")
