"""Which page an application belongs on: the state machine's ``next_step`` mapped onto portal URLs."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ...core.application import Step, next_step
from .common import ctx_of, services

__all__ = ["STEP_PATHS", "current_step", "actor", "application"]

STEP_PATHS: dict[Step, str] = {
    Step.CONFIRM: "/portal/confirm",
    Step.DCV: "/portal/dcv",
    Step.CSR: "/portal/csr",
    Step.WAIT: "/portal/certificate",
    Step.CERTIFICATE: "/portal/certificate",
    Step.DOWNLOAD: "/portal/download",
    Step.CLOSED: "/portal/closed",
}


def application(request: Request, app_id: int) -> Any:
    return services(request).applications.get_application(ctx_of(request), app_id)


def current_step(request: Request, app_id: int) -> str:
    """The page that continues from where the application stands (one step per page)."""
    return STEP_PATHS[next_step(str(application(request, app_id).state))]


def actor(request: Request, app_id: int) -> str:
    """The audit actor of a portal action: the subscriber, named by reference number (never the PIN)."""
    return f"subscriber:{application(request, app_id).reference_number}"
