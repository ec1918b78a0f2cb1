"""ACME problem documents (RFC 8555 6.7): the one place where an error inside becomes an ACME answer.

Types are ``urn:ietf:params:acme:error:*``; 5xx answers carry a fixed sentence only, as web/problems.py does
for the REST API, so no internal detail leaves the service.
"""

from __future__ import annotations

import logging

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ...core.acme_rules import AcmeRefusal, ProblemType
from ...core.errors import EcertError, Forbidden, RateLimited, Unauthorized
from ..problems import PROBLEM_MEDIA_TYPE

__all__ = ["ACME_ERROR_URN", "acme_problem", "problem_for_exception"]

ACME_ERROR_URN = "urn:ietf:params:acme:error:"
_INTERNAL = "The service could not complete the request; the event was logged."
_log = logging.getLogger("ecert.web.acme")


def acme_problem(
    problem: ProblemType,
    status: int,
    detail: str,
    *,
    algorithms: tuple[str, ...] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"type": ACME_ERROR_URN + problem.value, "detail": detail, "status": status}
    if algorithms:
        body["algorithms"] = list(algorithms)  # RFC 8555 6.2: tell the client what would be accepted
    all_headers = dict(headers or {})
    if status == 405:
        all_headers.setdefault("Allow", "POST")
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers)


def _from_ecert(exc: EcertError) -> JSONResponse:
    status = int(getattr(exc, "status", 400))
    if status >= 500:
        _log.error("internal ACME error %s: %s", exc.code, exc)
        return acme_problem(ProblemType.SERVER_INTERNAL, 500, _INTERNAL)
    if isinstance(exc, RateLimited):
        return acme_problem(ProblemType.RATE_LIMITED, 429, str(exc), headers={"Retry-After": "900"})
    if isinstance(exc, Unauthorized | Forbidden):
        return acme_problem(ProblemType.UNAUTHORIZED, 403, str(exc))
    return acme_problem(ProblemType.MALFORMED, status, str(exc))


def problem_for_exception(exc: Exception) -> JSONResponse | None:
    """The ACME problem for an error we know how to explain; None for anything else (the caller re-raises)."""
    if isinstance(exc, AcmeRefusal):
        extra = getattr(exc, "headers", None)  # Retry-After of rateLimited, Location of a keyChange conflict
        return acme_problem(exc.problem, exc.status, str(exc), algorithms=exc.algorithms, headers=extra)
    if isinstance(exc, EcertError):
        return _from_ecert(exc)
    if isinstance(exc, RequestValidationError):  # a path id out of range or not a number, say
        return acme_problem(ProblemType.MALFORMED, 400, _first_error(exc))
    if isinstance(exc, HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return acme_problem(ProblemType.MALFORMED, exc.status_code, detail)
    return None


def _first_error(exc: RequestValidationError) -> str:
    """What was wrong, in a line: where (``path.order_id``) and why, never the value that was sent."""
    errors = exc.errors()
    if not errors:
        return "the request is not valid"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"the request is not valid: {where}: {first.get('msg', 'invalid')}"[:300]
