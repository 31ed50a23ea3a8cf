"""
Tests of RetryPolicy: sync and async calls, what is retried, deadlines,
server hints, the decorator, events and logging.
"""

from __future__ import annotations

import inspect
import logging
import random
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _virtual_time import virtual_time_backends
from buttress import (
    Backoff,
    ButtressError,
    CircuitOpen,
    DeadlineExceeded,
    Event,
    ExecutorSaturated,
    LoggingListener,
    Rejected,
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

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


class Transient(Exception):
    """
    An error that carries a server-suggested delay.
    """

    def __init__(self, message: str = "transient", retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def make_policy(**kwargs: Any) -> RetryPolicy:
    kwargs.setdefault("clock", FakeClock())
    kwargs.setdefault("backoff", Backoff.constant(0.1))
    kwargs.setdefault("listeners", ())
    return RetryPolicy(**kwargs)


class Flaky:
    """
    A callable that raises a new error on its first *failures* calls, then
    returns ``"ok"``.
    """

    def __init__(
        self, failures: int, error: Callable[[], BaseException] = Transient
    ) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.raised: list[BaseException] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            exc = self.error()
            self.raised.append(exc)
            raise exc
        return "ok"

    async def acall(self) -> str:
        await anyio.lowlevel.checkpoint()
        return self()


# -- sync -------------------------------------------------------------------


def test_call_first_attempt_success() -> None:
    clock = FakeClock()
    flaky = Flaky(0)

    assert make_policy(clock=clock).call(flaky) == "ok"
    assert flaky.calls == 1
    assert clock.sleeps == []


def test_call_retry_then_success() -> None:
    clock = FakeClock()
    flaky = Flaky(2)

    assert make_policy(attempts=3, clock=clock).call(flaky) == "ok"
    assert flaky.calls == 3
    assert clock.sleeps == [0.1, 0.1]


def test_call_passes_arguments() -> None:
    def add(a: int, b: int, *, scale: int) -> int:
        return (a + b) * scale

    assert make_policy().call(add, 1, 2, scale=10) == 30


def test_call_exhaustion_reraises_own_error() -> None:
    flaky = Flaky(10)

    with pytest.raises(Transient) as excinfo:
        make_policy(attempts=3).call(flaky)

    assert excinfo.value is flaky.raised[-1]
    assert type(excinfo.value) is Transient
    assert flaky.calls == 3


def test_call_exhaustion_keeps_context() -> None:
    # Each attempt's error is raised afresh, not chained to the attempt
    # before it, so the traceback shows only the caller's own failure.
    with pytest.raises(Transient) as excinfo:
        make_policy(attempts=3).call(Flaky(10))

    assert excinfo.value.__context__ is None
    assert excinfo.value.__cause__ is None


@notes_supported
def test_call_exhaustion_note() -> None:
    def fetch() -> None:
        raise Transient

    with pytest.raises(Transient) as excinfo:
        make_policy(attempts=3, backoff=Backoff.constant(0.25)).call(fetch)

    notes = excinfo.value.__notes__
    assert len(notes) == 1
    assert "fetch" in notes[0]
    assert "3 attempt(s)" in notes[0]
    assert "0.500 s" in notes[0]
    assert "attempts exhausted" in notes[0]


@notes_supported
def test_call_first_failure_no_note() -> None:
    # A first failure that is not retryable was never retried, so there is
    # nothing to explain.
    with pytest.raises(ValueError, match="bad input") as excinfo:
        make_policy(retry_on=OSError).call(Flaky(1, lambda: ValueError("bad input")))

    assert not hasattr(excinfo.value, "__notes__")


def test_retry_on_type_mismatch() -> None:
    flaky = Flaky(1, lambda: ValueError("bad input"))

    with pytest.raises(ValueError, match="bad input"):
        make_policy(retry_on=OSError).call(flaky)

    assert flaky.calls == 1


def test_retry_on_tuple() -> None:
    errors = iter([ConnectionError(), TimeoutError()])

    def fetch() -> str:
        error = next(errors, None)
        if error is not None:
            raise error
        return "ok"

    assert make_policy(retry_on=(ConnectionError, TimeoutError)).call(fetch) == "ok"


def test_retry_on_predicate() -> None:
    messages = iter(["try again", "permanent"])
    calls = 0

    def fetch() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError(next(messages))

    policy = make_policy(attempts=5, retry_on=lambda exc: "again" in str(exc))
    with pytest.raises(RuntimeError, match="permanent"):
        policy.call(fetch)

    assert calls == 2


@pytest.mark.parametrize(
    "retry_on",
    [BaseException, lambda exc: True],
    ids=["base-exception", "predicate"],
)
@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_interrupt_never_retried(retry_on: Any, error: type[BaseException]) -> None:
    clock = FakeClock()
    flaky = Flaky(5, error)

    with pytest.raises(error):
        make_policy(attempts=5, retry_on=retry_on, clock=clock).call(flaky)

    assert flaky.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [KeyboardInterrupt(), SystemExit(), GeneratorExit()],
    ids=["keyboard-interrupt", "system-exit", "generator-exit"],
)
def test_is_retryable_rejects_interrupts(error: BaseException) -> None:
    assert not make_policy(retry_on=BaseException).is_retryable(error)
    assert not make_policy(retry_on=lambda exc: True).is_retryable(error)


@pytest.mark.parametrize(
    "error",
    [
        lambda: CircuitOpen("open", name="db", retry_after=1.0),
        lambda: ExecutorSaturated(
            "full", reason="queue_full", max_workers=1, queue_size=1
        ),
        lambda: DeadlineExceeded("late"),
    ],
    ids=["circuit-open", "executor-saturated", "deadline-exceeded"],
)
def test_local_error_not_retried(error: Callable[[], BaseException]) -> None:
    flaky = Flaky(1, error)

    with pytest.raises(type(error())):
        make_policy(attempts=5).call(flaky)

    assert flaky.calls == 1


@pytest.mark.parametrize(
    "retry_on", [CircuitOpen, Rejected, (OSError, CircuitOpen)], ids=str
)
def test_local_error_retried_when_named(retry_on: Any) -> None:
    flaky = Flaky(2, lambda: CircuitOpen("open", name="db", retry_after=0.0))

    assert make_policy(attempts=5, retry_on=retry_on).call(flaky) == "ok"
    assert flaky.calls == 3


def test_local_error_retried_under_root_type() -> None:
    flaky = Flaky(1, lambda: CircuitOpen("open", name="db", retry_after=0.0))

    assert make_policy(attempts=3, retry_on=ButtressError).call(flaky) == "ok"
    assert flaky.calls == 2


def test_local_error_not_retried_by_adapter_type() -> None:
    # Naming an adapter's own error type, itself a ButtressError, does not
    # opt in to retrying rejections.
    flaky = Flaky(1, lambda: CircuitOpen("open", name="db", retry_after=0.0))
    policy = make_policy(attempts=3, retry_on=(ClientError, Exception))

    with pytest.raises(CircuitOpen):
        policy.call(flaky)
    assert flaky.calls == 1


def test_own_deadline_error_keeps_its_context() -> None:
    # The function raises DeadlineExceeded itself while handling another
    # error; the policy has no deadline, so this is not the policy's.
    events: list[Event] = []
    calls = 0

    def inner_timeout() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("first")
        try:
            raise KeyError("lookup")
        except KeyError:
            raise DeadlineExceeded("inner timeout")  # noqa: B904

    policy = make_policy(
        attempts=3, retry_on=ConnectionError, listeners=[events.append]
    )
    with pytest.raises(DeadlineExceeded) as raised:
        policy.call(inner_timeout)

    assert raised.value.__cause__ is None
    assert isinstance(raised.value.__context__, KeyError)
    gave_up = [event for event in events if isinstance(event, RetryGaveUp)]
    assert [event.reason for event in gave_up] == ["not_retryable"]


def test_local_error_retried_by_predicate() -> None:
    flaky = Flaky(1, lambda: CircuitOpen("open", name="db", retry_after=0.0))
    policy = make_policy(retry_on=lambda exc: isinstance(exc, CircuitOpen))

    assert policy.call(flaky) == "ok"


class ClientError(ButtressError):
    """An adapter's own error, built on ButtressError like the Vault tree."""


class ClientErrorClassifier:
    def classify(self, exc: BaseException) -> Verdict:
        return Verdict(retryable=isinstance(exc, ClientError))


@pytest.mark.parametrize(
    "retry_on",
    [Exception, ClientError, ClientErrorClassifier()],
    ids=["exception", "type", "classifier"],
)
def test_adapter_error_on_buttress_error_retried(retry_on: Any) -> None:
    flaky = Flaky(2, lambda: ClientError("server busy"))

    assert make_policy(attempts=5, retry_on=retry_on).call(flaky) == "ok"
    assert flaky.calls == 3


# -- deadline ---------------------------------------------------------------


@notes_supported
def test_deadline_stops_before_overrun() -> None:
    clock = FakeClock()
    flaky = Flaky(10)
    policy = make_policy(
        attempts=10, deadline=1.0, backoff=Backoff.constant(0.4), clock=clock
    )

    with pytest.raises(Transient) as excinfo:
        policy.call(flaky)

    # Attempts start at 0.0, 0.4 and 0.8; a sleep to 1.2 would end past the
    # deadline, so the policy gives up instead.
    assert clock.sleeps == [0.4, 0.4]
    assert flaky.calls == 3
    assert (
        "the next attempt would start past the deadline" in excinfo.value.__notes__[0]
    )


@given(
    deadline=st.floats(min_value=0.01, max_value=100.0),
    work=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=30),
    seed=st.integers(),
)
def test_deadline_bounds_every_sleep(
    deadline: float, work: list[float], seed: int
) -> None:
    clock = FakeClock(start=50.0)
    starts: list[float] = []
    durations = iter(work * 10)

    def fetch() -> None:
        starts.append(clock.monotonic())
        clock.advance(next(durations, 0.0))
        raise Transient

    policy = RetryPolicy(
        attempts=20,
        deadline=deadline,
        backoff=Backoff(initial=0.05, maximum=10.0, rng=random.Random(seed)),
        clock=clock,
        listeners=(),
    )
    with pytest.raises(Transient):
        policy.call(fetch)

    sleep_ends = starts[1:]
    assert all(end < 50.0 + deadline for end in sleep_ends)


