"""How many log-in tries are left, and until when log-in is suspended: one pure rule for both limits.

BR 5.4.1(3) asks that failed access attempts be logged; the Network and Certificate System Security
Requirements (NSR 3) ask that an account be locked after repeated failed attempts. ecert counts failures in
a sliding window: at most ``max_failures`` in any ``window``. The same rule serves the per-reference limit
and the per-address limit, and it is a function of the recorded failures only, so a reference number that
exists and one that does not get exactly the same count, the same lock and the same end of lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["LockState", "lock_state", "minutes_until"]


@dataclass(frozen=True)
class LockState:
    """``tries_left`` before the lock; ``locked_until`` the instant log-in opens again (None: not locked)."""

    tries_left: int
    locked_until: datetime | None


def lock_state(failures: Sequence[datetime], *, now: datetime, max_failures: int, window: timedelta) -> LockState:
    """The lock after ``failures`` (times of counted failures, any order) as seen at ``now``.

    Locked while ``max_failures`` or more failures lie inside the last ``window``; the lock ends when the
    oldest of the failures that made it leaves the window. Attempts refused during a lock are not failures
    (the caller does not record them), so retrying while locked never lengthens the lock.
    """
    recent = sorted(at for at in failures if at > now - window)
    if len(recent) < max_failures:
        return LockState(tries_left=max_failures - len(recent), locked_until=None)
    return LockState(tries_left=0, locked_until=recent[len(recent) - max_failures] + window)


def minutes_until(moment: datetime, now: datetime) -> int:
    """Whole minutes until ``moment``, rounded up and at least one (what a person is told to wait)."""
    seconds = (moment - now).total_seconds()
    return max(1, -(-int(seconds) // 60))
