"""acme (ACME: accounts, EAB, orders, authorizations, nonces, rate limits)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 17:40:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSONT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "acme_nonces",
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("value", name="pk_acme_nonces"),
    )
    op.create_index("ix_acme_nonces_expires_at", "acme_nonces", ["expires_at"])
    op.create_table(
        "acme_eab_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("hmac_key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("bound_at", TS, nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_acme_eab_credentials_application_id_applications"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_acme_eab_credentials"),
        sa.UniqueConstraint("kid", name="uq_acme_eab_credentials_kid"),
    )
    op.create_index("ix_acme_eab_credentials_application_id", "acme_eab_credentials", ["application_id"])
    op.create_table(
        "acme_accounts",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("key_thumbprint", sa.Text(), nullable=False),
        sa.Column("jwk", JSONT, nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("eab_credential_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("contact", JSONT, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("created_from", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_acme_accounts_application_id_applications"
        ),
        sa.ForeignKeyConstraint(
            ["eab_credential_id"],
            ["acme_eab_credentials.id"],
            name="fk_acme_accounts_eab_credential_id_acme_eab_credentials",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_acme_accounts"),
        sa.UniqueConstraint("key_thumbprint", name="uq_acme_accounts_key_thumbprint"),
        sa.UniqueConstraint("eab_credential_id", name="uq_acme_accounts_eab_credential_id"),
    )
    op.create_index("ix_acme_accounts_application_id", "acme_accounts", ["application_id"])


def downgrade() -> None:
    op.drop_index("ix_acme_accounts_application_id", table_name="acme_accounts")
    op.drop_table("acme_accounts")
    op.drop_index("ix_acme_eab_credentials_application_id", table_name="acme_eab_credentials")
    op.drop_table("acme_eab_credentials")
    op.drop_index("ix_acme_nonces_expires_at", table_name="acme_nonces")
    op.drop_table("acme_nonces")