def test_time_remaining_sync() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    def fetch() -> str:
        seen.append(time_remaining())
        if len(seen) < 3:
            raise Transient
        return "ok"

    policy = make_policy(deadline=10.0, backoff=Backoff.constant(2.0), clock=clock)

    assert policy.call(fetch) == "ok"
    assert seen == [10.0, 8.0, 6.0]
    assert time_remaining() is None


def test_time_remaining_decorated() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    @make_policy(deadline=5.0, backoff=Backoff.constant(1.5), clock=clock)
    def fetch() -> str:
        seen.append(time_remaining())
        if len(seen) < 2:
            raise Transient
        return "ok"

    assert fetch() == "ok"
    assert seen == [5.0, 3.5]


def test_time_remaining_without_deadline() -> None:
    seen: list[float | None] = []
    make_policy().call(lambda: seen.append(time_remaining()))

    assert seen == [None]


def test_nested_deadline_keeps_earlier() -> None:
    clock = FakeClock()
    inner = make_policy(deadline=100.0, clock=clock)
    outer = make_policy(deadline=3.0, clock=clock)
    seen: list[float | None] = []

    outer.call(lambda: inner.call(lambda: seen.append(time_remaining())))

    assert seen == [3.0]


# -- server hints -----------------------------------------------------------


