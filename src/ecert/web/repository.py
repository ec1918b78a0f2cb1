"""The public repository: CA certificates at the URLs the profiles write into AIA (RFC 5280 4.2.2.1), and an
index of every CA certificate, CRL and ARL with its SHA-256 for tools (``ecert ca fetch``)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from ..core.errors import NotFound
from ..services import trust

__all__ = ["router", "CERT_CONTENT_TYPES", "INDEX_PATH"]

router = APIRouter(tags=["repository"])

CERT_CONTENT_TYPES = {"crt": "application/pkix-cert", "cer": "application/pkix-cert", "pem": "application/x-pem-file"}
INDEX_PATH = "/repository/index.json"


@router.get("/repository/ca/{filename}", summary="A CA certificate, DER (.crt/.cer) or PEM (.pem)")
def ca_certificate(filename: str, request: Request) -> Response:
    label, _, ext = filename.rpartition(".")
    if ext not in CERT_CONTENT_TYPES or not label:
        raise HTTPException(404, "no such CA certificate")
    try:
        der = trust.ca_certificate_der(request.app.state.ctx, label)
    except NotFound:
        raise HTTPException(404, "no such CA certificate") from None
    body = der if ext != "pem" else x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    return Response(
        body,
        media_type=CERT_CONTENT_TYPES[ext],
        headers={
            "Cache-Control": "public, max-age=3600",
            "Content-Disposition": f'attachment; filename="{label}.{ext}"',
        },
    )


@router.get(INDEX_PATH, summary="Every published CA certificate, CRL and ARL with its role, URL and SHA-256")
def repository_index(request: Request) -> JSONResponse:
    """What a machine needs to install the chain: site-relative URLs, resolved against this document's URL."""
    return JSONResponse(trust.index_document(request.app.state.ctx), headers={"Cache-Control": "public, max-age=300"})
