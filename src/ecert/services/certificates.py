"""The subscriber's certificate: CSR intake, acceptance or rejection, and deliberate replacement.

Every issuance decision is taken by the registration authority (``services.registration``); this module
moves the application through its states around that decision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from ..core.application import CSR_STATES, Action, AppState, issue_failed_action, reject_action
from ..core.csr import MAX_CSR_BYTES, CSRTooLarge
from ..core.errors import Conflict, EcertError, NotFound, PolicyViolation
from ..core.lifecycle import CertAction, CertStatus
from ..core.names import to_unicode
from ..core.profiles import CERT_TYPE_LABELS, CertType
from ..store import audit
from ..store import cas as cas_store
from ..store import certificates as cert_store
from ..store.models import CA, Application, Certificate
from .applications import application_id_for, load_application, move_state
from .context import Context
from .registration import Channel, IssuanceIntent, Requester, VettedRequest, authorize, issue_vetted
from .revocation import publish_status, revoke_certificate

__all__ = [
    "CertificateView",
    "submit_csr",
    "replace_certificate",
    "get_certificate",
    "accept_certificate",
    "reject_certificate",
    "spaced_serial",
    "issue_direct",
    "IssuedDirect",
    "certificate_details",
    "CertificateDetails",
]


@dataclass(frozen=True)
class CertificateView:
    """The certificate information page (seed C.6)."""

    reference_number: str
    cert_type: str
    cert_type_label: str
    issuer_cn: str
    serial_hex: str
    serial_spaced: str
    not_before: datetime
    not_after: datetime
    validity_days: int
    names: tuple[str, ...]
    names_unicode: tuple[str, ...]
    state: str  # the certificate's status: issued | accepted | rejected
    application_state: str
    certificate_id: int
    replaces_serial: str | None = None  # a replacement names the certificate it replaces
    revoke_replaced: bool | None = None  # ...and whether that one is revoked (superseded) when this is accepted


def spaced_serial(serial_hex: str) -> str:
    """``45 16 9d ...``: two hex digits per byte, zero-padded to whole bytes, as the seed's page shows."""
    digits = serial_hex.lower()
    if len(digits) % 2:
        digits = "0" + digits
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _unicode(name: str) -> str:
    try:
        return to_unicode(name)
    except EcertError:
        return name


# --- views ------------------------------------------------------------------------------------------


def _issuer_cn(ca: CA | None) -> str:
    if ca is None:
        return ""
    attrs = x509.load_der_x509_certificate(ca.cert_der).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ca.label


def _cert_view(session: Session, row: Certificate, app: Application) -> CertificateView:
    cert_type = CertType(row.profile)
    names = tuple(row.names or ())
    replaced = cert_store.certificate_by_id(session, row.replaces_id) if row.replaces_id else None
    return CertificateView(
        reference_number=app.reference_number,
        cert_type=cert_type.value,
        cert_type_label=CERT_TYPE_LABELS[cert_type],
        issuer_cn=_issuer_cn(cas_store.ca_by_id(session, row.ca_id)),
        serial_hex=row.serial_hex,
        serial_spaced=spaced_serial(row.serial_hex),
        not_before=row.not_before,
        not_after=row.not_after,
        validity_days=(row.not_after - row.not_before).days + 1,
        names=names,
        names_unicode=tuple(_unicode(n) for n in names),
        state=row.status,
        application_state=app.state,
        certificate_id=row.id,
        replaces_serial=replaced.serial_hex if replaced else None,
        revoke_replaced=row.revoke_replaced,
    )


def _view_of(ctx: Context, app_id: int, cert_id: int) -> CertificateView:
    with ctx.read() as session:
        cert = cert_store.certificate_by_id(session, cert_id)
        assert cert is not None
        return _cert_view(session, cert, load_application(session, app_id))


# --- CSR, replacement and issuance --------------------------------------------------------------------


def _check_size(csr_text: str | bytes) -> None:
    size = len(csr_text.encode("utf-8", "replace") if isinstance(csr_text, str) else csr_text)
    if size > MAX_CSR_BYTES:
        raise CSRTooLarge(f"the CSR is {size} bytes; at most {MAX_CSR_BYTES} are accepted", value=size)


