"""The application step of the API: read it, confirm it (optionally with the Chinese name), or reject it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...services import applications as apps
from .. import lanes
from .deps import SessionApp, ctx_of
from .schemas import ApplicationOut, ConfirmIn, ReasonIn

router = APIRouter(tags=["application"])


def _actor(view: apps.ApplicationView) -> str:
    return f"subscriber:{view.reference_number}"


@router.get("/application", response_model=ApplicationOut, summary="The application data (seed C.3)")
async def read_application(app_id: SessionApp, request: Request) -> ApplicationOut:
    return ApplicationOut.of(await lanes.quick(apps.get_application, ctx_of(request), app_id))


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
