"""Storage functions for applications, their log-in attempts and portal sessions (Boulder's ``sa``, in small).

Named functions only: ``services/applications.py`` reaches these tables through them and builds no query
itself. Every function works inside the caller's session and never commits (services/ own transactions);
bulk updates expire any loaded copy so the caller never reads a stale row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from .models import Application, LoginAttempt, PortalSession

__all__ = [
    "RESET_ADDR_PREFIX",
    "LiveSession",
    "add_application",
    "add_portal_session",
    "compare_and_set_application_state",
    "end_portal_session",
    "end_sessions_of_application",
    "extend_portal_session",
    "failure_times",
    "find_portal_session",
    "find_session_application",
    "get_application",
    "get_application_by_reference",
    "last_reset",
    "list_applications",
    "note_login_failure",
    "note_login_success",
    "record_login_attempt",
    "record_login_reset",
    "reference_taken",
    "set_pin_hash",
]

# An operator's unlock or PIN reissue is stored as a successful attempt from this pseudo-address: like a
# real success it starts the failure count afresh, and the address limit (failures only) never sees it.
RESET_ADDR_PREFIX = "reset:"


# --- applications ---------------------------------------------------------------------------------


def get_application(session: Session, app_id: int) -> Application | None:
    return session.get(Application, app_id)


def get_application_by_reference(session: Session, reference_number: str) -> Application | None:
    return session.scalars(select(Application).where(Application.reference_number == reference_number)).first()


def reference_taken(session: Session, reference_number: str) -> bool:
    """Whether a reference number is already used (the registration draws again if so)."""
    found = session.scalar(select(Application.id).where(Application.reference_number == reference_number))
    return found is not None


def add_application(session: Session, **fields: Any) -> Application:
    """Insert an application; flushes so a reference-number clash raises here (IntegrityError)."""
    row = Application(**fields)
    session.add(row)
    session.flush()
    return row


def compare_and_set_application_state(
    session: Session,
    app_id: int,
    from_state: str,
    to_state: str,
    *,
    now: datetime,
    values: dict[str, object] | None = None,
) -> bool:
    """Move an application from ``from_state`` to ``to_state`` if it is still there; True if this call won.

    One ``UPDATE ... WHERE state = :from``: of many concurrent callers exactly one sees rowcount 1
    (stack.md: SELECT-then-UPDATE issued 16 certificates under the same race). ``values`` are set in the
    same statement (e.g. the Chinese-name choice made at confirmation).
    """
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Application)
            .where(Application.id == app_id, Application.state == from_state)
            .values(state=to_state, version=Application.version + 1, updated_at=now, **(values or {}))
            .execution_options(synchronize_session=False)
        ),
    )
    _expire_loaded(session, Application, app_id)
    return result.rowcount == 1


def list_applications(
    session: Session, *, state: str | None = None, locked_at: datetime | None = None, limit: int = 200
) -> list[Application]:
    """Applications newest first, optionally only those in ``state`` and/or locked at the instant ``locked_at``."""
    stmt: Select[tuple[Application]] = select(Application)
    if state is not None:
        stmt = stmt.where(Application.state == state)
    if locked_at is not None:
        stmt = stmt.where(Application.locked_until > locked_at)
    return list(session.scalars(stmt.order_by(Application.created_at.desc(), Application.id.desc()).limit(limit)))


def set_pin_hash(session: Session, app_id: int, pin_hash: str, *, now: datetime) -> None:
    """Replace the PIN hash: the old PIN stops working with this transaction's commit."""
    session.execute(
        update(Application)
        .where(Application.id == app_id)
        .values(pin_hash=pin_hash, version=Application.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    _expire_loaded(session, Application, app_id)


def record_login_attempt(
    session: Session, *, reference_number: str | None, client_addr: str, success: bool, now: datetime
) -> LoginAttempt:
    attempt = LoginAttempt(reference_number=reference_number, client_addr=client_addr, at=now, success=success)
    session.add(attempt)
    session.flush()
    return attempt


def record_login_reset(session: Session, *, reference_number: str, actor: str, now: datetime) -> None:
    """Start the failure count of ``reference_number`` afresh (an operator's unlock or PIN reissue)."""
    record_login_attempt(
        session, reference_number=reference_number, client_addr=(RESET_ADDR_PREFIX + actor)[:64], success=True, now=now
    )


def last_reset(session: Session, reference_number: str) -> datetime | None:
    """The last success (or operator reset) for a reference number: failures before it no longer count."""
    return session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.reference_number == reference_number, LoginAttempt.success.is_(True)
        )
    )