def _refuse_resubmission(state: str) -> None:
    """A plain CSR is taken once; what to do instead depends on where the application is."""
    if state == AppState.ACCEPTED.value:
        raise Conflict(
            "a certificate was already issued and accepted for this application; to get another one "
            "(new key, lost key, renewal) use Replace certificate, which says what happens to the "
            "current certificate",
            value=state,
        )
    if state == AppState.ISSUED.value:
        raise Conflict("a certificate is waiting for your Accept or Reject", value=state)
    if state == AppState.ISSUING.value:
        raise Conflict("a certificate is already being issued for this application", value=state)
    raise Conflict(f"a CSR cannot be submitted now (the application is {state})", value=state)


def _intent(
    ctx: Context,
    app_id: int,
    csr_text: str | bytes,
    actor: str,
    channel: Channel,
    replaces: Certificate | None = None,
    revoke_replaced: bool | None = None,
) -> IssuanceIntent:
    with ctx.read() as session:
        row = load_application(session, app_id)
        cert_type = CertType(row.cert_type)
    return IssuanceIntent(
        requester=Requester(channel, actor),
        cert_type=cert_type,
        csr=csr_text,
        application_id=app_id,
        replaces_id=replaces.id if replaces else None,
        revoke_replaced=revoke_replaced,
    )


def _begin(
    ctx: Context,
    app_id: int,
    action: Action,
    origin: str,
    vetted: VettedRequest,
    actor: str,
    details: dict[str, object],
) -> None:
    """The compare-and-set into ``issuing``, with its audit event: of two racing submits only one gets here."""
    now = ctx.clock()
    with ctx.transaction() as session:
        move_state(session, app_id, action, now=now, current=origin)
        audit.append(
            session,
            actor=actor,
            event="csr.submitted",
            subject=vetted.reference or str(app_id),
            details={
                "names": list(vetted.request.names),
                "csr_names": list(vetted.csr.dns_names),
                "key": vetted.csr.key.description,
                "ignored": list(vetted.csr.ignored),
                **details,
            },
            now=now,
        )


def _run(ctx: Context, app_id: int, origin: str, vetted: VettedRequest) -> Certificate:
    """Issue, moving the application to ``issued`` with the certificate; on failure, back where it was."""

    def on_signed(session: Session, cert_row: Certificate) -> None:
        move_state(session, app_id, Action.SIGNED, now=ctx.clock(), current=AppState.ISSUING.value)

    try:
        return issue_vetted(ctx, vetted, on_signed=on_signed)
    except BaseException as exc:
        with ctx.transaction() as session:
            back = move_state(
                session, app_id, issue_failed_action(origin), now=ctx.clock(), current=AppState.ISSUING.value
            )
            audit.append(
                session,
                actor="system",
                event="csr.issuance_failed",
                subject=vetted.reference or "",
                details={
                    "error": (exc.message if isinstance(exc, EcertError) else type(exc).__name__)[:500],
                    "back_to": back.value,
                },
                now=ctx.clock(),
            )
        raise


def _state_of(ctx: Context, app_id: int) -> str:
    with ctx.read() as session:
        return load_application(session, app_id).state


def _reopen_if_revoked(ctx: Context, app_id: int, origin: str) -> str:
    """An ``accepted`` application whose certificate was revoked takes a new CSR (seed D: apply anew)."""
    if origin != AppState.ACCEPTED.value:
        return origin
    with ctx.transaction() as session:
        if cert_store.accepted_for_application(session, app_id) is not None:
            return origin
        return move_state(session, app_id, Action.REOPEN, now=ctx.clock(), current=origin).value


def submit_csr(
    ctx: Context, app_id: int, csr_text: str | bytes, *, actor: str, channel: Channel = Channel.PORTAL
) -> CertificateView:
    """Take the application's one CSR (any Exchange/IIS/OpenSSL header) and issue its certificate.

    The registration authority decides (subject from the application, names it covers, evidence, key, CAA);
    a second CSR after acceptance is refused: replacing a certificate is :func:`replace_certificate`.
    After a revocation the application takes a new CSR.
    """
    _check_size(csr_text)
    origin = _reopen_if_revoked(ctx, app_id, _state_of(ctx, app_id))
    if AppState(origin) not in CSR_STATES:
        _refuse_resubmission(origin)
    vetted = authorize(ctx, _intent(ctx, app_id, csr_text, actor, channel))
    _begin(ctx, app_id, Action.SUBMIT_CSR, origin, vetted, actor, {"replacement": False})
    return _view_of(ctx, app_id, _run(ctx, app_id, origin, vetted).id)


