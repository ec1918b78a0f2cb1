"""audit inbox: PostgreSQL chains a transaction's audit events inside its COMMIT

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:40:00+00:00

Before this revision the application took the chain's advisory lock, read the head, inserted the rows and
committed: four round trips with the one lock of the whole instance held, and under load each of them
waited for its process's GIL, so the lock was held 15-20 ms instead of 2 and every audited write of every
process queued behind it. Now a transaction's events go to ``audit_inbox`` without any lock, and a deferred
constraint trigger moves them into ``audit_log`` during COMMIT: lock, head, hashes and rows all inside the
server, no round trip while the lock is held. The hash is the same SHA-256 over the same canonical encoding
(the application stores the encoding's two halves around the predecessor's hash), so chains written before
and after verify alike. SQLite keeps the application's path: its one writer holds the database anyway.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# ecert.store.audit's AUDIT_LOCK_KEY and GENESIS_HASH, spelled out so this revision never changes.
LOCK_KEY = int.from_bytes(b"ecertaud", "big", signed=True)
GENESIS = "0" * 64

POSTGRESQL_UP = (
    f"""CREATE FUNCTION audit_chain_inbox() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    item record;
    prev text;
    next_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_inbox) THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    SELECT id, hash INTO next_id, prev FROM audit_log ORDER BY id DESC LIMIT 1;
    IF next_id IS NULL THEN
        next_id := 1;
        prev := '{GENESIS}';
    ELSE
        next_id := next_id + 1;
    END IF;
    FOR item IN SELECT * FROM audit_inbox ORDER BY seq LOOP
        INSERT INTO audit_log (id, at, actor, event, subject, details, prev_hash, hash)
        VALUES (next_id, item.at, item.actor, item.event, item.subject, item.details, prev,
                encode(sha256(convert_to(item.head || prev || item.tail, 'UTF8')), 'hex'))
        RETURNING hash INTO prev;
        next_id := next_id + 1;
    END LOOP;
    DELETE FROM audit_inbox;
END $$""",
    """CREATE FUNCTION audit_inbox_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM audit_chain_inbox();
    RETURN NULL;
END $$""",
    """CREATE CONSTRAINT TRIGGER audit_inbox_chain AFTER INSERT ON audit_inbox
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_inbox_at_commit()""",
)


def upgrade() -> None:
    op.create_table(
        "audit_inbox",
        sa.Column("seq", BIGPK, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("head", sa.Text(), nullable=False),
        sa.Column("tail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_inbox"),
    )
    if op.get_context().dialect.name == "postgresql":
        for statement in POSTGRESQL_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_inbox_chain ON audit_inbox")
        op.execute("DROP FUNCTION IF EXISTS audit_inbox_at_commit()")
        op.execute("DROP FUNCTION IF EXISTS audit_chain_inbox()")
    op.drop_table("audit_inbox")
