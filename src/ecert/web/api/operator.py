"""The operator's API: register an approved application (reference number, PIN envelope) and read one."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...services import applications as apps
from ...services.pin_envelope import render_pin_envelope_html
from .deps import Operator, ctx_of
from .schemas import ApplicationOut, RegisteredOut

router = APIRouter(prefix="/operator", tags=["operator"])


@router.post("/applications", status_code=201, response_model=RegisteredOut,
             summary="Register an approved application; the PIN is returned once")
def register(body: apps.ApplicationInput, request: Request, actor: Operator) -> RegisteredOut:
    reg = apps.register_application(ctx_of(request), body, actor=actor)
    envelope = render_pin_envelope_html(reg.reference_number, reg.pin, body.server_name, body.org_name_en)
    return RegisteredOut(application_id=reg.application_id, reference_number=reg.reference_number, pin=reg.pin,
                         envelope_html=envelope, mail_sent=reg.mail_sent)


@router.get("/applications/{reference}", response_model=ApplicationOut, summary="An application by reference")
def read(reference: str, request: Request, actor: Operator) -> ApplicationOut:
    return ApplicationOut.of(apps.get_application_by_reference(ctx_of(request), reference))
