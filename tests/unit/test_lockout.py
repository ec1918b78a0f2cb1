"""The one lock-out rule (core/lockout.py): tries left, when a lock starts and when it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecert.core.lockout import LockState, lock_state, minutes_until

NOW = datetime(2027, 3, 15, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=30)


def _ago(*minutes: float) -> list[datetime]:
    return [NOW - timedelta(minutes=m) for m in minutes]


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ([], LockState(5, None)),
        (_ago(1), LockState(4, None)),
        (_ago(1, 2, 3, 4), LockState(1, None)),
        # Five inside the window: locked until the oldest of them leaves it.
        (_ago(0, 1, 2, 3, 4), LockState(0, NOW - timedelta(minutes=4) + WINDOW)),
        # Failures older than the window no longer count.
        (_ago(1, 2, 3, 4, 31, 45), LockState(1, None)),
        (_ago(29, 1, 2, 3, 4), LockState(0, NOW + timedelta(minutes=1))),
        # Six (two racing requests): the lock ends when fewer than five remain.
        (_ago(0, 1, 2, 3, 4, 5), LockState(0, NOW - timedelta(minutes=4) + WINDOW)),
    ],
)
def test_lock_state(failures: list[datetime], expected: LockState) -> None:
    assert lock_state(failures, now=NOW, max_failures=5, window=WINDOW) == expected


def test_the_lock_opens_by_itself_when_its_time_is_up() -> None:
    failures = _ago(0, 0, 0, 0, 0)
    until = lock_state(failures, now=NOW, max_failures=5, window=WINDOW).locked_until
    assert until == NOW + WINDOW
    assert lock_state(failures, now=until, max_failures=5, window=WINDOW) == LockState(5, None)


@pytest.mark.parametrize(("seconds", "minutes"), [(1, 1), (59, 1), (60, 1), (61, 2), (1800, 30), (-5, 1)])
def test_minutes_are_rounded_up(seconds: int, minutes: int) -> None:
    assert minutes_until(NOW + timedelta(seconds=seconds), NOW) == minutes
