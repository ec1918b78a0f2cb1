"""The quick-read lane: one thread per event loop, in arrival order, errors handed back, no threads left behind."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ecert.web import lanes


def _lane_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ecert-quick-read"]


def test_reads_run_one_at_a_time_in_arrival_order_off_the_event_loop() -> None:
    seen: list[tuple[int, int]] = []
    loop_thread: list[int] = []

    def read(n: int) -> int:
        seen.append((n, threading.get_ident()))
        time.sleep(0.005)
        return n * 10

    async def main() -> list[int]:
        loop_thread.append(threading.get_ident())
        return list(await asyncio.gather(*(lanes.quick(read, n) for n in range(8))))

    assert asyncio.run(main()) == [n * 10 for n in range(8)]
    assert [n for n, _ in seen] == list(range(8))
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != loop_thread[0]


def test_an_error_in_the_read_reaches_the_request_and_the_lane_goes_on() -> None:
    def fail() -> None:
        raise LookupError("no such session")

    async def main() -> str:
        with pytest.raises(LookupError, match="no such session"):
            await lanes.quick(fail)
        return await lanes.quick(str, 5)

    assert asyncio.run(main()) == "5"


def test_a_request_cancelled_while_its_read_runs_does_not_stop_the_next() -> None:
    started = threading.Event()

    def slow() -> int:
        started.set()
        time.sleep(0.05)
        return 1

    async def main() -> int:
        task = asyncio.create_task(lanes.quick(slow))
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await lanes.quick(int, "2")

    assert asyncio.run(main()) == 2


def test_a_quiet_lane_ends_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "_QUIET_SECONDS", 0.05)
    before = len(_lane_threads())

    async def main() -> None:
        await lanes.quick(int, "1")

    asyncio.run(main())
    deadline = time.monotonic() + 5
    while len(_lane_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_lane_threads()) <= before
