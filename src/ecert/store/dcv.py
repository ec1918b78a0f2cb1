"""Named storage functions for domain control validation: challenges (codes) and validations (evidence).

The DCV services (``services.enrolment``, ``services.operator_dcv``) reach these tables only through this
module, as Boulder's services reach the database only through its storage authority. No rules here:
which code is live, which validation may be reused and which status follows which are decided in
``core.dcv_rules``; these functions read and write inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecert.core.dcv_rules import LIVE_CHALLENGE_STATUSES, ChallengeStatus, DcvMethod
from ecert.store import audit
from ecert.store.models import Application, AuditEvent, DcvChallenge, DomainValidation

__all__ = [
    "lock_application",
    "open_challenges",
    "add_challenge",
    "move_challenges",
    "record_check",
    "newest_challenge_method",
    "last_selected_method",
    "application_validations",
    "add_validation",
    "operator_challenge",
    "operator_validations",
]

_LIVE = tuple(s.value for s in LIVE_CHALLENGE_STATUSES)


def lock_application(session: Session, app_id: int) -> Application | None:
    """The application row, locked for this transaction (PostgreSQL ``FOR UPDATE``; SQLite writers are serial).

    Starting DCV twice at once must not make two codes for the one website file of an application.
    """
    return session.scalars(select(Application).where(Application.id == app_id).with_for_update()).first()


def open_challenges(
    session: Session, app_id: int, method: DcvMethod, domains: Collection[str] | None = None
) -> list[DcvChallenge]:
    """The application's pending or failed challenges for ``method``, newest first (age not judged here)."""
    query = select(DcvChallenge).where(
        DcvChallenge.application_id == app_id, DcvChallenge.method == method.value, DcvChallenge.status.in_(_LIVE)
    )
    if domains is not None:
        query = query.where(DcvChallenge.domain.in_(list(domains)))
    return list(session.scalars(query.order_by(DcvChallenge.created_at.desc(), DcvChallenge.id.desc())))


def add_challenge(
    session: Session,
    *,
    app_id: int | None,
    domain: str,
    method: DcvMethod,
    code: str,
    created_at: datetime,
    expires_at: datetime,
    email_address: str | None = None,
) -> DcvChallenge:
    """A new pending challenge (flushed, so its id is known)."""
    row = DcvChallenge(
        application_id=app_id,
        domain=domain,
        method=method.value,
        code=code,
        email_address=email_address,
        created_at=created_at,
        expires_at=expires_at,
        status=ChallengeStatus.PENDING.value,
    )
    session.add(row)
    session.flush()
    return row


def move_challenges(
    session: Session,
    ids: Sequence[int],
    *,
    source: ChallengeStatus,
    target: ChallengeStatus,
    now: datetime,
    result: str | None = None,
) -> int:
    """Compare-and-set the status of the given challenges from ``source`` to ``target``; the rows moved."""
    if not ids:
        return 0
    values: dict[str, Any] = {"status": target.value, "last_checked_at": now}
    if result is not None:
        values["last_result"] = result[:1000]
    moved = session.execute(
        update(DcvChallenge)
        .where(DcvChallenge.id.in_(list(ids)), DcvChallenge.status == source.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


def record_check(session: Session, challenge_id: int, *, now: datetime, result: str) -> None:
    """Note when a challenge was last checked and what was found, without moving its status."""
    session.execute(
        update(DcvChallenge)
        .where(DcvChallenge.id == challenge_id)
        .values(last_checked_at=now, last_result=result[:1000])
    )


def newest_challenge_method(session: Session, app_id: int) -> str | None:
    """The method of the application's newest challenge of any status (None before the first)."""
    return session.scalars(
        select(DcvChallenge.method)
        .where(DcvChallenge.application_id == app_id)
        .order_by(DcvChallenge.created_at.desc(), DcvChallenge.id.desc())
        .limit(1)
    ).first()


def last_selected_method(session: Session, reference: str) -> str | None:
    """The method named by the application's newest ``dcv.method_selected`` audit event, if any."""
    audit.flush_pending(session)
    details = session.scalars(
        select(AuditEvent.details)
        .where(AuditEvent.event == "dcv.method_selected", AuditEvent.subject == reference)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if isinstance(details, Mapping) and details.get("method"):
        return str(details["method"])
    return None


def application_validations(session: Session, app_id: int) -> list[DomainValidation]:
    """The application's own validations (evidence rows), newest first."""
    return list(
        session.scalars(
            select(DomainValidation)
            .where(DomainValidation.application_id == app_id)
            .order_by(DomainValidation.validated_at.desc(), DomainValidation.id.desc())
        )
    )


def add_validation(
    session: Session,
    *,
    domain: str,
    method: DcvMethod,
    br_version: str,
    code: str | None,
    validated_at: datetime,
    evidence: dict[str, Any],
    application_id: int | None,
    operator_held: bool,
    namespace: bool,
    perspectives: Any | None,
) -> DomainValidation:
    """Record that ``domain`` was validated: the evidence the registration authority relies on at issuance."""
    row = DomainValidation(
        domain=domain,
        method=method.value,
        br_version=br_version,
        code=code,
        validated_at=validated_at,
        evidence=evidence,
        application_id=application_id,
        operator_held=operator_held,
        namespace=namespace,
        perspectives=perspectives,
    )
    session.add(row)
    session.flush()
    return row


def operator_challenge(session: Session, domain: str) -> DcvChallenge | None:
    """The operator's newest pending challenge for ``domain`` (operator challenges have no application)."""
    return session.scalars(
        select(DcvChallenge)
        .where(
            DcvChallenge.application_id.is_(None),
            DcvChallenge.domain == domain,
            DcvChallenge.status == ChallengeStatus.PENDING.value,
        )
        .order_by(DcvChallenge.id.desc())
        .limit(1)
    ).first()


def operator_validations(session: Session) -> list[DomainValidation]:
    """Every operator-held validation, newest first (the caller judges the reuse period)."""
    return list(
        session.scalars(
            select(DomainValidation)
            .where(DomainValidation.operator_held.is_(True))
            .order_by(DomainValidation.validated_at.desc())
        )
    )
