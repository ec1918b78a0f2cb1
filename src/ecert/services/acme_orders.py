"""ACME orders (RFC 8555 7.4, 7.5): new orders, authorizations and challenges, finalize, the certificate.

ACME is a front door: the registration authority (``services.registration``) decides every issuance. What
this module refuses early (a name the account's application can never cover, a profile the application was
not vetted for) it refuses from the application's own data, the same data the RA decides on at finalize.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from ..core import dcv_rules
from ..core.acme_orders import (
    AUTHZ_PENDING_LIFETIME,
    ORDER_LIFETIME,
    AuthzStatus,
    ChallengeEvent,
    ChallengeStatus,
    OrderEvent,
    OrderStatus,
    challenge_move,
    challenge_types_for,
    check_challenge_type,
    check_csr_names,
    check_identifiers,
    choose_profile,
    effective_authz_status,
    effective_order_status,
    order_move,
)
from ..core.acme_rules import AcmeRefusal, ProblemType, application_unfit_for_acme
from ..core.errors import (
    BadCSR,
    BadKey,
    BadName,
    Conflict,
    EcertError,
    NotFound,
    PolicyViolation,
    ValidationFailed,
)
from ..core.evidence import RULE_CA_KEY, names_outside
from ..core.names import normalize_names
from ..core.profiles import CertType, names_for_application
from ..store import acme_orders as store
from ..store import audit
from ..store import cas as ca_store
from ..store import certificates as cert_store
from ..store import registration as ra_store
from ..store.models import Certificate
from ..store.models_acme_orders import AcmeAuthorization, AcmeChallenge, AcmeOrder
from . import acme_ari, acme_challenges, acme_limits, jobs, process_cache
from .acme_accounts import AccountView
from .applications import application_names, load_application
from .context import Context
from .registration import Channel, IssuanceIntent, Requester, VettedRequest, authorize, issue_vetted

__all__ = [
    "AuthzView",
    "CertificateChains",
    "ChallengeView",
    "OrderView",
    "authz_view",
    "certificate_chains",
    "challenge_view",
    "finalize",
    "new_order",
    "order_ids",
    "order_view",
    "start_challenge",
]

# Two finalizes of one application meet at the pipeline's one-'signing'-row index; the second waits its turn.
_FINALIZE_TRIES = 20


@dataclass(frozen=True)
class ChallengeView:
    id: int
    authz_id: int
    type: str
    token: str
    status: str
    validated_at: datetime | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class AuthzView:
    id: int
    identifier: str
    wildcard: bool
    status: str
    expires_at: datetime
    challenges: tuple[ChallengeView, ...]


@dataclass(frozen=True)
class OrderView:
    id: int
    status: str
    expires_at: datetime
    identifiers: tuple[str, ...]
    profile: str
    authz_ids: tuple[int, ...]
    error: dict[str, Any] | None
    certificate_id: int | None


def _challenge_view(row: AcmeChallenge) -> ChallengeView:
    return ChallengeView(row.id, row.authz_id, row.type, row.token, row.status, row.validated_at, row.error)


def _authz_view(session: Session, row: AcmeAuthorization, now: datetime) -> AuthzView:
    challenges = tuple(_challenge_view(c) for c in store.challenges_of(session, row.id))
    if row.status == AuthzStatus.VALID:  # RFC 8555 7.1.4: a valid authorization lists the challenge that passed
        challenges = tuple(c for c in challenges if c.status == ChallengeStatus.VALID) or challenges
    name = f"*.{row.identifier}" if row.wildcard else row.identifier
    status = effective_authz_status(row.status, row.expires_at, now)
    return AuthzView(row.id, name, row.wildcard, status, row.expires_at, challenges)


def _order_view(session: Session, row: AcmeOrder, now: datetime) -> OrderView:
    authz_ids = tuple(a.id for a in store.authorizations_of_order(session, row.id))
    return OrderView(
        row.id,
        effective_order_status(row.status, row.expires_at, now),
        row.expires_at,
        tuple(row.identifiers),
        row.profile,
        authz_ids,
        row.error,
        row.certificate_id,
    )


def _not_yours(what: str, value: int) -> AcmeRefusal:
    return AcmeRefusal(
        ProblemType.UNAUTHORIZED,
        f"this {what} belongs to another account",
        status=403,
        rule="RFC 8555 7.5",
        value=value,
    )


def _missing(what: str, value: int) -> AcmeRefusal:
    return AcmeRefusal(ProblemType.MALFORMED, f"no such {what}", status=404, rule="RFC 8555 7.5", value=value)


# --- newOrder --------------------------------------------------------------------------------------------


def _rejected(message: str, value: object, rule: str) -> AcmeRefusal:
    return AcmeRefusal(ProblemType.REJECTED_IDENTIFIER, message, rule=rule, value=value)


def _shaped(profile: CertType, names: Sequence[str]) -> tuple[str, ...]:
    """The names as the profile carries them (a wildcard profile: the wildcard and its base); refusals early."""
    first = sorted(names, key=lambda n: not n.startswith("*."))
    try:
        if profile is CertType.WILDCARD:
            return names_for_application(profile, first[0], ())
        return names_for_application(profile, first[0], tuple(first[1:]))
    except PolicyViolation as exc:
        raise _rejected(exc.message, exc.value, exc.rule or "BR 7.1.2.7.12") from None


def _check_coverage(
    names: Sequence[str], profile: CertType, covered: Sequence[str], reference: str, namespaces: Sequence[str] = ()
) -> None:
    """Issue 13 point 2: an account orders only names its application covers (the RA decides at finalize)."""
    try:
        normal = normalize_names(tuple(names))
    except EcertError as exc:
        raise _rejected(exc.message, exc.value, exc.rule or "BR 3.2.2.4") from None
    if tuple(normal) != tuple(names):
        raise _rejected(
            "identifiers must be in their normalised (A-label, lower-case) form", list(names), "RFC 8555 7.1.4"
        )
    shaped = _shaped(profile, names)
    outside = names_outside((*names, *shaped), covered, namespaces)  # the RA's rule, asked early
    if outside:
        raise _rejected(
            f"{', '.join(dict.fromkeys(outside))} is not among the names of the account's application {reference}",
            sorted(set(outside)),
            "BR 3.2.2.4 / issue 13",
        )


def _new_challenges(session: Session, authz_id: int, name: str, now: datetime) -> None:
    for challenge_type in challenge_types_for(name):
        store.add_challenge(
            session,
            authz_id=authz_id,
            type=challenge_type,
            token=secrets.token_urlsafe(32),
            status=ChallengeStatus.PENDING.value,
            started_at=None,
            validated_at=None,
            error=None,
            updated_at=now,
        )


def _authorization_for(session: Session, account: AccountView, name: str, now: datetime) -> AcmeAuthorization:
    """A pending or still reusable valid authorization of this account for the name, else a new one."""
    identifier, wildcard = dcv_rules.dns_name_for_validation(name), name.startswith("*.")
    found = store.reusable_authorization(
        session,
        account_id=account.id,
        identifier=identifier,
        wildcard=wildcard,
        statuses=(AuthzStatus.PENDING.value, AuthzStatus.VALID.value),
        now=now,
    )
    # BR 4.2.1: a valid authorization is reused only inside the reuse period that applies on the day of reuse.
    if found is not None and (found.validated_at is None or dcv_rules.reusable(found.validated_at, now)):
        return found
    row = store.add_authorization(
        session,
        account_id=account.id,
        application_id=account.application_id,
        identifier=identifier,
        wildcard=wildcard,
        status=AuthzStatus.PENDING.value,
        expires_at=now + AUTHZ_PENDING_LIFETIME,
        validated_at=None,
        validation_id=None,
        created_at=now,
        updated_at=now,
    )
    _new_challenges(session, row.id, name, now)
    return row


def _order_row(
    session: Session, account: AccountView, names: Sequence[str], profile: CertType, now: datetime
) -> AcmeOrder:
    authzs = [_authorization_for(session, account, name, now) for name in names]
    row = store.add_order(
        session,
        account_id=account.id,
        application_id=account.application_id,
        status=OrderStatus.PENDING.value,
        identifiers=list(names),
        profile=profile.value,
        expires_at=now + ORDER_LIFETIME,
        error=None,
        certificate_id=None,
        created_at=now,
        updated_at=now,
    )
    store.link_order(session, row.id, [a.id for a in authzs])
    if all(a.status == AuthzStatus.VALID for a in authzs):  # every authorization reused: ready at once
        source, target = order_move(row.status, OrderEvent.AUTHORIZED)
        store.move_order(session, row.id, source=source.value, target=target.value, now=now)
        session.refresh(row)
    return row


def new_order(
    ctx: Context, account: AccountView, identifiers: object, profile: object, *, client: str, replaces: object = None
) -> OrderView:
    """RFC 8555 7.4: an order for names the account's application covers, with a profile it was vetted for."""
    names = check_identifiers(identifiers)
    acme_limits.spend_new_order(ctx, account.id)  # issue 13 point 8, counted before anything is made
    acme_limits.check_failed_validations(ctx, account.id, names)
    now = ctx.clock()
    with ctx.transaction() as session:
        application = load_application(session, account.application_id)
        why = application_unfit_for_acme(application.state, application.subscription_end, now)
        if why:
            raise AcmeRefusal(
                ProblemType.UNAUTHORIZED,
                f"the account's application cannot order: {why}",
                status=403,
                rule="issue 13",
                value=application.reference_number,
            )
        chosen = choose_profile(profile, CertType(application.cert_type), names)
        _check_coverage(
            names,
            chosen,
            application_names(application),
            application.reference_number,
            ra_store.held_namespaces_for(session, application.id),
        )
        row = _order_row(session, account, names, chosen, now)
        if replaces is not None:  # RFC 9773 5: claimed in this transaction, so a refused order claims nothing
            acme_ari.claim_replaces_in(
                session,
                account_id=account.id,
                application_id=account.application_id,
                replaces=replaces if isinstance(replaces, str) else "",
                names=names,
                order_ref=str(row.id),
                now=now,
            )
        audit.append(
            session,
            actor=f"acme:{client}",
            event="acme.order.created",
            subject=application.reference_number,
            details={
                "order_id": row.id,
                "account_id": account.id,
                "identifiers": list(names),
                "profile": chosen.value,
                "status": row.status,
            },
            now=now,
        )
        return _order_view(session, row, now)


