"""Where the blocking part of a request runs: the quick reads of the subscriber API in a lane of their own.

Sync endpoints run in anyio's shared thread pool (``Settings.web_threads`` threads). Under load, reads of a
millisecond or two queued behind, and fought over the GIL with, whatever else the pool ran, and each hop to a
thread and back cost more than the read: at 16 connections the p99 of ``GET /api/v1/application`` was three
times its median (bench/portal.py). Here they go one at a time, in arrival order, through one thread per
event loop: the wait is a queue's, not a scramble's. A read that stalls (the database is gone) holds up only
this lane; the event loop and the shared pool go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

__all__ = ["quick"]

T = TypeVar("T")

_LANE: RunVar[anyio.CapacityLimiter] = RunVar("ecert_quick_read_lane")


def _lane() -> anyio.CapacityLimiter:
    try:
        return _LANE.get()
    except LookupError:
        lane = anyio.CapacityLimiter(1)
        _LANE.set(lane)
        return lane


async def quick(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` (a short read of the services) in the quick-read lane and return its result."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_lane())
