"""The public repository: CA certificates at the URLs the profiles write into AIA (RFC 5280 4.2.2.1)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from ..store.models import CA

__all__ = ["router", "CERT_CONTENT_TYPES"]

router = APIRouter(tags=["repository"])

CERT_CONTENT_TYPES = {"crt": "application/pkix-cert", "cer": "application/pkix-cert", "pem": "application/x-pem-file"}


@router.get("/repository/ca/{filename}", summary="A CA certificate, DER (.crt/.cer) or PEM (.pem)")
def ca_certificate(filename: str, request: Request) -> Response:
    label, _, ext = filename.rpartition(".")
    if ext not in CERT_CONTENT_TYPES or not label:
        raise HTTPException(404, "no such CA certificate")
    ctx = request.app.state.ctx
    with ctx.transaction() as session:
        row = session.scalar(select(CA).where(CA.label == label))
        if row is None:
            raise HTTPException(404, "no such CA certificate")
        der = row.cert_der
    body = der if ext != "pem" else x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    return Response(body, media_type=CERT_CONTENT_TYPES[ext],
                    headers={"Cache-Control": "public, max-age=3600",
                             "Content-Disposition": f'attachment; filename="{label}.{ext}"'})
