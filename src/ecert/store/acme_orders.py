"""Named storage functions for ACME orders, authorizations and challenges (Boulder's SA, for ACME).

Status changes are compare-and-set updates: the caller gets the (from, to) pair from the transition tables
in ``core.acme_orders`` and this module moves the row only if it still is in ``source``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from .models import DomainValidation
from .models_acme_orders import AcmeAuthorization, AcmeChallenge, AcmeOrder, AcmeOrderAuthorization

__all__ = [
    "add_authorization",
    "add_challenge",
    "add_domain_validation",
    "add_order",
    "authorization",
    "authorizations_of_order",
    "challenge",
    "challenges_of",
    "link_order",
    "move_authorization",
    "move_challenge",
    "move_order",
    "order",
    "order_ids_of_account",
    "lock_orders_of_authorization",
    "reusable_authorization",
    "stale_processing_challenges",
]


def _moved(result: Any) -> bool:
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


# --- orders -------------------------------------------------------------------------------------------


def add_order(session: Session, **fields: Any) -> AcmeOrder:
    row = AcmeOrder(**fields)
    session.add(row)
    session.flush()
    return row


def order(session: Session, order_id: int) -> AcmeOrder | None:
    return session.get(AcmeOrder, order_id)


def order_ids_of_account(session: Session, account_id: int, *, limit: int = 1000) -> list[int]:
    """RFC 8555 7.1.2.1: the account's orders, newest first."""
    query = select(AcmeOrder.id).where(AcmeOrder.account_id == account_id).order_by(AcmeOrder.id.desc()).limit(limit)
    return list(session.scalars(query))


def move_order(session: Session, order_id: int, *, source: str, target: str, now: datetime, **values: Any) -> bool:
    result = session.execute(
        update(AcmeOrder)
        .where(AcmeOrder.id == order_id, AcmeOrder.status == source)
        .values(status=target, updated_at=now, **values)
    )
    return _moved(result)


def link_order(session: Session, order_id: int, authz_ids: Sequence[int]) -> None:
    session.add_all(AcmeOrderAuthorization(order_id=order_id, authz_id=a) for a in authz_ids)
    session.flush()


def authorizations_of_order(session: Session, order_id: int) -> list[AcmeAuthorization]:
    query = (
        select(AcmeAuthorization)
        .join(AcmeOrderAuthorization, AcmeOrderAuthorization.authz_id == AcmeAuthorization.id)
        .where(AcmeOrderAuthorization.order_id == order_id)
        .order_by(AcmeAuthorization.id)
    )
    return list(session.scalars(query))


def lock_orders_of_authorization(session: Session, authz_id: int) -> list[AcmeOrder]:
    """The orders waiting on this authorization, locked until the transaction ends (in id order, so two
    transactions never lock them crosswise).

    Two authorizations of one order validated at once each read the other as still pending; without the lock
    neither moved the order to ready (write skew under READ COMMITTED), and the order stayed pending for good.
    With it the second waits, then reads the first's committed result. SQLite's writer lock already serializes.
    """
    query = (
        select(AcmeOrder)
        .join(AcmeOrderAuthorization, AcmeOrderAuthorization.order_id == AcmeOrder.id)
        .where(AcmeOrderAuthorization.authz_id == authz_id)
        .order_by(AcmeOrder.id)
        .with_for_update(of=AcmeOrder)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


# --- authorizations -------------------------------------------------------------------------------------


def add_authorization(session: Session, **fields: Any) -> AcmeAuthorization:
    row = AcmeAuthorization(**fields)
    session.add(row)
    session.flush()
    return row


def authorization(session: Session, authz_id: int) -> AcmeAuthorization | None:
    return session.get(AcmeAuthorization, authz_id)


def reusable_authorization(
    session: Session, *, account_id: int, identifier: str, wildcard: bool, statuses: Sequence[str], now: datetime
) -> AcmeAuthorization | None:
    """The newest authorization of this account for this name in one of ``statuses`` that has not expired."""
    query = (
        select(AcmeAuthorization)
        .where(
            AcmeAuthorization.account_id == account_id,
            AcmeAuthorization.identifier == identifier,
            AcmeAuthorization.wildcard == wildcard,
            AcmeAuthorization.status.in_(statuses),
            AcmeAuthorization.expires_at > now,
        )
        .order_by(AcmeAuthorization.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def move_authorization(
    session: Session, authz_id: int, *, source: str, target: str, now: datetime, **values: Any
) -> bool:
    result = session.execute(
        update(AcmeAuthorization)
        .where(AcmeAuthorization.id == authz_id, AcmeAuthorization.status == source)
        .values(status=target, updated_at=now, **values)
    )
    return _moved(result)


# --- challenges ------------------------------------------------------------------------------------------


def add_challenge(session: Session, **fields: Any) -> AcmeChallenge:
    row = AcmeChallenge(**fields)
    session.add(row)
    session.flush()
    return row


def challenge(session: Session, challenge_id: int) -> AcmeChallenge | None:
    return session.get(AcmeChallenge, challenge_id)


def challenges_of(session: Session, authz_id: int) -> list[AcmeChallenge]:
    return list(
        session.scalars(select(AcmeChallenge).where(AcmeChallenge.authz_id == authz_id).order_by(AcmeChallenge.id))
    )


def move_challenge(
    session: Session, challenge_id: int, *, source: str, target: str, now: datetime, **values: Any
) -> bool:
    result = session.execute(
        update(AcmeChallenge)
        .where(AcmeChallenge.id == challenge_id, AcmeChallenge.status == source)
        .values(status=target, updated_at=now, **values)
    )
    return _moved(result)


def stale_processing_challenges(session: Session, *, started_before: datetime, limit: int = 100) -> list[int]:
    """Challenges left processing since before ``started_before`` (their process stopped): the job retakes them."""
    query = (
        select(AcmeChallenge.id)
        .where(AcmeChallenge.status == "processing", AcmeChallenge.started_at < started_before)
        .order_by(AcmeChallenge.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def claim_challenge(session: Session, challenge_id: int, *, started_at: datetime, now: datetime) -> bool:
    """Take a processing challenge for one worker: only the caller whose update saw ``started_at`` wins."""
    result = session.execute(
        update(AcmeChallenge)
        .where(
            AcmeChallenge.id == challenge_id,
            AcmeChallenge.status == "processing",
            AcmeChallenge.started_at == started_at,
        )
        .values(started_at=now, updated_at=now)
    )
    return _moved(result)


# --- the evidence the registration authority reads --------------------------------------------------------


def add_domain_validation(session: Session, **fields: Any) -> DomainValidation:
    row = DomainValidation(**fields)
    session.add(row)
    session.flush()
    return row
