"""The operator's ACME endpoints: make an EAB credential for an application, list its credentials and accounts.

Issue 13 point 2. The HMAC key is in the answer to the POST only; the listing never carries a key. The
service audits every credential made (``acme.eab.created``, actor ``operator:api``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from ...services import acme_accounts
from .deps import Operator, ctx_of

__all__ = ["router"]

router = APIRouter(prefix="/operator", tags=["operator"])


class EabMadeOut(BaseModel):
    reference_number: str
    kid: str
    hmac_key: str  # base64url; shown in this answer only
    expires_at: datetime
    directory_url: str


class EabCredentialOut(BaseModel):
    kid: str
    status: str  # unused, bound or expired
    created_at: datetime
    expires_at: datetime
    bound_at: datetime | None
    created_by: str


class AcmeAccountOut(BaseModel):
    id: int
    status: str  # valid, deactivated or revoked (RFC 8555 7.1.6)
    created_at: datetime
    kid: str
    contact: list[str]


class AcmeOverviewOut(BaseModel):
    reference_number: str
    directory_url: str
    credentials: list[EabCredentialOut]
    accounts: list[AcmeAccountOut]

    @classmethod
    def of(cls, view: acme_accounts.AcmeOverview) -> AcmeOverviewOut:
        return cls(
            reference_number=view.reference_number,
            directory_url=view.directory_url,
            credentials=[
                EabCredentialOut(
                    kid=c.kid,
                    status=c.status.value,
                    created_at=c.created_at,
                    expires_at=c.expires_at,
                    bound_at=c.bound_at,
                    created_by=c.created_by,
                )
                for c in view.credentials
            ],
            accounts=[
                AcmeAccountOut(
                    id=a.id, status=a.status.value, created_at=a.created_at, kid=a.kid, contact=list(a.contact)
                )
                for a in view.accounts
            ],
        )


@router.post(
    "/applications/{reference}/acme/eab",
    status_code=201,
    response_model=EabMadeOut,
    summary="Make an EAB credential for the application; the HMAC key is returned once (audited)",
)
async def make_eab(reference: str, request: Request, actor: Operator) -> EabMadeOut:
    ctx = ctx_of(request)
    made = await run_in_threadpool(acme_accounts.make_eab_for_operator, ctx, reference, actor=actor)
    return EabMadeOut(
        reference_number=made.reference_number,
        kid=made.kid,
        hmac_key=made.hmac_key,
        expires_at=made.expires_at,
        directory_url=acme_accounts.directory_url(ctx),
    )


@router.get(
    "/applications/{reference}/acme",
    response_model=AcmeOverviewOut,
    summary="The application's EAB credentials and ACME accounts (no keys)",
)
def read_acme(reference: str, request: Request, actor: Operator) -> AcmeOverviewOut:
    return AcmeOverviewOut.of(acme_accounts.acme_overview_by_reference(ctx_of(request), reference))
