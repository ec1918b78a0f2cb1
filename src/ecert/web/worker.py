"""The app factory uvicorn calls in each worker process (``ecert-ca serve --workers N``).

Uvicorn can start several workers only from an import string, so the settings cannot be handed over as an
object: ``ecert-ca serve`` puts everything a worker needs into the environment (the shared session secret,
the key passphrase file) and migrates the database once before the workers start; each worker reads that
environment here, once, as the edge of the process.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from ..services.context import build_context
from ..settings import load_settings
from .app import create_app

__all__ = ["FACTORY", "create_app_from_env"]

FACTORY = "ecert.web.worker:create_app_from_env"


def create_app_from_env() -> FastAPI:
    """One worker's app: settings from the environment, the schema already at head (the parent migrated)."""
    settings = load_settings()
    env = dict(os.environ)
    return create_app(settings, env, context=build_context(settings, env, migrate=False))
