"""When an application is closed or its certificate revoked by the subscriber, its ACME accounts stop too.

Issue 13 point 2: an account speaks for one vetted application; once the application stands for nothing,
nothing its accounts sign may be accepted. The CA moves each account to ``revoked`` (RFC 8555 7.1.6) in
the caller's transaction, with one audit event per account.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..core.acme_rules import AccountAction, AccountStatus, account_move
from ..store import acme as store_acme
from ..store import acme_limits as store
from ..store import audit

__all__ = ["revoke_accounts_of_application"]


def revoke_accounts_of_application(
    session: Session, application_id: int, *, now: datetime, actor: str, why: str
) -> int:
    """Revoke every valid account of the application; returns how many (0 when it had none)."""
    changed = 0
    for row in store.accounts_of_application(session, application_id, status=AccountStatus.VALID.value):
        source, target = account_move(row.status, AccountAction.REVOKE)
        if not store_acme.set_account_status(session, row.id, source=source.value, target=target.value, now=now):
            continue  # deactivated by its holder meanwhile: nothing left to stop
        audit.append(
            session,
            actor=actor,
            event="acme.account.revoked",
            subject=str(row.id),
            details={"account_id": row.id, "application_id": application_id, "why": why},
            now=now,
        )
        changed += 1
    return changed
