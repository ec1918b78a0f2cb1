"""certificate transparency: precertificates, embedded SCTs, each log's last result

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 17:40:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


# The type of the ids these columns point at (store.models.BigIntPK): INTEGER on SQLite, BIGINT elsewhere.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "precertificates",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("serial_hex", sa.Text(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("tbs_sha256", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("revocable", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("certificate_id", _ID, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_precertificates_ca_id_cas"),
        sa.ForeignKeyConstraint(
            ["certificate_id"], ["certificates.id"], name="fk_precertificates_certificate_id_certificates"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_precertificates"),
        sa.UniqueConstraint("ca_id", "serial_hex", name="uq_precertificates_ca_id_serial_hex"),
    )
    op.create_index("ix_precertificates_status", "precertificates", ["status"])
    op.create_table(
        "scts",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("precertificate_id", _ID, nullable=False),
        sa.Column("certificate_id", _ID, nullable=True),
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("log_name", sa.Text(), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("timestamp", TS, nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("extensions", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["precertificate_id"], ["precertificates.id"], name="fk_scts_precertificate_id_precertificates"
        ),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.id"], name="fk_scts_certificate_id_certificates"),
        sa.PrimaryKeyConstraint("id", name="pk_scts"),
    )
    op.create_index("ix_scts_precertificate_id", "scts", ["precertificate_id"])
    op.create_index("ix_scts_certificate_id", "scts", ["certificate_id"])
    op.create_table(
        "ct_log_results",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("log_name", sa.Text(), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("last_ok", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_ms", sa.Integer(), nullable=False),
        sa.Column("submissions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("log_id", name="pk_ct_log_results"),
    )


def downgrade() -> None:
    op.drop_table("ct_log_results")
    op.drop_index("ix_scts_certificate_id", table_name="scts")
    op.drop_index("ix_scts_precertificate_id", table_name="scts")
    op.drop_table("scts")
    op.drop_index("ix_precertificates_status", table_name="precertificates")
    op.drop_table("precertificates")
