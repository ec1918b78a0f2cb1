"""foundation: every table of the first release, and the append-only guard on audit_log

Revision ID: 0001
Revises:
Create Date: 2026-11-25 12:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Types are spelled out here, not imported from models, so this revision never changes after release.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FALSE = sa.text("false")

APPEND_ONLY_MESSAGE = "audit_log is append-only"

SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER audit_log_refuse_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END""",
    f"""CREATE TRIGGER audit_log_refuse_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END""",
)

POSTGRESQL_TRIGGERS = (
    f"""CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END
$$""",
    """CREATE TRIGGER audit_log_refuse_update_delete BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()""",
    """CREATE TRIGGER audit_log_refuse_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()""",
)


def upgrade() -> None:
    op.create_table(
        "cas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("subject_dn", sa.Text(), nullable=False),
        sa.Column("cert_der", sa.LargeBinary(), nullable=False),
        sa.Column("key_ref", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("effective_from", TS, nullable=True),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("not_after", TS, nullable=False),
        sa.Column("ski_hex", sa.Text(), nullable=True),
        sa.Column("spki_sha256", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("crl_number", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.Column("retire_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["parent_id"], ["cas.id"], name="fk_cas_parent_id_cas"),
        sa.PrimaryKeyConstraint("id", name="pk_cas"),
        sa.UniqueConstraint("label", name="uq_cas_label"),
    )

    op.create_table(
        "applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference_number", sa.CHAR(9), nullable=False),
        sa.Column("pin_hash", sa.Text(), nullable=False),
        sa.Column("server_name", sa.Text(), nullable=False),
        sa.Column("additional_names", JSON, nullable=False),
        sa.Column("cert_type", sa.Text(), nullable=False),
        sa.Column("org_name_en", sa.Text(), nullable=False),
        sa.Column("org_name_zh", sa.Text(), nullable=True),
        sa.Column("branch_name_en", sa.Text(), nullable=True),
        sa.Column("branch_name_zh", sa.Text(), nullable=True),
        sa.Column("reg_doc_type", sa.Text(), nullable=False),
        sa.Column("reg_doc_number", sa.Text(), nullable=False),
        sa.Column("subscription_start", TS, nullable=False),
        sa.Column("subscription_end", TS, nullable=False),
        sa.Column("rep_email", sa.Text(), nullable=False),
        sa.Column("is_government", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.Column("use_chinese", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("ev_business_category", sa.Text(), nullable=True),
        sa.Column("ev_jurisdiction_country", sa.Text(), nullable=True),
        sa.Column("ev_jurisdiction_state", sa.Text(), nullable=True),
        sa.Column("ev_jurisdiction_locality", sa.Text(), nullable=True),
        sa.Column("ev_serial_number", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), server_default="HK", nullable=False),
        sa.Column("state_province", sa.Text(), server_default="Hong Kong", nullable=False),
        sa.Column("locality", sa.Text(), server_default="Hong Kong", nullable=False),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_applications"),
        sa.UniqueConstraint("reference_number", name="uq_applications_reference_number"),
    )
    op.create_index("ix_applications_state", "applications", ["state"])

    op.create_table(
        "certificates",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("serial_hex", sa.Text(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=True),
        sa.Column("tbs_sha256", sa.Text(), nullable=True),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("not_after", TS, nullable=False),
        sa.Column("subject_cn", sa.Text(), nullable=True),
        sa.Column("names", JSON, nullable=False),
        sa.Column("spki_sha256", sa.Text(), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_certificates_ca_id_cas"),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_certificates_application_id_applications"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_certificates"),
        sa.UniqueConstraint("ca_id", "serial_hex", name="uq_certificates_ca_id_serial_hex"),
    )
    op.create_index("ix_certificates_subject_cn", "certificates", ["subject_cn"])
    op.create_index("ix_certificates_spki_sha256", "certificates", ["spki_sha256"])
    op.create_index("ix_certificates_application_id", "certificates", ["application_id"])
    # One live certificate per application (stack.md, "One certificate per application under races").
    op.create_index(
        "uq_certificates_live_application",
        "certificates",
        ["application_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('signing', 'issued')"),
        sqlite_where=sa.text("status IN ('signing', 'issued')"),
    )

    op.create_table(
        "issuance_records",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("serial_hex", sa.Text(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("tbs_sha256", sa.Text(), nullable=True),
        sa.Column("lint_findings", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_issuance_records_ca_id_cas"),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_issuance_records_application_id_applications"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_issuance_records"),
        sa.UniqueConstraint("ca_id", "serial_hex", name="uq_issuance_records_ca_id_serial_hex"),
    )

    op.create_table(
        "blocked_keys",
        sa.Column("spki_sha256", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("spki_sha256", name="pk_blocked_keys"),
    )

    op.create_table(
        "dcv_challenges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("email_address", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("last_checked_at", TS, nullable=True),
        sa.Column("last_result", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_dcv_challenges_application_id_applications"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dcv_challenges"),
    )
    op.create_index("ix_dcv_challenges_application_id", "dcv_challenges", ["application_id"])

    op.create_table(
        "domain_validations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("br_version", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("validated_at", TS, nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("operator_held", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.Column("namespace", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.Column("perspectives", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_domain_validations_application_id_applications"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_domain_validations"),
    )
    op.create_index("ix_domain_validations_domain", "domain_validations", ["domain"])

    op.create_table(
        "caa_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.Column("permitted", sa.Boolean(), nullable=False),
        sa.Column("records", JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_caa_checks_application_id_applications"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_caa_checks"),
    )

    op.create_table(
        "crls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("this_update", TS, nullable=False),
        sa.Column("next_update", TS, nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("is_arl", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.Column("partition", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_crls_ca_id_cas"),
        sa.PrimaryKeyConstraint("id", name="pk_crls"),
        sa.UniqueConstraint("ca_id", "number", "partition", name="uq_crls_ca_id_number_partition"),
    )
    # NULLs are distinct in UNIQUE; this makes numbers of unpartitioned CRLs unique as well.
    op.create_index(
        "uq_crls_ca_id_number_unpartitioned",
        "crls",
        ["ca_id", "number"],
        unique=True,
        postgresql_where=sa.text("partition IS NULL"),
        sqlite_where=sa.text("partition IS NULL"),
    )

    op.create_table(
        "ocsp_responses",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("serial_hex", sa.Text(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("this_update", TS, nullable=False),
        sa.Column("next_update", TS, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_ocsp_responses_ca_id_cas"),
        sa.PrimaryKeyConstraint("id", name="pk_ocsp_responses"),
        sa.UniqueConstraint("ca_id", "serial_hex", name="uq_ocsp_responses_ca_id_serial_hex"),
    )

    op.create_table(
        "responder_certs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("cert_der", sa.LargeBinary(), nullable=False),
        sa.Column("key_ref", sa.Text(), nullable=False),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("not_after", TS, nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_responder_certs_ca_id_cas"),
        sa.PrimaryKeyConstraint("id", name="pk_responder_certs"),
    )

    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.CHAR(64), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_portal_sessions_application_id_applications"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_portal_sessions"),
    )
    op.create_index("ix_portal_sessions_application_id", "portal_sessions", ["application_id"])

    op.create_table(
        "login_attempts",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("reference_number", sa.Text(), nullable=True),
        sa.Column("client_addr", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_attempts"),
    )
    op.create_index("ix_login_attempts_reference_number_at", "login_attempts", ["reference_number", "at"])
    op.create_index("ix_login_attempts_client_addr_at", "login_attempts", ["client_addr", "at"])

    op.create_table(
        "audit_log",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("prev_hash", sa.CHAR(64), nullable=False),
        sa.Column("hash", sa.CHAR(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_index("ix_audit_log_event", "audit_log", ["event"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"])

    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in POSTGRESQL_TRIGGERS:
            op.execute(statement)
    else:  # pragma: no cover - only the two supported engines
        raise NotImplementedError(f"no append-only triggers for {dialect}")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_refuse_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_refuse_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_refuse_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_refuse_update_delete ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
    for table in (
        "audit_log",
        "login_attempts",
        "portal_sessions",
        "responder_certs",
        "ocsp_responses",
        "crls",
        "caa_checks",
        "domain_validations",
        "dcv_challenges",
        "blocked_keys",
        "issuance_records",
        "certificates",
        "applications",
        "cas",
    ):
        op.drop_table(table)