@pytest.mark.parametrize(
    ("hinted", "expected"),
    [(0.0, 0.5), (-3.0, 0.5), (2.0, 2.0), (1_000.0, 30.0), (float("nan"), 0.1)],
    ids=["zero", "negative", "inside", "huge", "nan"],
)
def test_hint_floor_and_cap(hinted: float, expected: float) -> None:
    clock = FakeClock()
    policy = make_policy(
        attempts=2,
        clock=clock,
        hint=lambda exc: getattr(exc, "retry_after", None),
        hint_floor=0.5,
        hint_cap=30.0,
    )

    policy.call(Flaky(1, lambda: Transient(retry_after=hinted)))

    assert clock.sleeps == [expected]


def test_hint_floor_defaults_to_initial() -> None:
    clock = FakeClock()
    policy = make_policy(
        attempts=2,
        clock=clock,
        backoff=Backoff.constant(0.75),
        hint=lambda exc: 0.0,
    )

    policy.call(Flaky(1))

    assert clock.sleeps == [0.75]


def test_hint_none_uses_backoff() -> None:
    clock = FakeClock()
    policy = make_policy(attempts=2, clock=clock, hint=lambda exc: None)

    policy.call(Flaky(1))

    assert clock.sleeps == [0.1]


def test_hint_floor_above_cap_rejected() -> None:
    with pytest.raises(ValueError, match=r"hint_floor=5\.0") as excinfo:
        RetryPolicy(hint_floor=5.0, hint_cap=1.0)

    assert "hint_cap=1.0" in str(excinfo.value)


