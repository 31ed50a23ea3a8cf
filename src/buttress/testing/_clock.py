"""
A virtual clock for testing schedules without waiting.
"""

from __future__ import annotations

import threading

import anyio.lowlevel

from .._validate import check_non_negative

__all__ = ["FakeClock"]


class FakeClock:
    """
    A `buttress.Clock` whose time moves only when something sleeps on it or
    a test calls `advance`.

    Sleeping returns at once after moving the time forward, so a retry
    schedule of minutes runs in microseconds while every deadline and
    reset timeout still sees the time pass. The async sleep is still a
    checkpoint, so cancellation reaches a sleeping task. Safe to share
    between threads.

    Attributes:
        sleeps: Every duration slept, in order, for assertions.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __repr__(self) -> str:
        return f"<FakeClock now={self._now!r}>"

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """
        Move the time forward by *seconds*.
        """
        check_non_negative("FakeClock", "seconds", seconds)
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    async def asleep(self, seconds: float) -> None:
        await anyio.lowlevel.checkpoint()
        self.sleep(seconds)
