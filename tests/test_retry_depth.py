"""
Tests of RetryPolicy beyond the basics: attempt timeouts, result retries,
classifiers and server hints, budgets, give-up reasons, the block form,
native asyncio cancellation, decorated methods, exception context and
isolation between concurrent calls.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import attrs
import pytest

from _virtual_time import VirtualTimeEventLoop, virtual_time_backends
from buttress import (
    Backoff,
    DeadlineExceeded,
    Event,
    RetryBudget,
    RetryGaveUp,
    RetryPolicy,
    RetryScheduled,
    Verdict,
    time_remaining,
)
from buttress.testing import FakeClock

notes_supported = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="exception notes need Python 3.11"
)


class EventRecorder:
    """
    A listener that keeps every event it receives.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def scheduled(self) -> list[RetryScheduled]:
        return [e for e in self.events if isinstance(e, RetryScheduled)]

    def gave_up(self) -> list[RetryGaveUp]:
        return [e for e in self.events if isinstance(e, RetryGaveUp)]


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


class Flaky:
    """
    A callable that raises a new `Transient` on its first *failures* calls,
    then returns ``"ok"``.
    """

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.raised: list[BaseException] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            exc = Transient(f"attempt {self.calls} failed")
            self.raised.append(exc)
            raise exc
        return "ok"

    async def acall(self) -> str:
        await anyio.lowlevel.checkpoint()
        return self()


class TableClassifier:
    """
    A classifier that looks the exception's type up in a table of verdicts,
    and records every exception it classified.
    """

    def __init__(self, table: dict[type[BaseException], Verdict]) -> None:
        self.table = table
        self.classified: list[BaseException] = []

    def classify(self, exc: BaseException) -> Verdict:
        self.classified.append(exc)
        for kind, verdict in self.table.items():
            if isinstance(exc, kind):
                return verdict
        return Verdict()


class LoopClock:
    """
    A clock that reads the event loop's own time, so that a deadline on it
    ends exactly where anyio's timers fire, also in virtual time.
    """

    def monotonic(self) -> float:
        return anyio.current_time()

    def sleep(self, seconds: float) -> None:
        raise AssertionError("a loop clock cannot block a thread")

    async def asleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def make_policy(**kwargs: Any) -> RetryPolicy:
    kwargs.setdefault("clock", FakeClock())
    kwargs.setdefault("backoff", Backoff.constant(0.1))
    kwargs.setdefault("listeners", ())
    return RetryPolicy(**kwargs)


def one_retry_budget(clock: FakeClock) -> RetryBudget:
    """
    Return a budget that grants exactly one retry in its window.
    """
    return RetryBudget(ratio=0.0, min_per_second=0.1, window=10.0, clock=clock)


# -- attempt timeout --------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_attempt_timeout_raises_timeout_error() -> None:
    recorder = EventRecorder()
    calls = 0

    async def fetch() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep_forever()

    policy = make_policy(attempts=2, attempt_timeout=5.0, listeners=(recorder,))
    with pytest.raises(TimeoutError) as excinfo:
        await policy.acall(fetch)

    assert type(excinfo.value) is TimeoutError
    assert "attempt 2 of" in str(excinfo.value)
    assert "fetch timed out after 5.000 s" in str(excinfo.value)
    assert calls == 2
    assert [e.exception_type for e in recorder.scheduled()] == ["TimeoutError"]
    assert recorder.gave_up()[0].reason == "attempts"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_attempt_timeout_judged_by_retry_on() -> None:
    # The timeout is an ordinary failure: a policy that retries only
    # connection errors does not retry it.
    calls = 0

    async def fetch() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep_forever()

    policy = make_policy(attempts=3, attempt_timeout=5.0, retry_on=ConnectionError)
    with pytest.raises(TimeoutError):
        await policy.acall(fetch)

    assert calls == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_attempt_timeout_then_deadline() -> None:
    # The first two attempts end on their own 5 s timeout, at 5 and 10.5 s.
    # The third starts at 11 s, and the 12 s deadline cuts it short.
    recorder = EventRecorder()
    clock = LoopClock()
    calls = 0
    started = anyio.current_time()

    async def fetch() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep_forever()

    policy = make_policy(
        attempts=5,
        deadline=12.0,
        attempt_timeout=5.0,
        backoff=Backoff.constant(0.5),
        clock=clock,
        listeners=(recorder,),
    )
    with pytest.raises(DeadlineExceeded) as excinfo:
        await policy.acall(fetch)

    assert calls == 3
    assert type(excinfo.value.__cause__) is TimeoutError
    assert anyio.current_time() - started == pytest.approx(12.0)
    assert recorder.gave_up()[0].reason == "deadline"


