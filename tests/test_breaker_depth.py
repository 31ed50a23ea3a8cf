"""
Tests of CircuitBreaker beyond consecutive failures: sliding windows, slow
calls, growing open durations, the half-open timeout, manual control,
result and classifier accounting, shared and custom stores, events,
statistics, validation, a windowed reference model and thread stress.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import random
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from buttress import (
    Backoff,
    BreakerPosition,
    BreakerStore,
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    CircuitStateChanged,
    CountWindow,
    Event,
    ExecutorSaturated,
    Jitter,
    MemoryBreakerStore,
    TimeWindow,
    Verdict,
)
from buttress.testing import FakeClock

START = 1_000.0
"""Clock start: a nonzero origin exposes time measured from 0 by mistake."""


class EventRecorder:
    """
    A listener that keeps every state change it receives.
    """

    def __init__(self) -> None:
        self.changes: list[CircuitStateChanged] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, CircuitStateChanged):
            self.changes.append(event)

    def transitions(self) -> list[tuple[str, str, str]]:
        return [(e.old, e.new, e.reason) for e in self.changes]


def fail() -> None:
    raise OSError("dependency down")


def succeed() -> str:
    return "ok"


def make_breaker(**kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("clock", FakeClock(start=START))
    kwargs.setdefault("listeners", ())
    kwargs.setdefault("name", "db")
    return CircuitBreaker(**kwargs)


def run_calls(breaker: CircuitBreaker, pattern: str) -> None:
    """
    Make one call per letter: ``S`` succeeds, ``F`` fails.
    """
    for letter in pattern:
        if letter == "S":
            assert breaker.call(succeed) == "ok"
        else:
            with pytest.raises(OSError, match="dependency down"):
                breaker.call(fail)


def slow_call(clock: FakeClock, seconds: float) -> Callable[[], str]:
    """
    Return a function that takes *seconds* on *clock* and succeeds.
    """

    def slow() -> str:
        clock.advance(seconds)
        return "ok"

    return slow


def windowed(**kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("window", CountWindow(size=4))
    kwargs.setdefault("minimum_calls", 4)
    kwargs.setdefault("failure_rate_threshold", 0.5)
    kwargs.setdefault("reset_timeout", 10.0)
    return make_breaker(**kwargs)


class Pause:
    """
    An awaitable that suspends a coroutine driven by hand with ``send``; the
    value sent next becomes its result.
    """

    def __await__(self) -> Generator[Pause, str, str]:
        outcome = yield self
        return outcome


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
    if outcome == "cancelled":
        raise asyncio.CancelledError
    raise AssertionError(outcome)


async def paused_call() -> str:
    return settle(await Pause())


class InFlightCall:
    """
    A call through `CircuitBreaker.acall` that stays in flight until the
    test finishes it, driven by hand without an event loop.
    """

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.coroutine: Coroutine[Any, Any, str] = breaker.acall(paused_call)
        # Runs admission and stops at the Pause; raises CircuitOpen if the
        # breaker rejects the call.
        self.coroutine.send(None)

    def finish(self, outcome: str) -> str:
        """
        End the call with *outcome*; return its result or raise its error.
        """
        try:
            self.coroutine.send(outcome)
        except StopIteration as stop:
            return str(stop.value)
        raise AssertionError("the protected call did not finish")

    def close(self) -> None:
        self.coroutine.close()


# -- count window -----------------------------------------------------------------


def test_count_window_waits_for_minimum() -> None:
    breaker = windowed(window=CountWindow(size=10))
    run_calls(breaker, "FFF")

    stats = breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.window_calls == 3
    assert stats.failure_rate == 1.0

    run_calls(breaker, "S")

    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize(
    ("threshold", "state"),
    [(0.5, CircuitState.OPEN), (0.51, CircuitState.CLOSED)],
    ids=["at-threshold", "below-threshold"],
)
def test_count_window_threshold(threshold: float, state: CircuitState) -> None:
    breaker = windowed(failure_rate_threshold=threshold)
    run_calls(breaker, "SFSF")

    assert breaker.state is state


def test_count_window_slides() -> None:
    breaker = windowed()
    run_calls(breaker, "FSSS")

    assert breaker.statistics().failure_rate == 0.25

    run_calls(breaker, "S")

    # The failure has left the window of four.
    stats = breaker.statistics()
    assert stats.failure_rate == 0.0
    assert stats.window_calls == 4

    run_calls(breaker, "F")

    assert breaker.state is CircuitState.CLOSED

    run_calls(breaker, "F")

    assert breaker.state is CircuitState.OPEN


def test_window_ignores_failure_threshold() -> None:
    breaker = windowed(failure_threshold=1, window=CountWindow(10), minimum_calls=10)
    run_calls(breaker, "FFFFF")

    stats = breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.consecutive_failures == 5


def test_window_skips_ignored_outcomes() -> None:
    breaker = windowed(ignore=KeyError)

    def lookup() -> None:
        raise KeyError("missing")

    run_calls(breaker, "FF")
    for _ in range(5):
        with pytest.raises(KeyError):
            breaker.call(lookup)

    stats = breaker.statistics()
    assert stats.window_calls == 2
    assert stats.ignored == 5
    assert stats.state is CircuitState.CLOSED


def test_window_cleared_on_close() -> None:
    clock = FakeClock(start=START)
    breaker = windowed(clock=clock)
    run_calls(breaker, "FFFF")
    clock.advance(10.0)
    run_calls(breaker, "S")

    stats = breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.window_calls == 0
    assert stats.failure_rate == 0.0


def test_minimum_calls_above_count_window() -> None:
    # A window of 5 never contains 10 calls, so the breaker could never open.
    with pytest.raises(ValueError, match="minimum_calls=10") as excinfo:
        CircuitBreaker(window=CountWindow(size=5), minimum_calls=10)

    assert "window.size=5" in str(excinfo.value)


def test_minimum_calls_equal_count_window() -> None:
    breaker = windowed(window=CountWindow(size=3), minimum_calls=3)
    run_calls(breaker, "FFF")

    assert breaker.state is CircuitState.OPEN


# -- time window ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gap", "state"),
    [(9.0, CircuitState.OPEN), (10.0, CircuitState.CLOSED)],
    ids=["within-window", "after-window"],
)
def test_time_window_forgets_old(gap: float, state: CircuitState) -> None:
    clock = FakeClock(start=START)
    breaker = windowed(window=TimeWindow(seconds=10.0, buckets=10), clock=clock)
    run_calls(breaker, "FFF")
    clock.advance(gap)
    # While the three failures are still in the window, the next success
    # makes 75 % failures and opens the breaker. Once they have expired, the
    # four new calls are 25 % failures.
    with contextlib.suppress(CircuitOpen):
        run_calls(breaker, "SSSF")

    assert breaker.state is state


def test_time_window_calls_expire() -> None:
    clock = FakeClock(start=START)
    breaker = windowed(
        window=TimeWindow(seconds=10.0, buckets=10), minimum_calls=100, clock=clock
    )
    run_calls(breaker, "FF")
    clock.advance(5.0)
    run_calls(breaker, "SS")

    assert breaker.statistics().window_calls == 4
    assert breaker.statistics().failure_rate == 0.5

    clock.advance(5.0)

    assert breaker.statistics().window_calls == 2
    assert breaker.statistics().failure_rate == 0.0

    clock.advance(5.0)

    assert breaker.statistics().window_calls == 0


def test_time_window_accepts_timedelta() -> None:
    window = TimeWindow(seconds=datetime.timedelta(minutes=2), buckets=4)

    assert window.seconds == 120.0


# -- slow calls -------------------------------------------------------------------


def test_slow_call_rate_opens() -> None:
    clock = FakeClock(start=START)
    recorder = EventRecorder()
    breaker = windowed(
        clock=clock,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        listeners=(recorder,),
    )
    breaker.call(slow_call(clock, 1.0))
    breaker.call(succeed)
    breaker.call(slow_call(clock, 3.0))

    assert breaker.statistics().slow_call_rate == pytest.approx(2 / 3)

    breaker.call(succeed)

    stats = breaker.statistics()
    assert stats.state is CircuitState.OPEN
    assert stats.slow_calls == 2
    assert stats.successes == 4
    assert stats.failures == 0
    assert recorder.changes[0].reason == "slow-call rate 50% over 4 calls"


def test_slow_rate_below_threshold() -> None:
    clock = FakeClock(start=START)
    breaker = windowed(
        clock=clock, slow_call_duration=1.0, slow_call_rate_threshold=0.5
    )
    breaker.call(slow_call(clock, 0.99))
    breaker.call(slow_call(clock, 2.0))
    run_calls(breaker, "SS")

    stats = breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.slow_calls == 1
    assert stats.slow_call_rate == 0.25


def test_slow_probe_reopens() -> None:
    clock = FakeClock(start=START)
    recorder = EventRecorder()
    breaker = windowed(clock=clock, slow_call_duration=1.0, listeners=(recorder,))
    run_calls(breaker, "FFFF")
    clock.advance(10.0)

    assert breaker.call(slow_call(clock, 1.5)) == "ok"

    stats = breaker.statistics()
    assert stats.state is CircuitState.OPEN
    assert stats.consecutive_opens == 2
    assert recorder.changes[-1].reason == "probe was slow"


def test_fast_probe_closes() -> None:
    clock = FakeClock(start=START)
    breaker = windowed(clock=clock, slow_call_duration=1.0)
    run_calls(breaker, "FFFF")
    clock.advance(10.0)

    breaker.call(slow_call(clock, 0.5))

    assert breaker.state is CircuitState.CLOSED


def test_slow_async_call_counted() -> None:
    clock = FakeClock(start=START)
    breaker = windowed(clock=clock, slow_call_duration=1.0, minimum_calls=4)
    call = InFlightCall(breaker)
    clock.advance(1.0)
    call.finish("success")

    assert breaker.statistics().slow_calls == 1


def test_slow_duration_needs_window() -> None:
    with pytest.raises(ValueError, match=r"slow_call_duration=2\.0") as excinfo:
        CircuitBreaker(slow_call_duration=2.0)

    assert "window=CountWindow(...)" in str(excinfo.value)


# -- growing open duration --------------------------------------------------------


def growing(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    backoff = Backoff(initial=10.0, maximum=40.0, multiplier=2.0, jitter=Jitter.NONE)
    return make_breaker(
        failure_threshold=1, reset_backoff=backoff, clock=clock, **kwargs
    )


def test_reset_backoff_grows() -> None:
    clock = FakeClock(start=START)
    breaker = growing(clock)
    run_calls(breaker, "F")
    durations = []
    opens = []
    for _ in range(4):
        stats = breaker.statistics()
        durations.append(stats.seconds_until_probe)
        opens.append(stats.consecutive_opens)
        clock.advance(stats.seconds_until_probe)
        run_calls(breaker, "F")

    assert durations == [10.0, 20.0, 40.0, 40.0]
    assert opens == [1, 2, 3, 4]


def test_reset_backoff_retry_after() -> None:
    clock = FakeClock(start=START)
    breaker = growing(clock)
    run_calls(breaker, "F")
    clock.advance(10.0)
    run_calls(breaker, "F")
    clock.advance(5.0)

    with pytest.raises(CircuitOpen) as excinfo:
        breaker.call(succeed)

    assert excinfo.value.retry_after == 15.0


@pytest.mark.parametrize("healthy_by", ["probe", "reset"])
def test_reset_backoff_restarts(healthy_by: str) -> None:
    clock = FakeClock(start=START)
    breaker = growing(clock)
    run_calls(breaker, "F")
    clock.advance(10.0)
    run_calls(breaker, "F")
    clock.advance(20.0)
    if healthy_by == "probe":
        run_calls(breaker, "S")
    else:
        breaker.reset()

    assert breaker.statistics().consecutive_opens == 0

    run_calls(breaker, "F")

    stats = breaker.statistics()
    assert stats.seconds_until_probe == 10.0
    assert stats.consecutive_opens == 1


# -- half-open timeout ------------------------------------------------------------


def test_half_open_timeout_reopens() -> None:
    clock = FakeClock(start=START)
    recorder = EventRecorder()
    breaker = make_breaker(
        failure_threshold=1,
        reset_timeout=10.0,
        half_open_timeout=5.0,
        clock=clock,
        listeners=(recorder,),
    )
    run_calls(breaker, "F")
    clock.advance(10.0)
    probe = InFlightCall(breaker)
    clock.advance(5.0)

    with pytest.raises(CircuitOpen) as excinfo:
        breaker.call(succeed)

    assert excinfo.value.retry_after == 10.0
    assert recorder.changes[-1].reason == "half-open without a decision too long"
    assert breaker.statistics().probes_in_flight == 0

    # The probe that hung belongs to the old half-open period.
    assert probe.finish("success") == "ok"
    assert breaker.state is CircuitState.OPEN


def test_half_open_timeout_not_reached() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(
        failure_threshold=1, reset_timeout=10.0, half_open_timeout=5.0, clock=clock
    )
    run_calls(breaker, "F")
    clock.advance(10.0)
    probe = InFlightCall(breaker)
    clock.advance(4.9)

    with pytest.raises(CircuitOpen) as excinfo:
        breaker.call(succeed)

    assert excinfo.value.retry_after == 0.0
    assert breaker.state is CircuitState.HALF_OPEN
    probe.close()


def test_no_half_open_timeout_waits() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=10.0, clock=clock)
    run_calls(breaker, "F")
    clock.advance(10.0)
    probe = InFlightCall(breaker)
    clock.advance(3_600.0)

    with pytest.raises(CircuitOpen):
        breaker.call(succeed)

    assert breaker.state is CircuitState.HALF_OPEN
    assert probe.finish("success") == "ok"
    assert breaker.state is CircuitState.CLOSED


# -- manual control -------------------------------------------------------------


def test_force_open_rejects_forever() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock=clock)
    breaker.force_open()
    clock.advance(1e9)

    with pytest.raises(CircuitOpen) as excinfo:
        breaker.call(succeed)

    assert excinfo.value.retry_after == math.inf
    assert "reset() or force_closed()" in str(excinfo.value)
    stats = breaker.statistics()
    assert stats.state is CircuitState.FORCED_OPEN
    assert stats.rejected == 1


def test_force_open_makes_probe_stale() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=10.0, clock=clock)
    run_calls(breaker, "F")
    clock.advance(10.0)
    probe = InFlightCall(breaker)
    breaker.force_open()

    assert probe.finish("success") == "ok"
    stats = breaker.statistics()
    assert stats.state is CircuitState.FORCED_OPEN
    assert stats.probes_in_flight == 0


def test_force_closed_counts_never_opens() -> None:
    breaker = windowed()
    breaker.force_closed()
    run_calls(breaker, "FFFFFFFF")
    run_calls(breaker, "SS")

    stats = breaker.statistics()
    assert stats.state is CircuitState.FORCED_CLOSED
    assert stats.failures == 8
    assert stats.successes == 2
    assert stats.window_calls == 0


def test_force_closed_from_open() -> None:
    breaker = make_breaker(failure_threshold=1)
    run_calls(breaker, "F")
    breaker.force_closed()

    assert breaker.call(succeed) == "ok"
    assert breaker.statistics().seconds_until_probe == 0.0


@pytest.mark.parametrize("force", ["force_open", "force_closed"])
def test_reset_after_force(force: str) -> None:
    breaker = make_breaker(failure_threshold=2)
    getattr(breaker, force)()
    breaker.reset()

    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(succeed) == "ok"
    run_calls(breaker, "F")
    assert breaker.state is CircuitState.CLOSED
    run_calls(breaker, "F")
    assert breaker.state is CircuitState.OPEN


def test_reset_clears_window() -> None:
    breaker = windowed()
    run_calls(breaker, "FFS")
    breaker.reset()

    assert breaker.statistics().window_calls == 0

    run_calls(breaker, "SSSF")

    assert breaker.state is CircuitState.CLOSED


# -- result and classifier accounting ------------------------------------------


def test_failure_on_result_in_window() -> None:
    breaker = windowed(failure_on_result=lambda result: result == "error")
    for result in ["ok", "error", "ok", "error"]:
        assert breaker.call(lambda r=result: r) == result

    stats = breaker.statistics()
    assert stats.state is CircuitState.OPEN
    assert stats.failures == 2


def test_failure_on_result_probe_reopens() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(
        failure_threshold=1,
        reset_timeout=10.0,
        failure_on_result=lambda result: result is None,
        clock=clock,
    )
    breaker.call(lambda: None)
    clock.advance(10.0)
    breaker.call(lambda: None)

    stats = breaker.statistics()
    assert stats.state is CircuitState.OPEN
    assert stats.open_count == 2


class VerdictTable:
    """
    A classifier that looks the exception's type up in a table, and
    records every exception it classified.
    """

    def __init__(self, table: dict[type[BaseException], Verdict]) -> None:
        self.table = table
        self.classified: list[BaseException] = []

    def classify(self, exc: BaseException) -> Verdict:
        self.classified.append(exc)
        for kind, verdict in self.table.items():
            if isinstance(exc, kind):
                return verdict
        return Verdict(breaker_failure=True)


def raise_error(error: BaseException) -> Callable[[], None]:
    def protected() -> None:
        raise error

    return protected


def test_classifier_decides_outcome() -> None:
    classifier = VerdictTable(
        {
            PermissionError: Verdict(breaker_failure=False),
            TimeoutError: Verdict(breaker_failure=None),
        }
    )
    # The ignore and failure_on settings would count these differently, but
    # the classifier decides.
    breaker = make_breaker(
        failure_threshold=2,
        classifier=classifier,
        ignore=ConnectionError,
        failure_on=PermissionError,
    )
    for error in [PermissionError("denied"), TimeoutError("slow"), ConnectionError()]:
        with pytest.raises(type(error)):
            breaker.call(raise_error(error))

    stats = breaker.statistics()
    assert stats.successes == 1
    assert stats.ignored == 1
    assert stats.failures == 1
    assert stats.consecutive_failures == 1


def test_classifier_skips_fixed_outcomes() -> None:
    classifier = VerdictTable({})
    breaker = make_breaker(failure_threshold=1, classifier=classifier)
    saturated = ExecutorSaturated(
        "full", reason="queue_full", max_workers=1, queue_size=0
    )
    for error in [saturated, KeyboardInterrupt(), asyncio.CancelledError()]:
        with pytest.raises(type(error)):
            breaker.call(raise_error(error))

    assert classifier.classified == []
    assert breaker.statistics().ignored == 3
    assert breaker.state is CircuitState.CLOSED


# -- shared and custom stores ------------------------------------------------------


def test_shared_store_opens_both() -> None:
    clock = FakeClock(start=START)
    store = MemoryBreakerStore()
    first = make_breaker(failure_threshold=3, store=store, clock=clock, name="a")
    second = make_breaker(failure_threshold=3, store=store, clock=clock, name="b")
    run_calls(first, "FFF")

    with pytest.raises(CircuitOpen) as excinfo:
        second.call(succeed)

    assert excinfo.value.name == "b"
    assert second.state is CircuitState.OPEN
    assert second.statistics().open_count == 1


@pytest.mark.parametrize("closer", ["first", "second"])
def test_shared_store_close_seen(closer: str) -> None:
    clock = FakeClock(start=START)
    store = MemoryBreakerStore()
    first = make_breaker(failure_threshold=1, store=store, clock=clock)
    second = make_breaker(failure_threshold=1, store=store, clock=clock)
    run_calls(first, "F")
    clock.advance(30.0)
    probing, other = (first, second) if closer == "first" else (second, first)

    assert probing.call(succeed) == "ok"
    assert other.state is CircuitState.CLOSED
    assert other.call(succeed) == "ok"
    assert store.load().state is CircuitState.CLOSED


def test_shared_store_counts_stay_local() -> None:
    clock = FakeClock(start=START)
    store = MemoryBreakerStore()
    first = make_breaker(failure_threshold=2, store=store, clock=clock)
    second = make_breaker(failure_threshold=2, store=store, clock=clock)
    run_calls(first, "F")
    run_calls(second, "F")

    assert first.state is CircuitState.CLOSED
    assert second.statistics().consecutive_failures == 1


def test_shared_store_one_event() -> None:
    clock = FakeClock(start=START)
    store = MemoryBreakerStore()
    recorders = [EventRecorder(), EventRecorder()]
    first, second = (
        make_breaker(failure_threshold=1, store=store, clock=clock, listeners=(r,))
        for r in recorders
    )
    run_calls(first, "F")
    with pytest.raises(CircuitOpen):
        second.call(succeed)

    assert len(recorders[0].changes) == 1
    assert recorders[1].changes == []


class CountingStore:
    """
    A `BreakerStore` written from the protocol alone, counting its calls;
    ``position`` may be replaced by the test as another process would.
    """

    def __init__(self) -> None:
        self.position = BreakerPosition()
        self.loads = 0
        self.writes: list[BreakerPosition] = []
        self._lock = threading.Lock()

    def load(self) -> BreakerPosition:
        self.loads += 1
        return self.position

    def compare_and_set(
        self, expected_generation: int, position: BreakerPosition
    ) -> BreakerPosition:
        with self._lock:
            if self.position.generation == expected_generation:
                self.position = position
                self.writes.append(position)
            return self.position


def test_custom_store_is_protocol() -> None:
    assert isinstance(CountingStore(), BreakerStore)


def test_custom_store_full_cycle() -> None:
    clock = FakeClock(start=START)
    store = CountingStore()
    breaker = make_breaker(
        failure_threshold=2, reset_timeout=10.0, store=store, clock=clock
    )
    run_calls(breaker, "FF")
    with pytest.raises(CircuitOpen):
        breaker.call(succeed)
    clock.advance(10.0)
    run_calls(breaker, "S")

    assert [p.state for p in store.writes] == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    ]
    assert [p.generation for p in store.writes] == [1, 2, 3]
    assert store.writes[0].open_until == START + 10.0
    assert store.loads >= 4
    assert breaker.state is CircuitState.CLOSED


def test_custom_store_foreign_open() -> None:
    clock = FakeClock(start=START)
    store = CountingStore()
    breaker = make_breaker(store=store, clock=clock)
    assert breaker.call(succeed) == "ok"

    # Another replica opened the breaker through the same store.
    store.position = BreakerPosition(
        state=CircuitState.OPEN,
        generation=7,
        changed_at=START,
        open_until=START + 25.0,
        consecutive_opens=1,
    )

    with pytest.raises(CircuitOpen) as excinfo:
        breaker.call(succeed)

    assert excinfo.value.retry_after == 25.0
    assert breaker.statistics().generation == 7


def test_custom_store_lost_race() -> None:
    clock = FakeClock(start=START)
    store = CountingStore()
    breaker = make_breaker(failure_threshold=1, store=store, clock=clock)
    call = InFlightCall(breaker)
    # Another replica forced the breaker open while this call ran.
    store.position = BreakerPosition(
        state=CircuitState.FORCED_OPEN, generation=1, changed_at=START
    )

    with pytest.raises(OSError, match="dependency down"):
        call.finish("failure")

    assert store.writes == []
    assert breaker.state is CircuitState.FORCED_OPEN


# -- events -----------------------------------------------------------------------


def test_events_windowed_cycle() -> None:
    clock = FakeClock(start=START)
    recorder = EventRecorder()
    breaker = make_breaker(
        window=CountWindow(size=2),
        minimum_calls=2,
        slow_call_duration=1.0,
        reset_timeout=10.0,
        half_open_timeout=5.0,
        clock=clock,
        listeners=(recorder,),
    )
    run_calls(breaker, "FF")
    clock.advance(10.0)
    hung_probe = InFlightCall(breaker)
    clock.advance(5.0)
    with pytest.raises(CircuitOpen):
        breaker.call(succeed)
    hung_probe.close()
    clock.advance(10.0)
    breaker.call(slow_call(clock, 2.0))
    clock.advance(10.0)
    run_calls(breaker, "F")
    clock.advance(10.0)
    run_calls(breaker, "S")

    assert recorder.transitions() == [
        ("closed", "open", "failure rate 100% over 2 calls"),
        ("open", "half_open", "open duration ended"),
        ("half_open", "open", "half-open without a decision too long"),
        ("open", "half_open", "open duration ended"),
        ("half_open", "open", "probe was slow"),
        ("open", "half_open", "open duration ended"),
        ("half_open", "open", "probe failed"),
        ("open", "half_open", "open duration ended"),
        ("half_open", "closed", "probe succeeded"),
    ]
    assert [e.generation for e in recorder.changes] == list(range(1, 10))
    assert {e.name for e in recorder.changes} == {"db"}


def test_events_manual_control() -> None:
    recorder = EventRecorder()
    breaker = make_breaker(listeners=(recorder,))
    breaker.force_open()
    breaker.force_closed()
    breaker.reset()

    assert recorder.transitions() == [
        ("closed", "forced_open", "forced open"),
        ("forced_open", "forced_closed", "forced closed"),
        ("forced_closed", "closed", "reset"),
    ]
    assert [e.generation for e in recorder.changes] == [1, 2, 3]


# -- statistics -----------------------------------------------------------------


def test_statistics_while_open() -> None:
    clock = FakeClock(start=START)
    breaker = windowed(clock=clock)
    run_calls(breaker, "SFSF")
    clock.advance(4.0)

    stats = breaker.statistics()
    assert stats.state is CircuitState.OPEN
    assert stats.seconds_until_probe == 6.0
    assert stats.consecutive_opens == 1
    assert stats.open_count == 1
    assert stats.last_transition_at == START
    assert stats.window_calls == 0

    clock.advance(6.0)
    stats = breaker.statistics()

    assert stats.state is CircuitState.HALF_OPEN
    assert stats.seconds_until_probe == 0.0


def test_statistics_rates() -> None:
    clock = FakeClock(start=START)
    breaker = windowed(
        window=CountWindow(size=10),
        minimum_calls=10,
        slow_call_duration=1.0,
        clock=clock,
    )
    run_calls(breaker, "FSS")
    breaker.call(slow_call(clock, 1.0))

    stats = breaker.statistics()
    assert stats.window_calls == 4
    assert stats.failure_rate == 0.25
    assert stats.slow_call_rate == 0.25
    assert stats.consecutive_opens == 0
    assert stats.seconds_until_probe == 0.0


def test_statistics_forced_open() -> None:
    breaker = make_breaker()
    breaker.force_open()

    assert breaker.statistics().seconds_until_probe == math.inf


def test_statistics_reads_leave_successes() -> None:
    # Without a window, successes are counted without the lock; reading
    # the count must neither move it nor lose calls made between reads.
    breaker = make_breaker()
    run_calls(breaker, "SSS")
    first = [breaker.statistics().successes for _ in range(5)]
    run_calls(breaker, "SS")

    assert first == [3] * 5
    assert breaker.statistics().successes == 5


def test_statistics_no_window() -> None:
    breaker = make_breaker()
    run_calls(breaker, "FS")

    stats = breaker.statistics()
    assert stats.window_calls == 0
    assert stats.failure_rate == 0.0
    assert stats.slow_call_rate == 0.0


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragments"),
    [
        ({"window": 5}, TypeError, ["window=5", "CountWindow"]),
        (
            {"failure_rate_threshold": 0.0},
            ValueError,
            ["failure_rate_threshold=0.0", "at most 1.0"],
        ),
        ({"failure_rate_threshold": float("nan")}, ValueError, ["=nan"]),
        (
            {"slow_call_rate_threshold": 1.01},
            ValueError,
            ["slow_call_rate_threshold=1.01", "greater than 0.0"],
        ),
        ({"minimum_calls": 0}, ValueError, ["minimum_calls=0", "at least 1"]),
        (
            {"slow_call_duration": 0, "window": CountWindow()},
            ValueError,
            ["slow_call_duration=0.0"],
        ),
        (
            {"slow_call_duration": "1s", "window": CountWindow()},
            TypeError,
            ["slow_call_duration='1s'"],
        ),
        ({"reset_backoff": 3}, TypeError, ["reset_backoff=3", "Backoff"]),
        ({"half_open_timeout": 0}, ValueError, ["half_open_timeout=0.0"]),
        ({"half_open_timeout": "5s"}, TypeError, ["half_open_timeout='5s'"]),
        ({"failure_on_result": 3}, TypeError, ["failure_on_result=3", "predicate"]),
        ({"classifier": 3}, TypeError, ["classifier=3", "classify(exc)"]),
    ],
)
def test_invalid_config_message(
    kwargs: dict[str, Any], error: type[Exception], fragments: list[str]
) -> None:
    with pytest.raises(error) as excinfo:
        CircuitBreaker(**kwargs)

    assert "CircuitBreaker" in str(excinfo.value)
    for fragment in fragments:
        assert fragment in str(excinfo.value)


@pytest.mark.parametrize(
    ("build", "owner", "fragment"),
    [
        (lambda: CountWindow(size=0), "CountWindow", "size=0"),
        (lambda: CountWindow(size=2_000_000), "CountWindow", "size=2000000"),
        (lambda: TimeWindow(seconds=0), "TimeWindow", "seconds=0.0"),
        (lambda: TimeWindow(buckets=0), "TimeWindow", "buckets=0"),
    ],
)
def test_invalid_window_message(
    build: Callable[[], object], owner: str, fragment: str
) -> None:
    with pytest.raises(ValueError, match=owner) as excinfo:
        build()

    assert fragment in str(excinfo.value)


# -- windowed reference model ----------------------------------------------------------


@attrs.define
class ModelTicket:
    generation: int
    probe: bool


@attrs.define
class WindowedModel:
    """
    The documented behaviour of a breaker with a count window, written as
    plainly as possible.
    """

    size: int
    minimum_calls: int
    threshold: float
    reset_timeout: float
    max_probes: int
    success_threshold: int
    state: CircuitState = CircuitState.CLOSED
    generation: int = 0
    window: list[bool] = attrs.Factory(list)
    consecutive_failures: int = 0
    open_until: float = 0.0
    consecutive_opens: int = 0
    probes: int = 0
    probe_successes: int = 0
    open_count: int = 0
    successes: int = 0
    failures: int = 0
    ignored: int = 0
    rejected: int = 0

    def move(self, state: CircuitState, now: float) -> None:
        self.generation += 1
        self.probes = 0
        self.probe_successes = 0
        if state is not CircuitState.FORCED_CLOSED:
            self.window.clear()
            self.consecutive_failures = 0
        if state is CircuitState.OPEN:
            self.consecutive_opens += 1
            self.open_until = now + self.reset_timeout
            self.open_count += 1
        elif state is CircuitState.CLOSED:
            self.consecutive_opens = 0
        self.state = state

    def admit(self, now: float) -> ModelTicket | float:
        """
        Return the ticket of an admitted call, or the expected retry_after.
        """
        if self.state is CircuitState.FORCED_OPEN:
            self.rejected += 1
            return math.inf
        if self.state is CircuitState.OPEN:
            if now < self.open_until:
                self.rejected += 1
                return self.open_until - now
            self.move(CircuitState.HALF_OPEN, now)
        if self.state is CircuitState.HALF_OPEN:
            if self.probes >= self.max_probes:
                self.rejected += 1
                return 0.0
            self.probes += 1
            return ModelTicket(self.generation, probe=True)
        return ModelTicket(self.generation, probe=False)

    def record(self, ticket: ModelTicket, outcome: str, now: float) -> None:
        kind = {
            "success": "success",
            "other": "success",
            "failure": "failure",
            "ignored": "ignored",
            "cancelled": "ignored",
        }[outcome]
        if kind == "success":
            self.successes += 1
        elif kind == "failure":
            self.failures += 1
        else:
            self.ignored += 1
        if ticket.generation != self.generation:
            return
        if ticket.probe:
            self.probes -= 1
            if kind == "failure":
                self.move(CircuitState.OPEN, now)
            elif kind == "success":
                self.probe_successes += 1
                if self.probe_successes >= self.success_threshold:
                    self.move(CircuitState.CLOSED, now)
            return
        if self.state is not CircuitState.CLOSED or kind == "ignored":
            return
        failure = kind == "failure"
        self.consecutive_failures = self.consecutive_failures + 1 if failure else 0
        self.window.append(failure)
        if len(self.window) > self.size:
            del self.window[0]
        calls = len(self.window)
        if calls >= self.minimum_calls and sum(self.window) / calls >= self.threshold:
            self.move(CircuitState.OPEN, now)

    def visible_state(self, now: float) -> CircuitState:
        if self.state is CircuitState.OPEN and now >= self.open_until:
            return CircuitState.HALF_OPEN
        return self.state

    def seconds_until_probe(self, now: float) -> float:
        if self.state is CircuitState.FORCED_OPEN:
            return math.inf
        if self.state is CircuitState.OPEN:
            return max(0.0, self.open_until - now)
        return 0.0


OUTCOMES = st.sampled_from(["success", "failure", "ignored", "other", "cancelled"])
CALL_ERRORS = (OSError, KeyError, ValueError, asyncio.CancelledError)


class WindowedBreakerMachine(RuleBasedStateMachine):
    """
    Drive a count-window breaker and `WindowedModel` with the same calls,
    clock moves and manual controls, and require the same state and
    counters after every step.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(start=START)
        self.in_flight: list[tuple[InFlightCall, ModelTicket]] = []

    @initialize(
        data=st.data(),
        size=st.integers(1, 6),
        threshold=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        max_probes=st.integers(1, 3),
        success_threshold=st.integers(1, 2),
    )
    def create(
        self,
        data: st.DataObject,
        size: int,
        threshold: float,
        max_probes: int,
        success_threshold: int,
    ) -> None:
        minimum_calls = data.draw(st.integers(1, size))
        self.breaker = make_breaker(
            window=CountWindow(size=size),
            minimum_calls=minimum_calls,
            failure_rate_threshold=threshold,
            reset_timeout=10.0,
            half_open_max_calls=max_probes,
            success_threshold=success_threshold,
            failure_on=OSError,
            ignore=KeyError,
            clock=self.clock,
        )
        self.model = WindowedModel(
            size, minimum_calls, threshold, 10.0, max_probes, success_threshold
        )

    def expect_admission(self, admit: Callable[[], Any]) -> ModelTicket | None:
        expected = self.model.admit(self.clock.monotonic())
        if isinstance(expected, ModelTicket):
            return expected
        with pytest.raises(CircuitOpen) as excinfo:
            admit()
        assert excinfo.value.retry_after == pytest.approx(expected)
        return None

    @rule()
    def start_call(self) -> None:
        ticket = self.expect_admission(lambda: InFlightCall(self.breaker))
        if ticket is not None:
            self.in_flight.append((InFlightCall(self.breaker), ticket))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), outcome=OUTCOMES)
    def finish_call(self, data: st.DataObject, outcome: str) -> None:
        index = data.draw(st.integers(0, len(self.in_flight) - 1))
        call, ticket = self.in_flight.pop(index)
        self.model.record(ticket, outcome, self.clock.monotonic())
        if outcome == "success":
            assert call.finish(outcome) == "ok"
        else:
            with pytest.raises(CALL_ERRORS):
                call.finish(outcome)

    @rule(outcome=OUTCOMES)
    def sync_call(self, outcome: str) -> None:
        def protected() -> str:
            return settle(outcome)

        ticket = self.expect_admission(lambda: self.breaker.call(protected))
        if ticket is None:
            return
        self.model.record(ticket, outcome, self.clock.monotonic())
        if outcome == "success":
            assert self.breaker.call(protected) == "ok"
        else:
            with pytest.raises(CALL_ERRORS):
                self.breaker.call(protected)

    @rule(seconds=st.sampled_from([0.5, 5.0, 9.99, 10.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(control=st.sampled_from(["force_open", "force_closed", "reset"]))
    def manual(self, control: str) -> None:
        getattr(self.breaker, control)()
        state = {
            "force_open": CircuitState.FORCED_OPEN,
            "force_closed": CircuitState.FORCED_CLOSED,
            "reset": CircuitState.CLOSED,
        }[control]
        self.model.move(state, self.clock.monotonic())

    @invariant()
    def same_state_and_counters(self) -> None:
        if not hasattr(self, "model"):
            return
        now = self.clock.monotonic()
        stats = self.breaker.statistics()
        model = self.model
        calls = len(model.window)
        assert stats.state is model.visible_state(now)
        assert stats.generation == model.generation
        assert stats.consecutive_failures == model.consecutive_failures
        assert stats.window_calls == calls
        assert stats.failure_rate == (sum(model.window) / calls if calls else 0.0)
        assert stats.consecutive_opens == model.consecutive_opens
        assert stats.seconds_until_probe == pytest.approx(
            model.seconds_until_probe(now)
        )
        assert stats.probes_in_flight == model.probes
        assert stats.open_count == model.open_count
        assert stats.successes == model.successes
        assert stats.failures == model.failures
        assert stats.ignored == model.ignored
        assert stats.rejected == model.rejected

    def teardown(self) -> None:
        for call, _ in self.in_flight:
            call.close()


WindowedBreakerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_windowed_breaker_matches_model = WindowedBreakerMachine.TestCase


# -- threads ----------------------------------------------------------------------


def test_windowed_thread_stress() -> None:
    clock = FakeClock(start=START)
    limit = 2
    size = 20
    breaker = make_breaker(
        window=CountWindow(size=size),
        minimum_calls=5,
        failure_rate_threshold=0.5,
        reset_timeout=0.05,
        half_open_max_calls=limit,
        ignore=KeyError,
        clock=clock,
    )
    threads, calls_per_thread = 8, 1_500
    admitted = [0] * threads
    rejected = [0] * threads
    violations: list[str] = []
    done = threading.Event()

    def check() -> None:
        stats = breaker.statistics()
        if stats.probes_in_flight > limit:
            violations.append(f"{stats.probes_in_flight} probes in flight")
        if stats.window_calls > size:
            violations.append(f"{stats.window_calls} calls in a window of {size}")

    def worker(index: int) -> None:
        rng = random.Random(index)
        for _ in range(calls_per_thread):
            outcome = rng.choice(["success", "success", "failure", "ignored"])

            def protected(outcome: str = outcome) -> str:
                admitted[index] += 1
                check()
                return settle(outcome)

            try:
                breaker.call(protected)
            except CircuitOpen:
                rejected[index] += 1
            except (OSError, KeyError):
                pass

    def advance_clock() -> None:
        while not done.is_set():
            clock.advance(0.01)
            check()
            time.sleep(0.0005)

    ticker = threading.Thread(target=advance_clock)
    ticker.start()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    done.set()
    ticker.join(timeout=10)

    stats = breaker.statistics()
    assert violations == []
    assert not any(thread.is_alive() for thread in workers)
    assert stats.successes + stats.failures + stats.ignored == sum(admitted)
    assert stats.rejected == sum(rejected)
    assert sum(admitted) + sum(rejected) == threads * calls_per_thread
    assert stats.probes_in_flight == 0
    assert stats.open_count >= 1
