"""Applications: registration by the RA, subscriber log-in (reference number + PIN), sessions, confirm or reject,
and the operator's hold on them (list, unlock, reissue a PIN).

The PIN is shown once and stored only as an argon2id hash; it never reaches the audit log, the e-mail or
any log line. Every wrong log-in gets the same sentence and costs the same argon2 verification, so the
answer does not tell an unknown reference number from a wrong PIN (testing-recipes §5, BR 5.4.1(3)).

Tries left and lock-out (issue 10, point 13). A wrong log-in says how many tries the typed reference number
has left, and a suspended one says for how many minutes. Both are computed by ``core.lockout`` from the
failures recorded *for the reference number as typed*, whether or not an application has it, so an unknown
reference counts down, locks and reopens exactly as a real one does: the count tells nobody whether a
reference exists. The one thing that differs is what only the holder or the operator can do (a successful
log-in, an unlock, a reissue starts the count afresh); seeing that needs someone else's success, and the
reference number is not the secret anyway (it is on the envelope's cover and in the invitation e-mail):
the PIN is, and at most ``login_max_failures`` guesses per ``login_lockout_minutes`` reach it.
Attempts refused during a lock are audited but not counted, so retrying never lengthens a lock.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.application import Action, AppState, Step, next_step, transition
from ..core.errors import (
    BadName,
    Conflict,
    EcertError,
    LoginRefused,
    LoginSuspended,
    NotFound,
    PolicyViolation,
    Unauthorized,
)
from ..core.evidence import covers_all
from ..core.lockout import LockState, lock_state, minutes_until
from ..core.names import needs_manual_review, normalize_dns_name, to_unicode
from ..core.profiles import CERT_TYPE_LABELS, CertType, SubjectData, names_for_application
from ..store import applications as store
from ..store import audit
from ..store import registration as ra_store
from ..store.models import Application
from . import mailer, process_cache
from .acme_closure import revoke_accounts_of_application
from .context import Context

T = TypeVar("T")

__all__ = [
    "ApplicationInput",
    "RegisteredApplication",
    "ReissuedPin",
    "ApplicationSummary",
    "ApplicationView",
    "NameView",
    "SessionToken",
    "LOGIN_FAILED_MESSAGE",
    "LOGIN_RULE",
    "ADDR_MAX_FAILURES",
    "ADDR_WINDOW",
    "SESSION_LIFETIME",
    "REG_DOC_LABELS",
    "parse_application",
    "submit_application",
    "register_application",
    "authenticate",
    "open_session",
    "resolve_session",
    "session_application",
    "within_session",
    "end_session",
    "get_application",
    "reference_of",
    "get_application_by_reference",
    "list_applications",
    "unlock_application",
    "reissue_pin",
    "confirm_application",
    "reject_application",
    "close_application",
    "application_id_for",
    "application_names",
    "subject_for",
    "dcv_exemption",
    "move_state",
    "load_application",
]

# One sentence for every wrong combination (issue 4: "the same message for every wrong combination").
LOGIN_FAILED_MESSAGE = "The server name, reference number or PIN is not correct."
# Where the log-in limits come from: failed attempts logged (BR 5.4.1(3)), accounts locked (NSR 3).
LOGIN_RULE = "NSR 3 / BR 5.4.1(3)"
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

    @field_validator(
        "org_name_en",
        "org_name_zh",
        "branch_name_en",
        "branch_name_zh",
        "reg_doc_number",
        "business_category",
        "jurisdiction_state",
        "jurisdiction_locality",
        "registration_number",
    )
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
                    raise PolicyViolation(
                        f"{name} needs a manual high-risk review first: {reason}; approve it "
                        "again with high_risk_reviewed once a person has checked it",
                        rule="BR 4.2.1",
                        value=name,
                    )
        if self.subscription_years is not None and self.subscription_end is not None:
            raise ValueError("give subscription_years or subscription_end, not both")
        if self.cert_type.is_ev:
            missing = [
                f for f in ("business_category", "jurisdiction_country", "registration_number") if not getattr(self, f)
            ]
            if missing:
                raise PolicyViolation(
                    f"EV applications need {', '.join(missing)}", rule="EV Guidelines 9.2", value=missing
                )
        if self.jurisdiction_country is not None and not (
            self.jurisdiction_country.isascii() and self.jurisdiction_country.isupper()
        ):
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
    # What the envelope's cover prints beside the reference number.
    server_name: str = ""
    org_name_en: str = ""

    def __repr__(self) -> str:  # the PIN must not reach a log through a repr
        return (
            f"RegisteredApplication(application_id={self.application_id}, "
            f"reference_number={self.reference_number!r}, pin='****', mail_sent={self.mail_sent})"
        )


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


@dataclass(frozen=True)
class ReissuedPin:
    """A new PIN for an application (printed in a new envelope); the old one stopped working."""

    reference_number: str
    pin: str
    server_name: str
    org_name_en: str
    sessions_ended: int

    def __repr__(self) -> str:  # the PIN must not reach a log through a repr
        return (
            f"ReissuedPin(reference_number={self.reference_number!r}, pin='****', sessions_ended={self.sessions_ended})"
        )


@dataclass(frozen=True)
class ApplicationSummary:
    """One line of the operator's list: where an application stands and whether log-in is suspended."""

    reference_number: str
    server_name: str
    org_name_en: str
    state: str
    locked_until: datetime | None
    failed_logins: int
    created_at: datetime
    subscription_end: datetime


