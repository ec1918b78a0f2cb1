"""What no ACME resource answers: a method a resource does not take (405) or a path that is no resource (404).

Both are RFC 8555 6.7 problems and, being answered through :class:`~ecert.web.acme.routes.AcmeRoute`, carry a
fresh Replay-Nonce like every other ACME answer (RFC 8555 6.5). Starlette would otherwise answer them itself,
in plain text and with no nonce: a HEAD on an order URL, which certbot's ``acme`` library sends for a nonce when
it was given no newNonce URL, got a 405 without one. Registered last, so it only sees what nothing else matched.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ...core.acme_rules import AcmeRefusal, ProblemType
from ..routing import route_path
from .problems import acme_problem
from .routes import ACME_PREFIX, AcmeRoute, methods_at

__all__ = ["router"]


class _CatchAll(AcmeRoute):
    """An ACME route (problems, nonce) that is no resource of its own."""

    is_resource = False


router = APIRouter(route_class=_CatchAll, include_in_schema=False)

_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/{rest:path}", methods=_ANY_METHOD)
async def no_such_resource(request: Request) -> Response:
    """405 naming the methods the resource takes (RFC 9110 15.5.6), else 404."""
    allowed = methods_at(route_path(request.scope).removeprefix(ACME_PREFIX))
    if "GET" in allowed:  # every GET resource answers HEAD too (web/routing.answer_head_where_get)
        allowed |= {"HEAD"}
    if not allowed:
        raise AcmeRefusal(ProblemType.MALFORMED, "no such ACME resource", status=404, rule="RFC 8555 7.1")
    if allowed == {"POST"}:  # RFC 8555 6.3: everything but the directory, newNonce and renewalInfo
        detail = "this resource takes POST (use POST-as-GET to read it)"
    else:
        detail = f"this resource takes {', '.join(sorted(allowed))}"
    return acme_problem(ProblemType.MALFORMED, 405, detail, headers={"Allow": ", ".join(sorted(allowed))})
