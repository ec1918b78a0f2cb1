"""Which page an application belongs on: the state machine's ``next_step`` mapped onto portal URLs."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ...core.application import Step, next_step
from .common import LoginRequired, app_id_of, ctx_of, notify, redirect, render, services

__all__ = ["STEP_PATHS", "current_step", "actor", "application", "move_on", "at_step", "csrf_refused"]

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
    """The application as the services show it. A GET changes nothing, so within one GET it is read once
    (a page asks for it for its content, its step and its links); a POST reads it afresh each time, since
    the action it runs moves the application on."""
    if request.method != "GET":
        return services(request).applications.get_application(ctx_of(request), app_id)
    seen: dict[int, Any] | None = getattr(request.state, "portal_applications", None)
    if seen is None:
        seen = {}
        request.state.portal_applications = seen
    if app_id not in seen:
        seen[app_id] = services(request).applications.get_application(ctx_of(request), app_id)
    return seen[app_id]


def current_step(request: Request, app_id: int) -> str:
    """The page that continues from where the application stands (one step per page)."""
    return STEP_PATHS[next_step(str(application(request, app_id).state))]


def actor(request: Request, app_id: int) -> str:
    """The audit actor of a portal action: the subscriber, named by reference number (never the PIN)."""
    return f"subscriber:{services(request).applications.reference_of(ctx_of(request), app_id)}"


def at_step(request: Request, app_id: int, step: Step) -> bool:
    """True when ``step`` is the application's next step (the page's form can still do something)."""
    return next_step(str(application(request, app_id).state)) is step


def move_on(request: Request, app_id: int, notice: str = "moved_on") -> Response:
    """Go to where the application stands, saying why (issue 10 point 10).

    Back, a reload, a second tab or a new log-in can post a form of a step the application has left. Nothing
    was changed by that post (the services refused it), so the subscriber is taken on to the current step,
    with a one-line notice instead of an error page.
    """
    notify(request, notice)
    return redirect(request, current_step(request, app_id))


def csrf_refused(request: Request) -> Response:
    """A form that expired (a new log-in in another tab, a reload after log-out) or came from elsewhere: 403.

    Nothing was done. Instead of a dead end the page offers the way on: the application's current step when
    the session is still logged in, the log-in page otherwise.
    """
    try:
        continue_url: str | None = current_step(request, app_id_of(request))
    except LoginRequired:
        continue_url = None
    return render(request, "error.html", status_code=403, kind="csrf", continue_url=continue_url)
