"""Pure ACME rules (RFC 8555): problem types, JWS header rules, account and EAB credential state machines.

Nothing here parses JOSE (web/acme/verify.py does, with josepy) or touches storage; each rule takes the values
it judges and raises an :class:`AcmeRefusal` naming the RFC section and the bad value.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from .errors import Conflict, EcertError

__all__ = [
    "ACCOUNT_TRANSITIONS",
    "ALLOWED_ALGS",
    "ALG_KEY_TYPES",
    "EAB_ALGS",
    "EAB_UNUSED_LIFETIME",
    "NONCE_LIFETIME",
    "AccountAction",
    "AccountStatus",
    "AcmeRefusal",
    "EabAction",
    "EabStatus",
    "EAB_TRANSITIONS",
    "ProblemType",
    "PROFILE_DESCRIPTIONS",
    "account_move",
    "application_unfit_for_acme",
    "check_alg",
    "check_alg_listed",
    "check_eab_alg",
    "check_eab_usable",
    "check_key_locator",
    "check_url",
    "eab_move",
    "nonce_live",
]

# How long a nonce the server handed out may be used (RFC 8555 6.5 leaves it to the server).
NONCE_LIFETIME = timedelta(hours=1)
# An EAB credential nobody bound within this time is void (RFC 8555 7.3.4 leaves it to the CA).
EAB_UNUSED_LIFETIME = timedelta(days=7)


class ProblemType(enum.StrEnum):
    """The RFC 8555 6.7 error types ecert answers with (``urn:ietf:params:acme:error:<value>``)."""

    MALFORMED = "malformed"
    UNAUTHORIZED = "unauthorized"
    BAD_NONCE = "badNonce"
    BAD_SIGNATURE_ALGORITHM = "badSignatureAlgorithm"
    ACCOUNT_DOES_NOT_EXIST = "accountDoesNotExist"
    EXTERNAL_ACCOUNT_REQUIRED = "externalAccountRequired"
    SERVER_INTERNAL = "serverInternal"
    RATE_LIMITED = "rateLimited"
    UNSUPPORTED_CONTACT = "unsupportedContact"  # RFC 8555 7.3: a scheme other than mailto:
    INVALID_CONTACT = "invalidContact"  # RFC 8555 7.3: a mailto: that is no plain address
    BAD_REVOCATION_REASON = "badRevocationReason"  # RFC 8555 7.6
    ALREADY_REVOKED = "alreadyRevoked"  # RFC 8555 7.6
    ALREADY_REPLACED = "alreadyReplaced"  # RFC 9773 7.4
    # orders, authorizations and challenges (RFC 8555 6.7; invalidProfile: draft-aaron-acme-profiles)
    REJECTED_IDENTIFIER = "rejectedIdentifier"
    UNSUPPORTED_IDENTIFIER = "unsupportedIdentifier"
    INVALID_PROFILE = "invalidProfile"
    BAD_CSR = "badCSR"
    ORDER_NOT_READY = "orderNotReady"
    CAA = "caa"
    CONNECTION = "connection"
    DNS = "dns"
    INCORRECT_RESPONSE = "incorrectResponse"
    TLS = "tls"


class AcmeRefusal(EcertError):
    """A refused ACME request: ``problem`` is the RFC 8555 6.7 type, ``status`` the HTTP status to answer with."""

    code = "acme"

    def __init__(
        self,
        problem: ProblemType,
        message: str,
        *,
        status: int = 400,
        rule: str = "RFC 8555",
        value: object | None = None,
        algorithms: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(message, rule=rule, value=value)
        self.problem = problem
        self.status = status
        self.algorithms = algorithms  # listed in a badSignatureAlgorithm answer (RFC 8555 6.2)


# --- JWS header rules -------------------------------------------------------------------------------

# RFC 8555 6.2: RS256 MUST be supported, ES256 SHOULD; "none" and MACs are never acceptable for requests.
ALLOWED_ALGS: tuple[str, ...] = ("RS256", "ES256", "ES384")
# Which key type (JWK "kty" and curve) each algorithm signs with (RFC 7518 3.3, 3.4).
ALG_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
}
# RFC 8555 7.3.4: the binding is MAC-signed with the credential's key.
EAB_ALGS: tuple[str, ...] = ("HS256", "HS384", "HS512")


def check_alg_listed(alg: object) -> None:
    """RFC 8555 6.2: never "none", never a MAC; only the listed public-key algorithms (badSignatureAlgorithm)."""
    if alg not in ALLOWED_ALGS:
        raise AcmeRefusal(
            ProblemType.BAD_SIGNATURE_ALGORITHM,
            f"JWS algorithm {alg!r} is not accepted",
            rule="RFC 8555 6.2",
            value=alg,
            algorithms=ALLOWED_ALGS,
        )


def check_alg(alg: str, kty: str, crv: str | None) -> None:
    """RFC 8555 6.2: the algorithm is one we accept and fits the key that signed (badSignatureAlgorithm)."""
    check_alg_listed(alg)
    if ALG_KEY_TYPES[alg] != (kty, crv):
        raise AcmeRefusal(
            ProblemType.BAD_SIGNATURE_ALGORITHM,
            f"JWS algorithm {alg} does not match the {kty} {crv or ''} key".replace("  ", " "),
            rule="RFC 8555 6.2",
            value=alg,
            algorithms=ALLOWED_ALGS,
        )


def check_key_locator(*, has_jwk: bool, has_kid: bool, jwk_allowed: bool) -> None:
    """RFC 8555 6.2: exactly one of "jwk" and "kid"; "jwk" only where no account exists yet (malformed)."""
    if has_jwk == has_kid:
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            "the protected header must carry exactly one of jwk and kid",
            rule="RFC 8555 6.2",
            value="jwk and kid" if has_jwk else "neither",
        )
    if has_jwk and not jwk_allowed:
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            "this resource takes a kid (account URL), not a jwk",
            rule="RFC 8555 6.2",
            value="jwk",
        )
    if has_kid and jwk_allowed:
        raise AcmeRefusal(
            ProblemType.MALFORMED, "this resource takes a jwk, not a kid", rule="RFC 8555 6.2", value="kid"
        )


def check_url(signed_url: str | None, request_url: str) -> None:
    """RFC 8555 6.4: the protected "url" is the URL the request was sent to (unauthorized)."""
    if signed_url != request_url:
        raise AcmeRefusal(
            ProblemType.UNAUTHORIZED,
            f"the JWS url {signed_url!r} is not this resource's URL",
            status=403,
            rule="RFC 8555 6.4",
            value=signed_url,
        )


def nonce_live(expires_at: datetime, now: datetime) -> bool:
    """RFC 8555 6.5: a nonce is good until the server's lifetime for it ends."""
    return now < expires_at


