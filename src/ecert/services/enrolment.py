"""Enrolment: domain control validation of an application's names (the CSR and certificate steps are in
``services.certificates``).

The network checks run outside any transaction (through ``ecert.validation.Validator``); what they found
is stored with its audit event in one transaction afterwards. Every state change is a compare-and-set on
the application (``core.application``), so parallel submits give one certificate and 409 for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..core import dcv_rules, rule_dates
from ..core.application import DCV_STATES, Action, AppState
from ..core.dcv_rules import DcvMethod, MethodOffer
from ..core.errors import Conflict, EcertError, PolicyViolation, ValidationFailed
from ..core.names import registrable_domain, to_unicode
from ..store import audit
from ..store.models import Application, AuditEvent, DcvChallenge, DomainValidation
from .applications import application_names, dcv_exemption, load_application, move_state
from .caa import jsonable
from .context import Context

__all__ = [
    "METHOD_LABELS",
    "API_METHOD_NAMES",
    "MethodOffer",
    "ChallengeView",
    "DomainCheck",
    "DcvOutcome",
    "parse_method",
    "dcv_required",
    "dcv_methods",
    "dcv_start",
    "dcv_check",
    "current_method",
    "dcv_needed",
    "validation_file",
    "email_addresses",
    "EMAIL_NOT_DELIVERED",
    "validator_for",
]

METHOD_LABELS: dict[DcvMethod, str] = {
    DcvMethod.HTTP_FILE: "Website Change",
    DcvMethod.DNS: "DNS Change",
    DcvMethod.EMAIL: "Constructed E-mail",
}
# The REST API's names for the methods (the subscriber tool is written against these).
API_METHOD_NAMES: dict[DcvMethod, str] = {
    DcvMethod.HTTP_FILE: "http_file",
    DcvMethod.DNS: "dns_txt",
    DcvMethod.EMAIL: "email",
}
_ALIASES = {"dns_txt": DcvMethod.DNS, "dns": DcvMethod.DNS, "http_file": DcvMethod.HTTP_FILE,
            "http": DcvMethod.HTTP_FILE, "email": DcvMethod.EMAIL}
TXT_TTL = 3600  # seed C.4B shows TTL 3600


def parse_method(method: str | DcvMethod) -> DcvMethod:
    if isinstance(method, DcvMethod):
        return method
    found = _ALIASES.get(str(method).strip().lower())
    if found is None:
        raise PolicyViolation(f"Unknown validation method {str(method)[:40]!r}.", rule="BR 3.2.2.4",
                              value=str(method)[:40])
    return found


@dataclass(frozen=True)
class ChallengeView:
    """What the subscriber must do for one domain (seed C.4 A/B/C); ``code`` is None for e-mail (it is mailed)."""

    domain: str
    domain_unicode: str
    method: DcvMethod
    code: str | None
    instructions: dcv_rules.Instructions
    file_name: str | None
    file_urls: tuple[str, ...]
    file_content: str | None
    txt_name: str | None
    txt_names: tuple[str, ...]
    txt_value: str | None
    txt_ttl: int | None
    email_addresses: tuple[str, ...]
    email_address: str | None
    expires_at: datetime | None


@dataclass(frozen=True)
class DomainCheck:
    domain: str
    domain_unicode: str
    passed: bool
    reason: str
    method: str | None
    reused: bool = False


@dataclass(frozen=True)
class DcvOutcome:
    passed: bool
    results: tuple[DomainCheck, ...]
    state: str

    @property
    def domains(self) -> tuple[DomainCheck, ...]:
        return self.results


# --- helpers -----------------------------------------------------------------------------------------


def validator_for(ctx: Context) -> Any:
    """The context's Validator (tests and the app factory may put one in ``ctx.cache['validator']``)."""
    found = ctx.cache.get("validator")
    if found is None:
        from ..validation.validator import Validator

        found = ctx.cache["validator"] = Validator(ctx.settings, clock=ctx.clock,
                                                   perspective_secret=ctx.perspective_secret)
    return found


def _unicode(name: str) -> str:
    try:
        return to_unicode(name)
    except EcertError:
        return name


def _domains(row: Application) -> tuple[str, ...]:
    """The Authorization Domain Names to validate: each name, a wildcard by its base (BR 3.2.2.4.7)."""
    return tuple(dict.fromkeys(dcv_rules.dns_name_for_validation(n) for n in application_names(row)))


_jsonable = jsonable  # evidence as plain JSON for the audit chain (services/caa.py)


