"""ACME challenge validation, run in the background (RFC 8555 7.5.1, 8): check, record the evidence, settle.

A job takes one ``processing`` challenge: it reads what to check (1), asks the Validator, which checks from
here and corroborates remotely (2, the network, outside any transaction), then in one transaction (3) moves
the challenge, records the ``domain_validations`` row the registration authority reads at finalize, moves
the authorization and every order waiting on it, and audits each attempt per perspective.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ..core.acme_orders import (
    CHALLENGE_METHODS,
    AuthzEvent,
    ChallengeEvent,
    OrderStatus,
    authz_move,
    challenge_move,
    key_authorization,
    order_move,
    order_status_from,
    valid_authz_expiry,
)
from ..core.dcv_rules import DomainResult
from ..core.errors import ConfigError
from ..store import acme as account_store
from ..store import acme_orders as store
from ..store import audit
from . import acme_ari, acme_limits, process_cache
from .caa import jsonable
from .context import Context

__all__ = ["STALE_AFTER", "authz_path", "retake_stale", "run_challenge", "settle_orders"]

# A challenge still processing after this long lost its worker (the process stopped): the job runs it again.
STALE_AFTER = timedelta(minutes=2)


def authz_path(authz_id: int) -> str:
    return f"/acme/authz/{authz_id}"


@dataclass(frozen=True)
class _Job:
    challenge_id: int
    type: str
    token: str
    status: str
    authz_id: int
    authz_status: str
    identifier: str
    account_id: int
    application_id: int
    thumbprint: str


def _load_job(ctx: Context, challenge_id: int) -> _Job | None:
    """Step 1: what to check; None when the challenge is no longer processing (another worker settled it)."""
    with process_cache.quick_read(ctx) as session:
        challenge = store.challenge(session, challenge_id)
        if challenge is None or challenge.status != "processing":
            return None
        authz = store.authorization(session, challenge.authz_id)
        account = account_store.account_by_id(session, authz.account_id) if authz is not None else None
        if authz is None or account is None:
            return None
        return _Job(
            challenge.id,
            challenge.type,
            challenge.token,
            challenge.status,
            authz.id,
            authz.status,
            authz.identifier,
            authz.account_id,
            authz.application_id,
            account.key_thumbprint,
        )


def _check(ctx: Context, job: _Job) -> DomainResult:
    """Step 2: the network, through the context's Validator (primary and remote perspectives)."""
    from ..validation.acme import check_acme
    from ..validation.validator import Validator
    from .enrolment import validator_for

    validator = validator_for(ctx)
    if not isinstance(validator, Validator):
        raise ConfigError("ACME challenges need the network Validator", rule="RFC 8555 8")
    return check_acme(validator, job.type, job.identifier, job.token, key_authorization(job.token, job.thumbprint))


def _problem(result: DomainResult) -> dict[str, Any]:
    """RFC 8555 8.2: a failed challenge carries the problem, typed by what failed (connection, dns, tls...)."""
    kind = str(result.evidence.get("problem") or "incorrectResponse")
    return {"type": f"urn:ietf:params:acme:error:{kind}", "detail": result.reason[:500], "status": 400}


def _audit_attempts(session: Session, job: _Job, result: DomainResult, now: datetime) -> None:
    """Issue 13 point 10: every attempt audited, the primary and each remote perspective on its own."""
    base = {
        "challenge_id": job.challenge_id,
        "authz_id": job.authz_id,
        "account_id": job.account_id,
        "type": job.type,
        "domain": job.identifier,
    }
    audit.append(
        session,
        actor=f"acme:{job.account_id}",
        event="acme.challenge.attempt",
        subject=job.identifier,
        details=jsonable({**base, "perspective": "primary", "passed": result.passed, "reason": result.reason[:500]}),
        now=now,
    )
    mpic = result.evidence.get("mpic") or {}
    for answer in mpic.get("perspectives", []):
        passed = bool((answer.get("answer") or {}).get("passed"))
        audit.append(
            session,
            actor=f"acme:{job.account_id}",
            event="acme.challenge.attempt",
            subject=job.identifier,
            details=jsonable(
                {**base, "perspective": answer.get("url"), "passed": passed, "error": answer.get("error")}
            ),
            now=now,
        )