# --- helpers ---------------------------------------------------------------------------------------


def _hasher(ctx: Context) -> PasswordHasher:
    """argon2id with the library defaults (stack.md: do not weaken; rate-limit in front instead)."""
    found = ctx.memo.password_hasher
    if found is None:
        found = ctx.memo.password_hasher = PasswordHasher()
    return found


def _dummy_hash(ctx: Context) -> str:
    """A hash no PIN matches, verified when the reference is unknown so both paths cost the same."""
    found = ctx.memo.pin_dummy_hash
    if found is None:
        found = ctx.memo.pin_dummy_hash = _hasher(ctx).hash(secrets.token_hex(16))
    return found


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
    row = store.get_application(session, app_id)
    if row is None:
        raise NotFound("no such application", value=app_id)
    return row


def _load_by_reference(session: Session, reference_number: str) -> Application:
    reference = (reference_number or "").strip()
    row = store.get_application_by_reference(session, reference) if _REFERENCE.match(reference) else None
    if row is None:
        raise NotFound("no application with this reference number", value=reference[:20])
    return row


def application_names(row: Application) -> tuple[str, ...]:
    """The names the certificate carries, from the stored (normalized) application."""
    return names_for_application(CertType(row.cert_type), row.server_name, tuple(row.additional_names or ()))


def subject_for(row: Application) -> SubjectData:
    """The validated subject: Chinese O when the subscriber opted for it, English otherwise (seed C.3)."""
    organization = row.org_name_zh if (row.use_chinese and row.org_name_zh) else row.org_name_en
    return SubjectData(
        organization=organization,
        country=row.country,
        state=row.state_province,
        locality=row.locality,
        business_category=row.ev_business_category,
        jurisdiction_country=row.ev_jurisdiction_country,
        jurisdiction_state=row.ev_jurisdiction_state,
        jurisdiction_locality=row.ev_jurisdiction_locality,
        serial_number=row.ev_serial_number,
    )


def move_state(
    session: Session,
    app_id: int,
    action: Action,
    *,
    now: datetime,
    current: str,
    values: dict[str, object] | None = None,
) -> AppState:
    """Apply ``action`` by compare-and-set from ``current``; Conflict if another request moved it first."""
    move = transition(current, action)
    if not store.compare_and_set_application_state(
        session, app_id, move.source.value, move.target.value, now=now, values=values
    ):
        raise Conflict("the application changed meanwhile; reload and try again", value=move.source.value)
    return move.target


