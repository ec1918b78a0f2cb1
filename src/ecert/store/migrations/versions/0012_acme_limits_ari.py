"""acme limits ari (ACME: rate-limit counters, RFC 9773 replacements)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 17:55:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acme_limit_counts",
        sa.Column("limit_name", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("limit_name", "key", "window_start", name="pk_acme_limit_counts"),
    )
    op.create_index("ix_acme_limit_counts_expires_at", "acme_limit_counts", ["expires_at"])
    op.create_table(
        "acme_replacements",
        sa.Column("certificate_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("order_ref", sa.Text(), nullable=True),
        sa.Column("claimed_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"], ["certificates.id"], name="fk_acme_replacements_certificate_id_certificates"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["acme_accounts.id"], name="fk_acme_replacements_account_id_acme_accounts"
        ),
        sa.PrimaryKeyConstraint("certificate_id", name="pk_acme_replacements"),
    )
    op.create_index("ix_acme_replacements_account_id", "acme_replacements", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_acme_replacements_account_id", table_name="acme_replacements")
    op.drop_table("acme_replacements")
    op.drop_index("ix_acme_limit_counts_expires_at", table_name="acme_limit_counts")
    op.drop_table("acme_limit_counts")
