"""Tables of the ACME front door (RFC 8555): nonces, EAB credentials and accounts.

Orders, authorizations and rate-limit counters come with the features that use them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigIntPK, JSONType

__all__ = ["AcmeAccount", "AcmeEabCredential", "AcmeNonce"]


class AcmeNonce(Base):
    """A Replay-Nonce already used (RFC 8555 6.5), kept until its lifetime ends so a replay is refused."""

    __tablename__ = "acme_nonces"

    value: Mapped[str] = mapped_column(primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AcmeEabCredential(Base):
    """An External Account Binding credential the operator made for one application (RFC 8555 7.3.4).

    The MAC key is kept encrypted (AES-256-GCM, the kid as associated data) under the operator's wrapping
    secret: the server needs the key itself to check a binding, so a hash would not do.
    """

    __tablename__ = "acme_eab_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    hmac_key_sealed: Mapped[bytes]
    status: Mapped[str]  # core.acme_rules.EabStatus
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    bound_at: Mapped[datetime | None]
    created_by: Mapped[str]


class AcmeAccount(Base):
    """An ACME account: one key, bound through an EAB credential to one application."""

    __tablename__ = "acme_accounts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # RFC 7638 SHA-256 thumbprint of the account key, base64url: one account per key.
    key_thumbprint: Mapped[str] = mapped_column(unique=True)
    jwk: Mapped[dict[str, Any]] = mapped_column(JSONType)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    eab_credential_id: Mapped[int] = mapped_column(ForeignKey("acme_eab_credentials.id"), unique=True)
    status: Mapped[str]  # core.acme_rules.AccountStatus
    contact: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    created_from: Mapped[str | None]  # client address, for the new-accounts-per-IP limit
