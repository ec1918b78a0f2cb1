"""Storage functions for certificate status: revocation, CRLs, OCSP responses and responder certificates.

The status services (``services/revocation.py``, ``publication.py``, ``downloads.py``) reach the database
only through these named functions (Boulder's storage authority: ``sa.RevokeCertificate``,
``sa.GetRevokedCerts``). Certificate status moves go through ``core.lifecycle`` via
``store.certificates.move_certificate``. Functions work inside the caller's session and never commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select, text, update
from sqlalchemy.orm import Session

from ..core.errors import Conflict
from ..core.lifecycle import LIVE_STATUSES, SIGNED_STATUSES, CertAction, CertStatus
from .certificates import move_certificate
from .models import CA, Application, Certificate, Crl, OcspResponse, ResponderCert, RevocationChallenge
from .notify import announce_ocsp_change

__all__ = [
    "DueOcsp",
    "Revocable",
    "lock_issuer",
    "latest_crl",
    "revocations_since",
    "revoked_serials",
    "add_crl",
    "latest_responder",
    "add_responder",
    "ocsp_due",
    "save_ocsp",
    "stored_ocsp",
    "certificate_by_serial",
    "certificates_with_serial",
    "live_sharing_key",
    "revocable_for_application",
    "mark_revoked",
    "upgrade_reason",
    "open_challenges",
    "add_challenge",
    "use_challenge",
    "accepted_by_serial",
    "organisation_names",
]

_SIGNED = tuple(s.value for s in SIGNED_STATUSES)
_LIVE = tuple(s.value for s in LIVE_STATUSES)


# --- the per-issuer publisher lock -----------------------------------------------------------------------


def _lock_key(kind: str, ca_id: int) -> int:
    """A stable signed 64-bit advisory-lock key per (kind, issuer)."""
    digest = hashlib.sha256(f"ecert:{kind}:{ca_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_issuer(session: Session, kind: str, ca_id: int, *, wait: bool) -> bool:
    """Take the per-issuer publisher lock for this transaction; False if another worker holds it.

    PostgreSQL: ``pg_advisory_xact_lock`` (or its try- form for the scheduler, which skips a busy
    issuer); released at commit. SQLite: the engine begins every transaction with BEGIN IMMEDIATE,
    so the transaction already holds the one write lock.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    if wait:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(kind, ca_id)})
        return True
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(kind, ca_id)}).scalar())


# --- CRLs ------------------------------------------------------------------------------------------------


def latest_crl(session: Session, ca_id: int, *, arl: bool) -> Crl | None:
    return session.scalar(
        select(Crl)
        .where(Crl.ca_id == ca_id, Crl.is_arl == arl, Crl.partition.is_(None))
        .order_by(Crl.number.desc())
        .limit(1)
    )


def revocations_since(session: Session, ca_id: int, changed_after: datetime, revoked_by: datetime) -> int:
    """Revocations of ``ca_id``'s certificates recorded after ``changed_after`` (a CRL signed then misses them)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Certificate)
            .where(
                Certificate.ca_id == ca_id,
                Certificate.revoked_at.is_not(None),
                Certificate.updated_at > changed_after,
                Certificate.revoked_at <= revoked_by,
            )
        )
        or 0
    )


def revoked_serials(session: Session, ca_id: int, until: datetime) -> Iterator[tuple[str, datetime, str | None]]:
    """(serial, revoked_at, reason) of one CA's revoked certificates, streamed (server-side cursor on PostgreSQL)."""
    result = session.execute(
        select(Certificate.serial_hex, Certificate.revoked_at, Certificate.revocation_reason)
        .where(Certificate.ca_id == ca_id, Certificate.revoked_at.is_not(None), Certificate.revoked_at <= until)
        .execution_options(yield_per=10_000)
    )
    for serial_hex, revoked_at, reason in result:
        if revoked_at is not None:  # always, by the WHERE clause; says so to the type checker
            yield serial_hex, revoked_at, reason


def add_crl(
    session: Session, *, ca_id: int, der: bytes, number: int, this_update: datetime, next_update: datetime, arl: bool
) -> Crl:
    row = Crl(
        ca_id=ca_id,
        number=number,
        this_update=this_update,
        next_update=next_update,
        der=der,
        is_arl=arl,
        partition=None,
        created_at=this_update,
    )
    session.add(row)
    session.flush()
    return row


