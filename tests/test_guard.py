"""
Tests of Guard: the order of the pipeline, deadlines reaching the blocking
function, sync and async entry points, and statistics.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from _executor_helpers import executor
from _virtual_time import virtual_time_backends
from buttress import (
    Backoff,
    BoundedExecutor,
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    DeadlineExceeded,
    Event,
    ExecutorSaturated,
    Guard,
    RetryGaveUp,
    RetryPolicy,
    RetryScheduled,
    time_remaining,
)
from buttress.testing import FakeClock

START = 1_000.0


class Flaky:
    """
    A blocking function that raises on its first *failures* calls.
    """

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.remaining: list[float | None] = []
        self.threads: list[str] = []

    def __call__(self) -> str:
        self.calls += 1
        self.remaining.append(time_remaining())
        self.threads.append(threading.current_thread().name)
        if self.calls <= self.failures:
            raise ConnectionError("dependency down")
        return "ok"


class ActiveAtRetry:
    """
    A retry listener that records how many executor workers are busy when
    a retry sleep is scheduled.
    """

    def __init__(self) -> None:
        self.executor: BoundedExecutor | None = None
        self.active: list[int] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, RetryScheduled) and self.executor is not None:
            self.active.append(self.executor.statistics().active)


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """
    Let the interpreter switch threads as often as it can, so that a race
    between a worker thread and its caller shows up within a few calls.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def make_retry(clock: FakeClock, **kwargs: Any) -> RetryPolicy:
    kwargs.setdefault("attempts", 3)
    kwargs.setdefault("backoff", Backoff.constant(1.0))
    kwargs.setdefault("listeners", ())
    return RetryPolicy(clock=clock, **kwargs)


def make_breaker(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("listeners", ())
    return CircuitBreaker(clock=clock, name="db", **kwargs)


def open_breaker(breaker: CircuitBreaker) -> None:
    def fail() -> None:
        raise ConnectionError("dependency down")

    while breaker.state is not CircuitState.OPEN:
        with pytest.raises(ConnectionError):
            breaker.call(fail)


# -- pipeline order ---------------------------------------------------------------


def test_circuit_open_not_retried() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1)
    open_breaker(breaker)
    flaky = Flaky(0)
    guard = Guard(retry=make_retry(clock, attempts=5), breaker=breaker, clock=clock)

    with pytest.raises(CircuitOpen):
        guard.call(flaky)

    assert flaky.calls == 0
    assert clock.sleeps == []
    assert breaker.statistics().rejected == 1


@pytest.mark.anyio
async def test_run_circuit_open_not_retried() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1)
    open_breaker(breaker)
    flaky = Flaky(0)
    with executor(max_workers=1) as pool:
        guard = Guard(
            retry=make_retry(clock, attempts=5),
            breaker=breaker,
            executor=pool,
            clock=clock,
        )

        with pytest.raises(CircuitOpen):
            await guard.run(flaky)

    assert flaky.calls == 0
    assert clock.sleeps == []


def test_saturation_not_retried_nor_counted() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1)
    release = threading.Event()
    with executor(max_workers=1, queue_size=0) as pool:
        blocker = pool.submit(release.wait, 30)
        guard = Guard(
            retry=make_retry(clock, attempts=5),
            breaker=breaker,
            executor=pool,
            clock=clock,
        )

        with pytest.raises(ExecutorSaturated):
            guard.call(Flaky(0))

        release.set()
        blocker.result(timeout=10)

    stats = breaker.statistics()
    assert clock.sleeps == []
    assert stats.state is CircuitState.CLOSED
    assert stats.failures == 0
    assert stats.ignored == 1


@pytest.mark.usefixtures("frequent_thread_switches")
def test_retry_sleep_holds_no_worker() -> None:
    clock = FakeClock(start=START)
    recorder = ActiveAtRetry()
    with executor(max_workers=1, queue_size=0) as pool:
        recorder.executor = pool
        guard = Guard(
            retry=make_retry(clock, listeners=(recorder,)), executor=pool, clock=clock
        )
        for _ in range(20):
            assert guard.call(Flaky(2)) == "ok"

    assert recorder.active == [0] * 40
    assert clock.sleeps == [1.0] * 40