def replace_certificate(
    ctx: Context,
    app_id: int,
    csr_text: str | bytes,
    *,
    revoke_current: bool,
    actor: str,
    channel: Channel = Channel.PORTAL,
) -> CertificateView:
    """A deliberate replacement of the accepted certificate (new key, lost key, renewal in the subscription).

    ``revoke_current``: the current certificate is revoked as superseded (BR 4.9.1.1) the moment the
    replacement is accepted, so the server is never left without a usable certificate; otherwise it is
    left to expire. A rejected replacement leaves the current certificate as it is.
    """
    _check_size(csr_text)
    origin = _state_of(ctx, app_id)
    with ctx.read() as session:
        current = cert_store.accepted_for_application(session, app_id)
    if origin != AppState.ACCEPTED.value or current is None:
        raise Conflict("a certificate can be replaced only after one was accepted", value=origin)
    vetted = authorize(ctx, _intent(ctx, app_id, csr_text, actor, channel, current, revoke_current))
    _begin(
        ctx,
        app_id,
        Action.REPLACE,
        origin,
        vetted,
        actor,
        {"replacement": True, "replaces": current.serial_hex, "revoke_current": revoke_current},
    )
    return _view_of(ctx, app_id, _run(ctx, app_id, origin, vetted).id)


def get_certificate(ctx: Context, app_id: int) -> CertificateView | None:
    """The application's newest usable certificate (waiting for acceptance, or accepted); None if none."""
    with ctx.read() as session:
        app = load_application(session, app_id)
        cert = cert_store.newest_live_for_application(session, app_id)
        return None if cert is None else _cert_view(session, cert, app)


def _waiting_certificate(session: Session, app_id: int) -> Certificate:
    """The application's certificate issued and waiting for Accept or Reject (seed C.6)."""
    cert = cert_store.waiting_for_acceptance(session, app_id)
    if cert is None:
        raise Conflict("there is no certificate waiting for acceptance")
    return cert


def accept_certificate(ctx: Context, app_id: int, *, actor: str) -> CertificateView:
    """Accept (seed C.6): the certificate becomes public (search page) and downloadable.

    Accepting a replacement that asked for it revokes the replaced certificate as superseded, at once.
    """
    now = ctx.clock()
    with ctx.transaction() as session:
        app = load_application(session, app_id)
        move_state(session, app_id, Action.ACCEPT, now=now, current=app.state)
        waiting = _waiting_certificate(session, app_id)
        cert = cert_store.move_certificate(
            session,
            ca_id=waiting.ca_id,
            serial_hex=waiting.serial_hex,
            action=CertAction.ACCEPT,
            current=CertStatus.ISSUED,
            now=now,
        )
        audit.append(
            session,
            actor=actor,
            event="cert.accepted",
            subject=cert.serial_hex,
            details={"application": app.reference_number},
            now=now,
        )
        replaced = cert_store.certificate_by_id(session, cert.replaces_id) if cert.replaces_id else None
        cert_id, revoke = cert.id, bool(cert.revoke_replaced)
    if replaced is not None and revoke and replaced.status == CertStatus.ACCEPTED.value:
        with ctx.read() as session:
            ca = cas_store.ca_by_id(session, replaced.ca_id)
        revoke_certificate(
            ctx, ca_label=ca.label if ca else None, serial_hex=replaced.serial_hex, reason="superseded", actor=actor
        )
    return _view_of(ctx, app_id, cert_id)


def reject_certificate(ctx: Context, app_id: int, *, reason: str, actor: str) -> CertificateView:
    """Reject (seed C.6): the certificate was signed before acceptance, so it is revoked at once.

    Status ``rejected`` with ``revoked_at`` set puts it on the CRL and OCSP. The revocation reason is
    left empty: BR 7.2.2 represents "unspecified" by omitting reasonCode, and none of the five listed
    reasons describes a subscriber declining a certificate it never accepted (superseded would claim a
    replacement that may never be requested). A first certificate's application returns to ``validated``
    for a new CSR; a rejected replacement returns to ``accepted``, the current certificate standing.
    """
    now = ctx.clock()
    reason = (reason or "").strip()[:1000]
    with ctx.transaction() as session:
        app = load_application(session, app_id)
        waiting = _waiting_certificate(session, app_id)
        move_state(session, app_id, reject_action(waiting.replaces_id is not None), now=now, current=app.state)
        cert = cert_store.move_certificate(
            session,
            ca_id=waiting.ca_id,
            serial_hex=waiting.serial_hex,
            action=CertAction.REJECT,
            current=CertStatus.ISSUED,
            now=now,
            revoked_at=now,
            revocation_reason=None,
            rejection_reason=reason or "rejected by the subscriber",
        )
        audit.append(
            session,
            actor=actor,
            event="cert.rejected",
            subject=cert.serial_hex,
            details={"application": app.reference_number, "reason": reason, "revoked": True},
            now=now,
        )
        ca = cas_store.ca_by_id(session, cert.ca_id)
        changed = [(ca.label, cert.serial_hex)] if ca is not None else []
        cert_id = cert.id
    publish_status(ctx, changed)  # after the commit: CRL and OCSP say "revoked" now, not at the next job pass
    return _view_of(ctx, app_id, cert_id)


