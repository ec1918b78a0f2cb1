"""The application state machine: allowed moves, refused moves, and the page each state leads to."""

from __future__ import annotations

import pytest

from ecert.core.application import Action, AppState, Step, can, issue_failed_target, next_step, transition
from ecert.core.errors import Conflict


@pytest.mark.parametrize(
    ("state", "action", "target"),
    [
        ("approved", Action.CONFIRM, "confirmed"),
        ("approved", Action.REJECT, "rejected"),
        ("confirmed", Action.VALIDATE, "validated"),
        ("validated", Action.SUBMIT_CSR, "issuing"),
        ("accepted", Action.REPLACE, "issuing"),  # a deliberate replacement (new key, lost key, renewal)
        ("issuing", Action.REPLACEMENT_FAILED, "accepted"),
        ("issued", Action.REJECT_REPLACEMENT, "accepted"),
        ("accepted", Action.CLOSE, "closed"),  # the operator ends the application; its ACME accounts stop
        ("approved", Action.CLOSE, "closed"),
        ("issuing", Action.SIGNED, "issued"),
        ("issued", Action.ACCEPT, "accepted"),
        ("issued", Action.REJECT_CERTIFICATE, "validated"),
    ],
)
def test_allowed_moves(state: str, action: Action, target: str) -> None:
    assert transition(state, action).target == AppState(target)


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("approved", Action.SUBMIT_CSR),  # no CSR before confirm and DCV
        ("confirmed", Action.SUBMIT_CSR),  # no CSR before DCV
        ("issuing", Action.SUBMIT_CSR),  # a second parallel submit
        ("accepted", Action.SUBMIT_CSR),  # a plain resubmission after Accept: only Replace makes a second certificate
        ("validated", Action.REPLACE),  # nothing accepted yet to replace
        ("issuing", Action.CLOSE),  # never while a certificate is being signed
        ("closed", Action.CONFIRM),
        ("validated", Action.ACCEPT),  # accept after reject
        ("accepted", Action.ACCEPT),
        ("rejected", Action.CONFIRM),
        ("confirmed", Action.REJECT),
    ],
)
def test_refused_moves_are_conflicts(state: str, action: Action) -> None:
    assert not can(state, action)
    with pytest.raises(Conflict, match=state):
        transition(state, action)


def test_unknown_state_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        transition("bogus", Action.CONFIRM)


@pytest.mark.parametrize(
    ("state", "step"),
    [
        ("approved", Step.CONFIRM),
        ("confirmed", Step.DCV),
        ("validated", Step.CSR),
        ("issuing", Step.WAIT),
        ("issued", Step.CERTIFICATE),
        ("accepted", Step.DOWNLOAD),
        ("rejected", Step.CLOSED),
    ],
)
def test_next_step(state: str, step: Step) -> None:
    assert next_step(state) is step


def test_failed_signing_returns_where_it_came_from() -> None:
    assert issue_failed_target("accepted") is AppState.ACCEPTED
    assert issue_failed_target("validated") is AppState.VALIDATED
