"""Issuance as numbered steps with a durable record before the signature (Boulder's issuance cycle).

1. read: the blocked-key check, the issuing CA, the profile's plan (pure);
2. draw a serial, build the TBS, sign a copy with a throwaway key and lint it (no I/O); a refusal is
   stored as a ``failed`` record with its findings;
3. one transaction: the issuance record (serial, linted TBS hash, findings; state ``linted``) and the
   certificate row reserved as ``signing``; a serial collision draws again;
4. sign once with the CA key and check the TBS equals the linted one;
5. one transaction: the certificate (``issued``), the record (``stored``) and the audit event.

Two durable commits per certificate, both needed: a crash or a failed insert after step 3 leaves the
record and the ``signing`` row naming the serial, so no certificate can exist that the database does
not know. (The serial is recorded together with the lint result rather than before it: linting needs
no I/O, and a durable intent that the lint then refuses is recorded as ``failed`` all the same.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.errors import Conflict, LintFailed, NotFound, PolicyViolation
from ..core.keys import spki_sha256
from ..core.profiles import CertType, IssuerFacts, LeafPlan, LeafRequest, SubjectData, plan_leaf
from ..signer.hierarchy import new_serial
from ..signer.issuer import Issuer
from ..store import audit
from ..store.models import CA, BlockedKey, Certificate, IssuanceRecord
from .ceremony import ca_urls_for, load_private_key
from .context import Context

__all__ = ["IssueRequest", "issue", "settle_abandoned", "active_issuing_ca", "issuer_for", "BlockedKeys",
           "serial_hex"]


def serial_hex(serial: int) -> str:
    return format(serial, "x")


@dataclass(frozen=True)
class IssueRequest:
    """A vetted request: the names and subject come from the application, the key from the CSR."""

    cert_type: CertType
    names: tuple[str, ...]
    subject: SubjectData
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    application_id: int | None = None
    subscription_end: datetime | None = None
    requested_days: int | None = None
    common_name: str | None = None
    actor: str = "operator"


class BlockedKeys:
    """A ``Container`` view of the blocked-key table, for CSR intake (one indexed lookup per key)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __contains__(self, spki_hash: object) -> bool:
        return self._session.get(BlockedKey, spki_hash) is not None


def active_issuing_ca(session: Session, cert_type: CertType, now: datetime) -> CA:
    """The newest active issuing CA of the right kind that is already effective."""
    role = "ev" if cert_type.is_ev else "ov"
    row = session.scalar(
        select(CA).where(CA.role == role, CA.status == "active", CA.effective_from <= now)
        .order_by(CA.effective_from.desc(), CA.id.desc()))
    if row is None:
        raise NotFound(f"no active {role.upper()} issuing CA: run `ecert-ca init`", value=role)
    return row


def issuer_for(ctx: Context, row: CA) -> Issuer:
    """The signer for ``row``, cached on the context so the key is loaded once per process."""
    key = f"issuer:{row.label}"
    found = ctx.cache.get(key)
    if found is None:
        cert = x509.load_der_x509_certificate(row.cert_der)
        urls = ca_urls_for(ctx, row.label, role=row.role)
        facts = IssuerFacts(subject=cert.subject, ski=bytes.fromhex(row.ski_hex or ""),
                            ca_issuers_url=urls.ca_issuers_url, crl_url=urls.crl_url, ocsp_url=urls.ocsp_url,
                            policy_oid=ctx.settings.ca_policy_oid, is_ev_capable=row.role == "ev")
        found = Issuer(label=row.label, certificate=cert, key=load_private_key(ctx, row), facts=facts,
                       lint=ctx.settings.lint_before_signing)
        ctx.cache[key] = found
    return found


