"""What every portal page shares: the per-language template environments, the service facade, the session.

Pages never compute anything about certificates or applications: they call the service functions
(``ecert.services.applications``/``enrolment``/``downloads``) through :func:`services` and render the
values those return. Tests of the pages alone may put a fake facade on ``app.state.portal_services``.
"""

from __future__ import annotations

import importlib
import secrets
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ...core import dcv_rules, names
from ...core.errors import EcertError
from .. import csrf, i18n, messages

__all__ = [
    "SECURITY_HEADERS",
    "LoginRequired",
    "services",
    "ctx_of",
    "render",
    "redirect",
    "login",
    "logout",
    "app_id_of",
    "client_addr",
    "error_text",
    "template_env",
    "notify",
    "NOTICE",
]

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
SESSION_TOKEN = "token"
SESSION_ID = "sid"
# A one-time notice for the next page (Post/Redirect/Get): why the subscriber landed there, e.g. "already
# confirmed" after Back then Confirm. Only a short kind code is kept; the template words it.
NOTICE = "notice"

# CSP without inline script or style (issue 4 point 5): only our own vendored files run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """Raised by a step page reached without a portal session; answered with a redirect to the log-in page."""


def services(request: Request) -> Any:
    """The service modules (or a test's fake with the same attributes)."""
    fake = getattr(request.app.state, "portal_services", None)
    if fake is not None:
        return fake
    return SimpleNamespace(
        applications=importlib.import_module("ecert.services.applications"),
        enrolment=importlib.import_module("ecert.services.enrolment"),
        certificates=importlib.import_module("ecert.services.certificates"),
        downloads=importlib.import_module("ecert.services.downloads"),
    )


def ctx_of(request: Request) -> Any:
    return request.app.state.ctx


@cache
def template_env(lang: str) -> Environment:
    """One Jinja2 environment per language, so concurrent requests never swap each other's catalog."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(["html", "xml"], default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["dmy"] = i18n.dmy
    env.filters["unicode_name"] = unicode_name
    env.filters["base_domain"] = dcv_rules.dns_name_for_validation
    env.filters["subscription_years"] = subscription_years
    env.filters["validity_days"] = validity_days
    env.filters["spaced_hex"] = spaced_hex
    translations = i18n.translations(lang)
    env.filters["plain"] = lambda text: messages.plain(text, translations)
    env.filters["citation"] = lambda rule: messages.citation(rule, lang)
    return env


def unicode_name(name: str) -> str:
    """The U-label form of an IDN for display beside its A-label (``xn--...``); other names unchanged."""
    try:
        return names.to_unicode(name)
    except Exception:  # noqa: BLE001 - display only: an odd stored name is shown as stored
        return name


def subscription_years(app: Any) -> int:
    """The subscription period in whole years, as the guide prints it ("1-year")."""
    given = getattr(app, "subscription_years", None)
    if isinstance(given, int):
        return given
    days = int((app.subscription_end - app.subscription_start).days)
    return max(1, round(days / 365.25))


def validity_days(cert: Any) -> int:
    """The day count printed after the validity period ("05/01/2026 - 23/07/2026 (199 days)")."""
    given = getattr(cert, "validity_days", None)
    if isinstance(given, int):
        return given
    return int((cert.not_after.date() - cert.not_before.date()).days)


def spaced_hex(serial_hex: str) -> str:
    """``45169d08...`` as the guide prints it: byte pairs separated by spaces."""
    digits = str(serial_hex or "").lower().removeprefix("0x").replace(":", "").replace(" ", "")
    if len(digits) % 2:
        digits = "0" + digits
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _switch_url(request: Request, lang: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != i18n.LANG_PARAM]
    params.append((i18n.LANG_PARAM, lang))
    return f"{request.url.path}?{urlencode(params)}"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page in the negotiated language, with the CSRF token, the switch link and security headers."""
    lang = i18n.from_request(request)
    other = i18n.other_language(lang)
    env = template_env(lang)
    body = env.get_template(template).render(
        request=request,
        lang=lang,
        html_lang=i18n.html_lang(lang),
        switch_url=_switch_url(request, other),
        switch_label="中文" if other == "zh_HK" else "English",
        switch_lang=i18n.html_lang(other),
        csrf_field=csrf.FIELD,
        csrf_token=csrf.token_for(request),
        logged_in=SESSION_TOKEN in request.session,
        notice=request.session.pop(NOTICE, None) if "session" in request.scope else None,
        **context,
    )
    response = HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)
    _remember_language(request, response, lang)
    return response


def _remember_language(request: Request, response: Any, lang: str) -> None:
    """An explicit ``?lang=`` choice is kept in a cookie so the next page stays in that language."""
    if request.query_params.get(i18n.LANG_PARAM) and request.cookies.get(i18n.LANG_COOKIE) != lang:
        response.set_cookie(
            i18n.LANG_COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )


def redirect(request: Request, path: str) -> RedirectResponse:
    """303 See Other after a POST (the browser then GETs the next step)."""
    response = RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)
    _remember_language(request, response, i18n.from_request(request))
    return response


def login(request: Request, app_id: int) -> None:
    """Start a fresh session for ``app_id``: nothing from before the log-in survives (no fixation).

    The cookie carries only a server-side session token (``applications.open_session``), so a log-out or
    an expiry ends the session on the server too, whatever copy of the cookie exists.
    """
    token = services(request).applications.open_session(ctx_of(request), app_id)
    request.session.clear()
    request.session[SESSION_ID] = secrets.token_urlsafe(24)
    request.session[SESSION_TOKEN] = token.token
    csrf.rotate(request.session)


def logout(request: Request) -> None:
    token = request.session.get(SESSION_TOKEN)
    if isinstance(token, str):
        services(request).applications.end_session(ctx_of(request), token)
    request.session.clear()
    csrf.rotate(request.session)


def app_id_of(request: Request) -> int:
    """The application this session logged in to; LoginRequired when there is none or it has ended."""
    token = request.session.get(SESSION_TOKEN)
    if not isinstance(token, str):
        raise LoginRequired()
    try:
        return int(services(request).applications.resolve_session(ctx_of(request), token))
    except EcertError:
        request.session.pop(SESSION_TOKEN, None)
        raise LoginRequired() from None


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def notify(request: Request, kind: str) -> None:
    """Leave a one-time notice (a kind code the templates word) for the next page this session renders."""
    request.session[NOTICE] = kind


def error_text(exc: EcertError) -> dict[str, str]:
    """A refusal as the page shows it: the sentence, the rule it cites, the offending value, and its kind.

    ``message`` stays the service's English sentence; the templates say it through the ``plain`` filter
    (web/messages.py) in the page's language. ``kind`` names the sentence, so a page can add help (a names
    mismatch lists the names the application covers).
    """
    value = exc.value
    if isinstance(value, (list, tuple, set, frozenset)):
        value = ", ".join(str(v) for v in value)
    return {
        "message": exc.message,
        "rule": exc.rule or "",
        "value": "" if value is None else str(value),
        "kind": messages.kind_of(exc.message),
    }
