"""Step 2: confirm the application data, or reject it (guide C.3), and the rejection pages of steps 2 and 5."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...core.application import Step
from ...core.errors import Conflict, EcertError
from .. import csrf
from . import steps
from .common import app_id_of, ctx_of, error_text, logout, redirect, render, services

router = APIRouter()

_REJECT_KINDS = ("application", "certificate")


_REJECT_STEP = {"application": Step.CONFIRM, "certificate": Step.CERTIFICATE}


def _confirm_page(request: Request, app_id: int, status_code: int = 200, **context: object) -> Response:
    """The data to confirm; once confirmed (Back from a later step) the same data read-only, with Continue."""
    view = steps.application(request, app_id)
    return render(
        request,
        "portal/confirm.html",
        status_code=status_code,
        app=view,
        confirmed=not steps.at_step(request, app_id, Step.CONFIRM),
        continue_url=steps.current_step(request, app_id),
        **context,
    )


@router.get("/portal/confirm")
def confirm_page(request: Request) -> Response:
    return _confirm_page(request, app_id_of(request))


@router.post("/portal/confirm")
async def confirm_submit(request: Request, action: str = Form("confirm")) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    if action == "reject":
        return redirect(request, "/portal/reject/application")
    try:
        services(request).applications.confirm_application(
            ctx_of(request), app_id, use_chinese=(action == "confirm_zh"), actor=steps.actor(request, app_id)
        )
    except Conflict:  # confirmed already (Back, reload, another tab): nothing changed, go on
        return steps.move_on(request, app_id, "already_confirmed")
    except EcertError as exc:
        return _confirm_page(request, app_id, status_code=min(exc.status, 409), error=error_text(exc))
    return redirect(request, steps.current_step(request, app_id))


@router.get("/portal/reject/{kind}")
def reject_page(request: Request, kind: str) -> Response:
    app_id = app_id_of(request)
    if kind not in _REJECT_KINDS:
        return render(request, "error.html", status_code=404, kind="not_found")
    if not steps.at_step(request, app_id, _REJECT_STEP[kind]):
        return steps.move_on(request, app_id)
    return render(request, "portal/reject.html", kind=kind, app=steps.application(request, app_id))


@router.post("/portal/reject/{kind}")
async def reject_submit(request: Request, kind: str, reason: str = Form("")) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    if kind not in _REJECT_KINDS:
        return render(request, "error.html", status_code=404, kind="not_found")
    reason = reason.strip()
    if not reason:
        return render(
            request,
            "portal/reject.html",
            status_code=400,
            kind=kind,
            reason_missing=True,
            app=steps.application(request, app_id),
        )
    apps, certs = services(request).applications, services(request).certificates
    try:
        if kind == "application":
            apps.reject_application(ctx_of(request), app_id, reason=reason[:1000], actor=steps.actor(request, app_id))
        else:
            certs.reject_certificate(ctx_of(request), app_id, reason=reason[:1000], actor=steps.actor(request, app_id))
    except Conflict:  # the step was left meanwhile (accepted in another tab, say): nothing was rejected
        return steps.move_on(request, app_id)
    except EcertError as exc:
        return render(
            request,
            "portal/reject.html",
            status_code=min(exc.status, 409),
            kind=kind,
            error=error_text(exc),
            app=steps.application(request, app_id),
        )
    logout(request)
    # Post/Redirect/Get: a reload of the result must not post the (now logged-out) form again.
    return redirect(request, f"/portal/rejected/{kind}")


@router.get("/portal/rejected/{kind}")
def rejected_page(request: Request, kind: str) -> Response:
    """What the rejection did; shown after the log-out, so it needs no session and shows no data."""
    if kind not in _REJECT_KINDS:
        return render(request, "error.html", status_code=404, kind="not_found")
    return render(request, "portal/rejected.html", kind=kind)


@router.get("/portal/closed")
def closed_page(request: Request) -> Response:
    """An application that was rejected or is finished: nothing more to do in the portal."""
    view = steps.application(request, app_id_of(request))
    return render(request, "portal/closed.html", app=view)
