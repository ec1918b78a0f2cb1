"""Public API: search accepted certificates and download them by serial (no session needed)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...services import downloads
from ..routing import without_head
from .certificate import Fmt, attachment
from .deps import client_addr, ctx_of
from .schemas import SearchHitOut

router = APIRouter(tags=["public"])


@router.get("/search", response_model=list[SearchHitOut], summary="Search accepted certificates")
def search(
    request: Request,
    by: Literal["server_name", "serial", "reference"] = "server_name",
    q: Annotated[str, Query(max_length=253)] = "",
) -> list[SearchHitOut]:
    return [SearchHitOut.of(h) for h in downloads.search_certificates(ctx_of(request), by=by, query=q)]


@router.get("/certificates/{serial}/download", response_class=Response, summary="An accepted certificate by serial")
@without_head
def public_download(serial: str, request: Request, format: Annotated[Fmt, Query()] = "pem") -> Response:  # noqa: A002
    return attachment(
        downloads.public_download(
            ctx_of(request), serial, format, actor=f"public:{client_addr(request)}", channel="api"
        )
    )
