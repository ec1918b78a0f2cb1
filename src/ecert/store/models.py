"""SQLAlchemy ORM models for every ecert table; the Alembic revisions are the source of the schema.

The models must match the migrations exactly (a test compares them on both engines): change both
together, and never call ``create_all`` outside tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "NAMING_CONVENTION",
    "LIVE_CERTIFICATE_STATUSES",
    "Application",
    "AuditEvent",
    "Base",
    "BlockedKey",
    "CA",
    "CaaCheck",
    "Certificate",
    "Crl",
    "DcvChallenge",
    "DomainValidation",
    "IssuanceRecord",
    "LoginAttempt",
    "OcspResponse",
    "PortalSession",
    "ResponderCert",
    "RevocationChallenge",
    "UTCDateTime",
]

# Named constraints let SQLite batch migrations find and alter them later.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Statuses that count as "the" certificate of an application; the partial unique index allows one.
LIVE_CERTIFICATE_STATUSES = ("signing", "issued")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the engine.

    SQLite has no time zone type and returns naive values; PostgreSQL returns the session's zone.
    Naive input is refused, so a local-time bug cannot slip into certificates or the audit log.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime refused, pass an aware UTC value: {value!r}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Stored as UTC text without offset so that text comparison orders correctly.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compared by value); JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# BIGINT keys on PostgreSQL; SQLite only autoincrements a column declared INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime(), str: Text(), bytes: LargeBinary()}


class CA(Base):
    """A CA certificate ecert issues under or trusts: roots, cross-certificates, issuing CAs."""

    __tablename__ = "cas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(unique=True)
    role: Mapped[str]  # root | cross | ov | ev | external-root
    subject_dn: Mapped[str]  # RFC 4514 string
    cert_der: Mapped[bytes]
    key_ref: Mapped[str | None]  # backend URI, e.g. "file:keys/ov-2026.key" or "pkcs11:label=..."
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cas.id"))
    status: Mapped[str] = mapped_column(server_default="active")  # active | retired | revoked
    effective_from: Mapped[datetime | None]
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    ski_hex: Mapped[str | None]
    spki_sha256: Mapped[str]
    created_at: Mapped[datetime]
    # The last CRL number issued by this CA (RFC 5280 5.2.3); bumped by repo.next_crl_number.
    crl_number: Mapped[int] = mapped_column(BigInteger, server_default="0")
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None]
    retire_at: Mapped[datetime | None]


class Application(Base):
    """A subscriber's application, approved by the RA before any certificate is requested."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference_number: Mapped[str] = mapped_column(CHAR(9), unique=True)
    pin_hash: Mapped[str]
    server_name: Mapped[str]
    additional_names: Mapped[list[str]] = mapped_column(JSONType)
    cert_type: Mapped[str]  # server | wildcard | multi | ev | ev_multi
    org_name_en: Mapped[str]
    org_name_zh: Mapped[str | None]
    branch_name_en: Mapped[str | None]
    branch_name_zh: Mapped[str | None]
    reg_doc_type: Mapped[str]  # br | ci | other
    reg_doc_number: Mapped[str]
    subscription_start: Mapped[datetime]
    subscription_end: Mapped[datetime]
    rep_email: Mapped[str]
    is_government: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    use_chinese: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    state: Mapped[str] = mapped_column(index=True)
    ev_business_category: Mapped[str | None]
    ev_jurisdiction_country: Mapped[str | None]
    ev_jurisdiction_state: Mapped[str | None]
    ev_jurisdiction_locality: Mapped[str | None]
    ev_serial_number: Mapped[str | None]
    country: Mapped[str] = mapped_column(server_default="HK")
    state_province: Mapped[str] = mapped_column(server_default="Hong Kong")
    locality: Mapped[str] = mapped_column(server_default="Hong Kong")
    failed_logins: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Bumped by every compare-and-set so that concurrent editors detect each other.
    version: Mapped[int] = mapped_column(Integer, server_default="1")


