"""
The Guard: deadline, retry, circuit breaker and bounded executor in one
pipeline.

A call passes, from the outside in:

1. the deadline (``timeout``), which bounds everything below;
2. the retry policy and its budget, whose sleeps happen here and hold no
   worker thread;
3. the circuit breaker, which rejects at once while open;
4. the bounded executor, which rejects at once when full;
5. the blocking function, in a worker thread, which can read the time left
   with `buttress.time_remaining`.

A `Classifier` given to the Guard decides, for each exception, both the
retry and the breaker accounting, and whether the outcome is known; an
operation marked not safe to replay is never retried after an unknown
outcome.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, overload

import anyio
import attrs
from typing_extensions import ParamSpec

from ._breaker import (
    BreakerStatistics,
    CircuitBreaker,
    CircuitState,
    Ticket,
    _Outcome,
)
from ._budget import BudgetStatistics, RetryBudget
from ._classify import Classifier, Verdict
from ._clock import SYSTEM_CLOCK, Clock, _current_deadline, time_remaining
from ._errors import DeadlineExceeded, Rejected
from ._executor import BoundedExecutor, ExecutorStatistics
from ._retry import RetryPolicy, _callable_name
from ._validate import Duration, check_positive, to_seconds

__all__ = ["Guard", "GuardHealth", "GuardStatistics"]

P = ParamSpec("P")

# Seconds before the deadline within which a cancellation counts as the
# deadline's own, because event loops may fire a timer up to their clock
# resolution early.
_DEADLINE_TOLERANCE = 0.001
# Largest server-suggested wait the shared throttle honours without a retry
# policy to take its cap from, in seconds.
_THROTTLE_CAP = 60.0
T = TypeVar("T")


@attrs.frozen
class GuardStatistics:
    """
    The statistics of a `Guard`'s parts; a part that is absent is None.
    """

    breaker: BreakerStatistics | None
    executor: ExecutorStatistics | None
    budget: BudgetStatistics | None
    throttled_for: float = 0.0
    """Seconds until the shared throttle lets attempts start again."""


@attrs.frozen
class GuardHealth:
    """
    A small verdict on whether calls through a `Guard` can succeed now.

    Attributes:
        healthy: False when any reason is present.
        reasons: Short machine-readable reasons: ``"breaker_open"``,
            ``"breaker_forced_open"``, ``"executor_saturated"``,
            ``"executor_closed"``, ``"budget_exhausted"``, ``"throttled"``.
    """

    healthy: bool
    reasons: tuple[str, ...]


@attrs.frozen
class _PipelineClassifier:
    """
    The retry decision of a Guard: the user's classifier, or the policy's
    own ``retry_on``, with replay safety applied.
    """

    classifier: Classifier | None
    policy: RetryPolicy
    replay_safe: bool

    def classify(self, exc: BaseException) -> Verdict:
        if self.classifier is None:
            return Verdict(retryable=self.policy.is_retryable(exc))
        if isinstance(exc, (Rejected, DeadlineExceeded)):
            return Verdict(retryable=False)
        verdict = self.classifier.classify(exc)
        if verdict.retryable and not verdict.outcome_known and not self.replay_safe:
            return attrs.evolve(verdict, retryable=False)
        return verdict


class Guard:
    """
    Protect calls to a blocking client with every resilience layer at once.

    Args:
        retry: Retry policy for the whole call; None disables retries.
        breaker: Circuit breaker checked before each attempt.
        executor: Worker threads that run the blocking function. Without
            one, `run` uses anyio's default thread pool and `call` runs the
            function in the calling thread.
        timeout: Seconds (or a timedelta) for the whole call, retries and
            sleeps included; `DeadlineExceeded` is raised when it passes.
        budget: A `RetryBudget` that caps retries across all calls.
        classifier: Decides for each exception whether to retry, how the
            breaker counts it, and whether its outcome is known. Without
            one, the retry policy's ``retry_on`` and the breaker's own
            settings apply.
        shared_throttle: When an attempt fails with a server-suggested
            delay (the classifier's ``retry_after`` or the retry policy's
            ``hint``, such as HTTP 429 Retry-After), every later attempt
            through this Guard waits until that delay has passed, instead
            of each caller discovering the limit on its own. The wait
            happens before the breaker and holds no worker thread; a wait
            that would pass the deadline raises `DeadlineExceeded` at once.
            Each waiter adds a random delay of up to the retry policy's
            initial backoff (0.1 s without a policy), and never more than
            half the time the wait leaves before its deadline, so the
            callers that the throttle held back do not all start in the
            same instant.
        clock: Time source for the deadline and the throttle.

    NOTE: a function that the Guard runs must not call the same Guard and
    wait for it. The outer call holds a worker while the inner one queues
    for a worker, so once every worker does this, nothing finishes until
    ``timeout`` passes, and never without one.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        executor: BoundedExecutor | None = None,
        timeout: Duration | None = None,
        budget: RetryBudget | None = None,
        classifier: Classifier | None = None,
        shared_throttle: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        owner = "Guard"
        for field, value, kind in (
            ("retry", retry, RetryPolicy),
            ("breaker", breaker, CircuitBreaker),
            ("executor", executor, BoundedExecutor),
            ("budget", budget, RetryBudget),
        ):
            if value is not None and not isinstance(value, kind):
                msg = (
                    f"{owner}: {field}={value!r} is invalid, pass a "
                    f"{kind.__name__} or None"
                )
                raise TypeError(msg)
        given: object = classifier
        if given is not None and not isinstance(given, Classifier):
            msg = (
                f"{owner}: classifier={classifier!r} is invalid, pass an object "
                f"with a classify(exc) method returning a buttress.Verdict"
            )
            raise TypeError(msg)
        self.timeout: float | None = None
        if timeout is not None:
            self.timeout = to_seconds(timeout, owner=owner, field="timeout")
            check_positive(owner, "timeout", self.timeout)
        if budget is not None and retry is None:
            retry = RetryPolicy(clock=clock)
        self.retry = retry
        self.breaker = breaker
        self.executor = executor
        self.budget = budget
        self.classifier = classifier
        self.shared_throttle = bool(shared_throttle)
        self.clock = clock
        # Clock time before which no attempt starts; 0.0 while unthrottled.
        # A float store is atomic, and a lost update between two hints only
        # loses the shorter wait, so no lock is needed.
        self._throttle_until = 0.0
        self._throttle_spread = 0.1 if retry is None else retry.backoff.initial
        self._rng = random.Random()
        self._replay_safe_retry = self._pipeline_retry(retry, replay_safe=True)
        self._unsafe_retry = self._pipeline_retry(retry, replay_safe=False)

    def _pipeline_retry(
        self, retry: RetryPolicy | None, *, replay_safe: bool
    ) -> RetryPolicy | None:
        if retry is None:
            return None
        changes: dict[str, Any] = {}
        if self.budget is not None:
            changes["budget"] = self.budget
        if self.classifier is not None:
            changes["retry_on"] = _PipelineClassifier(
                self.classifier, retry, replay_safe
            )
        return attrs.evolve(retry, **changes) if changes else retry

    def __repr__(self) -> str:
        breaker = self.breaker.name if self.breaker else None
        executor = self.executor.name if self.executor else None
        return (
            f"<Guard retry={self.retry is not None} breaker={breaker!r} "
            f"executor={executor!r} timeout={self.timeout!r}>"
        )

    # -- shared steps -----------------------------------------------------

    def _deadline(self) -> float | None:
        if self.timeout is None:
            outer = _current_deadline.get()
            return outer[1] if outer is not None and outer[0] is self.clock else None
        deadline_at = self.clock.monotonic() + self.timeout
        outer = _current_deadline.get()
        if outer is not None and outer[0] is self.clock:
            deadline_at = min(deadline_at, outer[1])
        return deadline_at

    def _policy(self, replay_safe: bool) -> RetryPolicy | None:
        return self._replay_safe_retry if replay_safe else self._unsafe_retry

    def _breaker_outcome(self, breaker: CircuitBreaker, exc: BaseException) -> _Outcome:
        if (
            self.classifier is None
            or not isinstance(exc, Exception)
            or isinstance(exc, Rejected)
        ):
            return breaker._classify(exc)
        if isinstance(exc, DeadlineExceeded):
            # The dependency did not respond within the time the caller had.
            return _Outcome.FAILURE
        failure = self.classifier.classify(exc).breaker_failure
        if failure is None:
            return _Outcome.IGNORED
        return _Outcome.FAILURE if failure else _Outcome.SUCCESS

    def _deadline_cut(self, exc: BaseException) -> BaseException:
        """
        Return a DeadlineExceeded for the breaker when *exc* is the
        cancellation of the deadline's own cancel scope, else *exc*.

        The retry policy's scope and the executor's wait both end at the
        deadline, and the outer scope usually fires first, so a hung
        dependency would otherwise only ever be recorded as cancelled.
        """
        remaining = time_remaining()
        if (
            remaining is not None
            and remaining <= _DEADLINE_TOLERANCE
            and isinstance(exc, anyio.get_cancelled_exc_class())
        ):
            return DeadlineExceeded("the attempt was cancelled at its deadline")
        return exc

    def _attempt_failed(
        self, breaker: CircuitBreaker | None, ticket: Ticket | None, exc: BaseException
    ) -> None:
        if self.shared_throttle and isinstance(exc, Exception):
            self._note_throttle(exc)
        if breaker is not None and ticket is not None:
            self._record_failure(breaker, ticket, exc)

    # -- shared throttle ------------------------------------------------

    def _server_hint(self, exc: Exception) -> float | None:
        hinted = None
        if self.classifier is not None and not isinstance(
            exc, (Rejected, DeadlineExceeded)
        ):
            hinted = self.classifier.classify(exc).retry_after
        elif self.retry is not None and self.retry.hint is not None:
            hinted = self.retry.hint(exc)
        if hinted is None or not (hinted > 0):
            return None
        cap = self.retry.hint_cap if self.retry is not None else _THROTTLE_CAP
        return min(hinted, cap)

    def _note_throttle(self, exc: Exception) -> None:
        hinted = self._server_hint(exc)
        if hinted is not None:
            until = self.clock.monotonic() + hinted
            if until > self._throttle_until:
                self._throttle_until = until

    def _throttle_wait(self) -> float:
        """
        Return the seconds to wait before the next attempt may start.

        Raises:
            DeadlineExceeded: If the wait would end past the deadline.
        """
        now = self.clock.monotonic()
        wait = self._throttle_until - now
        if wait <= 0:
            return 0.0
        spread = self._throttle_spread
        deadline = _current_deadline.get()
        if deadline is not None and deadline[0] is self.clock:
            spare = deadline[1] - now - wait
            if spare < 0:
                raise DeadlineExceeded(
                    f"the server requested a wait of {wait:.3f} s, which ends "
                    f"past this call's deadline"
                )
            # The jitter takes at most half the time that the wait leaves,
            # so the call keeps time for its attempt.
            spread = min(spread, spare / 2)
        return wait + self._rng.uniform(0.0, spread)

    async def _wait_throttle_async(self) -> None:
        wait = self._throttle_wait()
        if wait > 0:
            await self.clock.asleep(wait)

    def _wait_throttle_sync(self) -> None:
        wait = self._throttle_wait()
        if wait > 0:
            self.clock.sleep(wait)

    def _record_failure(
        self, breaker: CircuitBreaker, ticket: Ticket, exc: BaseException
    ) -> None:
        outcome = self._breaker_outcome(breaker, exc)
        breaker._record(ticket, outcome)
        executor = self.executor
        if outcome is _Outcome.FAILURE and executor is not None:
            # The dependency pushed back: an adaptive limit shrinks.
            executor.record_overload()

    def _deadline_error(self) -> DeadlineExceeded:
        if self.timeout is None:
            # The deadline came from the retry policy or an enclosing call.
            return DeadlineExceeded("guarded call did not finish before its deadline")
        return DeadlineExceeded(
            f"guarded call did not finish within its {self.timeout:.3f} s timeout"
        )

    # -- async, blocking function in a worker thread ----------------------

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """
        Run the blocking ``fn(*args, **kwargs)`` in a worker thread through
        the whole pipeline, from async code on asyncio or trio.

        Raises:
            CircuitOpen: While the breaker is open.
            ExecutorSaturated: When workers and queue are full.
            DeadlineExceeded: When ``timeout`` passed first.
        """
        return await self._run(True, _callable_name(fn), fn, args, kwargs)

    async def run_unsafe(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """
        Like `run`, for an operation that is not safe to replay: it is not
        retried after an error whose outcome is unknown.
        """
        return await self._run(False, _callable_name(fn), fn, args, kwargs)

    async def _run(
        self,
        replay_safe: bool,
        name: str,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        return await self._pipeline(replay_safe, name, self._attempt, call)

    async def _pipeline(
        self,
        replay_safe: bool,
        name: str,
        attempt: Callable[[Callable[[], Any]], Awaitable[T]],
        call: Callable[[], Any],
    ) -> T:
        deadline_at = self._deadline()
        token = None
        if deadline_at is not None:
            token = _current_deadline.set((self.clock, deadline_at))
        try:
            policy = self._policy(replay_safe)
            if policy is not None:
                return await policy._acall_named(name, attempt, call)
            if deadline_at is None:
                return await attempt(call)
            with anyio.move_on_after(max(0.0, deadline_at - self.clock.monotonic())):
                return await attempt(call)
            raise self._deadline_error()
        finally:
            if token is not None:
                _current_deadline.reset(token)

    async def _attempt(self, call: Callable[[], T]) -> T:
        if self.shared_throttle:
            await self._wait_throttle_async()
        breaker = self.breaker
        if breaker is None and not self.shared_throttle:
            return await self._execute(call)
        ticket = None if breaker is None else breaker._admit()
        try:
            result = await self._execute(call)
        except BaseException as exc:
            self._attempt_failed(breaker, ticket, self._deadline_cut(exc))
            raise
        if breaker is not None and ticket is not None:
            breaker._record(ticket, breaker._classify_result(result))
        return result

    async def _execute(self, call: Callable[[], T]) -> T:
        remaining = time_remaining()
        if self.executor is not None:
            return await self.executor.run(call, timeout=remaining)
        with anyio.move_on_after(remaining):
            return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        raise self._deadline_error()

    # -- async function, no threads -----------------------------------------

    async def _attempt_native(self, call: Callable[[], Awaitable[T]]) -> T:
        if self.shared_throttle:
            await self._wait_throttle_async()
        breaker = self.breaker
        if breaker is None and not self.shared_throttle:
            return await call()
        ticket = None if breaker is None else breaker._admit()
        try:
            result = await call()
        except BaseException as exc:
            self._attempt_failed(breaker, ticket, self._deadline_cut(exc))
            raise
        if breaker is not None and ticket is not None:
            breaker._record(ticket, breaker._classify_result(result))
        return result

    # -- sync -------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """
        Call the blocking ``fn(*args, **kwargs)`` through the whole pipeline
        from a plain thread, blocking until it finishes.

        With an executor the function runs in one of its workers, so the
        executor's bound also limits callers from threads.
        """
        return self._call(True, _callable_name(fn), fn, args, kwargs)

    def call_unsafe(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """
        Like `call`, for an operation that is not safe to replay.
        """
        return self._call(False, _callable_name(fn), fn, args, kwargs)

    def _call(
        self,
        replay_safe: bool,
        name: str,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        deadline_at = self._deadline()
        token = None
        if deadline_at is not None:
            token = _current_deadline.set((self.clock, deadline_at))
        try:
            policy = self._policy(replay_safe)
            if policy is not None:
                return policy._call_named(name, self._attempt_sync, call)
            return self._attempt_sync(call)
        finally:
            if token is not None:
                _current_deadline.reset(token)

    def _attempt_sync(self, call: Callable[[], T]) -> T:
        if self.shared_throttle:
            self._wait_throttle_sync()
        breaker = self.breaker
        if breaker is None and not self.shared_throttle:
            return self._execute_sync(call)
        ticket = None if breaker is None else breaker._admit()
        try:
            result = self._execute_sync(call)
        except BaseException as exc:
            self._attempt_failed(breaker, ticket, exc)
            raise
        if breaker is not None and ticket is not None:
            breaker._record(ticket, breaker._classify_result(result))
        return result

    def _execute_sync(self, call: Callable[[], T]) -> T:
        remaining = time_remaining()
        if remaining is not None and remaining <= 0:
            raise self._deadline_error()
        if self.executor is not None:
            return self.executor.call(call, timeout=remaining)
        return call()

    # -- decorators ---------------------------------------------------------

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """
        Decorate a function with the pipeline.

        A sync function keeps blocking its caller, but runs through retry,
        breaker and, with an executor, a worker thread whose bound limits
        concurrent callers. An async function gets retry, breaker and the
        timeout, and runs in its own task with no thread involved.
        """
        name = _callable_name(fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                call = functools.partial(fn, *args, **kwargs)
                return await self._pipeline(True, name, self._attempt_native, call)

            return guarded_async

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self._call(True, name, fn, args, kwargs)

        return guarded

    def offload(self, fn: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
        """
        Turn a blocking function into an async one that runs it in the
        executor through the whole pipeline, on asyncio or trio.
        """
        if inspect.iscoroutinefunction(fn):
            msg = (
                f"Guard.offload: {_callable_name(fn)} is already an async "
                f"function; decorate it with @guard instead"
            )
            raise TypeError(msg)
        name = _callable_name(fn)

        @functools.wraps(fn)
        async def offloaded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self._run(True, name, fn, args, kwargs)

        return offloaded

    # -- visibility ---------------------------------------------------------

    def statistics(self) -> GuardStatistics:
        """
        Return the statistics of the breaker, executor and budget.
        """
        return GuardStatistics(
            breaker=self.breaker.statistics() if self.breaker else None,
            executor=self.executor.statistics() if self.executor else None,
            budget=self.budget.statistics() if self.budget else None,
            throttled_for=max(0.0, self._throttle_until - self.clock.monotonic()),
        )

    def health(self) -> GuardHealth:
        """
        Return whether a call made now could get through, and if not, why.
        """
        stats = self.statistics()
        reasons: list[str] = []
        if stats.breaker is not None:
            if stats.breaker.state is CircuitState.OPEN:
                reasons.append("breaker_open")
            elif stats.breaker.state is CircuitState.FORCED_OPEN:
                reasons.append("breaker_forced_open")
        if stats.executor is not None:
            if stats.executor.closed:
                reasons.append("executor_closed")
            elif (
                # Compare with the limit, not max_workers, because an adaptive
                # limit may admit fewer running calls.
                stats.executor.active >= stats.executor.limit
                and stats.executor.queued >= stats.executor.queue_capacity
            ):
                reasons.append("executor_saturated")
        if stats.budget is not None and stats.budget.allowance < 1.0:
            reasons.append("budget_exhausted")
        if stats.throttled_for > 0:
            reasons.append("throttled")
        return GuardHealth(healthy=not reasons, reasons=tuple(reasons))