@pytest.mark.parametrize("entry", ["call", "decorator"])
def test_attempt_timeout_visible_sync(entry: str) -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    def fetch() -> None:
        seen.append(time_remaining())
        raise Transient

    policy = make_policy(
        attempts=5,
        deadline=5.0,
        attempt_timeout=3.0,
        backoff=Backoff.constant(2.0),
        clock=clock,
    )
    retried = (
        functools.partial(policy.call, fetch) if entry == "call" else policy(fetch)
    )
    with pytest.raises(Transient):
        retried()

    # At 0 and 2 s the attempt timeout ends first. At 4 s only 1 s of the
    # deadline is left.
    assert seen == [3.0, 3.0, 1.0]
    assert time_remaining() is None


def test_attempt_timeout_without_deadline() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    def fetch() -> None:
        seen.append(time_remaining())
        raise Transient

    policy = make_policy(attempts=3, attempt_timeout=3.0, clock=clock)
    with pytest.raises(Transient):
        policy.call(fetch)

    assert seen == [3.0, 3.0, 3.0]


# -- retry_on_result -------------------------------------------------------------


def test_result_retried_until_accepted() -> None:
    clock = FakeClock()
    recorder = EventRecorder()
    results = iter([None, None, "ok"])
    policy = make_policy(
        attempts=5,
        clock=clock,
        retry_on_result=lambda result: result is None,
        listeners=(recorder,),
    )

    assert policy.call(lambda: next(results)) == "ok"
    assert clock.sleeps == [0.1, 0.1]
    assert [e.exception_type for e in recorder.scheduled()] == ["result", "result"]
    assert [e.reason for e in recorder.scheduled()] == ["result", "result"]
    assert recorder.gave_up() == []


def test_result_last_returned_when_exhausted() -> None:
    recorder = EventRecorder()
    results = iter([1, 2, 3, 4])
    policy = make_policy(
        attempts=3, retry_on_result=lambda value: value < 10, listeners=(recorder,)
    )

    assert policy.call(lambda: next(results)) == 3
    gave_up = recorder.gave_up()
    assert len(gave_up) == 1
    assert gave_up[0].reason == "attempts"
    assert gave_up[0].exception_type == "result"
    assert gave_up[0].error is None


def test_result_accepted_first_time() -> None:
    clock = FakeClock()
    policy = make_policy(clock=clock, retry_on_result=lambda value: value is None)

    assert policy.call(lambda: 7) == 7
    assert clock.sleeps == []


def test_result_then_error_exhausts() -> None:
    outcomes: Iterator[Any] = iter([None, Transient("second"), Transient("third")])

    def fetch() -> Any:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = make_policy(attempts=3, retry_on_result=lambda value: value is None)
    with pytest.raises(Transient, match="third"):
        policy.call(fetch)


def test_result_deadline_returns_last() -> None:
    recorder = EventRecorder()
    results = iter(["busy-1", "busy-2", "busy-3"])
    policy = make_policy(
        attempts=10,
        deadline=1.0,
        backoff=Backoff.constant(0.4),
        retry_on_result=lambda value: value.startswith("busy"),
        listeners=(recorder,),
    )

    assert policy.call(lambda: next(results)) == "busy-3"
    assert recorder.gave_up()[0].reason == "deadline"


@pytest.mark.anyio
@pytest.mark.parametrize("entry", ["acall", "decorator"])
@pytest.mark.parametrize("deadline", [None, 60.0], ids=["no-deadline", "deadline"])
async def test_result_retried_async(entry: str, deadline: float | None) -> None:
    clock = FakeClock()
    results = iter([None, None, "ok", "unused"])
    calls = 0

    async def fetch() -> str | None:
        nonlocal calls
        calls += 1
        await anyio.lowlevel.checkpoint()
        return next(results)

    policy = make_policy(
        attempts=5,
        deadline=deadline,
        clock=clock,
        retry_on_result=lambda value: value is None,
    )
    if entry == "acall":
        result = await policy.acall(fetch)
    else:
        result = await policy(fetch)()

    assert result == "ok"
    assert calls == 3
    assert clock.sleeps == [0.1, 0.1]


