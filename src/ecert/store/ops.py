"""Named storage functions of the operator features: expiry notices, contact language, incidents.

Like ``repo``, nothing here decides or commits: services/ call these inside their own transaction, and
every status move is checked against its table in ``core.notices`` or ``core.incidents`` before the
compare-and-set that applies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ecert.core.incidents import (
    OPEN_AFFECTED_STATES,
    AffectedAction,
    AffectedState,
    IncidentAction,
    IncidentState,
    affected_transition,
    incident_transition,
)
from ecert.core.lifecycle import CertStatus
from ecert.core.notices import RECLAIM_AFTER, MailAction, MailState, mail_transition
from ecert.store.models import CA, Application, Certificate
from ecert.store.models_ops import ContactPreference, ExpiryNotice, Incident, IncidentCertificate

__all__ = [
    "application_id_by_reference",
    "AffectedRow",
    "Candidate",
    "ExpiringCertificate",
    "NoticeRow",
    "add_incident",
    "add_incident_certificates",
    "affected_by_id",
    "affected_rows",
    "claim_expiry_notice",
    "claim_incident_mail",
    "close_incident",
    "due_incidents",
    "expiring_certificates",
    "finish_expiry_notice",
    "finish_incident_mail",
    "get_contact_language",
    "get_incident",
    "incident_certificate_ids",
    "incident_of",
    "is_marked_for_replacement",
    "list_expiry_notices",
    "list_incidents",
    "mail_due_rows",
    "migration_heads",
    "move_affected",
    "notice_states",
    "ocsp_gaps",
    "open_incident_ids",
    "record_affected_error",
    "replacement_for",
    "select_certificates",
    "set_contact_language",
]

# Certificates that exist in the world and may be in use: signed, not rejected, not failed.
_IN_USE = (CertStatus.ISSUED.value, CertStatus.ACCEPTED.value)


@dataclass(frozen=True)
class ExpiringCertificate:
    certificate_id: int
    serial_hex: str
    ca_label: str
    not_after: datetime
    names: tuple[str, ...]
    application_id: int
    reference_number: str
    contact: str
    org_name: str


@dataclass(frozen=True)
class NoticeRow:
    serial_hex: str
    ca_label: str
    threshold_days: int
    state: str
    recipient: str
    language: str
    attempts: int
    claimed_at: datetime
    sent_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class Candidate:
    """A certificate an incident's selection matched."""

    certificate_id: int
    serial_hex: str
    ca_label: str
    contact: str | None


@dataclass(frozen=True)
class AffectedRow:
    id: int
    certificate_id: int
    serial_hex: str
    ca_label: str
    names: tuple[str, ...]
    not_after: datetime
    cert_revoked_at: datetime | None
    application_id: int | None
    reference_number: str | None
    org_name: str | None
    state: str
    replaced_by_id: int | None
    revoked_at: datetime | None
    error: str | None
    mail_state: str
    mail_to: str | None
    mailed_at: datetime | None
    mail_error: str | None


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _newer_live_exists(cert: Any) -> Any:
    """EXISTS: the same application has a later-expiring certificate in use (the subscriber renewed)."""
    newer = aliased(Certificate)
    return exists().where(
        newer.application_id == cert.application_id,
        newer.id != cert.id,
        newer.status.in_(_IN_USE),
        newer.revoked_at.is_(None),
        newer.der.is_not(None),
        newer.not_after > cert.not_after,
    )


# --- expiry notices -------------------------------------------------------------------------------


def expiring_certificates(session: Session, *, now: datetime, horizon: timedelta) -> list[ExpiringCertificate]:
    """Certificates in use that expire within ``horizon`` and have a contact, unless already renewed."""
    query = (
        select(
            Certificate.id,
            Certificate.serial_hex,
            CA.label,
            Certificate.not_after,
            Certificate.names,
            Application.id,
            Application.reference_number,
            Application.rep_email,
            Application.org_name_en,
        )
        .join(CA, CA.id == Certificate.ca_id)
        .join(Application, Application.id == Certificate.application_id)
        .where(
            Certificate.status.in_(_IN_USE),
            Certificate.der.is_not(None),
            Certificate.revoked_at.is_(None),
            Certificate.not_after > now,
            Certificate.not_after <= now + horizon,
            ~_newer_live_exists(Certificate),
        )
        .order_by(Certificate.not_after, Certificate.id)
    )
    return [
        ExpiringCertificate(r[0], r[1], r[2], r[3], tuple(r[4] or ()), r[5], r[6], r[7], r[8])
        for r in session.execute(query)
    ]


