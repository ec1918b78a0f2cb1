"""The one exception family of ecert; only web/ turns these into problem documents or pages.

Each refusal names the rule it enforces (e.g. "BR 6.1.5") and the offending value, so an
operator or a subscriber can act on the message without reading code.
"""

from __future__ import annotations

__all__ = [
    "EcertError",
    "BadCSR",
    "BadName",
    "BadKey",
    "PolicyViolation",
    "LintFailed",
    "NotFound",
    "Conflict",
    "Unauthorized",
    "Forbidden",
    "RateLimited",
    "LoginRefused",
    "LoginSuspended",
    "ValidationFailed",
    "ConfigError",
    "KeyBackendError",
    "StorageFailure",
    "TransparencyFailed",
]


class EcertError(Exception):
    """Base of every error ecert raises on purpose.

    ``code`` is a stable slug (used as the problem type and in tests), ``rule`` the source of
    the rule (BR/RFC section) and ``value`` the offending input, when there is one.
    """

    code: str = "error"
    status: int = 400

    def __init__(self, message: str, *, rule: str | None = None, value: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.value = value
        # Set by the service that already put this refusal in the audit log, so the edge does not log it twice.
        self.audited = False

    def __str__(self) -> str:
        parts = [self.message]
        if self.rule:
            parts.append(f"({self.rule})")
        return " ".join(parts)


class BadCSR(EcertError):
    """The CSR cannot be used: unparsable, bad signature, forbidden content."""

    code = "bad-csr"


class BadName(EcertError):
    """A domain name breaks a name rule (syntax, public suffix, wildcard, internal name)."""

    code = "bad-name"


class BadKey(EcertError):
    """A public key breaks the key policy (algorithm, size, weakness, blocked)."""

    code = "bad-key"


class PolicyViolation(EcertError):
    """A request conflicts with the profile or the application (names, validity, type)."""

    code = "policy"


class LintFailed(EcertError):
    """The pre-issuance linter found an ERROR or FATAL finding; nothing was signed."""

    code = "lint-failed"
    status = 500


class NotFound(EcertError):
    code = "not-found"
    status = 404


class Conflict(EcertError):
    """The state changed underneath the request (already issued, already rejected...)."""

    code = "conflict"
    status = 409


class Unauthorized(EcertError):
    code = "unauthorized"
    status = 401


class Forbidden(EcertError):
    code = "forbidden"
    status = 403


class RateLimited(EcertError):
    code = "rate-limited"
    status = 429


class LoginRefused(Unauthorized):
    """A wrong log-in. ``tries_left`` counts the attempts this typed reference number has before log-in with
    it is suspended for ``lockout_minutes`` (None when what was typed is no reference number at all)."""

    def __init__(self, message: str, *, tries_left: int | None, lockout_minutes: int) -> None:
        super().__init__(message)
        self.tries_left = tries_left
        self.lockout_minutes = lockout_minutes


class LoginSuspended(RateLimited):
    """Log-in is suspended (too many failures for a reference number or from an address) for ``retry_after``
    more seconds; ``scope`` says which limit: "reference" or "address"."""

    def __init__(self, message: str, *, retry_after: int, scope: str, rule: str | None = None) -> None:
        super().__init__(message, rule=rule)
        self.retry_after = retry_after
        self.scope = scope


class ValidationFailed(EcertError):
    """Domain control validation or CAA did not permit issuance."""

    code = "validation-failed"


class ConfigError(EcertError):
    code = "config"
    status = 500


class KeyBackendError(EcertError):
    """A key backend could not load, create or use a key (wrong passphrase, token absent)."""

    code = "key-backend"
    status = 500


class StorageFailure(EcertError):
    code = "storage"
    status = 500


class TransparencyFailed(EcertError):
    """Certificate Transparency refused: a bad SCT, or too few logs answered to meet the browsers' policy."""

    code = "ct"
    status = 503
