"""Operator-held domain validations: the CA validates a namespace once, by the DNS method, for its subscribers.

The seed skips the subscriber's DCV step for government bureaux; the BR has no such exemption
(BR 3.2.2.4), so ecert does it this way instead: the operator proves control of, say, ``gov.hk`` with a
DNS TXT record (BR 3.2.2.4.7, which covers every name under the Authorization Domain Name), and
applications whose names all fall under it, inside the BR 4.2.1 reuse period, skip the subscriber-facing
step. The validation record still names its method, code, time and evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..core import dcv_rules, rule_dates
from ..core.dcv_rules import ChallengeEvent, ChallengeStatus, DcvMethod, DomainResult
from ..core.errors import NotFound, ValidationFailed
from ..core.names import normalize_dns_name
from ..store import audit
from ..store import dcv as store_dcv
from .applications import application_id_for
from .caa import jsonable
from .context import Context
from .enrolment import validator_for

__all__ = [
    "OperatorChallenge",
    "HeldValidation",
    "start_operator_validation",
    "check_operator_validation",
    "list_operator_validations",
]


@dataclass(frozen=True)
class OperatorChallenge:
    domain: str
    txt_hosts: tuple[str, ...]
    txt_value: str
    expires_at: datetime


@dataclass(frozen=True)
class HeldValidation:
    domain: str
    method: str
    validated_at: datetime
    reusable_until: datetime


def start_operator_validation(ctx: Context, domain: str, *, actor: str) -> OperatorChallenge:
    """A fresh Validation Code for ``domain`` (or the live one, while younger than 30 days)."""
    name = normalize_dns_name(domain, allow_wildcard=False)
    now = ctx.clock()
    with ctx.transaction() as session:
        live = store_dcv.operator_challenge(session, name)
        if live is None or live.expires_at <= now:
            live = store_dcv.add_challenge(
                session,
                app_id=None,
                domain=name,
                method=DcvMethod.DNS,
                code=dcv_rules.new_validation_code(),
                created_at=now,
                expires_at=now + dcv_rules.CODE_VALIDITY,
            )
            audit.append(
                session,
                actor=actor,
                event="dcv.operator_started",
                subject=name,
                details={"method": DcvMethod.DNS.value, "expires_at": live.expires_at.isoformat()},
                now=now,
            )
        shown = dcv_rules.instructions(DcvMethod.DNS, name, live.code)
        return OperatorChallenge(
            domain=name, txt_hosts=shown.txt_hosts, txt_value=live.code, expires_at=live.expires_at
        )


@dataclass(frozen=True)
class _OperatorCode:
    id: int
    code: str
    expired: bool


def _read_operator_code(ctx: Context, name: str) -> _OperatorCode:
    """The read step: the operator's pending challenge for ``name``; NotFound if none was started."""
    with ctx.read() as session:
        challenge = store_dcv.operator_challenge(session, name)
        if challenge is None:
            raise NotFound(f"no operator validation was started for {name}: run `ecert-ca dcv start {name}`")
        return _OperatorCode(challenge.id, challenge.code, dcv_rules.code_expired(challenge.created_at, ctx.clock()))


def _record_operator_check(
    ctx: Context,
    name: str,
    found: _OperatorCode,
    result: DomainResult | None,
    *,
    actor: str,
    now: datetime,
    application_id: int | None = None,
) -> None:
    """The write step, committed whether the check passed or not: every attempt is audited.

    A failed lookup leaves the code pending (the operator fixes the record and checks again); a pass moves
    it to ``passed`` and records the namespace validation; a code older than 30 days is spent.
    """
    passed = result is not None and result.passed
    reason = "the Validation Code is older than 30 days; start again" if result is None else result.reason
    evidence = jsonable(result.evidence) if result is not None else {}
    with ctx.transaction() as session:
        event = ChallengeEvent.PASS if passed else ChallengeEvent.EXPIRE if found.expired else None
        if event is None:
            store_dcv.record_check(session, found.id, now=now, result=reason)
        else:
            store_dcv.move_challenges(
                session,
                [found.id],
                source=ChallengeStatus.PENDING,
                now=now,
                result=reason,
                target=dcv_rules.challenge_move(ChallengeStatus.PENDING, event),
            )
        audit.append(
            session,
            actor=actor,
            event="dcv.operator_checked",
            subject=name,
            details={
                "method": DcvMethod.DNS.value,
                "passed": passed,
                "reason": reason[:500],
                "br_version": rule_dates.BR_VERSION,
                "evidence": evidence,
                "for_application": application_id,
            },
            now=now,
        )
        if passed and result is not None:
            store_dcv.add_validation(
                session,
                domain=name,
                method=DcvMethod.DNS,
                br_version=result.br_version,
                code=found.code,
                validated_at=now,
                evidence=evidence,
                application_id=application_id,  # the organisation it was held for, if the operator said so
                operator_held=True,
                namespace=True,
                perspectives=jsonable(result.evidence.get("mpic")),
            )


def check_operator_validation(
    ctx: Context, domain: str, *, actor: str, for_application: str | None = None
) -> HeldValidation:
    """Look the TXT record up now; on success record an operator-held namespace validation.

    ``for_application`` names the application whose organisation the namespace belongs to (e.g. a government
    department's own domain): its ACME accounts and direct issuance may then take any name under it.
    """
    name = normalize_dns_name(domain, allow_wildcard=False)
    now = ctx.clock()
    application_id = application_id_for(ctx, for_application)
    found = _read_operator_code(ctx, name)
    result = None if found.expired else validator_for(ctx).check(DcvMethod.DNS, name, found.code)
    _record_operator_check(ctx, name, found, result, actor=actor, now=now, application_id=application_id)
    if result is None or not result.passed:
        reason = result.reason if result is not None else "the Validation Code is older than 30 days; start again"
        raise ValidationFailed(f"{name}: {reason}", rule="BR 3.2.2.4.7", value=name)
    return HeldValidation(
        domain=name,
        method=DcvMethod.DNS.value,
        validated_at=now,
        reusable_until=now + timedelta(days=rule_dates.dcv_reuse_days(now)),
    )


def list_operator_validations(ctx: Context) -> list[HeldValidation]:
    """Operator-held validations still inside the BR 4.2.1 reuse period."""
    now = ctx.clock()
    with ctx.read() as session:
        rows = store_dcv.operator_validations(session)
        return [
            HeldValidation(
                domain=r.domain,
                method=r.method,
                validated_at=r.validated_at,
                reusable_until=r.validated_at + timedelta(days=rule_dates.dcv_reuse_days(now)),
            )
            for r in rows
            if dcv_rules.reusable(r.validated_at, now)
        ]
