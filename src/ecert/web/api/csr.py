"""POST /api/v1/csr and /api/v1/certificate/replace: the CSR as JSON, size-capped before anything is parsed.

A plain CSR is taken once; after Accept, another certificate is a deliberate replacement (409 otherwise).
"""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ...core.csr import MAX_CSR_BYTES, CSRTooLarge
from ...core.errors import BadCSR
from ...services import applications as apps
from ...services import certificates
from ...services.registration import Channel
from .deps import SessionApp, ctx_of
from .schemas import CertificateOut, CsrIn, ReplaceIn

router = APIRouter(tags=["csr"])
_Body = TypeVar("_Body", CsrIn, ReplaceIn)

MAX_BODY = MAX_CSR_BYTES  # the whole JSON body; a real CSR is 1-4 KiB


async def _parse(request: Request, model: type[_Body]) -> _Body:
    raw = await _read_capped(request)
    try:
        return model.model_validate(json.loads(raw or b"null"))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise
        raise BadCSR('the body must be JSON: {"csr": "<PEM>"}') from None


async def _read_capped(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BadCSR("the Content-Length header is not a number") from None
        if declared > MAX_BODY:
            raise CSRTooLarge(f"the request body is {declared} bytes; at most {MAX_BODY} are accepted", value=declared)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise CSRTooLarge(f"the request body is over {MAX_BODY} bytes", value=len(body))
    return bytes(body)


@router.post(
    "/csr",
    status_code=201,
    response_model=CertificateOut,
    summary="Submit a CSR (PEM; Exchange, IIS, OpenSSL or ecert headers) and get the certificate issued",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": CsrIn.model_json_schema()}}}
    },
    responses={413: {"description": "body over 64 KiB"}, 409: {"description": "already issuing or issued"}},
)
async def submit(request: Request, app_id: SessionApp) -> CertificateOut:
    body = await _parse(request, CsrIn)
    ctx = ctx_of(request)
    view = await run_in_threadpool(apps.get_application, ctx, app_id)
    cert = await run_in_threadpool(
        certificates.submit_csr, ctx, app_id, body.csr, actor=f"subscriber:{view.reference_number}", channel=Channel.API
    )
    return CertificateOut.of(cert)


@router.post(
    "/certificate/replace",
    status_code=201,
    response_model=CertificateOut,
    summary="Replace the accepted certificate (new key, lost key, renewal): say whether the current one "
    "is revoked as superseded when the replacement is accepted, or left to expire",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": ReplaceIn.model_json_schema()}}}
    },
    responses={413: {"description": "body over 64 KiB"}, 409: {"description": "nothing accepted to replace"}},
)
async def replace(request: Request, app_id: SessionApp) -> CertificateOut:
    body = await _parse(request, ReplaceIn)
    ctx = ctx_of(request)
    view = await run_in_threadpool(apps.get_application, ctx, app_id)
    cert = await run_in_threadpool(
        certificates.replace_certificate,
        ctx,
        app_id,
        body.csr,
        revoke_current=body.revoke_current,
        actor=f"subscriber:{view.reference_number}",
        channel=Channel.API,
    )
    return CertificateOut.of(cert)