def dcv_exemption(session: Session, row: Application, now: datetime) -> str | None:
    """Why this application needs no DCV, or None.

    The seed exempts government bureaux and departments (C.4), but the BR has no such exemption: an
    application skips the subscriber-facing step only when every name is under a domain the operator
    validated itself (services/operator_dcv.py), still inside the BR 4.2.1 reuse period.
    """
    held = ra_store.operator_domain_evidence(session)
    if not held or not covers_all(application_names(row), held, now):
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
        id=row.id,
        reference_number=row.reference_number,
        server_name=_name_view(row.server_name),
        additional_names=tuple(_name_view(n) for n in row.additional_names or ()),
        number_of_additional=len(row.additional_names or ()),
        names=names,
        org_name_en=row.org_name_en,
        org_name_zh=row.org_name_zh,
        branch_name_en=row.branch_name_en,
        branch_name_zh=row.branch_name_zh,
        reg_doc_type=row.reg_doc_type,
        reg_doc_label=REG_DOC_LABELS.get(row.reg_doc_type, row.reg_doc_type),
        reg_doc_number=row.reg_doc_number,
        cert_type=cert_type,
        cert_type_label=CERT_TYPE_LABELS[cert_type],
        subscription_start=row.subscription_start,
        subscription_end=row.subscription_end,
        subscription_period=_period_text(row.subscription_start, row.subscription_end),
        state=row.state,
        next_step=next_step(row.state),
        is_government=row.is_government,
        use_chinese=row.use_chinese,
        has_chinese=bool(row.org_name_zh),
        rep_email=row.rep_email,
        subscription_ended=row.subscription_end <= now,
    )


def _summary(row: Application) -> ApplicationSummary:
    return ApplicationSummary(
        reference_number=row.reference_number,
        server_name=row.server_name,
        org_name_en=row.org_name_en,
        state=row.state,
        locked_until=row.locked_until,
        failed_logins=row.failed_logins or 0,
        created_at=row.created_at,
        subscription_end=row.subscription_end,
    )


# --- registration ----------------------------------------------------------------------------------


def _printable(value: object, limit: int) -> str | None:
    """A typed value as the audit may keep it: printable characters only, truncated."""
    if not isinstance(value, str):
        return None
    return "".join(ch for ch in value if ch.isprintable())[:limit] or None


def _typed_server_name(raw: object) -> str | None:
    """The server name as the refused request typed it (for the audit), whatever shape the request had."""
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return _printable(raw.get("server_name"), 80) if isinstance(raw, Mapping) else None


