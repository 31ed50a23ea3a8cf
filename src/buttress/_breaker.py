"""
A thread-safe circuit breaker: closed, open and half-open.

How it works. Each call is admitted with a ticket that records the state
machine's *generation* at that moment, and the call then runs with no lock
held. When it ends, its outcome is recorded under the lock, and counts
toward a transition only if the generation is still the same: a slow call
admitted while closed cannot close a breaker that opened meanwhile, and a
stale failure cannot re-open a breaker that a probe just closed. Every
transition bumps the generation.

While closed, admission reads the position without taking the lock, so
healthy calls never wait for each other; recording takes the lock for a few
counter updates only.

Open turns half-open lazily: the first admission after the open duration
makes the switch and becomes a probe. At most ``half_open_max_calls`` probes
run at once, and every other caller is rejected at once. A probe that is
cancelled or ends with an ignored outcome gives its permit back without
deciding anything, so the breaker cannot be stuck half-open.

The position (state, generation, open-until) lives in a `BreakerStore`, so
breakers can share it; counters and windows stay local.
"""

from __future__ import annotations

import enum
import functools
import inspect
import itertools
import math
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar, cast, overload

import attrs
from typing_extensions import ParamSpec

from ._backoff import Backoff
from ._breaker_store import (
    BreakerPosition,
    BreakerStore,
    CircuitState,
    MemoryBreakerStore,
)
from ._classify import Classifier
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import CircuitOpen, Rejected
from ._events import (
    DEFAULT_LISTENERS,
    CallRejected,
    CircuitStateChanged,
    Listener,
    LoggingListener,
    emit,
)
from ._validate import (
    Duration,
    check_int_range,
    check_optional_callable,
    check_optional_instance,
    check_positive,
    to_seconds,
)
from ._windows import CountWindow, TimeWindow

__all__ = ["BreakerStatistics", "CircuitBreaker", "CircuitState"]

P = ParamSpec("P")
T = TypeVar("T")

ExceptionMatcher: TypeAlias = (
    type[BaseException]
    | tuple[type[BaseException], ...]
    | Callable[[BaseException], bool]
)
"""Exception types, or a predicate on the exception."""

Ticket: TypeAlias = tuple[int, bool, float]
"""An admitted call: its generation, whether it is a probe, its start time."""


_new_error = BaseException.__new__

# Module-level aliases: reading a global is cheaper than an enum attribute
# on the admission and rejection paths.
_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_FORCED_OPEN = CircuitState.FORCED_OPEN


class _Counter:
    """
    A counter that many threads may increment without a lock.

    NOTE: next() on itertools.count is atomic under the GIL; a free-threaded
    build would need a lock in `add`.
    """

    __slots__ = ("_count", "_reads", "add")

    def __init__(self) -> None:
        self._count = itertools.count()
        # Values that `value` itself took from the count.
        self._reads = 0
        self.add = self._count.__next__

    def value(self) -> int:
        """
        Return how many times `add` was called; callers serialise reads.
        """
        # itertools.count has no public way to read its value without
        # advancing it, so take one value and discount the earlier reads.
        value = next(self._count) - self._reads
        self._reads += 1
        return value


class _Outcome(enum.Enum):
    SUCCESS = 0
    FAILURE = 1
    IGNORED = 2


@attrs.frozen
class BreakerStatistics:
    """
    A snapshot of a `CircuitBreaker`, consistent at the moment it was taken.

    Attributes:
        name: The breaker's name.
        state: The current state; an open breaker whose open duration has
            ended reads half-open.
        generation: Incremented on every state transition.
        consecutive_failures: Failures since the last success while closed.
        window_calls: Calls in the sliding window, or 0 without one.
        failure_rate: Failed share of ``window_calls``, 0.0 to 1.0.
        slow_call_rate: Slow share of ``window_calls``, 0.0 to 1.0.
        open_count: How many times the breaker has opened.
        consecutive_opens: Opens since it last closed after a probe.
        successes: Calls recorded as successes.
        failures: Calls recorded as failures.
        ignored: Calls whose outcome was ignored or that were cancelled.
        slow_calls: Calls that took at least ``slow_call_duration``.
        rejected: Calls rejected with `CircuitOpen`.
        probes_in_flight: Half-open probe calls running now.
        seconds_until_probe: Seconds until the next probe is admitted while
            open, ``inf`` while forced open, and 0.0 otherwise.
        last_transition_at: Clock time of the last state change, or None.
    """

    name: str
    state: CircuitState
    generation: int
    consecutive_failures: int
    window_calls: int
    failure_rate: float
    slow_call_rate: float
    open_count: int
    consecutive_opens: int
    successes: int
    failures: int
    ignored: int
    slow_calls: int
    rejected: int
    probes_in_flight: int
    seconds_until_probe: float
    last_transition_at: float | None


