"""Storage functions of the registration authority: the evidence it may rely on and the keys it refuses.

Named functions in the manner of Boulder's storage authority; they work inside the caller's session and
never commit (``services/`` owns transactions).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..core.evidence import DomainEvidence
from ..core.keys import spki_sha256
from .models import CA, Application, BlockedKey, CaaCheck, DomainValidation, ResponderCert
from .models_ra import OrganisationVetting

__all__ = [
    "application_domain_evidence",
    "operator_domain_evidence",
    "held_namespaces_for",
    "ca_key_labels",
    "ca_keys_stamp",
    "is_key_blocked",
    "reference_of",
    "record_caa_check",
    "add_vetting",
    "get_vetting",
    "list_vettings",
]


def _evidence(row: DomainValidation, source: str) -> DomainEvidence:
    return DomainEvidence(
        validation_id=row.id,
        domain=row.domain,
        method=row.method,
        validated_at=row.validated_at,
        source=source,
        namespace=bool(row.namespace),
    )


def application_domain_evidence(session: Session, application_id: int) -> list[DomainEvidence]:
    """Every domain validation recorded for the application (the subscriber's DCV, or ACME's)."""
    rows = session.scalars(select(DomainValidation).where(DomainValidation.application_id == application_id))
    return [
        _evidence(row, "operator" if row.operator_held else (row.evidence or {}).get("source", "application"))
        for row in rows
    ]


def held_namespaces_for(session: Session, application_id: int) -> list[str]:
    """Namespaces the operator validated for this application's organisation (`ecert-ca dcv check --for REF`)."""
    return list(
        session.scalars(
            select(DomainValidation.domain).where(
                DomainValidation.operator_held.is_(True),
                DomainValidation.namespace.is_(True),
                DomainValidation.application_id == application_id,
            )
        )
    )


def operator_domain_evidence(session: Session) -> list[DomainEvidence]:
    """Validations the operator holds itself (``ecert-ca dcv``), which may cover any vetted organisation's names."""
    rows = session.scalars(select(DomainValidation).where(DomainValidation.operator_held.is_(True)))
    return [_evidence(row, "operator") for row in rows]


def ca_key_labels(session: Session) -> dict[str, str]:
    """SPKI SHA-256 → label of every CA key this instance has had: roots, issuing, cross, past generations,
    and the delegated OCSP responders (BR 6.1.1.3 forbids certifying any of them for a subscriber)."""
    found = {row.spki_sha256: row.label for row in session.execute(select(CA.spki_sha256, CA.label))}
    for ca_label, der in session.execute(
        select(CA.label, ResponderCert.cert_der).join(CA, CA.id == ResponderCert.ca_id)
    ):
        found.setdefault(spki_sha256(x509.load_der_x509_certificate(der).public_key()), f"{ca_label} OCSP responder")
    return found


def record_caa_check(
    session: Session,
    *,
    application_id: int | None,
    domain: str,
    checked_at: datetime,
    permitted: bool,
    records: list[str],
    reason: str,
) -> None:
    """Keep a CAA lookup's outcome (BR 3.2.2.8: the CA records what it relied on)."""
    session.add(
        CaaCheck(
            application_id=application_id,
            domain=domain,
            checked_at=checked_at,
            permitted=permitted,
            records=records,
            reason=reason,
        )
    )


def reference_of(session: Session, application_id: int) -> str | None:
    """The application's reference number, for audit subjects (None if there is no such application)."""
    return session.scalar(select(Application.reference_number).where(Application.id == application_id))


def ca_keys_stamp(session: Session) -> tuple[Any, ...]:
    """A cheap stamp of the set :func:`ca_key_labels` returns, for a per-process copy of it.

    CA and responder rows are only ever added and their keys never change, so the set changes exactly when
    a count or a highest id does; the newest CA's key hash tells two databases apart. One round trip.
    """
    newest = select(CA.spki_sha256).order_by(CA.id.desc()).limit(1).scalar_subquery()
    row = session.execute(
        select(
            select(func.count()).select_from(CA).scalar_subquery(),
            select(func.max(CA.id)).scalar_subquery(),
            newest,
            select(func.count()).select_from(ResponderCert).scalar_subquery(),
            select(func.max(ResponderCert.id)).scalar_subquery(),
        )
    ).one()
    return tuple(row)


def is_key_blocked(session: Session, spki: str) -> bool:
    """True if the key was reported compromised (or otherwise blocked)."""
    return session.get(BlockedKey, spki) is not None


def add_vetting(
    session: Session,
    *,
    organization: str,
    country: str,
    state: str | None,
    locality: str | None,
    business_category: str | None,
    jurisdiction_country: str | None,
    registration_number: str | None,
    source: str,
    vetted_by: str,
    vetted_at: datetime,
    now: datetime,
) -> OrganisationVetting:
    row = OrganisationVetting(
        organization=organization,
        country=country,
        state=state,
        locality=locality,
        business_category=business_category,
        jurisdiction_country=jurisdiction_country,
        registration_number=registration_number,
        source=source,
        vetted_by=vetted_by,
        vetted_at=vetted_at,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_vetting(session: Session, vetting_id: int) -> OrganisationVetting | None:
    return session.get(OrganisationVetting, vetting_id)


def list_vettings(session: Session) -> list[OrganisationVetting]:
    return list(session.scalars(select(OrganisationVetting).order_by(OrganisationVetting.id)))