def _refusal_reason(exc: Exception) -> tuple[str, str | None]:
    """One line saying why (field and message, or the refusal's sentence) and the rule, never the input."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        return f"{where}: {first['msg']}"[:300], None
    assert isinstance(exc, EcertError)
    return exc.message[:300], exc.rule


def _audit_refused_registration(ctx: Context, raw: object, exc: Exception, *, actor: str) -> None:
    """A refused registration is an audit event (BR 5.4.1(2): certificate requests, accepted or rejected)."""
    reason, rule = _refusal_reason(exc)
    with ctx.transaction() as session:
        audit.append(
            session,
            actor=actor,
            event="application.refused",
            subject=_typed_server_name(raw),
            details={"reason": reason, "rule": rule},
            now=ctx.clock(),
        )


def parse_application(ctx: Context, raw: Mapping[str, object] | bytes | str, *, actor: str) -> ApplicationInput:
    """Check what an operator submitted (a mapping, or JSON text); a refusal is audited, then raised.

    Raises pydantic's ValidationError for field errors, BadName or PolicyViolation for broken rules.
    """
    try:
        if isinstance(raw, (bytes, str)):
            return ApplicationInput.model_validate_json(raw)
        return ApplicationInput.model_validate(dict(raw))
    except (ValidationError, EcertError) as exc:
        _audit_refused_registration(ctx, raw, exc, actor=actor)
        raise


def submit_application(ctx: Context, raw: Mapping[str, object] | bytes | str, *, actor: str) -> RegisteredApplication:
    """Check and register an application as the operator typed it (CLI, operator API): one call per edge."""
    data = parse_application(ctx, raw, actor=actor)
    try:
        return register_application(ctx, data, actor=actor)
    except PolicyViolation as exc:
        _audit_refused_registration(ctx, raw, exc, actor=actor)
        raise


def _subscription_end(data: ApplicationInput, now: datetime) -> datetime:
    if data.subscription_end is None:
        return _add_years(now, data.subscription_years or 1)
    if data.subscription_end <= now + timedelta(days=1):
        raise PolicyViolation("the subscription must end in the future", value=data.subscription_end.isoformat())
    return data.subscription_end


def _application_fields(
    data: ApplicationInput, *, reference: str, pin_hash: str, now: datetime, end: datetime
) -> dict[str, object]:
    return dict(
        reference_number=reference,
        pin_hash=pin_hash,
        server_name=data.server_name,
        additional_names=list(data.additional_names),
        cert_type=data.cert_type.value,
        org_name_en=data.org_name_en,
        org_name_zh=data.org_name_zh,
        branch_name_en=data.branch_name_en,
        branch_name_zh=data.branch_name_zh,
        reg_doc_type=data.reg_doc_type,
        reg_doc_number=data.reg_doc_number,
        subscription_start=now,
        subscription_end=end,
        rep_email=data.rep_email,
        is_government=data.is_government,
        use_chinese=False,
        state=AppState.APPROVED.value,
        ev_business_category=data.business_category,
        ev_jurisdiction_country=data.jurisdiction_country,
        ev_jurisdiction_state=data.jurisdiction_state,
        ev_jurisdiction_locality=data.jurisdiction_locality,
        ev_serial_number=data.registration_number,
        failed_logins=0,
        created_at=now,
        updated_at=now,
        version=1,
    )


def _store_new_application(
    ctx: Context, data: ApplicationInput, *, pin_hash: str, end: datetime, actor: str
) -> tuple[int, str]:
    """Insert with a fresh reference number (drawn again on a clash) and audit it in the same commit."""
    now = ctx.clock()
    for _ in range(20):
        reference = new_reference_number()
        try:
            with ctx.transaction() as session:
                if store.reference_taken(session, reference):
                    continue
                row = store.add_application(
                    session, **_application_fields(data, reference=reference, pin_hash=pin_hash, now=now, end=end)
                )
                audit.append(
                    session,
                    actor=actor,
                    event="application.registered",
                    subject=reference,
                    details={
                        "application_id": row.id,
                        "server_name": data.server_name,
                        "additional_names": list(data.additional_names),
                        "cert_type": data.cert_type.value,
                        "org_name_en": data.org_name_en,
                        "is_government": data.is_government,
                        "high_risk_reviewed": data.high_risk_reviewed,
                        "subscription_end": end.isoformat(),
                    },
                    now=now,
                )
                return row.id, reference
        except IntegrityError:
            continue
    raise Conflict("could not draw a unique reference number; try again")


def _send_invitation(ctx: Context, data: ApplicationInput, reference: str) -> str | None:
    """E-mail the CSR invitation; the reason it failed (one line, audited), or None when it was sent."""
    try:
        mailer.send_mail(
            ctx.settings,
            to=data.rep_email,
            subject=mailer.CSR_SUBJECT,
            body=mailer.csr_invitation(
                base_url=ctx.settings.base_url,
                reference_number=reference,
                server_name=data.server_name,
                org_name=data.org_name_en,
            ),
        )
    except EcertError as exc:
        with ctx.transaction() as session:
            audit.append(
                session,
                actor="system",
                event="mail.failed",
                subject=reference,
                details={"to": data.rep_email, "error": exc.message},
                now=ctx.clock(),
            )
        return exc.message.splitlines()[0][:300] if exc.message else "the mail relay refused the message"
    return None


def register_application(ctx: Context, data: ApplicationInput, *, actor: str) -> RegisteredApplication:
    """Store an approved application with a fresh reference number and PIN; e-mail the CSR invitation.

    The clear PIN is returned once (for the envelope) and is never stored, logged or audited.
    """
    end = _subscription_end(data, ctx.clock())
    pin = new_pin()
    app_id, reference = _store_new_application(ctx, data, pin_hash=_hasher(ctx).hash(pin), end=end, actor=actor)
    mail_error = _send_invitation(ctx, data, reference)
    return RegisteredApplication(
        application_id=app_id,
        reference_number=reference,
        pin=pin,
        mail_sent=mail_error is None,
        mail_error=mail_error,
        server_name=data.server_name,
        org_name_en=data.org_name_en,
    )


# --- log-in: parse -> limits -> verify -> record (each one step, as httpx layers ``send``) -------------


@dataclass(frozen=True)
class _LoginAttempt:
    """A log-in as parsed: ``reference_key`` is the reference number when it has the right form, else None."""

    server_name: str
    reference_key: str | None
    reference_typed: str | None  # what the audit keeps: never a PIN typed into the wrong box
    candidate: str
    client_addr: str

    def __repr__(self) -> str:  # the PIN must not reach a log through a repr
        return f"_LoginAttempt(reference_key={self.reference_key!r}, client_addr={self.client_addr!r})"


def _typed_reference(raw: str) -> str | None:
    """The reference number as typed, for the audit: the number itself, or a truncated string.

    Something with more digits than a reference number may be a PIN typed into the wrong box, so only
    its length is kept.
    """
    compact = re.sub(r"\s", "", raw)
    if _REFERENCE.match(compact):
        return compact
    if sum(ch.isdigit() for ch in compact) > 9:
        return f"({len(compact)} characters, not a reference number)"
    return _printable(compact, 12)


def _parse_login(*, server_name: str, reference_number: str, pin: str, client_addr: str) -> _LoginAttempt:
    reference = re.sub(r"\s", "", reference_number or "")
    clear_pin = re.sub(r"[\s\-]", "", pin or "")
    return _LoginAttempt(
        server_name=server_name or "",
        reference_key=reference if _REFERENCE.match(reference) else None,
        reference_typed=_typed_reference(reference_number or ""),
        candidate=clear_pin if _PIN.match(clear_pin) else "not-a-pin",
        client_addr=(client_addr or "unknown")[:64],
    )


def _reference_lock(ctx: Context, session: Session, reference: str, now: datetime) -> LockState:
    """The lock of one typed reference number: the same rule, known or not (module docstring)."""
    window = timedelta(minutes=ctx.settings.login_lockout_minutes)
    since = now - window
    reset = store.last_reset(session, reference)
    if reset is not None:
        since = max(since, reset)
    return lock_state(
        store.failure_times(session, since=since, reference_number=reference),
        now=now,
        max_failures=ctx.settings.login_max_failures,
        window=window,
    )


def _address_lock(session: Session, client_addr: str, now: datetime) -> LockState:
    failures = store.failure_times(session, since=now - ADDR_WINDOW, client_addr=client_addr)
    return lock_state(failures, now=now, max_failures=ADDR_MAX_FAILURES, window=ADDR_WINDOW)


def _suspended(scope: str, until: datetime, now: datetime) -> LoginSuspended:
    minutes = minutes_until(until, now)
    where = "from this address" if scope == "address" else "with this reference number"
    plural = "s" if minutes != 1 else ""
    return LoginSuspended(
        f"Too many failed log-in attempts {where}; log-in is suspended for {minutes} more minute{plural}.",
        retry_after=max(1, int((until - now).total_seconds())),
        scope=scope,
        rule=LOGIN_RULE,
    )


def _current_limit(ctx: Context, session: Session, attempt: _LoginAttempt, now: datetime) -> LoginSuspended | None:
    """The suspension that refuses this attempt before any PIN is checked, or None."""
    address = _address_lock(session, attempt.client_addr, now)
    if address.locked_until is not None:
        return _suspended("address", address.locked_until, now)
    if attempt.reference_key is not None:
        reference = _reference_lock(ctx, session, attempt.reference_key, now)
        if reference.locked_until is not None:
            return _suspended("reference", reference.locked_until, now)
    return None


def _check_limits(ctx: Context, attempt: _LoginAttempt, now: datetime) -> None:
    """Refuse (and audit) an attempt while a limit holds; a refused attempt costs no argon2 time and is not
    counted as a failure, so it never lengthens the lock."""
    with ctx.transaction() as session:
        refusal = _current_limit(ctx, session, attempt, now)
        if refusal is not None:
            audit.append(
                session,
                actor=f"client:{attempt.client_addr}",
                event="login.refused",
                subject=attempt.reference_typed,
                details={
                    "client_addr": attempt.client_addr,
                    "limit": refusal.scope,
                    "retry_after_seconds": refusal.retry_after,
                },
                now=now,
            )
    if refusal is not None:
        raise refusal


def _server_matches(stored_server_name: str, typed: str) -> bool:
    try:
        name = normalize_dns_name(typed.strip(), allow_wildcard=True)
    except BadName:
        return False
    accepted = {stored_server_name}
    if stored_server_name.startswith("*."):
        accepted.add(stored_server_name[2:])
    return name in accepted


def _verify(ctx: Context, attempt: _LoginAttempt) -> int | None:
    """The application id when reference, PIN and server name all match; one argon2 verification either way."""
    found: tuple[int, str, str] | None = None
    if attempt.reference_key is not None:
        with ctx.read() as session:
            row = store.get_application_by_reference(session, attempt.reference_key)
            found = (row.id, row.pin_hash, row.server_name) if row is not None else None
    stored_hash = found[1] if found is not None else _dummy_hash(ctx)
    try:
        verified = bool(_hasher(ctx).verify(stored_hash, attempt.candidate))
    except (VerificationError, InvalidHashError):
        verified = False
    if verified and found is not None and _server_matches(found[2], attempt.server_name):
        return found[0]
    return None


def _record_success(ctx: Context, attempt: _LoginAttempt, app_id: int, now: datetime) -> int:
    with ctx.transaction() as session:
        store.record_login_attempt(
            session, reference_number=attempt.reference_key, client_addr=attempt.client_addr, success=True, now=now
        )
        store.note_login_success(session, app_id)
        audit.append(
            session,
            actor=f"subscriber:{attempt.reference_key}",
            event="login.succeeded",
            subject=attempt.reference_key,
            details={"client_addr": attempt.client_addr},
            now=now,
        )
    return app_id


def _record_failure(ctx: Context, attempt: _LoginAttempt, now: datetime) -> LoginRefused | LoginSuspended:
    """Record and audit a wrong log-in; the error that says how many tries are left, or that it is now locked."""
    minutes = ctx.settings.login_lockout_minutes
    with ctx.transaction() as session:
        store.record_login_attempt(
            session, reference_number=attempt.reference_key, client_addr=attempt.client_addr, success=False, now=now
        )
        state = _reference_lock(ctx, session, attempt.reference_key, now) if attempt.reference_key else None
        if attempt.reference_key is not None and state is not None:
            store.note_login_failure(
                session,
                attempt.reference_key,
                failures=ctx.settings.login_max_failures - state.tries_left,
                locked_until=state.locked_until,
            )
        audit.append(
            session,
            actor=f"client:{attempt.client_addr}",
            event="login.failed",
            subject=attempt.reference_typed,
            details={"client_addr": attempt.client_addr, "tries_left": state.tries_left if state else None},
            now=now,
        )
        if state is not None and state.locked_until is not None:
            audit.append(
                session,
                actor="system",
                event="login.locked",
                subject=attempt.reference_typed,
                details={"client_addr": attempt.client_addr, "until": state.locked_until.isoformat()},
                now=now,
            )
            return _suspended("reference", state.locked_until, now)
    return LoginRefused(LOGIN_FAILED_MESSAGE, tries_left=state.tries_left if state else None, lockout_minutes=minutes)


def authenticate(ctx: Context, *, server_name: str, reference_number: str, pin: str, client_addr: str) -> int:
    """Check a log-in and return the application id; LoginRefused (same sentence, tries left) or
    LoginSuspended (for how long) otherwise.

    Limits: ``settings.login_max_failures`` failures per typed reference number in any
    ``settings.login_lockout_minutes`` suspend it (unknown references the same way, so the lock does not
    reveal which exist); ``ADDR_MAX_FAILURES`` per client address in ``ADDR_WINDOW``. Every attempt is audited.
    """
    attempt = _parse_login(server_name=server_name, reference_number=reference_number, pin=pin, client_addr=client_addr)
    now = ctx.clock()
    _check_limits(ctx, attempt, now)
    app_id = _verify(ctx, attempt)
    if app_id is not None:
        return _record_success(ctx, attempt, app_id, now)
    raise _record_failure(ctx, attempt, now)


# --- sessions (bearer tokens for the API; the portal keeps one behind its cookie) ------------------


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def open_session(ctx: Context, app_id: int) -> SessionToken:
    """A fresh random token (32 bytes) bound to the application; only its SHA-256 is stored."""
    now = ctx.clock()
    token = secrets.token_urlsafe(32)
    expires = now + SESSION_LIFETIME
    with ctx.transaction() as session:
        load_application(session, app_id)
        store.add_portal_session(
            session, session_id=_token_id(token), application_id=app_id, now=now, expires_at=expires
        )
    return SessionToken(token=token, expires_at=expires, application_id=app_id)


_SESSION_GONE = "The session has expired or is not valid; log in again."


def resolve_session(ctx: Context, token: str) -> int:
    """The application id of a live session, extending it (sliding 30 minutes); Unauthorized otherwise."""
    sid, now = _session_id(token), ctx.clock()
    with process_cache.quick_read(ctx) as session:
        found = store.find_portal_session(session, sid)
    return _keep_alive(ctx, sid, found, now)


def session_application(ctx: Context, token: str) -> ApplicationView:
    """The application of a live session (extending it, as :func:`resolve_session`), read with the session in
    one query: the subscriber API reads both on every ``GET /application``, and two reads were two queries."""
    sid, now = _session_id(token), ctx.clock()
    with process_cache.quick_read(ctx) as session:
        found = store.find_session_application(session, sid)
        view = _view(found[1], now) if found is not None else None
    _keep_alive(ctx, sid, found[0] if found is not None else None, now)
    assert view is not None  # _keep_alive refused a missing session
    return view


def within_session(ctx: Context, token: str, read: Callable[[Session, int], T]) -> T:
    """``read(session, application_id)`` for the application of a live session, in the same database session
    as the session's own check (one connection, one snapshot): a download needs both on every request."""
    sid, now = _session_id(token), ctx.clock()
    with process_cache.quick_read(ctx) as session:
        found = store.find_portal_session(session, sid)
        app_id = _keep_alive(ctx, sid, found, now, extend=False)
        result = read(session, app_id)
    _keep_alive(ctx, sid, found, now)
    return result