def _matcher(owner: str, field: str, value: object) -> Callable[[BaseException], bool]:
    if isinstance(value, type) and issubclass(value, BaseException):
        types: tuple[type[BaseException], ...] = (value,)
    elif isinstance(value, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value
    ):
        types = value
    elif callable(value) and not isinstance(value, type):
        return cast(Callable[[BaseException], bool], value)
    else:
        msg = (
            f"{owner}: {field}={value!r} is invalid, pass an exception type, a "
            f"tuple of exception types, or a predicate taking the exception"
        )
        raise TypeError(msg)

    def matches(exc: BaseException) -> bool:
        return isinstance(exc, types)

    return matches


def _check_rate(owner: str, field: str, value: object) -> None:
    if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
        msg = (
            f"{owner}: {field}={value!r} is out of range, it must be a share "
            f"greater than 0.0 and at most 1.0 (0.5 means 50 %)"
        )
        raise ValueError(msg)


class CircuitBreaker:
    """
    Fail fast while a dependency is failing, and probe until it recovers.

    Failure detection is one of two kinds. Without a ``window``, the breaker
    opens after ``failure_threshold`` consecutive failures. With a
    `CountWindow` or `TimeWindow`, it opens once the window contains at least
    ``minimum_calls`` calls and the failure rate reaches
    ``failure_rate_threshold`` or the slow-call rate reaches
    ``slow_call_rate_threshold``.

    Args:
        failure_threshold: Consecutive failures that open the breaker when
            no window is set.
        window: A sliding window for rate-based detection, or None.
        failure_rate_threshold: Failed share of the window that opens the
            breaker, above 0.0 and at most 1.0.
        minimum_calls: Calls the window must hold before rates are judged;
            at most the size of a `CountWindow`.
        slow_call_duration: Seconds (or a timedelta) from which a call
            counts as slow; needs a window. A slow probe re-opens the
            breaker.
        slow_call_rate_threshold: Slow share of the window that opens it.
        reset_timeout: Seconds the breaker stays open before a probe.
        reset_backoff: Makes the open duration grow on each consecutive
            re-open, following this schedule instead of ``reset_timeout``;
            the growth resets when a probe closes the breaker.
        half_open_max_calls: Probes allowed at once while half-open.
        success_threshold: Successful probes needed to close again.
        half_open_timeout: Seconds the breaker may stay half-open without a
            decision before it opens again; None waits for the probes.
        failure_on: Exception types, or a predicate, that count as failures.
            Other exceptions count as successes, because the dependency
            answered.
        ignore: Exception types, or a predicate, whose outcome counts as
            neither success nor failure.
        failure_on_result: Predicate on a return value that makes it count
            as a failure.
        classifier: A client backend's `Classifier`; when given, its
            verdict's ``breaker_failure`` decides instead of ``failure_on``
            and ``ignore``.
        name: Shown in errors, events and statistics.
        clock: Time source for open durations, windows and slow calls.
        listeners: Receivers of state-change events; logging by default.
        store: Where the state-machine position lives; pass one store to
            several breakers to make them open and close together.

    Cancellation, KeyboardInterrupt, SystemExit, GeneratorExit and
    buttress's own rejections always count as neither success nor failure.
    One breaker serves sync and async callers, from any thread, at once.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        window: CountWindow | TimeWindow | None = None,
        failure_rate_threshold: float = 0.5,
        minimum_calls: int = 10,
        slow_call_duration: Duration | None = None,
        slow_call_rate_threshold: float = 1.0,
        reset_timeout: Duration = 30.0,
        reset_backoff: Backoff | None = None,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        half_open_timeout: Duration | None = None,
        failure_on: ExceptionMatcher = Exception,
        ignore: ExceptionMatcher = (),
        failure_on_result: Callable[[Any], bool] | None = None,
        classifier: Classifier | None = None,
        name: str = "circuit-breaker",
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] = DEFAULT_LISTENERS,
        store: BreakerStore | None = None,
    ) -> None:
        owner = "CircuitBreaker"
        check_int_range(owner, "failure_threshold", failure_threshold, 1)
        check_optional_instance(
            owner,
            "window",
            window,
            (CountWindow, TimeWindow),
            "a CountWindow, a TimeWindow or None",
        )
        _check_rate(owner, "failure_rate_threshold", failure_rate_threshold)
        _check_rate(owner, "slow_call_rate_threshold", slow_call_rate_threshold)
        check_int_range(owner, "minimum_calls", minimum_calls, 1)
        if isinstance(window, CountWindow) and minimum_calls > window.size:
            msg = (
                f"{owner}: minimum_calls={minimum_calls!r} is greater than "
                f"window.size={window.size!r}, so the window can never contain "
                f"enough calls to open the breaker; lower minimum_calls to at "
                f"most {window.size} or use a larger CountWindow"
            )
            raise ValueError(msg)
        slow_seconds = None
        if slow_call_duration is not None:
            slow_seconds = to_seconds(
                slow_call_duration, owner=owner, field="slow_call_duration"
            )
            check_positive(owner, "slow_call_duration", slow_seconds)
            if window is None:
                msg = (
                    f"{owner}: slow_call_duration={slow_seconds!r} needs a "
                    f"window to judge the slow-call rate; pass "
                    f"window=CountWindow(...) or window=TimeWindow(...)"
                )
                raise ValueError(msg)
        reset_seconds = to_seconds(reset_timeout, owner=owner, field="reset_timeout")
        check_positive(owner, "reset_timeout", reset_seconds)
        check_optional_instance(
            owner, "reset_backoff", reset_backoff, Backoff, "a Backoff or None"
        )
        check_int_range(owner, "half_open_max_calls", half_open_max_calls, 1)
        check_int_range(owner, "success_threshold", success_threshold, 1)
        half_open_seconds = None
        if half_open_timeout is not None:
            half_open_seconds = to_seconds(
                half_open_timeout, owner=owner, field="half_open_timeout"
            )
            check_positive(owner, "half_open_timeout", half_open_seconds)
        check_optional_callable(
            owner,
            "failure_on_result",
            failure_on_result,
            "a predicate taking the return value, or None",
        )
        self.name = name
        self.failure_threshold = failure_threshold
        self.window = window
        self.failure_rate_threshold = float(failure_rate_threshold)
        self.minimum_calls = minimum_calls
        self.slow_call_duration = slow_seconds
        self.slow_call_rate_threshold = float(slow_call_rate_threshold)
        self.reset_timeout = reset_seconds
        self.reset_backoff = reset_backoff
        self.half_open_max_calls = half_open_max_calls
        self.success_threshold = success_threshold
        self.half_open_timeout = half_open_seconds
        self._is_failure = _matcher(owner, "failure_on", failure_on)
        self._is_ignored = _matcher(owner, "ignore", ignore)
        self._failure_on_result = failure_on_result
        check_optional_instance(
            owner,
            "classifier",
            classifier,
            Classifier,
            "an object with a classify(exc) method returning a buttress.Verdict",
        )
        self._classifier = classifier
        self._clock = clock
        self._listeners = tuple(listeners)
        self._store: BreakerStore = store if store is not None else MemoryBreakerStore()
        # A private memory store cannot change behind our back, so the
        # closed-state fast path may trust the local copy of the position.
        self._store_is_private = store is None
        self._lock = threading.Lock()
        self._position = self._store.load()
        self._accumulator = None if window is None else window._accumulator()
        # Calls that count only toward consecutive failures, on a private
        # store, may skip the lock on success while closed; see `call`.
        self._fast_eligible = (
            self._store_is_private and window is None and failure_on_result is None
        )
        self._fast: BreakerPosition | None = None
        # Successes on the fast path are counted without the lock.
        self._fast_successes = _Counter()
        # Rejections while open are counted the same way.
        self._fast_rejections = _Counter()
        self._rejection_listeners = tuple(
            listener
            for listener in self._listeners
            if not isinstance(listener, LoggingListener)
        )
        self._update_fast()
        self._consecutive_failures = 0
        self._probes = 0
        self._probe_successes = 0
        self._open_count = 0
        self._successes = 0
        self._failures = 0
        self._ignored = 0
        self._slow_calls = 0
        self._rejected = 0

    def __repr__(self) -> str:
        position = self._position
        return (
            f"<CircuitBreaker {self.name!r} state={position.state.value} "
            f"generation={position.generation}>"
        )

    @property
    def state(self) -> CircuitState:
        """
        The current state; an open breaker whose open duration has ended
        reads half-open.
        """
        return self.statistics().state

    # -- the state machine ---------------------------------------------

    def _update_fast(self) -> None:
        # Caller holds the lock, or is the constructor.
        position = self._position
        eligible = self._fast_eligible and position.state is CircuitState.CLOSED
        self._fast = position if eligible else None

    def _adopt(self, position: BreakerPosition) -> None:
        # Caller holds the lock. Local per-state bookkeeping restarts
        # whenever the position moves on, whoever moved it.
        if position.generation == self._position.generation:
            return
        self._position = position
        self._update_fast()
        self._probes = 0
        self._probe_successes = 0
        if position.state is not CircuitState.FORCED_CLOSED:
            self._consecutive_failures = 0
            if self._accumulator is not None:
                self._accumulator.clear()
        if position.state is CircuitState.OPEN:
            self._open_count += 1

    def _open_duration(self, consecutive_opens: int) -> float:
        if self.reset_backoff is None:
            return self.reset_timeout
        return self.reset_backoff.delay(consecutive_opens)

    def _move(
        self, new: CircuitState, reason: str, now: float, *, force: bool = False
    ) -> CircuitStateChanged | None:
        """
        Move the shared position to *new*; return the event if this breaker
        made the move. Caller holds the lock.
        """
        while True:
            old = self._position
            if new is CircuitState.OPEN:
                opens = old.consecutive_opens + 1
                open_until = now + self._open_duration(opens)
            elif new is CircuitState.CLOSED:
                opens, open_until = 0, 0.0
            else:
                opens, open_until = old.consecutive_opens, old.open_until
            position = BreakerPosition(
                state=new,
                generation=old.generation + 1,
                changed_at=now,
                open_until=open_until,
                consecutive_opens=opens,
            )
            stored = self._store.compare_and_set(old.generation, position)
            self._adopt(stored)
            if stored is position:
                return CircuitStateChanged(
                    self.name, old.state.value, new.value, reason, position.generation
                )
            if not force:
                # Another breaker sharing the store moved first; its move
                # stands and this one is dropped.
                return None

    def _admit(self) -> Ticket:
        """
        Admit one call and return its ticket.

        Raises:
            CircuitOpen: While open, or while half-open with every probe
                slot taken.
        """
        position = self._position
        state = position.state
        if state is _CLOSED and self._store_is_private:
            started = (
                0.0 if self.slow_call_duration is None else self._clock.monotonic()
            )
            return position.generation, False, started
        return self._admit_slow()

    def _open_rejection(self) -> CircuitOpen | None:
        """
        Return the error for a call that arrives while the breaker is
        forced open, or open with its open duration still running, or None.

        Rejecting while open needs no lock: the position is read once, and
        a transition in the meantime only means this caller was rejected a
        moment late. Callers raise the error in their own frame, which
        keeps the traceback, and so the rejection, short.
        """
        position = self._position
        if not self._store_is_private:
            return None
        if position.state is _OPEN:
            now = self._clock.monotonic()
            if now >= position.open_until:
                return None
            retry_after = position.open_until - now
        elif position.state is _FORCED_OPEN:
            retry_after = math.inf
        else:
            return None
        self._fast_rejections.add()
        error = _new_error(CircuitOpen)
        error.name = self.name
        error.retry_after = retry_after
        if retry_after == math.inf:
            error.reason = "forced_open"
        if self._rejection_listeners:
            self._emit_rejection(error)
        return error

    def _emit_rejection(self, error: CircuitOpen) -> None:
        emit(
            self._rejection_listeners,
            CallRejected(self.name, "circuit_open", error.reason),
        )

    def _admit_slow(self) -> Ticket:
        now = self._clock.monotonic()
        event = None
        rejection = None
        with self._lock:
            if not self._store_is_private:
                self._adopt(self._store.load())
            state = self._position.state
            if state is CircuitState.OPEN and now >= self._position.open_until:
                event = self._move(CircuitState.HALF_OPEN, "open duration ended", now)
            elif (
                state is CircuitState.HALF_OPEN
                and self.half_open_timeout is not None
                and self._position.changed_at is not None
                and now - self._position.changed_at >= self.half_open_timeout
            ):
                event = self._move(
                    CircuitState.OPEN, "half-open without a decision too long", now
                )
            position = self._position
            state = position.state
            probe = state is CircuitState.HALF_OPEN
            if probe and self._probes < self.half_open_max_calls:
                self._probes += 1
            elif (
                state is not CircuitState.CLOSED
                and state is not CircuitState.FORCED_CLOSED
            ):
                self._rejected += 1
                rejection = self._rejection(now)
        if event is not None:
            emit(self._listeners, event)
        if rejection is not None:
            if self._rejection_listeners:
                self._emit_rejection(rejection)
            raise rejection
        return position.generation, probe, now

    def _rejection(self, now: float) -> CircuitOpen:
        # Caller holds the lock.
        position = self._position
        if position.state is _FORCED_OPEN:
            return CircuitOpen(
                name=self.name, retry_after=math.inf, reason="forced_open"
            )
        if position.state is _OPEN:
            retry_after = max(0.0, position.open_until - now)
            return CircuitOpen(name=self.name, retry_after=retry_after)
        return CircuitOpen(
            name=self.name,
            retry_after=0.0,
            reason="half_open_full",
            probe_slots=self.half_open_max_calls,
        )

    def _record(self, ticket: Ticket, outcome: _Outcome) -> None:
        generation, probe, started = ticket
        slow = False
        now = 0.0
        if self.slow_call_duration is not None or self._accumulator is not None:
            now = self._clock.monotonic()
            if self.slow_call_duration is not None and outcome is not _Outcome.IGNORED:
                slow = now - started >= self.slow_call_duration
        event = None
        with self._lock:
            if outcome is _Outcome.SUCCESS:
                self._successes += 1
            elif outcome is _Outcome.FAILURE:
                self._failures += 1
            else:
                self._ignored += 1
            if slow:
                self._slow_calls += 1
            position = self._position
            if generation != position.generation:
                return
            state = position.state
            if probe:
                event = self._record_probe(outcome, slow)
            elif state is CircuitState.CLOSED and outcome is not _Outcome.IGNORED:
                event = self._record_closed(outcome is _Outcome.FAILURE, slow, now)
        if event is not None:
            emit(self._listeners, event)

    def _record_probe(
        self, outcome: _Outcome, slow: bool
    ) -> CircuitStateChanged | None:
        # Caller holds the lock.
        self._probes -= 1
        if outcome is _Outcome.FAILURE:
            return self._move(
                CircuitState.OPEN, "probe failed", self._clock.monotonic()
            )
        if outcome is _Outcome.IGNORED:
            return None
        if slow:
            return self._move(
                CircuitState.OPEN, "probe was slow", self._clock.monotonic()
            )
        self._probe_successes += 1
        if self._probe_successes < self.success_threshold:
            return None
        return self._move(
            CircuitState.CLOSED, "probe succeeded", self._clock.monotonic()
        )

    def _record_closed(
        self, failure: bool, slow: bool, now: float
    ) -> CircuitStateChanged | None:
        # Caller holds the lock.
        accumulator = self._accumulator
        if accumulator is None:
            if not failure:
                self._consecutive_failures = 0
                return None
            self._consecutive_failures += 1
            if self._consecutive_failures < self.failure_threshold:
                return None
            # `now` is only read from the clock when a window or slow-call
            # detection needs it, so read the opening time here.
            return self._move(
                CircuitState.OPEN,
                f"{self._consecutive_failures} consecutive failures",
                self._clock.monotonic(),
            )
        if failure:
            self._consecutive_failures += 1
        else:
            self._consecutive_failures = 0
        accumulator.record(now, failure, slow)
        calls, failures, slow_calls = accumulator.totals(now)
        if calls < self.minimum_calls:
            return None
        if failures / calls >= self.failure_rate_threshold:
            reason = f"failure rate {failures / calls:.0%} over {calls} calls"
        elif (
            self.slow_call_duration is not None
            and slow_calls / calls >= self.slow_call_rate_threshold
        ):
            reason = f"slow-call rate {slow_calls / calls:.0%} over {calls} calls"
        else:
            return None
        return self._move(CircuitState.OPEN, reason, now)

    def _count_fast_success(self, fast: BreakerPosition) -> None:
        if self._consecutive_failures:
            # Reading the count unlocked is a benign race: a failure that
            # lands concurrently is simply ordered after this success.
            self._record((fast.generation, False, 0.0), _Outcome.SUCCESS)
        else:
            self._fast_successes.add()

    def _classify(self, exc: BaseException) -> _Outcome:
        if not isinstance(exc, Exception) or isinstance(exc, Rejected):
            return _Outcome.IGNORED
        if self._classifier is not None:
            failure = self._classifier.classify(exc).breaker_failure
            if failure is None:
                return _Outcome.IGNORED
            return _Outcome.FAILURE if failure else _Outcome.SUCCESS
        if self._is_ignored(exc):
            return _Outcome.IGNORED
        if self._is_failure(exc):
            return _Outcome.FAILURE
        return _Outcome.SUCCESS

    def _classify_result(self, result: object) -> _Outcome:
        predicate = self._failure_on_result
        if predicate is not None and predicate(result):
            return _Outcome.FAILURE
        return _Outcome.SUCCESS

    # -- entry points ---------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """
        Call ``fn(*args, **kwargs)`` through the breaker.

        Raises:
            CircuitOpen: At once, without calling *fn*, while open.
        """
        fast = self._fast
        if fast is not None:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._record((fast.generation, False, 0.0), self._classify(exc))
                raise
            self._count_fast_success(fast)
            return result
        error = self._open_rejection()
        if error is not None:
            raise error
        ticket = self._admit()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._record(ticket, self._classify(exc))
            raise
        self._record(ticket, self._classify_result(result))
        return result

    async def acall(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """
        Await ``fn(*args, **kwargs)`` through the breaker.

        Raises:
            CircuitOpen: At once, without calling *fn*, while open.
        """
        fast = self._fast
        if fast is not None:
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self._record((fast.generation, False, 0.0), self._classify(exc))
                raise
            self._count_fast_success(fast)
            return result
        error = self._open_rejection()
        if error is not None:
            raise error
        ticket = self._admit()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._record(ticket, self._classify(exc))
            raise
        self._record(ticket, self._classify_result(result))
        return result

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """
        Decorate a sync or async function so every call goes through the
        breaker; an async function stays a coroutine function.
        """
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                # The closed and open paths of `acall`, inlined to save a
                # coroutine frame.
                fast = self._fast
                if fast is not None:
                    try:
                        result = await fn(*args, **kwargs)
                    except BaseException as exc:
                        self._record((fast.generation, False, 0.0), self._classify(exc))
                        raise
                    self._count_fast_success(fast)
                    return result
                error = self._open_rejection()
                if error is not None:
                    raise error
                return await self.acall(fn, *args, **kwargs)

            return guarded_async

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            # The closed and open paths of `call`, inlined to save a frame.
            fast = self._fast
            if fast is not None:
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    self._record((fast.generation, False, 0.0), self._classify(exc))
                    raise
                self._count_fast_success(fast)
                return result
            error = self._open_rejection()
            if error is not None:
                raise error
            return self.call(fn, *args, **kwargs)

        return guarded

    # -- manual control ---------------------------------------------------

    def _force(self, state: CircuitState, reason: str) -> None:
        with self._lock:
            event = self._move(state, reason, self._clock.monotonic(), force=True)
        if event is not None:
            emit(self._listeners, event)

    def force_open(self) -> None:
        """
        Reject every call until `reset` or `force_closed`.
        """
        self._force(CircuitState.FORCED_OPEN, "forced open")

    def force_closed(self) -> None:
        """
        Let every call through and keep counting, but never open, until
        `reset` or `force_open`.
        """
        self._force(CircuitState.FORCED_CLOSED, "forced closed")

    def reset(self) -> None:
        """
        Close the breaker and clear its failure counts and window.
        """
        self._force(CircuitState.CLOSED, "reset")

    def statistics(self) -> BreakerStatistics:
        """
        Return a consistent snapshot of the breaker's state and counters.
        """
        now = self._clock.monotonic()
        with self._lock:
            if not self._store_is_private:
                self._adopt(self._store.load())
            position = self._position
            state = position.state
            until_probe = 0.0
            if state is CircuitState.OPEN:
                until_probe = max(0.0, position.open_until - now)
                if until_probe == 0.0:
                    state = CircuitState.HALF_OPEN
            elif state is CircuitState.FORCED_OPEN:
                until_probe = math.inf
            calls = failures = slow_calls = 0
            if self._accumulator is not None:
                calls, failures, slow_calls = self._accumulator.totals(now)
            return BreakerStatistics(
                name=self.name,
                state=state,
                generation=position.generation,
                consecutive_failures=self._consecutive_failures,
                window_calls=calls,
                failure_rate=failures / calls if calls else 0.0,
                slow_call_rate=slow_calls / calls if calls else 0.0,
                open_count=self._open_count,
                consecutive_opens=position.consecutive_opens,
                successes=self._successes + self._fast_successes.value(),
                failures=self._failures,
                ignored=self._ignored,
                slow_calls=self._slow_calls,
                rejected=self._rejected + self._fast_rejections.value(),
                probes_in_flight=self._probes,
                seconds_until_probe=until_probe,
                last_transition_at=position.changed_at,
            )
