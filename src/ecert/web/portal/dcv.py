"""Step 3: domain control validation (guide C.4): choose a method, follow its instructions, confirm.

Every action is a plain form (no script needed). The GET page only shows where the step stands (the
method last chosen and its live instructions); everything that makes a code, switches the method, mails
a code or checks is a POST behind the CSRF token, answered with a redirect back to the GET page (so a
reload repeats nothing). The applicant may leave and come back: codes live for 30 days (BR 3.2.2.4.18).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...core.errors import EcertError
from .. import csrf
from . import steps
from .common import SECURITY_HEADERS, app_id_of, ctx_of, error_text, redirect, render, services

router = APIRouter()

METHODS = ("http_file", "dns", "email")


def _page(request: Request, app_id: int, status_code: int = 200, **context: Any) -> Response:
    """The page as the step stands now; ``context`` adds a result table or an error of the POST just made."""
    state = services(request).enrolment.dcv_state(ctx_of(request), app_id)
    chosen = state.method.value if state.method is not None else ""
    values: dict[str, Any] = {
        "chosen": chosen,
        "challenges": list(state.challenges),
        "sent": state.email_sent_to,
        "exempt": state.exempt,
    }
    values.update(context)
    return render(
        request,
        "portal/dcv.html",
        status_code=status_code,
        app=steps.application(request, app_id),
        methods=[o.method.value for o in state.offers],
        warnings={o.method.value: o.warning for o in state.offers},
        **values,
    )


@router.get("/portal/dcv")
def dcv_page(request: Request) -> Response:
    """The method choice and the chosen method's instructions per domain. Reads only."""
    app_id = app_id_of(request)
    state = services(request).enrolment.dcv_state(ctx_of(request), app_id)
    if not state.needed and not state.exempt:
        return redirect(request, steps.current_step(request, app_id))
    return _page(request, app_id)


def _start(
    request: Request, app_id: int, method: str, local_part: str | None = None, adn: str | None = None
) -> Response:
    """Make ``method`` the current one (codes made or reused; an e-mail sent), then show the page again."""
    try:
        services(request).enrolment.dcv_start(
            ctx_of(request), app_id, method=method, email_local_part=local_part, email_domain=adn
        )
    except EcertError as exc:
        return _page(request, app_id, status_code=min(exc.status, 409), error=error_text(exc))
    return redirect(request, "/portal/dcv")


def _check(request: Request, app_id: int, method: str, email_code: str) -> Response:
    chosen = method if method in METHODS else None
    try:
        outcome = services(request).enrolment.dcv_check(
            ctx_of(request), app_id, email_code=email_code.strip() or None, method=chosen
        )
    except EcertError as exc:
        return _page(request, app_id, status_code=min(exc.status, 409), error=error_text(exc))
    return _page(
        request,
        app_id,
        chosen=chosen or "",
        outcome=outcome,
        results=list(outcome.results),
        passed=bool(outcome.passed),
    )


@router.post("/portal/dcv")
async def dcv_submit(
    request: Request,
    action: str = Form("start"),
    method: str = Form(""),
    email_address: str = Form(""),
    email_local_part: str = Form(""),
    email_code: str = Form(""),
) -> Response:
    """``start`` (choose a method), ``send`` (mail an e-mail code) or ``check`` (Confirm)."""
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    if action == "check":
        return _check(request, app_id, method, email_code)
    if action == "send" and method == "email":
        local_part, _, adn = (email_address or email_local_part).strip().partition("@")
        return _start(request, app_id, "email", local_part, adn or None)
    if method in METHODS:
        return _start(request, app_id, method)
    return redirect(request, "/portal/dcv")


@router.get("/portal/dcv/fileauth.txt")
def validation_file(request: Request, domain: str = "") -> Response:
    """The Validation File (BR 3.2.2.4.18), as a download: one file serves every name of the application.

    It only reads the code the Website Change method made: an application past DCV, or one that never
    chose that method, gets 404 and no challenge is created.
    """
    app_id = app_id_of(request)
    content = services(request).enrolment.validation_file(ctx_of(request), app_id, domain or None)
    if not content:
        return render(request, "error.html", status_code=404, kind="not_found")
    headers = dict(SECURITY_HEADERS)
    headers["Content-Disposition"] = 'attachment; filename="fileauth.txt"'
    return Response(content, media_type="text/plain; charset=utf-8", headers=headers)
