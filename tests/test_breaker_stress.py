"""
Concurrency stress of CircuitBreaker: async tasks and plain threads call one
breaker at once while it opens, goes half-open and closes on a virtual clock.
"""

from __future__ import annotations

import itertools
import random
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from buttress import (
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    CircuitStateChanged,
    CountWindow,
    Event,
)
from buttress.testing import FakeClock

START = 1_000.0
"""Clock start: a nonzero origin exposes time measured from 0 by mistake."""

TASKS = 200
CALLS_PER_TASK = 12
THREADS = 4
CALLS_PER_THREAD = 500
MAX_ATTEMPTS = 20_000
"""
Upper bound on one caller's attempts, rejected ones included, which keeps
the test bounded. Callers stop earlier, once their calls were admitted.
"""
PROBE_LIMIT = 2
RESET_TIMEOUT = 1.0

ASYNC_OUTCOMES = ["success"] * 9 + ["failure"] * 4 + ["other", "ignored"] * 2
ASYNC_OUTCOMES += ["cancelled"] * 3
THREAD_OUTCOMES = ["success"] * 9 + ["failure"] * 4 + ["other", "ignored"] * 2


class EventRecorder:
    """
    A listener that keeps every state change it receives, from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.changes: list[CircuitStateChanged] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, CircuitStateChanged):
            with self._lock:
                self.changes.append(event)


class ProbeMonitor:
    """
    Samples ``probes_in_flight`` of a breaker, from any thread, and keeps
    every sample above the limit.
    """

    def __init__(self, breaker: CircuitBreaker, limit: int) -> None:
        self._breaker = breaker
        self._limit = limit
        self._lock = threading.Lock()
        self.max_probes = 0
        self.samples = 0
        self.violations: list[int] = []

    def sample(self) -> None:
        probes = self._breaker.statistics().probes_in_flight
        with self._lock:
            self.samples += 1
            self.max_probes = max(self.max_probes, probes)
            if probes > self._limit:
                self.violations.append(probes)


def settle(outcome: str) -> str:
    """
    Return or raise according to *outcome*, as a protected call would.
    """
    if outcome == "success":
        return "ok"
    if outcome == "failure":
        raise OSError("dependency down")
    if outcome == "ignored":
        raise KeyError("ignored by the breaker")
    if outcome == "other":
        raise ValueError("not a breaker failure")
    raise AssertionError(outcome)


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """
    Let the interpreter switch threads often, so that a thread can be
    preempted between a call's admission and the record of its outcome.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def make_breaker(detection: str, **kwargs: Any) -> CircuitBreaker:
    if detection == "window":
        # A window takes the locked admission path even while closed.
        kwargs["window"] = CountWindow(size=10)
        kwargs["minimum_calls"] = 5
        kwargs["failure_rate_threshold"] = 0.4
    else:
        # Without a window, calls while closed take the lock-free fast path.
        kwargs["failure_threshold"] = 3
    return CircuitBreaker(
        reset_timeout=RESET_TIMEOUT,
        half_open_max_calls=PROBE_LIMIT,
        success_threshold=2,
        failure_on=OSError,
        ignore=KeyError,
        name="db",
        **kwargs,
    )


