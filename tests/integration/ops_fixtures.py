"""Helpers for the operator-feature tests: an application with a contact and certificates issued under it."""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance
from ecert.services.context import Context
from ecert.store.models import Certificate
from tests.rows import new_application

__all__ = ["add_application", "issue_for", "at"]


def at(ctx: Context, instant: datetime) -> None:
    """Freeze the CA's clock at ``instant``."""
    ctx.clock = lambda: instant


def add_application(
    ctx: Context, reference: str, *, server_name: str = "www.example.com", contact: str = "admin@example.com"
) -> int:
    with ctx.transaction() as session:
        app = new_application(
            session,
            now=ctx.clock(),
            reference_number=reference,
            state="accepted",
            server_name=server_name,
            rep_email=contact,
            org_name_zh="範例有限公司",
        )
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
