"""The application step of the API: read it, confirm it (optionally with the Chinese name), or reject it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...services import applications as apps
from .. import lanes
from .deps import SessionApp, SessionToken, ctx_of
from .schemas import ApplicationOut, ConfirmIn, ReasonIn

router = APIRouter(tags=["application"])


def _actor(view: apps.ApplicationView) -> str:
    return f"subscriber:{view.reference_number}"


@router.get("/application", response_model=ApplicationOut, summary="The application data (seed C.3)")
async def read_application(token: SessionToken, request: Request) -> ApplicationOut:
    """The session's check and the read in one step of the quick-read lane (one hop to a thread, one query)."""
    return ApplicationOut.of(await lanes.quick(apps.session_application, ctx_of(request), token))


@router.post("/application/confirm", response_model=ApplicationOut, summary="Confirm (or Confirm Opt with Chinese)")
def confirm(body: ConfirmIn, app_id: SessionApp, request: Request) -> ApplicationOut:
    ctx = ctx_of(request)
    actor = _actor(apps.get_application(ctx, app_id))
    return ApplicationOut.of(apps.confirm_application(ctx, app_id, use_chinese=body.use_chinese, actor=actor))


@router.post("/application/reject", response_model=ApplicationOut, summary="Reject the application data")
def reject(body: ReasonIn, app_id: SessionApp, request: Request) -> ApplicationOut:
    ctx = ctx_of(request)
    actor = _actor(apps.get_application(ctx, app_id))
    return ApplicationOut.of(apps.reject_application(ctx, app_id, reason=body.reason, actor=actor))
