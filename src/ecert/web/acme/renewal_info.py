"""renewalInfo (RFC 9773 4): GET, no JWS; the suggested renewal window of one certificate, with Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...services import acme_ari
from .routes import AcmeRoute, _ctx

__all__ = ["router"]

router = APIRouter(route_class=AcmeRoute, include_in_schema=False)  # mounted under /acme by __init__


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@router.get("/renewal-info/{cert_id}")
async def renewal_info(request: Request, cert_id: str) -> JSONResponse:
    """RFC 9773 4.2: {"suggestedWindow": {"start", "end"}}, Retry-After in seconds (4.3)."""
    found = await anyio.to_thread.run_sync(acme_ari.renewal_info, _ctx(request), cert_id)
    body = {"suggestedWindow": {"start": _iso(found.start), "end": _iso(found.end)}}
    retry = str(int(found.retry_after.total_seconds()))
    return JSONResponse(body, headers={"Retry-After": retry, "Cache-Control": "public, max-age=0, no-cache"})