@pytest.mark.anyio
@pytest.mark.usefixtures("frequent_thread_switches")
@pytest.mark.parametrize("detection", ["consecutive", "window"])
async def test_tasks_and_threads_one_breaker(detection: str) -> None:
    clock = FakeClock(start=START)
    recorder = EventRecorder()
    breaker = make_breaker(detection, clock=clock, listeners=(recorder,))
    monitor = ProbeMonitor(breaker, PROBE_LIMIT)
    # Outcomes as each caller saw them. Async tasks share one counter, and
    # each thread has its own.
    seen_async: Counter[str] = Counter()
    seen_threads = [Counter[str]() for _ in range(THREADS)]
    seen_reasons: Counter[str] = Counter()
    reasons_threads = [Counter[str]() for _ in range(THREADS)]
    thread_errors: list[BaseException] = []

    async def protected(outcome: str) -> str:
        monitor.sample()
        # Stay in flight across a checkpoint, so many calls overlap.
        await anyio.lowlevel.checkpoint()
        return settle(outcome)

    async def cancelled_call() -> None:
        """
        Make a call that blocks forever, and cancel it once it is running.

        Raises:
            CircuitOpen: If the breaker rejected the call.
        """
        entered = anyio.Event()
        rejections: list[CircuitOpen] = []

        async def blocked() -> None:
            monitor.sample()
            entered.set()
            await anyio.sleep_forever()

        async def attempt() -> None:
            try:
                await breaker.acall(blocked)
            except CircuitOpen as exc:
                rejections.append(exc)
                entered.set()

        async with anyio.create_task_group() as group:
            group.start_soon(attempt)
            await entered.wait()
            group.cancel_scope.cancel()
        if rejections:
            raise rejections[0]

    async def task_caller(index: int) -> None:
        rng = random.Random(index)
        admitted = 0
        for _ in range(MAX_ATTEMPTS):
            if admitted == CALLS_PER_TASK:
                break
            outcome = rng.choice(ASYNC_OUTCOMES)
            try:
                if outcome == "cancelled":
                    await cancelled_call()
                else:
                    await breaker.acall(protected, outcome)
            except CircuitOpen as exc:
                outcome = "rejected"
                seen_reasons[exc.reason] += 1
                # Back off as a client would. Sleeping on the fake clock
                # moves its time forward.
                await clock.asleep(exc.retry_after)
            except (OSError, KeyError, ValueError):
                pass
            seen_async[outcome] += 1
            if outcome != "rejected":
                admitted += 1

    def thread_caller(index: int) -> None:
        rng = random.Random(10_000 + index)
        seen = seen_threads[index]
        reasons = reasons_threads[index]
        admitted = 0

        def protected_sync(outcome: str) -> str:
            monitor.sample()
            return settle(outcome)

        try:
            for _ in range(MAX_ATTEMPTS):
                if admitted == CALLS_PER_THREAD:
                    break
                outcome = rng.choice(THREAD_OUTCOMES)
                try:
                    breaker.call(protected_sync, outcome)
                except CircuitOpen as exc:
                    outcome = "rejected"
                    reasons[exc.reason] += 1
                    clock.sleep(exc.retry_after)
                except (OSError, KeyError, ValueError):
                    pass
                seen[outcome] += 1
                if outcome != "rejected":
                    admitted += 1
        except BaseException as exc:
            thread_errors.append(exc)
            raise

    # One async and one sync call are admitted while the breaker is closed
    # and block until every other call has finished.
    slow_async_entered = anyio.Event()
    slow_async_release = anyio.Event()
    slow_sync_entered = threading.Event()
    slow_sync_release = threading.Event()
    slow_results: list[str] = []

    async def slow_async() -> str:
        slow_async_entered.set()
        await slow_async_release.wait()
        return "ok"

    def slow_sync() -> str:
        slow_sync_entered.set()
        if not slow_sync_release.wait(30):
            raise AssertionError("the slow sync call was never released")
        return "ok"

    async def run_slow_async() -> None:
        slow_results.append(await breaker.acall(slow_async))

    def run_slow_sync() -> None:
        slow_results.append(breaker.call(slow_sync))

    # The fail_after only turns a hang, such as a call blocked behind the
    # slow ones, into a failure.
    with anyio.fail_after(30):
        async with anyio.create_task_group() as outer:
            outer.start_soon(run_slow_async)
            outer.start_soon(anyio.to_thread.run_sync, run_slow_sync)
            await slow_async_entered.wait()
            await anyio.to_thread.run_sync(slow_sync_entered.wait, 10)
            assert slow_sync_entered.is_set()

            try:
                async with anyio.create_task_group() as callers:
                    for index in range(TASKS):
                        callers.start_soon(task_caller, index)
                    for index in range(THREADS):
                        callers.start_soon(
                            anyio.to_thread.run_sync, thread_caller, index
                        )

                # Every other call finished while the slow calls were blocked.
                assert slow_results == []
            finally:
                slow_async_release.set()
                slow_sync_release.set()

    stats = breaker.statistics()
    seen = seen_async + sum(seen_threads, Counter[str]())
    reasons = seen_reasons + sum(reasons_threads, Counter[str]())
    # Attempts by the callers, plus the two slow calls.
    calls = sum(seen.values()) + 2
    changes = sorted(recorder.changes, key=lambda change: change.generation)
    pairs = {(change.old, change.new) for change in changes}

    assert thread_errors == []
    assert slow_results == ["ok", "ok"]

    # Every state change was reported exactly once, in an unbroken chain.
    assert len(changes) == stats.generation
    assert [change.generation for change in changes] == list(
        range(1, stats.generation + 1)
    )
    for before, after in itertools.pairwise(changes):
        assert after.old == before.new, (before, after)
    assert changes[0].old == "closed"
    if stats.state is CircuitState.HALF_OPEN:
        # An open breaker whose open duration ended reads half-open before
        # the next admission makes the move.
        assert changes[-1].new in {"open", "half_open"}
    else:
        assert changes[-1].new == stats.state.value
    assert ("closed", "open") in pairs
    assert ("open", "half_open") in pairs
    assert ("half_open", "closed") in pairs
    assert ("half_open", "open") in pairs

    # Probes never exceeded the limit, and the samples did see probes.
    assert monitor.violations == []
    assert monitor.max_probes >= 1
    assert stats.probes_in_flight == 0

    # Every call is counted exactly once. A cancelled call counts as
    # ignored, and an error the breaker does not treat as a failure counts
    # as a success.
    assert stats.successes == seen["success"] + seen["other"] + 2
    assert stats.failures == seen["failure"]
    assert stats.ignored == seen["ignored"] + seen["cancelled"]
    assert stats.rejected == seen["rejected"]
    assert stats.successes + stats.failures + stats.ignored + stats.rejected == calls
    assert seen["cancelled"] >= 1
    assert reasons["open"] >= 1
    assert reasons["half_open_full"] >= 1
    assert reasons.total() == seen["rejected"]

    # The breaker is not stuck: failures open it from any state, and once
    # the open duration ends, two successful probes close it.
    for _ in range(10):
        if breaker.state is CircuitState.OPEN:
            break
        with pytest.raises(OSError, match="dependency down"):
            breaker.call(settle, "failure")
    assert breaker.state is CircuitState.OPEN
    clock.advance(RESET_TIMEOUT)
    assert breaker.call(settle, "success") == "ok"
    assert breaker.call(settle, "success") == "ok"
    assert breaker.statistics().state is CircuitState.CLOSED
