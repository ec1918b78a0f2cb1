"""POST /api/v1/sessions: log in with server name, reference number and PIN; get a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from ...core.errors import LoginRefused, LoginSuspended
from ...services import applications as apps
from ..problems import problem
from .deps import bearer, client_addr, ctx_of
from .schemas import SessionIn, SessionOut

router = APIRouter(tags=["session"])


def _refused(exc: LoginRefused) -> JSONResponse:
    """401 with the tries left before suspension: the same for any reference number, known or not."""
    return problem(
        401,
        exc.code,
        exc.message,
        headers={"WWW-Authenticate": 'Bearer realm="ecert"'},
        tries_left=exc.tries_left,
        lockout_minutes=exc.lockout_minutes,
    )


def _suspended(exc: LoginSuspended) -> JSONResponse:
    """429 with Retry-After: how long the suspension still lasts, in seconds."""
    return problem(
        429,
        exc.code,
        str(exc),
        headers={"Retry-After": str(exc.retry_after)},
        rule=exc.rule,
        retry_after_seconds=exc.retry_after,
        limit=exc.scope,
    )


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    summary="Open a session (30 minutes, extended by use)",
    responses={
        401: {
            "description": "wrong server name, reference number or PIN; says how many tries "
            "are left (tries_left) before log-in is suspended"
        },
        429: {"description": "log-in suspended after too many failures; Retry-After says how long"},
    },
)
def open_session(body: SessionIn, request: Request) -> SessionOut | JSONResponse:
    ctx = ctx_of(request)
    try:
        app_id = apps.authenticate(
            ctx,
            server_name=body.server_name,
            reference_number=body.reference_number,
            pin=body.pin,
            client_addr=client_addr(request),
        )
    except LoginRefused as exc:
        return _refused(exc)
    except LoginSuspended as exc:
        return _suspended(exc)
    token = apps.open_session(ctx, app_id)
    return SessionOut(token=token.token, expires_at=token.expires_at)


@router.delete("/sessions/current", status_code=204, summary="End the session")
def close_session(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
) -> None:
    if creds is not None and creds.credentials:
        apps.end_session(ctx_of(request), creds.credentials)
