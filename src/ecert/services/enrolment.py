"""Enrolment: domain control validation of an application's names (the CSR and certificate steps are in
``services.certificates``).

Each use case is layered as a request is (httpx's ``send`` → ``_send_single_request``): read what the
database holds, call the network outside any transaction (through the context's validator), decide, then
write what was found with its audit event in one transaction. Reading functions never write: the portal's
and the API's GET pages call only those (``dcv_state``, ``dcv_methods``, ``validation_file``). The
database is reached through ``store.dcv`` only; the rules (which addresses, which code, how long) are in
``core.dcv_rules``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..core import dcv_rules, rule_dates
from ..core.application import DCV_STATES, Action, AppState
from ..core.dcv_rules import ChallengeEvent, ChallengeStatus, DcvMethod, DomainResult, MethodOffer
from ..core.errors import Conflict, EcertError, PolicyViolation, ValidationFailed
from ..core.names import to_unicode
from ..store import audit
from ..store import dcv as store_dcv
from ..store.models import Application, DcvChallenge
from ..validation.protocol import DomainValidator
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
    "DcvState",
    "parse_method",
    "dcv_required",
    "dcv_methods",
    "dcv_state",
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
_ALIASES = {
    "dns_txt": DcvMethod.DNS,
    "dns": DcvMethod.DNS,
    "http_file": DcvMethod.HTTP_FILE,
    "http": DcvMethod.HTTP_FILE,
    "email": DcvMethod.EMAIL,
}
TXT_TTL = 3600  # seed C.4B shows TTL 3600
EMAIL_NOT_DELIVERED = "the validation e-mail could not be delivered; try again later or choose another method"


def parse_method(method: str | DcvMethod) -> DcvMethod:
    if isinstance(method, DcvMethod):
        return method
    found = _ALIASES.get(str(method).strip().lower())
    if found is None:
        raise PolicyViolation(
            f"Unknown validation method {str(method)[:40]!r}.", rule="BR 3.2.2.4", value=str(method)[:40]
        )
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


@dataclass(frozen=True)
class DcvState:
    """Where the DCV step stands, read without changing anything (what a GET page shows).

    ``exempt`` is an application still at ``confirmed`` whose names all came under an operator-held
    validation after it was confirmed: a POST (``dcv_check``) moves it on. ``challenges`` are the live
    instructions of ``method``; empty when none were started or the codes aged out (start again).
    """

    needed: bool
    exempt: bool
    offers: tuple[MethodOffer, ...] = ()
    method: DcvMethod | None = None
    challenges: tuple[ChallengeView, ...] = ()
    email_sent_to: str | None = None


# --- the validator seam ------------------------------------------------------------------------------


def validator_for(ctx: Context) -> DomainValidator:
    """The context's validator, built on first use (tests hand in their own as ``ctx.validator``)."""
    if ctx.validator is None:
        from ..validation.validator import Validator  # httpx and dnspython only for commands that validate

        ctx.validator = Validator(ctx.settings, clock=ctx.clock, perspective_secret=ctx.perspective_secret)
    return ctx.validator


# --- small pure helpers ------------------------------------------------------------------------------


def _unicode(name: str) -> str:
    try:
        return to_unicode(name)
    except EcertError:
        return name


def _domains(row: Application) -> tuple[str, ...]:
    """The names whose control is shown: each name, a wildcard by its base (BR 3.2.2.4.7)."""
    return tuple(dict.fromkeys(dcv_rules.dns_name_for_validation(n) for n in application_names(row)))


def email_addresses(domain: str) -> tuple[str, ...]:
    """Every constructed address BR 3.2.2.4.4 allows for ``domain`` (the rule is ``core.dcv_rules``')."""
    return dcv_rules.constructed_addresses(domain)


def _view(
    method: DcvMethod, domain: str, code: str | None, email_address: str | None, expires_at: datetime | None
) -> ChallengeView:
    shown_code = None if method is DcvMethod.EMAIL else code
    ins = dcv_rules.instructions(method, domain, shown_code or "", txt_ttl=TXT_TTL)
    return ChallengeView(
        domain=domain,
        domain_unicode=_unicode(domain),
        method=method,
        code=shown_code,
        instructions=ins,
        file_name=ins.file_name,
        file_urls=ins.file_urls,
        file_content=ins.file_content,
        txt_name=ins.txt_hosts[0] if ins.txt_hosts else None,
        txt_names=ins.txt_hosts,
        txt_value=ins.txt_value,
        txt_ttl=ins.txt_ttl,
        email_addresses=ins.email_addresses,
        email_address=email_address,
        expires_at=expires_at,
    )


