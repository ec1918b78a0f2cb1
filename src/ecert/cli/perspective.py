"""`ecert-ca perspective serve`: run one remote network perspective (BR 3.2.2.9) as an HTTP service."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from starlette.applications import Starlette

from ecert.settings import Settings, load_settings
from ecert.validation.perspectives import create_perspective_app
from ecert.validation.validator import Validator

__all__ = ["app", "build_app", "serve"]

app = typer.Typer(
    help="Remote network perspectives for multi-perspective corroboration (BR 3.2.2.9).", no_args_is_help=True
)


def build_app(secret: bytes | str, settings: Settings, *, name: str | None = None) -> Starlette:
    """The perspective's ASGI app: a Validator that never corroborates further, behind the HMAC check."""
    key = secret.encode() if isinstance(secret, str) else secret
    validator = Validator(settings, corroborate=False)
    return create_perspective_app(validator.local_check, key, name=name or "perspective")


def serve(host: str, port: int, secret: bytes | str, settings: Settings) -> None:
    """Serve the perspective until interrupted."""
    import uvicorn

    if not secret:
        raise SystemExit("a shared perspective secret is required")
    uvicorn.run(build_app(secret, settings, name=f"{host}:{port}"), host=host, port=port, log_level="warning")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8600,
) -> None:
    """Answer the primary's DNS, file-method and CAA checks from this vantage point.

    Requests and answers are authenticated with the shared secret named by ECERT_PERSPECTIVE_SECRET_ENV
    (default: the variable ECERT_PERSPECTIVE_SECRET); the resolver is ECERT_DNS_RESOLVERS.
    """
    settings = load_settings()
    secret = os.environ.get(settings.perspective_secret_env, "")
    if not secret:
        raise typer.BadParameter(f"set {settings.perspective_secret_env} to the secret shared with the primary")
    serve(host, port, secret, settings)
