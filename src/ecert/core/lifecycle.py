"""The status machines of a certificate and of an issuance record: which move may follow which.

Pure, like ``core.application``: the store applies a move with one compare-and-set
(``UPDATE ... WHERE status = :source``), so two racing writers cannot both win, and a move this table
does not list is refused before it reaches the database.

Certificate::

    signing ──signed──▶ issued ──accept──▶ accepted ──revoke──▶ revoked
       │                  │  └──revoke──▶ revoked
       │                  └──reject──▶ rejected (revoked at once: seed C.6)
       ├──signed_accepted──▶ accepted     (paths without the seed's Accept step: operator, ACME)
       ├──fail──▶ failed                  (signing failed, signed but not stored, abandoned by a crash)
       └──revoke──▶ revoked               (CT: a precertificate was signed but no final certificate follows)

Issuance record::

    intent ──lint──▶ linted ──store──▶ stored
       └──fail──▶ failed ◀──fail──┘
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import Conflict

__all__ = [
    "CertStatus",
    "CertAction",
    "RecordState",
    "RecordAction",
    "CERT_TRANSITIONS",
    "RECORD_TRANSITIONS",
    "LIVE_STATUSES",
    "SIGNED_STATUSES",
    "CertMove",
    "RecordMove",
    "cert_move",
    "record_move",
]


class CertStatus(enum.StrEnum):
    SIGNING = "signing"  # reserved before the signature; no DER yet
    ISSUED = "issued"  # signed, waiting for the subscriber's Accept or Reject
    ACCEPTED = "accepted"  # accepted (or issued where no acceptance step exists); public and downloadable
    REJECTED = "rejected"  # rejected by the subscriber; revoked at once
    REVOKED = "revoked"
    FAILED = "failed"  # never signed, or signed but never stored: it never left the process


class CertAction(enum.StrEnum):
    SIGNED = "signed"
    SIGNED_ACCEPTED = "signed_accepted"
    ACCEPT = "accept"
    REJECT = "reject"
    REVOKE = "revoke"
    FAIL = "fail"


CERT_TRANSITIONS: dict[tuple[CertStatus, CertAction], CertStatus] = {
    (CertStatus.SIGNING, CertAction.SIGNED): CertStatus.ISSUED,
    (CertStatus.SIGNING, CertAction.SIGNED_ACCEPTED): CertStatus.ACCEPTED,
    (CertStatus.SIGNING, CertAction.FAIL): CertStatus.FAILED,
    # A logged precertificate whose final certificate will never be issued: its serial is revoked, since a
    # precertificate is a promise to issue (RFC 6962 3.1; BR 7.1.2.9). The row then holds the precertificate.
    (CertStatus.SIGNING, CertAction.REVOKE): CertStatus.REVOKED,
    (CertStatus.ISSUED, CertAction.ACCEPT): CertStatus.ACCEPTED,
    (CertStatus.ISSUED, CertAction.REJECT): CertStatus.REJECTED,
    (CertStatus.ISSUED, CertAction.REVOKE): CertStatus.REVOKED,
    (CertStatus.ACCEPTED, CertAction.REVOKE): CertStatus.REVOKED,
}

# Signed certificates that are not revoked: what CRL/OCSP answer "good" for, what may be revoked.
LIVE_STATUSES = frozenset({CertStatus.ISSUED, CertStatus.ACCEPTED})
# Every status whose row carries a DER that left the signer (status services answer for all of them).
SIGNED_STATUSES = frozenset({CertStatus.ISSUED, CertStatus.ACCEPTED, CertStatus.REJECTED, CertStatus.REVOKED})


class RecordState(enum.StrEnum):
    INTENT = "intent"
    LINTED = "linted"
    STORED = "stored"
    FAILED = "failed"


class RecordAction(enum.StrEnum):
    LINT = "lint"
    STORE = "store"
    FAIL = "fail"


RECORD_TRANSITIONS: dict[tuple[RecordState, RecordAction], RecordState] = {
    (RecordState.INTENT, RecordAction.LINT): RecordState.LINTED,
    (RecordState.INTENT, RecordAction.FAIL): RecordState.FAILED,
    (RecordState.LINTED, RecordAction.STORE): RecordState.STORED,
    (RecordState.LINTED, RecordAction.FAIL): RecordState.FAILED,
}


@dataclass(frozen=True)
class CertMove:
    source: CertStatus
    target: CertStatus


@dataclass(frozen=True)
class RecordMove:
    source: RecordState
    target: RecordState


def cert_move(status: CertStatus | str, action: CertAction) -> CertMove:
    """The move ``action`` makes from ``status``; Conflict naming both if the table has no such move."""
    source = CertStatus(status)
    target = CERT_TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(f"a {source.value} certificate cannot be {action.value}", value=source.value)
    return CertMove(source, target)


def record_move(state: RecordState | str, action: RecordAction) -> RecordMove:
    source = RecordState(state)
    target = RECORD_TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(f"an issuance record in state {source.value} cannot {action.value}", value=source.value)
    return RecordMove(source, target)
