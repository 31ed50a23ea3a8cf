"""
Retry policies: attempts, backoff, deadlines, budgets and what to retry.

How a call runs. The first attempt runs on a fast path that allocates
nothing beyond the deadline it publishes. Only when it fails does a
`_RetryRun` hold the per-call state; `_RetryRun.next_delay` makes every
decision (retry or give up, and how long to sleep) for the sync, async and
block forms alike, so the three cannot drift apart.

Cancellation, KeyboardInterrupt, SystemExit and GeneratorExit derive from
`BaseException` but not `Exception`; they are never caught here, so they
always propagate at once, whatever ``retry_on`` says.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeAlias, TypeVar, cast, overload

import anyio
import attrs
from typing_extensions import ParamSpec, Self

from ._backoff import Backoff
from ._budget import RetryBudget
from ._classify import Classifier
from ._clock import SYSTEM_CLOCK, Clock, _current_deadline
from ._errors import ButtressError, DeadlineExceeded, Rejected
from ._events import DEFAULT_LISTENERS, Listener, RetryGaveUp, RetryScheduled, emit
from ._validate import (
    Duration,
    check_int_range,
    check_optional_callable,
    check_positive,
    to_seconds,
)

__all__ = ["Attempt", "RetryPolicy"]

P = ParamSpec("P")
T = TypeVar("T")

# The errors that buttress itself raises around a call. Adapters may build
# their own error trees on ButtressError; those are the client's errors.
_PIPELINE_ERRORS = (Rejected, DeadlineExceeded)

# Seconds before a deadline at which a DeadlineExceeded still counts as
# raised by it: a timed wait may end a little early by the clock it is
# compared with.
_DEADLINE_SLACK = 0.005

RetryOn: TypeAlias = (
    type[BaseException]
    | tuple[type[BaseException], ...]
    | Callable[[BaseException], bool]
    | Classifier
)
"""Exception types to retry, a predicate on the exception, or a classifier."""

HintFunction: TypeAlias = Callable[[BaseException], float | None]
"""Returns a server-suggested delay in seconds for an exception, or None."""

_REASONS = {
    "not_retryable": "the error is not retryable",
    "attempts": "attempts exhausted",
    "deadline": "the next attempt would start past the deadline",
    "budget": "the retry budget is exhausted",
}


def _callable_name(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else type(fn).__qualname__


def _add_note(exc: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        exc.add_note(note)


def _optional_seconds(field: str) -> Callable[[Duration | None], float | None]:
    def convert(value: Duration | None) -> float | None:
        if value is None:
            return None
        return to_seconds(value, owner="RetryPolicy", field=field)

    return convert


def _listener_tuple(listeners: Iterable[Listener]) -> tuple[Listener, ...]:
    return tuple(listeners)


def _deadline_seconds(value: Duration | None) -> float | None:
    return _optional_seconds("deadline")(value)


def _attempt_timeout_seconds(value: Duration | None) -> float | None:
    return _optional_seconds("attempt_timeout")(value)


def _hint_cap_seconds(value: Duration) -> float:
    return to_seconds(value, owner="RetryPolicy", field="hint_cap")


def _validate_retry_on(instance: RetryPolicy, attribute: object, value: object) -> None:
    if isinstance(value, type) and issubclass(value, BaseException):
        return
    if isinstance(value, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value
    ):
        return
    if isinstance(value, Classifier) or (
        callable(value) and not isinstance(value, type)
    ):
        return
    msg = (
        f"RetryPolicy: retry_on={value!r} is invalid, pass an exception type, "
        f"a tuple of exception types, a predicate taking the exception, or a "
        f"classifier"
    )
    raise TypeError(msg)


@attrs.frozen
class RetryPolicy:
    """
    Retry a failing call with backoff, within a number of attempts, a
    deadline and an optional shared budget.

    Args:
        attempts: Total attempts including the first, at least 1.
        backoff: The delay schedule between attempts.
        deadline: Seconds (or a timedelta) that bound all attempts and all
            sleeps together. No sleep starts that would end past it. In
            async code, an attempt still running at the deadline is
            cancelled and `DeadlineExceeded` is raised.
        attempt_timeout: Seconds that bound each attempt. In async code an
            attempt running longer is cancelled and counts as a failure
            with a `TimeoutError`; in sync code the function reads the limit
            through `buttress.time_remaining`.
        retry_on: Exception types to retry, a predicate on the exception,
            or a `Classifier` (its verdict's ``retryable`` and
            ``retry_after`` are used). buttress's own errors (`Rejected`,
            `DeadlineExceeded`) are retried only when named as types here or
            accepted by a predicate; a classifier is never asked about them.
        retry_on_result: Predicate on a return value that asks for another
            attempt. When attempts run out, the last value is returned.
        hint: Function returning the delay the server asked for (such as
            Retry-After seconds) for an exception, or None.
        hint_floor: Smallest server-suggested delay honoured, so a hint of
            0 cannot cause a busy loop; defaults to ``backoff.initial``.
        hint_cap: Largest server-suggested delay honoured, in seconds.
        budget: A `RetryBudget` shared with other policies; when it is
            empty, the call gives up with its last error.
        name: Name used in events; defaults to the called function's name.
        clock: Time source for sleeps and deadlines.
        listeners: Receivers of retry events; logging by default.

    The caller's last exception propagates unchanged, with a note (Python
    3.11 and newer) giving the attempts, elapsed time and reason.

    .. versionadded:: 0.1.0
    """

    attempts: int = 3
    backoff: Backoff = attrs.field(
        factory=Backoff, validator=attrs.validators.instance_of(Backoff)
    )
    deadline: float | None = attrs.field(default=None, converter=_deadline_seconds)
    attempt_timeout: float | None = attrs.field(
        default=None, converter=_attempt_timeout_seconds
    )
    retry_on: RetryOn = attrs.field(default=Exception, validator=_validate_retry_on)
    retry_on_result: Callable[[Any], bool] | None = None
    hint: HintFunction | None = None
    hint_floor: float | None = None
    hint_cap: float = attrs.field(default=60.0, converter=_hint_cap_seconds)
    budget: RetryBudget | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(RetryBudget)),
        eq=False,
    )
    name: str | None = None
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, eq=False)
    listeners: tuple[Listener, ...] = attrs.field(
        default=DEFAULT_LISTENERS, converter=_listener_tuple, eq=False
    )
    _plain: bool = attrs.field(init=False, default=False, repr=False, eq=False)
    _now: Callable[[], float] = attrs.field(
        init=False, default=None, repr=False, eq=False
    )

    def __attrs_post_init__(self) -> None:
        owner = "RetryPolicy"
        check_int_range(owner, "attempts", self.attempts, 1)
        if self.deadline is not None:
            check_positive(owner, "deadline", self.deadline)
        if self.attempt_timeout is not None:
            check_positive(owner, "attempt_timeout", self.attempt_timeout)
        if self.hint_floor is not None:
            check_positive(owner, "hint_floor", self.hint_floor)
        check_positive(owner, "hint_cap", self.hint_cap)
        if self.hint_floor is not None and self.hint_floor > self.hint_cap:
            msg = (
                f"{owner}: hint_floor={self.hint_floor!r} is greater than "
                f"hint_cap={self.hint_cap!r}; lower hint_floor or raise hint_cap"
            )
            raise ValueError(msg)
        check_optional_callable(
            owner,
            "retry_on_result",
            self.retry_on_result,
            "a predicate taking the return value, or None",
        )
        plain = (
            self.deadline is None
            and self.attempt_timeout is None
            and self.budget is None
        )
        object.__setattr__(self, "_plain", plain)
        object.__setattr__(self, "_now", self.clock.monotonic)

    # -- decisions ----------------------------------------------------------

    def is_retryable(self, exc: BaseException) -> bool:
        """
        Return whether *exc* may be retried under ``retry_on``, budget and
        attempts aside.
        """
        if not isinstance(exc, Exception):
            return False
        retry_on = self.retry_on
        if isinstance(retry_on, (type, tuple)):
            if not isinstance(exc, retry_on):
                return False
            if isinstance(exc, _PIPELINE_ERRORS):
                # Rejections and deadlines need an explicit opt-in: a type
                # that matches the error and is one of buttress's own, such
                # as CircuitOpen, Rejected or ButtressError itself.
                types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
                return any(
                    issubclass(t, ButtressError) and isinstance(exc, t) for t in types
                )
            return True
        if isinstance(retry_on, Classifier):
            # A classifier judges the client's errors; rejections and
            # deadlines are never retried through one.
            if isinstance(exc, _PIPELINE_ERRORS):
                return False
            return retry_on.classify(exc).retryable
        return bool(retry_on(exc))

    def _server_hint(self, exc: BaseException) -> float | None:
        hinted = None
        if isinstance(self.retry_on, Classifier):
            hinted = self.retry_on.classify(exc).retry_after
        if self.hint is not None:
            own = self.hint(exc)
            if own is not None:
                hinted = own
        if hinted is None or not math.isfinite(hinted):
            return None
        floor = self.backoff.initial if self.hint_floor is None else self.hint_floor
        return min(max(hinted, floor), self.hint_cap)

    def _deadline_at(self, started: float) -> float | None:
        deadline_at = None if self.deadline is None else started + self.deadline
        outer = _current_deadline.get()
        if outer is not None and outer[0] is self.clock:
            deadline_at = (
                outer[1] if deadline_at is None else min(deadline_at, outer[1])
            )
        return deadline_at

    # -- sync ---------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """
        Call ``fn(*args, **kwargs)`` in this thread, retrying per the policy.
        """
        return self._call_named(None, fn, *args, **kwargs)

    def _call_named(
        self, name: str | None, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        # The success path is kept short on purpose: no objects are created
        # unless the first attempt fails or a deadline must be published.
        started = self._now()
        limit: float | None = None
        if self._plain and _current_deadline.get() is None:
            deadline_at = None
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                error: Exception | None = exc
            else:
                error = None
        else:
            if self.budget is not None:
                self.budget.record_request()
            deadline_at = self._deadline_at(started)
            limit = deadline_at
            if self.attempt_timeout is not None:
                attempt_end = started + self.attempt_timeout
                limit = attempt_end if limit is None else min(limit, attempt_end)
            token = (
                None if limit is None else _current_deadline.set((self.clock, limit))
            )
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                error = exc
            else:
                error = None
            finally:
                if token is not None:
                    _current_deadline.reset(token)
        if error is None and (
            self.retry_on_result is None or not self.retry_on_result(result)
        ):
            return result
        # Retrying happens outside the except block, so the caller's
        # exception keeps its own __context__.
        run = _RetryRun(self, name or _callable_name(fn), started, deadline_at)
        if error is not None:
            error = run.attempt_error(error, limit)
        return run.retry_sync(
            fn, args, kwargs, error, result if error is None else None
        )

    # -- async --------------------------------------------------------------

    async def acall(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """
        Await ``fn(*args, **kwargs)``, retrying per the policy.

        Each attempt runs in a cancel scope that ends at the earlier of the
        deadline and the attempt timeout.
        """
        return await self._acall_named(None, fn, *args, **kwargs)

    async def _acall_named(
        self,
        name: str | None,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        started = self._now()
        if self.budget is not None:
            self.budget.record_request()
        deadline_at = self._deadline_at(started)
        if deadline_at is not None or self.attempt_timeout is not None:
            run = _RetryRun(self, name or _callable_name(fn), started, deadline_at)
            return await run.retry_async(fn, args, kwargs, None, None, first=True)
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
            if self.retry_on_result is None or not self.retry_on_result(result):
                return result
        run = _RetryRun(self, name or _callable_name(fn), started, None)
        return await run.retry_async(
            fn, args, kwargs, error, result if error is None else None
        )

    # -- decorator ------------------------------------------------------

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """
        Decorate a function so every call runs under the policy.

        Works on sync and async functions, methods, and `classmethod` or
        `staticmethod` objects; an async function stays a coroutine
        function, and ``functools.wraps`` metadata is kept.
        """
        if isinstance(fn, (classmethod, staticmethod)):
            return type(fn)(self(fn.__func__))
        name = self.name or _callable_name(fn)
        if inspect.iscoroutinefunction(fn):
            if self._plain and self.retry_on_result is None:
                return self._fast_async_wrapper(fn, name)

            @functools.wraps(fn)
            async def retrying_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self._acall_named(name, fn, *args, **kwargs)

            return retrying_async

        if self.budget is not None or self.attempt_timeout is not None:
            return self._general_wrapper(fn, name)
        if self.retry_on_result is not None:
            return self._general_wrapper(fn, name)
        return self._fast_wrapper(fn, name)

    def _general_wrapper(self, fn: Callable[P, T], name: str) -> Callable[P, T]:
        @functools.wraps(fn)
        def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
            return self._call_named(name, fn, *args, **kwargs)

        return retrying

    def _fast_wrapper(self, fn: Callable[P, T], name: str) -> Callable[P, T]:
        # The same steps as `_call_named` for a policy without budget,
        # attempt timeout or result predicate, with every lookup hoisted out
        # of the call: the success path is a handful of local operations.
        now = self._now
        clock = self.clock
        deadline = self.deadline
        get_deadline = _current_deadline.get
        set_deadline = _current_deadline.set
        reset_deadline = _current_deadline.reset

        @functools.wraps(fn)
        def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
            started = now()
            outer = get_deadline()
            if deadline is None and outer is None:
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    error = exc
                run = _RetryRun(self, name, started, None)
                return run.retry_sync(fn, args, kwargs, error)
            deadline_at = None if deadline is None else started + deadline
            if (
                outer is not None
                and outer[0] is clock
                and (deadline_at is None or outer[1] < deadline_at)
            ):
                deadline_at = outer[1]
            token = None
            if deadline_at is not None:
                token = set_deadline((clock, deadline_at))
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                error = exc
            finally:
                if token is not None:
                    reset_deadline(token)
            run = _RetryRun(self, name, started, deadline_at)
            return run.retry_sync(fn, args, kwargs, error)

        return retrying

    def _fast_async_wrapper(
        self, fn: Callable[P, Awaitable[T]], name: str
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        # The same steps as `_acall_named` for a policy without deadline,
        # attempt timeout, budget or result predicate, in one coroutine
        # frame instead of two and with the lookups hoisted out of the call.
        now = self._now
        clock = self.clock
        get_deadline = _current_deadline.get

        @functools.wraps(fn)
        async def retrying_async(*args: P.args, **kwargs: P.kwargs) -> T:
            started = now()
            outer = get_deadline()
            if outer is not None and outer[0] is clock:
                # An enclosing deadline on this clock bounds the attempts,
                # which then run in cancel scopes.
                run = _RetryRun(self, name, started, outer[1])
                return await run.retry_async(fn, args, kwargs, None, None, first=True)
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                error = exc
            run = _RetryRun(self, name, started, None)
            return await run.retry_async(fn, args, kwargs, error)

        return retrying_async

    # -- block form -----------------------------------------------------

    def retry_context(self, name: str = "block") -> Attempts:
        """
        Return an iterator of attempts for retrying a block of code.

        Use ``for attempt in policy.retry_context(): with attempt: ...`` in
        sync code, or ``async for`` in async code. An exception leaving the
        ``with`` block is retried per the policy or propagates; a block that
        completes ends the loop.

        .. versionadded:: 0.1.0
        """
        if self.budget is not None:
            self.budget.record_request()
        started = self.clock.monotonic()
        return Attempts(_RetryRun(self, name, started, self._deadline_at(started)))


@attrs.define(slots=True, eq=False)
class _RetryRun:
    """
    The per-call state of one retried call: never shared between calls.
    """

    policy: RetryPolicy
    name: str
    started: float
    deadline_at: float | None
    attempt: int = 1
    previous_delay: float | None = None
    last_error: BaseException | None = None

    def attempt_limit(self) -> float | None:
        """
        Return the absolute time the current attempt must end by, if any.
        """
        limit = self.deadline_at
        timeout = self.policy.attempt_timeout
        if timeout is not None:
            attempt_end = self.policy.clock.monotonic() + timeout
            limit = attempt_end if limit is None else min(limit, attempt_end)
        return limit

    def next_delay(self, exc: BaseException | None) -> float | None:
        """
        Return the delay before the next attempt, or None to give up.

        *exc* is None when a result, not an error, asked for a retry. On
        giving up, a note is added to *exc* and an event emitted.
        """
        policy = self.policy
        if exc is not None:
            previous, self.last_error = self.last_error, exc
            if not policy.is_retryable(exc):
                if self._ended_by_deadline(exc):
                    # The call's own deadline ended the attempt, such as an
                    # executor's wait in sync code: chain the error that
                    # caused the retry, as the async path does, unless the
                    # error already explains itself.
                    if (
                        previous is not None
                        and exc.__cause__ is None
                        and (exc.__context__ is None or exc.__suppress_context__)
                    ):
                        exc.__cause__ = previous
                    self._give_up(exc, "deadline", "the deadline ended the attempt")
                    return None
                self._give_up(exc, "not_retryable")
                return None
        if self.attempt >= policy.attempts:
            self._give_up(exc, "attempts")
            return None
        hinted = None if exc is None else policy._server_hint(exc)
        if hinted is not None:
            delay = hinted
        else:
            delay = policy.backoff.delay(self.attempt, self.previous_delay)
        deadline_at = self.deadline_at
        if deadline_at is not None and policy.clock.monotonic() + delay >= deadline_at:
            self._give_up(exc, "deadline")
            return None
        if policy.budget is not None and not policy.budget.try_withdraw():
            self._give_up(exc, "budget")
            return None
        self.previous_delay = delay
        emit(
            policy.listeners,
            RetryScheduled(
                self.name,
                self.attempt,
                delay,
                "result" if exc is None else type(exc).__name__,
                "result"
                if exc is None
                else ("hint" if hinted is not None else "error"),
                exc,
            ),
        )
        self.attempt += 1
        return delay

    def _ended_by_deadline(self, exc: BaseException) -> bool:
        # A DeadlineExceeded that arrives once the call's deadline has
        # passed; one raised earlier came from elsewhere, such as the
        # function's own timeout.
        deadline_at = self.deadline_at
        return (
            isinstance(exc, DeadlineExceeded)
            and deadline_at is not None
            and self.policy.clock.monotonic() >= deadline_at - _DEADLINE_SLACK
        )

    def attempt_error(self, exc: Exception, limit: float | None) -> Exception:
        """
        Return the error to judge for an attempt that raised *exc* and had
        to end by *limit*.

        A `DeadlineExceeded` raised when the attempt's own timeout passed,
        with the call's deadline still ahead, is the attempt timing out:
        it becomes the same `TimeoutError` that the async path raises, so
        both paths retry it alike.
        """
        if (
            isinstance(exc, DeadlineExceeded)
            and limit is not None
            and self.policy.attempt_timeout is not None
            and (self.deadline_at is None or limit < self.deadline_at)
            and self.policy.clock.monotonic() >= limit - _DEADLINE_SLACK
        ):
            timeout = TimeoutError(
                f"attempt {self.attempt} of {self.name} timed out after "
                f"{self.policy.attempt_timeout:.3f} s"
            )
            timeout.__cause__ = exc
            return timeout
        return exc

    def _give_up(
        self, exc: BaseException | None, reason: str, why: str | None = None
    ) -> None:
        policy = self.policy
        elapsed = policy.clock.monotonic() - self.started
        if exc is not None and (reason != "not_retryable" or self.attempt > 1):
            _add_note(
                exc,
                f"buttress: gave up on {self.name} after {self.attempt} "
                f"attempt(s) in {elapsed:.3f} s ({why or _REASONS[reason]})",
            )
        emit(
            policy.listeners,
            RetryGaveUp(
                self.name,
                self.attempt,
                elapsed,
                reason,
                "result" if exc is None else type(exc).__name__,
                exc,
            ),
        )

    def deadline_error(self) -> DeadlineExceeded:
        elapsed = self.policy.clock.monotonic() - self.started
        emit(
            self.policy.listeners,
            RetryGaveUp(
                self.name, self.attempt, elapsed, "deadline", "DeadlineExceeded", None
            ),
        )
        return DeadlineExceeded(
            f"{self.name} did not finish within its deadline: attempt "
            f"{self.attempt} was cancelled after {elapsed:.3f} s"
        )

    def retry_sync(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: Exception | None,
        result: Any = None,
    ) -> T:
        policy = self.policy
        clock = policy.clock
        while True:
            delay = self.next_delay(exc)
            if delay is None:
                if exc is not None:
                    raise exc
                return cast(T, result)
            clock.sleep(delay)
            limit = self.attempt_limit()
            token = None if limit is None else _current_deadline.set((clock, limit))
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                exc = self.attempt_error(error, limit)
                continue
            finally:
                if token is not None:
                    _current_deadline.reset(token)
            if policy.retry_on_result is None or not policy.retry_on_result(result):
                return cast(T, result)
            exc = None

    async def retry_async(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: Exception | None,
        result: Any = None,
        *,
        first: bool = False,
    ) -> T:
        policy = self.policy
        clock = policy.clock
        while True:
            if not first:
                delay = self.next_delay(exc)
                if delay is None:
                    if exc is not None:
                        raise exc
                    return result  # type: ignore[no-any-return]
                await clock.asleep(delay)
            first = False
            limit = self.attempt_limit()
            if limit is None:
                try:
                    result = await fn(*args, **kwargs)
                except Exception as error:
                    exc = error
                    continue
            else:
                token = _current_deadline.set((clock, limit))
                try:
                    with anyio.move_on_after(
                        max(0.0, limit - clock.monotonic())
                    ) as scope:
                        result = await fn(*args, **kwargs)
                except Exception as error:
                    exc = self.attempt_error(error, limit)
                    continue
                finally:
                    _current_deadline.reset(token)
                if scope.cancelled_caught:
                    if self.deadline_at is not None and limit >= self.deadline_at:
                        raise self.deadline_error() from self.last_error
                    exc = TimeoutError(
                        f"attempt {self.attempt} of {self.name} timed out after "
                        f"{policy.attempt_timeout:.3f} s"
                    )
                    continue
            if policy.retry_on_result is None or not policy.retry_on_result(result):
                return cast(T, result)
            exc = None


class Attempt:
    """
    One attempt of a retried block; use it as a context manager.

    Attributes:
        number: The attempt's number, counting from 1.
    """

    __slots__ = ("_attempts", "_token", "number")

    def __init__(self, attempts: Attempts, number: int) -> None:
        self._attempts = attempts
        self._token: Any = None
        self.number = number

    def __repr__(self) -> str:
        return f"<Attempt {self.number}>"

    def __enter__(self) -> Self:
        run = self._attempts._run
        limit = run.attempt_limit()
        if limit is not None:
            self._token = _current_deadline.set((run.policy.clock, limit))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._token is not None:
            _current_deadline.reset(self._token)
            self._token = None
        if exc is None or not isinstance(exc, Exception):
            return False
        delay = self._attempts._run.next_delay(exc)
        if delay is None:
            return False
        self._attempts._delay = delay
        return True


class Attempts:
    """
    Iterator of `Attempt` objects returned by `RetryPolicy.retry_context`;
    iterate with ``for`` in sync code and ``async for`` in async code.

    The first attempt is handed out at once. Another follows only when the
    previous attempt's block raised an exception that the policy retries;
    the sleep before it happens inside the iteration step.
    """

    __slots__ = ("_delay", "_run", "_started")

    def __init__(self, run: _RetryRun) -> None:
        self._run = run
        self._delay: float | None = None
        self._started = False

    def __iter__(self) -> Iterator[Attempt]:
        return self

    def __next__(self) -> Attempt:
        if not self._started:
            self._started = True
            return Attempt(self, 1)
        if self._delay is None:
            raise StopIteration
        delay, self._delay = self._delay, None
        self._run.policy.clock.sleep(delay)
        return Attempt(self, self._run.attempt)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Attempt:
        if not self._started:
            self._started = True
            return Attempt(self, 1)
        if self._delay is None:
            raise StopAsyncIteration
        delay, self._delay = self._delay, None
        await self._run.policy.clock.asleep(delay)
        return Attempt(self, self._run.attempt)
