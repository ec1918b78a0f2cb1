"""The ACME server (RFC 8555) under /acme/: JWS checks in verify.py, problems in problems.py, resources in routes.py."""

from __future__ import annotations

from .routes import router

__all__ = ["router"]
