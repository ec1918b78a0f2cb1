"""RFC 9457 problem details: the one place where ecert's errors become HTTP answers for the API.

4xx problems carry the refusal's sentence and the rule it cites; 5xx problems carry a fixed sentence
only, so no internal detail (paths, SQL, stack traces) ever leaves the service.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import EcertError, RateLimited, Unauthorized

__all__ = ["PROBLEM_MEDIA_TYPE", "problem", "problem_for", "install", "TITLES"]

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
}


def problem(status: int, code: str, detail: str, *, title: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": f"urn:ecert:problem:{code}", "title": title or TITLES.get(code, "Error"),
                            "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_for(exc: EcertError, request: Request | None = None) -> JSONResponse:
    """The problem document for one of our errors; 5xx keep their detail in the log only."""
    status = int(getattr(exc, "status", 400))
    if status >= 500:
        _log.error("internal error %s on %s: %s", exc.code, request.url.path if request else "?", exc)
        return problem(status, exc.code if exc.code != "lint-failed" else "internal", _INTERNAL,
                       title="Internal error")
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
    if not _is_api(request) and isinstance(exc, RequestValidationError):
        return await request_validation_exception_handler(request, exc)
    errors = _clean_errors(list(exc.errors()))
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    detail = f"{'.'.join(first['loc']) or 'request'}: {first['msg']}"
    return problem(422, "invalid-request", detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _is_api(request):
        return await http_exception_handler(request, exc)
    code = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 401: "unauthorized",
            403: "forbidden"}.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return problem(exc.status_code, code, detail, title=TITLES.get(code, "Request refused"),
                   headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> Response:
    _log.exception("unexpected error on %s", request.url.path)
    return problem(500, "internal", _INTERNAL, title="Internal error")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (called by the app factory)."""
    app.add_exception_handler(EcertError, _ecert_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