# --- reading -----------------------------------------------------------------------------------------------


def _own_order(session: Session, account: AccountView, order_id: int) -> AcmeOrder:
    row = store.order(session, order_id)
    if row is None:
        raise _missing("order", order_id)
    if row.account_id != account.id:
        raise _not_yours("order", order_id)
    return row


def order_view(ctx: Context, account: AccountView, order_id: int) -> OrderView:
    with process_cache.quick_read(ctx) as session:
        return _order_view(session, _own_order(session, account, order_id), ctx.clock())


def order_ids(ctx: Context, account: AccountView) -> list[int]:
    with process_cache.quick_read(ctx) as session:
        return store.order_ids_of_account(session, account.id)


def _own_authz(session: Session, account: AccountView, authz_id: int) -> AcmeAuthorization:
    row = store.authorization(session, authz_id)
    if row is None:
        raise _missing("authorization", authz_id)
    if row.account_id != account.id:
        raise _not_yours("authorization", authz_id)
    return row


def authz_view(ctx: Context, account: AccountView, authz_id: int) -> AuthzView:
    with process_cache.quick_read(ctx) as session:
        return _authz_view(session, _own_authz(session, account, authz_id), ctx.clock())


def challenge_view(ctx: Context, account: AccountView, challenge_id: int) -> ChallengeView:
    with process_cache.quick_read(ctx) as session:
        row = store.challenge(session, challenge_id)
        if row is None:
            raise _missing("challenge", challenge_id)
        _own_authz(session, account, row.authz_id)
        return _challenge_view(row)


