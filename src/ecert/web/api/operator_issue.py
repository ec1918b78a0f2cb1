"""POST /api/v1/operator/certificates: the operator's direct issuance, through the one registration authority."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ...services import certificates
from ...services.registration import Channel
from .deps import Operator, ctx_of
from .schemas import DirectIssuedOut, DirectIssueIn

router = APIRouter(prefix="/operator", tags=["operator"])


@router.post(
    "/certificates",
    status_code=201,
    response_model=DirectIssuedOut,
    summary="Issue directly to a vetted organisation (evidence per name, CA keys refused, CAA, lint)",
)
async def issue_direct(body: DirectIssueIn, request: Request, operator: Operator) -> DirectIssuedOut:
    issued = await run_in_threadpool(
        certificates.issue_direct,
        ctx_of(request),
        csr=body.csr,
        profile=body.profile,
        names=tuple(body.names),
        vetting_id=body.vetting_id,
        reference_number=body.reference_number,
        days=body.days,
        high_risk_reviewed=body.high_risk_reviewed,
        actor=f"operator:{operator}",
        channel=Channel.OPERATOR_API,
    )
    return DirectIssuedOut(
        serial_hex=issued.serial_hex,
        names=list(issued.names),
        not_before=issued.not_before,
        not_after=issued.not_after,
        profile=issued.profile,
        pem=issued.pem,
        evidence=issued.evidence_summary,
    )
