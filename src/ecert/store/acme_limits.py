"""Named storage functions for ACME rate limits, renewal information, revokeCert and keyChange.

Limit counters live in the database by default and in Redis when configured; both spend one unit with a
single atomic step, so several ``ecert-ca serve`` processes sharing either never let more through than
the limit allows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import CA, Certificate
from .models_acme import AcmeAccount
from .models_acme_limits import AcmeLimitCount, AcmeReplacement

__all__ = [
    "RedisCounters",
    "accounts_of_application",
    "add_to_count",
    "certificate_by_issuer_key",
    "claim_replacement",
    "count_in_window",
    "purge_expired_counts",
    "release_replacement",
    "release_replacements_of_order",
    "replacement_of",
    "set_account_key",
    "spend_count",
]


# --- rate-limit counters in the database ------------------------------------------------------------


def _ensure_row(session: Session, name: str, key: str, window_start: datetime, expires_at: datetime) -> None:
    """The counter row of this window, made at 0 if missing; a racing insert by another process is fine."""
    values = {"limit_name": name, "key": key, "window_start": window_start, "count": 0, "expires_at": expires_at}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(AcmeLimitCount).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(AcmeLimitCount).values(**values).on_conflict_do_nothing())
    else:  # pragma: no cover - ecert runs on SQLite or PostgreSQL
        try:
            with session.begin_nested():
                session.execute(insert(AcmeLimitCount).values(**values))
        except IntegrityError:
            pass


def _where(name: str, key: str, window_start: datetime) -> Any:
    return (
        AcmeLimitCount.limit_name == name,
        AcmeLimitCount.key == key,
        AcmeLimitCount.window_start == window_start,
    )


def spend_count(
    session: Session, name: str, key: str, *, window_start: datetime, expires_at: datetime, limit: int
) -> bool:
    """Add one to the window's count if it is under ``limit``: one compare-and-set, True when it was spent."""
    _ensure_row(session, name, key, window_start, expires_at)
    result = session.execute(
        update(AcmeLimitCount)
        .where(*_where(name, key, window_start), AcmeLimitCount.count < limit)
        .values(count=AcmeLimitCount.count + 1)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def add_to_count(session: Session, name: str, key: str, *, window_start: datetime, expires_at: datetime) -> None:
    """Count one event that happened (a failed validation) whatever the limit: the limit refuses the next ask."""
    _ensure_row(session, name, key, window_start, expires_at)
    session.execute(
        update(AcmeLimitCount).where(*_where(name, key, window_start)).values(count=AcmeLimitCount.count + 1)
    )


def count_in_window(session: Session, name: str, key: str, *, window_start: datetime) -> int:
    found = session.scalar(select(AcmeLimitCount.count).where(*_where(name, key, window_start)))
    return int(found or 0)


def purge_expired_counts(session: Session, *, now: datetime) -> int:
    """Drop counters of windows that ended (one row per key and window, so the sweep stays small)."""
    result = session.execute(delete(AcmeLimitCount).where(AcmeLimitCount.expires_at <= now))
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


# --- rate-limit counters in Redis ---------------------------------------------------------------------


class _Redis(Protocol):
    def incr(self, name: str) -> Any: ...
    def decr(self, name: str) -> Any: ...
    def expire(self, name: str, time: int) -> Any: ...
    def get(self, name: str) -> Any: ...


class RedisCounters:
    """Counters as Redis keys: INCR is atomic on the server; an increment past the limit is undone at once."""

    def __init__(self, client: _Redis, namespace: str = "ecert:") -> None:
        self.client = client
        self.prefix = f"{namespace}acme:limit:"  # several CAs (or test runs) may share one Redis

    def _key(self, name: str, key: str, window_start: datetime) -> str:
        return f"{self.prefix}{name}:{key}:{int(window_start.timestamp())}"

    def spend(self, name: str, key: str, *, window_start: datetime, ttl: int, limit: int) -> bool:
        redis_key = self._key(name, key, window_start)
        value = int(self.client.incr(redis_key))
        if value == 1:
            self.client.expire(redis_key, ttl)
        if value > limit:
            self.client.decr(redis_key)
            return False
        return True

    def add(self, name: str, key: str, *, window_start: datetime, ttl: int) -> None:
        redis_key = self._key(name, key, window_start)
        if int(self.client.incr(redis_key)) == 1:
            self.client.expire(redis_key, ttl)

    def count(self, name: str, key: str, *, window_start: datetime) -> int:
        found = self.client.get(self._key(name, key, window_start))
        return int(found or 0)


# --- certificates as ACME names them ----------------------------------------------------------------


def certificate_by_issuer_key(session: Session, ski_hex: str, serial_hex: str) -> tuple[Certificate, CA] | None:
    """The certificate with this serial under the CA whose subject key identifier is ``ski_hex`` (RFC 9773 4.1)."""
    row = session.execute(
        select(Certificate, CA)
        .join(CA, CA.id == Certificate.ca_id)
        .where(CA.ski_hex == ski_hex, Certificate.serial_hex == serial_hex)
    ).first()
    return None if row is None else (row[0], row[1])


# --- RFC 9773 replacements ------------------------------------------------------------------------


def replacement_of(session: Session, certificate_id: int) -> AcmeReplacement | None:
    return session.get(AcmeReplacement, certificate_id)


def claim_replacement(
    session: Session, *, certificate_id: int, account_id: int, order_ref: str | None, now: datetime
) -> bool:
    """Mark the certificate as being replaced; False when another order claimed it first (the primary key)."""
    try:
        with session.begin_nested():
            session.add(
                AcmeReplacement(
                    certificate_id=certificate_id, account_id=account_id, order_ref=order_ref, claimed_at=now
                )
            )
    except IntegrityError:
        return False
    return True


def release_replacement(session: Session, certificate_id: int, *, order_ref: str | None) -> bool:
    """Free the claim again (the claiming order became invalid, RFC 9773 5); True when a claim was dropped."""
    result = session.execute(
        delete(AcmeReplacement).where(
            AcmeReplacement.certificate_id == certificate_id, AcmeReplacement.order_ref == order_ref
        )
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def release_replacements_of_order(session: Session, order_ref: str) -> int:
    """Free every claim the order holds (it became invalid, RFC 9773 5); returns how many."""
    result = session.execute(delete(AcmeReplacement).where(AcmeReplacement.order_ref == order_ref))
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


# --- accounts -----------------------------------------------------------------------------------------


def accounts_of_application(session: Session, application_id: int, *, status: str) -> list[AcmeAccount]:
    return list(
        session.scalars(
            select(AcmeAccount).where(AcmeAccount.application_id == application_id, AcmeAccount.status == status)
        )
    )


def set_account_key(
    session: Session, account_id: int, *, old_thumbprint: str, new_thumbprint: str, jwk: dict[str, Any], now: datetime
) -> bool:
    """Compare-and-set the account key (RFC 8555 7.3.5); False when the key changed meanwhile or is taken."""
    try:
        with session.begin_nested():
            result = session.execute(
                update(AcmeAccount)
                .where(AcmeAccount.id == account_id, AcmeAccount.key_thumbprint == old_thumbprint)
                .values(key_thumbprint=new_thumbprint, jwk=jwk, updated_at=now)
            )
    except IntegrityError:
        return False
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