# --- OCSP ------------------------------------------------------------------------------------------------


def latest_responder(session: Session, ca_id: int) -> ResponderCert | None:
    return session.scalar(
        select(ResponderCert)
        .where(ResponderCert.ca_id == ca_id)
        .order_by(ResponderCert.not_after.desc(), ResponderCert.id.desc())
        .limit(1)
    )


def add_responder(
    session: Session, *, ca_id: int, cert_der: bytes, key_ref: str, not_before: datetime, not_after: datetime
) -> ResponderCert:
    row = ResponderCert(ca_id=ca_id, cert_der=cert_der, key_ref=key_ref, not_before=not_before, not_after=not_after)
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class DueOcsp:
    """A certificate whose pre-signed response must be (re)signed, and the stored row to overwrite."""

    serial_hex: str
    revoked_at: datetime | None
    reason: str | None
    existing_id: int | None


def ocsp_due(
    session: Session,
    ca_id: int,
    *,
    now: datetime,
    refresh_before: datetime,
    every: bool,
    serials: Collection[str] | None = None,
) -> list[DueOcsp]:
    """Signed, unexpired certificates of ``ca_id`` without a current response (or all of them with ``every``).

    Due: no stored response, a stored status that no longer matches (revoked since), or one that expires
    before ``refresh_before``. ``serials`` narrows the pass to those certificates.
    """
    expected = case((Certificate.revoked_at.is_not(None), "revoked"), else_="good")
    query = (
        select(Certificate.serial_hex, Certificate.revoked_at, Certificate.revocation_reason, OcspResponse.id)
        .outerjoin(
            OcspResponse,
            and_(OcspResponse.ca_id == Certificate.ca_id, OcspResponse.serial_hex == Certificate.serial_hex),
        )
        .where(
            Certificate.ca_id == ca_id,
            Certificate.der.is_not(None),
            Certificate.status.in_(_SIGNED),
            Certificate.not_after > now,
        )
    )
    if not every:
        query = query.where(
            or_(OcspResponse.id.is_(None), OcspResponse.status != expected, OcspResponse.next_update <= refresh_before)
        )
    if serials is not None:
        query = query.where(Certificate.serial_hex.in_(list(serials)))
    return [DueOcsp(*row) for row in session.execute(query)]


def save_ocsp(
    session: Session,
    *,
    ca_id: int,
    serial_hex: str,
    der: bytes,
    status: str,
    etag: str,
    this_update: datetime,
    next_update: datetime,
    existing_id: int | None,
) -> None:
    """Store a signed response, overwriting ``existing_id`` (the one current response per certificate)."""
    row = session.get(OcspResponse, existing_id) if existing_id is not None else None
    if row is None:
        row = OcspResponse(ca_id=ca_id, serial_hex=serial_hex)
        session.add(row)
    row.der, row.status, row.etag = der, status, etag
    row.this_update, row.next_update = this_update, next_update
    announce_ocsp_change(session)  # dedicated responders reload at commit, not at their next poll


def stored_ocsp(session: Session, ca_id: int, serial_hex: str) -> OcspResponse | None:
    return session.scalar(
        select(OcspResponse).where(OcspResponse.ca_id == ca_id, OcspResponse.serial_hex == serial_hex)
    )


# --- certificates by serial and key ----------------------------------------------------------------------


def certificate_by_serial(session: Session, ca_id: int, serial_hex: str) -> Certificate | None:
    return session.scalar(select(Certificate).where(Certificate.ca_id == ca_id, Certificate.serial_hex == serial_hex))


def certificates_with_serial(
    session: Session, serial_hex: str, ca_label: str | None = None
) -> list[tuple[Certificate, CA]]:
    """Every certificate row with this (canonical) serial, under the CA ``ca_label`` if given."""
    query = select(Certificate, CA).join(CA, CA.id == Certificate.ca_id).where(Certificate.serial_hex == serial_hex)
    if ca_label is not None:
        query = query.where(CA.label == ca_label)
    return [(cert, ca) for cert, ca in session.execute(query)]


