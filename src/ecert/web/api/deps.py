"""Shared pieces of the REST API: the context, bearer sessions, the operator token, the client address."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ...core.errors import Forbidden, Unauthorized
from ...services import applications as apps
from ...services.context import Context
from .. import lanes

__all__ = ["ctx_of", "client_addr", "SessionApp", "SessionToken", "Operator", "bearer"]

bearer = HTTPBearer(auto_error=False, description="A session token from POST /api/v1/sessions")
operator_bearer = HTTPBearer(
    auto_error=False, scheme_name="OperatorToken", description="The operator API token (ECERT_OPERATOR_TOKEN)"
)


def ctx_of(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def session_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> str:
    """The bearer token as sent, not yet checked: for a read that checks it in the same step as it reads."""
    if creds is None or not creds.credentials:
        raise Unauthorized("Send a session token: Authorization: Bearer <token> (POST /api/v1/sessions).")
    return creds.credentials


async def session_app(request: Request, token: Annotated[str, Depends(session_token)]) -> int:
    """The application id bound to the bearer token (sliding 30-minute sessions), in the quick-read lane."""
    return await lanes.quick(apps.resolve_session, ctx_of(request), token)


def operator(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(operator_bearer)] = None
) -> str:
    """The operator's token must match ECERT_OPERATOR_TOKEN (compared as SHA-256, in constant time)."""
    expected = (getattr(request.app.state, "env", {}) or {}).get("ECERT_OPERATOR_TOKEN")
    if not expected:
        raise Forbidden("The operator API is disabled: ECERT_OPERATOR_TOKEN is not set.")
    if creds is None or not creds.credentials:
        raise Unauthorized("Send the operator token: Authorization: Bearer <token>.")
    given = hashlib.sha256(creds.credentials.encode()).digest()
    if not hmac.compare_digest(given, hashlib.sha256(expected.encode()).digest()):
        raise Unauthorized("The operator token is not correct.")
    return "operator:api"


SessionApp = Annotated[int, Depends(session_app)]
SessionToken = Annotated[str, Depends(session_token)]
Operator = Annotated[str, Depends(operator)]
