"""The subscriber revokes its own certificate from the portal (BR 4.9.2, BR 7.2.2; issue 5 point 1).

A logged-in subscriber chooses one of the reasons BR 7.2.2 lets a subscriber give, ticks that it
understands this cannot be undone, and posts the form (CSRF-protected, no JavaScript needed). The page
calls ``ecert.services.revocation.revoke_for_application`` and nothing else: the service revokes, blocks a
compromised key and republishes the CRL and OCSP before it returns. The subscription stays open, so the
result page leads to a new CSR.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...core.errors import Conflict, EcertError, NotFound, PolicyViolation
from ...core.lifecycle import CertStatus
from .. import csrf
from . import steps
from .common import app_id_of, ctx_of, redirect, render, services

__all__ = ["router", "SUBSCRIBER_REASONS", "SESSION_RESULT"]

router = APIRouter()

# BR 7.2.2: the reasons a subscriber may choose. privilegeWithdrawn is the CA's own finding (the
# subscriber broke its agreement) and is never offered here; "unspecified" and certificateHold are
# forbidden on any entry. The order is the order of the select box.
SUBSCRIBER_REASONS = ("keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged")

# What the last revocation of this session changed, for the result page after the redirect
# (Post/Redirect/Get) and for telling "already revoked" apart from "never had a certificate".
SESSION_RESULT = "revoked"


def _revocation(request: Request) -> Any:
    """The revocation service module, or a test fake's ``revocation`` attribute (see ``common.services``)."""
    found = getattr(services(request), "revocation", None)
    return found if found is not None else importlib.import_module("ecert.services.revocation")


def _revocable(request: Request, app_id: int) -> Any:
    """The accepted certificate the subscriber may revoke here, or None.

    A certificate still waiting for acceptance is rejected on the certificate page instead (seed C.6):
    rejection already revokes it and returns the application to the CSR step.
    """
    cert = services(request).certificates.get_certificate(ctx_of(request), app_id)
    return cert if cert is not None and cert.state == CertStatus.ACCEPTED else None


def _form(request: Request, app_id: int, status_code: int = 200, **context: Any) -> Response:
    cert = _revocable(request, app_id)
    refusal = context.pop("refusal", None)
    if cert is None and refusal is None:
        pending = services(request).certificates.get_certificate(ctx_of(request), app_id)
        if pending is not None:
            refusal = "not_accepted"
        elif request.session.get(SESSION_RESULT):
            refusal = "already_revoked"
        else:
            refusal = "no_certificate"
    return render(
        request,
        "portal/revoke.html",
        status_code=status_code,
        app=steps.application(request, app_id),
        cert=cert,
        reasons=SUBSCRIBER_REASONS,
        refusal=refusal,
        **context,
    )


@router.get("/portal/revoke")
def revoke_page(request: Request) -> Response:
    return _form(request, app_id_of(request))


@router.post("/portal/revoke")
async def revoke_submit(request: Request, reason: str = Form(""), confirm: str = Form("")) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    reason = reason.strip()
    if reason not in SUBSCRIBER_REASONS:
        # An empty choice, privilegeWithdrawn, unspecified or anything typed by hand (BR 7.2.2).
        return _form(request, app_id, status_code=400, reason_invalid=bool(reason), reason_missing=not reason)
    if confirm != "yes":
        return _form(request, app_id, status_code=400, confirm_missing=True, chosen=reason)
    cert = _revocable(request, app_id)
    if cert is None:
        return _form(request, app_id, status_code=409)
    try:
        result = _revocation(request).revoke_for_application(
            ctx_of(request), app_id, reason, actor=steps.actor(request, app_id)
        )
    except NotFound:  # revoked meanwhile (another tab, the API): the page says which
        return _form(request, app_id, status_code=409)
    except Conflict:
        return _form(request, app_id, status_code=409, refusal="already_revoked")
    except PolicyViolation:
        return _form(request, app_id, status_code=400, reason_invalid=True)
    except EcertError:
        return _form(request, app_id, status_code=500, refusal="internal")
    request.session[SESSION_RESULT] = {
        "serial": cert.serial_hex,
        "names": list(cert.names_unicode or cert.names),
        "reason": result.reason or reason,
        "at": result.revoked_at.isoformat(),
        "others": max(0, len(result.revoked) - 1),
        "blocked": bool(result.blocked_spki),
        "published": bool(result.published),
    }
    return redirect(request, "/portal/revoked")


@router.get("/portal/revoked")
def revoked_page(request: Request) -> Response:
    """The result of this session's revocation; without one, the form (which explains why not)."""
    app_id_of(request)
    done = request.session.get(SESSION_RESULT)
    if not isinstance(done, dict):
        return redirect(request, "/portal/revoke")
    at = datetime.fromisoformat(str(done.get("at")))
    return render(request, "portal/revoked.html", done=done, revoked_at=at)