# -- decorator --------------------------------------------------------------


def test_decorator_keeps_metadata() -> None:
    def fetch(key: str) -> str:
        """Fetch a key."""
        return key

    decorated = make_policy()(fetch)

    assert decorated.__name__ == "fetch"
    assert decorated.__doc__ == "Fetch a key."
    assert decorated.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert inspect.signature(decorated) == inspect.signature(fetch)
    assert not inspect.iscoroutinefunction(decorated)
    assert decorated("k") == "k"


def test_decorator_async_stays_coroutine() -> None:
    async def fetch(key: str) -> str:
        """Fetch a key."""
        return key

    decorated = make_policy()(fetch)

    assert inspect.iscoroutinefunction(decorated)
    assert decorated.__name__ == "fetch"
    assert decorated.__doc__ == "Fetch a key."


def test_decorator_on_methods() -> None:
    policy = make_policy()

    class Client:
        @policy
        def instance(self, value: int) -> int:
            return value

        @policy
        @classmethod
        def class_method(cls, value: int) -> int:
            return value

        @policy
        @staticmethod
        def static(value: int) -> int:
            return value

    assert Client().instance(1) == 1
    assert Client.class_method(2) == 2
    assert Client.static(3) == 3


def test_decorator_retries() -> None:
    flaky = Flaky(2)

    @make_policy(attempts=3)
    def fetch(prefix: str) -> str:
        return prefix + flaky()

    assert fetch("result: ") == "result: ok"
    assert flaky.calls == 3


# -- concurrency ------------------------------------------------------------


def test_threads_do_not_share_state() -> None:
    clock = FakeClock()
    policy = make_policy(attempts=3, clock=clock)
    threads = 8
    barrier = threading.Barrier(threads, timeout=10)

    def worker(index: int) -> str:
        calls = 0

        def fetch() -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                # Every thread is inside its first attempt at once.
                barrier.wait()
            if calls < 3:
                raise Transient
            return f"done {index} after {calls}"

        return policy.call(fetch)

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(worker, range(threads)))

    assert results == [f"done {index} after 3" for index in range(threads)]
    assert len(clock.sleeps) == 2 * threads


# -- events and logging -----------------------------------------------------


def test_events_on_exhaustion() -> None:
    recorder = EventRecorder()
    flaky = Flaky(10)

    def fetch() -> str:
        return flaky()

    with pytest.raises(Transient):
        make_policy(attempts=3, listeners=(recorder,)).call(fetch)

    scheduled = recorder.of_type(RetryScheduled)
    gave_up = recorder.of_type(RetryGaveUp)
    assert [event.attempt for event in scheduled] == [1, 2]
    assert [event.delay for event in scheduled] == [0.1, 0.1]
    assert {event.exception_type for event in scheduled} == {"Transient"}
    assert {event.reason for event in scheduled} == {"error"}
    assert all(event.name.endswith("fetch") for event in recorder.events)
    assert len(gave_up) == 1
    assert gave_up[0].attempts == 3
    assert gave_up[0].reason == "attempts"
    assert gave_up[0].error is flaky.raised[-1]
    assert gave_up[0].elapsed == pytest.approx(0.2)


def test_events_on_success() -> None:
    recorder = EventRecorder()

    make_policy(attempts=3, listeners=(recorder,)).call(Flaky(1))

    assert len(recorder.of_type(RetryScheduled)) == 1
    assert recorder.of_type(RetryGaveUp) == []


def test_events_hint_reason() -> None:
    recorder = EventRecorder()
    policy = make_policy(attempts=2, listeners=(recorder,), hint=lambda exc: 1.0)

    policy.call(Flaky(1))

    assert recorder.of_type(RetryScheduled)[0].reason == "hint"


