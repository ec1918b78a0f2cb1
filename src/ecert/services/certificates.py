"""The subscriber's certificate: CSR intake, acceptance or rejection, and deliberate replacement.

Every issuance decision is taken by the registration authority (``services.registration``); this module
moves the application through its states around that decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..core.application import CSR_STATES, Action, AppState, issue_failed_target
from ..core.csr import MAX_CSR_BYTES, CSRTooLarge, check_csr, compare_names
from ..core.errors import Conflict, EcertError, ValidationFailed
from ..core.names import to_unicode
from ..core.profiles import CERT_TYPE_LABELS, CertType
from ..store import audit
from ..store.models import CA, Application, Certificate
from .applications import application_names, dcv_exemption, load_application, move_state, subject_for
from .caa import check_caa_at_issuance
from .context import Context
from .enrolment import _domains, _ensure_open, _reusable_validations
from .issuance import BlockedKeys, IssueRequest, issue
from .revocation import publish_status

__all__ = [
    "CertificateView",
    "submit_csr",
    "get_certificate",
    "accept_certificate",
    "reject_certificate",
    "spaced_serial",
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


def spaced_serial(serial_hex: str) -> str:
    """``45 16 9d ...``: two hex digits per byte, zero-padded to whole bytes, as the seed's page shows."""
    digits = serial_hex.lower()
    if len(digits) % 2:
        digits = "0" + digits
    return " ".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def _unicode(name: str) -> str:
    try:
        return to_unicode(name)
    except EcertError:
        return name


# --- CSR and issuance --------------------------------------------------------------------------------


def _cert_view(row: Certificate, app: Application, ca: CA | None) -> CertificateView:
    issuer_cn = ""
    if ca is not None:
        attrs = x509.load_der_x509_certificate(ca.cert_der).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        issuer_cn = str(attrs[0].value) if attrs else ca.label
    cert_type = CertType(row.profile)
    names = tuple(row.names or ())
    return CertificateView(
        reference_number=app.reference_number, cert_type=cert_type.value,
        cert_type_label=CERT_TYPE_LABELS[cert_type], issuer_cn=issuer_cn, serial_hex=row.serial_hex,
        serial_spaced=spaced_serial(row.serial_hex), not_before=row.not_before, not_after=row.not_after,
        validity_days=(row.not_after - row.not_before).days + 1, names=names,
        names_unicode=tuple(_unicode(n) for n in names), state=row.status, application_state=app.state,
        certificate_id=row.id)


def _refused(ctx: Context, reference: str, exc: EcertError, actor: str) -> None:
    with ctx.transaction() as session:
        audit.append(session, actor=actor, event="csr.refused", subject=reference,
                     details={"code": exc.code, "reason": exc.message[:1000], "rule": exc.rule}, now=ctx.clock())


def _caa(ctx: Context, app_id: int, reference: str, names: Sequence[str],
         methods: Mapping[str, str | None], actor: str) -> None:
    """BR 3.2.2.8: CAA checked at issuance (well inside 8 hours of signing); recorded and audited."""
    check_caa_at_issuance(ctx, names, actor=actor, application_id=app_id, reference=reference, methods=methods)


def submit_csr(ctx: Context, app_id: int, csr_text: str | bytes, *, actor: str) -> CertificateView:
    """Take a CSR (any of the Exchange/IIS/OpenSSL/ecert headers), check it and issue the certificate.

    The subject comes from the application, never from the CSR (BR 7.1.4.2); the CSR's names must be
    among the application's validated names. Validity is capped by the BR maximum and the subscription end.
    """
    size = len(csr_text.encode("utf-8", "replace") if isinstance(csr_text, str) else csr_text)
    if size > MAX_CSR_BYTES:
        raise CSRTooLarge(f"the CSR is {size} bytes; at most {MAX_CSR_BYTES} are accepted", value=size)
    now = ctx.clock()
    with ctx.read() as session:
        row = load_application(session, app_id)
        reference = row.reference_number
    try:
        with ctx.transaction() as session:
            row = load_application(session, app_id)
            _ensure_open(row, now)
            origin = row.state
            if AppState(origin) not in CSR_STATES:
                if origin == AppState.ISSUING.value:
                    raise Conflict("a certificate is already being issued for this application", value=origin)
                raise Conflict(f"a CSR cannot be submitted now (the application is {origin})", value=origin)
            info = check_csr(csr_text, blocked_spki=BlockedKeys(session))
            names = application_names(row)
            compare_names(info.dns_names, names)
            methods: dict[str, str | None] = {}
            if dcv_exemption(session, row, now) is None:
                reusable = _reusable_validations(session, row, now)
                missing = [d for d in _domains(row) if d not in reusable]
                if missing:
                    raise ValidationFailed(
                        "domain control has not been shown, or its validation is older than the reuse period, "
                        f"for: {', '.join(missing)}; complete domain validation first", rule="BR 4.2.1 / BR 3.2.2.4",
                        value=tuple(missing))
                methods = {d: v.method for d, v in reusable.items()}
            move_state(session, app_id, Action.SUBMIT_CSR, now=now, current=origin)
            audit.append(session, actor=actor, event="csr.submitted", subject=reference,
                         details={"names": list(names), "csr_names": list(info.dns_names), "key": str(info.key),
                                  "ignored": list(info.ignored), "renewal": origin == AppState.ACCEPTED.value},
                         now=now)
            issue_request = IssueRequest(cert_type=CertType(row.cert_type), names=names, subject=subject_for(row),
                                         public_key=info.public_key,  # type: ignore[arg-type]
                                         application_id=app_id, subscription_end=row.subscription_end, actor=actor)
    except EcertError as exc:
        if not isinstance(exc, Conflict):
            _refused(ctx, reference, exc, actor)
        raise

    def on_signed(session: Session, cert_row: Certificate) -> None:
        move_state(session, app_id, Action.SIGNED, now=ctx.clock(), current=AppState.ISSUING.value)

    try:
        _caa(ctx, app_id, reference, names, methods, actor)
        cert_row = issue(ctx, issue_request, on_signed=on_signed)
    except BaseException as exc:
        back = issue_failed_target(origin)
        with ctx.transaction() as session:
            session.execute(update(Application).where(Application.id == app_id,
                                                      Application.state == AppState.ISSUING.value)
                            .values(state=back.value, updated_at=ctx.clock(), version=Application.version + 1))
            audit.append(session, actor="system", event="csr.issuance_failed", subject=reference,
                         details={"error": (exc.message if isinstance(exc, EcertError) else type(exc).__name__)[:500],
                                  "back_to": back.value}, now=ctx.clock())
        raise
    with ctx.read() as session:
        app = load_application(session, app_id)
        cert = session.get(Certificate, cert_row.id)
        assert cert is not None
        return _cert_view(cert, app, session.get(CA, cert.ca_id))


