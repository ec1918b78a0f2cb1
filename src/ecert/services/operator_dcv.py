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

from sqlalchemy import select, update

from ..core import dcv_rules, rule_dates
from ..core.dcv_rules import DcvMethod
from ..core.errors import NotFound, ValidationFailed
from ..core.names import normalize_dns_name
from ..store import audit
from ..store.models import DcvChallenge, DomainValidation
from .context import Context
from .enrolment import validator_for

__all__ = ["OperatorChallenge", "HeldValidation", "start_operator_validation", "check_operator_validation",
           "list_operator_validations"]


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
        live = session.scalar(select(DcvChallenge).where(
            DcvChallenge.application_id.is_(None), DcvChallenge.domain == name, DcvChallenge.status == "pending",
            DcvChallenge.expires_at > now).order_by(DcvChallenge.id.desc()))
        if live is None:
            live = DcvChallenge(application_id=None, domain=name, method=DcvMethod.DNS.value,
                                code=dcv_rules.new_validation_code(), email_address=None, created_at=now,
                                expires_at=now + timedelta(days=30), status="pending")
            session.add(live)
            session.flush()
            audit.append(session, actor=actor, event="dcv.operator_started", subject=name,
                         details={"method": DcvMethod.DNS.value, "expires_at": live.expires_at.isoformat()},
                         now=now)
        shown = dcv_rules.instructions(DcvMethod.DNS, name, live.code)
        return OperatorChallenge(domain=name, txt_hosts=shown.txt_hosts, txt_value=live.code,
                                 expires_at=live.expires_at)


def check_operator_validation(ctx: Context, domain: str, *, actor: str) -> HeldValidation:
    """Look the TXT record up now; on success record an operator-held namespace validation."""
    name = normalize_dns_name(domain, allow_wildcard=False)
    now = ctx.clock()
    with ctx.transaction() as session:
        challenge = session.scalar(select(DcvChallenge).where(
            DcvChallenge.application_id.is_(None), DcvChallenge.domain == name,
            DcvChallenge.status == "pending").order_by(DcvChallenge.id.desc()))
        if challenge is None:
            raise NotFound(f"no operator validation was started for {name}: run `ecert-ca dcv start {name}`")
        code, challenge_id = challenge.code, challenge.id
        expired = dcv_rules.code_expired(challenge.created_at, now)
    result = None if expired else validator_for(ctx).check(DcvMethod.DNS, name, code)
    passed = result is not None and result.passed
    reason = "the Validation Code is older than 30 days; start again" if result is None else result.reason
    with ctx.transaction() as session:  # committed whether the check passed or not: every attempt is audited
        session.execute(update(DcvChallenge).where(DcvChallenge.id == challenge_id).values(
            status="passed" if passed else ("expired" if expired else "pending"), last_checked_at=now,
            last_result=reason[:1000]))
        audit.append(session, actor=actor, event="dcv.operator_checked", subject=name,
                     details={"method": DcvMethod.DNS.value, "passed": passed, "reason": reason[:500],
                              "br_version": rule_dates.BR_VERSION,
                              "evidence": result.to_dict()["evidence"] if result is not None else {}}, now=now)
        if passed and result is not None:
            session.add(DomainValidation(domain=name, method=DcvMethod.DNS.value, br_version=result.br_version,
                                         code=code, validated_at=now, evidence=result.to_dict()["evidence"],
                                         application_id=None, operator_held=True, namespace=True,
                                         perspectives=result.evidence.get("mpic")))
    if not passed:
        raise ValidationFailed(f"{name}: {reason}", rule="BR 3.2.2.4.7", value=name)
    return HeldValidation(domain=name, method=DcvMethod.DNS.value, validated_at=now,
                          reusable_until=now + timedelta(days=rule_dates.dcv_reuse_days(now)))


def list_operator_validations(ctx: Context) -> list[HeldValidation]:
    """Operator-held validations still inside the BR 4.2.1 reuse period."""
    now = ctx.clock()
    with ctx.read() as session:
        rows = session.scalars(select(DomainValidation).where(DomainValidation.operator_held.is_(True))
                               .order_by(DomainValidation.validated_at.desc())).all()
        return [HeldValidation(domain=r.domain, method=r.method, validated_at=r.validated_at,
                               reusable_until=r.validated_at + timedelta(days=rule_dates.dcv_reuse_days(now)))
                for r in rows if dcv_rules.reusable(r.validated_at, now)]