def _reusable_validations(session: Session, row: Application, now: datetime) -> dict[str, DomainValidation]:
    """Validations of this application's domains still inside the BR 4.2.1 reuse period, newest first."""
    found: dict[str, DomainValidation] = {}
    rows = session.scalars(
        select(DomainValidation).where(DomainValidation.application_id == row.id)
        .order_by(DomainValidation.validated_at.desc())).all()
    for v in rows:
        if v.domain not in found and dcv_rules.reusable(v.validated_at, now):
            found[v.domain] = v
    return found


def _ensure_open(row: Application, now: datetime) -> None:
    if row.subscription_end <= now:
        raise Conflict("the subscription period has ended; apply again", value=row.subscription_end.isoformat())


# --- DCV ---------------------------------------------------------------------------------------------


def dcv_required(ctx: Context, app_id: int) -> bool:
    """False when every name is under an operator-held validation (they skip seed C.4); True otherwise."""
    with ctx.read() as session:
        row = load_application(session, app_id)
        return dcv_exemption(session, row, ctx.clock()) is None


def _skip_if_exempt(ctx: Context, app_id: int) -> bool:
    now = ctx.clock()
    with ctx.transaction() as session:
        row = load_application(session, app_id)
        reason = dcv_exemption(session, row, now)
        if reason is None:
            return False
        if row.state == AppState.CONFIRMED.value:
            move_state(session, app_id, Action.VALIDATE, now=now, current=row.state)
            audit.append(session, actor="system", event="dcv.exempt", subject=row.reference_number,
                         details={"reason": reason}, now=now)
        return True


def dcv_methods(ctx: Context, app_id: int) -> list[MethodOffer]:
    """The methods applicable to this application (seed C.4: "only applicable methods ... will be shown")."""
    if _skip_if_exempt(ctx, app_id):
        return []
    with ctx.read() as session:
        row = load_application(session, app_id)
        return list(dcv_rules.applicable_methods(row.cert_type, application_names(row), ctx.clock()))


def _view(method: DcvMethod, domain: str, code: str, email_address: str | None,
          expires_at: datetime | None) -> ChallengeView:
    shown_code = None if method is DcvMethod.EMAIL else code
    ins = dcv_rules.instructions(method, domain, shown_code or "", txt_ttl=TXT_TTL)
    return ChallengeView(
        domain=domain, domain_unicode=_unicode(domain), method=method, code=shown_code, instructions=ins,
        file_name=ins.file_name, file_urls=ins.file_urls, file_content=ins.file_content,
        txt_name=ins.txt_hosts[0] if ins.txt_hosts else None, txt_names=ins.txt_hosts, txt_value=ins.txt_value,
        txt_ttl=ins.txt_ttl,
        email_addresses=email_addresses(domain) if method is DcvMethod.EMAIL else ins.email_addresses,
        email_address=email_address,
        expires_at=expires_at)


def _adns(domain: str) -> tuple[str, ...]:
    """The Authorization Domain Names of ``domain``: itself and each parent down to, not including, the
    public suffix (BR 1.6.1 "Authorization Domain Name"; BR 3.2.2.4.4 lets the constructed address sit at any)."""
    base = dcv_rules.dns_name_for_validation(domain)
    try:
        floor = registrable_domain(base)
    except EcertError:
        return (base,)
    labels = base.split(".")
    out = []
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        out.append(candidate)
        if candidate == floor:
            break
    return tuple(out) if out and out[-1] == floor else (base,)


def email_addresses(domain: str) -> tuple[str, ...]:
    """Every constructed address BR 3.2.2.4.4 allows for ``domain``: five local parts at each of its ADNs."""
    return tuple(f"{local}@{adn}" for adn in _adns(domain) for local in dcv_rules.CONSTRUCTED_LOCAL_PARTS)


def _email_adn(domain: str, email_domain: str | None) -> str:
    """The ADN the subscriber chose for the e-mail (the name itself by default); refused unless it is one."""
    base = dcv_rules.dns_name_for_validation(domain)
    if email_domain is None or not email_domain.strip():
        return base
    chosen = email_domain.strip().lower().rstrip(".")
    if chosen not in _adns(base):
        raise PolicyViolation(
            f"{chosen[:253]} is not an Authorization Domain Name of {base}: choose the name itself or one of its "
            "parent domains above the public suffix", rule="BR 3.2.2.4.4 / BR 1.6.1", value=chosen[:253])
    return chosen


