"""The subscriber portal: server-rendered pages, one step per page as in the user guide (section C).

``create_app`` includes :data:`router` and calls :func:`install`, which adds the session cookie, the
static files, the portal's own error pages and the public repository pages.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from .. import csrf, home, public_pages
from . import acme, certificate, confirm, csr, dcv, download, login, revoke, steps
from .common import SECURITY_HEADERS, TEMPLATES_DIR, LoginRequired

__all__ = ["router", "install", "SESSION_COOKIE", "SESSION_MAX_AGE"]

SESSION_COOKIE = "ecert_portal"
SESSION_MAX_AGE = 60 * 60  # an hour of inactivity ends the session; DCV may be resumed by logging in again

router = APIRouter(include_in_schema=False)
for _part in (login, confirm, dcv, csr, certificate, download, revoke, acme):
    router.include_router(_part.router)


def _session_secret(app: FastAPI) -> str:
    """The cookie-signing key from the variable the settings name; a random one per process otherwise."""
    settings = app.state.ctx.settings
    env = getattr(app.state, "env", {}) or {}
    return env.get(settings.session_secret_env) or secrets.token_urlsafe(32)


def install(app: FastAPI) -> None:
    """Add what the pages need around the app: sessions, static files, error pages, public pages."""
    secret = _session_secret(app)
    app.state.portal_secret = secret
    https = app.state.ctx.settings.base_url.startswith("https://")
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=https,
    )
    app.mount("/static", StaticFiles(directory=str(TEMPLATES_DIR.parent / "static")), name="static")
    app.include_router(public_pages.router)
    home.install(app)
    app.include_router(home.router)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/portal/login", status_code=303, headers=SECURITY_HEADERS)

    @app.exception_handler(csrf.CsrfFailure)
    async def _csrf_failed(request: Request, exc: csrf.CsrfFailure) -> Response:
        return steps.csrf_refused(request)
