"""Synchronizer CSRF tokens for the portal's forms: one secret per session, a signed token per page.

The session keeps a random secret; every form carries ``itsdangerous``'s signature of it, so a token from
another session (or forged without the server key) fails, and a new secret at log-in voids old tokens.
Every unsafe request to the portal must present it (OWASP CSRF cheat sheet, "synchronizer token").
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

import anyio
from fastapi import HTTPException, Request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

__all__ = ["FIELD", "SESSION_KEY", "MAX_AGE", "CsrfFailure", "token_for", "rotate", "verify", "require_csrf"]

FIELD = "csrf_token"
SESSION_KEY = "csrf"
MAX_AGE = 4 * 60 * 60  # a form left open longer than this is refused; reload the page
_SALT = "ecert-portal-csrf"
_MESSAGE = "The form has expired or did not come from this site. Reload the page and try again."


class CsrfFailure(HTTPException):
    """403 for a missing, forged or stale token; the portal renders it as a page, the API never sees it.

    ``why`` says which (for the audit log, BR 5.4.1); the token itself is never kept.
    """

    def __init__(self, why: str = "invalid") -> None:
        super().__init__(403, _MESSAGE)
        self.why = why


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.portal_secret, salt=_SALT)


def rotate(session: dict[str, Any]) -> str:
    """Give the session a fresh secret (at log-in and log-out) and return it."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    return str(session[SESSION_KEY])


def token_for(request: Request) -> str:
    """The token to embed in a form of this session, creating the session secret if needed."""
    secret = request.session.get(SESSION_KEY) or rotate(request.session)
    return str(_serializer(request).dumps(secret))


def verify(request: Request, token: str | None) -> None:
    """Raise 403 unless ``token`` signs this session's secret and is recent enough."""
    secret = request.session.get(SESSION_KEY)
    if not token or not secret:
        raise CsrfFailure("missing" if not token else "no-session")
    try:
        value = _serializer(request).loads(token, max_age=MAX_AGE)
    except SignatureExpired:
        raise CsrfFailure("expired") from None
    except BadSignature:
        raise CsrfFailure("forged") from None
    if not isinstance(value, str) or not hmac.compare_digest(value, secret):
        raise CsrfFailure("other-session")


async def require_csrf(request: Request) -> None:
    """FastAPI dependency for every POST route of the portal: reads the form field and checks it.

    A refusal is audited (BR 5.4.1: failed attempts at the CA's systems) before the 403 goes out.
    """
    form = await request.form()
    token = form.get(FIELD)
    try:
        verify(request, token if isinstance(token, str) else None)
    except CsrfFailure as refused:
        await anyio.to_thread.run_sync(_audit, request, refused.why)
        raise


def _audit(request: Request, why: str) -> None:
    from ..services.refusals import record_refusal

    client = request.client.host if request.client else "unknown"
    record_refusal(
        request.app.state.ctx,
        event="csrf.refused",
        actor=f"client:{client}",
        subject=request.url.path,
        details={"method": request.method, "why": why},
    )
