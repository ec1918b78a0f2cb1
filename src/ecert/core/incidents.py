"""Incidents and mass replacement: the revocation deadline rule and the life of an affected certificate.

Pure: ``now`` and the times the operator gives are passed in; the services layer applies each move with a
compare-and-set on the stored state.

    incident:     open ──close──▶ closed          (only once nothing is left to revoke)
    certificate:  pending ──replaced──▶ replaced ──revoked──▶ revoked
                     │                    │
                     ├──revoked───────────┼──────▶ revoked   (at the deadline, or by anyone earlier)
                     └──expired───────────┴──────▶ expired   (BR 4.9.1.1 asks nothing of an expired one)
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from .errors import Conflict, PolicyViolation

__all__ = [
    "MISISSUANCE_REVOCATION_PERIOD",
    "DEADLINE_MARGIN",
    "AffectedAction",
    "AffectedState",
    "IncidentAction",
    "IncidentState",
    "AFFECTED_TRANSITIONS",
    "INCIDENT_TRANSITIONS",
    "OPEN_AFFECTED_STATES",
    "affected_transition",
    "default_deadline",
    "incident_transition",
    "check_revocation_deadline",
]

# BR 4.9.1.1: a certificate not issued in accordance with the BR or the CP/CPS is revoked within 5 days of
# the CA being made aware of it.
MISISSUANCE_REVOCATION_PERIOD = timedelta(days=5)
# Time the jobs need at the deadline to revoke a large batch and republish CRLs and OCSP before the 5 days end.
DEADLINE_MARGIN = timedelta(hours=1)


class IncidentState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class IncidentAction(enum.StrEnum):
    CLOSE = "close"


class AffectedState(enum.StrEnum):
    """Where one certificate of an incident stands (``incident_certificates.state``)."""

    PENDING = "pending"  # not replaced yet, not revoked yet
    REPLACED = "replaced"  # the subscriber has a newer certificate; this one is still revoked at the deadline
    REVOKED = "revoked"
    EXPIRED = "expired"  # expired before the deadline: nothing to revoke


class AffectedAction(enum.StrEnum):
    REPLACED = "replaced"
    REVOKED = "revoked"
    EXPIRED = "expired"


INCIDENT_TRANSITIONS: dict[tuple[IncidentState, IncidentAction], IncidentState] = {
    (IncidentState.OPEN, IncidentAction.CLOSE): IncidentState.CLOSED,
}

AFFECTED_TRANSITIONS: dict[tuple[AffectedState, AffectedAction], AffectedState] = {
    (AffectedState.PENDING, AffectedAction.REPLACED): AffectedState.REPLACED,
    (AffectedState.PENDING, AffectedAction.REVOKED): AffectedState.REVOKED,
    (AffectedState.REPLACED, AffectedAction.REVOKED): AffectedState.REVOKED,
    (AffectedState.PENDING, AffectedAction.EXPIRED): AffectedState.EXPIRED,
    (AffectedState.REPLACED, AffectedAction.EXPIRED): AffectedState.EXPIRED,
}

# Certificates that still need something done: revoked at the deadline, and marked for replacement (ARI).
OPEN_AFFECTED_STATES = frozenset({AffectedState.PENDING, AffectedState.REPLACED})


def incident_transition(state: IncidentState | str, action: IncidentAction) -> IncidentState:
    source = IncidentState(state)
    target = INCIDENT_TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(f"an incident that is {source.value} cannot be {action.value}d", value=source.value)
    return target


def affected_transition(state: AffectedState | str, action: AffectedAction) -> AffectedState:
    source = AffectedState(state)
    target = AFFECTED_TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(
            f"an affected certificate that is {source.value} cannot become {action.value}", value=source.value
        )
    return target


def default_deadline(aware_at: datetime) -> datetime:
    """The latest deadline the jobs can keep: 5 days after the CA became aware, less the working margin."""
    return aware_at + MISISSUANCE_REVOCATION_PERIOD - DEADLINE_MARGIN


def check_revocation_deadline(deadline: datetime, *, aware_at: datetime, now: datetime) -> None:
    """Refuse a revocation deadline outside BR 4.9.1.1's 5 days (less the margin the jobs need) or in the past.

    The clock starts when the CA was made aware of the problem, which may be before the incident is opened.
    """
    for label, value in (("deadline", deadline), ("aware-at", aware_at)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PolicyViolation(f"the {label} must carry a time zone", value=value.isoformat())
    if aware_at > now:
        raise PolicyViolation("the CA cannot become aware of a problem in the future", value=aware_at.isoformat())
    latest = default_deadline(aware_at)
    # BR 4.9.1.1 (item 4 of the subscriber list: not issued in accordance with the BR or the CP/CPS): 5 days.
    if deadline > latest:
        raise PolicyViolation(
            f"the revocation deadline {deadline.isoformat()} is later than 5 days after the CA became aware "
            f"({aware_at.isoformat()}), less {DEADLINE_MARGIN} for the jobs to revoke and republish; "
            f"use {latest.isoformat()} or earlier",
            rule="BR 4.9.1.1",
            value=deadline.isoformat(),
        )
    if deadline <= now:
        raise PolicyViolation(
            "the revocation deadline is in the past; give a future time", rule="BR 4.9.1.1", value=deadline.isoformat()
        )