def _record_validation(session: Session, job: _Job, result: DomainResult, now: datetime, authz_url: str) -> int:
    """The evidence the registration authority reads (BR 3.2.2.4, 4.2.1): one domain_validations row."""
    mpic = result.evidence.get("mpic")
    row = store.add_domain_validation(
        session,
        domain=job.identifier,
        method=CHALLENGE_METHODS[job.type].value,
        br_version=result.br_version,
        code=None,
        validated_at=now,
        application_id=job.application_id,
        evidence=jsonable(
            {
                "source": "acme",
                "authorization": authz_url,
                "challenge": job.type,
                "account_id": job.account_id,
                "reason": result.reason,
                "check": dict(result.evidence),
            }
        ),
        perspectives=jsonable(mpic.get("perspectives")) if isinstance(mpic, dict) else None,
    )
    return row.id


def settle_orders(session: Session, authz_id: int, now: datetime) -> None:
    """RFC 8555 7.1.6: every pending order waiting on this authorization becomes ready or invalid (the orders
    are locked first, so authorizations settled at once still see each other: see the store function)."""
    for order in store.lock_orders_of_authorization(session, authz_id):
        if order.status != OrderStatus.PENDING:
            continue
        event = order_status_from(a.status for a in store.authorizations_of_order(session, order.id))
        if event is not None:
            source, target = order_move(order.status, event)
            error = (
                None
                if target is not OrderStatus.INVALID
                else {
                    "type": "urn:ietf:params:acme:error:unauthorized",
                    "detail": "an authorization failed",
                    "status": 403,
                }
            )
            store.move_order(session, order.id, source=source.value, target=target.value, now=now, error=error)
            if target is OrderStatus.INVALID:  # RFC 9773 5: an invalid order replaces nothing
                acme_ari.release_replaces_of_order(session, order.id)


def _record(ctx: Context, job: _Job, result: DomainResult, authz_url: str) -> None:
    """Step 3: one transaction for the challenge, the evidence, the authorization, the orders and the audit."""
    now = ctx.clock()
    with ctx.transaction() as session:
        source, target = challenge_move(job.status, ChallengeEvent.PASS if result.passed else ChallengeEvent.FAIL)
        if not store.move_challenge(
            session,
            job.challenge_id,
            source=source.value,
            target=target.value,
            now=now,
            validated_at=now if result.passed else None,
            error=None if result.passed else _problem(result),
        ):
            return  # another worker recorded this challenge first
        _audit_attempts(session, job, result, now)
        authz = store.authorization(session, job.authz_id)
        if authz is None or authz.status != "pending":
            return  # already settled by another challenge of the same authorization
        if result.passed:
            validation_id = _record_validation(session, job, result, now, authz_url)
            a_source, a_target = authz_move(authz.status, AuthzEvent.VALIDATE)
            store.move_authorization(
                session,
                authz.id,
                source=a_source.value,
                target=a_target.value,
                now=now,
                validated_at=now,
                validation_id=validation_id,
                expires_at=valid_authz_expiry(now),
            )
        else:
            a_source, a_target = authz_move(authz.status, AuthzEvent.FAIL)
            store.move_authorization(session, authz.id, source=a_source.value, target=a_target.value, now=now)
        settle_orders(session, authz.id, now)


def run_challenge(ctx: Context, challenge_id: int, authz_url: str | None = None) -> None:
    """Validate one processing challenge (the job the challenge POST queues)."""
    job = _load_job(ctx, challenge_id)
    if job is None:
        return
    result = _check(ctx, job)
    _record(ctx, job, result, authz_url or authz_path(job.authz_id))
    if not result.passed:  # issue 13 point 8: failed validations per name per account
        acme_limits.record_failed_validation(ctx, job.account_id, job.identifier)


def retake_stale(ctx: Context, *, older_than: timedelta = STALE_AFTER) -> list[int]:
    """Run again the challenges whose worker stopped (still processing long after they started)."""
    now = ctx.clock()
    done: list[int] = []
    with ctx.read() as session:
        stale = store.stale_processing_challenges(session, started_before=now - older_than)
    for challenge_id in stale:
        with ctx.transaction() as session:
            row = store.challenge(session, challenge_id)
            if row is None or row.started_at is None:
                continue
            if not store.claim_challenge(session, challenge_id, started_at=row.started_at, now=now):
                continue
        run_challenge(ctx, challenge_id)
        done.append(challenge_id)
    return done