def _session_id(token: str) -> str:
    if not token or len(token) > 200:
        raise Unauthorized(_SESSION_GONE)
    return _token_id(token)


def _keep_alive(ctx: Context, sid: str, found: store.LiveSession | None, now: datetime, *, extend: bool = True) -> int:
    """Refuse an unknown, ended or expired session; slide a live one's expiry (at most once a minute)."""
    if found is None or found.ended_at is not None or found.expires_at <= now:
        raise Unauthorized(_SESSION_GONE)
    if extend and found.expires_at - now < SESSION_LIFETIME - _SESSION_REFRESH_AFTER:
        with ctx.transaction() as session:
            store.extend_portal_session(session, sid, expires_at=now + SESSION_LIFETIME)
    return found.application_id


def end_session(ctx: Context, token: str) -> None:
    with ctx.transaction() as session:
        store.end_portal_session(session, _token_id(token), now=ctx.clock())


# --- the operator's hold on applications: list, unlock, reissue a PIN ----------------------------------


def list_applications(
    ctx: Context, *, state: str | None = None, locked: bool = False, limit: int = 200
) -> list[ApplicationSummary]:
    """Applications newest first; ``state`` one of the application states, ``locked`` only suspended ones."""
    if state is not None and state not in {s.value for s in AppState}:
        raise PolicyViolation(
            f"unknown application state {state!r}; use one of {', '.join(s.value for s in AppState)}", value=state
        )
    now = ctx.clock()
    with ctx.read() as session:
        rows = store.list_applications(
            session, state=state, locked_at=now if locked else None, limit=max(1, min(limit, 1000))
        )
        return [_summary(row) for row in rows]


