"""Thin typed data-access functions for the services layer; no business rules, no commits.

Every function works inside the caller's transaction (services/ owns transactions). Writes flush so
that constraint violations surface at the call that caused them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from ecert.core.errors import NotFound
from ecert.store.models import (
    CA,
    Application,
    BlockedKey,
    Certificate,
)

__all__ = [
    "SearchBy",
    "add_blocked_key",
    "add_ca",
    "find_certificates",
    "get_ca_by_label",
    "like_escape",
    "list_cas",
    "next_crl_number",
    "normalize_serial_hex",
    "serial_to_hex",
]


SearchBy = Literal["server_name", "serial", "reference"]

_HEX = re.compile(r"^[0-9a-f]+$")


# --- serial numbers -------------------------------------------------------------------------------


def serial_to_hex(serial: int) -> str:
    """The stored spelling of a serial: lowercase hex without leading zeros."""
    if serial < 0:
        raise ValueError(f"serial numbers are positive (RFC 5280 4.1.2.2): {serial}")
    return format(serial, "x")


def normalize_serial_hex(value: str) -> str:
    """Turn a serial as people paste it (``01:AB:cd``, ``0x01ab``, spaces) into the stored spelling."""
    cleaned = re.sub(r"[\s:]", "", value).lower()
    if cleaned.startswith("0x"):
        cleaned = cleaned[2:]
    if not cleaned or not _HEX.match(cleaned):
        raise ValueError(f"not a hexadecimal serial number: {value!r}")
    return cleaned.lstrip("0") or "0"


# --- CAs ------------------------------------------------------------------------------------------


def add_ca(
    session: Session,
    *,
    label: str,
    role: str,
    subject_dn: str,
    cert_der: bytes,
    key_ref: str | None,
    not_before: datetime,
    not_after: datetime,
    spki_sha256: str,
    now: datetime,
    parent_id: int | None = None,
    ski_hex: str | None = None,
    status: str = "active",
    effective_from: datetime | None = None,
    retire_at: datetime | None = None,
) -> CA:
    ca = CA(
        label=label,
        role=role,
        subject_dn=subject_dn,
        cert_der=cert_der,
        key_ref=key_ref,
        parent_id=parent_id,
        status=status,
        effective_from=effective_from,
        not_before=not_before,
        not_after=not_after,
        ski_hex=ski_hex,
        spki_sha256=spki_sha256,
        created_at=now,
        crl_number=0,
        retire_at=retire_at,
    )
    session.add(ca)
    session.flush()
    return ca


def get_ca_by_label(session: Session, label: str) -> CA | None:
    return session.execute(select(CA).where(CA.label == label)).scalar_one_or_none()


def list_cas(session: Session, *, role: str | None = None, status: str | None = None) -> list[CA]:
    query = select(CA).order_by(CA.id)
    if role is not None:
        query = query.where(CA.role == role)
    if status is not None:
        query = query.where(CA.status == status)
    return list(session.execute(query).scalars())


def next_crl_number(session: Session, ca_id: int) -> int:
    """Take the next CRL number of a CA (RFC 5280 5.2.3: monotonically increasing), atomically.

    One ``UPDATE ... RETURNING`` on the per-issuer counter: concurrent publishers each get a distinct
    number on both engines (SQLite >= 3.35 has RETURNING). The first number is 1.
    """
    number = session.execute(
        update(CA)
        .where(CA.id == ca_id)
        .values(crl_number=CA.crl_number + 1)
        .returning(CA.crl_number)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if number is None:
        raise NotFound("no such CA", value=ca_id)
    _expire_loaded(session, CA, ca_id)
    return int(number)


# --- search --------------------------------------------------------------------------------------


def like_escape(value: str) -> str:
    """Escape LIKE wildcards so user input matches literally (used with ``escape='\\\\'``)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_certificates(session: Session, query: str, by: SearchBy, *, limit: int = 100) -> list[Certificate]:
    """Search certificates as the public repository and the RA console do; newest first.

    ``server_name`` matches a substring of the subject CN or of the application's server name, case
    folded, with ``%`` and ``_`` taken literally; ``serial`` and ``reference`` match exactly. Values
    are always bound parameters. A query holding a control character matches nothing: no name, serial or
    reference has one, and SQLite's LIKE stops reading a pattern at NUL (``%\x00%`` matched every row).
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in query):
        return []
    stmt = select(Certificate)
    if by == "server_name":
        pattern = f"%{like_escape(query.strip())}%"
        stmt = stmt.outerjoin(Application, Certificate.application_id == Application.id).where(
            or_(
                Certificate.subject_cn.ilike(pattern, escape="\\"),
                Application.server_name.ilike(pattern, escape="\\"),
            )
        )
    elif by == "serial":
        try:
            serial = normalize_serial_hex(query)
        except ValueError:
            return []
        stmt = stmt.where(Certificate.serial_hex == serial)
    elif by == "reference":
        stmt = stmt.join(Application, Certificate.application_id == Application.id).where(
            Application.reference_number == query.strip()
        )
    else:
        raise ValueError(f"unknown search field: {by!r}")
    stmt = stmt.order_by(Certificate.created_at.desc(), Certificate.id.desc()).limit(limit)
    return list(session.execute(stmt).scalars())


# --- blocked keys ---------------------------------------------------------------------------------


def add_blocked_key(session: Session, *, spki_sha256: str, reason: str, source: str, now: datetime) -> BlockedKey:
    """Block a key (BR 6.1.1.3: reject keys known to be compromised); blocking twice keeps the first entry."""
    digest = spki_sha256.lower()
    existing = session.get(BlockedKey, digest)
    if existing is not None:
        return existing
    blocked = BlockedKey(spki_sha256=digest, reason=reason, source=source, created_at=now)
    session.add(blocked)
    session.flush()
    return blocked


def _expire_loaded(session: Session, model: type[Any], pk: Any) -> None:
    # The bulk UPDATE bypassed the identity map; make a loaded copy reload instead of going stale.
    loaded = session.identity_map.get(identity_key(model, pk))
    if loaded is not None:
        session.expire(loaded)
