"""Storage functions for Certificate Transparency (Boulder's ``sa.AddPrecertificate``): precertificates, SCTs,
each log's last result. They work inside the caller's session and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..core.ct import PrecertAction, PrecertStatus, SctFromLog, precert_move
from ..core.errors import Conflict
from .models_ct import CtLogResult, Precertificate, SctRecord

__all__ = [
    "LogOutcome",
    "add_precertificate",
    "move_precertificate",
    "precertificate_for",
    "unfinished_precertificates",
    "add_scts",
    "scts_for_certificate",
    "scts_for_serial",
    "record_log_outcomes",
    "log_results",
]


@dataclass(frozen=True)
class LogOutcome:
    """One log's answer to one submission, as stored (plain values: the store knows no HTTP client)."""

    log_id: str
    log_name: str
    operator: str
    url: str
    ok: bool
    error: str | None
    ms: int


def add_precertificate(
    session: Session, *, ca_id: int, serial_hex: str, der: bytes, tbs_sha256: str, now: datetime
) -> int:
    """The durable precertificate, written before any log sees it; returns its id."""
    row = Precertificate(
        ca_id=ca_id,
        serial_hex=serial_hex,
        der=der,
        tbs_sha256=tbs_sha256,
        status=PrecertStatus.SIGNED.value,
        revocable=True,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def move_precertificate(
    session: Session,
    precert_id: int,
    action: PrecertAction,
    *,
    now: datetime,
    certificate_id: int | None = None,
    error: str | None = None,
) -> None:
    """Compare-and-set through ``core.ct.PRECERT_TRANSITIONS``; Conflict if it moved meanwhile."""
    source, target = precert_move(PrecertStatus.SIGNED, action)
    values: dict[str, object] = {"status": target.value, "updated_at": now}
    if certificate_id is not None:
        values.update(certificate_id=certificate_id, revocable=False)  # the certificate answers for the serial
    if error is not None:
        values["error"] = error[:2000]
    result = session.execute(
        update(Precertificate)
        .where(Precertificate.id == precert_id, Precertificate.status == source.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"precertificate {precert_id} is no longer {source.value}", value=precert_id)


def precertificate_for(session: Session, ca_id: int, serial_hex: str) -> Precertificate | None:
    return session.scalar(
        select(Precertificate).where(Precertificate.ca_id == ca_id, Precertificate.serial_hex == serial_hex)
    )


def unfinished_precertificates(session: Session, signed_before: datetime) -> Sequence[Precertificate]:
    """Precertificates still ``signed`` since before ``signed_before``: their issuing process stopped."""
    return session.scalars(
        select(Precertificate).where(
            Precertificate.status == PrecertStatus.SIGNED.value, Precertificate.created_at < signed_before
        )
    ).all()


def add_scts(
    session: Session, *, precert_id: int, certificate_id: int, scts: Sequence[SctFromLog], now: datetime
) -> None:
    for found in scts:
        session.add(
            SctRecord(
                precertificate_id=precert_id,
                certificate_id=certificate_id,
                log_id=found.log.log_id_b64,
                log_name=found.log.description,
                operator=found.log.operator,
                timestamp=found.sct.time,
                timestamp_ms=found.sct.timestamp,
                extensions=found.sct.extensions,
                signature=found.sct.digitally_signed(),
                created_at=now,
            )
        )


def scts_for_certificate(session: Session, certificate_id: int) -> Sequence[SctRecord]:
    return session.scalars(
        select(SctRecord)
        .where(SctRecord.certificate_id == certificate_id)
        .order_by(SctRecord.timestamp_ms, SctRecord.id)
    ).all()


def record_log_outcomes(session: Session, outcomes: Sequence[LogOutcome], now: datetime) -> None:
    """Keep each log's last answer and its running counts."""
    for o in outcomes:
        row = session.get(CtLogResult, o.log_id)
        if row is None:
            row = CtLogResult(
                log_id=o.log_id,
                log_name=o.log_name,
                operator=o.operator,
                url=o.url,
                last_at=now,
                last_ok=o.ok,
                last_error=o.error,
                last_ms=o.ms,
                submissions=0,
                failures=0,
            )
            session.add(row)
        row.log_name, row.operator, row.url = o.log_name, o.operator, o.url
        row.last_at, row.last_ok, row.last_error, row.last_ms = now, o.ok, (o.error or None), o.ms
        row.submissions = (row.submissions or 0) + 1
        row.failures = (row.failures or 0) + (0 if o.ok else 1)


def log_results(session: Session) -> dict[str, CtLogResult]:
    """Every log's last result, by base64 log ID."""
    return {row.log_id: row for row in session.scalars(select(CtLogResult))}


def scts_for_serial(session: Session, serial_hex: str) -> Sequence[SctRecord]:
    """The SCTs embedded in the certificate(s) with this serial, oldest first."""
    from .models import Certificate

    return session.scalars(
        select(SctRecord)
        .join(Certificate, Certificate.id == SctRecord.certificate_id)
        .where(Certificate.serial_hex == serial_hex)
        .order_by(SctRecord.timestamp_ms, SctRecord.id)
    ).all()