# --- challenges ------------------------------------------------------------------------------------------


def start_challenge(
    ctx: Context, account: AccountView, challenge_id: int, *, authz_base_url: str, client: str
) -> ChallengeView:
    """RFC 8555 7.5.1: the client is ready; the challenge goes processing and the job runner validates it."""
    now = ctx.clock()
    with ctx.transaction() as session:
        row = store.challenge(session, challenge_id)
        if row is None:
            raise _missing("challenge", challenge_id)
        authz = _own_authz(session, account, row.authz_id)
        name = f"*.{authz.identifier}" if authz.wildcard else authz.identifier
        check_challenge_type(name, row.type)
        if row.status != ChallengeStatus.PENDING or authz.status != AuthzStatus.PENDING:
            return _challenge_view(row)  # RFC 8555 7.5.1: asking again changes nothing
        source, target = challenge_move(row.status, ChallengeEvent.START)
        store.move_challenge(session, row.id, source=source.value, target=target.value, now=now, started_at=now)
        audit.append(
            session,
            actor=f"acme:{client}",
            event="acme.challenge.started",
            subject=name,
            details={"challenge_id": row.id, "authz_id": authz.id, "account_id": account.id, "type": row.type},
            now=now,
        )
        session.refresh(row)
        view = _challenge_view(row)
    jobs.submit(acme_challenges.run_challenge, ctx, challenge_id, f"{authz_base_url}{view.authz_id}")
    return view


