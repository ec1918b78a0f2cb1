"""Change notices between processes: PostgreSQL NOTIFY, sent inside the transaction that made the change.

A notice is delivered only if, and when, that transaction commits (PostgreSQL docs, NOTIFY), so a listener
never reads a change before it is visible. SQLite has no such channel; its readers poll a marker instead.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["OCSP_CHANNEL", "announce_ocsp_change"]

OCSP_CHANNEL = "ecert_ocsp"  # a stored OCSP response was written: dedicated responders reload at once


def announce_ocsp_change(session: Session) -> None:
    """Queue a notice on OCSP_CHANNEL for commit (identical notices of one transaction are folded into one)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OCSP_CHANNEL})