def test_failing_listener_does_not_break_call(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    with caplog.at_level(logging.ERROR, logger="buttress"):
        result = make_policy(listeners=(broken,)).call(Flaky(1))

    assert result == "ok"
    assert "event listener" in caplog.text


def test_logging_hides_messages(caplog: pytest.LogCaptureFixture) -> None:
    def login() -> None:
        raise Transient("login failed with token=s.SECRET")

    policy = make_policy(attempts=3, listeners=(LoggingListener(),))
    with caplog.at_level(logging.DEBUG, logger="buttress"), pytest.raises(Transient):
        policy.call(login)

    records = [r for r in caplog.records if r.name == "buttress.retry"]
    assert len(records) == 3
    assert all(r.levelno == logging.WARNING for r in records)
    assert "retrying" in records[0].getMessage()
    assert "login" in records[0].getMessage()
    assert "gave up" in records[-1].getMessage()
    assert "s.SECRET" not in caplog.text
    assert all(r.exc_info is None for r in records)


def test_logging_messages_opt_in(caplog: pytest.LogCaptureFixture) -> None:
    def login() -> None:
        raise Transient("login failed with token=s.SECRET")

    policy = make_policy(
        attempts=2, listeners=(LoggingListener(include_messages=True),)
    )
    with caplog.at_level(logging.WARNING, logger="buttress"), pytest.raises(Transient):
        policy.call(login)

    assert "s.SECRET" in caplog.text


def test_logging_silent_on_plain_failure(caplog: pytest.LogCaptureFixture) -> None:
    policy = make_policy(retry_on=OSError, listeners=(LoggingListener(),))
    with (
        caplog.at_level(logging.DEBUG, logger="buttress"),
        pytest.raises(ValueError, match="bad input"),
    ):
        policy.call(Flaky(1, lambda: ValueError("bad input")))

    assert caplog.records == []


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"attempts": 0}, ValueError, "attempts=0"),
        ({"attempts": 2.5}, TypeError, "attempts=2.5"),
        ({"deadline": -1}, ValueError, "deadline=-1.0"),
        ({"deadline": "soon"}, TypeError, "deadline='soon'"),
        ({"attempt_timeout": 0}, ValueError, "attempt_timeout=0.0"),
        ({"retry_on": 3}, TypeError, "retry_on=3"),
        ({"retry_on": (OSError, 3)}, TypeError, "retry_on=("),
        ({"retry_on_result": 3}, TypeError, "retry_on_result=3"),
        ({"hint_cap": 0}, ValueError, "hint_cap=0.0"),
    ],
)
def test_invalid_config_message(
    kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as excinfo:
        RetryPolicy(**kwargs)

    assert "RetryPolicy" in str(excinfo.value)
    assert fragment in str(excinfo.value)


# -- async ------------------------------------------------------------------


@pytest.mark.anyio
async def test_acall_first_attempt_success() -> None:
    flaky = Flaky(0)

    assert await make_policy().acall(flaky.acall) == "ok"
    assert flaky.calls == 1


@pytest.mark.anyio
async def test_acall_retry_then_success() -> None:
    clock = FakeClock()
    flaky = Flaky(2)

    assert await make_policy(attempts=3, clock=clock).acall(flaky.acall) == "ok"
    assert flaky.calls == 3
    assert clock.sleeps == [0.1, 0.1]


@pytest.mark.anyio
async def test_acall_exhaustion_reraises_own_error() -> None:
    flaky = Flaky(10)

    with pytest.raises(Transient) as excinfo:
        await make_policy(attempts=3).acall(flaky.acall)

    assert excinfo.value is flaky.raised[-1]
    assert flaky.calls == 3


@pytest.mark.anyio
@notes_supported
async def test_acall_exhaustion_note() -> None:
    with pytest.raises(Transient) as excinfo:
        await make_policy(attempts=2).acall(Flaky(10).acall)

    assert "2 attempt(s)" in excinfo.value.__notes__[0]
    assert "attempts exhausted" in excinfo.value.__notes__[0]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "retry_on", [BaseException, lambda exc: True], ids=["base-exception", "predicate"]
)
@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
async def test_acall_interrupt_never_retried(
    retry_on: Any, error: type[BaseException]
) -> None:
    flaky = Flaky(5, error)

    with pytest.raises(error):
        await make_policy(attempts=5, retry_on=retry_on).acall(flaky.acall)

    assert flaky.calls == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "retry_on", [BaseException, lambda exc: True], ids=["base-exception", "predicate"]
)
@pytest.mark.parametrize("deadline", [None, 60.0], ids=["no-deadline", "deadline"])
async def test_acall_cancellation_never_retried(
    retry_on: Any, deadline: float | None
) -> None:
    clock = FakeClock()
    started = anyio.Event()
    calls = 0

    async def hang() -> None:
        nonlocal calls
        calls += 1
        started.set()
        await anyio.sleep_forever()

    policy = make_policy(attempts=5, retry_on=retry_on, deadline=deadline, clock=clock)
    async with anyio.create_task_group() as group:
        group.start_soon(policy.acall, hang)
        await started.wait()
        group.cancel_scope.cancel()

    assert calls == 1
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_acall_local_error_not_retried() -> None:
    flaky = Flaky(1, lambda: CircuitOpen("open", name="db", retry_after=1.0))

    with pytest.raises(CircuitOpen):
        await make_policy(attempts=5).acall(flaky.acall)

    assert flaky.calls == 1


