"""
Helpers shared by the executor and Guard tests: a gate that holds calls in
their worker threads, an executor that is always shut down, and polling of
an executor's statistics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio

from buttress import BoundedExecutor, ExecutorStatistics


class Gate:
    """
    A blocking function that waits until the test opens the gate, and
    counts how many calls are inside it.
    """

    def __init__(self) -> None:
        self.opened = threading.Event()
        self._condition = threading.Condition()
        self.entered = 0

    def __call__(self, value: Any = None) -> Any:
        with self._condition:
            self.entered += 1
            self._condition.notify_all()
        if not self.opened.wait(30):
            raise AssertionError("the gate was never opened")
        return value

    def wait_entered(self, count: int) -> None:
        with self._condition:
            if not self._condition.wait_for(lambda: self.entered >= count, 10):
                raise AssertionError(f"only {self.entered} of {count} calls started")

    def open(self) -> None:
        self.opened.set()


@contextmanager
def executor(**kwargs: Any) -> Iterator[BoundedExecutor]:
    """
    Yield a `BoundedExecutor` without listeners, shut down on exit.
    """
    kwargs.setdefault("listeners", ())
    pool = BoundedExecutor(**kwargs)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, timeout=10)


def wait_for_stats(
    pool: BoundedExecutor, predicate: Callable[[ExecutorStatistics], bool]
) -> ExecutorStatistics:
    """
    Poll the statistics from a plain thread until *predicate* holds, for at
    most 10 seconds of real time.
    """
    deadline = time.monotonic() + 10.0
    while True:
        stats = pool.statistics()
        if predicate(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"statistics never matched: {stats}")
        time.sleep(0.001)


async def await_stats(
    pool: BoundedExecutor, predicate: Callable[[ExecutorStatistics], bool]
) -> ExecutorStatistics:
    """
    Poll the statistics from a task until *predicate* holds, for at most 10
    seconds of the event loop's time.
    """
    with anyio.fail_after(10):
        while True:
            stats = pool.statistics()
            if predicate(stats):
                return stats
            await anyio.sleep(0.001)
