"""revokeCert (RFC 8555 7.6): signed by an account (kid) or by the certificate's own key (jwk)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from josepy.b64 import b64decode

from ...core.acme_rules import AcmeRefusal, ProblemType
from ...core.keys import spki_sha256
from ...services import acme_revocation
from ...services.acme_revocation import RevokeRequest
from .routes import AcmeRoute, _ctx
from .verify import Verified, verify_post

__all__ = ["router"]

router = APIRouter(route_class=AcmeRoute, include_in_schema=False)  # mounted under /acme by __init__


def _certificate_der(payload: dict[str, object]) -> bytes:
    raw = payload.get("certificate")
    try:
        if not isinstance(raw, str) or not raw:
            raise ValueError
        return b64decode(raw)
    except (ValueError, TypeError):
        raise AcmeRefusal(
            ProblemType.MALFORMED, "certificate must be the base64url DER of the certificate", rule="RFC 8555 7.6"
        ) from None


def _revoke_request(request: Request, verified: Verified) -> RevokeRequest:
    payload = verified.payload or {}
    account = verified.account
    signer = None if account is not None else spki_sha256(verified.jwk.public_key().key)
    return RevokeRequest(
        certificate_der=_certificate_der(payload),
        reason_code=payload.get("reason"),
        account_id=account.id if account is not None else None,
        account_application_id=account.application_id if account is not None else None,
        signer_spki_sha256=signer,
        client=request.client.host if request.client else "unknown",
    )


@router.post("/revoke-cert")
async def revoke_cert(request: Request) -> Response:
    """RFC 8555 7.6: 200 with an empty body once the CRL and OCSP show the revocation."""
    ctx = _ctx(request)
    verified = await verify_post(request, ctx, jwk_allowed=None, post_as_get=False)
    wanted = _revoke_request(request, verified)
    await anyio.to_thread.run_sync(acme_revocation.revoke, ctx, wanted)
    return Response(status_code=200)