def _challenge_view(ch: DcvChallenge) -> ChallengeView:
    return _view(DcvMethod(ch.method), ch.domain, ch.code, ch.email_address, ch.expires_at)


def _ensure_open(row: Application, now: datetime) -> None:
    if row.subscription_end <= now:
        raise Conflict("the subscription period has ended; apply again", value=row.subscription_end.isoformat())


def _subscriber(reference: str) -> str:
    return f"subscriber:{reference}"


# --- reads (inside a session the caller opened) ------------------------------------------------------


def _live_codes(session: Session, app_id: int, method: DcvMethod, now: datetime) -> dict[str, DcvChallenge]:
    """Per domain, the method's newest challenge whose code is still usable (BR 3.2.2.4.18: 30 days)."""
    found: dict[str, DcvChallenge] = {}
    for ch in store_dcv.open_challenges(session, app_id, method):
        if ch.domain not in found and not dcv_rules.code_expired(ch.created_at, now):
            found[ch.domain] = ch
    return found


def _reusable(session: Session, app_id: int, now: datetime) -> dict[str, tuple[str, datetime]]:
    """Per domain, (method, validated_at) of its newest validation still inside the BR 4.2.1 reuse period."""
    found: dict[str, tuple[str, datetime]] = {}
    for v in store_dcv.application_validations(session, app_id):
        if v.domain not in found and dcv_rules.reusable(v.validated_at, now):
            found[v.domain] = (v.method, v.validated_at)
    return found


def _current_method(session: Session, row: Application) -> DcvMethod | None:
    """The method the subscriber is on: the last one started (``dcv.method_selected``), else the newest code's."""
    for recorded in (
        store_dcv.last_selected_method(session, row.reference_number),
        store_dcv.newest_challenge_method(session, row.id),
    ):
        try:
            return parse_method(recorded) if recorded else None
        except EcertError:
            continue
    return None


def _needs_dcv(session: Session, row: Application, now: datetime) -> bool:
    """True while some domain still lacks a validation inside its reuse period (BR 4.2.1)."""
    if AppState(row.state) not in DCV_STATES:
        return False
    if row.state == AppState.CONFIRMED.value:
        return True
    reusable = _reusable(session, row.id, now)
    return any(d not in reusable for d in _domains(row))


def _application_in_dcv(row: Application, now: datetime) -> Application:
    """The application, open and at a step where domain validation is expected; Conflict otherwise."""
    _ensure_open(row, now)
    if AppState(row.state) not in DCV_STATES:
        raise Conflict(f"domain validation is not expected now (the application is {row.state})", value=row.state)
    return row


# --- read-only use cases (safe for GET) --------------------------------------------------------------


def dcv_required(ctx: Context, app_id: int) -> bool:
    """False when every name is under an operator-held validation (they skip seed C.4); True otherwise."""
    with ctx.read() as session:
        row = load_application(session, app_id)
        return dcv_exemption(session, row, ctx.clock()) is None


def dcv_methods(ctx: Context, app_id: int) -> list[MethodOffer]:
    """The methods applicable to this application (seed C.4: "only applicable methods ... will be shown").

    Empty when the application needs no DCV (exempt). Only reads: the move of an exempt application to
    ``validated`` happens at confirmation, or on ``dcv_start``/``dcv_check`` (POST).
    """
    with ctx.read() as session:
        row = load_application(session, app_id)
        if dcv_exemption(session, row, ctx.clock()) is not None:
            return []
        return list(dcv_rules.applicable_methods(row.cert_type, application_names(row), ctx.clock()))


def current_method(ctx: Context, app_id: int) -> DcvMethod | None:
    """The DCV method the subscriber last started (None before any); what ``dcv_check`` runs by default."""
    with ctx.read() as session:
        return _current_method(session, load_application(session, app_id))