def _current_cert(session: Session, app_id: int) -> Certificate | None:
    return session.scalars(select(Certificate).where(
        Certificate.application_id == app_id, Certificate.status.in_(("issued", "accepted")))
        .order_by(Certificate.created_at.desc(), Certificate.id.desc())).first()


def get_certificate(ctx: Context, app_id: int) -> CertificateView | None:
    """The application's newest usable certificate (waiting for acceptance, or accepted); None if none."""
    with ctx.read() as session:
        app = load_application(session, app_id)
        cert = _current_cert(session, app_id)
        if cert is None:
            return None
        return _cert_view(cert, app, session.get(CA, cert.ca_id))


def _waiting_certificate(session: Session, app_id: int) -> Certificate:
    """The application's certificate issued and waiting for Accept or Reject (seed C.6)."""
    cert = session.scalars(select(Certificate).where(Certificate.application_id == app_id,
                                                     Certificate.status == "issued")).first()
    if cert is None:
        raise Conflict("there is no certificate waiting for acceptance")
    return cert


def accept_certificate(ctx: Context, app_id: int, *, actor: str) -> CertificateView:
    """Accept (seed C.6): the certificate becomes public (search page) and downloadable."""
    now = ctx.clock()
    with ctx.transaction() as session:
        app = load_application(session, app_id)
        move_state(session, app_id, Action.ACCEPT, now=now, current=app.state)
        cert = _waiting_certificate(session, app_id)
        cert.status = "accepted"
        cert.updated_at = now
        audit.append(session, actor=actor, event="cert.accepted", subject=cert.serial_hex,
                     details={"application": app.reference_number}, now=now)
        session.flush()
        session.refresh(app)
        return _cert_view(cert, app, session.get(CA, cert.ca_id))


def reject_certificate(ctx: Context, app_id: int, *, reason: str, actor: str) -> CertificateView:
    """Reject (seed C.6): the certificate was signed before acceptance, so it is revoked at once.

    Status ``rejected`` with ``revoked_at`` set puts it on the CRL and OCSP. The revocation reason is
    left empty: BR 7.2.2 represents "unspecified" by omitting reasonCode, and none of the five listed
    reasons describes a subscriber declining a certificate it never accepted (superseded would claim a
    replacement that may never be requested). The application returns to ``validated`` for a new CSR.
    """
    now = ctx.clock()
    reason = (reason or "").strip()[:1000]
    with ctx.transaction() as session:
        app = load_application(session, app_id)
        move_state(session, app_id, Action.REJECT_CERTIFICATE, now=now, current=app.state)
        cert = _waiting_certificate(session, app_id)
        cert.status = "rejected"
        cert.revoked_at = now
        cert.revocation_reason = None
        cert.rejection_reason = reason or "rejected by the subscriber"
        cert.updated_at = now
        session.flush()
        earlier = session.scalars(select(Certificate.id).where(Certificate.application_id == app_id,
                                                               Certificate.status == "accepted")).first()
        if earlier is not None:  # a rejected renewal: the accepted certificate still stands
            session.execute(update(Application).where(Application.id == app_id,
                                                      Application.state == AppState.VALIDATED.value)
                            .values(state=AppState.ACCEPTED.value, version=Application.version + 1))
        audit.append(session, actor=actor, event="cert.rejected", subject=cert.serial_hex,
                     details={"application": app.reference_number, "reason": reason, "revoked": True}, now=now)
        session.flush()
        session.refresh(app)
        ca = session.get(CA, cert.ca_id)
        view = _cert_view(cert, app, ca)
        changed = [(ca.label, cert.serial_hex)] if ca is not None else []
    publish_status(ctx, changed)  # after the commit: CRL and OCSP say "revoked" now, not at the next job pass
    return view
