"""Tables of the operator features: expiry notices, subscribers' mail language, incidents and their certificates.

The migration ``0007_status_notices_incidents`` creates exactly these; a test compares them on both engines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigIntPK, JSONType

__all__ = ["ContactPreference", "ExpiryNotice", "Incident", "IncidentCertificate"]


class ExpiryNotice(Base):
    """One expiry notice for one certificate at one threshold (30, 14 or 3 days).

    UNIQUE(certificate_id, threshold_days) is what makes a notice go out once, whichever worker claims it.
    """

    __tablename__ = "expiry_notices"
    __table_args__ = (UniqueConstraint("certificate_id", "threshold_days"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("certificates.id"))
    threshold_days: Mapped[int] = mapped_column(Integer)
    state: Mapped[str]  # core.notices.MailState
    recipient: Mapped[str]
    language: Mapped[str]  # en | zh_HK | both
    attempts: Mapped[int] = mapped_column(Integer)
    claimed_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str | None]
    error: Mapped[str | None]


class ContactPreference(Base):
    """The language an application's contact reads mail in; absent means "unknown": mail goes in both."""

    __tablename__ = "contact_preferences"

    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    language: Mapped[str]  # en | zh_HK
    updated_at: Mapped[datetime]


class Incident(Base):
    """A decision to replace and revoke a set of certificates by a deadline inside BR 4.9.1.1."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str]
    state: Mapped[str]  # core.incidents.IncidentState
    selection: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the criteria, as the operator gave them
    revocation_reason: Mapped[str | None]  # BR 7.2.2 name; None is "unspecified" (no reasonCode)
    aware_at: Mapped[datetime]
    deadline: Mapped[datetime]
    opened_by: Mapped[str]
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None]


class IncidentCertificate(Base):
    """One certificate an incident affects: its replacement progress and the mail to its subscriber."""

    __tablename__ = "incident_certificates"
    __table_args__ = (
        UniqueConstraint("incident_id", "certificate_id"),
        # ACME's renewalInfo asks "is this certificate marked for replacement?" by certificate.
        Index("ix_incident_certificates_certificate_id", "certificate_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    certificate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("certificates.id"))
    state: Mapped[str]  # core.incidents.AffectedState
    replaced_by_id: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[datetime | None]
    error: Mapped[str | None]  # why the last revocation attempt failed
    mail_state: Mapped[str]  # core.notices.MailState
    mail_to: Mapped[str | None]  # None: no contact on file (direct issuance): the operator must reach them
    mail_claimed_at: Mapped[datetime | None]
    mailed_at: Mapped[datetime | None]
    mail_error: Mapped[str | None]
    updated_at: Mapped[datetime]
