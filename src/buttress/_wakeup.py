"""
Backend shim: wake an event-loop task from a worker thread.

anyio has no public primitive for "a plain thread completes a waiter that a
task is awaiting" that avoids a second thread or a blocking round trip, so
this module talks to asyncio and trio directly. It is the only place in
buttress that imports either of them.

A waiter is created in the awaiting task, `notify` is called exactly once
from any thread, and `wait` returns what was passed to `notify`. A wait that
is cancelled may be followed by another wait in the same task. If the event
loop has ended, the notification is dropped.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Protocol

__all__ = ["Waiter", "make_waiter"]

Outcome = tuple[Any, "BaseException | None"]


class Waiter(Protocol):
    def notify(self, result: Any, error: BaseException | None) -> None: ...

    async def wait(self) -> Outcome: ...


class _AsyncioWaiter:
    __slots__ = ("_future", "_loop", "_outcome")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[Outcome] | None = None
        self._outcome: Outcome | None = None

    def notify(self, result: Any, error: BaseException | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._set, result, error)
        except RuntimeError:
            # The loop is closed, so no task is waiting any more.
            pass

    def _set(self, result: Any, error: BaseException | None) -> None:
        self._outcome = (result, error)
        future = self._future
        if future is not None and not future.done():
            future.set_result(self._outcome)

    async def wait(self) -> Outcome:
        # A cancelled wait cancels its future, so each wait gets a new one
        # and a caller may wait again after a timeout.
        if self._outcome is not None:
            return self._outcome
        self._future = self._loop.create_future()
        return await self._future


class _TrioWaiter:
    __slots__ = ("_outcome", "_task", "_token", "_waiting")

    def __init__(self) -> None:
        import trio

        self._token = trio.lowlevel.current_trio_token()
        self._task = trio.lowlevel.current_task()
        self._waiting = False
        self._outcome: Outcome | None = None

    def notify(self, result: Any, error: BaseException | None) -> None:
        import trio

        try:
            self._token.run_sync_soon(self._wake, result, error)
        except trio.RunFinishedError:
            pass

    def _wake(self, result: Any, error: BaseException | None) -> None:
        # Runs in the trio thread, so it never races with `abort`.
        import outcome
        import trio

        self._outcome = (result, error)
        if self._waiting:
            self._waiting = False
            trio.lowlevel.reschedule(self._task, outcome.Value(self._outcome))

    async def wait(self) -> Outcome:
        import trio

        if self._outcome is not None:
            await trio.lowlevel.checkpoint()
            return self._outcome

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._waiting = False
            return trio.lowlevel.Abort.SUCCEEDED

        self._waiting = True
        value: Outcome = await trio.lowlevel.wait_task_rescheduled(abort)
        return value


def _in_trio() -> bool:
    trio = sys.modules.get("trio")
    # While another thread imports trio, the module is in sys.modules
    # before its attributes exist. No trio task can run until the import
    # has finished, so a half-imported trio means "not in trio".
    lowlevel = getattr(trio, "lowlevel", None)
    if lowlevel is None:
        return False
    in_trio_task = getattr(lowlevel, "in_trio_task", None)
    if in_trio_task is not None:
        # trio 0.23 and newer: true exactly when current_task() succeeds,
        # without raising RuntimeError on every asyncio call in a process
        # that has imported trio.
        return bool(in_trio_task())
    try:
        lowlevel.current_task()
    except (RuntimeError, AttributeError):
        return False
    return True


def make_waiter() -> Waiter:
    """
    Return a waiter bound to the current task on asyncio or trio.
    """
    if _in_trio():
        return _TrioWaiter()
    return _AsyncioWaiter()
