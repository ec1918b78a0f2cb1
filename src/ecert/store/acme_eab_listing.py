"""Named reads of one application's ACME credentials and accounts (what the portal and the operator API list)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models_acme import AcmeAccount, AcmeEabCredential

__all__ = ["accounts_listed", "eab_credentials_listed"]


def eab_credentials_listed(session: Session, application_id: int) -> list[AcmeEabCredential]:
    """Every EAB credential of the application, newest first (the sealed keys ride along; callers drop them)."""
    return list(
        session.scalars(
            select(AcmeEabCredential)
            .where(AcmeEabCredential.application_id == application_id)
            .order_by(AcmeEabCredential.created_at.desc(), AcmeEabCredential.id.desc())
        )
    )


def accounts_listed(session: Session, application_id: int) -> list[AcmeAccount]:
    """Every ACME account bound to the application, whatever its status, newest first."""
    return list(
        session.scalars(
            select(AcmeAccount)
            .where(AcmeAccount.application_id == application_id)
            .order_by(AcmeAccount.created_at.desc(), AcmeAccount.id.desc())
        )
    )