# The directory's meta.profiles (draft-aaron-acme-profiles 3): one per e-Cert (Server) certificate type.
PROFILE_DESCRIPTIONS: dict[str, str] = {
    "server": "e-Cert (Server): organisation validated (OV), one name",
    "multi": 'e-Cert (Server) with "Multi-domain" Feature: OV, the server name and additional names',
    "wildcard": 'e-Cert (Server) with "Wildcard" Feature: OV, one wildcard name (dns-01 only)',
    "ev": "EV e-Cert (Server): extended validation (EV), one name",
    "ev_multi": 'EV e-Cert (Server) with "Multi-domain" Feature: EV, the server name and additional names',
}


# --- accounts ---------------------------------------------------------------------------------------


class AccountStatus(enum.StrEnum):
    """RFC 8555 7.1.6: the states of an account."""

    VALID = "valid"
    DEACTIVATED = "deactivated"  # by its holder (RFC 8555 7.3.6)
    REVOKED = "revoked"  # by the CA, e.g. when the application behind it is closed


class AccountAction(enum.StrEnum):
    DEACTIVATE = "deactivate"
    REVOKE = "revoke"


ACCOUNT_TRANSITIONS: dict[tuple[AccountStatus, AccountAction], AccountStatus] = {
    (AccountStatus.VALID, AccountAction.DEACTIVATE): AccountStatus.DEACTIVATED,
    (AccountStatus.VALID, AccountAction.REVOKE): AccountStatus.REVOKED,
}


def account_move(status: str, action: AccountAction) -> tuple[AccountStatus, AccountStatus]:
    """The (from, to) of ``action``; Conflict when the account's state does not allow it (RFC 8555 7.1.6)."""
    source = AccountStatus(status)
    target = ACCOUNT_TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(
            f"an account that is {source.value} cannot {action.value}", rule="RFC 8555 7.1.6", value=source.value
        )
    return source, target


# --- external account binding credentials -----------------------------------------------------------


class EabStatus(enum.StrEnum):
    """An EAB credential: made by the operator, bound once to one account key (RFC 8555 7.3.4)."""

    UNUSED = "unused"
    BOUND = "bound"


class EabAction(enum.StrEnum):
    BIND = "bind"


EAB_TRANSITIONS: dict[tuple[EabStatus, EabAction], EabStatus] = {
    (EabStatus.UNUSED, EabAction.BIND): EabStatus.BOUND,
}


def eab_move(status: str, action: EabAction) -> tuple[EabStatus, EabStatus]:
    source = EabStatus(status)
    target = EAB_TRANSITIONS.get((source, action))
    if target is None:
        raise _eab_unusable(f"the credential is already {source.value}", source.value)
    return source, target


def _eab_unusable(why: str, value: object) -> AcmeRefusal:
    return AcmeRefusal(
        ProblemType.UNAUTHORIZED,
        f"external account binding refused: {why}",
        status=403,
        rule="RFC 8555 7.3.4",
        value=value,
    )


def application_unfit_for_acme(state: str, subscription_end: datetime, now: datetime) -> str | None:
    """Why an application may not get (or bind) EAB credentials, or None: it must stand and be in force.

    Issue 13: an ACME account speaks for one vetted application (BR 3.2.2.1); a rejected application or an
    ended subscription vouches for nobody.
    """
    if state == "rejected":
        return "the application was rejected"
    if now >= subscription_end:
        return f"the subscription ended on {subscription_end.date().isoformat()}"
    return None


def check_eab_alg(alg: str | None) -> None:
    """RFC 8555 7.3.4: the binding is a MAC (HS256/384/512) over the account key (malformed otherwise)."""
    if alg not in EAB_ALGS:
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            f"external account binding algorithm {alg!r} is not a MAC",
            rule="RFC 8555 7.3.4",
            value=alg,
        )


def check_eab_usable(*, status: str, expires_at: datetime, now: datetime) -> None:
    """RFC 8555 7.3.4: a credential binds once, and not after it expired (unauthorized)."""
    if status != EabStatus.UNUSED:
        raise _eab_unusable(f"the credential is already {status}", status)
    if now >= expires_at:
        raise _eab_unusable(f"the credential expired at {expires_at.isoformat()}", expires_at.isoformat())
