"""Issuance as numbered steps with a durable record before the signature (Boulder's issuance cycle).

1. the issuing CA's signer (kept per process) and the profile's plan (pure);
2. draw a serial, build the TBS, sign a copy with a throwaway key and lint it (no I/O); a refusal is
   stored as a ``failed`` record with its findings;
3. one transaction: in one round trip the blocked-key check (again: a key may be reported between the
   decision and the signature) and the kept signer's CA still active (else step 1 again), then the
   issuance record (serial, linted TBS hash, findings; state ``linted``) and the certificate row reserved
   as ``signing``; a serial collision draws again;
4. sign once with the CA key and check the TBS equals the linted one;
5. one transaction: the certificate (``issued``), the record (``stored``) and the audit event.

With Certificate Transparency on (``ctx.ct``), step 2 prepares a precertificate (the poisoned TBS, linted as
a precertificate) and step 4 becomes four (services/transparency.py): the signed precertificate is stored
before any log sees it; SCTs are collected outside any transaction; the final certificate (the same TBS with
the SCT list instead of the poison, linted as final) is signed; step 5 stores it with its SCTs. Any failure
after the precertificate is stored revokes its serial, since a precertificate is a promise to issue.

Two durable commits per certificate, both needed: a crash or a failed insert after step 3 leaves the
record and the ``signing`` row naming the serial, so no certificate can exist that the database does
not know. (The serial is recorded together with the lint result rather than before it: linting needs
no I/O, and a durable intent that the lint then refuses is recorded as ``failed`` all the same.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.errors import Conflict, LintFailed, NotFound, PolicyViolation
from ..core.keys import spki_sha256
from ..core.profiles import CertType, IssuerFacts, LeafPlan, LeafRequest, SubjectData, plan_leaf
from ..signer.hierarchy import new_serial
from ..signer.issuer import Issuer, PreparedCertificate
from ..store import audit
from ..store import cas as cas_store
from ..store import certificates as cert_store
from ..store.models import CA, Certificate
from . import process_cache
from .ceremony import ca_urls_for, load_private_key
from .context import Context
from .transparency import finish_with_scts, revoke_unkept, revoke_unkept_in_session

__all__ = ["IssueRequest", "issue", "settle_abandoned", "active_issuing_ca", "issuer_for", "serial_hex"]


def serial_hex(serial: int) -> str:
    return format(serial, "x")


@dataclass(frozen=True)
class IssueRequest:
    """A vetted request: the names and subject come from the vetted organisation, the key from the CSR.

    Only the registration authority (``services.registration``) makes these for production paths; it
    fills ``evidence`` with what it relied on, which the issuance record keeps.
    """

    cert_type: CertType
    names: tuple[str, ...]
    subject: SubjectData
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    application_id: int | None = None
    subscription_end: datetime | None = None
    requested_days: int | None = None
    common_name: str | None = None
    actor: str = "operator"
    evidence: dict[str, Any] | None = None
    channel: str | None = None
    replaces_id: int | None = None
    revoke_replaced: bool | None = None
    # Paths without the seed's Accept step (operator, ACME) store the certificate as accepted at once.
    accepted_on_issue: bool = False


def _role(cert_type: CertType) -> str:
    return "ev" if cert_type.is_ev else "ov"


def active_issuing_ca(session: Session, cert_type: CertType, now: datetime) -> CA:
    """The newest active issuing CA of the right kind that is already effective."""
    role = _role(cert_type)
    row = cert_store.active_issuing_ca(session, role, now)
    if row is None:
        raise NotFound(f"no active {role.upper()} issuing CA: run `ecert-ca init`", value=role)
    return row


def issuer_for(ctx: Context, row: CA) -> Issuer:
    """The signer for ``row``, cached on the context so the key is loaded once per process."""
    found = ctx.issuers.get(row.label)
    if found is None:
        cert = x509.load_der_x509_certificate(row.cert_der)
        urls = ca_urls_for(ctx, row.label, role=row.role)
        facts = IssuerFacts(
            subject=cert.subject,
            ski=bytes.fromhex(row.ski_hex or ""),
            ca_issuers_url=urls.ca_issuers_url,
            crl_url=urls.crl_url,
            ocsp_url=urls.ocsp_url,
            policy_oid=ctx.settings.ca_policy_oid,
            is_ev_capable=row.role == "ev",
        )
        found = Issuer(
            label=row.label,
            certificate=cert,
            key=load_private_key(ctx, row),
            facts=facts,
            lint=ctx.settings.lint_before_signing,
        )
        ctx.issuers[row.label] = found
    return found


def _mark_failed(ctx: Context, record_id: int, error: str) -> None:
    with ctx.transaction() as session:
        record = cert_store.fail_reservation(session, record_id, error, ctx.clock())
        audit.append(
            session,
            actor="system",
            event="cert.issuance_failed",
            subject=record.serial_hex,
            details={"record": record_id, "error": error[:500]},
            now=ctx.clock(),
        )


def _record_lint_failure(
    ctx: Context, ca_id: int, serial: int, req: IssueRequest, error: str, findings: list[dict[str, object]]
) -> None:
    """A refused lint leaves a durable record of the serial and the findings; nothing was signed."""
    now = ctx.clock()
    with ctx.transaction() as session:
        cert_store.record_refused_lint(
            session,
            ca_id=ca_id,
            serial_hex=serial_hex(serial),
            application_id=req.application_id,
            profile=req.cert_type.value,
            error=error,
            findings=findings,
            evidence=req.evidence,
            channel=req.channel,
            now=now,
        )
        audit.append(
            session,
            actor="system",
            event="cert.issuance_failed",
            subject=serial_hex(serial),
            details={"error": error[:500]},
            now=now,
        )


@dataclass(frozen=True)
class _Signer:
    ca_id: int
    ca_label: str
    issuer: Issuer


class _IssuerChanged(Exception):
    """The signer kept by this process is no longer its role's active CA (a rollover): step 1 runs again."""