@pytest.mark.anyio
async def test_acall_time_remaining() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    async def fetch() -> str:
        seen.append(time_remaining())
        if len(seen) < 3:
            raise Transient
        return "ok"

    policy = make_policy(deadline=10.0, backoff=Backoff.constant(2.0), clock=clock)

    assert await policy.acall(fetch) == "ok"
    assert seen == [10.0, 8.0, 6.0]
    assert time_remaining() is None


@pytest.mark.anyio
async def test_acall_deadline_stops_before_overrun() -> None:
    clock = FakeClock()
    flaky = Flaky(10)
    policy = make_policy(
        attempts=10, deadline=1.0, backoff=Backoff.constant(0.4), clock=clock
    )

    with pytest.raises(Transient):
        await policy.acall(flaky.acall)

    assert clock.sleeps == [0.4, 0.4]
    assert flaky.calls == 3


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_acall_deadline_ends_hung_attempt() -> None:
    clock = FakeClock()
    recorder = EventRecorder()
    first_error = Transient("first attempt failed")
    calls = 0

    async def fetch() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise first_error
        await anyio.sleep_forever()

    policy = make_policy(attempts=5, deadline=10.0, clock=clock, listeners=(recorder,))
    with pytest.raises(DeadlineExceeded) as excinfo:
        await policy.acall(fetch)

    assert isinstance(excinfo.value, TimeoutError)
    assert excinfo.value.__cause__ is first_error
    assert "fetch" in str(excinfo.value)
    assert calls == 2
    assert recorder.of_type(RetryGaveUp)[-1].reason == "deadline"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_acall_attempt_timeout_retries() -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            await anyio.sleep_forever()
        return "ok"

    policy = make_policy(attempts=3, attempt_timeout=5.0)

    assert await policy.acall(fetch) == "ok"
    assert calls == 3


@pytest.mark.anyio
async def test_acall_decorated_retries() -> None:
    flaky = Flaky(2)

    @make_policy(attempts=3)
    async def fetch(prefix: str) -> str:
        return prefix + await flaky.acall()

    assert await fetch("result: ") == "result: ok"
    assert flaky.calls == 3


@pytest.mark.anyio
async def test_tasks_do_not_share_state() -> None:
    clock = FakeClock()
    policy = make_policy(attempts=3, clock=clock)
    results: dict[int, str] = {}

    async def worker(index: int) -> None:
        calls = 0

        async def fetch() -> str:
            nonlocal calls
            calls += 1
            await anyio.lowlevel.checkpoint()
            if calls < 3:
                raise Transient
            return f"done {index} after {calls}"

        results[index] = await policy.acall(fetch)

    async with anyio.create_task_group() as group:
        for index in range(8):
            group.start_soon(worker, index)

    assert results == {index: f"done {index} after 3" for index in range(8)}
    assert len(clock.sleeps) == 16


@pytest.mark.anyio
async def test_acall_logging_hides_messages(caplog: pytest.LogCaptureFixture) -> None:
    async def login() -> None:
        raise Transient("login failed with token=s.SECRET")

    policy = make_policy(attempts=2, listeners=(LoggingListener(),))
    with (
        caplog.at_level(logging.DEBUG, logger="buttress"),
        pytest.raises(Transient),
    ):
        await policy.acall(login)

    assert "retrying" in caplog.text
    assert "s.SECRET" not in caplog.text
