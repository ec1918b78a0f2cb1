"""Automatic renewal (ACME): the application's EAB credentials and accounts, and a new credential on request.

Issue 13 point 2. The page lists what ``services.acme_accounts.acme_overview`` returns and never changes
anything on GET. A new credential comes from a POST behind CSRF, and its HMAC key is shown in that POST's
own response only (``Cache-Control: no-store``): it is never stored in clear, never put in the session and
never shown again. Each form carries a random ``form_id``; the session remembers the last few it has used,
so reloading the response (the browser posts the form again) makes no second credential and shows the kid
of the first one, without its key.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ...core.acme_portal import MAX_UNUSED_PORTAL_EAB
from ...core.acme_rules import EAB_UNUSED_LIFETIME
from ...core.errors import EcertError
from ...services import acme_accounts
from .. import csrf
from . import steps
from .common import app_id_of, ctx_of, render

__all__ = ["router", "client_commands"]

router = APIRouter()

MADE_FORMS = "acme_eab_forms"  # session slot: {form_id: kid} of the forms this session already used
MADE_FORMS_KEPT = 5
WEBROOT = "/var/www/html"


def client_commands(directory: str, kid: str, hmac_key: str, names: tuple[str, ...], email: str) -> dict[str, str]:
    """Copy-paste lines for the clients admins use, filled with this credential (issue 13 point 2).

    A wildcard is validated only by dns-01 (issue 13 point 3), so its lines use DNS; other names use the web
    root, the method most servers can take without stopping.
    """
    wildcard = any(n.startswith("*.") for n in names)
    certbot_domains = " ".join(f"-d {n}" for n in names)
    lego_domains = " ".join(f"--domains {n}" for n in names)
    certbot_method = "--manual --preferred-challenges dns" if wildcard else f"--webroot -w {WEBROOT}"
    lego_method = "--dns manual" if wildcard else f"--http --http.webroot {WEBROOT}"
    return {
        "certbot_register": f"certbot register --server {directory} --eab-kid {kid} --eab-hmac-key {hmac_key} "
        f"--agree-tos --email {email}",
        "certbot_certonly": f"certbot certonly --server {directory} {certbot_method} {certbot_domains}",
        "lego": f"lego --server {directory} --eab --kid {kid} --hmac {hmac_key} --accept-tos --email {email} "
        f"{lego_domains} {lego_method} run",
        "caddy": "{\n"
        f"\tacme_ca {directory}\n"
        "\tacme_eab {\n"
        f"\t\tkey_id {kid}\n"
        f"\t\tmac_key {hmac_key}\n"
        "\t}\n"
        "}\n"
        f"{', '.join(names)} {{\n"
        f"\troot * {WEBROOT}\n"
        "\tfile_server\n"
        "}",
        "ecert_register": f"ecert acme register --server {directory} --eab-kid {kid} --eab-hmac-key {hmac_key} "
        f"--email {email}",
        "ecert_renew": "ecert renew --all",
    }


def _page(request: Request, app_id: int, status_code: int = 200, **context: Any) -> Response:
    overview = acme_accounts.acme_overview(ctx_of(request), app_id)
    return render(
        request,
        "portal/acme.html",
        status_code=status_code,
        app=steps.application(request, app_id),
        acme=overview,
        form_id=secrets.token_urlsafe(16),
        max_unused=MAX_UNUSED_PORTAL_EAB,
        unused_days=EAB_UNUSED_LIFETIME.days,
        **context,
    )


@router.get("/portal/acme")
def acme_page(request: Request) -> Response:
    return _page(request, app_id_of(request))


def _remember(request: Request, form_id: str, kid: str) -> None:
    """Keep the form's kid in the session (a cookie, not the database) so a re-post makes nothing."""
    made = dict(request.session.get(MADE_FORMS) or {})
    made[form_id] = kid
    request.session[MADE_FORMS] = dict(list(made.items())[-MADE_FORMS_KEPT:])


@router.post("/portal/acme")
async def acme_make(request: Request, form_id: str = Form("")) -> Response:
    await csrf.require_csrf(request)
    app_id = app_id_of(request)
    earlier = (request.session.get(MADE_FORMS) or {}).get(form_id) if form_id else None
    if earlier:  # a reload of the response: the credential exists, its key was shown once
        return _page(request, app_id, already_made=earlier)
    ctx = ctx_of(request)
    try:
        made = await run_in_threadpool(
            acme_accounts.make_eab_for_subscriber, ctx, app_id, actor=steps.actor(request, app_id)
        )
    except EcertError as exc:
        status = exc.status if exc.status < 500 else 500
        return _page(request, app_id, status_code=status, refused=True, internal_error=exc.status >= 500)
    if form_id:
        _remember(request, form_id, made.kid)
    overview = acme_accounts.acme_overview(ctx, app_id)
    commands = client_commands(overview.directory_url, made.kid, made.hmac_key, overview.names, overview.rep_email)
    return _page(request, app_id, made=made, commands=commands)
