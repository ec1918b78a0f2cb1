"""Storage functions for certificates and issuance records (Boulder's ``sa.AddSerial``/``AddPrecertificate``).

Every status change is a compare-and-set through the tables in ``core.lifecycle``; functions work inside
the caller's session and never commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from ..core.ca_lifecycle import CaStatus
from ..core.errors import Conflict, NotFound
from ..core.lifecycle import (
    LIVE_STATUSES,
    CertAction,
    CertStatus,
    RecordAction,
    RecordState,
    cert_move,
    record_move,
)
from .models import CA, BlockedKey, Certificate, IssuanceRecord

# The tables behind the models, for the pipeline's plain INSERTs (no unit of work).
_CERTIFICATES = cast(Table, Certificate.__table__)
_RECORDS = cast(Table, IssuanceRecord.__table__)
_INSERT_CERTIFICATE = insert(_CERTIFICATES)
_INSERT_RECORD = insert(_RECORDS).returning(_RECORDS.c.id)

__all__ = [
    "Reservation",
    "active_issuing_ca",
    "issuing_check",
    "reserve_issuance",
    "serial_recorded",
    "record_refused_lint",
    "move_certificate",
    "move_record",
    "store_signed_der",
    "fail_reservation",
    "abandoned_reservations",
    "record_for",
    "certificate_by_id",
    "certificate_by_serial",
    "newest_live_for_application",
    "live_for_download",
    "LiveCertificate",
    "waiting_for_acceptance",
    "accepted_for_application",
]


@dataclass(frozen=True)
class Reservation:
    """Step 3 of the pipeline: the record (serial, linted TBS hash, findings, evidence) and the reserved row."""

    ca_id: int
    serial_hex: str
    profile: str
    application_id: int | None
    tbs_sha256: str
    lint_findings: list[dict[str, object]]
    evidence: dict[str, Any] | None
    channel: str | None
    not_before: datetime
    not_after: datetime
    subject_cn: str | None
    names: tuple[str, ...]
    spki_sha256: str
    replaces_id: int | None = None
    revoke_replaced: bool | None = None

    def __post_init__(self) -> None:
        # A second spelling of one serial would slip past UNIQUE(ca_id, serial_hex).
        if not _CANONICAL_SERIAL.match(self.serial_hex):
            raise ValueError(f"serial_hex must be lowercase hex without leading zeros: {self.serial_hex!r}")


_CANONICAL_SERIAL = re.compile(r"^(0|[1-9a-f][0-9a-f]*)$")


def active_issuing_ca(session: Session, role: str, now: datetime) -> CA | None:
    """The newest active issuing CA of ``role`` that is already effective."""
    return session.scalar(
        select(CA)
        .where(CA.role == role, CA.status == CaStatus.ACTIVE.value, CA.effective_from <= now)
        .order_by(CA.effective_from.desc(), CA.id.desc())
    )


# Built once: constructing the statement per call cost more than running it (py-spy).
_ISSUING_CHECK = select(
    select(BlockedKey.spki_sha256).where(BlockedKey.spki_sha256 == bindparam("spki")).exists(),
    select(CA.id)
    .where(
        CA.role == bindparam("role"),
        CA.status == CaStatus.ACTIVE.value,
        CA.effective_from <= bindparam("now", type_=CA.__table__.c.effective_from.type),
    )
    .order_by(CA.effective_from.desc(), CA.id.desc())
    .limit(1)
    .scalar_subquery(),
)


def issuing_check(session: Session, *, role: str, now: datetime, spki_sha256: str) -> tuple[bool, int | None]:
    """In one round trip: whether the key is blocked, and the id of the issuing CA of ``role`` active now.

    The pipeline asks this in its reservation transaction, just before the durable record: a key reported
    between the decision and the signature is still refused, and a signer kept per process is used only
    while its CA is still the active one (a rollover in any process is seen here).
    """
    row = session.execute(_ISSUING_CHECK, {"spki": spki_sha256, "role": role, "now": now}).one()
    return bool(row[0]), row[1]


def reserve_issuance(session: Session, r: Reservation, now: datetime) -> int:
    """Insert the record (``linted``) and the certificate row (``signing``) together; returns the record id.

    Two plain INSERTs, the second returning the record's id: no unit-of-work flush, no object identity to
    build for rows the pipeline never reads back (py-spy: the ORM flush was half of the reservation's cost).
    A unique violation (serial clash, or a second live certificate for the application) raises
    ``IntegrityError`` here, inside the caller's transaction; the caller tells the two apart with
    :func:`serial_recorded`.
    """
    session.execute(
        _INSERT_CERTIFICATE,
        {
            "ca_id": r.ca_id,
            "serial_hex": r.serial_hex,
            "der": None,
            "tbs_sha256": r.tbs_sha256,
            "not_before": r.not_before,
            "not_after": r.not_after,
            "subject_cn": r.subject_cn,
            "names": list(r.names),
            "spki_sha256": r.spki_sha256,
            "profile": r.profile,
            "status": CertStatus.SIGNING.value,
            "application_id": r.application_id,
            "created_at": now,
            "updated_at": now,
            "replaces_id": r.replaces_id,
            "revoke_replaced": r.revoke_replaced,
        },
    )
    record_id = session.execute(
        _INSERT_RECORD,
        {
            "ca_id": r.ca_id,
            "serial_hex": r.serial_hex,
            "application_id": r.application_id,
            "profile": r.profile,
            "state": record_move(RecordState.INTENT, RecordAction.LINT).target.value,
            "tbs_sha256": r.tbs_sha256,
            "lint_findings": r.lint_findings,
            "evidence": r.evidence,
            "channel": r.channel,
            "created_at": now,
            "updated_at": now,
        },
    ).scalar_one()
    return int(record_id)


def serial_recorded(session: Session, ca_id: int, serial_hex: str) -> bool:
    found = session.scalar(
        select(IssuanceRecord.id).where(IssuanceRecord.ca_id == ca_id, IssuanceRecord.serial_hex == serial_hex)
    )
    return found is not None


def record_refused_lint(
    session: Session,
    *,
    ca_id: int,
    serial_hex: str,
    application_id: int | None,
    profile: str,
    error: str,
    findings: list[dict[str, object]],
    evidence: dict[str, Any] | None,
    channel: str | None,
    now: datetime,
) -> None:
    """A refused lint leaves a durable ``failed`` record of the serial and the findings; nothing was signed."""
    session.add(
        IssuanceRecord(
            ca_id=ca_id,
            serial_hex=serial_hex,
            application_id=application_id,
            profile=profile,
            state=record_move(RecordState.INTENT, RecordAction.FAIL).target.value,
            lint_findings=findings,
            error=error[:2000],
            evidence=evidence,
            channel=channel,
            created_at=now,
            updated_at=now,
        )
    )


def move_certificate(
    session: Session,
    *,
    ca_id: int,
    serial_hex: str,
    action: CertAction,
    current: CertStatus | str,
    now: datetime,
    **values: Any,
) -> Certificate:
    """Apply ``action`` to one certificate by compare-and-set from ``current``; Conflict if it moved meanwhile."""
    move = cert_move(current, action)
    row = session.scalar(
        update(Certificate)
        .where(
            Certificate.ca_id == ca_id, Certificate.serial_hex == serial_hex, Certificate.status == move.source.value
        )
        .values(status=move.target.value, updated_at=now, **values)
        .returning(Certificate)
        .execution_options(synchronize_session=False)
    )
    if row is None:
        raise Conflict(f"certificate {serial_hex} is no longer {move.source.value}", value=serial_hex)
    return row


def move_record(
    session: Session, record_id: int, action: RecordAction, *, current: RecordState | str, now: datetime, **values: Any
) -> bool:
    """Apply ``action`` to an issuance record by compare-and-set; False if it was not in ``current``."""
    move = record_move(current, action)
    result = session.execute(
        update(IssuanceRecord)
        .where(IssuanceRecord.id == record_id, IssuanceRecord.state == move.source.value)
        .values(state=move.target.value, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Step 5's two compare-and-set UPDATEs, built once (per call they cost more to build than to run): the DER into
# the reserved row, returned as the ORM row the caller gets, and the record's move.
_STORE_DER = select(Certificate).from_statement(
    update(_CERTIFICATES)
    .where(
        _CERTIFICATES.c.ca_id == bindparam("where_ca"),
        _CERTIFICATES.c.serial_hex == bindparam("where_serial"),
        _CERTIFICATES.c.status == bindparam("where_status"),
    )
    .values(status=bindparam("new_status"), updated_at=bindparam("new_at"), der=bindparam("new_der"))
    .returning(*_CERTIFICATES.c)
)
_STORE_RECORD = (
    update(_RECORDS)
    .where(_RECORDS.c.id == bindparam("where_id"), _RECORDS.c.state == bindparam("where_state"))
    .values(state=bindparam("new_state"), updated_at=bindparam("new_at"))
)


def store_signed_der(
    session: Session, *, ca_id: int, serial_hex: str, record_id: int, der: bytes, accepted: bool, now: datetime
) -> Certificate:
    """Step 5: the DER into the reserved row (``issued``, or ``accepted`` where no Accept step exists) and the
    record ``stored``; both moves come from the transition tables, as :func:`move_certificate` does."""
    move = cert_move(CertStatus.SIGNING, CertAction.SIGNED_ACCEPTED if accepted else CertAction.SIGNED)
    row: Certificate | None = session.scalars(
        _STORE_DER,
        {
            "where_ca": ca_id,
            "where_serial": serial_hex,
            "where_status": move.source.value,
            "new_status": move.target.value,
            "new_at": now,
            "new_der": der,
        },
    ).one_or_none()
    if row is None:
        raise Conflict(f"certificate {serial_hex} is no longer {move.source.value}", value=serial_hex)
    stored = record_move(RecordState.LINTED, RecordAction.STORE)
    session.execute(
        _STORE_RECORD,
        {"where_id": record_id, "where_state": stored.source.value, "new_state": stored.target.value, "new_at": now},
    )
    return row


def fail_reservation(
    session: Session, record_id: int, error: str, now: datetime, findings: list[dict[str, object]] | None = None
) -> IssuanceRecord:
    """Mark the record ``failed`` (saying why) and free its reserved certificate row."""
    record = session.get(IssuanceRecord, record_id)
    if record is None:
        raise NotFound("no such issuance record", value=record_id)
    extra: dict[str, Any] = {"error": error[:2000]}
    if findings is not None:
        extra["lint_findings"] = findings
    for state in (RecordState.LINTED, RecordState.INTENT):
        if move_record(session, record_id, RecordAction.FAIL, current=state, now=now, **extra):
            break
    session.execute(
        update(Certificate)
        .where(
            Certificate.ca_id == record.ca_id,
            Certificate.serial_hex == record.serial_hex,
            Certificate.status == cert_move(CertStatus.SIGNING, CertAction.FAIL).source.value,
        )
        .values(status=CertStatus.FAILED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return record


def abandoned_reservations(session: Session, reserved_before: datetime) -> Sequence[Certificate]:
    """Rows still ``signing`` since before ``reserved_before``: left by a process that stopped mid-issuance."""
    return session.scalars(
        select(Certificate).where(
            Certificate.status == CertStatus.SIGNING.value, Certificate.created_at < reserved_before
        )
    ).all()


def record_for(session: Session, ca_id: int, serial_hex: str) -> IssuanceRecord | None:
    return session.scalar(
        select(IssuanceRecord).where(IssuanceRecord.ca_id == ca_id, IssuanceRecord.serial_hex == serial_hex)
    )


def certificate_by_serial(session: Session, serial_hex: str) -> Certificate | None:
    """A certificate by its canonical serial under any CA (the newest, in the unlikely case of two)."""
    return session.scalars(
        select(Certificate).where(Certificate.serial_hex == serial_hex).order_by(Certificate.id.desc())
    ).first()


def certificate_by_id(session: Session, cert_id: int) -> Certificate | None:
    return session.get(Certificate, cert_id)


# An application's usable certificates (waiting for acceptance, or accepted), newest first: one WHERE and
# ORDER for the whole-row read and the download's narrow one.
_LIVE_OF_APPLICATION = (
    Certificate.application_id == bindparam("app_id"),
    Certificate.status.in_([s.value for s in LIVE_STATUSES]),
)
_NEWEST_FIRST = (Certificate.created_at.desc(), Certificate.id.desc())
_NEWEST_LIVE = select(Certificate).where(*_LIVE_OF_APPLICATION).order_by(*_NEWEST_FIRST).limit(1)


def newest_live_for_application(session: Session, app_id: int) -> Certificate | None:
    """The application's newest usable certificate: waiting for acceptance, or accepted."""
    return session.scalars(_NEWEST_LIVE, {"app_id": app_id}).first()


class LiveCertificate(NamedTuple):
    """What a download reads of a certificate, and nothing more (the row also holds evidence and JSON)."""

    status: str
    serial_hex: str
    der: bytes | None
    ca_id: int
    subject_cn: str | None


_LIVE_FOR_DOWNLOAD = (
    select(Certificate.status, Certificate.serial_hex, Certificate.der, Certificate.ca_id, Certificate.subject_cn)
    .where(*_LIVE_OF_APPLICATION)
    .order_by(*_NEWEST_FIRST)
)


def live_for_download(session: Session, app_id: int) -> list[LiveCertificate]:
    """The application's usable certificates (waiting for acceptance, or accepted), newest first, in one narrow
    query built once: a download runs it every time, and loading whole rows, then building the statement
    anew, was most of a download's database time."""
    rows = session.execute(_LIVE_FOR_DOWNLOAD, {"app_id": app_id}).all()
    return [LiveCertificate(*row) for row in rows]


def waiting_for_acceptance(session: Session, app_id: int) -> Certificate | None:
    return session.scalars(
        select(Certificate).where(Certificate.application_id == app_id, Certificate.status == CertStatus.ISSUED.value)
    ).first()


def accepted_for_application(session: Session, app_id: int) -> Certificate | None:
    """The application's accepted certificate still standing (the one a replacement replaces)."""
    return session.scalars(
        select(Certificate)
        .where(Certificate.application_id == app_id, Certificate.status == CertStatus.ACCEPTED.value)
        .order_by(Certificate.id.desc())
    ).first()
