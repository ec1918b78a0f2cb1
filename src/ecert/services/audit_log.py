"""The audit log as an operator reads it (``ecert-ca audit show``, ``GET /api/v1/operator/audit-events``):
filtered, newest first, a page at a time.

Reading changes nothing and is not itself logged: whoever can run the operator's commands on the data
directory can already read the database, and the API asks for the operator's token. What comes back is what
was recorded: the details never hold a secret, because ``store.audit`` refuses to record one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..core.errors import EcertError
from ..store.audit_search import EventQuery, events
from .context import Context

__all__ = ["MAX_EVENTS", "AuditLine", "EventQuery", "read_events"]

MAX_EVENTS = 1000  # one page: a longer look back pages with before_id


@dataclass(frozen=True)
class AuditLine:
    """One event of the log, detached from the database session."""

    id: int
    at: datetime
    actor: str
    event: str
    subject: str | None
    details: dict[str, Any]


def read_events(ctx: Context, query: EventQuery) -> list[AuditLine]:
    """The newest events matching ``query``; a page larger than MAX_EVENTS or smaller than 1 is refused."""
    if not 1 <= query.limit <= MAX_EVENTS:
        raise EcertError(f"a page holds 1 to {MAX_EVENTS} events, not {query.limit}", value=query.limit)
    if any("\x00" in text for text in (query.event, query.subject, query.actor) if text is not None):
        # PostgreSQL refuses NUL in a text parameter (a 500, not an answer); no recorded value holds one.
        raise EcertError("a filter holds a NUL character, which no recorded event has")
    with ctx.read() as session:
        return [
            AuditLine(row.id, row.at, row.actor, row.event, row.subject, dict(row.details))
            for row in events(session, query)
        ]