def _step1_read(ctx: Context, req: IssueRequest, now: datetime) -> _Signer:
    """Step 1: the issuing CA's signer, kept per process (reading and hydrating the CA row took 6 % of an
    issuance). It is checked against the database in the reservation transaction, together with the
    blocked-key check (:func:`_still_allowed`), so a rollover or a key reported since is seen there."""
    memo = process_cache.slot(ctx)
    slot = f"signer:{_role(req.cert_type)}"
    found: _Signer | None = memo.get(slot)
    if found is None:
        with ctx.read() as session:
            ca = active_issuing_ca(session, req.cert_type, now)
            found = memo[slot] = _Signer(ca.id, ca.label, issuer_for(ctx, ca))
    return found


def _still_allowed(session: Session, signer: _Signer, req: IssueRequest, spki: str, now: datetime) -> None:
    """In the reservation transaction, one round trip: the blocked-key check again (a key may be reported
    between the decision and the signature: BR 6.1.1.3) and the signer's CA still the active one."""
    blocked, active_id = cert_store.issuing_check(session, role=_role(req.cert_type), now=now, spki_sha256=spki)
    if blocked:
        raise PolicyViolation("the key is blocked (reported compromised); make a new key", rule="BR 6.1.1.3")
    if active_id != signer.ca_id:
        raise _IssuerChanged(signer.ca_label)


def _prepare(ctx: Context, signer: _Signer, plan: LeafPlan, req: IssueRequest) -> tuple[int, PreparedCertificate]:
    """Step 2: a fresh serial, the TBS, and the lint of a throwaway-key copy (no I/O)."""
    serial = new_serial()
    prepare = signer.issuer.prepare if ctx.ct is None else signer.issuer.prepare_precertificate
    try:
        return serial, prepare(plan, req.public_key, serial)
    except LintFailed as exc:
        _record_lint_failure(
            ctx, signer.ca_id, serial, req, str(exc), list(exc.value) if isinstance(exc.value, list) else []
        )
        raise


def _reservation(
    signer: _Signer, serial: int, prepared: PreparedCertificate, plan: LeafPlan, req: IssueRequest
) -> cert_store.Reservation:
    cn = plan.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    findings: list[dict[str, object]] = [dict(f.as_dict()) for f in prepared.lint.findings] if prepared.lint else []
    return cert_store.Reservation(
        ca_id=signer.ca_id,
        serial_hex=serial_hex(serial),
        profile=req.cert_type.value,
        application_id=req.application_id,
        tbs_sha256=prepared.tbs_sha256,
        lint_findings=findings,
        evidence=req.evidence,
        channel=req.channel,
        not_before=plan.not_before,
        not_after=plan.not_after,
        subject_cn=str(cn[0].value) if cn else None,
        names=tuple(plan.names),
        spki_sha256=spki_sha256(req.public_key),
        replaces_id=req.replaces_id,
        revoke_replaced=req.revoke_replaced,
    )