def failure_times(
    session: Session, *, since: datetime, reference_number: str | None = None, client_addr: str | None = None
) -> list[datetime]:
    """When the failed attempts after ``since`` happened, oldest first, per reference number and/or address."""
    if reference_number is None and client_addr is None:
        raise ValueError("count failed logins per reference number or per client address")
    stmt = select(LoginAttempt.at).where(LoginAttempt.at > since, LoginAttempt.success.is_(False))
    if reference_number is not None:
        stmt = stmt.where(LoginAttempt.reference_number == reference_number)
    if client_addr is not None:
        stmt = stmt.where(LoginAttempt.client_addr == client_addr)
    return list(session.scalars(stmt.order_by(LoginAttempt.at)))


def note_login_failure(
    session: Session, reference_number: str, *, failures: int, locked_until: datetime | None
) -> None:
    """Mirror the count and the lock on the application, for the operator's list.

    Runs the same statement whether or not the reference exists (it then changes no row), so a wrong
    reference costs what a wrong PIN costs.
    """
    session.execute(
        update(Application)
        .where(Application.reference_number == reference_number)
        .values(failed_logins=failures, locked_until=locked_until)
        .execution_options(synchronize_session=False)
    )


def note_login_success(session: Session, app_id: int) -> None:
    """Clear the mirrored count and lock (after a log-in, an unlock or a reissue)."""
    session.execute(
        update(Application)
        .where(Application.id == app_id)
        .values(failed_logins=0, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    _expire_loaded(session, Application, app_id)


# --- portal sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveSession:
    application_id: int
    expires_at: datetime
    ended_at: datetime | None


def add_portal_session(
    session: Session, *, session_id: str, application_id: int, now: datetime, expires_at: datetime
) -> None:
    session.add(PortalSession(id=session_id, application_id=application_id, created_at=now, expires_at=expires_at))
    session.flush()


# The subscriber API's reads run on every request: their statements are built once (building one and
# computing its cache key cost more than running it on SQLite: 0.73 ms against 0.32 ms per read).
_PORTAL_SESSION = (
    select(PortalSession.application_id, PortalSession.expires_at, PortalSession.ended_at)
    .where(PortalSession.id == bindparam("session_id"))
    .execution_options(sqlite_read_only=True)
)
_SESSION_APPLICATION = (
    select(PortalSession.expires_at, PortalSession.ended_at, Application)
    .join(Application, Application.id == PortalSession.application_id)
    .where(PortalSession.id == bindparam("session_id"))
    .execution_options(sqlite_read_only=True)
)


def find_portal_session(session: Session, session_id: str) -> LiveSession | None:
    found = session.execute(_PORTAL_SESSION, {"session_id": session_id}).one_or_none()
    if found is None:
        return None
    return LiveSession(int(found.application_id), found.expires_at, found.ended_at)


def find_session_application(session: Session, session_id: str) -> tuple[LiveSession, Application] | None:
    """A portal session and its application in one query: the subscriber API's reads need both every time."""
    found = session.execute(_SESSION_APPLICATION, {"session_id": session_id}).one_or_none()
    if found is None:
        return None
    application: Application = found[2]
    return LiveSession(application.id, found.expires_at, found.ended_at), application


def extend_portal_session(session: Session, session_id: str, *, expires_at: datetime) -> None:
    session.execute(
        update(PortalSession)
        .where(PortalSession.id == session_id, PortalSession.ended_at.is_(None))
        .values(expires_at=expires_at)
    )


def end_portal_session(session: Session, session_id: str, *, now: datetime) -> None:
    session.execute(update(PortalSession).where(PortalSession.id == session_id).values(ended_at=now))


def end_sessions_of_application(session: Session, application_id: int, *, now: datetime) -> int:
    """End every open session of an application (a PIN reissue); returns how many were open."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(PortalSession)
            .where(
                PortalSession.application_id == application_id,
                PortalSession.ended_at.is_(None),
                PortalSession.expires_at > now,
            )
            .values(ended_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    return int(result.rowcount)


def _expire_loaded(session: Session, model: type[Any], pk: Any) -> None:
    # The bulk UPDATE bypassed the identity map; make a loaded copy reload instead of going stale.
    loaded = session.identity_map.get(identity_key(model, pk))
    if loaded is not None:
        session.expire(loaded)