def _live(session: Session, app_id: int, domain: str, method: DcvMethod, now: datetime) -> DcvChallenge | None:
    """The method's newest challenge for the domain whose code is still usable (younger than 30 days)."""
    ch = session.scalars(select(DcvChallenge).where(
        DcvChallenge.application_id == app_id, DcvChallenge.domain == domain,
        DcvChallenge.method == method.value, DcvChallenge.status.in_(("pending", "failed")))
        .order_by(DcvChallenge.created_at.desc(), DcvChallenge.id.desc())).first()
    if ch is None or dcv_rules.code_expired(ch.created_at, now):
        return None
    return ch


def _current_method(session: Session, row: Application) -> DcvMethod | None:
    """The method the subscriber is on: the last one started, as recorded by ``dcv.method_selected``.

    Applications that started before that event existed fall back to their newest challenge's method.
    """
    event = session.scalars(select(AuditEvent).where(
        AuditEvent.event == "dcv.method_selected", AuditEvent.subject == row.reference_number)
        .order_by(AuditEvent.id.desc())).first()
    if event is not None and isinstance(event.details, Mapping):
        try:
            return parse_method(str(event.details.get("method")))
        except EcertError:
            pass
    newest = session.scalars(select(DcvChallenge).where(DcvChallenge.application_id == row.id)
                             .order_by(DcvChallenge.created_at.desc(), DcvChallenge.id.desc())).first()
    return DcvMethod(newest.method) if newest is not None else None


def current_method(ctx: Context, app_id: int) -> DcvMethod | None:
    """The DCV method the subscriber last started (None before any); what ``dcv_check`` runs by default."""
    with ctx.read() as session:
        return _current_method(session, load_application(session, app_id))


def _application_in_dcv(session: Session, app_id: int, now: datetime) -> Application:
    """The application, open and at a step where domain validation is expected; Conflict otherwise."""
    row = load_application(session, app_id)
    _ensure_open(row, now)
    if AppState(row.state) not in DCV_STATES:
        raise Conflict(f"domain validation is not expected now (the application is {row.state})", value=row.state)
    return row


def _needs_dcv(session: Session, row: Application, now: datetime) -> bool:
    """True while some domain still lacks a validation inside its reuse period (BR 4.2.1)."""
    if AppState(row.state) not in DCV_STATES:
        return False
    if row.state == AppState.CONFIRMED.value:
        return True
    reusable = _reusable_validations(session, row, now)
    return any(d not in reusable for d in _domains(row))


def dcv_needed(ctx: Context, app_id: int) -> bool:
    """True while the DCV step has work to do: confirmed, or a renewal whose validations aged out."""
    with ctx.read() as session:
        row = load_application(session, app_id)
        return _needs_dcv(session, row, ctx.clock()) and dcv_exemption(session, row, ctx.clock()) is None


def validation_file(ctx: Context, app_id: int, domain: str | None = None) -> str | None:
    """The Validation File's content (BR 3.2.2.4.18) for one domain (or the first), from its live challenge.

    Only reads: the instructions page (``dcv_start``) makes the code. None when the application is past
    DCV or no live Website Change code exists, so a stray download never starts a validation.
    """
    now = ctx.clock()
    with ctx.read() as session:
        row = load_application(session, app_id)
        if not _needs_dcv(session, row, now) or dcv_exemption(session, row, now) is not None:
            return None
        domains = _domains(row)
        wanted = domain if domain in domains else domains[0] if domains else None
        if wanted is None:
            return None
        ch = _live(session, app_id, wanted, DcvMethod.HTTP_FILE, now)
        return ch.code if ch is not None else None