@pytest.mark.anyio
async def test_result_last_returned_async() -> None:
    values = iter([1, 2, 3])

    async def fetch() -> int:
        return next(values)

    policy = make_policy(attempts=3, retry_on_result=lambda value: True)

    assert await policy.acall(fetch) == 3


# -- classifier as retry_on -----------------------------------------------------------


def retry_classifier(retry_after: float | None = None) -> TableClassifier:
    return TableClassifier(
        {
            ConnectionError: Verdict(retryable=True, retry_after=retry_after),
            Permanent: Verdict(retryable=False),
        }
    )


def test_classifier_decides_retry() -> None:
    errors = [ConnectionError("reset"), ConnectionError("reset")]
    calls = 0

    def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls <= len(errors):
            raise errors[calls - 1]
        return "ok"

    classifier = retry_classifier()
    policy = make_policy(attempts=5, retry_on=classifier)

    assert policy.call(fetch) == "ok"
    assert calls == 3
    assert {id(exc) for exc in classifier.classified} == {id(exc) for exc in errors}


def test_classifier_not_retryable() -> None:
    calls = 0

    def fetch() -> None:
        nonlocal calls
        calls += 1
        raise Permanent("bad request")

    with pytest.raises(Permanent):
        make_policy(attempts=5, retry_on=retry_classifier()).call(fetch)

    assert calls == 1


def test_classifier_unknown_error_not_retried() -> None:
    flaky = Flaky(1)

    with pytest.raises(Transient):
        make_policy(attempts=5, retry_on=retry_classifier()).call(flaky)

    assert flaky.calls == 1


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(2.5, 2.5), (0.0, 0.5), (1_000.0, 30.0), (None, 0.1)],
    ids=["inside", "zero-floored", "huge-capped", "none-uses-backoff"],
)
def test_classifier_retry_after_delay(
    retry_after: float | None, expected: float
) -> None:
    clock = FakeClock()
    recorder = EventRecorder()
    errors = iter([ConnectionError("busy")])

    def fetch() -> str:
        error = next(errors, None)
        if error is not None:
            raise error
        return "ok"

    policy = make_policy(
        attempts=2,
        clock=clock,
        retry_on=retry_classifier(retry_after),
        hint_floor=0.5,
        hint_cap=30.0,
        listeners=(recorder,),
    )

    assert policy.call(fetch) == "ok"
    assert clock.sleeps == [expected]
    reason = "error" if retry_after is None else "hint"
    assert recorder.scheduled()[0].reason == reason


@pytest.mark.parametrize(
    ("own_hint", "expected"), [(7.0, 7.0), (None, 2.0)], ids=["own", "none"]
)
def test_hint_function_overrides_classifier(
    own_hint: float | None, expected: float
) -> None:
    clock = FakeClock()
    policy = make_policy(
        attempts=2,
        clock=clock,
        retry_on=retry_classifier(retry_after=2.0),
        hint=lambda exc: own_hint,
    )
    errors = iter([ConnectionError("busy")])

    def fetch() -> str:
        error = next(errors, None)
        if error is not None:
            raise error
        return "ok"

    policy.call(fetch)

    assert clock.sleeps == [expected]


@pytest.mark.anyio
async def test_classifier_async() -> None:
    clock = FakeClock()
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await anyio.lowlevel.checkpoint()
        if calls == 1:
            raise ConnectionError("busy")
        if calls == 2:
            raise Permanent("bad request")
        return "ok"

    policy = make_policy(attempts=5, clock=clock, retry_on=retry_classifier(3.0))
    with pytest.raises(Permanent):
        await policy.acall(fetch)

    assert calls == 2
    assert clock.sleeps == [3.0]


# -- server hints and the deadline ----------------------------------------------------


def test_zero_hint_never_hot_loop() -> None:
    clock = FakeClock()
    flaky = Flaky(5)
    policy = make_policy(
        attempts=6, clock=clock, backoff=Backoff.constant(0.25), hint=lambda exc: 0.0
    )

    assert policy.call(flaky) == "ok"
    assert clock.sleeps == [0.25] * 5