class Certificate(Base):
    """An end-entity certificate; the row exists (status 'signing') before the signature."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial_hex"),
        # One live certificate per application (stack.md: partial unique index backs the state CAS).
        Index(
            "uq_certificates_live_application",
            "application_id",
            unique=True,
            postgresql_where=text("status IN ('signing', 'issued')"),
            sqlite_where=text("status IN ('signing', 'issued')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial_hex: Mapped[str]  # lowercase hex, no leading zeros
    der: Mapped[bytes | None]
    tbs_sha256: Mapped[str | None]
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    subject_cn: Mapped[str | None] = mapped_column(index=True)
    names: Mapped[list[str]] = mapped_column(JSONType)
    spki_sha256: Mapped[str] = mapped_column(index=True)
    profile: Mapped[str]
    status: Mapped[str]  # signing | issued | accepted | rejected | revoked | failed
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), index=True)
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None]
    rejection_reason: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # A deliberate replacement names the certificate it replaces and whether that one is revoked as
    # superseded when the replacement is accepted, or left to expire.
    replaces_id: Mapped[int | None] = mapped_column(BigInteger)
    revoke_replaced: Mapped[bool | None] = mapped_column(Boolean)


class IssuanceRecord(Base):
    """The durable record of an issuance attempt, committed before the signature (Boulder's cycle).

    It deliberately has no foreign key to certificates: it must survive when the certificate insert fails.
    """

    __tablename__ = "issuance_records"
    __table_args__ = (UniqueConstraint("ca_id", "serial_hex"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial_hex: Mapped[str]
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    profile: Mapped[str]
    state: Mapped[str]  # intent | linted | signed | stored | failed
    tbs_sha256: Mapped[str | None]
    lint_findings: Mapped[list[Any]] = mapped_column(JSONType)
    error: Mapped[str | None]
    # What the registration authority relied on (BR 3.2.2.4 per name, the vetted organisation), so any
    # certificate can be traced back to its validation; and which front door asked.
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    channel: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BlockedKey(Base):
    """A public key that must never be certified (compromised, weak, reported)."""

    __tablename__ = "blocked_keys"

    spki_sha256: Mapped[str] = mapped_column(primary_key=True)
    reason: Mapped[str]
    source: Mapped[str]
    created_at: Mapped[datetime]


class DcvChallenge(Base):
    """A domain control validation challenge sent to the applicant (BR 3.2.2.4)."""

    __tablename__ = "dcv_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None for the operator's own validations of a namespace (services/operator_dcv.py).
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), index=True)
    domain: Mapped[str]
    method: Mapped[str]  # http_file | dns_txt | email
    code: Mapped[str]
    email_address: Mapped[str | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    status: Mapped[str]  # pending | passed | failed | expired
    last_checked_at: Mapped[datetime | None]
    last_result: Mapped[str | None]


class DomainValidation(Base):
    """Evidence that a domain was validated, kept for reuse periods and audit (BR 3.2.2.4, 4.2.1)."""

    __tablename__ = "domain_validations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(index=True)
    method: Mapped[str]
    br_version: Mapped[str]
    code: Mapped[str | None]
    validated_at: Mapped[datetime]
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    operator_held: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    namespace: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))  # covers subdomains
    perspectives: Mapped[Any | None] = mapped_column(JSONType)


class CaaCheck(Base):
    """The outcome of a CAA lookup, kept as BR 3.2.2.8 requires."""

    __tablename__ = "caa_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    domain: Mapped[str]
    checked_at: Mapped[datetime]
    permitted: Mapped[bool] = mapped_column(Boolean)
    records: Mapped[list[Any]] = mapped_column(JSONType)
    reason: Mapped[str | None]


class Crl(Base):
    """A signed CRL or ARL as published (RFC 5280 5)."""

    __tablename__ = "crls"
    __table_args__ = (
        UniqueConstraint("ca_id", "number", "partition"),
        # NULLs are distinct in a UNIQUE constraint; this index makes unpartitioned numbers unique too.
        Index(
            "uq_crls_ca_id_number_unpartitioned",
            "ca_id",
            "number",
            unique=True,
            postgresql_where=text("partition IS NULL"),
            sqlite_where=text("partition IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    number: Mapped[int] = mapped_column(BigInteger)
    this_update: Mapped[datetime]
    next_update: Mapped[datetime]
    der: Mapped[bytes]
    is_arl: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    partition: Mapped[str | None]
    created_at: Mapped[datetime]


class OcspResponse(Base):
    """The current pre-signed OCSP response for one certificate (RFC 6960)."""

    __tablename__ = "ocsp_responses"
    __table_args__ = (UniqueConstraint("ca_id", "serial_hex"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    serial_hex: Mapped[str]
    der: Mapped[bytes]
    # Indexed: the dedicated responder polls for rows signed since its last look (services/ocsp_feed.py).
    this_update: Mapped[datetime] = mapped_column(index=True)
    next_update: Mapped[datetime]
    status: Mapped[str]  # good | revoked | unknown
    etag: Mapped[str]


class ResponderCert(Base):
    """A delegated OCSP responder certificate (RFC 6960 4.2.2.2)."""

    __tablename__ = "responder_certs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("cas.id"))
    cert_der: Mapped[bytes]
    key_ref: Mapped[str]
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]


class RevocationChallenge(Base):
    """A nonce a key holder must sign (in a CSR) to revoke a certificate by proving possession (BR 4.9.3)."""

    __tablename__ = "revocation_challenges"

    nonce: Mapped[str] = mapped_column(primary_key=True)
    serial_hex: Mapped[str] = mapped_column(index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class PortalSession(Base):
    """A server-side portal session, so a logout or a lockout ends it everywhere.

    ``id`` is the SHA-256 of the session token: the token itself is never stored.
    """

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(CHAR(64), primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """One portal login attempt, counted per reference number and per client address for rate limits."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_reference_number_at", "reference_number", "at"),
        Index("ix_login_attempts_client_addr_at", "client_addr", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    reference_number: Mapped[str | None]
    client_addr: Mapped[str]
    at: Mapped[datetime]
    success: Mapped[bool] = mapped_column(Boolean)


class AuditEvent(Base):
    """One row of the append-only, hash-chained audit log (see ecert.store.audit).

    Database triggers refuse UPDATE and DELETE on this table.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str]
    event: Mapped[str] = mapped_column(index=True)
    subject: Mapped[str | None] = mapped_column(index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # UNIQUE: two rows can never chain onto the same predecessor, whatever the application does.
    prev_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    hash: Mapped[str] = mapped_column(CHAR(64), unique=True)


class AuditInboxRow(Base):
    """An event of an open transaction on its way into the chain (PostgreSQL; see ecert.store.audit).

    A deferred trigger moves a transaction's rows into ``audit_log`` inside its COMMIT, under the chain's lock,
    and deletes them here, so the table is empty outside a transaction. ``head`` and ``tail`` are the
    canonical encoding before and after the predecessor's hash, which only the trigger knows.
    """

    __tablename__ = "audit_inbox"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str]
    event: Mapped[str]
    subject: Mapped[str | None]
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    head: Mapped[str]
    tail: Mapped[str]


# Tables of later features live in modules of their own; importing them here puts them on Base.metadata.
from . import (  # noqa: E402,F401
    models_acme,
    models_acme_limits,
    models_acme_orders,
    models_ct,
    models_ops,
    models_ra,
)
