"""status notices incidents (status: notices, incidents, audit checkpoints)

Expiry notices sent once per certificate and threshold, the contact's mail language, incidents and the
certificates they replace and revoke (store/models_ops.py). Audit checkpoints live outside the database.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 17:40:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Spelled out, not imported from models, so this revision never changes after release.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "expiry_notices",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("certificate_id", sa.BigInteger(), nullable=False),
        sa.Column("threshold_days", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"], ["certificates.id"], name="fk_expiry_notices_certificate_id_certificates"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_expiry_notices"),
        sa.UniqueConstraint("certificate_id", "threshold_days", name="uq_expiry_notices_certificate_id_threshold_days"),
    )
    op.create_table(
        "contact_preferences",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_contact_preferences_application_id_applications"
        ),
        sa.PrimaryKeyConstraint("application_id", name="pk_contact_preferences"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("selection", JSON, nullable=False),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.Column("aware_at", TS, nullable=False),
        sa.Column("deadline", TS, nullable=False),
        sa.Column("opened_by", sa.Text(), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_table(
        "incident_certificates",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("replaced_by_id", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("mail_state", sa.Text(), nullable=False),
        sa.Column("mail_to", sa.Text(), nullable=True),
        sa.Column("mail_claimed_at", TS, nullable=True),
        sa.Column("mailed_at", TS, nullable=True),
        sa.Column("mail_error", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_incident_certificates_incident_id_incidents"
        ),
        sa.ForeignKeyConstraint(
            ["certificate_id"], ["certificates.id"], name="fk_incident_certificates_certificate_id_certificates"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incident_certificates"),
        sa.UniqueConstraint(
            "incident_id", "certificate_id", name="uq_incident_certificates_incident_id_certificate_id"
        ),
    )
    op.create_index("ix_incident_certificates_certificate_id", "incident_certificates", ["certificate_id"])


def downgrade() -> None:
    op.drop_index("ix_incident_certificates_certificate_id", table_name="incident_certificates")
    for table in ("incident_certificates", "incidents", "contact_preferences", "expiry_notices"):
        op.drop_table(table)
