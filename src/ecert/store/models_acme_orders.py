"""Tables of ACME orders, authorizations and challenges (RFC 8555 7.1.3-7.1.5).

An authorization belongs to an account (and through it to one application) and may serve several orders
while it is reusable (BR 4.2.1), hence the link table between orders and authorizations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigIntPK, JSONType

__all__ = ["AcmeAuthorization", "AcmeChallenge", "AcmeOrder", "AcmeOrderAuthorization"]


class AcmeOrder(Base):
    """An order (RFC 8555 7.1.3): names, the profile, and the certificate once issued."""

    __tablename__ = "acme_orders"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("acme_accounts.id"), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    status: Mapped[str]  # core.acme_orders.OrderStatus
    identifiers: Mapped[list[str]] = mapped_column(JSONType)
    profile: Mapped[str]
    expires_at: Mapped[datetime]
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    certificate_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("certificates.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AcmeAuthorization(Base):
    """An authorization of one account for one identifier (RFC 8555 7.1.4); a wildcard keeps its base name."""

    __tablename__ = "acme_authorizations"
    __table_args__ = (Index("ix_acme_authorizations_account_id_identifier", "account_id", "identifier"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("acme_accounts.id"))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    identifier: Mapped[str]  # the name validated: a wildcard's base domain (BR 3.2.2.4.7)
    wildcard: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str]  # core.acme_orders.AuthzStatus
    expires_at: Mapped[datetime]
    validated_at: Mapped[datetime | None]
    validation_id: Mapped[int | None] = mapped_column(ForeignKey("domain_validations.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AcmeOrderAuthorization(Base):
    """Which authorizations an order needs (several orders may share one while it is reusable)."""

    __tablename__ = "acme_order_authorizations"

    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("acme_orders.id"), primary_key=True)
    authz_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("acme_authorizations.id"), primary_key=True)


class AcmeChallenge(Base):
    """One way to prove control for an authorization (RFC 8555 7.1.5, 8): its token and its outcome."""

    __tablename__ = "acme_challenges"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    authz_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("acme_authorizations.id"), index=True)
    type: Mapped[str]  # http-01 | dns-01 | tls-alpn-01
    token: Mapped[str] = mapped_column(unique=True)
    status: Mapped[str]  # core.acme_orders.ChallengeStatus
    started_at: Mapped[datetime | None]  # when the client asked for validation (the job picks it up)
    validated_at: Mapped[datetime | None]
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime]
