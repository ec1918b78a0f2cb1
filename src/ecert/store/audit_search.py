"""Reading the audit log back: the newest events first, narrowed by what an operator or an auditor asks.

The log is written by ``store.audit`` only; this module only reads it (BR 5.4.1 lists what is logged, and an
auditor samples it: the events around a certificate, an application or one kind of event). Narrowing is by
the columns the table indexes (event, subject) or that a reader names exactly (actor), and the paging is by
row id, which only grows, so a page never shifts while new events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEvent

__all__ = ["EventQuery", "events"]


@dataclass(frozen=True)
class EventQuery:
    """What to read: ``event`` is an event name (``cert.issued``) or a prefix ending in a dot (``acme.``);
    ``before_id`` pages back from an id seen on the previous page."""

    limit: int
    event: str | None = None
    subject: str | None = None
    actor: str | None = None
    since: datetime | None = None
    before_id: int | None = None


def events(session: Session, query: EventQuery) -> list[AuditEvent]:
    """At most ``query.limit`` events matching every given filter, newest (highest id) first."""
    statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(query.limit)
    if query.event is not None:
        named = AuditEvent.event.startswith(query.event, autoescape=True)
        statement = statement.where(named if query.event.endswith(".") else AuditEvent.event == query.event)
    if query.subject is not None:
        statement = statement.where(AuditEvent.subject == query.subject)
    if query.actor is not None:
        statement = statement.where(AuditEvent.actor == query.actor)
    if query.since is not None:
        statement = statement.where(AuditEvent.at >= query.since)
    if query.before_id is not None:
        statement = statement.where(AuditEvent.id < query.before_id)
    return list(session.scalars(statement))
