"""The application state machine: which step may follow which, and what the subscriber does next.

Pure: the services layer applies a transition with one compare-and-set ``UPDATE ... WHERE state=:from``
so that two racing requests cannot both win (stack.md, "One certificate per application under races").

    approved ──confirm──▶ confirmed ──validate──▶ validated ──submit_csr──▶ issuing ──signed──▶ issued
        │                                            ▲  ▲                      │   ▲               │  │
        └──reject──▶ rejected                        │  └──issue_failed────────┘   │               │  │
                                                     └────────reject_certificate───┼───────────────┘  │
                                   accepted ◀──accept──────────────────────────────┼──────────────────┘
                                    │  ▲ ▲                                         │
                                    │  │ └──replacement_failed / reject_replacement┤
                                    └──replace (new key, lost key, renewal)────────┘

A plain CSR is taken only once (``validated``); after acceptance a second certificate needs the deliberate
``replace`` action, which states what happens to the current one (issue 10 point 3).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import Conflict

__all__ = [
    "AppState",
    "Action",
    "Step",
    "Move",
    "TRANSITIONS",
    "issue_failed_target",
    "issue_failed_action",
    "reject_action",
    "can",
    "transition",
    "next_step",
    "DCV_STATES",
    "CSR_STATES",
]


class AppState(enum.StrEnum):
    """Where an application stands; stored as the ``applications.state`` text."""

    APPROVED = "approved"  # registered by the RA; the subscriber has not confirmed the data yet
    CONFIRMED = "confirmed"  # data confirmed; domain control not yet shown (seed C.4)
    VALIDATED = "validated"  # every name validated (or exempt); a CSR may be submitted
    ISSUING = "issuing"  # a CSR was taken and the certificate is being signed
    ISSUED = "issued"  # signed; waiting for the subscriber to accept or reject it (seed C.6)
    ACCEPTED = "accepted"  # accepted and published; renewals may follow inside the subscription
    REJECTED = "rejected"  # the subscriber rejected the application data; nothing more happens
    CLOSED = "closed"  # the operator ended the application before its subscription end; nothing more is issued


class Action(enum.StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"
    VALIDATE = "validate"
    SUBMIT_CSR = "submit_csr"
    SIGNED = "signed"
    ISSUE_FAILED = "issue_failed"
    ACCEPT = "accept"
    REJECT_CERTIFICATE = "reject_certificate"
    REPLACE = "replace"
    REPLACEMENT_FAILED = "replacement_failed"
    REJECT_REPLACEMENT = "reject_replacement"
    REOPEN = "reopen"
    CLOSE = "close"


TRANSITIONS: dict[tuple[AppState, Action], AppState] = {
    (AppState.APPROVED, Action.CONFIRM): AppState.CONFIRMED,
    (AppState.APPROVED, Action.REJECT): AppState.REJECTED,
    (AppState.CONFIRMED, Action.VALIDATE): AppState.VALIDATED,
    (AppState.VALIDATED, Action.SUBMIT_CSR): AppState.ISSUING,
    # Replacement (new key, lost key, renewal inside the subscription), a deliberate act (issue 10 point 3).
    (AppState.ACCEPTED, Action.REPLACE): AppState.ISSUING,
    (AppState.ISSUING, Action.SIGNED): AppState.ISSUED,
    # A failed signing returns to where the CSR came from (see issue_failed_action).
    (AppState.ISSUING, Action.ISSUE_FAILED): AppState.VALIDATED,
    (AppState.ISSUING, Action.REPLACEMENT_FAILED): AppState.ACCEPTED,
    (AppState.ISSUED, Action.ACCEPT): AppState.ACCEPTED,
    # After rejecting a certificate the subscriber may submit a new CSR (seed C.6: "state the reasons").
    (AppState.ISSUED, Action.REJECT_CERTIFICATE): AppState.VALIDATED,
    # A rejected replacement leaves the accepted certificate standing.
    (AppState.ISSUED, Action.REJECT_REPLACEMENT): AppState.ACCEPTED,
    # The accepted certificate was revoked (by the subscriber or the operator): a new CSR may follow.
    (AppState.ACCEPTED, Action.REOPEN): AppState.VALIDATED,
    # The operator closes an application (the organisation asked, or its vetting no longer holds); not while a
    # certificate is being signed, so the signature and the closure never race.
    **{
        (state, Action.CLOSE): AppState.CLOSED
        for state in (AppState.APPROVED, AppState.CONFIRMED, AppState.VALIDATED, AppState.ISSUED, AppState.ACCEPTED)
    },
}

# States in which domain control may be (re)shown: before the first CSR and before a renewal.
DCV_STATES = frozenset({AppState.CONFIRMED, AppState.VALIDATED, AppState.ACCEPTED})
# States from which a plain CSR is taken (a replacement starts from ``accepted`` with Action.REPLACE).
CSR_STATES = frozenset({AppState.VALIDATED})

_MESSAGES: dict[Action, str] = {
    Action.CONFIRM: "the application data can only be confirmed once, before anything else",
    Action.REJECT: "the application can only be rejected before it is confirmed",
    Action.VALIDATE: "domain validation is not expected at this step",
    Action.SUBMIT_CSR: "a CSR can be submitted only once, after domain validation; to get another certificate "
    "after accepting one, use Replace certificate",
    Action.SIGNED: "no certificate is being issued for this application",
    Action.ISSUE_FAILED: "no certificate is being issued for this application",
    Action.ACCEPT: "there is no certificate waiting for acceptance",
    Action.REJECT_CERTIFICATE: "there is no certificate waiting for acceptance",
    Action.REPLACE: "a certificate can be replaced only after one was accepted",
    Action.REPLACEMENT_FAILED: "no certificate is being issued for this application",
    Action.REJECT_REPLACEMENT: "there is no certificate waiting for acceptance",
    Action.REOPEN: "a new CSR can follow only once the accepted certificate was revoked",
    Action.CLOSE: "the application can be closed only when it is open and no certificate is being signed",
}


class Step(enum.StrEnum):
    """The page the subscriber should see next (the portal routes on it, one step per page)."""

    CONFIRM = "confirm"
    DCV = "dcv"
    CSR = "csr"
    WAIT = "wait"
    CERTIFICATE = "certificate"
    DOWNLOAD = "download"
    CLOSED = "closed"


_NEXT: dict[AppState, Step] = {
    AppState.APPROVED: Step.CONFIRM,
    AppState.CONFIRMED: Step.DCV,
    AppState.VALIDATED: Step.CSR,
    AppState.ISSUING: Step.WAIT,
    AppState.ISSUED: Step.CERTIFICATE,
    AppState.ACCEPTED: Step.DOWNLOAD,
    AppState.REJECTED: Step.CLOSED,
    AppState.CLOSED: Step.CLOSED,
}


@dataclass(frozen=True)
class Move:
    """One permitted transition, as the services layer applies it (compare-and-set from → to)."""

    source: AppState
    target: AppState


def _state(value: AppState | str) -> AppState:
    try:
        return AppState(value)
    except ValueError:
        raise Conflict(f"unknown application state {value!r}", value=value) from None


def can(state: AppState | str, action: Action) -> bool:
    return (_state(state), action) in TRANSITIONS


def transition(state: AppState | str, action: Action) -> Move:
    """The move ``action`` makes from ``state``; Conflict (HTTP 409) naming the step if it is not allowed."""
    source = _state(state)
    target = TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(f"{_MESSAGES[action]} (the application is {source.value})", value=source.value)
    return Move(source, target)


def issue_failed_target(origin: AppState | str) -> AppState:
    """Where a failed signing returns: to ``accepted`` for a renewal, to ``validated`` otherwise."""
    return AppState.ACCEPTED if _state(origin) is AppState.ACCEPTED else AppState.VALIDATED


def issue_failed_action(origin: AppState | str) -> Action:
    """The move back out of ``issuing`` after a failed signing: to ``accepted`` for a replacement."""
    return Action.REPLACEMENT_FAILED if _state(origin) is AppState.ACCEPTED else Action.ISSUE_FAILED


def reject_action(replacing: bool) -> Action:
    """Rejecting a replacement returns to the accepted certificate; rejecting a first one, to a new CSR."""
    return Action.REJECT_REPLACEMENT if replacing else Action.REJECT_CERTIFICATE


def next_step(state: AppState | str) -> Step:
    return _NEXT[_state(state)]
