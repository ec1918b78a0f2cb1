"""The operator's API: register an approved application, read and list them, lift a lock, reissue a PIN."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from ...services import applications as apps
from ...services.pin_envelope import render_pin_envelope_html
from .deps import Operator, ctx_of
from .schemas import ApplicationOut, RegisteredOut

router = APIRouter(prefix="/operator", tags=["operator"])


class ApplicationLine(BaseModel):
    reference_number: str
    server_name: str
    org_name_en: str
    state: str
    locked_until: datetime | None
    failed_logins: int
    created_at: datetime
    subscription_end: datetime

    @classmethod
    def of(cls, s: apps.ApplicationSummary) -> ApplicationLine:
        return cls(
            reference_number=s.reference_number,
            server_name=s.server_name,
            org_name_en=s.org_name_en,
            state=s.state,
            locked_until=s.locked_until,
            failed_logins=s.failed_logins,
            created_at=s.created_at,
            subscription_end=s.subscription_end,
        )


class ReissuedOut(BaseModel):
    reference_number: str
    pin: str
    envelope_html: str
    sessions_ended: int


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON Schema with its ``$defs`` inlined, so it stands alone inside the OpenAPI document."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


_REGISTRATION_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_refs(apps.ApplicationInput.model_json_schema())}},
    }
}


@router.post(
    "/applications",
    status_code=201,
    response_model=RegisteredOut,
    openapi_extra=_REGISTRATION_BODY,
    summary="Register an approved application; the PIN is returned once",
)
async def register(request: Request, actor: Operator) -> RegisteredOut:
    """The body is checked by the service, not here, so a refused registration is audited too (BR 5.4.1)."""
    raw = await request.body()
    reg = await run_in_threadpool(apps.submit_application, ctx_of(request), raw, actor=actor)
    envelope = render_pin_envelope_html(reg.reference_number, reg.pin, reg.server_name, reg.org_name_en)
    return RegisteredOut(
        application_id=reg.application_id,
        reference_number=reg.reference_number,
        pin=reg.pin,
        envelope_html=envelope,
        mail_sent=reg.mail_sent,
    )


@router.get("/applications", response_model=list[ApplicationLine], summary="List applications, newest first")
def list_applications(
    request: Request,
    actor: Operator,
    state: str | None = None,
    locked: bool = Query(False, description="only applications whose log-in is suspended"),
    limit: int = Query(200, ge=1, le=1000),
) -> list[ApplicationLine]:
    rows = apps.list_applications(ctx_of(request), state=state, locked=locked, limit=limit)
    return [ApplicationLine.of(row) for row in rows]


@router.get("/applications/{reference}", response_model=ApplicationOut, summary="An application by reference")
def read(reference: str, request: Request, actor: Operator) -> ApplicationOut:
    return ApplicationOut.of(apps.get_application_by_reference(ctx_of(request), reference))


@router.post(
    "/applications/{reference}/unlock", response_model=ApplicationLine, summary="Lift a log-in suspension now (audited)"
)
def unlock(reference: str, request: Request, actor: Operator) -> ApplicationLine:
    return ApplicationLine.of(apps.unlock_application(ctx_of(request), reference, actor=actor))


@router.post(
    "/applications/{reference}/reissue-pin",
    response_model=ReissuedOut,
    summary="A new PIN and envelope: the old PIN and every open session end at once (audited)",
)
def reissue_pin(reference: str, request: Request, actor: Operator) -> ReissuedOut:
    new = apps.reissue_pin(ctx_of(request), reference, actor=actor)
    envelope = render_pin_envelope_html(new.reference_number, new.pin, new.server_name, new.org_name_en, reissued=True)
    return ReissuedOut(
        reference_number=new.reference_number, pin=new.pin, envelope_html=envelope, sessions_ended=new.sessions_ended
    )