def _mark_failed(ctx: Context, record_id: int, error: str,
                 findings: list[dict[str, object]] | None = None) -> None:
    with ctx.transaction() as session:
        record = session.get(IssuanceRecord, record_id)
        assert record is not None
        record.state = "failed"
        record.error = error[:2000]
        if findings is not None:
            record.lint_findings = findings
        record.updated_at = ctx.clock()
        session.execute(
            Certificate.__table__.update()
            .where(Certificate.ca_id == record.ca_id, Certificate.serial_hex == record.serial_hex,
                   Certificate.status == "signing")
            .values(status="failed", updated_at=ctx.clock()))
        audit.append(session, actor="system", event="cert.issuance_failed", subject=record.serial_hex,
                     details={"record": record_id, "error": error[:500]}, now=ctx.clock())


def _record_lint_failure(ctx: Context, ca_id: int, serial: int, req: IssueRequest, error: str,
                         findings: list[dict[str, object]]) -> None:
    """A refused lint leaves a durable record of the serial and the findings; nothing was signed."""
    now = ctx.clock()
    with ctx.transaction() as session:
        session.add(IssuanceRecord(ca_id=ca_id, serial_hex=serial_hex(serial), application_id=req.application_id,
                                   profile=req.cert_type.value, state="failed", lint_findings=findings,
                                   error=error[:2000], created_at=now, updated_at=now))
        audit.append(session, actor="system", event="cert.issuance_failed", subject=serial_hex(serial),
                     details={"error": error[:500]}, now=now)


def _serial_taken(ctx: Context, ca_id: int, serial: int) -> bool:
    with ctx.read() as session:
        found = session.scalar(select(IssuanceRecord.id).where(IssuanceRecord.ca_id == ca_id,
                                                               IssuanceRecord.serial_hex == serial_hex(serial)))
        return found is not None


def _store_signed(session: Session, ca_id: int, serial: str, record_id: int, der: bytes,
                  now: datetime) -> Certificate:
    """Step 5; kept separate so a fault test can make exactly this step fail."""
    cert_row = session.scalar(
        update(Certificate).where(Certificate.ca_id == ca_id, Certificate.serial_hex == serial,
                                  Certificate.status == "signing")
        .values(der=der, status="issued", updated_at=now).returning(Certificate))
    if cert_row is None:
        raise Conflict(f"the reserved certificate row for serial {serial} is gone")
    session.execute(update(IssuanceRecord).where(IssuanceRecord.id == record_id).values(state="stored",
                                                                                          updated_at=now))
    return cert_row