def _reset_login(session: Session, row: Application, *, actor: str, now: datetime) -> None:
    """Start the failure count afresh and lift the lock (an unlock, or a new PIN)."""
    store.record_login_reset(session, reference_number=row.reference_number, actor=actor, now=now)
    store.note_login_success(session, row.id)


def unlock_application(ctx: Context, reference_number: str, *, actor: str) -> ApplicationSummary:
    """Lift a log-in suspension before it ends by itself (the holder called; the failures were theirs)."""
    now = ctx.clock()
    with ctx.transaction() as session:
        row = _load_by_reference(session, reference_number)
        was_locked = row.locked_until if row.locked_until is not None and row.locked_until > now else None
        failures = row.failed_logins or 0
        _reset_login(session, row, actor=actor, now=now)
        audit.append(
            session,
            actor=actor,
            event="application.unlocked",
            subject=row.reference_number,
            details={"was_locked_until": was_locked.isoformat() if was_locked else None, "failures": failures},
            now=now,
        )
        return _summary(row)


def reissue_pin(ctx: Context, reference_number: str, *, actor: str) -> ReissuedPin:
    """A new PIN for a lost or exposed envelope: the old PIN fails from this commit on, every open portal or
    API session of the application ends, and the lock (if any) is lifted; audited, never the PIN."""
    now = ctx.clock()
    pin = new_pin()
    pin_hash = _hasher(ctx).hash(pin)
    with ctx.transaction() as session:
        row = _load_by_reference(session, reference_number)
        if row.state == AppState.REJECTED.value:
            raise Conflict("the application was rejected; nothing can be done with a new PIN", value=row.state)
        store.set_pin_hash(session, row.id, pin_hash, now=now)
        ended = store.end_sessions_of_application(session, row.id, now=now)
        _reset_login(session, row, actor=actor, now=now)
        audit.append(
            session,
            actor=actor,
            event="application.pin_reissued",
            subject=row.reference_number,
            details={"sessions_ended": ended},
            now=now,
        )
        return ReissuedPin(
            reference_number=row.reference_number,
            pin=pin,
            server_name=row.server_name,
            org_name_en=row.org_name_en,
            sessions_ended=ended,
        )