def dcv_needed(ctx: Context, app_id: int) -> bool:
    """True while the DCV step has work to do: confirmed, or a renewal whose validations aged out."""
    with ctx.read() as session:
        row = load_application(session, app_id)
        return _needs_dcv(session, row, ctx.clock()) and dcv_exemption(session, row, ctx.clock()) is None


def _method_views(session: Session, row: Application, method: DcvMethod, now: datetime) -> tuple[ChallengeView, ...]:
    """The instructions of ``method`` from the live codes only; empty if some name has none (start again)."""
    domains = _domains(row)
    if method is DcvMethod.EMAIL:
        return tuple(_view(method, d, None, None, None) for d in domains)
    live = _live_codes(session, row.id, method, now)
    if any(d not in live for d in domains):
        return ()
    return tuple(_challenge_view(live[d]) for d in domains)


def dcv_state(ctx: Context, app_id: int) -> DcvState:
    """What the DCV page shows now: the method chosen and its live instructions. Never writes."""
    now = ctx.clock()
    with ctx.read() as session:
        row = load_application(session, app_id)
        exempt = dcv_exemption(session, row, now) is not None
        if exempt or not _needs_dcv(session, row, now):
            return DcvState(needed=False, exempt=exempt and row.state == AppState.CONFIRMED.value)
        offers = dcv_rules.applicable_methods(row.cert_type, application_names(row), now)
        method = _current_method(session, row)
        if method is None or not any(o.method is method for o in offers):
            return DcvState(needed=True, exempt=False, offers=offers)
        sent = _live_codes(session, row.id, DcvMethod.EMAIL, now) if method is DcvMethod.EMAIL else {}
        sent_to = next((c.email_address for c in sent.values() if c.email_address), None)
        return DcvState(
            needed=True,
            exempt=False,
            offers=offers,
            method=method,
            challenges=_method_views(session, row, method, now),
            email_sent_to=sent_to,
        )


def validation_file(ctx: Context, app_id: int, domain: str | None = None) -> str | None:
    """The Validation File's content (BR 3.2.2.4.18): the application's one website code, if live.

    Only reads: starting the Website Change method makes the code. None when the application is past
    DCV or no live code exists, so a stray download never starts a validation. ``domain`` picks the name
    (any of the application's; they share the code), the first one by default.
    """
    now = ctx.clock()
    with ctx.read() as session:
        row = load_application(session, app_id)
        if not _needs_dcv(session, row, now) or dcv_exemption(session, row, now) is not None:
            return None
        live = _live_codes(session, app_id, DcvMethod.HTTP_FILE, now)
        domains = _domains(row)
        wanted = domain if domain in domains else (domains[0] if domains else None)
        found = live.get(wanted) if wanted else None
        return found.code if found is not None else None


# --- the exemption (a write: POST paths only) --------------------------------------------------------


def _skip_if_exempt(ctx: Context, app_id: int) -> bool:
    """True when the application needs no DCV; a confirmed one is moved to ``validated`` (audited)."""
    now = ctx.clock()
    with ctx.transaction() as session:
        row = load_application(session, app_id)
        reason = dcv_exemption(session, row, now)
        if reason is None:
            return False
        if row.state == AppState.CONFIRMED.value:
            move_state(session, app_id, Action.VALIDATE, now=now, current=row.state)
            audit.append(
                session,
                actor="system",
                event="dcv.exempt",
                subject=row.reference_number,
                details={"reason": reason},
                now=now,
            )
        return True


# --- dcv_start: decide → write (one transaction) → network (mail) ------------------------------------


@dataclass
class _Started:
    """What one ``dcv_start`` made: the views, the names that got a new code, and the e-mails to send."""

    reference: str
    views: list[ChallengeView] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    to_mail: list[tuple[str, str, int]] = field(default_factory=list)  # (address, code, challenge id)


def _email_local_part(method: DcvMethod, given: str | None) -> str | None:
    """The constructed address's local part, checked before anything is written (BR 3.2.2.4.4)."""
    if method is not DcvMethod.EMAIL or given is None:
        return None
    local_part = given.strip().lower()
    if local_part not in dcv_rules.CONSTRUCTED_LOCAL_PARTS:
        raise PolicyViolation(
            "Only admin, administrator, webmaster, hostmaster or postmaster may receive the code.",
            rule="BR 3.2.2.4.4",
            value=given[:64],
        )
    return local_part


