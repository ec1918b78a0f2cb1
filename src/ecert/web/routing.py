"""Route matching: a router that skips a whole part of the service by its prefix, and HEAD wherever GET.

FastAPI matches a request against the routes of every included router in turn, each route by its regular
expression, with no look at a router's prefix first: a portal request was tried against every ACME and API
route, and (before they came first) an ACME request against every portal route, a fifth of the event loop's
time under load (bench/acme.py). A router here answers "no match" at once for a path outside its prefix,
which no route of its can match anyway.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

__all__ = ["PrefixRouter", "answer_head_where_get", "route_path", "without_head"]

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])
_NO_HEAD = "_ecert_without_head"
_TWINNED = "_ecert_head_twin_added"


def route_path(scope: Scope) -> str:
    """The path the routes see: without the root path a proxy may put in front (as Starlette's routing does)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class PrefixRouter(APIRouter):
    """An APIRouter with a non-empty ``prefix`` that refuses paths outside it before trying any route."""

    def __init__(self, *, prefix: str, **kwargs: Any) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"a prefix like /acme is needed, not {prefix!r}")
        super().__init__(prefix=prefix, **kwargs)
        self._inside = prefix + "/"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = route_path(scope)
        if path != self.prefix and not path.startswith(self._inside):
            return Match.NONE, {}
        return super().matches(scope)


def without_head(endpoint: _Endpoint) -> _Endpoint:
    """Mark a GET whose every answer is audited as a delivery (a certificate download): a HEAD, which delivers
    nothing, would be recorded as one, so such a GET keeps refusing HEAD (405, Allow: GET)."""
    setattr(endpoint, _NO_HEAD, True)
    return endpoint


def answer_head_where_get(router: APIRouter) -> None:
    """RFC 9110 9.1: a general-purpose server supports HEAD wherever it supports GET. FastAPI routes take only
    the methods they name, so a HEAD on a CRL, a CA certificate or the ACME directory got a 405.

    Each GET route gets a twin right before it that takes GET and HEAD: the same endpoint and handler, so a
    HEAD has a GET's headers (Content-Length, ETag, Last-Modified, an ACME nonce) and the server sends no body.
    The twin comes first, so it answers both methods, a catch-all further down (web/acme/fallback.py) never
    sees a HEAD, and a 405 on the path names both in Allow; the route it copies is left for the OpenAPI
    document, which describes GET once (the twin stays out of it). Routers included in this one are walked
    too. Called on the app's router once every part is in; the parts' routers live as long as their modules,
    so a route twinned once (by an earlier app in the same process) is left as it is.
    """
    routes = router.routes
    position = 0
    while position < len(routes):
        route = routes[position]
        included = getattr(route, "original_router", None)  # FastAPI keeps an included router whole
        if isinstance(included, APIRouter):
            answer_head_where_get(included)
        elif _takes_get_not_head(route):
            routes.insert(position, _head_twin(route))  # type: ignore[arg-type]  # an APIRoute, checked
            setattr(route, _TWINNED, True)
            position += 1
        position += 1


def _takes_get_not_head(route: BaseRoute) -> bool:
    if not isinstance(route, APIRoute) or getattr(route, _TWINNED, False) or getattr(route.endpoint, _NO_HEAD, False):
        return False
    methods = route.methods or set()
    return "GET" in methods and "HEAD" not in methods


def _head_twin(route: APIRoute) -> APIRoute:
    twin = copy.copy(route)
    twin.methods = {*(route.methods or ()), "HEAD"}
    twin.include_in_schema = False
    return twin
