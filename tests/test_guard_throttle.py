"""
Tests of the Guard's shared throttle: one server-suggested wait slows every
caller of the Guard.
"""

from __future__ import annotations

import anyio
import pytest

import buttress
from buttress.testing import FakeClock


class Throttled(Exception):
    """A stand-in for a rate-limit response that carries Retry-After seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


class HintClassifier:
    def classify(self, exc: BaseException) -> buttress.Verdict:
        if isinstance(exc, Throttled):
            return buttress.Verdict(
                retryable=True, breaker_failure=None, retry_after=exc.retry_after
            )
        return buttress.Verdict(retryable=False, breaker_failure=True)


def make_guard(
    clock: FakeClock, *, attempts: int = 1, **kwargs: object
) -> buttress.Guard:
    return buttress.Guard(
        retry=buttress.RetryPolicy(attempts=attempts, clock=clock, listeners=()),
        classifier=HintClassifier(),
        shared_throttle=True,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def test_retry_waits_for_hint() -> None:
    clock = FakeClock(100.0)
    guard = make_guard(clock, attempts=3)
    failures = [Throttled(2.0)]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert guard.call(flaky) == "ok"
    assert clock.sleeps == [2.0]


def test_throttle_delays_next_caller() -> None:
    clock = FakeClock(100.0)
    guard = make_guard(clock)

    def limited() -> str:
        raise Throttled(2.0)

    with pytest.raises(Throttled):
        guard.call(limited)
    waited_from = clock.monotonic()
    assert guard.call(lambda: "ok") == "ok"
    # The wait, plus up to the retry policy's initial backoff of jitter.
    assert waited_from + 2.0 <= clock.monotonic() <= waited_from + 2.1


def test_throttled_callers_start_apart() -> None:
    clock = FakeClock(100.0)
    guard = make_guard(clock)

    def limited() -> str:
        raise Throttled(2.0)

    waits = []
    for _ in range(20):
        with pytest.raises(Throttled):
            guard.call(limited)
        throttled_from = clock.monotonic()
        guard.call(lambda: None)
        waits.append(clock.monotonic() - throttled_from)

    assert all(2.0 <= wait <= 2.1 for wait in waits)
    assert len(set(waits)) > 1


def test_throttle_in_statistics_and_health() -> None:
    clock = FakeClock(100.0)
    guard = buttress.Guard(
        classifier=HintClassifier(), shared_throttle=True, clock=clock
    )

    def limited() -> str:
        raise Throttled(5.0)

    with pytest.raises(Throttled):
        guard.call(limited)
    assert guard.statistics().throttled_for == pytest.approx(5.0)
    assert guard.health().reasons == ("throttled",)


def test_throttle_past_deadline_fails_at_once() -> None:
    clock = FakeClock(100.0)
    guard = buttress.Guard(
        classifier=HintClassifier(), shared_throttle=True, clock=clock, timeout=1.0
    )

    def limited() -> str:
        raise Throttled(30.0)

    with pytest.raises(Throttled):
        guard.call(limited)
    calls = []
    with pytest.raises(buttress.DeadlineExceeded):
        guard.call(lambda: calls.append(1))
    assert calls == []
    assert clock.sleeps == []


def test_throttle_off_by_default() -> None:
    clock = FakeClock(100.0)
    guard = buttress.Guard(classifier=HintClassifier(), clock=clock)

    def limited() -> str:
        raise Throttled(5.0)

    with pytest.raises(Throttled):
        guard.call(limited)
    assert guard.statistics().throttled_for == 0.0


def test_throttle_cap_from_retry_policy() -> None:
    clock = FakeClock(100.0)
    guard = buttress.Guard(
        retry=buttress.RetryPolicy(attempts=1, hint_cap=3.0, clock=clock, listeners=()),
        classifier=HintClassifier(),
        shared_throttle=True,
        clock=clock,
    )

    def limited() -> str:
        raise Throttled(3600.0)

    with pytest.raises(Throttled):
        guard.call(limited)
    assert guard.statistics().throttled_for == pytest.approx(3.0)


@pytest.mark.anyio
async def test_throttle_holds_every_task() -> None:
    clock = FakeClock(100.0)
    executor = buttress.BoundedExecutor(4)
    guard = make_guard(clock, executor=executor)
    first = True
    started_at: list[float] = []

    def call() -> None:
        nonlocal first
        if first:
            first = False
            raise Throttled(4.0)
        started_at.append(clock.monotonic())

    async with executor:
        with pytest.raises(Throttled):
            await guard.run(call)
        throttled_from = clock.monotonic()
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(guard.run, call)
    assert len(started_at) == 5
    assert min(started_at) >= throttled_from + 4.0 - 1e-9
    assert executor.statistics().active == 0


@pytest.mark.parametrize("initial", [0.1, 2.0])
def test_throttle_jitter_leaves_time_to_attempt(initial: float) -> None:
    # A wait of 0.5 s inside a 1 s timeout fits; the jitter must not use up
    # the rest of the timeout, even when the spread (the initial backoff)
    # is larger than the time left.
    for _ in range(50):
        clock = FakeClock(100.0)
        retry = buttress.RetryPolicy(
            attempts=2,
            backoff=buttress.Backoff.constant(initial),
            clock=clock,
            listeners=(),
        )
        guard = buttress.Guard(
            retry=retry,
            classifier=HintClassifier(),
            shared_throttle=True,
            timeout=1.0,
            clock=clock,
        )
        with pytest.raises(Throttled):
            guard.call(_raise_throttled, 0.5)

        assert guard.call(lambda: "ok") == "ok"
        assert clock.sleeps[0] <= 0.75


def _raise_throttled(retry_after: float) -> None:
    raise Throttled(retry_after)


def test_throttle_to_deadline_without_guard_timeout() -> None:
    # The wait ends exactly at the retry policy's deadline, which leaves the
    # attempt no time. The Guard has no timeout of its own for the message
    # to name.
    clock = FakeClock(100.0)
    retry = buttress.RetryPolicy(attempts=1, deadline=5.0, clock=clock, listeners=())
    guard = buttress.Guard(
        retry=retry, classifier=HintClassifier(), shared_throttle=True, clock=clock
    )
    with pytest.raises(Throttled):
        guard.call(_raise_throttled, 5.0)

    with pytest.raises(buttress.DeadlineExceeded, match="before its deadline"):
        guard.call(lambda: "ok")
