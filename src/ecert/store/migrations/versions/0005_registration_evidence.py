"""the registration authority: evidence on issuance records, operator vettings, deliberate replacements

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 17:40:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "organisation_vettings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("organization", sa.Text(), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("locality", sa.Text(), nullable=True),
        sa.Column("business_category", sa.Text(), nullable=True),
        sa.Column("jurisdiction_country", sa.Text(), nullable=True),
        sa.Column("registration_number", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("vetted_by", sa.Text(), nullable=False),
        sa.Column("vetted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("issuance_records") as batch:
        batch.add_column(sa.Column("evidence", _JSON, nullable=True))
        batch.add_column(sa.Column("channel", sa.Text(), nullable=True))
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("replaces_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("revoke_replaced", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("revoke_replaced")
        batch.drop_column("replaces_id")
    with op.batch_alter_table("issuance_records") as batch:
        batch.drop_column("channel")
        batch.drop_column("evidence")
    op.drop_table("organisation_vettings")