def live_sharing_key(
    session: Session, spki_sha256: str, *, except_id: int, now: datetime
) -> list[tuple[Certificate, CA]]:
    """Unrevoked, unexpired, signed certificates with this key (BR 4.9.1.1: revoke all that use a compromised key)."""
    rows = session.execute(
        select(Certificate, CA)
        .join(CA, CA.id == Certificate.ca_id)
        .where(
            Certificate.spki_sha256 == spki_sha256,
            Certificate.id != except_id,
            Certificate.revoked_at.is_(None),
            Certificate.der.is_not(None),
            Certificate.status.in_(_SIGNED),
            Certificate.not_after > now,
        )
    )
    return [(cert, ca) for cert, ca in rows]


@dataclass(frozen=True)
class Revocable:
    serial_hex: str
    status: CertStatus
    ca_label: str


def revocable_for_application(session: Session, app_id: int) -> Revocable | None:
    """The application's newest signed, unrevoked certificate (waiting for acceptance or accepted)."""
    row = session.execute(
        select(Certificate.serial_hex, Certificate.status, CA.label)
        .join(CA, CA.id == Certificate.ca_id)
        .where(
            Certificate.application_id == app_id,
            Certificate.status.in_(_LIVE),
            Certificate.revoked_at.is_(None),
            Certificate.der.is_not(None),
        )
        .order_by(Certificate.id.desc())
        .limit(1)
    ).first()
    return Revocable(row.serial_hex, CertStatus(row.status), row.label) if row is not None else None


def mark_revoked(session: Session, cert: Certificate, *, at: datetime, reason: str | None, now: datetime) -> None:
    """Revoke one unrevoked certificate: ``issued``/``accepted`` move to ``revoked`` by the lifecycle table.

    A ``rejected`` certificate was revoked when it was rejected; it never reaches here unrevoked.
    """
    move_certificate(
        session,
        ca_id=cert.ca_id,
        serial_hex=cert.serial_hex,
        action=CertAction.REVOKE,
        current=cert.status,
        now=now,
        revoked_at=at,
        revocation_reason=reason,
    )


def upgrade_reason(session: Session, cert: Certificate, *, reason: str, now: datetime) -> None:
    """Change a revoked certificate's reason (BR 7.2.2: it may later become keyCompromise); the date stays."""
    result = session.execute(
        update(Certificate)
        .where(Certificate.id == cert.id, Certificate.revoked_at.is_not(None))
        .values(revocation_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"certificate {cert.serial_hex} is not revoked", value=cert.serial_hex)


# --- proof-of-possession challenges ---------------------------------------------------------------------


def open_challenges(session: Session, serial_hex: str, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(RevocationChallenge)
            .where(
                RevocationChallenge.serial_hex == serial_hex,
                RevocationChallenge.expires_at > now,
                RevocationChallenge.used_at.is_(None),
            )
        )
        or 0
    )


def add_challenge(session: Session, *, nonce: str, serial_hex: str, now: datetime, expires_at: datetime) -> None:
    session.add(
        RevocationChallenge(nonce=nonce, serial_hex=serial_hex, created_at=now, expires_at=expires_at, used_at=None)
    )


def use_challenge(session: Session, nonces: Collection[str], serial_hex: str, now: datetime) -> bool:
    """Spend one open challenge among ``nonces`` for ``serial_hex`` (compare-and-set); False if none is open."""
    nonce = session.scalar(
        select(RevocationChallenge.nonce)
        .where(
            RevocationChallenge.nonce.in_(list(nonces)),
            RevocationChallenge.serial_hex == serial_hex,
            RevocationChallenge.used_at.is_(None),
            RevocationChallenge.expires_at > now,
        )
        .limit(1)
    )
    if nonce is None:
        return False
    result = session.execute(
        update(RevocationChallenge)
        .where(RevocationChallenge.nonce == nonce, RevocationChallenge.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- what downloads and search read ----------------------------------------------------------------------


def accepted_by_serial(session: Session, serial_hex: str) -> Certificate | None:
    """A published certificate by serial: accepted ones only (seed C.7 note 1)."""
    return session.scalars(
        select(Certificate).where(Certificate.serial_hex == serial_hex, Certificate.status == CertStatus.ACCEPTED.value)
    ).first()


def organisation_names(session: Session, app_ids: Collection[int]) -> dict[int, str]:
    """The organisation name each application shows on its certificate (Chinese when it chose Chinese)."""
    if not app_ids:
        return {}
    rows = session.scalars(select(Application).where(Application.id.in_(list(app_ids))))
    return {a.id: (a.org_name_zh if (a.use_chinese and a.org_name_zh) else a.org_name_en) for a in rows}