def dcv_start(ctx: Context, app_id: int, *, method: str | DcvMethod,
              email_local_part: str | None = None, email_domain: str | None = None) -> list[ChallengeView]:
    """Give the instructions per domain and make ``method`` the one ``dcv_check`` runs.

    Codes are reused while younger than 30 days (BR 3.2.2.4.18), per method: switching from Website
    Change to DNS Change and back leaves both codes live, so either record or file still counts.
    For e-mail, each call with ``email_local_part`` mails a fresh code to that constructed address at
    ``email_domain`` (an Authorization Domain Name of the name; the name itself by default), BR 3.2.2.4.4:
    one Random Value per e-mail; without it, only the addresses are listed.
    ``dcv.started`` is audited only when a new code is made; ``dcv.method_selected`` when the method changes.
    """
    m = parse_method(method)
    if _skip_if_exempt(ctx, app_id):
        return []
    now = ctx.clock()
    local_part = None
    if m is DcvMethod.EMAIL and email_local_part is not None:
        local_part = email_local_part.strip().lower()
        if local_part not in dcv_rules.CONSTRUCTED_LOCAL_PARTS:
            raise PolicyViolation(
                "Only admin, administrator, webmaster, hostmaster or postmaster may receive the code.",
                rule="BR 3.2.2.4.4", value=email_local_part[:64])
    to_send: list[tuple[str, str, str, int]] = []  # (domain, ADN, code, challenge id)
    views: list[ChallengeView] = []
    created: list[str] = []
    with ctx.transaction() as session:
        row = _application_in_dcv(session, app_id, now)
        dcv_rules.ensure_method_applicable(m, row.cert_type, application_names(row), now)
        reference = row.reference_number
        previous = _current_method(session, row)  # before this call's challenges exist
        for domain in _domains(row):
            if m is DcvMethod.EMAIL:
                if local_part is None:
                    views.append(_view(m, domain, "", None, None))
                    continue
                adn = _email_adn(domain, email_domain)
                address = f"{local_part}@{adn}"
                # A fresh code per e-mail; earlier e-mailed codes for the domain stop counting.
                session.execute(update(DcvChallenge).where(
                    DcvChallenge.application_id == app_id, DcvChallenge.domain == domain,
                    DcvChallenge.method == m.value, DcvChallenge.status == "pending").values(status="expired"))
                code = dcv_rules.new_validation_code()
                ch = DcvChallenge(application_id=app_id, domain=domain, method=m.value, code=code,
                                  email_address=address, created_at=now, expires_at=now + dcv_rules.CODE_VALIDITY,
                                  status="pending")
                session.add(ch)
                session.flush()
                to_send.append((domain, adn, code, ch.id))
                created.append(domain)
                views.append(_view(m, domain, code, address, ch.expires_at))
                continue
            existing = _live(session, app_id, domain, m, now)
            if existing is None:
                existing = DcvChallenge(application_id=app_id, domain=domain, method=m.value,
                                        code=dcv_rules.new_validation_code(), email_address=None, created_at=now,
                                        expires_at=now + dcv_rules.CODE_VALIDITY, status="pending")
                session.add(existing)
                created.append(domain)
            views.append(_view(m, domain, existing.code, None, existing.expires_at))
        if previous is not m:
            audit.append(session, actor=f"subscriber:{reference}", event="dcv.method_selected", subject=reference,
                         details={"method": m.value, "previous": previous.value if previous else None}, now=now)
        if created:
            audit.append(session, actor=f"subscriber:{reference}", event="dcv.started", subject=reference,
                         details={"method": m.value, "domains": created,
                                  "email_to": [v.email_address for v in views if v.email_address]}, now=now)
    if to_send:
        validator = validator_for(ctx)
        for _domain, adn, code, challenge_id in to_send:
            try:
                validator.send_email_code(adn, local_part, code, reference)
            except Exception as exc:  # noqa: BLE001 - any delivery failure: audited in full, told in one sentence
                _email_failed(ctx, reference, challenge_id, f"{local_part}@{adn}", exc)
                raise ValidationFailed(EMAIL_NOT_DELIVERED, rule="BR 3.2.2.4.4") from None
    return views


EMAIL_NOT_DELIVERED = ("the validation e-mail could not be delivered; try again later or choose another method")


def _email_failed(ctx: Context, reference: str, challenge_id: int, address: str, exc: BaseException) -> None:
    """The code never reached anyone: withdraw it, and keep the relay's reason in the audit log only."""
    now = ctx.clock()
    detail = exc.message if isinstance(exc, EcertError) else f"{type(exc).__name__}: {exc}"
    with ctx.transaction() as session:
        session.execute(update(DcvChallenge).where(DcvChallenge.id == challenge_id).values(
            status="expired", last_checked_at=now, last_result="the e-mail could not be delivered"))
        audit.append(session, actor="system", event="dcv.email_failed", subject=reference,
                     details={"to": address, "error": detail[:500]}, now=now)


def _not_started(method: DcvMethod) -> str:
    return (f"no {METHOD_LABELS[method]} Validation Code was issued for this domain: "
            "open that method's instructions first")


