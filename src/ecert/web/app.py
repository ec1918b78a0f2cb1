"""The ASGI application factory: nothing is built at import time; settings come in, an app goes out."""

from __future__ import annotations

import gc
import importlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI

from ..services import audit_checkpoints, refusals
from ..services.context import Context, build_context
from ..settings import Settings
from . import problems, repository, routing

__all__ = ["create_app"]

# Routers of the other web parts, each in its own module with a module-level ``router`` and an
# optional ``install(app)`` hook (middleware, exception handlers, static files). Their paths never overlap,
# so the order only decides how many routes a request is matched against before its own: machines' paths
# (ACME, the API) first, as they come most often; matching ran through every portal route for each ACME
# request, a fifth of the event loop's time under load (bench/acme.py).
_PARTS = ("ecert.web.problems", "ecert.web.acme", "ecert.web.api", "ecert.web.portal", "ecert.web.status")


def create_app(settings: Settings, env: Mapping[str, str], *, context: Context | None = None) -> FastAPI:
    """Build the web service around one :class:`Context` (database, keys, clock)."""
    ctx = context or build_context(settings, env)
    if ctx.acme_secret is None:  # a context built elsewhere: the app's environment names the ACME secret
        ctx.acme_secret = env.get(settings.acme_eab_secret_env) or None
    app = FastAPI(
        title="ecert CA",
        version="1",
        summary="e-Cert (Server) style certificate authority",
        docs_url=None,
        redoc_url=None,
    )  # /docs is web/home.py's, served offline
    app.state.ctx = ctx
    app.state.env = dict(env)
    for name in _PARTS:
        try:
            part = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        if hasattr(part, "install"):
            part.install(app)
        if hasattr(part, "router"):
            app.include_router(part.router)
    app.include_router(repository.router)
    routing.answer_head_where_get(app.router)
    _around_the_service(app)
    app.add_middleware(problems.NeverReraise)  # added last: outermost, so it sees every part's failures
    return app


def _settle_the_heap() -> None:
    """Move everything built at start (routes, models, SQLAlchemy's mappers, the CA's certificates) out of the
    garbage collector's sight: a full collection walked all of it, 100-120 ms with the loop stopped, and
    that pause was the p99 of every quick read under load (bench/portal.py: 113 ms before, 40 ms after)."""
    gc.collect()
    gc.freeze()


def _last_words(ctx: Context) -> None:
    """What a stopping process still owes the audit chain: the refusals it left out, then a signed head.
    Neither raises (each logs what it could not write): a process going down must still go down."""
    refusals.write_left_out(ctx, every_window=True)
    audit_checkpoints.write_checkpoint_quietly(ctx)


def _around_the_service(app: FastAPI) -> None:
    """At start, size the shared thread pool (``Settings.web_threads``, see web/lanes.py for why few); when the
    service stops, after every other part has stopped, write what refusal thinning left out and sign the audit
    chain's head (BR 5.4.4)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = app.state.ctx.settings.web_threads
        try:
            async with inner(asgi_app) as state:
                _settle_the_heap()
                yield state
        finally:
            gc.unfreeze()  # what was set aside at start may be collected again once the service is gone
            await anyio.to_thread.run_sync(_last_words, app.state.ctx)

    app.router.lifespan_context = lifespan