def _new_code_for(
    session: Session,
    app_id: int,
    domain: str,
    method: DcvMethod,
    code: str,
    made: datetime,
    email_address: str | None = None,
) -> DcvChallenge:
    return store_dcv.add_challenge(
        session,
        app_id=app_id,
        domain=domain,
        method=method,
        code=code,
        created_at=made,
        expires_at=made + dcv_rules.CODE_VALIDITY,
        email_address=email_address,
    )


def _expire(session: Session, challenges: Sequence[DcvChallenge], now: datetime, result: str | None = None) -> None:
    """Spend these codes (core's move ``expire``), whatever open status each is in."""
    for source in dcv_rules.LIVE_CHALLENGE_STATUSES:
        ids = [c.id for c in challenges if c.status == source.value]
        store_dcv.move_challenges(
            session,
            ids,
            source=source,
            target=dcv_rules.challenge_move(source, ChallengeEvent.EXPIRE),
            now=now,
            result=result,
        )


def _start_shared(session: Session, row: Application, method: DcvMethod, now: datetime, out: _Started) -> None:
    """One code for every name (the website file, BR 3.2.2.4.18): the newest live one, or a new one.

    Names that lack it get a challenge with the same code and its original date, so it still ages from when
    it was made; open challenges with another code (made before codes were shared) stop counting.
    """
    open_ = [
        c for c in store_dcv.open_challenges(session, row.id, method) if not dcv_rules.code_expired(c.created_at, now)
    ]
    code, made = (open_[0].code, open_[0].created_at) if open_ else (dcv_rules.new_validation_code(), now)
    _expire(session, [c for c in open_ if c.code != code], now)
    have = {c.domain: c for c in reversed(open_) if c.code == code}  # the newest per name wins
    for domain in _domains(row):
        if domain not in have:
            have[domain] = _new_code_for(session, row.id, domain, method, code, made)
            out.created.append(domain)
        out.views.append(_challenge_view(have[domain]))


def _start_per_name(session: Session, row: Application, method: DcvMethod, now: datetime, out: _Started) -> None:
    """A code per name (DNS, BR 3.2.2.4.7): each name keeps its live code for 30 days, else gets a new one."""
    live = _live_codes(session, row.id, method, now)
    for domain in _domains(row):
        ch = live.get(domain)
        if ch is None:
            ch = _new_code_for(session, row.id, domain, method, dcv_rules.new_validation_code(), now)
            out.created.append(domain)
        out.views.append(_challenge_view(ch))


def _start_email(
    session: Session, row: Application, local_part: str | None, email_domain: str | None, now: datetime, out: _Started
) -> None:
    """Without a local part, only the addresses; with one, a fresh code per name to mail (BR 3.2.2.4.4)."""
    for domain in _domains(row):
        if local_part is None:
            out.views.append(_view(DcvMethod.EMAIL, domain, None, None, None))
            continue
        adn = dcv_rules.ensure_authorization_domain_name(domain, email_domain or domain)
        address = dcv_rules.ensure_constructed_address(domain, f"{local_part}@{adn}")
        _expire(session, store_dcv.open_challenges(session, row.id, DcvMethod.EMAIL, [domain]), now)
        ch = _new_code_for(session, row.id, domain, DcvMethod.EMAIL, dcv_rules.new_validation_code(), now, address)
        out.created.append(domain)
        out.to_mail.append((address, ch.code, ch.id))
        out.views.append(_challenge_view(ch))


def _audit_start(
    session: Session, row: Application, method: DcvMethod, previous: DcvMethod | None, out: _Started, now: datetime
) -> None:
    """``dcv.method_selected`` when the method changes; ``dcv.started`` only when a new code was made."""
    actor = _subscriber(row.reference_number)
    if previous is not method:
        audit.append(
            session,
            actor=actor,
            event="dcv.method_selected",
            subject=row.reference_number,
            details={"method": method.value, "previous": previous.value if previous else None},
            now=now,
        )
    if out.created:
        audit.append(
            session,
            actor=actor,
            event="dcv.started",
            subject=row.reference_number,
            details={
                "method": method.value,
                "domains": out.created,
                "email_to": [address for address, _, _ in out.to_mail],
            },
            now=now,
        )