@notes_supported
def test_hint_past_deadline_gives_up() -> None:
    clock = FakeClock()
    recorder = EventRecorder()
    flaky = Flaky(1)
    policy = make_policy(
        attempts=5,
        deadline=10.0,
        clock=clock,
        hint=lambda exc: 100.0,
        hint_cap=300.0,
        listeners=(recorder,),
    )

    with pytest.raises(Transient) as excinfo:
        policy.call(flaky)

    assert flaky.calls == 1
    assert clock.sleeps == []
    gave_up = recorder.gave_up()
    assert gave_up[0].reason == "deadline"
    assert gave_up[0].attempts == 1
    assert "past the deadline" in excinfo.value.__notes__[0]


def test_capped_hint_fits_deadline() -> None:
    clock = FakeClock()
    policy = make_policy(
        attempts=5, deadline=10.0, clock=clock, hint=lambda exc: 100.0, hint_cap=4.0
    )

    assert policy.call(Flaky(2)) == "ok"
    assert clock.sleeps == [4.0, 4.0]


@pytest.mark.anyio
async def test_hint_past_deadline_async() -> None:
    clock = FakeClock()
    flaky = Flaky(1)
    policy = make_policy(
        attempts=5, deadline=10.0, clock=clock, hint=lambda exc: 12.0, hint_cap=60.0
    )

    with pytest.raises(Transient):
        await policy.acall(flaky.acall)

    assert flaky.calls == 1
    assert clock.sleeps == []


# -- give-up reasons ------------------------------------------------------------------


def not_retryable_setup(clock: FakeClock) -> tuple[dict[str, Any], Callable[[], Any]]:
    errors = iter([Transient("first"), Permanent("second")])

    def fetch() -> None:
        raise next(errors)

    return {"retry_on": Transient}, fetch


def attempts_setup(clock: FakeClock) -> tuple[dict[str, Any], Callable[[], Any]]:
    return {"attempts": 2}, Flaky(10)


def deadline_setup(clock: FakeClock) -> tuple[dict[str, Any], Callable[[], Any]]:
    return {"deadline": 0.15}, Flaky(10)


def budget_setup(clock: FakeClock) -> tuple[dict[str, Any], Callable[[], Any]]:
    return {"budget": one_retry_budget(clock)}, Flaky(10)


@notes_supported
@pytest.mark.parametrize(
    ("reason", "setup", "note"),
    [
        ("not_retryable", not_retryable_setup, "the error is not retryable"),
        ("attempts", attempts_setup, "attempts exhausted"),
        ("deadline", deadline_setup, "the next attempt would start past the deadline"),
        ("budget", budget_setup, "the retry budget is exhausted"),
    ],
    ids=["not-retryable", "attempts", "deadline", "budget"],
)
def test_gave_up_reason(
    reason: str,
    setup: Callable[[FakeClock], tuple[dict[str, Any], Callable[[], Any]]],
    note: str,
) -> None:
    # Each setup fails twice: the first failure is retried, the second
    # ends the call for the reason under test.
    clock = FakeClock()
    recorder = EventRecorder()
    kwargs, fetch = setup(clock)
    kwargs.setdefault("attempts", 5)
    policy = make_policy(clock=clock, listeners=(recorder,), **kwargs)

    with pytest.raises((Transient, Permanent)) as excinfo:
        policy.call(fetch)

    gave_up = recorder.gave_up()
    assert len(gave_up) == 1
    assert gave_up[0].reason == reason
    assert gave_up[0].attempts == 2
    assert gave_up[0].error is excinfo.value
    assert gave_up[0].exception_type == type(excinfo.value).__name__
    assert gave_up[0].elapsed == pytest.approx(0.1)
    assert len(recorder.scheduled()) == 1
    assert excinfo.value.__notes__ == [
        f"buttress: gave up on {gave_up[0].name} after 2 attempt(s) in 0.100 s ({note})"
    ]