def dcv_check(ctx: Context, app_id: int, *, email_code: str | None = None,
              method: str | DcvMethod | None = None) -> DcvOutcome:
    """Check every domain by the method the subscriber is on (``method``, else the last one started).

    Each domain is checked against that method's live code (BR 3.2.2.4.18: 30 days); validations still
    inside the BR 4.2.1 reuse period count without a check. All passed → ``validated``.
    """
    if _skip_if_exempt(ctx, app_id):
        with ctx.read() as session:
            return DcvOutcome(True, (), load_application(session, app_id).state)
    now = ctx.clock()
    with ctx.read() as session:
        row = _application_in_dcv(session, app_id, now)
        chosen = parse_method(method) if method else _current_method(session, row)
        if chosen is not None and method:
            dcv_rules.ensure_method_applicable(chosen, row.cert_type, application_names(row), now)
        reference = row.reference_number
        reusable = _reusable_validations(session, row, now)
        live: dict[str, DcvChallenge] = {}
        stale: set[str] = set()
        domains = _domains(row)
        for domain in domains:
            if domain in reusable or chosen is None:
                continue
            ch = _live(session, app_id, domain, chosen, now)
            if ch is not None:
                live[domain] = ch
            elif session.scalar(select(DcvChallenge.id).where(
                    DcvChallenge.application_id == app_id, DcvChallenge.domain == domain,
                    DcvChallenge.method == chosen.value, DcvChallenge.status.in_(("pending", "failed"))).limit(1)):
                stale.add(domain)
    validator = validator_for(ctx)
    results: dict[str, tuple[DomainCheck, Any, DcvChallenge | None]] = {}
    expired: list[str] = []
    for domain in domains:
        if domain in reusable:
            v = reusable[domain]
            results[domain] = (DomainCheck(domain, _unicode(domain), True,
                                           f"validated on {v.validated_at:%Y-%m-%d}, reused (BR 4.2.1)",
                                           v.method, reused=True), None, None)
            continue
        if chosen is None:
            results[domain] = (DomainCheck(domain, _unicode(domain), False,
                                           "no validation was started for this domain: choose a method first",
                                           None), None, None)
            continue
        ch = live.get(domain)
        if ch is None:
            if domain in stale:
                expired.append(domain)
                reason = ("the Validation Code is older than 30 days; start again for a new one (BR 3.2.2.4.18)")
            elif chosen is DcvMethod.EMAIL:
                reason = "send the Validation Code to one of the designated e-mail addresses first"
            else:
                reason = _not_started(chosen)
            results[domain] = (DomainCheck(domain, _unicode(domain), False, reason, chosen.value), None, None)
            continue
        if chosen is DcvMethod.EMAIL and not (email_code or "").strip():
            results[domain] = (DomainCheck(domain, _unicode(domain), False,
                                           "enter the Validation Code from the e-mail", ch.method), None, ch)
            continue
        target = domain
        if chosen is DcvMethod.EMAIL and ch.email_address:
            adn = ch.email_address.rpartition("@")[2]
            target = adn if adn in _adns(domain) else domain  # an ADN of the name (BR 3.2.2.4.4)
        res = validator.check(ch.method, target, ch.code, email_address=ch.email_address, entered_code=email_code)
        results[domain] = (DomainCheck(domain, _unicode(domain), res.passed, res.reason, ch.method), res, ch)
    all_passed = all(r[0].passed for r in results.values()) and bool(results)
    with ctx.transaction() as session:
        state = load_application(session, app_id).state
        if expired and chosen is not None:
            session.execute(update(DcvChallenge).where(
                DcvChallenge.application_id == app_id, DcvChallenge.domain.in_(expired),
                DcvChallenge.method == chosen.value, DcvChallenge.status.in_(("pending", "failed")))
                .values(status="expired", last_checked_at=now))
        for domain, (check, res, ch) in results.items():
            if ch is not None:
                status = "passed" if check.passed else "failed"
                session.execute(update(DcvChallenge).where(DcvChallenge.id == ch.id).values(
                    status=status, last_checked_at=now, last_result=check.reason[:1000]))
            if res is not None and check.passed:
                evidence = _jsonable(res.evidence)
                session.add(DomainValidation(
                    domain=domain, method=ch.method if ch else check.method, br_version=res.br_version,
                    code=ch.code if ch and ch.method != DcvMethod.EMAIL.value else None, validated_at=now,
                    evidence=evidence, application_id=app_id, operator_held=False,
                    namespace=ch is not None and ch.method == DcvMethod.DNS.value,
                    perspectives=_jsonable(res.evidence.get("mpic")) if isinstance(res.evidence, Mapping) else None))
            audit.append(session, actor=f"subscriber:{reference}", event="dcv.checked", subject=domain,
                         details={"application": reference, "method": check.method, "passed": check.passed,
                                  "reused": check.reused, "reason": check.reason[:1000],
                                  "br_version": res.br_version if res is not None else rule_dates.BR_VERSION,
                                  "evidence": _jsonable(res.evidence) if res is not None else {}}, now=now)
        if all_passed and state == AppState.CONFIRMED.value:
            state = move_state(session, app_id, Action.VALIDATE, now=now, current=state).value
            audit.append(session, actor="system", event="dcv.completed", subject=reference,
                         details={"domains": list(results)}, now=now)
    return DcvOutcome(all_passed, tuple(r[0] for r in results.values()), state)


