"""ACME rate limits (issue 13 point 8): which limits exist, their fixed windows, and what a refusal says.

Pure: the counters live in the database or Redis (store/acme_limits.py); this module only says which
window a moment falls in, how long until it ends, and builds the ``rateLimited`` refusal.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .acme_rules import AcmeRefusal, ProblemType

__all__ = ["Limit", "LimitName", "RateLimitRefusal", "window_start", "retry_after_seconds", "refuse"]


class LimitName(enum.StrEnum):
    """The four limits of issue 13 point 8, each counted per key (an address, an account, a name, an application)."""

    NEW_ACCOUNTS_PER_IP = "new_accounts_per_ip"
    NEW_ORDERS_PER_ACCOUNT = "new_orders_per_account"
    FAILED_VALIDATIONS_PER_NAME = "failed_validations_per_name"  # key: "<account id>:<name>"
    CERTIFICATES_PER_APPLICATION = "certificates_per_application"


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events per ``window`` for one key; a count of 0 turns the limit off."""

    name: LimitName
    count: int
    window: timedelta

    def __post_init__(self) -> None:
        if self.count < 0 or self.window <= timedelta(0):
            raise ValueError(f"limit {self.name.value}: count must be >= 0 and the window positive")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(limit: Limit, now: datetime) -> datetime:
    """The start of the fixed window ``now`` falls in (windows are aligned on the Unix epoch)."""
    step = limit.window.total_seconds()
    elapsed = (now - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(elapsed / step) * step)


def retry_after_seconds(limit: Limit, now: datetime) -> int:
    """RFC 8555 6.6: when a refused client may try again: the end of the current window, at least 1 s."""
    end = window_start(limit, now) + limit.window
    return max(1, math.ceil((end - now).total_seconds()))


class RateLimitRefusal(AcmeRefusal):
    """A ``rateLimited`` refusal that carries its Retry-After (RFC 8555 6.6)."""

    def __init__(self, message: str, *, value: object, retry_after: int) -> None:
        super().__init__(ProblemType.RATE_LIMITED, message, status=429, rule="RFC 8555 6.6", value=value)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}  # web/acme/problems.py sends these with the problem


def refuse(limit: Limit, key: str, now: datetime) -> RateLimitRefusal:
    """The refusal naming the limit, its size and the key it counted (issue 13 point 8)."""
    hours = limit.window.total_seconds() / 3600
    return RateLimitRefusal(
        f"rate limit {limit.name.value}: at most {limit.count} per {hours:g} h for {key}; retry later",
        value=key,
        retry_after=retry_after_seconds(limit, now),
    )
