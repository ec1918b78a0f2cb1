"""POST /api/v1/sessions: log in with server name, reference number and PIN; get a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from ...services import applications as apps
from .deps import bearer, client_addr, ctx_of
from .schemas import SessionIn, SessionOut

router = APIRouter(tags=["session"])


@router.post("/sessions", status_code=201, response_model=SessionOut,
             summary="Open a session (30 minutes, extended by use)",
             responses={401: {"description": "wrong server name, reference number or PIN"},
                        429: {"description": "too many failed attempts"}})
def open_session(body: SessionIn, request: Request) -> SessionOut:
    ctx = ctx_of(request)
    app_id = apps.authenticate(ctx, server_name=body.server_name, reference_number=body.reference_number,
                               pin=body.pin, client_addr=client_addr(request))
    token = apps.open_session(ctx, app_id)
    return SessionOut(token=token.token, expires_at=token.expires_at)


@router.delete("/sessions/current", status_code=204, summary="End the session")
def close_session(request: Request,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> None:
    if creds is not None and creds.credentials:
        apps.end_session(ctx_of(request), creds.credentials)
