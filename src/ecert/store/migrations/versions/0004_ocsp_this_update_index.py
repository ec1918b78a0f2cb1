"""index ocsp_responses.this_update: the dedicated responder's incremental poll reads by it

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:30:00+00:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ocsp_responses_this_update", "ocsp_responses", ["this_update"])


def downgrade() -> None:
    op.drop_index("ix_ocsp_responses_this_update", table_name="ocsp_responses")