# --- reading and the confirm step --------------------------------------------------------------------


def get_application(ctx: Context, app_id: int) -> ApplicationView:
    with process_cache.quick_read(ctx) as session:
        return _view(load_application(session, app_id), ctx.clock())


_REFERENCES_KEPT = 10_000


def reference_of(ctx: Context, app_id: int) -> str:
    """The application's reference number, the name every audited subscriber action carries.

    Kept per process: a reference number never changes once the application is registered, and reading
    the whole application again only to name the actor was one more query on every download.
    """
    known: dict[int, str] = process_cache.slot(ctx).setdefault("references", {})
    found = known.get(app_id)
    if found is None:
        found = get_application(ctx, app_id).reference_number
        if len(known) >= _REFERENCES_KEPT:
            known.clear()
        known[app_id] = found
    return found


def application_id_for(ctx: Context, reference_number: str | None) -> int | None:
    """The id behind a reference number an operator typed (NotFound if none); None passes through."""
    if reference_number is None:
        return None
    with ctx.read() as session:
        return _load_by_reference(session, reference_number).id


def get_application_by_reference(ctx: Context, reference_number: str) -> ApplicationView:
    with ctx.read() as session:
        return _view(_load_by_reference(session, reference_number), ctx.clock())


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
            raise PolicyViolation("there is no Chinese organisation name to put in the certificate", rule="seed C.3")
        move_state(session, app_id, Action.CONFIRM, now=now, current=row.state, values={"use_chinese": use_chinese})
        audit.append(
            session,
            actor=actor,
            event="application.confirmed",
            subject=row.reference_number,
            details={"use_chinese": use_chinese},
            now=now,
        )
        exempt = dcv_exemption(session, row, now)
        if exempt is not None:
            move_state(session, app_id, Action.VALIDATE, now=now, current=AppState.CONFIRMED.value)
            audit.append(
                session,
                actor="system",
                event="dcv.exempt",
                subject=row.reference_number,
                details={"reason": exempt},
                now=now,
            )
        return _view(row, now)


