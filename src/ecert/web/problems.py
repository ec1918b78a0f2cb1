"""RFC 9457 problem details: the one place where ecert's errors become HTTP answers for the API.

4xx problems carry the refusal's sentence and the rule it cites; 5xx problems carry a fixed sentence
only, so no internal detail (paths, SQL, stack traces) ever leaves the service.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import EcertError, RateLimited, Unauthorized

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "problem",
    "problem_for",
    "install",
    "TITLES",
    "BodyLimit",
    "body_limit",
    "error_page",
    "NeverReraise",
    "database_unavailable",
    "DB_ERRORS",
    "DB_RETRY_AFTER",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_INTERNAL = "The service could not complete the request; the event was logged."
_log = logging.getLogger("ecert.web")

TITLES: dict[str, str] = {
    "bad-csr": "The CSR cannot be used",
    "csr-too-large": "The CSR is too large",
    "bad-name": "A domain name is not acceptable",
    "bad-key": "The key is not acceptable",
    "policy": "The request conflicts with the policy",
    "lint-failed": "Internal error",
    "not-found": "Not found",
    "conflict": "Conflict with the current state",
    "unauthorized": "Not authenticated",
    "forbidden": "Forbidden",
    "rate-limited": "Too many requests",
    "validation-failed": "Validation failed",
    "invalid-request": "The request is not valid",
    "too-large": "The request is too large",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:ecert:problem:{code}",
        "title": title or TITLES.get(code, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_for(exc: EcertError, request: Request | None = None) -> JSONResponse:
    """The problem document for one of our errors; 5xx keep their detail in the log only."""
    status = int(getattr(exc, "status", 400))
    if status >= 500:
        _log.error("internal error %s on %s: %s", exc.code, request.url.path if request else "?", exc)
        return problem(status, exc.code if exc.code != "lint-failed" else "internal", _INTERNAL, title="Internal error")
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = "900"
    if isinstance(exc, Unauthorized) and request is not None and request.url.path.startswith("/api/"):
        headers["WWW-Authenticate"] = 'Bearer realm="ecert"'
    return problem(status, exc.code, str(exc), rule=exc.rule, headers=headers or None)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _ecert_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EcertError)
    return problem_for(exc, request)


def _clean_errors(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors[:20]:
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", ""))[:300]})
    return out


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError | ValidationError)
    if _wants_html(request):
        return error_page(request, 400)
    errors = _clean_errors(list(exc.errors()))
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    detail = f"{'.'.join(first['loc']) or 'request'}: {first['msg']}"
    return problem(422, "invalid-request", detail, errors=errors)


def _wants_html(request: Request) -> bool:
    """A browser (Accept names text/html) outside the API gets a page, everything else a problem document."""
    return not _is_api(request) and "text/html" in request.headers.get("accept", "")


_PAGE_KINDS = {404: "not_found", 405: "method", 413: "too_large", 500: "internal", 503: "unavailable"}


def error_page(request: Request, status: int) -> Response:
    """The portal's error page for ``status`` (imported late: the portal imports this module's neighbours)."""
    from .portal.common import render

    return render(request, "error.html", status_code=status, kind=_PAGE_KINDS.get(status, "invalid"))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = _allow_in_order(getattr(exc, "headers", None))
    if _wants_html(request):
        page = error_page(request, exc.status_code)
        page.headers.update(headers or {})  # RFC 9110 15.5.6: a 405 names the methods, for a browser too
        return page
    code = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 401: "unauthorized", 403: "forbidden"}.get(
        exc.status_code, "http-error"
    )
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return problem(exc.status_code, code, detail, title=TITLES.get(code, "Request refused"), headers=headers)


def _allow_in_order(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """Starlette joins a route's methods in set order, which differs from one process to the next; the same
    resource should name them the same way every time."""
    if headers is None:
        return None
    ordered = dict(headers)
    for name in [key for key in ordered if key.lower() == "allow"]:
        ordered[name] = ", ".join(sorted(method.strip() for method in ordered[name].split(",")))
    return ordered


async def _unexpected(request: Request, exc: Exception) -> Response:
    _log.exception("unexpected error on %s", request.url.path)
    return internal_error_for(request)


def _page_instead(request: Request, status: int, headers: dict[str, str] | None = None) -> Response | None:
    """The portal's page for a browser, None for everyone else or if the page itself cannot be made (the
    caller then answers with the problem document: an error while reporting an error must not escape)."""
    if not _wants_html(request):
        return None
    try:
        page = error_page(request, status)
    except Exception:  # noqa: BLE001 - see the docstring
        _log.exception("could not render the %d page for %s", status, request.url.path)
        return None
    page.headers.update(headers or {})
    return page


def internal_error_for(request: Request) -> Response:
    """500: a page for a person at a browser, a problem document for a program."""
    return _page_instead(request, 500) or problem(500, "internal", _INTERNAL, title="Internal error")


# --- the database went away ------------------------------------------------------------------------

DB_RETRY_AFTER = 30  # seconds: long enough for a restart or fail-over, short enough that clients come back
_DB_UNAVAILABLE = "The service cannot reach its database just now; nothing was changed. Try again in a little while."
DB_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


def database_unavailable() -> JSONResponse:
    """503 with Retry-After (RFC 9110 15.6.4): a state the client can wait out, not a fault of the request."""
    return problem(
        503,
        "unavailable",
        _DB_UNAVAILABLE,
        title="Service temporarily unavailable",
        headers={"Retry-After": str(DB_RETRY_AFTER)},
    )


def database_unavailable_for(request: Request) -> Response:
    """:func:`database_unavailable`, or for a person at a browser the portal's page saying so in their
    language (a raw JSON document is no answer to someone filling in the portal), with the same Retry-After."""
    retry = {"Retry-After": str(DB_RETRY_AFTER)}
    return _page_instead(request, 503, retry) or database_unavailable()


async def _database_error(request: Request, exc: Exception) -> Response:
    # One line, no trace: an outage makes thousands of these, and the driver text may name hosts and users.
    _log.error("database unavailable on %s: %s", request.url.path, type(exc).__name__)
    return database_unavailable_for(request)


class NeverReraise:
    """Outermost ASGI middleware: an exception nobody handled becomes a 500 (or 503) problem and stops here.

    Starlette's ServerErrorMiddleware sends its 500 and then re-raises, and the server reacts to the raise
    by dropping the connection; this answers and returns, so the connection and its neighbours carry on.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the point of this middleware
            request = Request(scope)
            if isinstance(exc, DB_ERRORS):
                _log.error("database unavailable on %s: %s", scope.get("path"), type(exc).__name__)
                response = database_unavailable_for(request)
            else:
                _log.exception("unexpected error on %s", scope.get("path"))
                response = internal_error_for(request)
            if not started:
                await response(scope, receive, send)


