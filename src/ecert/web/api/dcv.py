"""Domain control validation through the API: the applicable methods, start (instructions), check."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...services import enrolment
from .deps import SessionApp, ctx_of
from .schemas import (
    ChallengeOut,
    DcvCheckIn,
    DcvCheckOut,
    DcvStartIn,
    DcvStartOut,
    DomainResultOut,
    MethodOut,
    method_out,
)

router = APIRouter(tags=["dcv"])


@router.get("/dcv/methods", response_model=list[MethodOut], summary="Methods applicable to this application")
def methods(app_id: SessionApp, request: Request) -> list[MethodOut]:
    """Reads only: an exempt application gets an empty list and moves on at ``POST /dcv/start`` or ``/dcv/check``."""
    return [
        MethodOut(
            method=method_out(o.method),
            label=enrolment.METHOD_LABELS[o.method],
            br_section=o.br_section,
            warning=o.warning,
        )
        for o in enrolment.dcv_methods(ctx_of(request), app_id)
    ]


@router.post("/dcv/start", response_model=DcvStartOut, summary="Instructions per domain (codes kept for 30 days)")
def start(body: DcvStartIn, app_id: SessionApp, request: Request) -> DcvStartOut:
    views = enrolment.dcv_start(
        ctx_of(request),
        app_id,
        method=body.method,
        email_local_part=body.email_local_part,
        email_domain=body.email_domain,
    )
    return DcvStartOut(method=body.method, domains=[ChallengeOut.of(v) for v in views])


@router.post(
    "/dcv/check",
    response_model=DcvCheckOut,
    summary="Check every domain now, by the method given or the last one started",
)
def check(body: DcvCheckIn, app_id: SessionApp, request: Request) -> DcvCheckOut:
    out = enrolment.dcv_check(ctx_of(request), app_id, email_code=body.email_code, method=body.method)
    return DcvCheckOut(
        passed=out.passed,
        state=out.state,
        domains=[
            DomainResultOut(
                domain=r.domain,
                domain_unicode=r.domain_unicode,
                passed=r.passed,
                reason=r.reason,
                method=enrolment.API_METHOD_NAMES.get(enrolment.parse_method(r.method)) if r.method else None,
                reused=r.reused,
            )
            for r in out.results
        ],
    )
