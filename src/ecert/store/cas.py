"""Storage functions for CA certificates: lookups by role and status, and status moves by compare-and-set.

The services ask for CAs by what they mean ("the active root", "the issuing CAs that still publish");
only this module knows the queries. Every status change goes through ``core.ca_lifecycle``. Functions
work inside the caller's session and never commit.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..core.ca_lifecycle import CaAction, CaStatus, ca_move
from ..core.errors import Conflict
from .models import CA

__all__ = [
    "ca_by_id",
    "ca_by_label",
    "ca_labels",
    "root_exists",
    "active_root",
    "active_of_role",
    "move_ca",
    "set_ca_fields",
    "publishing_labels",
    "answering_cas",
    "revoked_children",
    "children_revoked_since",
    "due_revocations",
    "cas_of_roles",
    "crosses_of",
]

# What still answers for its certificates: an active or retired CA (and a revoked one keeps its CRL).
_PUBLISHING = (CaStatus.ACTIVE.value, CaStatus.RETIRED.value, CaStatus.REVOKED.value)
_ANSWERING = (CaStatus.ACTIVE.value, CaStatus.RETIRED.value)


def ca_by_id(session: Session, ca_id: int) -> CA | None:
    return session.get(CA, ca_id)


def ca_by_label(session: Session, label: str) -> CA | None:
    return session.scalar(select(CA).where(CA.label == label))


def ca_labels(session: Session) -> set[str]:
    return set(session.scalars(select(CA.label)))


def root_exists(session: Session) -> bool:
    """Whether ``init`` already ran: any root, whatever its status."""
    return session.scalar(select(CA.id).where(CA.role == "root").limit(1)) is not None


def active_root(session: Session) -> CA | None:
    return session.scalar(
        select(CA).where(CA.role == "root", CA.status == CaStatus.ACTIVE.value).order_by(CA.id.desc()).limit(1)
    )


def active_of_role(session: Session, role: str) -> list[CA]:
    """The active CAs of ``role``, oldest first (a rollover retires them all)."""
    return list(session.scalars(select(CA).where(CA.role == role, CA.status == CaStatus.ACTIVE.value).order_by(CA.id)))


def move_ca(session: Session, ca_id: int, action: CaAction, *, current: CaStatus | str, **values: Any) -> CA:
    """Apply ``action`` to one CA by compare-and-set from ``current``; Conflict if it moved meanwhile."""
    move = ca_move(current, action)
    row = session.scalar(
        update(CA)
        .where(CA.id == ca_id, CA.status == move.source.value)
        .values(status=move.target.value, **values)
        .returning(CA)
        .execution_options(synchronize_session=False)
    )
    if row is None:
        raise Conflict(f"CA {ca_id} is no longer {move.source.value}", value=ca_id)
    session.refresh(row)
    return row


def set_ca_fields(session: Session, ca_id: int, **values: Any) -> None:
    """Change fields that are not the status (a scheduled revocation's date and reason)."""
    session.execute(update(CA).where(CA.id == ca_id).values(**values).execution_options(synchronize_session=False))


def publishing_labels(session: Session, roles: Collection[str], now: datetime) -> list[str]:
    """Labels of CAs of ``roles`` that still publish status: unexpired, key held here, any status."""
    return list(
        session.scalars(
            select(CA.label)
            .where(CA.role.in_(roles), CA.status.in_(_PUBLISHING), CA.not_after > now, CA.key_ref.is_not(None))
            .order_by(CA.id)
        )
    )


def answering_cas(session: Session, roles: Collection[str]) -> list[CA]:
    """CAs of ``roles`` whose certificates' status OCSP answers for (active or retired)."""
    return list(session.scalars(select(CA).where(CA.role.in_(roles), CA.status.in_(_ANSWERING)).order_by(CA.id)))


def revoked_children(session: Session, root_id: int, until: datetime) -> list[CA]:
    """The root's revoked subordinates up to ``until``: the ARL's entries."""
    return list(
        session.scalars(
            select(CA)
            .where(
                CA.parent_id == root_id,
                CA.status == CaStatus.REVOKED.value,
                CA.revoked_at.is_not(None),
                CA.revoked_at <= until,
            )
            .order_by(CA.id)
        )
    )


def children_revoked_since(session: Session, root_id: int, after: datetime, until: datetime) -> int:
    """How many subordinates were revoked after ``after`` (an ARL signed then misses them)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(CA)
            .where(
                CA.parent_id == root_id,
                CA.status == CaStatus.REVOKED.value,
                CA.revoked_at.is_not(None),
                CA.revoked_at > after,
                CA.revoked_at <= until,
            )
        )
        or 0
    )


def due_revocations(session: Session, now: datetime) -> list[CA]:
    """CAs whose scheduled revocation date has come but which are not yet revoked."""
    return list(
        session.scalars(
            select(CA)
            .where(CA.status != CaStatus.REVOKED.value, CA.revoked_at.is_not(None), CA.revoked_at <= now)
            .order_by(CA.id)
        )
    )


def cas_of_roles(session: Session, roles: Collection[str] | None = None) -> list[CA]:
    """Every CA (of ``roles``), in the order they were made."""
    query = select(CA).order_by(CA.id)
    if roles is not None:
        query = query.where(CA.role.in_(roles))
    return list(session.scalars(query))


def crosses_of(session: Session, root: CA) -> list[CA]:
    """Unrevoked cross-certificates for ``root``: same subject and key, issued by an external root."""
    return list(
        session.scalars(
            select(CA)
            .where(
                CA.role == "cross",
                CA.subject_dn == root.subject_dn,
                CA.spki_sha256 == root.spki_sha256,
                CA.status != CaStatus.REVOKED.value,
            )
            .order_by(CA.id)
        )
    )
