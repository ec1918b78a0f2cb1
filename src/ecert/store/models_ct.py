"""Tables of Certificate Transparency: precertificates, the SCTs embedded in certificates, each log's last result.

A precertificate is a promise to issue (RFC 6962 3.1, BR 7.1.2.9): its row is written before any log sees it,
and it stays, whatever happens to the final certificate.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigIntPK

__all__ = ["Precertificate", "SctRecord", "CtLogResult"]


class Precertificate(Base):
    """A signed precertificate; ``status`` moves through ``core.ct.PRECERT_TRANSITIONS``."""

    __tablename__ = "precertificates"
    __table_args__ = (UniqueConstraint("ca_id", "serial_hex"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial_hex: Mapped[str]
    der: Mapped[bytes]
    tbs_sha256: Mapped[str]
    status: Mapped[str] = mapped_column(index=True)  # signed | final | revoked
    # Whether revoking the serial is this row's business (True until a final certificate carries the serial).
    revocable: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    error: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SctRecord(Base):
    """One verified SCT, as embedded in a final certificate (RFC 6962 3.2)."""

    __tablename__ = "scts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    precertificate_id: Mapped[int] = mapped_column(ForeignKey("precertificates.id"), index=True)
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"), index=True)
    log_id: Mapped[str]  # base64, as in the log list
    log_name: Mapped[str]
    operator: Mapped[str]
    timestamp: Mapped[datetime]
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    extensions: Mapped[bytes]
    signature: Mapped[bytes]  # the TLS digitally-signed element
    created_at: Mapped[datetime]


class CtLogResult(Base):
    """The last answer of each log this CA submitted to (shown by ``ecert-ca ct logs``)."""

    __tablename__ = "ct_log_results"

    log_id: Mapped[str] = mapped_column(primary_key=True)  # base64
    log_name: Mapped[str]
    operator: Mapped[str]
    url: Mapped[str]
    last_at: Mapped[datetime]
    last_ok: Mapped[bool] = mapped_column(Boolean)
    last_error: Mapped[str | None]
    last_ms: Mapped[int] = mapped_column(Integer)
    submissions: Mapped[int] = mapped_column(Integer, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