def _record_start(
    ctx: Context, app_id: int, method: DcvMethod, local_part: str | None, email_domain: str | None
) -> _Started:
    """The write step of ``dcv_start``: codes and audit in one transaction, the application row locked."""
    now = ctx.clock()
    with ctx.transaction() as session:
        row = store_dcv.lock_application(session, app_id) or load_application(session, app_id)
        _application_in_dcv(row, now)
        dcv_rules.ensure_method_applicable(method, row.cert_type, application_names(row), now)
        previous = _current_method(session, row)  # before this call's challenges exist
        out = _Started(reference=row.reference_number)
        if method is DcvMethod.EMAIL:
            _start_email(session, row, local_part, email_domain, now, out)
        elif dcv_rules.code_shared_by_names(method):
            _start_shared(session, row, method, now, out)
        else:
            _start_per_name(session, row, method, now, out)
        _audit_start(session, row, method, previous, out, now)
        return out


def _mail_codes(ctx: Context, out: _Started, local_part: str | None) -> None:
    """The network step of ``dcv_start``: mail each new e-mail code; an undelivered one is withdrawn."""
    if not out.to_mail or local_part is None:
        return
    validator = validator_for(ctx)
    for address, code, challenge_id in out.to_mail:
        try:
            validator.send_email_code(address.rpartition("@")[2], local_part, code, out.reference)
        except Exception as exc:  # noqa: BLE001 - any delivery failure: audited in full, told in one sentence
            _email_failed(ctx, out.reference, challenge_id, address, exc)
            raise ValidationFailed(EMAIL_NOT_DELIVERED, rule="BR 3.2.2.4.4") from None


def _email_failed(ctx: Context, reference: str, challenge_id: int, address: str, exc: BaseException) -> None:
    """The code never reached anyone: withdraw it, and keep the relay's reason in the audit log only."""
    now = ctx.clock()
    detail = exc.message if isinstance(exc, EcertError) else f"{type(exc).__name__}: {exc}"
    with ctx.transaction() as session:
        store_dcv.move_challenges(
            session,
            [challenge_id],
            source=ChallengeStatus.PENDING,
            target=dcv_rules.challenge_move(ChallengeStatus.PENDING, ChallengeEvent.EXPIRE),
            now=now,
            result="the e-mail could not be delivered",
        )
        audit.append(
            session,
            actor="system",
            event="dcv.email_failed",
            subject=reference,
            details={"to": address, "error": detail[:500]},
            now=now,
        )


def dcv_start(
    ctx: Context,
    app_id: int,
    *,
    method: str | DcvMethod,
    email_local_part: str | None = None,
    email_domain: str | None = None,
) -> list[ChallengeView]:
    """Give the instructions per domain and make ``method`` the one ``dcv_check`` runs.

    Codes are reused while younger than 30 days (BR 3.2.2.4.18), per method: switching from Website
    Change to DNS Change and back leaves both codes live, so either record or file still counts. The
    website file has one code for all the application's names (``core.dcv_rules.code_shared_by_names``).
    For e-mail, each call with ``email_local_part`` mails a fresh code to that constructed address at
    ``email_domain`` (an Authorization Domain Name of the name; the name itself by default), BR 3.2.2.4.4;
    without it, only the addresses are listed.
    """
    m = parse_method(method)
    if _skip_if_exempt(ctx, app_id):
        return []
    local_part = _email_local_part(m, email_local_part)
    out = _record_start(ctx, app_id, m, local_part, email_domain)
    _mail_codes(ctx, out, local_part)
    return out.views


# --- dcv_check: read → network → decide → write ------------------------------------------------------


@dataclass(frozen=True)
class _Code:
    """A live challenge as read before the network step (no ORM object crosses a transaction)."""

    id: int
    domain: str
    method: DcvMethod
    code: str
    email_address: str | None
    status: ChallengeStatus


