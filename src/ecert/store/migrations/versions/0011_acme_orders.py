"""acme orders (ACME): orders, authorizations (shared by orders while reusable), challenges

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 17:55:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSONT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    ref_table = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_{table}_{column}_{ref_table}")


def upgrade() -> None:
    op.create_table(
        "acme_orders",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("identifiers", JSONT, nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("error", JSONT, nullable=True),
        sa.Column("certificate_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _fk("acme_orders", "account_id", "acme_accounts.id"),
        _fk("acme_orders", "application_id", "applications.id"),
        _fk("acme_orders", "certificate_id", "certificates.id"),
        sa.PrimaryKeyConstraint("id", name="pk_acme_orders"),
    )
    op.create_index("ix_acme_orders_account_id", "acme_orders", ["account_id"])
    op.create_index("ix_acme_orders_application_id", "acme_orders", ["application_id"])
    op.create_table(
        "acme_authorizations",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.Text(), nullable=False),
        sa.Column("wildcard", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("validated_at", TS, nullable=True),
        sa.Column("validation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _fk("acme_authorizations", "account_id", "acme_accounts.id"),
        _fk("acme_authorizations", "application_id", "applications.id"),
        _fk("acme_authorizations", "validation_id", "domain_validations.id"),
        sa.PrimaryKeyConstraint("id", name="pk_acme_authorizations"),
    )
    op.create_index("ix_acme_authorizations_account_id_identifier", "acme_authorizations", ["account_id", "identifier"])
    op.create_table(
        "acme_order_authorizations",
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("authz_id", sa.BigInteger(), nullable=False),
        _fk("acme_order_authorizations", "order_id", "acme_orders.id"),
        _fk("acme_order_authorizations", "authz_id", "acme_authorizations.id"),
        sa.PrimaryKeyConstraint("order_id", "authz_id", name="pk_acme_order_authorizations"),
    )
    op.create_table(
        "acme_challenges",
        sa.Column("id", BIGPK, nullable=False),
        sa.Column("authz_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("validated_at", TS, nullable=True),
        sa.Column("error", JSONT, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        _fk("acme_challenges", "authz_id", "acme_authorizations.id"),
        sa.PrimaryKeyConstraint("id", name="pk_acme_challenges"),
        sa.UniqueConstraint("token", name="uq_acme_challenges_token"),
    )
    op.create_index("ix_acme_challenges_authz_id", "acme_challenges", ["authz_id"])


def downgrade() -> None:
    op.drop_index("ix_acme_challenges_authz_id", table_name="acme_challenges")
    op.drop_table("acme_challenges")
    op.drop_table("acme_order_authorizations")
    op.drop_index("ix_acme_authorizations_account_id_identifier", table_name="acme_authorizations")
    op.drop_table("acme_authorizations")
    op.drop_index("ix_acme_orders_application_id", table_name="acme_orders")
    op.drop_index("ix_acme_orders_account_id", table_name="acme_orders")
    op.drop_table("acme_orders")
