"""The certificate step: read it, accept or reject it, download it in every format."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...core.errors import NotFound
from ...services import applications as apps
from ...services import certificates, downloads
from ...services.context import Context
from .. import lanes
from ..routing import without_head
from .deps import SessionApp, SessionToken, ctx_of
from .schemas import CertificateOut, ReasonIn

router = APIRouter(tags=["certificate"])

Fmt = Literal["pem", "der", "p7b", "fullchain"]


def attachment(item: downloads.Download) -> Response:
    return Response(
        item.data,
        media_type=item.media_type,
        headers={"Content-Disposition": f'attachment; filename="{item.filename}"', "X-Content-Type-Options": "nosniff"},
    )


def _actor(request: Request, app_id: int) -> str:
    return f"subscriber:{apps.reference_of(ctx_of(request), app_id)}"


@router.get("/certificate", response_model=CertificateOut, summary="The certificate information (seed C.6)")
def read_certificate(app_id: SessionApp, request: Request) -> CertificateOut:
    view = certificates.get_certificate(ctx_of(request), app_id)
    if view is None:
        raise NotFound("this application has no certificate yet")
    return CertificateOut.of(view)


@router.post("/certificate/accept", response_model=CertificateOut, summary="Accept the certificate")
def accept(app_id: SessionApp, request: Request) -> CertificateOut:
    return CertificateOut.of(certificates.accept_certificate(ctx_of(request), app_id, actor=_actor(request, app_id)))


@router.post(
    "/certificate/reject",
    response_model=CertificateOut,
    summary="Reject the certificate (it is revoked at once); a new CSR may follow",
)
def reject(body: ReasonIn, app_id: SessionApp, request: Request) -> CertificateOut:
    return CertificateOut.of(
        certificates.reject_certificate(ctx_of(request), app_id, reason=body.reason, actor=_actor(request, app_id))
    )


@router.get(
    "/certificate/download",
    summary="The certificate: pem, der (.cer), p7b with the chain, fullchain",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/x-pem-file": {},
                "application/pkix-cert": {},
                "application/x-pkcs7-certificates": {},
            }
        },
        409: {"description": "the certificate has not been accepted yet"},
    },
)
@without_head
async def download(token: SessionToken, request: Request, format: Annotated[Fmt, Query()] = "pem") -> Response:  # noqa: A002
    """The session's check and the read in one step of the quick-read lane; the audit row's commit (shared
    with concurrent downloads) is awaited on the event loop, holding no thread: the certificate goes out only
    once its download is in the log."""
    item, receipt = await lanes.quick(_start_download, ctx_of(request), token, format)
    await asyncio.wrap_future(receipt)
    return attachment(item)


def _start_download(ctx: Context, token: str, fmt: str) -> tuple[downloads.Download, Future[None]]:
    return downloads.start_session_download(ctx, token, fmt, channel="api")
