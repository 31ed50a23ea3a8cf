"""
Monotonic clocks, sleepers and the deadline visible to running calls.

Every duration in buttress is read from and slept on a `Clock`, so tests can
swap in `buttress.testing.FakeClock` and run any schedule in virtual time.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import anyio
import attrs

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "SystemClock",
    "deadline_scope",
    "time_remaining",
]


@runtime_checkable
class Clock(Protocol):
    """
    A monotonic time source with matching sync and async sleeps.

    All values are float seconds. ``monotonic()`` never goes backwards.
    """

    def monotonic(self) -> float:
        """
        Return the current time in seconds from an arbitrary origin.
        """
        ...

    def sleep(self, seconds: float) -> None:
        """
        Block the calling thread for *seconds*.
        """
        ...

    async def asleep(self, seconds: float) -> None:
        """
        Suspend the calling task for *seconds*.
        """
        ...


@attrs.frozen
class SystemClock:
    """
    The real clock: `time.monotonic`, `time.sleep` and `anyio.sleep`.
    """

    # The builtins themselves, so a bound lookup costs no Python frame.
    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


# The deadline in force: the clock it is measured on and the absolute time.
# A plain tuple, because it is set on every call's fast path.
_current_deadline: contextvars.ContextVar[tuple[Clock, float] | None] = (
    contextvars.ContextVar("buttress_deadline", default=None)
)


def time_remaining() -> float | None:
    """
    Return the seconds left before the current call's deadline.

    A function running under a `buttress.RetryPolicy` or `buttress.Guard`
    with a deadline sees it here, also inside an executor's worker thread,
    so it can bound its own socket timeouts. The value is never negative.

    Returns:
        Seconds left, or ``None`` when no deadline applies.
    """
    deadline = _current_deadline.get()
    if deadline is None:
        return None
    clock, at = deadline
    return max(0.0, at - clock.monotonic())


def current_deadline() -> tuple[Clock, float] | None:
    """
    Return the clock and absolute time of the current deadline, if any.
    """
    return _current_deadline.get()


@contextmanager
def deadline_scope(clock: Clock, at: float | None) -> Iterator[None]:
    """
    Make *at* the deadline seen by `time_remaining` inside the block.

    An enclosing deadline that ends earlier stays in force, so nesting only
    ever shortens the time left.
    """
    if at is None:
        yield
        return
    outer = _current_deadline.get()
    if outer is not None and outer[0] is clock and outer[1] <= at:
        yield
        return
    token = _current_deadline.set((clock, at))
    try:
        yield
    finally:
        _current_deadline.reset(token)
