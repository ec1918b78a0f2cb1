"""Rows put straight into the database, for tests of what comes after a state rather than of how it is reached."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ecert.store.models import Application


def new_application(
    session: Session,
    *,
    now: datetime,
    reference_number: str = "A00000001",
    state: str = "approved",
    server_name: str = "www.example.hk",
    rep_email: str = "admin@example.hk",
    org_name_zh: str | None = None,
) -> Application:
    """One OV application for ``server_name`` in ``state``, subscribed for a year from ``now`` (flushed)."""
    app = Application(
        reference_number=reference_number,
        pin_hash="$argon2id$placeholder",
        server_name=server_name,
        additional_names=[],
        cert_type="server",
        org_name_en="Example Company Limited",
        org_name_zh=org_name_zh,
        reg_doc_type="br",
        reg_doc_number="12345678",
        subscription_start=now,
        subscription_end=now.replace(year=now.year + 1),
        rep_email=rep_email,
        is_government=False,
        state=state,
        failed_logins=0,
        created_at=now,
        updated_at=now,
    )
    session.add(app)
    session.flush()
    return app