@notes_supported
def test_budget_empty_before_first_retry() -> None:
    clock = FakeClock()
    budget = one_retry_budget(clock)
    policy = make_policy(attempts=5, clock=clock, budget=budget)
    with pytest.raises(Transient):
        policy.call(Flaky(10))

    flaky = Flaky(10)
    with pytest.raises(Transient) as excinfo:
        policy.call(flaky)

    assert flaky.calls == 1
    assert "the retry budget is exhausted" in excinfo.value.__notes__[0]
    stats = budget.statistics()
    assert stats.requests == 2
    assert stats.retries == 1
    assert stats.exhausted == 2


@pytest.mark.anyio
async def test_budget_gives_up_async() -> None:
    clock = FakeClock()
    recorder = EventRecorder()
    flaky = Flaky(10)
    policy = make_policy(
        attempts=5, clock=clock, budget=one_retry_budget(clock), listeners=(recorder,)
    )

    with pytest.raises(Transient):
        await policy.acall(flaky.acall)

    assert flaky.calls == 2
    assert recorder.gave_up()[0].reason == "budget"


# -- block form, sync -----------------------------------------------------------------


def run_numbered_block(
    policy: RetryPolicy,
    body: Callable[[], object],
    numbers: list[int],
    name: str = "block",
) -> None:
    """
    Run *body* in a retried block, appending each attempt's number.
    """
    for attempt in policy.retry_context(name=name):
        with attempt:
            numbers.append(attempt.number)
            body()


def raise_error(error: BaseException | type[BaseException]) -> Callable[[], None]:
    def body() -> None:
        raise error

    return body


def test_block_success_ends_loop() -> None:
    clock = FakeClock()
    numbers = []

    for attempt in make_policy(clock=clock).retry_context():
        with attempt:
            numbers.append(attempt.number)

    assert numbers == [1]
    assert clock.sleeps == []


def test_block_retries_then_succeeds() -> None:
    clock = FakeClock()
    flaky = Flaky(2)
    numbers = []
    results = []

    for attempt in make_policy(attempts=5, clock=clock).retry_context():
        with attempt:
            numbers.append(attempt.number)
            results.append(flaky())

    assert numbers == [1, 2, 3]
    assert results == ["ok"]
    assert clock.sleeps == [0.1, 0.1]


@notes_supported
def test_block_gives_up() -> None:
    recorder = EventRecorder()
    flaky = Flaky(10)
    numbers = []

    policy = make_policy(attempts=3, listeners=(recorder,))
    with pytest.raises(Transient) as excinfo:
        run_numbered_block(policy, flaky, numbers, name="load-config")

    assert numbers == [1, 2, 3]
    assert excinfo.value is flaky.raised[-1]
    assert excinfo.value.__context__ is None
    assert "load-config after 3 attempt(s)" in excinfo.value.__notes__[0]
    assert {event.name for event in recorder.events} == {"load-config"}
    assert recorder.gave_up()[0].reason == "attempts"


def test_block_not_retryable_at_once() -> None:
    clock = FakeClock()
    numbers: list[int] = []
    policy = make_policy(clock=clock, retry_on=Transient)

    with pytest.raises(Permanent):
        run_numbered_block(policy, raise_error(Permanent("bad input")), numbers)

    assert numbers == [1]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "retry_on", [BaseException, lambda exc: True], ids=["base-exception", "predicate"]
)
@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_block_interrupt_not_retried(retry_on: Any, error: type[BaseException]) -> None:
    clock = FakeClock()
    recorder = EventRecorder()
    numbers: list[int] = []

    policy = make_policy(
        attempts=5, retry_on=retry_on, clock=clock, listeners=(recorder,)
    )
    with pytest.raises(error):
        run_numbered_block(policy, raise_error(error), numbers)

    assert numbers == [1]
    assert clock.sleeps == []
    # Never caught, so not even a give-up is reported.
    assert recorder.events == []


def test_block_time_remaining() -> None:
    clock = FakeClock()
    seen = []

    policy = make_policy(deadline=10.0, backoff=Backoff.constant(2.0), clock=clock)
    for attempt in policy.retry_context():
        with attempt:
            seen.append(time_remaining())
            if attempt.number < 3:
                raise Transient

    assert seen == [10.0, 8.0, 6.0]
    assert time_remaining() is None


def test_block_attempt_timeout() -> None:
    clock = FakeClock()
    seen = []

    policy = make_policy(attempts=2, attempt_timeout=3.0, clock=clock)
    for attempt in policy.retry_context():
        with attempt:
            seen.append(time_remaining())
            if attempt.number < 2:
                raise Transient

    assert seen == [3.0, 3.0]


