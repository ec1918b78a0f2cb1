"""Step 3: domain control validation (guide C.4): choose a method, follow its instructions, confirm.

Every action is a plain form (no script needed). The applicant may leave and come back: the services
reuse a Validation Code for 30 days (BR 3.2.2.4.18), so ``/portal/dcv?method=dns`` shows the same
record each time. Only the e-mail method's "Send Validation Code" does something a reload must not
repeat, so it is a POST.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...core.errors import EcertError
from .. import csrf
from . import steps
from .common import SECURITY_HEADERS, app_id_of, ctx_of, error_text, redirect, render, services

router = APIRouter()

METHODS = ("http_file", "dns", "email")


def _method_of(offer: Any) -> str:
    method = getattr(offer, "method", offer)
    return str(getattr(method, "value", method))


def _page(request: Request, app_id: int, status_code: int = 200, **context: Any) -> Response:
    offers = list(services(request).enrolment.dcv_methods(ctx_of(request), app_id))
    context.setdefault("chosen", "")
    return render(request, "portal/dcv.html", status_code=status_code, app=steps.application(request, app_id),
                  methods=[_method_of(o) for o in offers],
                  warnings={_method_of(o): getattr(o, "warning", None) for o in offers}, **context)


def _not_needed(request: Request, app_id: int) -> bool:
    """True when no domain needs validating now (exempt, or every validation still reusable)."""
    enrol = services(request).enrolment
    ctx = ctx_of(request)
    if not enrol.dcv_required(ctx, app_id):
        return True
    needed = getattr(enrol, "dcv_needed", None)
    return needed is not None and not needed(ctx, app_id)


@router.get("/portal/dcv")
def dcv_page(request: Request, method: str = "", sent: str = "") -> Response:
    """The method choice, or the chosen method's instructions per domain (codes reused for 30 days).

    Opening a method's instructions makes it the one "Confirm" checks; the other method's code stays live.
    """
    app_id = app_id_of(request)
    if _not_needed(request, app_id):
        return redirect(request, steps.current_step(request, app_id))
    if method not in METHODS:
        return _page(request, app_id)
    try:
        challenges = services(request).enrolment.dcv_start(ctx_of(request), app_id, method=method)
    except EcertError as exc:
        return _page(request, app_id, status_code=min(exc.status, 409), error=error_text(exc))
    return _page(request, app_id, chosen=method, challenges=list(challenges), sent=sent[:320])


@router.post("/portal/dcv")
async def dcv_submit(request: Request, action: str = Form("start"), method: str = Form(""),
                     email_address: str = Form(""), email_local_part: str = Form(""),
                     email_code: str = Form("")) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    enrol = services(request).enrolment
    ctx = ctx_of(request)
    if action == "send" and method == "email":
        local_part, _, adn = (email_address or email_local_part).strip().partition("@")
        try:
            challenges = enrol.dcv_start(ctx, app_id, method="email", email_local_part=local_part,
                                         email_domain=adn or None)
        except EcertError as exc:
            try:
                listed = list(enrol.dcv_start(ctx, app_id, method="email"))
            except EcertError:
                listed = []
            return _page(request, app_id, status_code=min(exc.status, 409), chosen="email", challenges=listed,
                         error=error_text(exc))
        address = next((c.email_address for c in challenges if c.email_address), "")
        return redirect(request, f"/portal/dcv?{urlencode({'method': 'email', 'sent': address})}")
    if action == "check":
        chosen = method if method in METHODS else None
        try:
            outcome = enrol.dcv_check(ctx, app_id, email_code=email_code.strip() or None, method=chosen)
        except EcertError as exc:
            return _page(request, app_id, status_code=min(exc.status, 409), chosen="", error=error_text(exc))
        return _page(request, app_id, chosen=chosen or "", outcome=outcome,
                     results=list(outcome.results), passed=bool(outcome.passed))
    return redirect(request, f"/portal/dcv?method={method}" if method in METHODS else "/portal/dcv")


@router.get("/portal/dcv/fileauth.txt")
def validation_file(request: Request, domain: str = "") -> Response:
    """The Validation File for one domain (or the first), as a download (BR 3.2.2.4.18).

    It only reads the code the Website Change instructions made: an application past DCV, or one that
    never opened those instructions, gets 404 and no challenge is created.
    """
    app_id = app_id_of(request)
    content = services(request).enrolment.validation_file(ctx_of(request), app_id, domain or None)
    if not content:
        return render(request, "error.html", status_code=404, kind="not_found")
    headers = dict(SECURITY_HEADERS)
    headers["Content-Disposition"] = 'attachment; filename="fileauth.txt"'
    return Response(content, media_type="text/plain; charset=utf-8", headers=headers)