@dataclass(frozen=True)
class _CheckPlan:
    """Everything ``dcv_check`` read: the method, each name's live code or reusable validation."""

    app_id: int
    reference: str
    now: datetime
    method: DcvMethod | None
    domains: tuple[str, ...]
    reusable: Mapping[str, tuple[str, datetime]]
    live: Mapping[str, _Code]
    stale: Mapping[str, tuple[_Code, ...]]  # open challenges whose code is older than 30 days


@dataclass(frozen=True)
class _Checked:
    check: DomainCheck
    result: DomainResult | None = None
    code: _Code | None = None


def _code(ch: DcvChallenge) -> _Code:
    return _Code(ch.id, ch.domain, DcvMethod(ch.method), ch.code, ch.email_address, ChallengeStatus(ch.status))


def _split_open(
    session: Session, app_id: int, method: DcvMethod, now: datetime
) -> tuple[dict[str, _Code], dict[str, tuple[_Code, ...]]]:
    """The method's open challenges per name: the newest usable one, and those whose code aged out."""
    live: dict[str, _Code] = {}
    stale: dict[str, list[_Code]] = {}
    for ch in store_dcv.open_challenges(session, app_id, method):
        if dcv_rules.code_expired(ch.created_at, now):
            stale.setdefault(ch.domain, []).append(_code(ch))
        elif ch.domain not in live:
            live[ch.domain] = _code(ch)
    return live, {d: tuple(v) for d, v in stale.items()}


def _read_plan(ctx: Context, app_id: int, method: str | DcvMethod | None) -> _CheckPlan:
    """The read step of ``dcv_check``."""
    now = ctx.clock()
    with ctx.read() as session:
        row = _application_in_dcv(load_application(session, app_id), now)
        chosen = parse_method(method) if method else _current_method(session, row)
        if chosen is not None and method:
            dcv_rules.ensure_method_applicable(chosen, row.cert_type, application_names(row), now)
        live, stale = _split_open(session, app_id, chosen, now) if chosen is not None else ({}, {})
        return _CheckPlan(
            app_id=app_id,
            reference=row.reference_number,
            now=now,
            method=chosen,
            domains=_domains(row),
            reusable=_reusable(session, app_id, now),
            live=live,
            stale=stale,
        )


def _missing_code_reason(plan: _CheckPlan, domain: str, method: DcvMethod) -> str:
    if domain in plan.stale:
        return "the Validation Code is older than 30 days; start again for a new one (BR 3.2.2.4.18)"
    if method is DcvMethod.EMAIL:
        return "send the Validation Code to one of the designated e-mail addresses first"
    return (
        f"no {METHOD_LABELS[method]} Validation Code was issued for this domain: open that method's instructions first"
    )


def _decided_without_network(plan: _CheckPlan, domain: str, email_code: str | None) -> _Checked | None:
    """The answer for a name that needs no lookup (reused, nothing started, no code typed); None otherwise."""
    name = _unicode(domain)
    if domain in plan.reusable:
        method, validated_at = plan.reusable[domain]
        return _Checked(
            DomainCheck(
                domain, name, True, f"validated on {validated_at:%Y-%m-%d}, reused (BR 4.2.1)", method, reused=True
            )
        )
    if plan.method is None:
        return _Checked(
            DomainCheck(domain, name, False, "no validation was started for this domain: choose a method first", None)
        )
    ch = plan.live.get(domain)
    if ch is None:
        return _Checked(
            DomainCheck(domain, name, False, _missing_code_reason(plan, domain, plan.method), plan.method.value)
        )
    if ch.method is DcvMethod.EMAIL and not (email_code or "").strip():
        return _Checked(
            DomainCheck(domain, name, False, "enter the Validation Code from the e-mail", ch.method.value), code=ch
        )
    return None


def _check_one(validator: DomainValidator, plan: _CheckPlan, domain: str, email_code: str | None) -> _Checked:
    """The network step for one name: the validator looks for its live code by the chosen method."""
    ch = plan.live[domain]
    res = validator.check(ch.method, domain, ch.code, email_address=ch.email_address, entered_code=email_code)
    return _Checked(DomainCheck(domain, _unicode(domain), res.passed, res.reason, ch.method.value), res, ch)