def _reserve(ctx: Context, signer: _Signer, plan: LeafPlan, req: IssueRequest) -> tuple[int, PreparedCertificate, int]:
    """Steps 2 and 3, durable before the signature: the record and the ``signing`` row in one transaction;
    a serial collision draws again."""
    now = ctx.clock()
    for _ in range(5):
        serial, prepared = _prepare(ctx, signer, plan, req)
        try:
            reservation = _reservation(signer, serial, prepared, plan, req)
            with ctx.transaction() as session:
                _still_allowed(session, signer, req, reservation.spki_sha256, now)
                record_id = cert_store.reserve_issuance(session, reservation, now)
            return serial, prepared, record_id
        except IntegrityError as exc:
            with ctx.read() as session:
                if cert_store.serial_recorded(session, signer.ca_id, serial_hex(serial)):
                    continue  # the rare collision: draw again
            raise Conflict("a certificate for this application is already issued or being issued") from exc
    raise Conflict("could not draw a unique serial number")


def issue(
    ctx: Context, req: IssueRequest, *, on_signed: Callable[[Session, Certificate], None] | None = None
) -> Certificate:
    """Run the pipeline for ``req``; returns the stored certificate row.

    A rollover between step 1 and the reservation (the kept signer is no longer active) starts again with
    the new CA; nothing durable was written for the old one.
    """
    for _ in range(3):
        try:
            return _issue(ctx, req, on_signed)
        except _IssuerChanged:
            process_cache.slot(ctx).pop(f"signer:{_role(req.cert_type)}", None)
    raise Conflict("the issuing CA changed during issuance; ask again")


def _issue(ctx: Context, req: IssueRequest, on_signed: Callable[[Session, Certificate], None] | None) -> Certificate:
    """The pipeline's steps for ``req``; returns the stored certificate row.

    ``on_signed`` runs inside the storing transaction (the portal moves its application's state there,
    so the certificate and the state change commit together).
    """
    now = ctx.clock()
    signer = _step1_read(ctx, req, now)
    plan = plan_leaf(
        LeafRequest(
            cert_type=req.cert_type,
            names=req.names,
            subject=req.subject,
            public_key=req.public_key,
            subscription_end=req.subscription_end,
            requested_days=req.requested_days,
            common_name=req.common_name,
        ),
        signer.issuer.facts,
        now,
    )
    serial, prepared, record_id = _reserve(ctx, signer, plan, req)
    # Step 4: the one real signature.
    try:
        issued = signer.issuer.sign(prepared)
    except Exception as exc:
        _mark_failed(ctx, record_id, f"signing failed: {type(exc).__name__}: {exc}")
        raise
    if ctx.ct is not None:
        # Step 4 with CT: store the precertificate, collect SCTs, sign the final certificate.
        try:
            finished = finish_with_scts(
                ctx,
                ctx.ct,
                signer.issuer,
                ca_id=signer.ca_id,
                ca_label=signer.ca_label,
                serial_hex=serial_hex(serial),
                prepared=prepared,
                precertificate=issued,
                actor=req.actor,
            )
        except Exception as exc:
            _fail_after_signature(ctx, signer, serial, record_id, f"certificate transparency: {exc}")
            raise
        issued, on_signed = finished.issued, _both(finished.record(ctx), on_signed)
    # Step 5: store certificate, record and audit event together.
    try:
        return _store(ctx, req, plan, signer, serial, record_id, issued.der, on_signed)
    except Exception as exc:
        # Signed but not stored: the DER never left this process. Say so in the record (which names the
        # serial) and free the reservation. If even that fails (database gone), the record stays "linted",
        # the row "signing", and settle_abandoned() settles them later.
        _fail_after_signature(ctx, signer, serial, record_id, f"signed but not stored: {type(exc).__name__}: {exc}")
        raise


def _fail_after_signature(ctx: Context, signer: _Signer, serial: int, record_id: int, error: str) -> None:
    """A failure after the signature: a stored precertificate (CT) has its serial revoked, since it was or may
    have been logged; then the record says why and any reservation left is freed (both steps are idempotent)."""
    if ctx.ct is not None:
        revoke_unkept(ctx, ca_id=signer.ca_id, ca_label=signer.ca_label, serial_hex=serial_hex(serial), error=error)
    _mark_failed(ctx, record_id, error)


