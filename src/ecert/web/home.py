"""The service's front door: ``/`` is a home page in both languages, ``/docs`` the API documentation, offline.

A certification authority's site should make no request to a third party (a CDN could watch who reads it and
could change the page under it), so the Swagger UI files come from the ``swagger-ui-py`` package (Swagger UI
5, which reads the OpenAPI 3.1 that FastAPI writes) and are served from this service; the page's own start-up
script is ours, under ``web/static``. ReDoc is switched off (it has no packaged copy); ``/openapi.json`` stays
the machine-readable description.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui  # type: ignore[import-untyped]
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from .portal.common import render

__all__ = ["router", "install", "DOCS_ASSETS", "DOCS_CSP"]

router = APIRouter(include_in_schema=False)

SWAGGER_UI_FILES = Path(swagger_ui.__file__).resolve().parent / "static"

DOCS_ASSETS = "/docs/assets"
# Swagger UI sets inline styles on its widgets; scripts still come only from this site.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

_DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ecert API documentation</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""


@router.get("/")
def home(request: Request) -> Response:
    """Where a visitor starts: the portal, the search, the CA certificates and the API documentation."""
    return render(request, "public/home.html")


@router.get("/docs")
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI for ``/openapi.json``, every file served from here (no CDN, no validator badge)."""
    openapi = request.app.openapi_url or "/openapi.json"
    page = _DOCS_PAGE.format(assets=DOCS_ASSETS, openapi=openapi)
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": DOCS_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def install(app: FastAPI) -> None:
    """Serve the packaged Swagger UI files under :data:`DOCS_ASSETS`."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(SWAGGER_UI_FILES)), name="docs-assets")
