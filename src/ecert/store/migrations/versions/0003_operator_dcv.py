"""operator-held validations: a DCV challenge may belong to the operator rather than an application

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dcv_challenges") as batch:
        batch.alter_column("application_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM dcv_challenges WHERE application_id IS NULL")
    with op.batch_alter_table("dcv_challenges") as batch:
        batch.alter_column("application_id", existing_type=sa.Integer(), nullable=False)