@pytest.mark.anyio
@pytest.mark.usefixtures("frequent_thread_switches")
async def test_run_retry_sleep_holds_no_worker() -> None:
    clock = FakeClock(start=START)
    recorder = ActiveAtRetry()
    with executor(max_workers=1, queue_size=0) as pool:
        recorder.executor = pool
        guard = Guard(
            retry=make_retry(clock, listeners=(recorder,)), executor=pool, clock=clock
        )
        for _ in range(20):
            assert await guard.run(Flaky(2)) == "ok"

    assert recorder.active == [0] * 40
    assert clock.sleeps == [1.0] * 40


def test_breaker_counts_each_attempt() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=5)
    guard = Guard(retry=make_retry(clock), breaker=breaker, clock=clock)

    assert guard.call(Flaky(2)) == "ok"

    stats = breaker.statistics()
    assert stats.failures == 2
    assert stats.successes == 1
    assert stats.consecutive_failures == 0


def test_breaker_opening_stops_retries() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=2)
    flaky = Flaky(10)
    guard = Guard(retry=make_retry(clock, attempts=5), breaker=breaker, clock=clock)

    with pytest.raises(CircuitOpen):
        guard.call(flaky)

    # Two failures open the breaker; the third attempt is rejected before it
    # reaches the function, and the rejection itself is not retried.
    assert flaky.calls == 2
    assert clock.sleeps == [1.0, 1.0]


# -- deadline -------------------------------------------------------------------


def test_deadline_reaches_worker() -> None:
    clock = FakeClock(start=START)
    flaky = Flaky(2)
    with executor(max_workers=1, name="vault-io") as pool:
        guard = Guard(retry=make_retry(clock), executor=pool, timeout=10.0, clock=clock)

        assert guard.call(flaky) == "ok"

    assert flaky.remaining == [10.0, 9.0, 8.0]
    assert all(name.startswith("vault-io-") for name in flaky.threads)
    assert time_remaining() is None


@pytest.mark.anyio
async def test_run_deadline_reaches_worker() -> None:
    clock = FakeClock(start=START)
    flaky = Flaky(1)
    with executor(max_workers=1, name="vault-io") as pool:
        guard = Guard(retry=make_retry(clock), executor=pool, timeout=10.0, clock=clock)

        assert await guard.run(flaky) == "ok"

    assert flaky.remaining == [10.0, 9.0]
    assert all(name.startswith("vault-io-") for name in flaky.threads)


def test_deadline_stops_retry_sleep() -> None:
    clock = FakeClock(start=START)
    flaky = Flaky(10)
    guard = Guard(
        retry=make_retry(clock, attempts=10, backoff=Backoff.constant(4.0)),
        timeout=10.0,
        clock=clock,
    )

    with pytest.raises(ConnectionError):
        guard.call(flaky)

    assert clock.sleeps == [4.0, 4.0]
    assert flaky.calls == 3


def test_call_timeout() -> None:
    release = threading.Event()
    with executor(max_workers=1) as pool:
        guard = Guard(executor=pool, timeout=0.05)

        with pytest.raises(DeadlineExceeded):
            guard.call(release.wait, 30)

        release.set()


def test_call_deadline_chains_last_error() -> None:
    # The first attempt fails at once; the second is still running when the
    # deadline ends the executor's wait.
    release = threading.Event()
    events: list[Event] = []
    attempts = 0

    def first_fails() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("first attempt")
        release.wait(30)

    retry = RetryPolicy(
        attempts=3, backoff=Backoff.constant(0.001), listeners=[events.append]
    )
    with executor(max_workers=1) as pool:
        guard = Guard(retry=retry, executor=pool, timeout=0.2)

        with pytest.raises(DeadlineExceeded) as timed_out:
            guard.call(first_fails)

        release.set()

    assert isinstance(timed_out.value.__cause__, ConnectionError)
    gave_up = [event for event in events if isinstance(event, RetryGaveUp)]
    assert [event.reason for event in gave_up] == ["deadline"]


