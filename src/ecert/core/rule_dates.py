"""Rules that change on a date: the one table of them, each row citing its source.

Every caller passes the instant it cares about; nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

__all__ = [
    "DatedLimit",
    "MAX_VALIDITY_DAYS",
    "DCV_REUSE_DAYS",
    "IDENTITY_REUSE_DAYS",
    "identity_reuse_days",
    "max_validity_days",
    "dcv_reuse_days",
    "email_dcv_status",
    "MPIC_REMOTE_PERSPECTIVES",
    "remote_perspectives_required",
    "BR_VERSION",
]

BR_VERSION = "2.2.2"


@dataclass(frozen=True)
class DatedLimit:
    """A limit that applies to events on or after ``effective``."""

    effective: date
    value: int
    source: str


# BR 6.3.2 (ballot SC-081): maximum subscriber certificate validity, by issuance date.
MAX_VALIDITY_DAYS: tuple[DatedLimit, ...] = (
    DatedLimit(date(2000, 1, 1), 398, "BR 6.3.2 (before SC-081)"),
    DatedLimit(date(2026, 3, 15), 200, "BR 6.3.2 (SC-081)"),
    DatedLimit(date(2027, 3, 15), 100, "BR 6.3.2 (SC-081)"),
    DatedLimit(date(2029, 3, 15), 47, "BR 6.3.2 (SC-081)"),
)

# BR 4.2.1 (ballot SC-081): how long a domain validation may be reused, by the date of reuse.
DCV_REUSE_DAYS: tuple[DatedLimit, ...] = (
    DatedLimit(date(2000, 1, 1), 398, "BR 4.2.1 (before SC-081)"),
    DatedLimit(date(2026, 3, 15), 200, "BR 4.2.1 (SC-081)"),
    DatedLimit(date(2027, 3, 15), 100, "BR 4.2.1 (SC-081)"),
    DatedLimit(date(2029, 3, 15), 10, "BR 4.2.1 (SC-081)"),
)

# BR 4.2.1 (ballot SC-081): how long vetted Subject Identity Information (the organisation) may be reused.
IDENTITY_REUSE_DAYS: tuple[DatedLimit, ...] = (
    DatedLimit(date(2000, 1, 1), 825, "BR 4.2.1 (before SC-081)"),
    DatedLimit(date(2026, 3, 15), 398, "BR 4.2.1 (SC-081)"),
)

# BR 3.2.2.4.4 constructed e-mail: SHOULD NOT from 2026-03-15, MUST NOT from 2028-03-15 (SC-080).
EMAIL_DCV_DISCOURAGED = date(2026, 3, 15)
EMAIL_DCV_FORBIDDEN = date(2028, 3, 15)

# BR 3.2.2.9 multi-perspective issuance corroboration: remote perspectives required by date.
MPIC_REMOTE_PERSPECTIVES: tuple[DatedLimit, ...] = (
    DatedLimit(date(2025, 3, 15), 2, "BR 3.2.2.9 (phase 1, not yet blocking)"),
    DatedLimit(date(2025, 9, 15), 2, "BR 3.2.2.9"),
    DatedLimit(date(2026, 3, 15), 3, "BR 3.2.2.9"),
    DatedLimit(date(2026, 6, 15), 4, "BR 3.2.2.9"),
    DatedLimit(date(2026, 12, 15), 5, "BR 3.2.2.9"),
)


def _as_date(when: date | datetime) -> date:
    return when.date() if isinstance(when, datetime) else when


def _lookup(table: tuple[DatedLimit, ...], when: date | datetime) -> DatedLimit:
    day = _as_date(when)
    current = table[0]
    for row in table:
        if day >= row.effective:
            current = row
    return current


def max_validity_days(when: date | datetime) -> int:
    """The BR 6.3.2 cap, in days, for a certificate issued at ``when``."""
    return _lookup(MAX_VALIDITY_DAYS, when).value


def dcv_reuse_days(when: date | datetime) -> int:
    """The BR 4.2.1 reuse period, in days, for a validation reused at ``when``."""
    return _lookup(DCV_REUSE_DAYS, when).value


def identity_reuse_days(when: date | datetime) -> int:
    """How many days an organisation's vetting may be relied on at ``when`` (BR 4.2.1)."""
    return _lookup(IDENTITY_REUSE_DAYS, when).value


def email_dcv_status(when: date | datetime) -> str:
    """'allowed', 'discouraged' (SHOULD NOT) or 'forbidden' (MUST NOT) for constructed e-mail DCV."""
    day = _as_date(when)
    if day >= EMAIL_DCV_FORBIDDEN:
        return "forbidden"
    if day >= EMAIL_DCV_DISCOURAGED:
        return "discouraged"
    return "allowed"


def remote_perspectives_required(when: date | datetime) -> int:
    """How many remote network perspectives BR 3.2.2.9 requires at ``when``."""
    return _lookup(MPIC_REMOTE_PERSPECTIVES, when).value