# --- request body cap -------------------------------------------------------------------------------

MAX_BODY = 64 * 1024
# The CSR routes cap the CSR themselves (64 KiB, with their own refusal); a pasted CSR form-encodes to up to
# three times its size, so the outer cap leaves them room to say so.
CSR_ROUTES = ("/api/v1/csr", "/portal/csr")
MAX_CSR_ROUTE_BODY = 256 * 1024
_CAPPED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CAPPED_PREFIXES = ("/api/", "/portal/")


def body_limit(path: str) -> int | None:
    """The most bytes a request body to ``path`` may carry (None: not capped here)."""
    if path in CSR_ROUTES:
        return MAX_CSR_ROUTE_BODY
    return MAX_BODY if path.startswith(_CAPPED_PREFIXES) else None


class _BodyCounter:
    """One request's body counted as it streams: past the cap the app reads a disconnect, and its answer
    (to a truncated body) is dropped so that BodyLimit can send the 413 in its place."""

    def __init__(self, receive: Any, send: Any, limit: int) -> None:
        self._receive = receive
        self._send = send
        self._limit = limit
        self._seen = 0
        self.exceeded = False
        self.started = False

    async def receive(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                self.exceeded = True
                return {"type": "http.disconnect"}  # the handler stops reading here
        return message

    async def send(self, message: Any) -> None:
        if self.exceeded and not self.started:
            return  # the app's answer to a truncated body is dropped; the 413 goes out instead
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class BodyLimit:
    """ASGI middleware: refuse API and portal request bodies over the cap with 413, counting as they stream.

    A declared Content-Length over the cap is refused before the app runs; a chunked body is counted
    chunk by chunk and the app's answer is replaced by the 413 once the count passes the cap, so no
    handler ever holds more than the cap in memory (Starlette alone reads a form up to 1 MB, JSON unbounded).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        limit = body_limit(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None or scope.get("method") not in _CAPPED_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Any, receive: Any, send: Any, limit: int) -> None:
        """Run the app on a counted body; if the count passed the cap before it answered, answer 413 instead."""
        counter = _BodyCounter(receive, send, limit)
        try:
            await self.app(scope, counter.receive, counter.send)
        except Exception:
            if not counter.exceeded:
                raise
        if counter.exceeded and not counter.started:
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Any, receive: Any, send: Any, limit: int) -> None:
        request = Request(scope, receive)
        await anyio.to_thread.run_sync(_audit_too_large, request, limit)
        detail = f"the request body is over {limit} bytes"
        if _wants_html(request) or (not _is_api(request) and "session" in scope):
            response: Response = error_page(request, 413)
        else:
            response = problem(413, "too-large", detail, title="The request is too large")
        await response(scope, receive, send)


def _audit_too_large(request: Request, limit: int) -> None:
    """BR 5.4.1: a refused request is a logged event; the body itself is never read or kept."""
    from ..services.refusals import record_refusal

    ctx = getattr(request.app.state, "ctx", None) if "app" in request.scope else None
    if ctx is None:
        return
    client = request.client.host if request.client else "unknown"
    declared = request.headers.get("content-length")
    record_refusal(
        ctx,
        event="request.too_large",
        actor=f"client:{client}",
        subject=request.url.path,
        details={
            "method": request.method,
            "limit": limit,
            "declared_length": int(declared) if declared and declared.isdigit() else None,
        },
    )


def install(app: FastAPI) -> None:
    """Register the handlers and the body cap on ``app`` (called by the app factory)."""
    app.add_middleware(BodyLimit)
    app.add_exception_handler(EcertError, _ecert_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for db_error in DB_ERRORS:  # handled inside: a specific class is never re-raised by Starlette
        app.add_exception_handler(db_error, _database_error)
    app.add_exception_handler(Exception, _unexpected)
