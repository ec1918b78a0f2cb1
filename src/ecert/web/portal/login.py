"""Step 1: log in with Server Name, Reference Number and e-Cert PIN (guide C.2)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...core.errors import EcertError, LoginRefused, LoginSuspended
from .. import csrf, public_pages
from . import steps
from .common import app_id_of, client_addr, ctx_of, login, logout, redirect, render, services

router = APIRouter()

_WHITESPACE = re.compile(r"\s+")
_EMPTY: Mapping[str, str] = {}


def _page(
    request: Request,
    status_code: int = 200,
    *,
    headers: Mapping[str, str] = _EMPTY,
    kept: Mapping[str, str] = _EMPTY,
    **context: object,
) -> Response:
    """The log-in page; ``kept`` is what the form shows again after a refusal (never the PIN)."""
    rollover = public_pages.rollover_notice(request)
    revoke_by = public_pages.revocation_notice(request)
    response = render(
        request, "portal/login.html", status_code=status_code, rollover=rollover, revoke_by=revoke_by, **kept, **context
    )
    response.headers.update(headers)
    return response


@router.get("/portal")
@router.get("/portal/")
def portal_home(request: Request) -> Response:
    """The link in the e-mail lands here: the current step when logged in, the log-in page otherwise."""
    return redirect(request, steps.current_step(request, app_id_of(request)))


@router.get("/portal/login")
def login_page(request: Request) -> Response:
    return _page(request)


@router.post("/portal/login")
async def login_submit(
    request: Request, server_name: str = Form(""), reference_number: str = Form(""), pin: str = Form("")
) -> Response:
    await csrf.require_csrf(request)
    svc = services(request)
    kept = {"server_name": server_name, "reference_number": reference_number}
    try:
        app_id = svc.applications.authenticate(
            ctx_of(request),
            server_name=server_name.strip(),
            reference_number=_WHITESPACE.sub("", reference_number),
            pin=_WHITESPACE.sub("", pin),
            client_addr=client_addr(request),
        )
    except LoginSuspended as exc:
        return _page(
            request,
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
            login_error="locked",
            lock_minutes=max(1, -(-exc.retry_after // 60)),
            lock_scope=exc.scope,
            kept=kept,
        )
    except LoginRefused as exc:
        return _page(
            request,
            status_code=401,
            login_error="wrong",
            tries_left=exc.tries_left,
            lockout_minutes=exc.lockout_minutes,
            kept=kept,
        )
    except EcertError:
        return _page(request, status_code=401, login_error="wrong", kept=kept)
    login(request, int(app_id))
    return redirect(request, steps.current_step(request, int(app_id)))


@router.post("/portal/logout")
async def logout_submit(request: Request) -> Response:
    await csrf.require_csrf(request)
    logout(request)
    return redirect(request, "/portal/login")
