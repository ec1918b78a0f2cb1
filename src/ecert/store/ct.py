"""Storage functions for Certificate Transparency (Boulder's ``sa.AddPrecertificate``): precertificates, SCTs,
each log's last result. They work inside the caller's session and never commit.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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
    """All SCTs in one executemany INSERT (no RETURNING: nothing here needs their ids)."""
    if not scts:
        return
    rows = [
        {
            "precertificate_id": precert_id,
            "certificate_id": certificate_id,
            "log_id": found.log.log_id_b64,
            "log_name": found.log.description,
            "operator": found.log.operator,
            "timestamp": found.sct.time,
            "timestamp_ms": found.sct.timestamp,
            "extensions": found.sct.extensions,
            "signature": found.sct.digitally_signed(),
            "created_at": now,
        }
        for found in scts
    ]
    session.execute(insert(SctRecord), rows)


def scts_for_certificate(session: Session, certificate_id: int) -> Sequence[SctRecord]:
    return session.scalars(
        select(SctRecord)
        .where(SctRecord.certificate_id == certificate_id)
        .order_by(SctRecord.timestamp_ms, SctRecord.id)
    ).all()


def _log_result_rows(outcomes: Sequence[LogOutcome], now: datetime) -> list[dict[str, object]]:
    """One row per log (sorted by log ID, so concurrent upserts lock the rows in one order): its last answer,
    and how many submissions and failures this batch adds."""
    last: dict[str, LogOutcome] = {}
    sent: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for o in outcomes:
        last[o.log_id] = o
        sent[o.log_id] += 1
        failed[o.log_id] += 0 if o.ok else 1
    return [
        {
            "log_id": key,
            "log_name": o.log_name,
            "operator": o.operator,
            "url": o.url,
            "last_at": now,
            "last_ok": o.ok,
            "last_error": o.error or None,
            "last_ms": o.ms,
            "submissions": sent[key],
            "failures": failed[key],
        }
        for key, o in sorted(last.items())
    ]


@functools.cache
def _log_result_upsert(dialect: str) -> Any:
    """The upsert of one log's result, built once per dialect (compiled once, then run as an executemany)."""
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - ecert runs on SQLite or PostgreSQL
        raise Conflict(f"no upsert for the {dialect} dialect", value=dialect)
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(CtLogResult)
    kept = ("log_name", "operator", "url", "last_at", "last_ok", "last_error", "last_ms")
    added = {
        name: func.coalesce(getattr(CtLogResult, name), 0) + getattr(stmt.excluded, name)
        for name in ("submissions", "failures")
    }
    return stmt.on_conflict_do_update(
        index_elements=[CtLogResult.log_id], set_={**{k: getattr(stmt.excluded, k) for k in kept}, **added}
    )


def record_log_outcomes(session: Session, outcomes: Sequence[LogOutcome], now: datetime) -> None:
    """Keep each log's last answer and its running counts: one upsert, no read first (it runs in the
    transaction that stores each certificate)."""
    rows = _log_result_rows(outcomes, now)
    if rows:
        session.execute(_log_result_upsert(session.get_bind().dialect.name), rows)


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
