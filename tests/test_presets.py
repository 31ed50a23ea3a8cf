"""
Tests of the built-in profiles and the pool sizing helper.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from buttress import PROFILES, Guard, Profile, size_pool
from buttress.testing import FakeClock


@pytest.fixture(params=sorted(PROFILES), ids=str)
def profile(request: pytest.FixtureRequest) -> Profile:
    return PROFILES[request.param]


@pytest.fixture
def profile_guard(profile: Profile) -> Iterator[tuple[Profile, Guard, FakeClock]]:
    clock = FakeClock(start=1_000.0)
    guard = profile.guard(clock=clock)
    try:
        yield profile, guard, clock
    finally:
        assert guard.executor is not None
        guard.executor.shutdown(wait=True, timeout=10)


class Flaky:
    """
    A blocking function that raises on its first *failures* calls.
    """

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.threads: list[str] = []

    def __call__(self) -> str:
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        if self.calls <= self.failures:
            raise ConnectionError("dependency down")
        return "ok"


# -- profiles ---------------------------------------------------------------------


def test_profiles_keyed_by_name() -> None:
    for key, profile in PROFILES.items():
        assert profile.name == key


def test_profile_guard_settings(
    profile_guard: tuple[Profile, Guard, FakeClock],
) -> None:
    profile, guard, _ = profile_guard

    assert guard.retry is not None
    assert guard.retry.attempts == profile.attempts
    assert guard.retry.backoff.initial == profile.initial_backoff
    assert guard.retry.backoff.maximum == profile.max_backoff
    assert guard.retry.backoff.multiplier == profile.backoff_multiplier
    assert guard.timeout == profile.timeout
    assert guard.breaker is not None
    assert guard.breaker.failure_threshold == profile.failure_threshold
    assert guard.breaker.reset_timeout == profile.reset_timeout
    assert guard.breaker.name == profile.name
    stats = guard.statistics().executor
    assert stats is not None
    assert stats.max_workers == profile.max_workers
    assert stats.queue_capacity == profile.max_workers * profile.queue_multiplier
    assert stats.name == f"{profile.name}-worker"


def test_profile_guard_retries(
    profile_guard: tuple[Profile, Guard, FakeClock],
) -> None:
    profile, guard, clock = profile_guard
    flaky = Flaky(profile.attempts - 1)

    assert guard.call(flaky) == "ok"
    assert flaky.calls == profile.attempts
    assert len(clock.sleeps) == profile.attempts - 1
    assert all(0.0 <= delay <= profile.max_backoff for delay in clock.sleeps)
    assert all(name.startswith(f"{profile.name}-worker-") for name in flaky.threads)


def test_profile_guard_gives_up(
    profile_guard: tuple[Profile, Guard, FakeClock],
) -> None:
    profile, guard, _ = profile_guard
    flaky = Flaky(profile.attempts)

    with pytest.raises(ConnectionError):
        guard.call(flaky)

    assert flaky.calls == profile.attempts


@pytest.mark.anyio
async def test_profile_guard_run(
    profile_guard: tuple[Profile, Guard, FakeClock],
) -> None:
    _, guard, _ = profile_guard

    assert await guard.run(Flaky(1)) == "ok"


def test_profile_guard_custom_name() -> None:
    guard = PROFILES["default"].guard(name="billing-db", clock=FakeClock())
    try:
        assert guard.breaker is not None
        assert guard.breaker.name == "billing-db"
        assert guard.executor is not None
        assert guard.executor.name == "billing-db-worker"
    finally:
        assert guard.executor is not None
        guard.executor.shutdown(wait=True, timeout=10)


def test_profile_guards_independent() -> None:
    clock = FakeClock()
    first = PROFILES["default"].guard(clock=clock)
    second = PROFILES["default"].guard(clock=clock)
    try:
        assert first.breaker is not second.breaker
        assert first.executor is not second.executor
    finally:
        for guard in (first, second):
            assert guard.executor is not None
            guard.executor.shutdown(wait=True, timeout=10)


# -- size_pool: workers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "workers"),
    [(1, 2), (2, 3), (3, 5), (7, 11), (10, 15), (66, 99), (67, 100), (500, 100)],
)
def test_size_pool_workers(concurrency: int, workers: int) -> None:
    assert size_pool(concurrency, 0.1).max_workers == workers


def test_size_pool_first_reason() -> None:
    sizing = size_pool(7, 0.1)

    assert sizing.reasons[0] == "7 concurrent operations x 1.5 = 11 workers"


@pytest.mark.parametrize(
    ("memory_mb", "workers"),
    [(16.0, 4), (17.0, 4), (2.0, 1), (0.5, 1), (1_000.0, 15)],
    ids=["quarter", "rounds-down", "tiny", "below-one", "roomy"],
)
def test_size_pool_memory_cap(memory_mb: float, workers: int) -> None:
    assert size_pool(10, 0.1, memory_mb=memory_mb).max_workers == workers


def test_size_pool_memory_reason() -> None:
    sizing = size_pool(10, 0.1, memory_mb=16.0)

    assert "capped at 4" in sizing.reasons[1]
    assert "1 MB of stack per thread" in sizing.reasons[1]
    assert "a quarter of 16 MB" in sizing.reasons[1]


def test_size_pool_memory_no_reason_when_roomy() -> None:
    sizing = size_pool(10, 0.1, memory_mb=1_000.0)

    assert not any("capped" in reason for reason in sizing.reasons)


def test_size_pool_hundred_reason() -> None:
    sizing = size_pool(500, 0.1)

    assert "capped at the maximum of 100 workers" in sizing.reasons


def test_size_pool_memory_then_hundred() -> None:
    # The memory cap applies first; the cap of 100 only if still needed.
    sizing = size_pool(500, 0.1, memory_mb=100_000.0)

    assert sizing.max_workers == 100
    assert len(sizing.reasons) == 3


# -- size_pool: queue -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "latency", "wait", "queue"),
    [
        (7, 0.1, None, 22),
        (4, 0.7, None, 12),
        (2, 0.1, 0.3, 9),
        (2, 0.2, 0.3, 4),
        (10, 0.05, 0.1, 30),
        (1, 1.0, 0.01, 1),
        (1, 0.1, 100.0, 20),
    ],
    ids=[
        "default-wait",
        "default-wait-inexact-float",
        "inexact-float",
        "rounds-down",
        "explicit-wait",
        "at-least-one",
        "at-most-ten-per-worker",
    ],
)
def test_size_pool_queue(
    concurrency: int, latency: float, wait: float | None, queue: int
) -> None:
    assert size_pool(concurrency, latency, max_queue_wait=wait).queue_size == queue


def test_size_pool_queue_reason() -> None:
    sizing = size_pool(2, 0.1, max_queue_wait=0.3)

    assert sizing.reasons[-1] == (
        "queue of 9: what 3 workers drain in 0.300 s at 0.100 s per call, "
        "between 1 and 10 x workers"
    )


def test_size_pool_queue_uses_capped_workers() -> None:
    sizing = size_pool(10, 0.1, memory_mb=8.0)

    assert sizing.max_workers == 2
    assert sizing.queue_size == 4


def test_size_pool_builds_executor() -> None:
    from buttress import BoundedExecutor

    sizing = size_pool(4, 0.05)
    with BoundedExecutor(
        sizing.max_workers, queue_size=sizing.queue_size, listeners=()
    ) as pool:
        stats = pool.statistics()

    assert stats.max_workers == 6
    assert stats.queue_capacity == 12


# -- size_pool: validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "fragment"),
    [
        ((0, 0.1), {}, ValueError, "expected_concurrency=0"),
        ((1.5, 0.1), {}, TypeError, "expected_concurrency=1.5"),
        ((True, 0.1), {}, TypeError, "expected_concurrency=True"),
        ((1, 0.0), {}, ValueError, "call_latency=0.0"),
        ((1, float("inf")), {}, ValueError, "call_latency=inf"),
        ((1, 0.1), {"memory_mb": -1.0}, ValueError, "memory_mb=-1.0"),
        ((1, 0.1), {"max_queue_wait": 0.0}, ValueError, "max_queue_wait=0.0"),
    ],
)
def test_size_pool_invalid_message(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as excinfo:
        size_pool(*args, **kwargs)

    assert "size_pool" in str(excinfo.value)
    assert fragment in str(excinfo.value)
