"""
Virtual-time event loops for tests of timeouts that anyio enforces.

anyio measures `anyio.move_on_after` and `anyio.fail_after` on the event
loop's own clock, so an injected `buttress.testing.FakeClock` cannot shorten
them. On trio, `trio.testing.MockClock` with ``autojump_threshold=0`` makes
that clock virtual. `VirtualTimeEventLoop` does the same for asyncio.

On both, time jumps to the next timer as soon as every task is blocked. A
worker thread that is still running does not hold the jump back, so use
these loops only where the blocking function waits until the test releases
it: a call that is meant to finish before its timeout would race the jump.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from typing import Any

import pytest
from trio.testing import MockClock


class _JumpingSelector(selectors.DefaultSelector):
    """
    A selector that moves virtual time forward instead of blocking on a
    finite timeout.
    """

    def __init__(self, advance: Callable[[float], None]) -> None:
        super().__init__()
        self._advance = advance

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None or timeout <= 0:
            # No timer is pending (wait for real I/O, such as a wake-up from
            # a worker thread), or the loop has work ready (just poll).
            return super().select(timeout)
        ready = super().select(0)
        if ready:
            return ready
        self._advance(timeout)
        return []


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """
    An asyncio event loop whose `time` is virtual and starts at 0.

    When the loop would block until its next timer and no I/O is ready, it
    moves its time forward to that timer instead of waiting. Time never
    moves while a callback is ready to run. With no timer pending, the loop
    waits for I/O in real time, so notifications from other threads arrive
    as usual.
    """

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_JumpingSelector(self._advance))

    def time(self) -> float:
        return self._virtual_now

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def virtual_time_backends() -> list[Any]:
    """
    Return ``anyio_backend`` parameters for asyncio and trio in virtual time.

    Use it as ``@pytest.mark.parametrize("anyio_backend",
    virtual_time_backends())`` on a test that needs virtual time for
    timeouts; each call makes a new trio clock.
    """
    return [
        pytest.param(("asyncio", {"loop_factory": VirtualTimeEventLoop}), id="asyncio"),
        pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio"),
    ]
