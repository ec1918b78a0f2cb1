"""The ASGI application factory: nothing is built at import time; settings come in, an app goes out."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from ..services.context import Context, build_context
from ..settings import Settings
from . import repository

__all__ = ["create_app"]


def create_app(settings: Settings, env: Mapping[str, str], *, context: Context | None = None) -> FastAPI:
    """Build the web service around one :class:`Context` (database, keys, clock)."""
    ctx = context or build_context(settings, env)
    app = FastAPI(title="ecert CA", version="1", summary="e-Cert (Server) style certificate authority")
    app.state.ctx = ctx
    app.include_router(repository.router)
    return app