# --- the operator's direct issuance and lookup ---------------------------------------------------------


@dataclass(frozen=True)
class IssuedDirect:
    serial_hex: str
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    profile: str
    ignored: tuple[str, ...]
    pem: str
    evidence_summary: dict[str, str]


def issue_direct(
    ctx: Context,
    *,
    csr: bytes | str,
    profile: str,
    names: tuple[str, ...],
    vetting_id: int | None,
    reference_number: str | None,
    days: int | None,
    high_risk_reviewed: bool,
    actor: str,
    channel: Channel = Channel.OPERATOR_CLI,
) -> IssuedDirect:
    """The operator's direct issuance: the same registration authority and pipeline as every other path.

    No acceptance step follows (the operator hands the certificate over), so it is stored as accepted.
    """
    try:
        cert_type = CertType(profile)
    except ValueError:
        raise PolicyViolation(
            f"unknown profile {profile!r}; choose from {', '.join(t.value for t in CertType)}", value=profile
        ) from None
    _check_size(csr)
    intent = IssuanceIntent(
        requester=Requester(channel, actor),
        cert_type=cert_type,
        csr=csr,
        names=names,
        application_id=application_id_for(ctx, reference_number),
        vetting_id=vetting_id,
        requested_days=days,
        high_risk_reviewed=high_risk_reviewed,
    )
    vetted = authorize(ctx, intent)
    row = issue_vetted(ctx, replace(vetted, request=replace(vetted.request, accepted_on_issue=True)))
    assert row.der is not None
    pem = x509.load_der_x509_certificate(row.der).public_bytes(serialization.Encoding.PEM).decode()
    domains = (vetted.request.evidence or {}).get("domains", {})
    summary = {d: f"{e['method']} ({e['source']}, {e['validated_at'][:10]})" for d, e in domains.items()}
    return IssuedDirect(
        serial_hex=row.serial_hex,
        names=tuple(row.names),
        not_before=row.not_before,
        not_after=row.not_after,
        profile=row.profile,
        ignored=vetted.csr.ignored,
        pem=pem,
        evidence_summary=summary,
    )


@dataclass(frozen=True)
class CertificateDetails:
    serial_hex: str
    issuer: str
    status: str
    names: tuple[str, ...]
    profile: str
    not_before: datetime
    not_after: datetime
    spki_sha256: str
    revoked_at: datetime | None
    revocation_reason: str | None
    channel: str | None
    evidence: dict[str, object] | None
    pem: str | None


def certificate_details(ctx: Context, serial: str) -> CertificateDetails:
    """A certificate by serial (as people paste it), with the evidence its issuance relied on (for auditors)."""
    from ..store.repo import normalize_serial_hex

    try:
        wanted = normalize_serial_hex(serial)
    except ValueError as exc:
        raise NotFound(str(exc), value=serial[:80]) from None
    with ctx.read() as session:
        row = cert_store.certificate_by_serial(session, wanted)
        if row is None:
            raise NotFound(f"no certificate with serial {serial}", value=wanted)
        ca = cas_store.ca_by_id(session, row.ca_id)
        record = cert_store.record_for(session, row.ca_id, row.serial_hex)
    pem = x509.load_der_x509_certificate(row.der).public_bytes(serialization.Encoding.PEM).decode() if row.der else None
    return CertificateDetails(
        serial_hex=row.serial_hex,
        issuer=ca.label if ca else "",
        status=row.status,
        names=tuple(row.names or ()),
        profile=row.profile,
        not_before=row.not_before,
        not_after=row.not_after,
        spki_sha256=row.spki_sha256,
        revoked_at=row.revoked_at,
        revocation_reason=row.revocation_reason,
        channel=record.channel if record else None,
        evidence=record.evidence if record else None,
        pem=pem,
    )