def test_call_attempt_timeout_retried() -> None:
    # The first attempt outlives its attempt timeout while the call's own
    # timeout is far away, so it is retried as in async code.
    release = threading.Event()
    events: list[Event] = []
    attempts = 0

    def first_hangs() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            release.wait(30)
        return "ok"

    retry = RetryPolicy(
        attempts=3,
        backoff=Backoff.constant(0.001),
        attempt_timeout=0.1,
        retry_on=TimeoutError,
        listeners=[events.append],
    )
    with executor(max_workers=2) as pool:
        guard = Guard(retry=retry, executor=pool, timeout=30.0)

        assert guard.call(first_hangs) == "ok"

        release.set()

    scheduled = [event for event in events if isinstance(event, RetryScheduled)]
    assert [event.exception_type for event in scheduled] == ["TimeoutError"]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
@pytest.mark.parametrize("with_retry", [False, True], ids=["no-retry", "retry"])
async def test_run_timeout(with_retry: bool) -> None:
    release = threading.Event()
    retry = RetryPolicy(attempts=3, listeners=()) if with_retry else None
    with executor(max_workers=1) as pool:
        guard = Guard(retry=retry, executor=pool, timeout=30.0)

        with pytest.raises(DeadlineExceeded):
            await guard.run(release.wait, 300)

        stats = pool.statistics()
        release.set()

    assert stats.abandoned == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_timeout_without_executor() -> None:
    release = threading.Event()
    guard = Guard(timeout=30.0)

    with pytest.raises(DeadlineExceeded):
        await guard.run(release.wait, 300)

    release.set()


# -- entry points -----------------------------------------------------------------


def test_call_from_threads() -> None:
    inside = 0
    peak = 0
    lock = threading.Lock()

    def work(index: int) -> int:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        threading.Event().wait(0.002)
        with lock:
            inside -= 1
        return index * 2

    with executor(max_workers=2, queue_size=16) as pool:
        guard = Guard(executor=pool)
        with ThreadPoolExecutor(8) as callers:
            results = list(callers.map(lambda i: guard.call(work, i), range(16)))

    assert results == [index * 2 for index in range(16)]
    assert peak <= 2


@pytest.mark.anyio
async def test_run_passes_arguments() -> None:
    def join(*parts: str, separator: str) -> str:
        return separator.join(parts)

    with executor(max_workers=1) as pool:
        guard = Guard(executor=pool)

        assert await guard.run(join, "a", "b", separator="/") == "a/b"


@pytest.mark.anyio
async def test_run_without_executor() -> None:
    assert await Guard().run(threading.current_thread) is not threading.current_thread()


@pytest.mark.anyio
async def test_decorated_async_function() -> None:
    clock = FakeClock(start=START)
    calls = 0

    @Guard(retry=make_retry(clock), clock=clock)
    async def fetch(key: str) -> str:
        nonlocal calls
        calls += 1
        if calls < 2:
            raise ConnectionError("dependency down")
        return key

    assert await fetch("k") == "k"
    assert calls == 2


@pytest.mark.anyio
async def test_offload_runs_in_executor() -> None:
    with executor(max_workers=1, name="vault-io") as pool:
        guard = Guard(executor=pool)
        current_name = guard.offload(lambda: threading.current_thread().name)

        assert (await current_name()).startswith("vault-io-")


def test_invalid_parts_rejected() -> None:
    with pytest.raises(TypeError, match="retry=3"):
        Guard(retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"timeout=-1\.0"):
        Guard(timeout=-1)


# -- statistics -------------------------------------------------------------------


def test_statistics_gathers_parts() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=5)
    with executor(max_workers=3) as pool:
        guard = Guard(
            retry=make_retry(clock), breaker=breaker, executor=pool, clock=clock
        )
        guard.call(Flaky(1))
        stats = guard.statistics()

    assert stats.breaker is not None
    assert stats.breaker.name == "db"
    assert stats.breaker.failures == 1
    assert stats.breaker.successes == 1
    assert stats.executor is not None
    assert stats.executor.max_workers == 3
    assert stats.executor.completed == 1
    assert stats.executor.failed == 1
    assert stats.budget is None


def test_statistics_without_parts() -> None:
    stats = Guard().statistics()

    assert stats.breaker is None
    assert stats.executor is None
    assert stats.budget is None


def test_health_reports_open_breaker() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1)
    guard = Guard(breaker=breaker, clock=clock)

    assert guard.health().healthy

    open_breaker(breaker)
    health = guard.health()

    assert not health.healthy
    assert health.reasons == ("breaker_open",)
