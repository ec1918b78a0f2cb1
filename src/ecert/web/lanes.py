"""Where the blocking part of a request runs: the quick reads of the subscriber API in a lane of their own.

Sync endpoints run in anyio's shared thread pool (``Settings.web_threads`` threads). Under load, reads of a
millisecond or two queued behind, and fought over the GIL with, whatever else the pool ran, and each hop to a
thread and back cost more than the read: at 16 connections the p99 of ``GET /api/v1/application`` was three
times its median (bench/portal.py). Here they go one at a time, in arrival order, through one thread per
event loop: the wait is a queue's, not a scramble's. A read that stalls (the database is gone) holds up only
this lane; the event loop and the shared pool go on.

The lane is a plain queue and thread rather than ``anyio.to_thread.run_sync`` with a limiter of one: the
hop itself cost 170 µs of CPU that way (a cancel scope, a limiter token, a context copy, a worker taken from
the pool) against 85 µs here, on a request whose whole budget is under 2 ms. A lane's thread ends after a
quiet spell, so event loops that come and go (each test client has its own) leave no threads behind.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = ["quick"]

T = TypeVar("T")

_QUIET_SECONDS = 30.0

_Job = tuple[Callable[..., Any], tuple[object, ...], "asyncio.Future[Any]"]


class _Lane:
    """One thread running one event loop's quick reads in arrival order; ends after a quiet spell."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    def submit(self, fn: Callable[..., T], args: tuple[object, ...]) -> asyncio.Future[T]:
        done: asyncio.Future[T] = self._loop.create_future()
        with self._lock:
            self._jobs.put((fn, args, done))
            if not self._running:
                self._running = True
                threading.Thread(target=self._serve, name="ecert-quick-read", daemon=True).start()
        return done

    def _serve(self) -> None:
        while True:
            try:
                fn, args, done = self._jobs.get(timeout=_QUIET_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._running = False
                        return
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request, raised there
                self._hand_back(done, _set_exception, exc)
            else:
                self._hand_back(done, _set_result, result)

    def _hand_back(self, done: asyncio.Future[Any], settle: Callable[..., None], value: object) -> None:
        try:
            self._loop.call_soon_threadsafe(settle, done, value)
        except RuntimeError:  # the event loop has closed: nobody awaits the answer any more
            pass


def _set_result(done: asyncio.Future[Any], value: object) -> None:
    if not done.done():  # the request may have been cancelled (client gone) while the read ran
        done.set_result(value)


def _set_exception(done: asyncio.Future[Any], exc: BaseException) -> None:
    if not done.done():
        done.set_exception(exc)


_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = weakref.WeakKeyDictionary()
_LANES_LOCK = threading.Lock()


def _lane(loop: asyncio.AbstractEventLoop) -> _Lane:
    with _LANES_LOCK:
        found = _LANES.get(loop)
        if found is None:
            found = _LANES[loop] = _Lane(loop)
        return found


async def quick(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` (a short read of the services) in the quick-read lane and return its result."""
    loop = asyncio.get_running_loop()
    return cast(T, await _lane(loop).submit(fn, args))