def test_block_records_budget_request() -> None:
    clock = FakeClock()
    budget = one_retry_budget(clock)
    numbers: list[int] = []
    policy = make_policy(clock=clock, budget=budget)

    with pytest.raises(Transient):
        run_numbered_block(policy, raise_error(Transient), numbers)

    assert numbers == [1, 2]
    assert budget.statistics().requests == 1


# -- block form, async ---------------------------------------------------------------


@pytest.mark.anyio
async def test_async_block_retries_then_succeeds() -> None:
    clock = FakeClock()
    flaky = Flaky(2)
    numbers = []
    results = []

    async for attempt in make_policy(attempts=5, clock=clock).retry_context():
        with attempt:
            numbers.append(attempt.number)
            results.append(await flaky.acall())

    assert numbers == [1, 2, 3]
    assert results == ["ok"]
    assert clock.sleeps == [0.1, 0.1]


@pytest.mark.anyio
async def test_async_block_gives_up() -> None:
    flaky = Flaky(10)
    numbers = []

    async def retried_block() -> None:
        async for attempt in make_policy(attempts=3).retry_context():
            with attempt:
                numbers.append(attempt.number)
                await flaky.acall()

    with pytest.raises(Transient) as excinfo:
        await retried_block()

    assert numbers == [1, 2, 3]
    assert excinfo.value is flaky.raised[-1]
    assert excinfo.value.__context__ is None


@pytest.mark.anyio
async def test_async_block_cancel_not_retried() -> None:
    clock = FakeClock()
    numbers = []
    inside = anyio.Event()

    async def retried_block() -> None:
        policy = make_policy(attempts=5, retry_on=lambda exc: True, clock=clock)
        async for attempt in policy.retry_context():
            with attempt:
                numbers.append(attempt.number)
                inside.set()
                await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(retried_block)
        await inside.wait()
        group.cancel_scope.cancel()

    assert numbers == [1]
    assert clock.sleeps == []


# -- native asyncio cancellation ---------------------------------------------------


def cancel_natively(
    mode: str, entry: str, retry_on: Any, deadline: float | None
) -> tuple[int, list[type[BaseException]], type[BaseException], list[Any]]:
    """
    Cancel a retried coroutine with plain asyncio and return how many
    attempts ran, what left the retried call, what the caller saw, and
    every retry sleep and event.
    """
    clock = FakeClock()
    recorder = EventRecorder()
    policy = make_policy(
        attempts=5,
        retry_on=retry_on,
        deadline=deadline,
        clock=clock,
        listeners=(recorder,),
    )
    calls = 0
    left_call: list[type[BaseException]] = []

    async def hang() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(3_600)

    retried: Callable[[], Awaitable[None]]
    if entry == "decorator":
        retried = policy(hang)
    else:
        retried = functools.partial(policy.acall, hang)

    async def observed() -> None:
        try:
            await retried()
        except BaseException as exc:
            left_call.append(type(exc))
            raise

    async def main() -> type[BaseException]:
        try:
            if mode == "wait_for":
                await asyncio.wait_for(observed(), 60.0)
            elif mode == "timeout":
                async with asyncio.timeout(60.0):  # type: ignore[attr-defined]
                    await observed()
            else:
                task = asyncio.get_running_loop().create_task(observed())
                while calls == 0:
                    await asyncio.sleep(0)
                task.cancel()
                await task
        except BaseException as exc:
            return type(exc)
        raise AssertionError("the retried call was not cancelled")

    loop = VirtualTimeEventLoop()
    try:
        caller_saw = loop.run_until_complete(main())
    finally:
        loop.close()
    return calls, left_call, caller_saw, [*clock.sleeps, *recorder.events]


