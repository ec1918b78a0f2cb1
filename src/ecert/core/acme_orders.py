"""Pure rules of ACME orders, authorizations and challenges (RFC 8555 7.1.3-7.1.6, 8; RFC 8737).

Statuses are enums and every move goes through one of the transition tables below; the refusals are
:class:`~ecert.core.acme_rules.AcmeRefusal` naming the RFC section and the bad value. Nothing here touches
storage, the network or JOSE: keys arrive as their RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from . import rule_dates
from .acme_rules import PROFILE_DESCRIPTIONS, AcmeRefusal, ProblemType
from .dcv_rules import DcvMethod
from .profiles import CertType, profile_allowed

__all__ = [
    "AUTHZ_PENDING_LIFETIME",
    "AUTHZ_TRANSITIONS",
    "CHALLENGE_METHODS",
    "CHALLENGE_TRANSITIONS",
    "ORDER_LIFETIME",
    "ORDER_TRANSITIONS",
    "AuthzEvent",
    "AuthzStatus",
    "ChallengeEvent",
    "ChallengeStatus",
    "OrderEvent",
    "OrderStatus",
    "authz_move",
    "challenge_move",
    "challenge_types_for",
    "check_challenge_type",
    "check_csr_names",
    "check_identifiers",
    "choose_profile",
    "dns01_txt_value",
    "effective_authz_status",
    "effective_order_status",
    "key_authorization",
    "order_move",
    "order_status_from",
    "require_ready",
    "valid_authz_expiry",
]

# How long an order, and an authorization nobody validated, stays usable (RFC 8555 7.1.3 leaves it to the CA).
ORDER_LIFETIME = timedelta(days=7)
AUTHZ_PENDING_LIFETIME = timedelta(days=7)
# RFC 8555 7.1.3: at most this many identifiers per order; the multi-domain feature takes 50 names.
MAX_IDENTIFIERS = 50


class OrderStatus(enum.StrEnum):
    """RFC 8555 7.1.6: the states of an order."""

    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class OrderEvent(enum.StrEnum):
    AUTHORIZED = "authorized"  # every authorization is valid
    FINALIZE = "finalize"  # an acceptable CSR came
    ISSUE = "issue"  # the certificate is stored
    FAIL = "fail"  # an authorization failed, the order expired or issuance failed


ORDER_TRANSITIONS: Mapping[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (OrderStatus.PENDING, OrderEvent.AUTHORIZED): OrderStatus.READY,
    (OrderStatus.PENDING, OrderEvent.FAIL): OrderStatus.INVALID,
    (OrderStatus.READY, OrderEvent.FINALIZE): OrderStatus.PROCESSING,
    (OrderStatus.READY, OrderEvent.FAIL): OrderStatus.INVALID,
    (OrderStatus.PROCESSING, OrderEvent.ISSUE): OrderStatus.VALID,
    (OrderStatus.PROCESSING, OrderEvent.FAIL): OrderStatus.INVALID,
}


class AuthzStatus(enum.StrEnum):
    """RFC 8555 7.1.6: the states of an authorization."""

    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class AuthzEvent(enum.StrEnum):
    VALIDATE = "validate"
    FAIL = "fail"
    DEACTIVATE = "deactivate"


AUTHZ_TRANSITIONS: Mapping[tuple[AuthzStatus, AuthzEvent], AuthzStatus] = {
    (AuthzStatus.PENDING, AuthzEvent.VALIDATE): AuthzStatus.VALID,
    (AuthzStatus.PENDING, AuthzEvent.FAIL): AuthzStatus.INVALID,
    (AuthzStatus.PENDING, AuthzEvent.DEACTIVATE): AuthzStatus.DEACTIVATED,
    (AuthzStatus.VALID, AuthzEvent.DEACTIVATE): AuthzStatus.DEACTIVATED,
}


class ChallengeStatus(enum.StrEnum):
    """RFC 8555 7.1.6: the states of a challenge."""

    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class ChallengeEvent(enum.StrEnum):
    START = "start"  # the client said it is ready (RFC 8555 7.5.1)
    PASS = "pass"
    FAIL = "fail"


CHALLENGE_TRANSITIONS: Mapping[tuple[ChallengeStatus, ChallengeEvent], ChallengeStatus] = {
    (ChallengeStatus.PENDING, ChallengeEvent.START): ChallengeStatus.PROCESSING,
    (ChallengeStatus.PROCESSING, ChallengeEvent.PASS): ChallengeStatus.VALID,
    (ChallengeStatus.PROCESSING, ChallengeEvent.FAIL): ChallengeStatus.INVALID,
}

# The challenge types and the BR 3.2.2.4 method each one is (what domain_validations.method records).
CHALLENGE_METHODS: Mapping[str, DcvMethod] = {
    "http-01": DcvMethod.ACME_HTTP,  # RFC 8555 8.3, BR 3.2.2.4.19
    "dns-01": DcvMethod.ACME_DNS,  # RFC 8555 8.4, BR 3.2.2.4.7
    "tls-alpn-01": DcvMethod.ACME_TLS_ALPN,  # RFC 8737, BR 3.2.2.4.20
}


def _conflict(what: str, source: str, event: str, rule: str) -> AcmeRefusal:
    return AcmeRefusal(ProblemType.MALFORMED, f"a {source} {what} cannot {event}", status=400, rule=rule, value=source)


def order_move(status: str, event: OrderEvent) -> tuple[OrderStatus, OrderStatus]:
    """The (from, to) of ``event`` for an order; finalize of an order that is not ready is orderNotReady."""
    source = OrderStatus(status)
    target = ORDER_TRANSITIONS.get((source, event))
    if target is None:
        if event is OrderEvent.FINALIZE:
            require_ready(source.value)
        raise _conflict("order", source.value, event.value, "RFC 8555 7.1.6")
    return source, target


def authz_move(status: str, event: AuthzEvent) -> tuple[AuthzStatus, AuthzStatus]:
    source = AuthzStatus(status)
    target = AUTHZ_TRANSITIONS.get((source, event))
    if target is None:
        raise _conflict("authorization", source.value, event.value, "RFC 8555 7.1.6")
    return source, target


def challenge_move(status: str, event: ChallengeEvent) -> tuple[ChallengeStatus, ChallengeStatus]:
    source = ChallengeStatus(status)
    target = CHALLENGE_TRANSITIONS.get((source, event))
    if target is None:
        raise _conflict("challenge", source.value, event.value, "RFC 8555 7.1.6")
    return source, target


def require_ready(status: str) -> None:
    """RFC 8555 7.4: finalize only a ready order (orderNotReady, 403)."""
    if status != OrderStatus.READY:
        raise AcmeRefusal(
            ProblemType.ORDER_NOT_READY,
            f"the order is {status}; finalize it once every authorization is valid (status ready)",
            status=403,
            rule="RFC 8555 7.4",
            value=status,
        )


def effective_order_status(status: str, expires_at: datetime, now: datetime) -> str:
    """RFC 8555 7.1.6: a pending or ready order past its expiry is invalid (shown so, refused at finalize)."""
    if status in (OrderStatus.PENDING, OrderStatus.READY) and now >= expires_at:
        return OrderStatus.INVALID.value
    return status


def effective_authz_status(status: str, expires_at: datetime, now: datetime) -> str:
    """RFC 8555 7.1.6: a pending or valid authorization past its expiry is expired."""
    if status in (AuthzStatus.PENDING, AuthzStatus.VALID) and now >= expires_at:
        return AuthzStatus.EXPIRED.value
    return status


def order_status_from(authz_statuses: Iterable[str]) -> OrderEvent | None:
    """RFC 8555 7.1.6: all authorizations valid makes the order ready; any other end state makes it invalid."""
    statuses = [AuthzStatus(s) for s in authz_statuses]
    if statuses and all(s is AuthzStatus.VALID for s in statuses):
        return OrderEvent.AUTHORIZED
    if any(s not in (AuthzStatus.VALID, AuthzStatus.PENDING) for s in statuses):
        return OrderEvent.FAIL
    return None


# --- identifiers, profiles, CSR ---------------------------------------------------------------------


def _rejected(message: str, value: object, rule: str = "RFC 8555 7.4") -> AcmeRefusal:
    return AcmeRefusal(ProblemType.REJECTED_IDENTIFIER, message, rule=rule, value=value)


def check_identifiers(identifiers: object) -> tuple[str, ...]:
    """RFC 8555 7.1.3 / 9.7.7: a non-empty list of {"type": "dns", "value": name}; the names, in order, once each."""
    if not isinstance(identifiers, list) or not identifiers:
        raise AcmeRefusal(ProblemType.MALFORMED, "identifiers must be a non-empty list", rule="RFC 8555 7.4")
    if len(identifiers) > MAX_IDENTIFIERS:
        raise _rejected(f"at most {MAX_IDENTIFIERS} identifiers per order", len(identifiers))
    names: list[str] = []
    for item in identifiers:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise AcmeRefusal(ProblemType.MALFORMED, "an identifier is {type, value}", rule="RFC 8555 7.1.3")
        if item.get("type") != "dns":
            raise AcmeRefusal(
                ProblemType.UNSUPPORTED_IDENTIFIER,
                "only dns identifiers are issued (BR 7.1.2.7.12: no IP addresses)",
                rule="RFC 8555 9.7.7",
                value=str(item.get("type"))[:40],
            )
        names.append(item["value"].strip().rstrip(".").lower())
    return tuple(dict.fromkeys(names))


def choose_profile(requested: object, vetted_for: CertType, names: Sequence[str]) -> CertType:
    """draft-aaron-acme-profiles 4: the profile asked for (or the application's own type when none is named)
    must be one the directory lists and one the application was vetted for (invalidProfile)."""
    if requested is None:
        wildcard = any(n.startswith("*.") for n in names)
        return CertType.WILDCARD if wildcard and vetted_for is CertType.WILDCARD else vetted_for
    if not isinstance(requested, str) or requested not in PROFILE_DESCRIPTIONS:
        raise AcmeRefusal(
            ProblemType.INVALID_PROFILE,
            f"unknown profile; the directory lists {', '.join(PROFILE_DESCRIPTIONS)}",
            rule="draft-aaron-acme-profiles 4",
            value=str(requested)[:64],
        )
    profile = CertType(requested)
    if not profile_allowed(vetted_for, profile):  # EV Guidelines 11: EV vetting is not OV vetting and vice versa
        raise AcmeRefusal(
            ProblemType.INVALID_PROFILE,
            f"the account's application is vetted for {vetted_for.value} certificates, not {profile.value}",
            rule="draft-aaron-acme-profiles 4",
            value=profile.value,
        )
    return profile


def check_csr_names(csr_names: Iterable[str], order_names: Iterable[str]) -> None:
    """RFC 8555 7.4: the CSR asks for exactly the order's identifiers (badCSR)."""
    asked = {n.strip().rstrip(".").lower() for n in csr_names}
    ordered = set(order_names)
    if asked != ordered:
        raise AcmeRefusal(
            ProblemType.BAD_CSR,
            f"the CSR's names ({', '.join(sorted(asked)) or 'none'}) are not the order's "
            f"({', '.join(sorted(ordered))})",
            rule="RFC 8555 7.4",
            value=sorted(asked ^ ordered),
        )


# --- challenges -----------------------------------------------------------------------------------


def challenge_types_for(name: str) -> tuple[str, ...]:
    """RFC 8555 7.1.3 and BR 3.2.2.4.19/.20: a wildcard is validated by dns-01 only (on its base domain)."""
    if name.startswith("*."):
        return ("dns-01",)
    return ("http-01", "dns-01", "tls-alpn-01")


def check_challenge_type(name: str, challenge_type: str) -> None:
    """Refuse a challenge type the identifier cannot be validated by (a wildcard by http-01: rejectedIdentifier)."""
    if challenge_type not in challenge_types_for(name):
        raise _rejected(
            f"{name} cannot be validated by {challenge_type}: a wildcard needs dns-01",
            challenge_type,
            rule="BR 3.2.2.4.19 / RFC 8555 7.1.3",
        )


def key_authorization(token: str, thumbprint: str) -> str:
    """RFC 8555 8.1: token || '.' || base64url(JWK thumbprint)."""
    return f"{token}.{thumbprint}"


def dns01_txt_value(key_authz: str) -> str:
    """RFC 8555 8.4: the TXT record holds base64url(SHA-256(key authorization)), unpadded."""
    digest = hashlib.sha256(key_authz.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def valid_authz_expiry(validated_at: datetime) -> datetime:
    """BR 4.2.1: a valid authorization may be reused for as long as its validation may (by the date of use)."""
    return validated_at + timedelta(days=rule_dates.dcv_reuse_days(validated_at))
