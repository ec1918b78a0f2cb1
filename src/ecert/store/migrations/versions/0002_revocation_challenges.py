"""revocation challenges: the nonces a key holder signs to prove possession when asking for revocation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "revocation_challenges",
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("serial_hex", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("nonce", name="pk_revocation_challenges"),
    )
    op.create_index("ix_revocation_challenges_serial_hex", "revocation_challenges", ["serial_hex"])


def downgrade() -> None:
    op.drop_index("ix_revocation_challenges_serial_hex", table_name="revocation_challenges")
    op.drop_table("revocation_challenges")