@pytest.mark.parametrize(
    "mode",
    [
        "wait_for",
        pytest.param(
            "timeout",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 11), reason="asyncio.timeout needs Python 3.11"
            ),
        ),
        "task_cancel",
    ],
)
@pytest.mark.parametrize("entry", ["acall", "decorator"])
@pytest.mark.parametrize(
    "retry_on", [BaseException, lambda exc: True], ids=["base-exception", "predicate"]
)
@pytest.mark.parametrize("deadline", [None, 600.0], ids=["no-deadline", "deadline"])
def test_native_cancel_never_retried(
    mode: str, entry: str, retry_on: Any, deadline: float | None
) -> None:
    calls, left_call, caller_saw, retry_activity = cancel_natively(
        mode, entry, retry_on, deadline
    )

    assert calls == 1
    assert left_call == [asyncio.CancelledError]
    # asyncio.TimeoutError is the builtin TimeoutError from Python 3.11 on.
    expected = asyncio.CancelledError if mode == "task_cancel" else asyncio.TimeoutError
    assert caller_saw is expected
    # No sleep and no retry event: the cancellation was never caught.
    assert retry_activity == []


# -- decorated methods ----------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{}, {"retry_on_result": lambda value: False}, {"attempt_timeout": 60.0}],
    ids=["fast", "result-predicate", "attempt-timeout"],
)
def test_decorated_sync_methods_retry(extra: dict[str, Any]) -> None:
    policy = make_policy(attempts=3, **extra)

    class Client:
        failures = 0

        @policy
        def instance(self, value: int) -> int:
            return self._fail_twice(value)

        @policy
        @classmethod
        def class_method(cls, value: int) -> int:
            return cls._fail_twice(value)

        @policy
        @staticmethod
        def static(value: int) -> int:
            return Client._fail_twice(value)

        @classmethod
        def _fail_twice(cls, value: int) -> int:
            cls.failures += 1
            if cls.failures % 3:
                raise Transient
            return value

    client = Client()

    assert client.instance(1) == 1
    assert Client.class_method(2) == 2
    assert client.class_method(3) == 3
    assert Client.static(4) == 4
    assert Client.failures == 12
    assert not inspect.iscoroutinefunction(Client.instance)
    assert not inspect.iscoroutinefunction(Client.class_method)
    assert not inspect.iscoroutinefunction(Client.static)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "extra",
    [{}, {"retry_on_result": lambda value: False}, {"deadline": 60.0}],
    ids=["fast", "result-predicate", "deadline"],
)
async def test_decorated_async_methods_retry(extra: dict[str, Any]) -> None:
    policy = make_policy(attempts=3, **extra)

    class Client:
        failures = 0

        @policy
        async def instance(self, value: int) -> int:
            return await self._fail_twice(value)

        @policy
        @classmethod
        async def class_method(cls, value: int) -> int:
            return await cls._fail_twice(value)

        @policy
        @staticmethod
        async def static(value: int) -> int:
            return await Client._fail_twice(value)

        @classmethod
        async def _fail_twice(cls, value: int) -> int:
            await anyio.lowlevel.checkpoint()
            cls.failures += 1
            if cls.failures % 3:
                raise Transient
            return value

    client = Client()

    assert inspect.iscoroutinefunction(Client.instance)
    assert inspect.iscoroutinefunction(client.instance)
    assert inspect.iscoroutinefunction(Client.class_method)
    assert inspect.iscoroutinefunction(Client.static)
    assert await client.instance(1) == 1
    assert await Client.class_method(2) == 2
    assert await Client.static(3) == 3
    assert Client.failures == 9


def test_decorated_method_keeps_metadata() -> None:
    class Client:
        @make_policy()
        @classmethod
        async def fetch(cls, key: str) -> str:
            """Fetch a key."""
            return key

    assert Client.fetch.__name__ == "fetch"
    assert Client.fetch.__doc__ == "Fetch a key."
    assert list(inspect.signature(Client.fetch).parameters) == ["key"]


# -- the caller's exception context ------------------------------------------------


class FreshOrChained:
    """
    A callable that raises a new `Transient` on every call.

    With *chained*, it raises the error while handling its own `KeyError`,
    as a client that wraps a lower-level error does.
    """

    def __init__(self, chained: bool) -> None:
        self.chained = chained
        self.inner: list[KeyError] = []

    def __call__(self) -> None:
        if not self.chained:
            raise Transient("fresh")
        inner = KeyError("lower level")
        self.inner.append(inner)
        try:
            raise inner
        except KeyError:
            raise Transient("wrapped") from None

    async def acall(self) -> None:
        await anyio.lowlevel.checkpoint()
        self()


