"""`ecert-ca perspective serve`: run one remote network perspective (BR 3.2.2.9) as an HTTP service."""

from __future__ import annotations

from starlette.applications import Starlette

from ecert.settings import Settings
from ecert.validation.perspectives import create_perspective_app
from ecert.validation.validator import Validator

__all__ = ["build_app", "serve"]


def build_app(secret: bytes | str, settings: Settings, *, name: str | None = None) -> Starlette:
    """The perspective's ASGI app: a Validator that never corroborates further, behind the HMAC check."""
    key = secret.encode() if isinstance(secret, str) else secret
    validator = Validator(settings, corroborate=False)
    return create_perspective_app(validator.local_check, key, name=name or "perspective")


def serve(host: str, port: int, secret: bytes | str, settings: Settings) -> None:
    """Serve the perspective until interrupted; the lead wires this into the main CLI."""
    import uvicorn

    if not secret:
        raise SystemExit("a shared perspective secret is required")
    uvicorn.run(build_app(secret, settings, name=f"{host}:{port}"), host=host, port=port, log_level="warning")