def _both(
    first: Callable[[Session, Certificate], None], then: Callable[[Session, Certificate], None] | None
) -> Callable[[Session, Certificate], None]:
    def _run(session: Session, row: Certificate) -> None:
        first(session, row)
        if then is not None:
            then(session, row)

    return _run


def _store_signed(
    session: Session, ca_id: int, serial: str, record_id: int, der: bytes, now: datetime, accepted: bool = False
) -> Certificate:
    """Step 5; kept separate so a fault test can make exactly this step fail."""
    return cert_store.store_signed_der(
        session, ca_id=ca_id, serial_hex=serial, record_id=record_id, der=der, accepted=accepted, now=now
    )


def _store(
    ctx: Context,
    req: IssueRequest,
    plan: LeafPlan,
    signer: _Signer,
    serial: int,
    record_id: int,
    der: bytes,
    on_signed: Callable[[Session, Certificate], None] | None,
) -> Certificate:
    with ctx.transaction() as session:
        cert_row = _store_signed(
            session, signer.ca_id, serial_hex(serial), record_id, der, ctx.clock(), req.accepted_on_issue
        )
        audit.append(
            session,
            actor=req.actor,
            event="cert.issued",
            subject=serial_hex(serial),
            details={
                "ca": signer.ca_label,
                "names": list(plan.names),
                "profile": req.cert_type.value,
                "application_id": req.application_id,
                "not_after": plan.not_after.isoformat(),
                "channel": req.channel,
                "evidence": req.evidence,
            },
            now=ctx.clock(),
        )
        if on_signed is not None:
            on_signed(session, cert_row)
        return cert_row


ABANDONED_AFTER = timedelta(minutes=15)


def settle_abandoned(ctx: Context, *, older_than: timedelta = ABANDONED_AFTER) -> list[str]:
    """Settle issuances a crashed process left between reservation and storing (stack.md: the reconciler).

    Their certificate never left the process that signed it, so the reservation is released ("failed"),
    the record says why, and an application stuck in "issuing" returns to where its CSR came from.
    Returns the serials settled.
    """
    now = ctx.clock()
    settled: list[str] = []
    revoked: list[tuple[int, str]] = []  # precertificates (CT) whose serial is revoked rather than released
    with ctx.transaction() as session:
        for cert in cert_store.abandoned_reservations(session, now - older_than):
            record = cert_store.record_for(session, cert.ca_id, cert.serial_hex)
            if revoke_unkept_in_session(
                session,
                ca_id=cert.ca_id,
                serial_hex=cert.serial_hex,
                now=now,
                error="abandoned after the precertificate: its serial is revoked",
            ):
                revoked.append((cert.ca_id, cert.serial_hex))
            elif record is not None:
                cert_store.fail_reservation(
                    session, record.id, "abandoned: the issuing process stopped before storing", now
                )
            if cert.application_id is not None:
                _return_application(session, cert.application_id, now)
            audit.append(
                session,
                actor="system",
                event="cert.issuance_abandoned",
                subject=cert.serial_hex,
                details={"application_id": cert.application_id, "reserved_at": cert.created_at.isoformat()},
                now=now,
            )
            settled.append(cert.serial_hex)
    _publish_revoked(ctx, revoked)
    return settled


def _publish_revoked(ctx: Context, revoked: list[tuple[int, str]]) -> None:
    """CRL and OCSP answer at once for serials of abandoned precertificates."""
    if not revoked:
        return
    from .revocation import publish_status

    with ctx.read() as session:
        rows = {ca_id: cas_store.ca_by_id(session, ca_id) for ca_id, _ in revoked}
    labels = {ca_id: row.label for ca_id, row in rows.items() if row is not None}
    publish_status(ctx, [(labels[ca_id], serial) for ca_id, serial in revoked if ca_id in labels])


def _return_application(session: Session, app_id: int, now: datetime) -> None:
    """An application left ``issuing`` goes back through the state machine: to ``accepted`` for a replacement."""
    from ..core.application import AppState, issue_failed_action
    from .applications import load_application, move_state

    if load_application(session, app_id).state != AppState.ISSUING.value:
        return
    replacing = cert_store.accepted_for_application(session, app_id) is not None
    action = issue_failed_action(AppState.ACCEPTED if replacing else AppState.VALIDATED)
    move_state(session, app_id, action, now=now, current=AppState.ISSUING.value)
