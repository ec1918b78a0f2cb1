"""Named storage functions of the ACME front door (Boulder's SA for ACME): nonces, EAB credentials, accounts.

Nonces live in the database by default and in Redis when configured; both answer the same two questions
(store one, take one once), so several ``ecert-ca serve`` processes sharing either agree on what was used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from .models_acme import AcmeAccount, AcmeEabCredential, AcmeNonce

__all__ = [
    "AccountFields",
    "RedisNonces",
    "account_by_id",
    "account_fields",
    "account_by_thumbprint",
    "add_account",
    "add_eab_credential",
    "record_used_nonce",
    "bind_eab_credential",
    "eab_by_kid",
    "purge_expired_nonces",
    "set_account_contact",
    "set_account_status",
]


# --- nonces in the database -------------------------------------------------------------------------


# Built once, on the table (a Core INSERT): it runs on every ACME POST, and the ORM's bulk-insert path cost
# three times as much for one row.
_RECORD_NONCE = insert(cast(Table, AcmeNonce.__table__))


def record_used_nonce(session: Session, value: str, *, expires_at: datetime) -> None:
    """Record a nonce as used; a second use of it fails on the primary key (the replay is refused)."""
    session.execute(_RECORD_NONCE, {"value": value, "expires_at": expires_at})


def purge_expired_nonces(session: Session, *, now: datetime, limit: int = 500) -> int:
    """Drop records of used nonces past their lifetime (they can no longer be replayed), a bounded batch."""
    stale = select(AcmeNonce.value).where(AcmeNonce.expires_at <= now).limit(limit)
    result = session.execute(delete(AcmeNonce).where(AcmeNonce.value.in_(stale)))
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


# --- nonces in Redis --------------------------------------------------------------------------------


class _Redis(Protocol):
    def set(self, name: str, value: str, *, ex: int, nx: bool) -> Any: ...


class RedisNonces:
    """Used nonces as Redis keys: SET NX makes the first use win (atomic on the server); the TTL collects them."""

    def __init__(self, client: _Redis, namespace: str = "ecert:") -> None:
        self.client = client
        self.prefix = f"{namespace}acme:nonce:"  # several CAs (or test runs) may share one Redis

    def mark_used(self, value: str, *, expires_at: datetime, now: datetime) -> bool:
        ttl = max(1, int((expires_at - now).total_seconds()) + 1)
        return bool(self.client.set(self.prefix + value, "1", ex=ttl, nx=True))


# --- EAB credentials --------------------------------------------------------------------------------


def add_eab_credential(session: Session, **fields: Any) -> AcmeEabCredential:
    row = AcmeEabCredential(**fields)
    session.add(row)
    session.flush()
    return row


def eab_by_kid(session: Session, kid: str) -> AcmeEabCredential | None:
    return session.scalars(select(AcmeEabCredential).where(AcmeEabCredential.kid == kid)).first()


def bind_eab_credential(session: Session, cred_id: int, *, source: str, target: str, now: datetime) -> bool:
    """Compare-and-set the credential's status (unused -> bound): exactly one of two racing binds wins."""
    result = session.execute(
        update(AcmeEabCredential)
        .where(AcmeEabCredential.id == cred_id, AcmeEabCredential.status == source)
        .values(status=target, bound_at=now)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


# --- accounts ---------------------------------------------------------------------------------------


def add_account(session: Session, **fields: Any) -> AcmeAccount:
    row = AcmeAccount(**fields)
    session.add(row)
    session.flush()
    return row


def account_by_id(session: Session, account_id: int) -> AcmeAccount | None:
    return session.get(AcmeAccount, account_id)


class AccountFields(NamedTuple):
    """What every ACME request reads of the account that signed it."""

    id: int
    status: str
    jwk: dict[str, Any]
    contact: list[str] | None
    application_id: int
    created_at: datetime


_ACCOUNT_FIELDS = select(
    AcmeAccount.id,
    AcmeAccount.status,
    AcmeAccount.jwk,
    AcmeAccount.contact,
    AcmeAccount.application_id,
    AcmeAccount.created_at,
).where(AcmeAccount.id == bindparam("account_id"))


def account_fields(session: Session, account_id: int) -> AccountFields | None:
    """The signing account's fields in a statement built once: this runs on every ACME POST, and building a
    statement (or loading a whole row into the session) cost more than running the query."""
    found = session.execute(_ACCOUNT_FIELDS, {"account_id": account_id}).one_or_none()
    return None if found is None else AccountFields(*found)


def account_by_thumbprint(session: Session, thumbprint: str) -> AcmeAccount | None:
    return session.scalars(select(AcmeAccount).where(AcmeAccount.key_thumbprint == thumbprint)).first()


def set_account_contact(
    session: Session, account_id: int, contact: list[str], *, while_status: str, now: datetime
) -> bool:
    """Replace the account's contacts if it still has ``while_status``; False when it has not."""
    result = session.execute(
        update(AcmeAccount)
        .where(AcmeAccount.id == account_id, AcmeAccount.status == while_status)
        .values(contact=contact, updated_at=now)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def set_account_status(session: Session, account_id: int, *, source: str, target: str, now: datetime) -> bool:
    result = session.execute(
        update(AcmeAccount)
        .where(AcmeAccount.id == account_id, AcmeAccount.status == source)
        .values(status=target, updated_at=now)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
