"""Errors the subscriber tool raises beyond the shared family, each with its exit code."""

from __future__ import annotations

from ecert.core.errors import EcertError

__all__ = ["ClientError", "ChainInvalid", "StillPending", "exit_code_for"]


class ClientError(EcertError):
    """A subscriber-side refusal: bad input file, no matching key, wrong password."""

    code = "client"


class ChainInvalid(EcertError):
    """The certificate chain did not verify; ``reason`` is a stable slug (expired, wrong-host...)."""

    code = "chain-invalid"

    def __init__(self, message: str, *, reason: str, rule: str | None = None, value: object = None) -> None:
        super().__init__(message, rule=rule, value=value)
        self.reason = reason


class StillPending(EcertError):
    """The CA has not finished yet (DCV not passed, certificate not issued); retry later."""

    code = "pending"


def exit_code_for(error: BaseException) -> int:
    """Map an error to the documented exit codes: 1 failure, 3 pending, 4 verification failed."""
    if isinstance(error, ChainInvalid):
        return 4
    if isinstance(error, StillPending):
        return 3
    return 1