# --- finalize ----------------------------------------------------------------------------------------------


def _csr_names(csr_der: bytes) -> tuple[x509.CertificateSigningRequest, list[str]]:
    """The names a CSR asks for (SAN dNSNames and the CN), to compare with the order (RFC 8555 7.4)."""
    try:
        csr = x509.load_der_x509_csr(csr_der)
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = list(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = []
        names += [str(a.value) for a in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    except (ValueError, TypeError) as exc:
        raise AcmeRefusal(
            ProblemType.BAD_CSR, f"the CSR cannot be read: {str(exc)[:200]}", rule="RFC 8555 7.4"
        ) from None
    return csr, names


def _refusal_from_ra(exc: EcertError) -> AcmeRefusal:
    """The registration authority's refusal as the ACME problem a client understands (RFC 8555 6.7)."""
    if isinstance(exc, BadCSR | BadKey | BadName) or (isinstance(exc, PolicyViolation) and exc.rule == RULE_CA_KEY):
        return AcmeRefusal(ProblemType.BAD_CSR, exc.message, rule=exc.rule or "RFC 8555 7.4", value=exc.value)
    if isinstance(exc, ValidationFailed) and (exc.rule or "").startswith("BR 3.2.2.8"):
        return AcmeRefusal(ProblemType.CAA, exc.message, status=403, rule=exc.rule or "BR 3.2.2.8", value=exc.value)
    if isinstance(exc, ValidationFailed | Conflict):
        return AcmeRefusal(
            ProblemType.UNAUTHORIZED, exc.message, status=403, rule=exc.rule or "RFC 8555 7.4", value=exc.value
        )
    if isinstance(exc, PolicyViolation):
        return AcmeRefusal(
            ProblemType.REJECTED_IDENTIFIER, exc.message, rule=exc.rule or "RFC 8555 7.4", value=exc.value
        )
    if isinstance(exc, AcmeRefusal):
        return exc
    return AcmeRefusal(
        ProblemType.SERVER_INTERNAL, "the certificate could not be issued", status=500, rule="RFC 8555 7.4"
    )


def _intent(
    account: AccountView, row: AcmeOrder, csr_der: bytes, account_key_spki: str, account_uri: str | None = None
) -> IssuanceIntent:
    profile = CertType(row.profile)
    names = sorted(row.identifiers, key=lambda n: not n.startswith("*."))
    return IssuanceIntent(
        requester=Requester(Channel.ACME, f"acme:{account.id}"),
        cert_type=profile,
        csr=csr_der,
        names=tuple(names[:1]) if profile is CertType.WILDCARD else tuple(names),
        application_id=account.application_id,
        forbidden_keys={account_key_spki: "the ACME account key"},  # RFC 8555 11.1
        caa_account_uri=account_uri,  # RFC 8657 accounturi
    )


def _move_order(session: Session, row_id: int, status: str, event: OrderEvent, now: datetime, **values: Any) -> bool:
    source, target = order_move(status, event)
    return store.move_order(session, row_id, source=source.value, target=target.value, now=now, **values)


def _issue(ctx: Context, vetted: VettedRequest, on_signed: Callable[[Session, Certificate], None]) -> Certificate:
    """The pipeline, stored as accepted (no portal Accept step); a concurrent issuance for the same application
    holds the one 'signing' slot for a moment, so a Conflict is retried after a short, jittered wait."""
    accepted = replace(vetted, request=replace(vetted.request, accepted_on_issue=True))
    for attempt in range(_FINALIZE_TRIES):
        try:
            return issue_vetted(ctx, accepted, on_signed=on_signed)
        except Conflict:
            if attempt == _FINALIZE_TRIES - 1:
                raise
            time.sleep(0.05 + random.random() * 0.1 * (attempt + 1))  # noqa: S311 - jitter, not a secret
    raise AssertionError("unreachable")


def _fail_order(ctx: Context, order_id: int, exc: Exception) -> None:
    now = ctx.clock()
    error = {
        "type": "urn:ietf:params:acme:error:serverInternal",
        "status": 500,
        "detail": "the certificate could not be issued",
    }
    if isinstance(exc, Conflict):
        error["detail"] = "another certificate of this application was being issued; place a new order"
    with ctx.transaction() as session:
        _move_order(session, order_id, OrderStatus.PROCESSING.value, OrderEvent.FAIL, now, error=error)
        acme_ari.release_replaces_of_order(session, order_id)  # RFC 9773 5: an invalid order replaces nothing
        audit.append(
            session,
            actor="system",
            event="acme.order.failed",
            subject=str(order_id),
            details={"order_id": order_id, "error": f"{type(exc).__name__}: {exc}"[:500]},
            now=now,
        )


def _begin(ctx: Context, account: AccountView, order_id: int, client: str) -> None:
    """ready -> processing, once: a second finalize of the same order finds it processing (orderNotReady)."""
    now = ctx.clock()
    with ctx.transaction() as session:
        row = _own_order(session, account, order_id)
        if not _move_order(session, order_id, row.status, OrderEvent.FINALIZE, now):
            raise AcmeRefusal(
                ProblemType.ORDER_NOT_READY,
                "the order is being finalized",
                status=403,
                rule="RFC 8555 7.4",
                value=order_id,
            )
        audit.append(
            session,
            actor=f"acme:{client}",
            event="acme.order.finalizing",
            subject=str(order_id),
            details={"order_id": order_id, "account_id": account.id},
            now=now,
        )


def finalize(
    ctx: Context,
    account: AccountView,
    order_id: int,
    csr_der: bytes,
    *,
    account_key_spki: str,
    client: str,
    account_uri: str | None = None,
) -> OrderView:
    """RFC 8555 7.4: CSR names equal to the order's, then the registration authority decides and issues."""
    with process_cache.quick_read(ctx) as session:
        row = _own_order(session, account, order_id)
        # orderNotReady unless ready and not expired (RFC 8555 7.1.6)
        order_move(effective_order_status(row.status, row.expires_at, ctx.clock()), OrderEvent.FINALIZE)
        _, names = _csr_names(csr_der)
        check_csr_names(names, row.identifiers)
        intent = _intent(account, row, csr_der, account_key_spki, account_uri)
    try:
        vetted = authorize(ctx, intent)  # audits its own refusals; changes nothing else
    except EcertError as exc:
        raise _refusal_from_ra(exc) from None
    acme_limits.spend_certificate(ctx, account.application_id)  # issue 13 point 8: certificates per week
    _begin(ctx, account, order_id, client)

    def on_signed(session: Session, cert: Certificate) -> None:
        _move_order(
            session, order_id, OrderStatus.PROCESSING.value, OrderEvent.ISSUE, ctx.clock(), certificate_id=cert.id
        )

    try:
        _issue(ctx, vetted, on_signed)
    except Exception as exc:
        _fail_order(ctx, order_id, exc)
        raise _refusal_from_ra(exc) if isinstance(exc, EcertError) else exc from None
    return order_view(ctx, account, order_id)


# --- the certificate ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateChains:
    """RFC 8555 7.4.2: the chain through our root, and alternates through each cross-certificate."""

    default: bytes
    alternates: tuple[bytes, ...]


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def certificate_chains(ctx: Context, account: AccountView, order_id: int) -> CertificateChains:
    """Leaf + issuing CA (chains to our root); each alternate adds the cross-certificate for our root."""
    with process_cache.quick_read(ctx) as session:
        row = _own_order(session, account, order_id)
        cert = cert_store.certificate_by_id(session, row.certificate_id) if row.certificate_id else None
        if cert is None or cert.der is None:
            raise _missing("certificate", order_id)
        issuer = ca_store.ca_by_id(session, cert.ca_id)
        if issuer is None:
            raise NotFound("the certificate's issuing CA is not known")
        root = ca_store.ca_by_id(session, issuer.parent_id) if issuer.parent_id is not None else None
        crosses = ca_store.crosses_of(session, root) if root is not None else []
        base = _pem(cert.der) + _pem(issuer.cert_der)
        return CertificateChains(base, tuple(base + _pem(c.cert_der) for c in crosses))
