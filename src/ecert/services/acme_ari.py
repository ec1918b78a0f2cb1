"""ACME Renewal Information (RFC 9773): the suggested window of a certificate, and newOrder's ``replaces``.

The window comes from core/acme_ari.py; this module finds the certificate the identifier names and asks
whether it is revoked or marked for replacement by the operator (an open incident, store.ops).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from ..core import acme_ari
from ..core.acme_rules import AcmeRefusal, ProblemType
from ..core.lifecycle import SIGNED_STATUSES
from ..store import acme_limits as store
from ..store import audit, ops
from ..store.models import Certificate
from .context import Context
from .refusals import record_refusal

__all__ = [
    "Replaced",
    "check_and_claim_replaces",
    "claim_replaces_in",
    "release_replaces",
    "release_replaces_of_order",
    "renewal_info",
]


def _certificate(session: Session, cert_id: acme_ari.CertId) -> Certificate:
    """The issued certificate the identifier names (RFC 9773 4.1), or 404."""
    found = store.certificate_by_issuer_key(session, cert_id.key_identifier.hex(), format(cert_id.serial, "x"))
    if found is None or found[0].status not in SIGNED_STATUSES:
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            "this CA issued no certificate with this identifier",
            status=404,
            rule="RFC 9773 4.1",
            value=format(cert_id.serial, "x"),
        )
    return found[0]


def renewal_info(ctx: Context, cert_id_text: str) -> acme_ari.RenewalWindow:
    """RFC 9773 4.2: the window for the certificate named by ``cert_id_text`` (AKI keyIdentifier.serial)."""
    cert_id = acme_ari.parse_cert_id(cert_id_text)
    now = ctx.clock()
    with ctx.read() as session:
        cert = _certificate(session, cert_id)
        marked = ops.is_marked_for_replacement(session, cert.id)
        return acme_ari.window(
            not_before=cert.not_before,
            not_after=cert.not_after,
            serial=cert_id.serial,
            revoked=cert.revoked_at is not None,
            replace_now=marked,
            now=now,
        )


@dataclass(frozen=True)
class Replaced:
    """The certificate a new order replaces (RFC 9773 5), once claimed."""

    certificate_id: int
    serial_hex: str


def _refuse(problem: ProblemType, message: str, value: object, *, status: int = 400) -> AcmeRefusal:
    return AcmeRefusal(problem, message, status=status, rule="RFC 9773 5", value=value)


def _check_replaceable(cert: Certificate, application_id: int, names: Iterable[str]) -> None:
    """RFC 9773 5: the certificate is this account's (its application's) and shares a name with the order."""
    if cert.application_id != application_id:
        raise _refuse(
            ProblemType.UNAUTHORIZED, "replaces names a certificate of another account", cert.serial_hex, status=403
        )
    wanted = {n.lower().rstrip(".") for n in names}
    if not wanted & {n.lower() for n in cert.names}:
        raise _refuse(
            ProblemType.MALFORMED, "the order shares no name with the certificate it replaces", cert.serial_hex
        )


def claim_replaces_in(
    session: Session,
    *,
    account_id: int,
    application_id: int,
    replaces: str,
    names: Iterable[str],
    order_ref: str | None,
    now: datetime,
) -> Replaced:
    """Check ``replaces`` and mark the certificate as being replaced, in the caller's (newOrder's) transaction.

    A second order naming the same certificate gets ``alreadyReplaced`` (RFC 9773 7.4) until the first one
    releases it (:func:`release_replaces`, when that order becomes invalid).
    """
    cert = _certificate(session, acme_ari.parse_cert_id(replaces))
    _check_replaceable(cert, application_id, names)
    if not store.claim_replacement(
        session, certificate_id=cert.id, account_id=account_id, order_ref=order_ref, now=now
    ):
        raise _refuse(
            ProblemType.ALREADY_REPLACED, "another order already replaces this certificate", cert.serial_hex, status=409
        )
    audit.append(
        session,
        actor=f"acme:account:{account_id}",
        event="acme.order.replaces",
        subject=cert.serial_hex,
        details={"certificate_id": cert.id, "order": order_ref},
        now=now,
    )
    return Replaced(cert.id, cert.serial_hex)


def check_and_claim_replaces(
    ctx: Context,
    *,
    account_id: int,
    application_id: int,
    replaces: str,
    names: Iterable[str],
    order_ref: str | None = None,
) -> Replaced:
    """:func:`claim_replaces_in` in a transaction of its own; a refusal is audited."""
    try:
        with ctx.transaction() as session:
            return claim_replaces_in(
                session,
                account_id=account_id,
                application_id=application_id,
                replaces=replaces,
                names=tuple(names),
                order_ref=order_ref,
                now=ctx.clock(),
            )
    except AcmeRefusal as refusal:
        record_refusal(
            ctx,
            event="acme.order.replaces_refused",
            actor=f"acme:account:{account_id}",
            subject=str(refusal.value) if refusal.value is not None else None,
            details={"problem": refusal.problem.value, "why": str(refusal)[:300]},
        )
        refusal.audited = True  # the edge does not log it again
        raise


def release_replaces_of_order(session: Session, order_id: int) -> int:
    """Free what an order claimed when it turns invalid (call it in the transaction that moves the order)."""
    return store.release_replacements_of_order(session, str(order_id))


def release_replaces(session: Session, certificate_id: int, *, order_ref: str | None) -> bool:
    """Free a claim when its order turned invalid (RFC 9773 5: only a non-invalid order holds it)."""
    return store.release_replacement(session, certificate_id, order_ref=order_ref)
