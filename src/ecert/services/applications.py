"""Applications: registration by the RA, subscriber log-in (reference number + PIN), sessions, confirm or reject.

The PIN is shown once and stored only as an argon2id hash; it never reaches the audit log, the e-mail or
any log line. Every wrong log-in gets the same sentence and costs the same argon2 verification, so the
answer does not tell an unknown reference number from a wrong PIN (testing-recipes §5, BR 5.4.1(3)).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core import dcv_rules
from ..core.application import Action, AppState, Step, next_step, transition
from ..core.errors import BadName, Conflict, EcertError, NotFound, PolicyViolation, RateLimited, Unauthorized
from ..core.names import needs_manual_review, normalize_dns_name, to_unicode
from ..core.profiles import CERT_TYPE_LABELS, CertType, SubjectData, names_for_application
from ..store import audit
from ..store.models import Application, DomainValidation, LoginAttempt, PortalSession
from . import mailer
from .context import Context

__all__ = [
    "ApplicationInput",
    "RegisteredApplication",
    "ApplicationView",
    "NameView",
    "SessionToken",
    "LOGIN_FAILED_MESSAGE",
    "ADDR_MAX_FAILURES",
    "ADDR_WINDOW",
    "SESSION_LIFETIME",
    "REG_DOC_LABELS",
    "register_application",
    "authenticate",
    "open_session",
    "resolve_session",
    "end_session",
    "get_application",
    "get_application_by_reference",
    "confirm_application",
    "reject_application",
    "application_names",
    "subject_for",
    "dcv_exemption",
    "move_state",
    "load_application",
]

# One sentence for every wrong combination (issue 4: "the same message for every wrong combination").
LOGIN_FAILED_MESSAGE = "The server name, reference number or PIN is not correct."
# Per client address: at most this many failures in the window, whatever the reference numbers.
ADDR_MAX_FAILURES = 20
ADDR_WINDOW = timedelta(minutes=15)
# Sessions slide: each use extends them, at most once a minute (so reads rarely write).
SESSION_LIFETIME = timedelta(minutes=30)
_SESSION_REFRESH_AFTER = timedelta(minutes=1)

REG_DOC_LABELS: dict[str, str] = {
    "br": "Business Registration No.",
    "ci": "Certificate of Incorporation No. / Certificate of Registration No.",
    "other": "Other Registration Document",
}

_REFERENCE = re.compile(r"[0-9]{9}\Z")
_PIN = re.compile(r"[0-9]{16}\Z")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\Z")


# --- input -----------------------------------------------------------------------------------------


def _clean_text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


class ApplicationInput(BaseModel):
    """An application the RA approved (issue 4, point 1); names arrive as typed and leave as A-labels.

    Raises BadName for a name that breaks a name rule and PolicyViolation for a type/name mismatch, so
    the refusal names the rule; plain field errors (lengths, e-mail) are pydantic's ValidationError.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    server_name: str = Field(min_length=1, max_length=253)
    additional_names: list[str] = Field(default_factory=list, max_length=49)
    cert_type: CertType
    org_name_en: str = Field(min_length=1, max_length=64)
    org_name_zh: str | None = Field(default=None, max_length=64)
    branch_name_en: str | None = Field(default=None, max_length=64)
    branch_name_zh: str | None = Field(default=None, max_length=64)
    reg_doc_type: Literal["br", "ci", "other"]
    reg_doc_number: str = Field(min_length=1, max_length=64)
    subscription_years: int | None = Field(default=None, ge=1, le=3)
    subscription_end: AwareDatetime | None = None
    rep_email: str = Field(min_length=3, max_length=254)
    is_government: bool = False
    # EV Guidelines 9.2.3-9.2.5: business category, jurisdiction of incorporation, registration number.
    business_category: str | None = Field(default=None, max_length=64)
    jurisdiction_country: str | None = Field(default=None, min_length=2, max_length=2)
    jurisdiction_state: str | None = Field(default=None, max_length=128)
    jurisdiction_locality: str | None = Field(default=None, max_length=128)
    registration_number: str | None = Field(default=None, max_length=64)
    # BR 4.2.1: names flagged as high risk (mixed-script look-alikes) need a person's review before approval.
    high_risk_reviewed: bool = False

    @field_validator("server_name")
    @classmethod
    def _server(cls, value: str) -> str:
        return normalize_dns_name(value, allow_wildcard=True)

    @field_validator("additional_names")
    @classmethod
    def _additional(cls, value: list[str]) -> list[str]:
        return [normalize_dns_name(v, allow_wildcard=True) for v in value if v.strip()]

    @field_validator("org_name_en", "org_name_zh", "branch_name_en", "branch_name_zh", "reg_doc_number",
                     "business_category", "jurisdiction_state", "jurisdiction_locality", "registration_number")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("control characters are not allowed")
        return _clean_text(value)

    @field_validator("rep_email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.match(value):
            raise ValueError("not an e-mail address")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ApplicationInput:
        names_for_application(self.cert_type, self.server_name, tuple(self.additional_names))
        if not self.high_risk_reviewed:
            for name in (self.server_name, *self.additional_names):
                reason = needs_manual_review(name)
                if reason:
                    raise PolicyViolation(f"{name} needs a manual high-risk review first: {reason}; approve it "
                                          "again with high_risk_reviewed once a person has checked it",
                                          rule="BR 4.2.1", value=name)
        if self.subscription_years is not None and self.subscription_end is not None:
            raise ValueError("give subscription_years or subscription_end, not both")
        if self.cert_type.is_ev:
            missing = [f for f in ("business_category", "jurisdiction_country", "registration_number")
                       if not getattr(self, f)]
            if missing:
                raise PolicyViolation(f"EV applications need {', '.join(missing)}", rule="EV Guidelines 9.2",
                                      value=missing)
        if self.jurisdiction_country is not None and not (
                self.jurisdiction_country.isascii() and self.jurisdiction_country.isupper()):
            raise ValueError("jurisdiction_country must be an ISO 3166-1 two-letter code")
        return self


@dataclass(frozen=True)
class RegisteredApplication:
    """What the RA hands over once: the reference number and the clear PIN (never stored)."""

    application_id: int
    reference_number: str
    pin: str
    mail_sent: bool = True
    # Why the invitation was not sent (one line for the operator, no secrets); None when it was.
    mail_error: str | None = None

    def __repr__(self) -> str:  # the PIN must not reach a log through a repr
        return (f"RegisteredApplication(application_id={self.application_id}, "
                f"reference_number={self.reference_number!r}, pin='****', mail_sent={self.mail_sent})")


@dataclass(frozen=True)
class NameView:
    a_label: str
    unicode: str


@dataclass(frozen=True)
class ApplicationView:
    """Everything the confirm page shows (seed C.3), plus where the application stands."""

    id: int
    reference_number: str
    server_name: NameView
    additional_names: tuple[NameView, ...]
    number_of_additional: int
    names: tuple[str, ...]  # what the certificate will carry, A-labels
    org_name_en: str
    org_name_zh: str | None
    branch_name_en: str | None
    branch_name_zh: str | None
    reg_doc_type: str
    reg_doc_label: str
    reg_doc_number: str
    cert_type: CertType
    cert_type_label: str
    subscription_start: datetime
    subscription_end: datetime
    subscription_period: str  # "1-year" as the guide shows
    state: str
    next_step: Step
    is_government: bool
    use_chinese: bool
    has_chinese: bool
    rep_email: str
    subscription_ended: bool


@dataclass(frozen=True)
class SessionToken:
    token: str  # shown to the client once; only its SHA-256 is stored
    expires_at: datetime
    application_id: int

    def __repr__(self) -> str:
        return f"SessionToken(token='****', expires_at={self.expires_at!r}, application_id={self.application_id})"


# --- helpers ---------------------------------------------------------------------------------------


def _hasher(ctx: Context) -> PasswordHasher:
    """argon2id with the library defaults (stack.md: do not weaken; rate-limit in front instead)."""
    found = ctx.cache.get("argon2")
    if found is None:
        found = ctx.cache["argon2"] = PasswordHasher()
    return found  # type: ignore[no-any-return]


def _dummy_hash(ctx: Context) -> str:
    """A hash no PIN matches, verified when the reference is unknown so both paths cost the same."""
    found = ctx.cache.get("argon2:dummy")
    if found is None:
        found = ctx.cache["argon2:dummy"] = _hasher(ctx).hash(secrets.token_hex(16))
    return found  # type: ignore[no-any-return]


def new_reference_number() -> str:
    """Nine CSPRNG digits, never starting with 0 (so spreadsheets keep all nine)."""
    return str(100_000_000 + secrets.randbelow(900_000_000))


def new_pin() -> str:
    """Sixteen CSPRNG digits (about 53 bits), printed in four groups of four in the envelope."""
    return f"{secrets.randbelow(10**16):016d}"


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def _period_text(start: datetime, end: datetime) -> str:
    for years in (1, 2, 3):
        if abs((end - _add_years(start, years)).total_seconds()) < 2 * 86400:
            return f"{years}-year"
    return f"{(end - start).days} days"


def load_application(session: Session, app_id: int) -> Application:
    row = session.get(Application, app_id)
    if row is None:
        raise NotFound("no such application", value=app_id)
    return row


def application_names(row: Application) -> tuple[str, ...]:
    """The names the certificate carries, from the stored (normalized) application."""
    return names_for_application(CertType(row.cert_type), row.server_name, tuple(row.additional_names or ()))


def subject_for(row: Application) -> SubjectData:
    """The validated subject: Chinese O when the subscriber opted for it, English otherwise (seed C.3)."""
    organization = row.org_name_zh if (row.use_chinese and row.org_name_zh) else row.org_name_en
    return SubjectData(
        organization=organization, country=row.country, state=row.state_province, locality=row.locality,
        business_category=row.ev_business_category, jurisdiction_country=row.ev_jurisdiction_country,
        jurisdiction_state=row.ev_jurisdiction_state, jurisdiction_locality=row.ev_jurisdiction_locality,
        serial_number=row.ev_serial_number)


def move_state(session: Session, app_id: int, action: Action, *, now: datetime, current: str,
               values: dict[str, object] | None = None) -> AppState:
    """Apply ``action`` by compare-and-set from ``current``; Conflict if another request moved it first."""
    move = transition(current, action)
    result = session.execute(
        update(Application)
        .where(Application.id == app_id, Application.state == move.source.value)
        .values(state=move.target.value, version=Application.version + 1, updated_at=now, **(values or {}))
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("the application changed meanwhile; reload and try again", value=move.source.value)
    loaded = session.get(Application, app_id)
    if loaded is not None:
        session.refresh(loaded)
    return move.target


def dcv_exemption(session: Session, row: Application, now: datetime) -> str | None:
    """Why this application needs no DCV, or None.

    The seed exempts government bureaux and departments (C.4), but the BR has no such exemption: an
    application skips the subscriber-facing step only when every name is under a domain the operator
    validated itself (services/operator_dcv.py), still inside the BR 4.2.1 reuse period.
    """
    held = session.scalars(select(DomainValidation).where(DomainValidation.operator_held.is_(True))).all()
    names = application_names(row)
    if not held:
        return None
    for name in names:
        if not any(dcv_rules.reusable(v.validated_at, now)
                   and (dcv_rules.under_namespace(name, v.domain) if v.namespace
                        else dcv_rules.dns_name_for_validation(name) == v.domain) for v in held):
            return None
    return "every name is under a domain the operator holds"


def _name_view(name: str) -> NameView:
    try:
        shown = to_unicode(name)
    except BadName:
        shown = name
    return NameView(name, shown)


def _view(row: Application, now: datetime) -> ApplicationView:
    names = application_names(row)
    cert_type = CertType(row.cert_type)
    return ApplicationView(
        id=row.id, reference_number=row.reference_number, server_name=_name_view(row.server_name),
        additional_names=tuple(_name_view(n) for n in row.additional_names or ()),
        number_of_additional=len(row.additional_names or ()), names=names,
        org_name_en=row.org_name_en, org_name_zh=row.org_name_zh, branch_name_en=row.branch_name_en,
        branch_name_zh=row.branch_name_zh, reg_doc_type=row.reg_doc_type,
        reg_doc_label=REG_DOC_LABELS.get(row.reg_doc_type, row.reg_doc_type), reg_doc_number=row.reg_doc_number,
        cert_type=cert_type, cert_type_label=CERT_TYPE_LABELS[cert_type],
        subscription_start=row.subscription_start, subscription_end=row.subscription_end,
        subscription_period=_period_text(row.subscription_start, row.subscription_end), state=row.state,
        next_step=next_step(row.state), is_government=row.is_government, use_chinese=row.use_chinese,
        has_chinese=bool(row.org_name_zh), rep_email=row.rep_email,
        subscription_ended=row.subscription_end <= now)


# --- registration ----------------------------------------------------------------------------------


def register_application(ctx: Context, data: ApplicationInput, *, actor: str) -> RegisteredApplication:
    """Store an approved application with a fresh reference number and PIN; e-mail the CSR invitation.

    The clear PIN is returned once (for the envelope) and is never stored, logged or audited.
    """
    now = ctx.clock()
    if data.subscription_end is not None:
        end = data.subscription_end
        if end <= now + timedelta(days=1):
            raise PolicyViolation("the subscription must end in the future", value=end.isoformat())
    else:
        end = _add_years(now, data.subscription_years or 1)
    pin = new_pin()
    pin_hash = _hasher(ctx).hash(pin)
    app_id: int | None = None
    reference = ""
    for _ in range(20):
        reference = new_reference_number()
        try:
            with ctx.transaction() as session:
                taken = session.scalar(select(Application.id).where(Application.reference_number == reference))
                if taken is not None:
                    continue
                row = Application(
                    reference_number=reference, pin_hash=pin_hash, server_name=data.server_name,
                    additional_names=list(data.additional_names), cert_type=data.cert_type.value,
                    org_name_en=data.org_name_en, org_name_zh=data.org_name_zh,
                    branch_name_en=data.branch_name_en, branch_name_zh=data.branch_name_zh,
                    reg_doc_type=data.reg_doc_type, reg_doc_number=data.reg_doc_number,
                    subscription_start=now, subscription_end=end, rep_email=data.rep_email,
                    is_government=data.is_government, use_chinese=False, state=AppState.APPROVED.value,
                    ev_business_category=data.business_category,
                    ev_jurisdiction_country=data.jurisdiction_country,
                    ev_jurisdiction_state=data.jurisdiction_state,
                    ev_jurisdiction_locality=data.jurisdiction_locality,
                    ev_serial_number=data.registration_number, failed_logins=0, created_at=now, updated_at=now,
                    version=1)
                session.add(row)
                session.flush()
                app_id = row.id
                audit.append(session, actor=actor, event="application.registered", subject=reference,
                             details={"application_id": row.id, "server_name": data.server_name,
                                      "additional_names": list(data.additional_names),
                                      "cert_type": data.cert_type.value, "org_name_en": data.org_name_en,
                                      "is_government": data.is_government,
                                      "high_risk_reviewed": data.high_risk_reviewed,
                                      "subscription_end": end.isoformat()}, now=now)
            break
        except IntegrityError:
            continue
    if app_id is None:
        raise Conflict("could not draw a unique reference number; try again")
    mail_sent = True
    mail_error = None
    try:
        mailer.send_mail(ctx.settings, to=data.rep_email, subject=mailer.CSR_SUBJECT,
                         body=mailer.csr_invitation(base_url=ctx.settings.base_url, reference_number=reference,
                                                    server_name=data.server_name, org_name=data.org_name_en))
    except EcertError as exc:
        mail_sent = False
        mail_error = exc.message.splitlines()[0][:300] if exc.message else "the mail relay refused the message"
        with ctx.transaction() as session:
            audit.append(session, actor="system", event="mail.failed", subject=reference,
                         details={"to": data.rep_email, "error": exc.message}, now=ctx.clock())
    return RegisteredApplication(application_id=app_id, reference_number=reference, pin=pin, mail_sent=mail_sent,
                                 mail_error=mail_error)


# --- log-in ----------------------------------------------------------------------------------------


def _normalize_pin(pin: str) -> str:
    return re.sub(r"[\s\-]", "", pin or "")


def _server_matches(row: Application, typed: str) -> bool:
    try:
        name = normalize_dns_name(typed, allow_wildcard=True)
    except BadName:
        return False
    accepted = {row.server_name}
    if row.server_name.startswith("*."):
        accepted.add(row.server_name[2:])
    return name in accepted


def _failures_since(session: Session, *, since: datetime, reference: str | None = None,
                    client_addr: str | None = None) -> int:
    stmt = select(func.count()).select_from(LoginAttempt).where(LoginAttempt.at >= since,
                                                                LoginAttempt.success.is_(False))
    if reference is not None:
        stmt = stmt.where(LoginAttempt.reference_number == reference)
    if client_addr is not None:
        stmt = stmt.where(LoginAttempt.client_addr == client_addr)
    return int(session.scalar(stmt) or 0)


def _reference_failures(session: Session, reference: str, now: datetime, window: timedelta) -> int:
    """Failures for this reference in the window, counting only those after its last success."""
    last_ok = session.scalar(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.reference_number == reference, LoginAttempt.success.is_(True)))
    since = now - window
    if last_ok is not None:
        if last_ok.tzinfo is None:  # defensive: SQLite text without an offset is UTC
            last_ok = last_ok.replace(tzinfo=UTC)
        since = max(since, last_ok)
    return _failures_since(session, since=since, reference=reference)


def authenticate(ctx: Context, *, server_name: str, reference_number: str, pin: str, client_addr: str) -> int:
    """Check a log-in and return the application id; Unauthorized (same sentence) or RateLimited otherwise.

    Limits: ``settings.login_max_failures`` failures per reference number lock it for
    ``settings.login_lockout_minutes`` (unknown references lock the same way, so the lock does not reveal
    which exist); ``ADDR_MAX_FAILURES`` per client address in ``ADDR_WINDOW``. Every attempt is recorded.
    """
    settings = ctx.settings
    now = ctx.clock()
    lock_window = timedelta(minutes=settings.login_lockout_minutes)
    reference = (reference_number or "").strip()
    reference_key = reference[:9] if _REFERENCE.match(reference) else None
    clear_pin = _normalize_pin(pin)
    client_addr = (client_addr or "unknown")[:64]

    # Limits first: a locked reference or a noisy address costs no argon2 time.
    with ctx.transaction() as session:
        limited: str | None = None
        if _failures_since(session, since=now - ADDR_WINDOW, client_addr=client_addr) >= ADDR_MAX_FAILURES:
            limited = "address"
        elif reference_key is not None:
            row = session.scalar(select(Application).where(Application.reference_number == reference_key))
            if (row is not None and row.locked_until is not None and row.locked_until > now) or \
                    _reference_failures(session, reference_key, now, lock_window) >= settings.login_max_failures:
                limited = "reference"
        if limited is not None:
            session.add(LoginAttempt(reference_number=reference_key, client_addr=client_addr, at=now, success=False))
    if limited == "address":
        raise RateLimited("Too many failed log-in attempts from this address; try again in 15 minutes.",
                          rule="NSR 3 / BR 5.4.1(3)")
    if limited == "reference":
        raise RateLimited(f"Too many failed log-in attempts; try again in {settings.login_lockout_minutes} minutes.",
                          rule="NSR 3 / BR 5.4.1(3)")

    with ctx.transaction() as session:
        row = None
        if reference_key is not None:
            row = session.scalar(select(Application).where(Application.reference_number == reference_key))
        stored_hash = row.pin_hash if row is not None else _dummy_hash(ctx)
    candidate = clear_pin if _PIN.match(clear_pin) else "not-a-pin"
    try:
        verified = _hasher(ctx).verify(stored_hash, candidate)
    except (VerificationError, InvalidHashError):
        verified = False
    ok = bool(verified) and row is not None and _server_matches(row, server_name)

    locked = False
    with ctx.transaction() as session:
        session.add(LoginAttempt(reference_number=reference_key, client_addr=client_addr, at=now, success=ok))
        if ok:
            assert row is not None
            session.execute(update(Application).where(Application.id == row.id)
                            .values(failed_logins=0, locked_until=None).execution_options(synchronize_session=False))
            audit.append(session, actor=f"subscriber:{reference_key}", event="login.succeeded",
                         subject=reference_key, details={"client_addr": client_addr}, now=now)
            return row.id
        session.flush()
        failures = _reference_failures(session, reference_key, now, lock_window) if reference_key else 0
        if row is not None:
            values: dict[str, object] = {"failed_logins": Application.failed_logins + 1}
            if failures >= settings.login_max_failures:
                values["locked_until"] = now + lock_window
            session.execute(update(Application).where(Application.id == row.id).values(**values)
                            .execution_options(synchronize_session=False))
        audit.append(session, actor=f"client:{client_addr}", event="login.failed", subject=reference_key,
                     details={"client_addr": client_addr, "reference_known": row is not None,
                              "failures": failures}, now=now)
        if reference_key is not None and failures >= settings.login_max_failures:
            locked = True
            audit.append(session, actor="system", event="login.locked", subject=reference_key,
                         details={"client_addr": client_addr, "minutes": settings.login_lockout_minutes},
                         now=now)
    if locked:
        raise RateLimited(f"Too many failed log-in attempts; try again in {settings.login_lockout_minutes} minutes.",
                          rule="NSR 3 / BR 5.4.1(3)")
    raise Unauthorized(LOGIN_FAILED_MESSAGE)


# --- sessions (bearer tokens for the API; the portal may use them behind its cookie) ----------------


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def open_session(ctx: Context, app_id: int) -> SessionToken:
    """A fresh random token (32 bytes) bound to the application; only its SHA-256 is stored."""
    now = ctx.clock()
    token = secrets.token_urlsafe(32)
    expires = now + SESSION_LIFETIME
    with ctx.transaction() as session:
        load_application(session, app_id)
        session.add(PortalSession(id=_token_id(token), application_id=app_id, created_at=now, expires_at=expires))
    return SessionToken(token=token, expires_at=expires, application_id=app_id)


_SESSION_GONE = "The session has expired or is not valid; log in again."


def resolve_session(ctx: Context, token: str) -> int:
    """The application id of a live session, extending it (sliding 30 minutes); Unauthorized otherwise."""
    if not token or len(token) > 200:
        raise Unauthorized(_SESSION_GONE)
    now = ctx.clock()
    sid = _token_id(token)
    with ctx.read() as session:
        found = session.execute(
            select(PortalSession.application_id, PortalSession.expires_at, PortalSession.ended_at)
            .where(PortalSession.id == sid).execution_options(sqlite_read_only=True)).one_or_none()
    if found is None or found.ended_at is not None or found.expires_at <= now:
        raise Unauthorized(_SESSION_GONE)
    if found.expires_at - now < SESSION_LIFETIME - _SESSION_REFRESH_AFTER:
        with ctx.transaction() as session:
            session.execute(update(PortalSession).where(PortalSession.id == sid, PortalSession.ended_at.is_(None))
                            .values(expires_at=now + SESSION_LIFETIME))
    return int(found.application_id)


def end_session(ctx: Context, token: str) -> None:
    with ctx.transaction() as session:
        session.execute(update(PortalSession).where(PortalSession.id == _token_id(token))
                        .values(ended_at=ctx.clock()))


# --- reading and the confirm step --------------------------------------------------------------------


def get_application(ctx: Context, app_id: int) -> ApplicationView:
    with ctx.read() as session:
        return _view(load_application(session, app_id), ctx.clock())


def get_application_by_reference(ctx: Context, reference_number: str) -> ApplicationView:
    reference = (reference_number or "").strip()
    with ctx.read() as session:
        row = None
        if _REFERENCE.match(reference):
            row = session.scalar(select(Application).where(Application.reference_number == reference))
        if row is None:
            raise NotFound("no application with this reference number", value=reference[:20])
        return _view(row, ctx.clock())


def _ensure_open(row: Application, now: datetime) -> None:
    if row.subscription_end <= now:
        raise Conflict("the subscription period has ended; apply again", value=row.subscription_end.isoformat())


def confirm_application(ctx: Context, app_id: int, *, use_chinese: bool, actor: str) -> ApplicationView:
    """Confirm the data (seed C.3); "Confirm Opt with Chinese" puts the Chinese name in the certificate's O.

    An application wholly under operator-held domains goes straight on to ``validated``.
    """
    now = ctx.clock()
    with ctx.transaction() as session:
        row = load_application(session, app_id)
        _ensure_open(row, now)
        if use_chinese and not row.org_name_zh:
            raise PolicyViolation("there is no Chinese organisation name to put in the certificate",
                                  rule="seed C.3")
        move_state(session, app_id, Action.CONFIRM, now=now, current=row.state, values={"use_chinese": use_chinese})
        audit.append(session, actor=actor, event="application.confirmed", subject=row.reference_number,
                     details={"use_chinese": use_chinese}, now=now)
        exempt = dcv_exemption(session, row, now)
        if exempt is not None:
            move_state(session, app_id, Action.VALIDATE, now=now, current=AppState.CONFIRMED.value)
            audit.append(session, actor="system", event="dcv.exempt", subject=row.reference_number,
                         details={"reason": exempt}, now=now)
        session.flush()
        session.refresh(row)
        return _view(row, now)


def reject_application(ctx: Context, app_id: int, *, reason: str, actor: str) -> ApplicationView:
    """The subscriber says the data is wrong (seed C.3 "Reject"): nothing more happens on this application."""
    now = ctx.clock()
    reason = (reason or "").strip()[:500]
    with ctx.transaction() as session:
        row = load_application(session, app_id)
        move_state(session, app_id, Action.REJECT, now=now, current=row.state)
        audit.append(session, actor=actor, event="application.rejected", subject=row.reference_number,
                     details={"reason": reason}, now=now)
        session.refresh(row)
        return _view(row, now)
