"""Route matching that skips a whole part of the service by its prefix.

FastAPI matches a request against the routes of every included router in turn, each route by its regular
expression, with no look at a router's prefix first: a portal request was tried against every ACME and API
route, and (before they came first) an ACME request against every portal route, a fifth of the event loop's
time under load (bench/acme.py). A router here answers "no match" at once for a path outside its prefix,
which no route of its can match anyway.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope

__all__ = ["PrefixRouter", "route_path"]


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
