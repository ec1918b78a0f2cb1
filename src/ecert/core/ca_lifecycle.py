"""The status machine of a CA certificate this instance holds: which move may follow which.

Pure, like ``core.lifecycle``: the store applies a move with one compare-and-set, so two operators
(or an operator and the scheduler) cannot both move the same CA, and a move the table does not list
is refused before it reaches the database::

    active ──retire──▶ retired ──revoke──▶ revoked
       └───────────revoke (cACompromise)───────▲

A retired CA issues nothing new but keeps publishing CRL and OCSP for what it issued (seed D, rollover).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import Conflict

__all__ = ["CaStatus", "CaAction", "CA_TRANSITIONS", "CaMove", "ca_move"]


class CaStatus(enum.StrEnum):
    ACTIVE = "active"  # issues (once effective) and publishes status
    RETIRED = "retired"  # rolled over: no new issuance, still publishes status
    REVOKED = "revoked"  # in the root's ARL


class CaAction(enum.StrEnum):
    RETIRE = "retire"
    REVOKE = "revoke"


CA_TRANSITIONS: dict[tuple[CaStatus, CaAction], CaStatus] = {
    (CaStatus.ACTIVE, CaAction.RETIRE): CaStatus.RETIRED,
    (CaStatus.ACTIVE, CaAction.REVOKE): CaStatus.REVOKED,
    (CaStatus.RETIRED, CaAction.REVOKE): CaStatus.REVOKED,
}


@dataclass(frozen=True)
class CaMove:
    source: CaStatus
    target: CaStatus


def ca_move(status: CaStatus | str, action: CaAction) -> CaMove:
    """The move ``action`` makes from ``status``; Conflict naming both if the table has no such move."""
    source = CaStatus(status)
    target = CA_TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(f"a {source.value} CA cannot be {action.value}d", value=source.value)
    return CaMove(source, target)
