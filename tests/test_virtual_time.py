"""
Tests of the virtual-time asyncio event loop used by the timeout tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
import pytest

from _virtual_time import VirtualTimeEventLoop, virtual_time_backends

T = TypeVar("T")


def run_on_virtual_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = VirtualTimeEventLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_virtual_loop_sleep_jumps():
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(3600)
        return before, loop.time()

    before, after = run_on_virtual_loop(main)

    assert before == 0.0
    assert after >= 3600.0
    assert after < 3600.001


def test_virtual_loop_timers_in_order():
    fired: list[tuple[str, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        for name, delay in (("third", 30.0), ("first", 10.0), ("second", 20.0)):
            loop.call_later(delay, lambda n=name: fired.append((n, loop.time())))
        loop.call_later(40.0, done.set_result, None)
        await done

    run_on_virtual_loop(main)

    assert [name for name, _ in fired] == ["first", "second", "third"]
    assert [round(at, 6) for _, at in fired] == [10.0, 20.0, 30.0]


def test_virtual_loop_no_jump_while_busy():
    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        timer_fired = False

        def fire() -> None:
            nonlocal timer_fired
            timer_fired = True

        loop.call_later(1.0, fire)
        for _ in range(1000):
            await asyncio.sleep(0)
        return timer_fired, loop.time()

    timer_fired, now = run_on_virtual_loop(main)

    assert not timer_fired
    assert now == 0.0


def test_virtual_loop_thread_wakeup():
    # With no timer pending, the loop waits for real I/O, so a result that a
    # plain thread delivers arrives and virtual time stays put.
    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def deliver() -> None:
            loop.call_soon_threadsafe(future.set_result, "from thread")

        worker = threading.Thread(target=deliver)
        worker.start()
        result = await future
        worker.join()
        return result, loop.time()

    result, now = run_on_virtual_loop(main)

    assert result == "from thread"
    assert now == 0.0


def test_virtual_loop_anyio_move_on_after():
    async def main() -> tuple[bool, float]:
        start = anyio.current_time()
        with anyio.move_on_after(100) as scope:
            await anyio.sleep_forever()
        return scope.cancelled_caught, anyio.current_time() - start

    caught, elapsed = anyio.run(
        main, backend="asyncio", backend_options={"loop_factory": VirtualTimeEventLoop}
    )

    assert caught
    assert elapsed == pytest.approx(100.0)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_virtual_backends_fail_after():
    start = anyio.current_time()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(86_400):
            await anyio.sleep_forever()

    assert anyio.current_time() - start == pytest.approx(86_400.0)