def close_application(ctx: Context, reference_number: str, *, reason: str, actor: str) -> ApplicationSummary:
    """The operator ends an application before its subscription end (issue 13 point 2: its ACME accounts stop
    with it); audited. Its certificates stay as they are: revoking them is the operator's separate decision
    (`ecert-ca cert revoke`), with its own BR 7.2.2 reason."""
    now = ctx.clock()
    reason = (reason or "").strip()[:500]
    if not reason:
        raise PolicyViolation("say why the application is closed", rule="BR 5.4.1")
    with ctx.transaction() as session:
        row = _load_by_reference(session, reference_number)
        move_state(session, row.id, Action.CLOSE, now=now, current=row.state)
        store.end_sessions_of_application(session, row.id, now=now)
        audit.append(
            session,
            actor=actor,
            event="application.closed",
            subject=row.reference_number,
            details={"reason": reason},
            now=now,
        )
        revoke_accounts_of_application(session, row.id, now=now, actor=actor, why="application closed")
        return _summary(row)


def reject_application(ctx: Context, app_id: int, *, reason: str, actor: str) -> ApplicationView:
    """The subscriber says the data is wrong (seed C.3 "Reject"): nothing more happens on this application."""
    now = ctx.clock()
    reason = (reason or "").strip()[:500]
    with ctx.transaction() as session:
        row = load_application(session, app_id)
        move_state(session, app_id, Action.REJECT, now=now, current=row.state)
        audit.append(
            session,
            actor=actor,
            event="application.rejected",
            subject=row.reference_number,
            details={"reason": reason},
            now=now,
        )
        revoke_accounts_of_application(session, app_id, now=now, actor=actor, why="application closed")
        return _view(row, now)
