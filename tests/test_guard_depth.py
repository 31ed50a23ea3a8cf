"""
Tests of Guard beyond the pipeline order: classifiers, replay safety,
budgets, health reasons, the decorators, adaptive limits fed by breaker
failures, and the time left as seen by the blocking function.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import anyio
import pytest

from _executor_helpers import executor
from _virtual_time import virtual_time_backends
from buttress import (
    AdaptiveLimit,
    Backoff,
    BoundedExecutor,
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    DeadlineExceeded,
    Event,
    Guard,
    LimitChanged,
    RetryBudget,
    RetryPolicy,
    Verdict,
    time_remaining,
)
from buttress.testing import FakeClock

START = 1_000.0


class RateLimited(Exception):
    pass


class Script:
    """
    A blocking function that raises the scripted errors in order, then
    returns ``"ok"``; records the thread and time left of every call.
    """

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.threads: list[str] = []
        self.remaining: list[float | None] = []

    def __call__(self) -> str:
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        self.remaining.append(time_remaining())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class VerdictTable:
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


class LimitRecorder:
    def __init__(self) -> None:
        self.changes: list[tuple[int, int, str]] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, LimitChanged):
            self.changes.append((event.old, event.new, event.reason))


def make_retry(clock: Any, **kwargs: Any) -> RetryPolicy:
    kwargs.setdefault("attempts", 3)
    kwargs.setdefault("backoff", Backoff.constant(1.0))
    kwargs.setdefault("listeners", ())
    return RetryPolicy(clock=clock, **kwargs)


def make_breaker(clock: Any, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("listeners", ())
    kwargs.setdefault("name", "db")
    return CircuitBreaker(clock=clock, **kwargs)


def fail() -> None:
    raise ConnectionError("dependency down")


# -- classifier -----------------------------------------------------------------------


def client_classifier() -> VerdictTable:
    return VerdictTable(
        {
            ConnectionError: Verdict(retryable=True, breaker_failure=True),
            RateLimited: Verdict(retryable=True, breaker_failure=None, retry_after=2.5),
            PermissionError: Verdict(retryable=False, breaker_failure=False),
        }
    )


def test_classifier_drives_retry_and_breaker() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=5)
    script = Script(ConnectionError(), RateLimited(), ConnectionError())
    guard = Guard(
        retry=make_retry(clock, attempts=5),
        breaker=breaker,
        classifier=client_classifier(),
        clock=clock,
    )

    assert guard.call(script) == "ok"
    assert script.calls == 4
    assert clock.sleeps == [1.0, 2.5, 1.0]
    stats = breaker.statistics()
    assert stats.failures == 2
    assert stats.ignored == 1
    assert stats.successes == 1


def test_classifier_overrides_retry_on() -> None:
    # The policy alone would retry PermissionError, an OSError.
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1)
    script = Script(PermissionError("denied"))
    guard = Guard(
        retry=make_retry(clock, retry_on=OSError),
        breaker=breaker,
        classifier=client_classifier(),
        clock=clock,
    )

    with pytest.raises(PermissionError):
        guard.call(script)

    assert script.calls == 1
    assert breaker.statistics().successes == 1
    assert breaker.state is CircuitState.CLOSED


def test_classifier_overrides_breaker_settings() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1, failure_on=KeyError)
    guard = Guard(breaker=breaker, classifier=client_classifier(), clock=clock)

    with pytest.raises(ConnectionError):
        guard.call(fail)

    assert breaker.state is CircuitState.OPEN


def test_classifier_not_asked_about_rejections() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1)
    classifier = client_classifier()
    guard = Guard(
        retry=make_retry(clock, attempts=5),
        breaker=breaker,
        classifier=classifier,
        clock=clock,
    )
    # The first attempt opens the breaker, which rejects the second.
    with pytest.raises(CircuitOpen):
        guard.call(Script(ConnectionError()))

    assert {type(exc) for exc in classifier.classified} == {ConnectionError}
    assert clock.sleeps == [1.0]


def test_call_deadline_is_breaker_failure() -> None:
    # The classifier counts every unknown error as a success, but a call
    # that the Guard's deadline cuts short still counts as a failure.
    release = threading.Event()
    breaker = make_breaker(FakeClock(start=START), failure_threshold=5)
    classifier = VerdictTable({})
    with executor(max_workers=1) as pool:
        guard = Guard(
            breaker=breaker, executor=pool, classifier=classifier, timeout=0.05
        )

        with pytest.raises(DeadlineExceeded):
            guard.call(release.wait, 30)

        release.set()

    assert breaker.statistics().failures == 1
    assert classifier.classified == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_deadline_is_breaker_failure() -> None:
    release = threading.Event()
    clock = LoopClock()
    breaker = make_breaker(clock, failure_threshold=5)
    with executor(max_workers=1) as pool:
        guard = Guard(
            breaker=breaker,
            executor=pool,
            classifier=VerdictTable({}),
            timeout=30.0,
            clock=clock,
        )

        with pytest.raises(DeadlineExceeded):
            await guard.run(release.wait, 300)

        release.set()

    stats = breaker.statistics()
    assert stats.failures == 1
    assert stats.ignored == 0


# -- replay safety --------------------------------------------------------------------


def replay_classifier() -> VerdictTable:
    return VerdictTable(
        {
            TimeoutError: Verdict(
                retryable=True, breaker_failure=True, outcome_known=False
            ),
            ConnectionRefusedError: Verdict(retryable=True, breaker_failure=True),
        }
    )


REPLAY_CASES = [
    ("safe", TimeoutError, 3),
    ("unsafe", TimeoutError, 1),
    ("safe", ConnectionRefusedError, 3),
    ("unsafe", ConnectionRefusedError, 3),
]
REPLAY_IDS = ["safe-unknown", "unsafe-unknown", "safe-known", "unsafe-known"]


@pytest.mark.parametrize(("mode", "error", "calls"), REPLAY_CASES, ids=REPLAY_IDS)
def test_call_replay_safety(mode: str, error: type[BaseException], calls: int) -> None:
    clock = FakeClock(start=START)
    script = Script(error("sent"), error("sent"))
    guard = Guard(retry=make_retry(clock), classifier=replay_classifier(), clock=clock)
    call = guard.call if mode == "safe" else guard.call_unsafe

    if calls == 1:
        with pytest.raises(error):
            call(script)
    else:
        assert call(script) == "ok"

    assert script.calls == calls


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "error", "calls"), REPLAY_CASES, ids=REPLAY_IDS)
async def test_run_replay_safety(
    mode: str, error: type[BaseException], calls: int
) -> None:
    clock = FakeClock(start=START)
    script = Script(error("sent"), error("sent"))
    with executor(max_workers=1) as pool:
        guard = Guard(
            retry=make_retry(clock),
            executor=pool,
            classifier=replay_classifier(),
            clock=clock,
        )
        run = guard.run if mode == "safe" else guard.run_unsafe

        if calls == 1:
            with pytest.raises(error):
                await run(script)
        else:
            assert await run(script) == "ok"

    assert script.calls == calls


def test_unsafe_without_classifier_uses_retry_on() -> None:
    clock = FakeClock(start=START)
    script = Script(TimeoutError("sent"))
    guard = Guard(retry=make_retry(clock), clock=clock)

    assert guard.call_unsafe(script) == "ok"
    assert script.calls == 2


def test_unsafe_unknown_counts_breaker_failure() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=5)
    guard = Guard(
        retry=make_retry(clock),
        breaker=breaker,
        classifier=replay_classifier(),
        clock=clock,
    )

    with pytest.raises(TimeoutError):
        guard.call_unsafe(Script(TimeoutError("sent")))

    assert breaker.statistics().failures == 1


# -- budget ---------------------------------------------------------------------------


def one_retry_budget(clock: FakeClock) -> RetryBudget:
    return RetryBudget(ratio=0.0, min_per_second=0.1, window=10.0, clock=clock)


def test_budget_caps_retries() -> None:
    clock = FakeClock(start=START)
    budget = one_retry_budget(clock)
    guard = Guard(retry=make_retry(clock, attempts=5), budget=budget, clock=clock)
    first = Script(*[ConnectionError()] * 10)
    second = Script(*[ConnectionError()] * 10)

    with pytest.raises(ConnectionError):
        guard.call(first)
    with pytest.raises(ConnectionError):
        guard.call(second)

    assert first.calls == 2
    assert second.calls == 1
    stats = guard.statistics().budget
    assert stats is not None
    assert stats.requests == 2
    assert stats.retries == 1
    assert stats.exhausted == 2


def test_budget_without_retry_adds_policy() -> None:
    clock = FakeClock(start=START)
    guard = Guard(budget=one_retry_budget(clock), clock=clock)
    script = Script(ConnectionError())

    assert guard.retry is not None
    assert guard.call(script) == "ok"
    assert script.calls == 2
    assert len(clock.sleeps) == 1


@pytest.mark.anyio
async def test_run_budget_caps_retries() -> None:
    clock = FakeClock(start=START)
    script = Script(*[ConnectionError()] * 10)
    with executor(max_workers=1) as pool:
        guard = Guard(
            retry=make_retry(clock, attempts=5),
            executor=pool,
            budget=one_retry_budget(clock),
            clock=clock,
        )

        with pytest.raises(ConnectionError):
            await guard.run(script)

    assert script.calls == 2


# -- health ---------------------------------------------------------------------------


def test_health_breaker_forced_open() -> None:
    breaker = make_breaker(FakeClock(start=START))
    guard = Guard(breaker=breaker)
    breaker.force_open()

    assert guard.health().reasons == ("breaker_forced_open",)

    breaker.reset()

    assert guard.health().healthy


def test_health_half_open_is_healthy() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1, reset_timeout=10.0)
    guard = Guard(breaker=breaker, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    clock.advance(10.0)

    assert guard.health().healthy


@pytest.mark.parametrize(
    ("kwargs", "submitted", "saturated"),
    [
        ({"max_workers": 1, "queue_size": 1}, 2, True),
        ({"max_workers": 1, "queue_size": 1}, 1, False),
        (
            {"max_workers": 4, "queue_size": 1, "adaptive": AdaptiveLimit(initial=1)},
            2,
            True,
        ),
    ],
    ids=["full", "queue-has-room", "full-at-adaptive-limit"],
)
def test_health_executor_saturated(
    kwargs: dict[str, Any], submitted: int, saturated: bool
) -> None:
    release = threading.Event()
    with executor(**kwargs) as pool:
        futures = [pool.submit(release.wait, 30) for _ in range(submitted)]
        guard = Guard(executor=pool)
        health = guard.health()
        release.set()
        for future in futures:
            future.result(timeout=10)

    expected = ("executor_saturated",) if saturated else ()
    assert health.reasons == expected
    assert health.healthy is not saturated


def test_health_executor_closed() -> None:
    pool = BoundedExecutor(max_workers=1, listeners=())
    guard = Guard(executor=pool)
    pool.shutdown()

    assert guard.health().reasons == ("executor_closed",)


def test_health_budget_exhausted() -> None:
    clock = FakeClock(start=START)
    budget = one_retry_budget(clock)
    guard = Guard(budget=budget, clock=clock)

    assert guard.health().healthy

    budget.try_withdraw()

    assert guard.health().reasons == ("budget_exhausted",)

    clock.advance(10.0)

    assert guard.health().healthy


def test_health_several_reasons() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=1)
    budget = one_retry_budget(clock)
    pool = BoundedExecutor(max_workers=1, listeners=())
    guard = Guard(breaker=breaker, executor=pool, budget=budget, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    pool.shutdown()
    budget.try_withdraw()

    health = guard.health()

    assert not health.healthy
    assert health.reasons == ("breaker_open", "executor_closed", "budget_exhausted")


# -- decorators -----------------------------------------------------------------------


def test_decorated_sync_runs_in_worker() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=5)
    script = Script(ConnectionError())
    with executor(max_workers=1, name="vault-io") as pool:
        guard = Guard(
            retry=make_retry(clock),
            breaker=breaker,
            executor=pool,
            timeout=10.0,
            clock=clock,
        )

        @guard
        def fetch(prefix: str) -> str:
            """Fetch a value."""
            return prefix + script()

        assert fetch("value: ") == "value: ok"

    assert not inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a value."
    assert all(name.startswith("vault-io-") for name in script.threads)
    assert script.remaining == [10.0, 9.0]
    assert breaker.statistics().failures == 1
    assert breaker.statistics().successes == 1


def test_decorated_sync_without_executor() -> None:
    guard = Guard()

    @guard
    def current_thread_name() -> str:
        return threading.current_thread().name

    assert current_thread_name() == threading.current_thread().name


@pytest.mark.anyio
async def test_decorated_async_in_loop_thread() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=5)
    loop_thread = threading.get_ident()
    threads: list[int] = []
    errors = [ConnectionError(), ConnectionError()]

    with executor(max_workers=1) as pool:
        guard = Guard(
            retry=make_retry(clock), breaker=breaker, executor=pool, clock=clock
        )

        @guard
        async def fetch(key: str) -> str:
            """Fetch a key."""
            threads.append(threading.get_ident())
            await anyio.lowlevel.checkpoint()
            if errors:
                raise errors.pop()
            return key

        assert await fetch("k") == "k"
        completed = pool.statistics().completed

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__doc__ == "Fetch a key."
    assert threads == [loop_thread] * 3
    assert completed == 0
    assert clock.sleeps == [1.0, 1.0]
    assert breaker.statistics().failures == 2


@pytest.mark.anyio
async def test_decorated_async_breaker_rejects() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=2)
    calls = 0
    guard = Guard(retry=make_retry(clock, attempts=5), breaker=breaker, clock=clock)

    @guard
    async def fetch() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("dependency down")

    with pytest.raises(CircuitOpen):
        await fetch()

    assert calls == 2
    assert clock.sleeps == [1.0, 1.0]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
@pytest.mark.parametrize("with_retry", [False, True], ids=["no-retry", "retry"])
async def test_decorated_async_timeout(with_retry: bool) -> None:
    clock = LoopClock()
    breaker = make_breaker(clock, failure_threshold=5)
    retry = make_retry(clock) if with_retry else None
    guard = Guard(retry=retry, breaker=breaker, timeout=30.0, clock=clock)
    calls = 0

    @guard
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep_forever()

    started = anyio.current_time()
    with pytest.raises(DeadlineExceeded):
        await hang()

    assert anyio.current_time() - started == pytest.approx(30.0)
    assert calls == 1
    stats = breaker.statistics()
    assert stats.failures == 1
    assert stats.ignored == 0


@pytest.mark.anyio
async def test_offload_through_pipeline() -> None:
    clock = FakeClock(start=START)
    breaker = make_breaker(clock, failure_threshold=5)
    script = Script(ConnectionError())
    with executor(max_workers=1, name="vault-io") as pool:
        guard = Guard(
            retry=make_retry(clock),
            breaker=breaker,
            executor=pool,
            timeout=10.0,
            clock=clock,
        )

        @guard.offload
        def fetch(prefix: str, *, suffix: str) -> str:
            """Fetch a value."""
            return prefix + script() + suffix

        assert await fetch("<", suffix=">") == "<ok>"
        completed = pool.statistics().completed

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__doc__ == "Fetch a value."
    assert all(name.startswith("vault-io-") for name in script.threads)
    assert script.remaining == [10.0, 9.0]
    assert completed == 1
    assert breaker.statistics().failures == 1


def test_offload_rejects_async() -> None:
    guard = Guard()

    async def fetch() -> None:
        pass

    with pytest.raises(TypeError, match="already an async function") as excinfo:
        guard.offload(fetch)

    assert "fetch" in str(excinfo.value)
    assert "decorate it with @guard instead" in str(excinfo.value)


# -- adaptive limit fed by breaker failures -------------------------------------------


def adaptive_executor(recorder: LimitRecorder) -> BoundedExecutor:
    return BoundedExecutor(
        max_workers=4,
        adaptive=AdaptiveLimit(latency_target=30.0),
        listeners=(recorder,),
    )


def test_breaker_failures_shrink_limit() -> None:
    recorder = LimitRecorder()
    clock = FakeClock(start=START)
    pool = adaptive_executor(recorder)
    guard = Guard(
        breaker=make_breaker(clock, failure_threshold=10), executor=pool, clock=clock
    )
    limits = []
    for _ in range(3):
        with pytest.raises(ConnectionError):
            guard.call(fail)
        limits.append(pool.statistics().limit)
    pool.shutdown(wait=True, timeout=10)

    assert limits == [2, 1, 1]
    assert recorder.changes == [(4, 2, "overload"), (2, 1, "overload")]


@pytest.mark.parametrize(
    "setup", ["not-a-failure", "ignored-by-classifier", "no-breaker"]
)
def test_other_errors_keep_limit(setup: str) -> None:
    recorder = LimitRecorder()
    clock = FakeClock(start=START)
    pool = adaptive_executor(recorder)
    breaker: CircuitBreaker | None = make_breaker(clock, failure_on=KeyError)
    classifier = None
    if setup == "ignored-by-classifier":
        classifier = VerdictTable({ConnectionError: Verdict(breaker_failure=None)})
    elif setup == "no-breaker":
        breaker = None
    guard = Guard(breaker=breaker, executor=pool, classifier=classifier, clock=clock)

    with pytest.raises(ConnectionError):
        guard.call(fail)
    pool.shutdown(wait=True, timeout=10)

    assert pool.statistics().limit == 4
    assert recorder.changes == []


@pytest.mark.anyio
async def test_run_failures_shrink_limit() -> None:
    recorder = LimitRecorder()
    clock = FakeClock(start=START)
    pool = adaptive_executor(recorder)
    guard = Guard(
        retry=make_retry(clock),
        breaker=make_breaker(clock, failure_threshold=10),
        executor=pool,
        clock=clock,
    )

    with pytest.raises(ConnectionError):
        await guard.run(fail)
    await pool.aclose(timeout=10)

    assert pool.statistics().limit == 1
    assert recorder.changes[-1] == (2, 1, "overload")


# -- time left inside the blocking function ------------------------------------------


def test_outer_deadline_reaches_worker() -> None:
    clock = FakeClock(start=START)
    script = Script()
    with executor(max_workers=1) as pool:
        guard = Guard(executor=pool, timeout=10.0, clock=clock)
        outer = RetryPolicy(deadline=3.0, clock=clock, listeners=())

        assert outer.call(guard.call, script) == "ok"

    assert script.remaining == [3.0]


def test_worker_sees_no_deadline_without_timeout() -> None:
    script = Script()
    with executor(max_workers=1) as pool:
        assert Guard(executor=pool).call(script) == "ok"

    assert script.remaining == [None]
