"""Helpers for the operator-feature tests: an application with a contact and certificates issued under it."""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance
from ecert.services.context import Context
from ecert.store.models import Application, Certificate

__all__ = ["add_application", "issue_for", "at"]


def at(ctx: Context, instant: datetime) -> None:
    """Freeze the CA's clock at ``instant``."""
    ctx.clock = lambda: instant


def add_application(
    ctx: Context, reference: str, *, server_name: str = "www.example.com", contact: str = "admin@example.com"
) -> int:
    now = ctx.clock()
    with ctx.transaction() as s:
        app = Application(
            reference_number=reference,
            pin_hash="$argon2id$placeholder",
            server_name=server_name,
            additional_names=[],
            cert_type="server",
            org_name_en="Example Company Limited",
            org_name_zh="範例有限公司",
            reg_doc_type="br",
            reg_doc_number="12345678",
            subscription_start=now,
            subscription_end=now.replace(year=now.year + 1),
            rep_email=contact,
            is_government=False,
            state="accepted",
            failed_logins=0,
            created_at=now,
            updated_at=now,
        )
        s.add(app)
        s.flush()
        return app.id


def issue_for(ctx: Context, application_id: int | None, name: str = "www.example.com", days: int = 90) -> Certificate:
    """Issue a certificate and accept it (the subscriber's Accept step, seed C.6), as the portal would."""
    key = ec.generate_private_key(ec.SECP256R1())
    row = issuance.issue(
        ctx,
        issuance.IssueRequest(
            cert_type=CertType.SERVER,
            names=(name,),
            subject=SubjectData("Example Company Limited"),
            public_key=key.public_key(),
            application_id=application_id,
            requested_days=days,
        ),
    )
    with ctx.transaction() as s:
        stored = s.get(Certificate, row.id)
        assert stored is not None
        stored.status = "accepted"
    return row