def _run_checks(ctx: Context, plan: _CheckPlan, email_code: str | None) -> dict[str, _Checked]:
    """Decide what needs no lookup, then check the rest (outside any transaction), in the names' order."""
    decided = {d: _decided_without_network(plan, d, email_code) for d in plan.domains}
    if all(v is not None for v in decided.values()):
        return {d: v for d, v in decided.items() if v is not None}
    validator = validator_for(ctx)
    return {d: v if v is not None else _check_one(validator, plan, d, email_code) for d, v in decided.items()}


def _spend_stale(session: Session, plan: _CheckPlan) -> None:
    for codes in plan.stale.values():
        for source in dcv_rules.LIVE_CHALLENGE_STATUSES:
            ids = [c.id for c in codes if c.status is source]
            store_dcv.move_challenges(
                session,
                ids,
                source=source,
                now=plan.now,
                target=dcv_rules.challenge_move(source, ChallengeEvent.EXPIRE),
            )


def _record_one(session: Session, plan: _CheckPlan, domain: str, checked: _Checked) -> None:
    """Store one name's check: the challenge's new status, the evidence row if it passed, the audit event."""
    ch, res, check = checked.code, checked.result, checked.check
    if ch is not None:
        event = ChallengeEvent.PASS if check.passed else ChallengeEvent.FAIL
        store_dcv.move_challenges(
            session,
            [ch.id],
            source=ch.status,
            target=dcv_rules.challenge_move(ch.status, event),
            now=plan.now,
            result=check.reason,
        )
    if res is not None and ch is not None and check.passed:
        store_dcv.add_validation(
            session,
            domain=domain,
            method=ch.method,
            br_version=res.br_version,
            code=ch.code if ch.method is not DcvMethod.EMAIL else None,
            validated_at=plan.now,
            evidence=jsonable(res.evidence),
            application_id=plan.app_id,
            operator_held=False,
            namespace=ch.method is DcvMethod.DNS,
            perspectives=_mpic(res),
        )
    audit.append(
        session,
        actor=_subscriber(plan.reference),
        event="dcv.checked",
        subject=domain,
        details={
            "application": plan.reference,
            "method": check.method,
            "passed": check.passed,
            "reused": check.reused,
            "reason": check.reason[:1000],
            "br_version": res.br_version if res is not None else rule_dates.BR_VERSION,
            "evidence": jsonable(res.evidence) if res is not None else {},
        },
        now=plan.now,
    )


def _mpic(res: DomainResult) -> Any:
    return jsonable(res.evidence.get("mpic")) if isinstance(res.evidence, Mapping) else None


def _record_checks(ctx: Context, plan: _CheckPlan, checked: Mapping[str, _Checked]) -> DcvOutcome:
    """The write step of ``dcv_check``: every result with its audit event; all passed → ``validated``."""
    all_passed = bool(checked) and all(c.check.passed for c in checked.values())
    with ctx.transaction() as session:
        state = load_application(session, plan.app_id).state
        _spend_stale(session, plan)
        for domain, one in checked.items():
            _record_one(session, plan, domain, one)
        if all_passed and state == AppState.CONFIRMED.value:
            state = move_state(session, plan.app_id, Action.VALIDATE, now=plan.now, current=state).value
            audit.append(
                session,
                actor="system",
                event="dcv.completed",
                subject=plan.reference,
                details={"domains": list(checked)},
                now=plan.now,
            )
    return DcvOutcome(all_passed, tuple(c.check for c in checked.values()), state)


def dcv_check(
    ctx: Context, app_id: int, *, email_code: str | None = None, method: str | DcvMethod | None = None
) -> DcvOutcome:
    """Check every domain by the method the subscriber is on (``method``, else the last one started).

    Each domain is checked against that method's live code (BR 3.2.2.4.18: 30 days); validations still
    inside the BR 4.2.1 reuse period count without a check. All passed → ``validated``.
    """
    if _skip_if_exempt(ctx, app_id):
        with ctx.read() as session:
            return DcvOutcome(True, (), load_application(session, app_id).state)
    plan = _read_plan(ctx, app_id, method)
    checked = _run_checks(ctx, plan, email_code)
    return _record_checks(ctx, plan, checked)
