"""The operator's API onto the audit log: ``GET /api/v1/operator/audit-events``, what ``ecert-ca audit show`` prints.

Read-only and behind the operator token like the rest of ``/operator``; the filters and the paging are the
service's (``services/audit_log.py``), the edge only carries them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime

from ...services.audit_log import MAX_EVENTS, AuditLine, EventQuery, read_events
from .deps import Operator, ctx_of

router = APIRouter(prefix="/operator", tags=["operator"])


@router.get(
    "/audit-events",
    response_model=list[AuditLine],
    summary="The audit log, newest first, narrowed by event (name or prefix ending in '.'), subject, actor, time",
)
def audit_events(
    request: Request,
    actor: Operator,
    event: Annotated[str | None, Query(max_length=100)] = None,
    subject: Annotated[str | None, Query(max_length=300)] = None,
    by: Annotated[str | None, Query(max_length=100, description="who acted, as recorded")] = None,
    since: AwareDatetime | None = None,
    before: Annotated[int | None, Query(ge=1, le=10**18, description="only rows older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 50,
) -> list[AuditLine]:
    query = EventQuery(limit, event=event, subject=subject, actor=by, since=since, before_id=before)
    return read_events(ctx_of(request), query)
