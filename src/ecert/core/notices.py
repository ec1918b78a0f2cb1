"""Expiry notices and other subscriber mail the jobs send: when each is due, and the life of one mail.

Pure: the services layer passes ``now`` in and applies a move with a compare-and-set on the stored state.

    (none) ──claim──▶ sending ──delivered──▶ sent
                         │  ▲
                     failed  └──retry (after RECLAIM_AFTER)── failed / stale sending
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from .errors import Conflict

__all__ = [
    "EXPIRY_THRESHOLD_DAYS",
    "RECLAIM_AFTER",
    "MailAction",
    "MailState",
    "MAIL_TRANSITIONS",
    "due_threshold",
    "mail_transition",
]

# The days before notAfter at which a subscriber hears that a certificate expires (issue 10, point 18).
EXPIRY_THRESHOLD_DAYS: tuple[int, ...] = (30, 14, 3)

# A claim older than this is taken again: the worker that held it died, or the relay refused the mail.
RECLAIM_AFTER = timedelta(minutes=15)


class MailState(enum.StrEnum):
    """Where one outgoing notice stands; stored as text in ``expiry_notices.state`` and ``incident_certificates``."""

    PENDING = "pending"  # nothing sent yet (incident mail waiting for its first attempt)
    SENDING = "sending"  # claimed by one worker, which is talking to the relay now
    SENT = "sent"  # the relay took it
    FAILED = "failed"  # the relay refused or could not be reached; retried after RECLAIM_AFTER


class MailAction(enum.StrEnum):
    CLAIM = "claim"
    DELIVERED = "delivered"
    FAILED = "failed"


MAIL_TRANSITIONS: dict[tuple[MailState, MailAction], MailState] = {
    (MailState.PENDING, MailAction.CLAIM): MailState.SENDING,
    (MailState.FAILED, MailAction.CLAIM): MailState.SENDING,
    # Only when the claim is older than RECLAIM_AFTER (the worker died between claim and delivery).
    (MailState.SENDING, MailAction.CLAIM): MailState.SENDING,
    (MailState.SENDING, MailAction.DELIVERED): MailState.SENT,
    (MailState.SENDING, MailAction.FAILED): MailState.FAILED,
}


def mail_transition(state: MailState | str, action: MailAction) -> MailState:
    """The state ``action`` leads to from ``state``; Conflict if the move is not in the table."""
    source = MailState(state)
    target = MAIL_TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(f"a notice that is {source.value} cannot be {action.value}", value=source.value)
    return target


def due_threshold(
    not_after: datetime, now: datetime, thresholds: tuple[int, ...] = EXPIRY_THRESHOLD_DAYS
) -> int | None:
    """The threshold (in days) whose notice is due now, or None.

    The due notice is the most urgent threshold already reached: a certificate with 10 days left is due
    its 14-day notice, never a late 30-day one. An expired certificate gets none.
    """
    if now.tzinfo is None or not_after.tzinfo is None:
        raise ValueError("due_threshold needs timezone-aware times")
    left = not_after - now
    if left <= timedelta(0):
        return None
    reached = [days for days in thresholds if left <= timedelta(days=days)]
    return min(reached) if reached else None