def _claimable(now: datetime) -> Any:
    """Rows a worker may claim again (both have a CLAIM move in core.notices): failed ones, and claims older
    than RECLAIM_AFTER (their worker died between claim and delivery)."""
    sources = [MailState.FAILED.value, MailState.SENDING.value]
    return and_(ExpiryNotice.state.in_(sources), ExpiryNotice.claimed_at < now - RECLAIM_AFTER)


def claim_expiry_notice(
    session: Session, *, certificate_id: int, threshold_days: int, recipient: str, language: str, now: datetime
) -> int | None:
    """Claim the notice (certificate, threshold) for this worker; None if it was sent or another holds it.

    A first claim is an INSERT that the unique constraint lets only one worker win; a later one is a
    compare-and-set on a failed or abandoned claim.
    """
    target = mail_transition(MailState.PENDING, MailAction.CLAIM)
    row = ExpiryNotice(
        certificate_id=certificate_id,
        threshold_days=threshold_days,
        state=target.value,
        recipient=recipient,
        language=language,
        attempts=1,
        claimed_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
        return row.id
    except IntegrityError:
        pass
    result = session.execute(
        update(ExpiryNotice)
        .where(
            ExpiryNotice.certificate_id == certificate_id,
            ExpiryNotice.threshold_days == threshold_days,
            _claimable(now),
        )
        .values(
            state=mail_transition(MailState.FAILED, MailAction.CLAIM).value,
            claimed_at=now,
            attempts=ExpiryNotice.attempts + 1,
            recipient=recipient,
            language=language,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        return None
    return session.scalar(
        select(ExpiryNotice.id).where(
            ExpiryNotice.certificate_id == certificate_id, ExpiryNotice.threshold_days == threshold_days
        )
    )


def finish_expiry_notice(
    session: Session,
    notice_id: int,
    *,
    delivered: bool,
    now: datetime,
    message_id: str | None = None,
    error: str | None = None,
) -> bool:
    """Record what the relay said about a claimed notice; False if the claim was lost meanwhile."""
    action = MailAction.DELIVERED if delivered else MailAction.FAILED
    target = mail_transition(MailState.SENDING, action)
    values: dict[str, Any] = {"state": target.value, "error": error}
    if delivered:
        values.update(sent_at=now, message_id=message_id)
    result = session.execute(
        update(ExpiryNotice)
        .where(ExpiryNotice.id == notice_id, ExpiryNotice.state == MailState.SENDING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def list_expiry_notices(session: Session, *, limit: int = 500) -> list[NoticeRow]:
    query = (
        select(
            Certificate.serial_hex,
            CA.label,
            ExpiryNotice.threshold_days,
            ExpiryNotice.state,
            ExpiryNotice.recipient,
            ExpiryNotice.language,
            ExpiryNotice.attempts,
            ExpiryNotice.claimed_at,
            ExpiryNotice.sent_at,
            ExpiryNotice.error,
        )
        .join(Certificate, Certificate.id == ExpiryNotice.certificate_id)
        .join(CA, CA.id == Certificate.ca_id)
        .order_by(ExpiryNotice.claimed_at.desc(), ExpiryNotice.id.desc())
        .limit(limit)
    )
    return [NoticeRow(*list(row)) for row in session.execute(query)]


def get_contact_language(session: Session, application_id: int) -> str | None:
    return session.scalar(select(ContactPreference.language).where(ContactPreference.application_id == application_id))


def set_contact_language(session: Session, application_id: int, language: str | None, now: datetime) -> None:
    """Record (or, with None, forget) the language an application's contact reads mail in."""
    row = session.get(ContactPreference, application_id)
    if language is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(ContactPreference(application_id=application_id, language=language, updated_at=now))
    else:
        row.language = language
        row.updated_at = now
    session.flush()


# --- incidents ------------------------------------------------------------------------------------


def select_certificates(
    session: Session,
    *,
    now: datetime,
    ca_labels: Sequence[str] = (),
    profiles: Sequence[str] = (),
    issued_from: datetime | None = None,
    issued_until: datetime | None = None,
    serials: Iterable[str] | None = None,
) -> list[Candidate]:
    """Unexpired, unrevoked certificates in use matching every criterion given (issued = notBefore)."""
    query = (
        select(Certificate.id, Certificate.serial_hex, CA.label, Application.rep_email)
        .join(CA, CA.id == Certificate.ca_id)
        .outerjoin(Application, Application.id == Certificate.application_id)
        .where(
            Certificate.status.in_(_IN_USE),
            Certificate.der.is_not(None),
            Certificate.revoked_at.is_(None),
            Certificate.not_after > now,
        )
    )
    if ca_labels:
        query = query.where(CA.label.in_(list(ca_labels)))
    if profiles:
        query = query.where(Certificate.profile.in_(list(profiles)))
    if issued_from is not None:
        query = query.where(Certificate.not_before >= issued_from)
    if issued_until is not None:
        query = query.where(Certificate.not_before < issued_until)
    if serials is not None:
        query = query.where(Certificate.serial_hex.in_(list(serials)))
    return [Candidate(*row) for row in session.execute(query.order_by(Certificate.id))]


def add_incident(
    session: Session,
    *,
    reason: str,
    selection: dict[str, Any],
    revocation_reason: str | None,
    aware_at: datetime,
    deadline: datetime,
    actor: str,
    now: datetime,
) -> Incident:
    row = Incident(
        reason=reason,
        state=IncidentState.OPEN.value,
        selection=selection,
        revocation_reason=revocation_reason,
        aware_at=aware_at,
        deadline=deadline,
        opened_by=actor,
        opened_at=now,
    )
    session.add(row)
    session.flush()
    return row


def add_incident_certificates(
    session: Session, incident_id: int, candidates: Sequence[Candidate], now: datetime
) -> None:
    session.add_all(
        IncidentCertificate(
            incident_id=incident_id,
            certificate_id=c.certificate_id,
            state=AffectedState.PENDING.value,
            mail_state=MailState.PENDING.value,
            mail_to=c.contact,
            updated_at=now,
        )
        for c in candidates
    )
    session.flush()


def get_incident(session: Session, incident_id: int) -> Incident | None:
    return session.get(Incident, incident_id)


def list_incidents(session: Session) -> list[tuple[Incident, dict[str, int]]]:
    """Every incident, newest first, with its certificates counted by state."""
    incidents = list(session.scalars(select(Incident).order_by(Incident.id.desc())))
    counts: dict[int, dict[str, int]] = {i.id: {} for i in incidents}
    for incident_id, state, count in session.execute(
        select(IncidentCertificate.incident_id, IncidentCertificate.state, func.count()).group_by(
            IncidentCertificate.incident_id, IncidentCertificate.state
        )
    ):
        counts.setdefault(incident_id, {})[state] = count
    return [(i, counts[i.id]) for i in incidents]


def close_incident(session: Session, incident_id: int, *, actor: str, now: datetime) -> bool:
    target = incident_transition(IncidentState.OPEN, IncidentAction.CLOSE)
    result = session.execute(
        update(Incident)
        .where(Incident.id == incident_id, Incident.state == IncidentState.OPEN.value)
        .values(state=target.value, closed_at=now, closed_by=actor)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def affected_rows(session: Session, incident_id: int, *, states: Iterable[str] | None = None) -> list[AffectedRow]:
    query = (
        select(
            IncidentCertificate.id,
            Certificate.id,
            Certificate.serial_hex,
            CA.label,
            Certificate.names,
            Certificate.not_after,
            Certificate.revoked_at,
            Application.id,
            Application.reference_number,
            Application.org_name_en,
            IncidentCertificate.state,
            IncidentCertificate.replaced_by_id,
            IncidentCertificate.revoked_at,
            IncidentCertificate.error,
            IncidentCertificate.mail_state,
            IncidentCertificate.mail_to,
            IncidentCertificate.mailed_at,
            IncidentCertificate.mail_error,
        )
        .join(Certificate, Certificate.id == IncidentCertificate.certificate_id)
        .join(CA, CA.id == Certificate.ca_id)
        .outerjoin(Application, Application.id == Certificate.application_id)
        .where(IncidentCertificate.incident_id == incident_id)
        .order_by(IncidentCertificate.id)
    )
    if states is not None:
        query = query.where(IncidentCertificate.state.in_(list(states)))
    return [AffectedRow(*[*r[:4], tuple(r[4] or ()), *r[5:]]) for r in session.execute(query)]


def move_affected(
    session: Session, row_id: int, source: AffectedState | str, action: AffectedAction, *, now: datetime, **values: Any
) -> bool:
    """Apply one move of an affected certificate (compare-and-set on its state); False if it moved meanwhile."""
    target = affected_transition(source, action)
    result = session.execute(
        update(IncidentCertificate)
        .where(IncidentCertificate.id == row_id, IncidentCertificate.state == str(source))
        .values(state=target.value, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def record_affected_error(session: Session, row_id: int, error: str, now: datetime) -> None:
    session.execute(
        update(IncidentCertificate)
        .where(IncidentCertificate.id == row_id)
        .values(error=error[:1000], updated_at=now)
        .execution_options(synchronize_session=False)
    )


def claim_incident_mail(session: Session, row_id: int, now: datetime) -> bool:
    """Claim the incident mail of one certificate (pending, failed, or abandoned) for this worker."""
    sources = [s.value for s in (MailState.PENDING, MailState.FAILED, MailState.SENDING)]
    result = session.execute(
        update(IncidentCertificate)
        .where(
            IncidentCertificate.id == row_id,
            IncidentCertificate.mail_to.is_not(None),
            IncidentCertificate.mail_state.in_(sources),
            or_(
                IncidentCertificate.mail_state == MailState.PENDING.value,
                IncidentCertificate.mail_claimed_at < now - RECLAIM_AFTER,
            ),
        )
        .values(mail_state=mail_transition(MailState.PENDING, MailAction.CLAIM).value, mail_claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def finish_incident_mail(
    session: Session, row_id: int, *, delivered: bool, now: datetime, error: str | None = None
) -> bool:
    target = mail_transition(MailState.SENDING, MailAction.DELIVERED if delivered else MailAction.FAILED)
    values: dict[str, Any] = {"mail_state": target.value, "mail_error": error}
    if delivered:
        values["mailed_at"] = now
    result = session.execute(
        update(IncidentCertificate)
        .where(IncidentCertificate.id == row_id, IncidentCertificate.mail_state == MailState.SENDING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def mail_due_rows(session: Session, now: datetime) -> list[int]:
    """Affected certificates of open incidents whose subscriber mail is still to be (re)tried."""
    query = (
        select(IncidentCertificate.id)
        .join(Incident, Incident.id == IncidentCertificate.incident_id)
        .where(
            Incident.state == IncidentState.OPEN.value,
            IncidentCertificate.mail_to.is_not(None),
            or_(
                IncidentCertificate.mail_state == MailState.PENDING.value,
                and_(
                    IncidentCertificate.mail_state.in_((MailState.FAILED.value, MailState.SENDING.value)),
                    IncidentCertificate.mail_claimed_at < now - RECLAIM_AFTER,
                ),
            ),
        )
        .order_by(IncidentCertificate.id)
    )
    return list(session.scalars(query))


def affected_by_id(session: Session, row_id: int) -> AffectedRow | None:
    incident_id = session.scalar(select(IncidentCertificate.incident_id).where(IncidentCertificate.id == row_id))
    if incident_id is None:
        return None
    return next((r for r in affected_rows(session, incident_id) if r.id == row_id), None)


def replacement_for(
    session: Session, certificate_id: int, *, since: datetime, exclude: Iterable[int] = ()
) -> int | None:
    """A certificate in use issued since ``since`` that replaces ``certificate_id``, or None.

    Same application when there is one (the subscriber renewed); otherwise the same set of names.
    """
    old = session.get(Certificate, certificate_id)
    if old is None:
        return None
    query = (
        select(Certificate.id, Certificate.names)
        .where(
            Certificate.id != certificate_id,
            Certificate.id.not_in(list(exclude)),
            Certificate.status.in_(_IN_USE),
            Certificate.revoked_at.is_(None),
            Certificate.der.is_not(None),
            Certificate.created_at >= since,
        )
        .order_by(Certificate.id.desc())
    )
    if old.application_id is not None:
        row = session.execute(query.where(Certificate.application_id == old.application_id)).first()
        return row[0] if row else None
    wanted = sorted(old.names or [])
    for new_id, names in session.execute(query.where(Certificate.subject_cn == old.subject_cn)):
        if sorted(names or []) == wanted:
            return int(new_id)
    return None


def incident_certificate_ids(session: Session, incident_id: int) -> set[int]:
    return set(
        session.scalars(
            select(IncidentCertificate.certificate_id).where(IncidentCertificate.incident_id == incident_id)
        )
    )


def due_incidents(session: Session, now: datetime) -> list[int]:
    """Open incidents whose revocation deadline has come."""
    return list(
        session.scalars(
            select(Incident.id)
            .where(Incident.state == IncidentState.OPEN.value, Incident.deadline <= now)
            .order_by(Incident.id)
        )
    )


def open_incident_ids(session: Session) -> list[int]:
    return list(
        session.scalars(select(Incident.id).where(Incident.state == IncidentState.OPEN.value).order_by(Incident.id))
    )


def is_marked_for_replacement(session: Session, cert_id: int) -> bool:
    """True while an open incident will revoke this certificate: ACME's renewalInfo says "renew now".

    (RFC 9773 section 4.2: the server may move the suggested window into the past for a certificate it
    is about to revoke.)
    """
    query = (
        select(IncidentCertificate.id)
        .join(Incident, Incident.id == IncidentCertificate.incident_id)
        .where(
            IncidentCertificate.certificate_id == cert_id,
            Incident.state == IncidentState.OPEN.value,
            IncidentCertificate.state.in_([s.value for s in OPEN_AFFECTED_STATES]),
        )
        .limit(1)
    )
    return session.scalar(query) is not None


def notice_states(session: Session, certificate_ids: Iterable[int]) -> dict[tuple[int, int], str]:
    """The stored notices of these certificates by (certificate, threshold): lets a pass skip what went out."""
    ids = list(certificate_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(ExpiryNotice.certificate_id, ExpiryNotice.threshold_days, ExpiryNotice.state).where(
            ExpiryNotice.certificate_id.in_(ids)
        )
    )
    return {(cert_id, days): state for cert_id, days, state in rows}


def application_id_by_reference(session: Session, reference_number: str) -> int | None:
    return session.scalar(select(Application.id).where(Application.reference_number == reference_number))


def incident_of(session: Session, row_id: int) -> int | None:
    """The incident an affected-certificate row belongs to."""
    return session.scalar(select(IncidentCertificate.incident_id).where(IncidentCertificate.id == row_id))


# --- doctor ---------------------------------------------------------------------------------------


def migration_heads() -> tuple[str, ...]:
    """The head revision(s) of the packaged migrations."""
    from alembic.script import ScriptDirectory

    from ecert.store.db import alembic_config

    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def ocsp_gaps(session: Session, now: datetime) -> dict[str, int]:
    """Per CA label, the unexpired signed certificates with no OCSP response valid at ``now``."""
    from ecert.store.models import OcspResponse

    query = (
        select(CA.label, func.count(Certificate.id))
        .join(CA, CA.id == Certificate.ca_id)
        .outerjoin(
            OcspResponse,
            and_(OcspResponse.ca_id == Certificate.ca_id, OcspResponse.serial_hex == Certificate.serial_hex),
        )
        .where(
            Certificate.der.is_not(None),
            Certificate.status.in_((CertStatus.ISSUED.value, CertStatus.ACCEPTED.value, CertStatus.REVOKED.value)),
            Certificate.not_after > now,
            or_(OcspResponse.id.is_(None), OcspResponse.next_update <= now),
        )
        .group_by(CA.label)
    )
    return {label: int(count) for label, count in session.execute(query)}
