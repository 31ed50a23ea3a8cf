"""
Tests of CircuitBreaker: transitions, probes, generations, cancellation,
events, a reference model driven by hypothesis, and thread stress.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import anyio
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
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    CircuitStateChanged,
    Event,
    ExecutorSaturated,
    LoggingListener,
)
from buttress.testing import FakeClock

START = 1_000.0
"""Clock start for the tests: a nonzero origin exposes a breaker that
measures its open duration from time 0 instead of from now."""


class EventRecorder:
    """
    A listener that keeps every state change it receives.
    """

    def __init__(self) -> None:
        self.changes: list[CircuitStateChanged] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, CircuitStateChanged):
            self.changes.append(event)


def fail() -> None:
    raise OSError("dependency down")


def succeed() -> str:
    return "ok"


def make_breaker(**kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("clock", FakeClock(start=START))
    kwargs.setdefault("listeners", ())
    kwargs.setdefault("name", "db")
    return CircuitBreaker(**kwargs)


def fail_times(breaker: CircuitBreaker, count: int) -> None:
    for _ in range(count):
        with pytest.raises(OSError, match="dependency down"):
            breaker.call(fail)


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


class HeldCall:
    """
    A call through `CircuitBreaker.acall` that stays in flight until the
    test finishes it, driven without an event loop.
    """

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.coroutine: Coroutine[Any, Any, str] = breaker.acall(paused_call)
        # Runs admission, then stops at the Pause; raises CircuitOpen if the
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


# -- transitions --------------------------------------------------------------


def test_breaker_opens_after_threshold() -> None:
    breaker = make_breaker(failure_threshold=3)
    fail_times(breaker, 2)

    assert breaker.state is CircuitState.CLOSED

    fail_times(breaker, 1)

    assert breaker.state is CircuitState.OPEN


def test_breaker_open_rejects_without_calling() -> None:
    breaker = make_breaker(failure_threshold=1)
    fail_times(breaker, 1)
    calls = 0

    def fetch() -> None:
        nonlocal calls
        calls += 1

    with pytest.raises(CircuitOpen):
        breaker.call(fetch)

    assert calls == 0
    assert breaker.statistics().rejected == 1


def test_breaker_success_resets_count() -> None:
    breaker = make_breaker(failure_threshold=3)
    fail_times(breaker, 2)
    breaker.call(succeed)

    assert breaker.statistics().consecutive_failures == 0

    fail_times(breaker, 2)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.statistics().consecutive_failures == 2


def test_breaker_retry_after_while_open() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=30.0, clock=clock)
    fail_times(breaker, 1)
    clock.advance(10.0)

    with pytest.raises(CircuitOpen) as excinfo:
        breaker.call(succeed)

    assert excinfo.value.retry_after == pytest.approx(20.0)
    assert excinfo.value.name == "db"
    assert "'db' is open" in str(excinfo.value)
    assert "20.000 s" in str(excinfo.value)
    stats = breaker.statistics()
    assert stats.state is CircuitState.OPEN
    assert stats.seconds_until_probe == pytest.approx(20.0)
    assert stats.last_transition_at == START


def test_breaker_open_until_reset_timeout() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=30.0, clock=clock)
    fail_times(breaker, 1)
    clock.advance(29.9)

    with pytest.raises(CircuitOpen):
        breaker.call(succeed)

    clock.advance(0.1)

    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(succeed) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_half_open_admits_max_probes() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(
        failure_threshold=1, reset_timeout=5.0, half_open_max_calls=2, clock=clock
    )
    fail_times(breaker, 1)
    clock.advance(5.0)

    probes = [HeldCall(breaker), HeldCall(breaker)]
    with pytest.raises(CircuitOpen) as excinfo:
        breaker.call(succeed)

    assert excinfo.value.retry_after == 0.0
    assert "half-open" in str(excinfo.value)
    assert breaker.statistics().probes_in_flight == 2
    assert breaker.statistics().rejected == 1
    for probe in probes:
        probe.close()


def test_probe_success_closes() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    fail_times(breaker, 1)
    clock.advance(5.0)
    probe = HeldCall(breaker)

    assert probe.finish("success") == "ok"
    stats = breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.probes_in_flight == 0
    assert stats.consecutive_opens == 0


def test_probe_failure_reopens() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    fail_times(breaker, 1)
    clock.advance(7.0)
    probe = HeldCall(breaker)

    with pytest.raises(OSError, match="dependency down"):
        probe.finish("failure")

    stats = breaker.statistics()
    assert stats.state is CircuitState.OPEN
    assert stats.seconds_until_probe == pytest.approx(5.0)
    assert stats.open_count == 2
    assert stats.consecutive_opens == 2


def test_success_threshold_needs_probes() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(
        failure_threshold=1, reset_timeout=5.0, success_threshold=2, clock=clock
    )
    fail_times(breaker, 1)
    clock.advance(5.0)
    breaker.call(succeed)

    assert breaker.state is CircuitState.HALF_OPEN

    breaker.call(succeed)

    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("outcome", ["ignored", "cancelled"])
def test_neutral_probe_releases_permit(outcome: str) -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(
        failure_threshold=1, reset_timeout=5.0, ignore=KeyError, clock=clock
    )
    fail_times(breaker, 1)
    clock.advance(5.0)
    probe = HeldCall(breaker)
    generation = breaker.statistics().generation

    with pytest.raises((KeyError, asyncio.CancelledError)):
        probe.finish(outcome)

    stats = breaker.statistics()
    assert stats.state is CircuitState.HALF_OPEN
    assert stats.generation == generation
    assert stats.probes_in_flight == 0
    assert stats.ignored == 1
    assert breaker.call(succeed) == "ok"
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.anyio
async def test_cancelled_probe_releases_permit() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    fail_times(breaker, 1)
    clock.advance(5.0)
    inside = anyio.Event()

    async def hang() -> None:
        inside.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(breaker.acall, hang)
        await inside.wait()

        assert breaker.statistics().probes_in_flight == 1

        group.cancel_scope.cancel()

    stats = breaker.statistics()
    assert stats.state is CircuitState.HALF_OPEN
    assert stats.probes_in_flight == 0
    assert stats.ignored == 1
    assert stats.failures == 1

    async def fetch() -> str:
        return "ok"

    assert await breaker.acall(fetch) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_ignored_exception_neutral() -> None:
    breaker = make_breaker(failure_threshold=3, ignore=KeyError)
    fail_times(breaker, 2)

    def lookup() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        breaker.call(lookup)

    stats = breaker.statistics()
    assert stats.consecutive_failures == 2
    assert stats.ignored == 1
    assert stats.successes == 0

    fail_times(breaker, 1)

    assert breaker.state is CircuitState.OPEN


def test_ignore_predicate() -> None:
    breaker = make_breaker(
        failure_threshold=1, ignore=lambda exc: "maintenance" in str(exc)
    )

    with pytest.raises(OSError, match="maintenance"):
        breaker.call(lambda: (_ for _ in ()).throw(OSError("maintenance")))

    assert breaker.state is CircuitState.CLOSED


def test_other_exception_counts_success() -> None:
    breaker = make_breaker(failure_threshold=3, failure_on=OSError)
    fail_times(breaker, 2)

    def parse() -> None:
        raise ValueError("bad payload")

    with pytest.raises(ValueError, match="bad payload"):
        breaker.call(parse)

    stats = breaker.statistics()
    assert stats.consecutive_failures == 0
    assert stats.successes == 1
    assert stats.failures == 2


def test_rejection_inside_call_neutral() -> None:
    breaker = make_breaker(failure_threshold=1)

    def saturated() -> None:
        raise ExecutorSaturated(
            "full", reason="queue_full", max_workers=1, queue_size=0
        )

    with pytest.raises(ExecutorSaturated):
        breaker.call(saturated)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.statistics().ignored == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_interrupt_neutral(error: type[BaseException]) -> None:
    breaker = make_breaker(failure_threshold=1, failure_on=BaseException)

    def interrupted() -> None:
        raise error

    with pytest.raises(error):
        breaker.call(interrupted)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.statistics().ignored == 1


def test_failure_on_result() -> None:
    breaker = make_breaker(failure_threshold=2, failure_on_result=lambda r: r is None)
    breaker.call(lambda: None)
    breaker.call(lambda: None)

    assert breaker.state is CircuitState.OPEN


# -- generations ----------------------------------------------------------------


def test_slow_success_does_not_close() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    slow = HeldCall(breaker)
    fail_times(breaker, 1)
    clock.advance(5.0)

    assert slow.finish("success") == "ok"
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.statistics().successes == 1


def test_slow_success_after_reopen() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    slow = HeldCall(breaker)
    fail_times(breaker, 1)

    assert slow.finish("success") == "ok"
    assert breaker.state is CircuitState.OPEN


def test_stale_failure_does_not_reopen() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    stale = HeldCall(breaker)
    fail_times(breaker, 1)
    clock.advance(5.0)
    breaker.call(succeed)

    assert breaker.state is CircuitState.CLOSED

    with pytest.raises(OSError, match="dependency down"):
        stale.finish("failure")

    stats = breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.consecutive_failures == 0
    assert stats.failures == 2


def test_stale_probe_does_not_decide() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(
        failure_threshold=1, reset_timeout=5.0, half_open_max_calls=2, clock=clock
    )
    fail_times(breaker, 1)
    clock.advance(5.0)
    first, second = HeldCall(breaker), HeldCall(breaker)

    with pytest.raises(OSError, match="dependency down"):
        first.finish("failure")

    assert second.finish("success") == "ok"
    assert breaker.state is CircuitState.OPEN


# -- manual control -------------------------------------------------------------


def test_reset_closes() -> None:
    breaker = make_breaker(failure_threshold=2)
    fail_times(breaker, 2)
    breaker.reset()

    stats = breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.consecutive_failures == 0
    assert stats.seconds_until_probe == 0.0
    assert breaker.call(succeed) == "ok"
    fail_times(breaker, 1)
    assert breaker.state is CircuitState.CLOSED


def test_reset_clears_count_while_closed() -> None:
    breaker = make_breaker(failure_threshold=2)
    fail_times(breaker, 1)
    breaker.reset()
    fail_times(breaker, 1)

    assert breaker.state is CircuitState.CLOSED


def test_force_open_rejects() -> None:
    breaker = make_breaker()
    breaker.force_open()

    with pytest.raises(CircuitOpen, match="forced open") as excinfo:
        breaker.call(succeed)

    assert excinfo.value.retry_after == float("inf")
    assert breaker.statistics().seconds_until_probe == float("inf")


def test_force_closed_never_opens() -> None:
    breaker = make_breaker(failure_threshold=1)
    breaker.force_closed()
    fail_times(breaker, 5)

    stats = breaker.statistics()
    assert stats.state is CircuitState.FORCED_CLOSED
    assert stats.failures == 5


# -- events and logging -----------------------------------------------------------


def test_events_through_cycle() -> None:
    clock = FakeClock(start=START)
    recorder = EventRecorder()
    breaker = make_breaker(
        failure_threshold=2, reset_timeout=5.0, clock=clock, listeners=(recorder,)
    )
    fail_times(breaker, 2)
    clock.advance(5.0)
    breaker.call(succeed)

    assert [(e.old, e.new) for e in recorder.changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert [e.generation for e in recorder.changes] == [1, 2, 3]
    assert recorder.changes[0].reason == "2 consecutive failures"
    assert recorder.changes[2].reason == "probe succeeded"
    assert {e.name for e in recorder.changes} == {"db"}


def test_log_levels(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(
        failure_threshold=1,
        reset_timeout=5.0,
        clock=clock,
        listeners=(LoggingListener(),),
    )
    with caplog.at_level(logging.DEBUG, logger="buttress"):
        with pytest.raises(OSError, match="dependency down"):
            breaker.call(fail)
        with pytest.raises(CircuitOpen):
            breaker.call(succeed)
        clock.advance(5.0)
        breaker.call(succeed)

    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert records[0][0] == logging.WARNING
    assert "db opened" in records[0][1]
    assert records[-1][0] == logging.INFO
    assert "db closed" in records[-1][1]
    assert all(r.name == "buttress.breaker" for r in caplog.records)
    # Rejections come in floods and are only counted, never logged.
    assert len(records) == 3
    assert "dependency down" not in caplog.text


def test_forced_states_logged(caplog: pytest.LogCaptureFixture) -> None:
    breaker = make_breaker(listeners=(LoggingListener(),))
    with caplog.at_level(logging.DEBUG, logger="buttress"):
        breaker.force_open()
        breaker.force_closed()

    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert records[0][0] == logging.WARNING
    assert "db forced open" in records[0][1]
    assert records[1][0] == logging.INFO
    assert "db forced closed" in records[1][1]


# -- entry points and configuration -----------------------------------------------


def test_decorator_keeps_metadata() -> None:
    breaker = make_breaker()

    def fetch(key: str) -> str:
        """Fetch a key."""
        return key

    async def afetch(key: str) -> str:
        """Fetch a key."""
        return key

    decorated = breaker(fetch)
    decorated_async = breaker(afetch)

    assert decorated.__name__ == "fetch"
    assert decorated.__doc__ == "Fetch a key."
    assert decorated("k") == "k"
    assert not inspect.iscoroutinefunction(decorated)
    assert inspect.iscoroutinefunction(decorated_async)
    assert decorated_async.__name__ == "afetch"


@pytest.mark.anyio
async def test_acall_opens_and_rejects() -> None:
    breaker = make_breaker(failure_threshold=2)

    async def afail() -> None:
        await anyio.lowlevel.checkpoint()
        raise OSError("dependency down")

    for _ in range(2):
        with pytest.raises(OSError, match="dependency down"):
            await breaker.acall(afail)

    with pytest.raises(CircuitOpen):
        await breaker.acall(afail)

    assert breaker.statistics().failures == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"failure_threshold": 0}, ValueError, "failure_threshold=0"),
        ({"reset_timeout": -1}, ValueError, "reset_timeout=-1.0"),
        ({"reset_timeout": "soon"}, TypeError, "reset_timeout='soon'"),
        ({"half_open_max_calls": 0}, ValueError, "half_open_max_calls=0"),
        ({"success_threshold": 0}, ValueError, "success_threshold=0"),
        ({"failure_on": "OSError"}, TypeError, "failure_on='OSError'"),
        ({"ignore": 3}, TypeError, "ignore=3"),
        ({"failure_rate_threshold": 1.5}, ValueError, "failure_rate_threshold=1.5"),
        ({"slow_call_duration": 1.0}, ValueError, "needs a window"),
    ],
)
def test_invalid_config_message(
    kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as excinfo:
        CircuitBreaker(**kwargs)

    assert "CircuitBreaker" in str(excinfo.value)
    assert fragment in str(excinfo.value)


# -- reference model ----------------------------------------------------------------


@attrs.define
class ModelTicket:
    generation: int
    probe: bool


@attrs.define
class BreakerModel:
    """
    The breaker's documented behaviour, written as plainly as possible.
    """

    threshold: int
    reset_timeout: float
    max_probes: int
    success_threshold: int
    state: CircuitState = CircuitState.CLOSED
    generation: int = 0
    consecutive_failures: int = 0
    open_until: float = 0.0
    probes: int = 0
    probe_successes: int = 0
    open_count: int = 0
    successes: int = 0
    failures: int = 0
    ignored: int = 0
    rejected: int = 0

    def move(self, state: CircuitState, now: float) -> None:
        self.state = state
        self.generation += 1
        self.consecutive_failures = 0
        self.probes = 0
        self.probe_successes = 0
        if state is CircuitState.OPEN:
            self.open_until = now + self.reset_timeout
            self.open_count += 1

    def admit(self, now: float) -> ModelTicket | float:
        """
        Return the ticket of an admitted call, or the expected retry_after.
        """
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
        elif kind == "success":
            self.consecutive_failures = 0
        elif kind == "failure":
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.threshold:
                self.move(CircuitState.OPEN, now)

    def visible_state(self, now: float) -> CircuitState:
        if self.state is CircuitState.OPEN and now >= self.open_until:
            return CircuitState.HALF_OPEN
        return self.state


OUTCOMES = st.sampled_from(["success", "failure", "ignored", "other", "cancelled"])


class BreakerMachine(RuleBasedStateMachine):
    """
    Drive a breaker and `BreakerModel` with the same calls and clock moves,
    and require the same state and counters after every step.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(start=START)
        self.in_flight: list[tuple[HeldCall, ModelTicket]] = []

    @initialize(
        threshold=st.integers(1, 4),
        max_probes=st.integers(1, 3),
        success_threshold=st.integers(1, 3),
    )
    def create(self, threshold: int, max_probes: int, success_threshold: int) -> None:
        self.breaker = make_breaker(
            failure_threshold=threshold,
            reset_timeout=10.0,
            half_open_max_calls=max_probes,
            success_threshold=success_threshold,
            failure_on=OSError,
            ignore=KeyError,
            clock=self.clock,
        )
        self.model = BreakerModel(threshold, 10.0, max_probes, success_threshold)

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
        ticket = self.expect_admission(lambda: HeldCall(self.breaker))
        if ticket is not None:
            self.in_flight.append((HeldCall(self.breaker), ticket))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), outcome=OUTCOMES)
    def finish_call(self, data: st.DataObject, outcome: str) -> None:
        index = data.draw(st.integers(0, len(self.in_flight) - 1))
        call, ticket = self.in_flight.pop(index)
        self.model.record(ticket, outcome, self.clock.monotonic())
        if outcome == "success":
            assert call.finish(outcome) == "ok"
        else:
            with pytest.raises((OSError, KeyError, ValueError, asyncio.CancelledError)):
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
            with pytest.raises((OSError, KeyError, ValueError, asyncio.CancelledError)):
                self.breaker.call(protected)

    @rule(seconds=st.sampled_from([0.0, 1.0, 4.5, 9.99, 10.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.move(CircuitState.CLOSED, self.clock.monotonic())

    @invariant()
    def same_state_and_counters(self) -> None:
        if not hasattr(self, "model"):
            return
        stats = self.breaker.statistics()
        model = self.model
        assert stats.state is model.visible_state(self.clock.monotonic())
        assert stats.generation == model.generation
        assert stats.consecutive_failures == model.consecutive_failures
        assert stats.probes_in_flight == model.probes
        assert stats.open_count == model.open_count
        assert stats.successes == model.successes
        assert stats.failures == model.failures
        assert stats.ignored == model.ignored
        assert stats.rejected == model.rejected

    def teardown(self) -> None:
        for call, _ in self.in_flight:
            call.close()


BreakerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_breaker_matches_model = BreakerMachine.TestCase


# -- threads ----------------------------------------------------------------------


def test_breaker_thread_stress() -> None:
    clock = FakeClock(start=START)
    limit = 2
    breaker = make_breaker(
        failure_threshold=3,
        reset_timeout=0.05,
        half_open_max_calls=limit,
        ignore=KeyError,
        clock=clock,
    )
    threads, calls_per_thread = 16, 2_000
    admitted = [0] * threads
    rejected = [0] * threads
    violations: list[str] = []
    done = threading.Event()

    def check(stats_probes: int) -> None:
        if stats_probes > limit:
            violations.append(f"{stats_probes} probes in flight")

    def worker(index: int) -> None:
        rng = random.Random(index)
        for _ in range(calls_per_thread):
            outcome = rng.choice(
                ["success", "success", "failure", "ignored", "cancelled"]
            )

            def protected(outcome: str = outcome) -> str:
                admitted[index] += 1
                check(breaker.statistics().probes_in_flight)
                return settle(outcome)

            try:
                breaker.call(protected)
            except CircuitOpen:
                rejected[index] += 1
            except (OSError, KeyError, asyncio.CancelledError):
                pass

    def advance_clock() -> None:
        while not done.is_set():
            clock.advance(0.01)
            check(breaker.statistics().probes_in_flight)
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


@pytest.mark.parametrize("setup", ["closed", "half-open"])
def test_breaker_never_serialises(setup: str) -> None:
    threads = 8
    clock = FakeClock(start=START)
    breaker = make_breaker(
        failure_threshold=1,
        reset_timeout=1.0,
        half_open_max_calls=threads,
        clock=clock,
    )
    if setup == "half-open":
        fail_times(breaker, 1)
        clock.advance(1.0)
    barrier = threading.Barrier(threads, timeout=10)
    errors: list[BaseException] = []

    def protected() -> None:
        # Returns only once every thread is inside a protected call; a
        # breaker that ran calls one at a time would break the barrier.
        barrier.wait()

    def worker() -> None:
        try:
            breaker.call(protected)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)

    assert errors == []
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.anyio
async def test_breaker_tasks_overlap() -> None:
    breaker = make_breaker()
    tasks = 8
    inside = 0
    everyone_inside = anyio.Event()

    async def protected() -> None:
        nonlocal inside
        inside += 1
        if inside == tasks:
            everyone_inside.set()
        with anyio.fail_after(10):
            await everyone_inside.wait()

    async with anyio.create_task_group() as group:
        for _ in range(tasks):
            group.start_soon(breaker.acall, protected)

    assert breaker.statistics().successes == tasks