def issue(ctx: Context, req: IssueRequest, *,
          on_signed: Callable[[Session, Certificate], None] | None = None) -> Certificate:
    """Run the pipeline for ``req``; returns the stored certificate row.

    ``on_signed`` runs inside the storing transaction (the portal moves its application's state there,
    so the certificate and the state change commit together).
    """
    now = ctx.clock()
    spki = spki_sha256(req.public_key)
    # Step 1 (a read): the blocked-key check, the issuing CA and the profile's plan.
    with ctx.read() as session:
        if spki in BlockedKeys(session):
            raise PolicyViolation("the key is blocked (reported compromised); make a new key", rule="BR 6.1.1.3")
        ca = active_issuing_ca(session, req.cert_type, now)
        ca_id, ca_label = ca.id, ca.label
        issuer = issuer_for(ctx, ca)
    plan = plan_leaf(LeafRequest(cert_type=req.cert_type, names=req.names, subject=req.subject,
                                 public_key=req.public_key, subscription_end=req.subscription_end,
                                 requested_days=req.requested_days, common_name=req.common_name),
                     issuer.facts, now)
    cert_name = plan.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    subject_cn = str(cert_name[0].value) if cert_name else None
    for _ in range(5):
        # Step 2: a fresh serial, the TBS, and the lint of a throwaway-key copy (no I/O).
        serial = new_serial()
        try:
            prepared = issuer.prepare(plan, req.public_key, serial)
        except LintFailed as exc:
            _record_lint_failure(ctx, ca_id, serial, req, str(exc),
                                 list(exc.value) if isinstance(exc.value, list) else [])
            raise
        findings = [f.as_dict() for f in prepared.lint.findings] if prepared.lint else []
        # Step 3, durable before the signature: the record (serial, linted TBS hash, findings) and the
        # certificate row reserved as "signing", in one transaction.
        try:
            with ctx.transaction() as session:
                record = IssuanceRecord(ca_id=ca_id, serial_hex=serial_hex(serial), application_id=req.application_id,
                                        profile=req.cert_type.value, state="linted", tbs_sha256=prepared.tbs_sha256,
                                        lint_findings=findings, created_at=now, updated_at=now)
                session.add(record)
                session.add(Certificate(ca_id=ca_id, serial_hex=serial_hex(serial), der=None,
                                        tbs_sha256=prepared.tbs_sha256, not_before=plan.not_before,
                                        not_after=plan.not_after, subject_cn=subject_cn, names=list(plan.names),
                                        spki_sha256=spki, profile=req.cert_type.value, status="signing",
                                        application_id=req.application_id, created_at=now, updated_at=now))
                session.flush()
                record_id = record.id
            break
        except IntegrityError as exc:
            if _serial_taken(ctx, ca_id, serial):
                continue  # the rare collision: draw again
            raise Conflict("a certificate for this application is already issued or being issued") from exc
    else:
        raise Conflict("could not draw a unique serial number")
    # Step 4: the one real signature.
    try:
        issued = issuer.sign(prepared)
    except Exception as exc:
        _mark_failed(ctx, record_id, f"signing failed: {type(exc).__name__}: {exc}")
        raise
    # Step 5: store certificate, record and audit event together.
    try:
        return _store(ctx, req, plan, ca_id, ca_label, serial, record_id, issued.der, on_signed)
    except Exception as exc:
        # Signed but not stored: the DER never left this process. Say so in the record (which names the
        # serial) and free the reservation. If even that fails (database gone), the record stays "linted",
        # the row "signing", and settle_abandoned() settles them later.
        _mark_failed(ctx, record_id, f"signed but not stored: {type(exc).__name__}: {exc}")
        raise


def _store(ctx: Context, req: IssueRequest, plan: LeafPlan, ca_id: int, ca_label: str, serial: int,
           record_id: int, der: bytes, on_signed: Callable[[Session, Certificate], None] | None) -> Certificate:
    with ctx.transaction() as session:
        cert_row = _store_signed(session, ca_id, serial_hex(serial), record_id, der, ctx.clock())
        audit.append(session, actor=req.actor, event="cert.issued", subject=serial_hex(serial),
                     details={"ca": ca_label, "names": list(plan.names), "profile": req.cert_type.value,
                              "application_id": req.application_id, "not_after": plan.not_after.isoformat()},
                     now=ctx.clock())
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
    from ..core.application import AppState, issue_failed_target
    from ..store.models import Application

    now = ctx.clock()
    settled: list[str] = []
    with ctx.transaction() as session:
        rows = session.scalars(select(Certificate).where(Certificate.status == "signing",
                                                         Certificate.created_at < now - older_than)).all()
        for cert in rows:
            cert.status = "failed"
            cert.updated_at = now
            session.execute(update(IssuanceRecord).where(
                IssuanceRecord.ca_id == cert.ca_id, IssuanceRecord.serial_hex == cert.serial_hex,
                IssuanceRecord.state.in_(("intent", "linted", "signed"))).values(
                state="failed", error="abandoned: the issuing process stopped before storing", updated_at=now))
            if cert.application_id is not None:
                renewal = session.scalar(select(Certificate.id).where(
                    Certificate.application_id == cert.application_id, Certificate.status == "accepted"))
                back = issue_failed_target(AppState.ACCEPTED if renewal is not None else AppState.VALIDATED)
                session.execute(update(Application).where(
                    Application.id == cert.application_id, Application.state == AppState.ISSUING.value).values(
                    state=back.value, updated_at=now, version=Application.version + 1))
            audit.append(session, actor="system", event="cert.issuance_abandoned", subject=cert.serial_hex,
                         details={"application_id": cert.application_id, "reserved_at": cert.created_at.isoformat()},
                         now=now)
            settled.append(cert.serial_hex)
    return settled