SYNC_ENTRIES: dict[str, Callable[[RetryPolicy, Callable[[], None]], None]] = {
    "call": lambda policy, fn: policy.call(fn),
    "decorator": lambda policy, fn: policy(fn)(),
    "decorator-general": lambda policy, fn: with_result_predicate(policy)(fn)(),
    "block": lambda policy, fn: run_block(policy, fn),
}


def with_result_predicate(policy: RetryPolicy) -> RetryPolicy:
    # A result predicate moves the decorator off its fast path.
    return attrs.evolve(policy, retry_on_result=lambda value: False)


def run_block(policy: RetryPolicy, fn: Callable[[], None]) -> None:
    for attempt in policy.retry_context():
        with attempt:
            fn()


@pytest.mark.parametrize("entry", sorted(SYNC_ENTRIES))
@pytest.mark.parametrize("chained", [False, True], ids=["fresh", "chained"])
def test_exception_context_kept(entry: str, chained: bool) -> None:
    fn = FreshOrChained(chained)

    with pytest.raises(Transient) as excinfo:
        SYNC_ENTRIES[entry](make_policy(attempts=3), fn)

    expected = fn.inner[-1] if chained else None
    assert excinfo.value.__context__ is expected
    assert excinfo.value.__cause__ is None


async def run_async_block(policy: RetryPolicy, fn: FreshOrChained) -> None:
    async for attempt in policy.retry_context():
        with attempt:
            await fn.acall()


ASYNC_ENTRIES: dict[str, Callable[[RetryPolicy, FreshOrChained], Awaitable[None]]] = {
    "acall": lambda policy, fn: policy.acall(fn.acall),
    "decorator": lambda policy, fn: policy(fn.acall)(),
    "decorator-deadline": lambda policy, fn: with_deadline(policy)(fn.acall)(),
    "block": run_async_block,
}


def with_deadline(policy: RetryPolicy) -> RetryPolicy:
    # A deadline moves the async decorator off its fast path.
    return attrs.evolve(policy, deadline=600.0)


@pytest.mark.anyio
@pytest.mark.parametrize("entry", sorted(ASYNC_ENTRIES))
@pytest.mark.parametrize("chained", [False, True], ids=["fresh", "chained"])
async def test_exception_context_kept_async(entry: str, chained: bool) -> None:
    fn = FreshOrChained(chained)

    with pytest.raises(Transient) as excinfo:
        await ASYNC_ENTRIES[entry](make_policy(attempts=3), fn)

    expected = fn.inner[-1] if chained else None
    assert excinfo.value.__context__ is expected
    assert excinfo.value.__cause__ is None


# -- isolation between concurrent calls --------------------------------------------


def test_decorated_threads_isolated() -> None:
    clock = FakeClock()
    threads = 8
    barrier = threading.Barrier(threads, timeout=10)
    attempts: dict[int, int] = {}

    @make_policy(attempts=4, clock=clock)
    def fetch(index: int) -> tuple[int, int]:
        attempts[index] = attempts.get(index, 0) + 1
        if attempts[index] == 1:
            # Every thread is inside its first attempt at once.
            barrier.wait()
        if attempts[index] <= index % 4:
            raise Transient
        return index, attempts[index]

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(fetch, range(threads)))

    assert results == [(index, index % 4 + 1) for index in range(threads)]
    assert len(clock.sleeps) == sum(index % 4 for index in range(threads))


@pytest.mark.anyio
async def test_decorated_tasks_isolated() -> None:
    clock = FakeClock()
    tasks = 50
    attempts: dict[int, int] = {}
    results: dict[int, tuple[int, int]] = {}

    @make_policy(attempts=5, clock=clock)
    async def fetch(index: int) -> tuple[int, int]:
        attempts[index] = attempts.get(index, 0) + 1
        # Let every other task run between two attempts of this one.
        await anyio.lowlevel.checkpoint()
        if attempts[index] <= index % 5:
            raise Transient
        return index, attempts[index]

    async def worker(index: int) -> None:
        results[index] = await fetch(index)

    async with anyio.create_task_group() as group:
        for index in range(tasks):
            group.start_soon(worker, index)

    assert results == {index: (index, index % 5 + 1) for index in range(tasks)}
    assert len(clock.sleeps) == sum(index % 5 for index in range(tasks))
