"""
A bounded executor: worker threads in front of a queue that rejects when
full.

How it works. One `threading.Lock` guards all bookkeeping, and is never held
while user code runs. Admission hands an item straight to an idle worker if
fewer than ``limit`` items are running, starts a new thread if no worker is
idle, or appends the item to the queue if it has room; otherwise it raises
`ExecutorSaturated` at once. A worker that finishes an item takes the next
queued one before it counts itself idle, so ``active`` and ``queued`` in
`statistics` are exact at every read. Without an adaptive limit, ``limit``
is ``max_workers``.

A caller that gives up (cancelled, timed out) while its item is queued
removes the item. If the item is already running, the thread cannot be
stopped: its slot stays taken until the function returns, the item is
counted as abandoned meanwhile, and its result is dropped.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import enum
import functools
import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

import anyio
import attrs
from typing_extensions import Self

from ._errors import DeadlineExceeded, ExecutorClosed, ExecutorSaturated
from ._events import (
    DEFAULT_LISTENERS,
    CallRejected,
    LimitChanged,
    Listener,
    LoggingListener,
    emit,
)
from ._validate import Duration, check_int_range, check_positive, to_seconds
from ._wakeup import make_waiter

__all__ = ["AdaptiveLimit", "BoundedExecutor", "ExecutorStatistics"]

_log = logging.getLogger("buttress.executor")

T = TypeVar("T")

_executor_ids = itertools.count(1)

# Every executor alive, so a forked child can reset them all.
_live_executors: weakref.WeakSet[BoundedExecutor] = weakref.WeakSet()


def _reset_executors_after_fork() -> None:
    for executor in list(_live_executors):
        executor._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_executors_after_fork)


def _latency_seconds(value: Duration) -> float:
    return to_seconds(value, owner="AdaptiveLimit", field="latency_target")


@attrs.frozen
class AdaptiveLimit:
    """
    An AIMD concurrency limit between ``minimum`` and the executor's
    ``max_workers``.

    The limit grows by about one for every ``limit`` calls that succeed
    within ``latency_target``, and is multiplied by ``decrease_ratio`` when
    a caller times out or `BoundedExecutor.record_overload` reports that
    the dependency pushed back (an error from it, or a breaker opening).
    This is the additive-increase, multiplicative-decrease scheme of TCP
    congestion control, as used by Netflix's concurrency-limits.

    Args:
        minimum: The limit never drops below this.
        latency_target: Seconds; slower successful calls stop the growth.
        decrease_ratio: Factor applied on a cut, between 0 and 1.
        initial: Starting limit; defaults to ``max_workers``.

    .. versionadded:: 0.1.0
    """

    minimum: int = 1
    latency_target: float = attrs.field(default=1.0, converter=_latency_seconds)
    decrease_ratio: float = 0.5
    initial: int | None = None

    def __attrs_post_init__(self) -> None:
        owner = "AdaptiveLimit"
        check_int_range(owner, "minimum", self.minimum, 1, 100)
        check_positive(owner, "latency_target", self.latency_target)
        if not (0.0 < self.decrease_ratio < 1.0):
            msg = (
                f"{owner}: decrease_ratio={self.decrease_ratio!r} is out of "
                f"range, it must be greater than 0.0 and less than 1.0"
            )
            raise ValueError(msg)
        if self.initial is not None:
            check_int_range(owner, "initial", self.initial, self.minimum, 100)


_new_error = BaseException.__new__


class _ItemState(enum.Enum):
    QUEUED = 0
    RUNNING = 1
    DONE = 2
    WITHDRAWN = 3


class _Item:
    __slots__ = (
        "abandoned",
        "args",
        "context",
        "enqueued_at",
        "fn",
        "notify",
        "started_at",
        "state",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        notify: Callable[[Any, BaseException | None], None],
    ) -> None:
        self.fn = fn
        self.args = args
        self.notify = notify
        # The caller's context travels to the worker, so contextvars such as
        # the current deadline are visible to the function.
        self.context = contextvars.copy_context()
        self.state = _ItemState.QUEUED
        self.abandoned = False
        self.enqueued_at = 0.0
        self.started_at = 0.0


class _IdleWorker:
    """
    A parked worker thread; `wake` hands it an item, or None to stop.
    """

    __slots__ = ("item", "signal")

    def __init__(self) -> None:
        self.item: _Item | None = None
        self.signal = threading.Lock()
        self.signal.acquire()

    def wake(self, item: _Item | None) -> None:
        self.item = item
        self.signal.release()


@attrs.frozen
class ExecutorStatistics:
    """
    A snapshot of a `BoundedExecutor`, consistent at the moment it was taken.

    Attributes:
        name: The executor's name, also the prefix of its thread names.
        max_workers: Upper bound on threads running user functions.
        limit: The current concurrency limit; below ``max_workers`` only
            with an adaptive limit.
        active: User functions running now, abandoned ones included.
        queued: Callers waiting for a worker.
        queue_capacity: Upper bound on ``queued``.
        threads: Worker threads alive now, idle ones included.
        abandoned: Functions still running whose caller gave up.
        abandoned_total: Functions whose caller gave up while they ran.
        rejected: Calls rejected for any reason.
        rejected_queue_full: Rejected because workers and queue were full.
        rejected_no_free_worker: Rejected by `run_nowait` or
            `submit_nowait` because no worker was free.
        rejected_queue_timeout: Rejected after waiting ``queue_timeout``.
        rejected_closed: Rejected because the executor was shut down.
        withdrawn: Calls that left the queue because their caller gave up.
        completed: Functions that returned.
        failed: Functions that raised.
        peak_active: Highest ``active`` seen.
        peak_queued: Highest ``queued`` seen.
        total_queue_wait: Seconds spent queued by calls that started.
        max_queue_wait: Longest time one call spent queued, in seconds.
        closed: Whether the executor was shut down.
    """

    name: str
    max_workers: int
    limit: int
    active: int
    queued: int
    queue_capacity: int
    threads: int
    abandoned: int
    abandoned_total: int
    rejected: int
    rejected_queue_full: int
    rejected_no_free_worker: int
    rejected_queue_timeout: int
    rejected_closed: int
    withdrawn: int
    completed: int
    failed: int
    peak_active: int
    peak_queued: int
    total_queue_wait: float
    max_queue_wait: float
    closed: bool


class BoundedExecutor:
    """
    Run blocking functions on a bounded set of threads with a bounded queue.

    Args:
        max_workers: Threads that may run user functions at once, 1 to 100.
        queue_size: Callers allowed to wait for a worker; 0 disables the
            queue. Defaults to ``max_workers * queue_multiplier``.
        queue_multiplier: Sets ``queue_size`` to ``max_workers`` times this,
            1 to 10 (default 3). Give either this or ``queue_size``.
        queue_timeout: Seconds a caller may wait in the queue before it is
            rejected with `ExecutorSaturated`; None waits as long as the
            caller's own timeout allows.
        adaptive: An `AdaptiveLimit` that moves the concurrency limit
            between its minimum and ``max_workers``; None keeps it at
            ``max_workers``.
        name: Prefix of the worker thread names.
        keep_alive: Seconds an idle worker thread lives before it exits.
        listeners: Receivers of rejection and limit events.
        thread_exit: Called with no arguments in each worker thread just
            before it exits (idle retirement or shutdown), for closing
            per-thread resources such as database connections. Its errors
            are logged, never raised.

    All callers share one bound: async callers on any event loop (`run`,
    `run_nowait`) and plain threads (`submit`, `call`). Worker threads are
    daemon threads, so one stuck forever in a blocking call never keeps the
    interpreter from exiting. In a child process created by `os.fork`, the
    executor starts empty: the parent's threads do not exist there.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        max_workers: int = 10,
        queue_size: int | None = None,
        *,
        queue_multiplier: int | None = None,
        queue_timeout: Duration | None = None,
        adaptive: AdaptiveLimit | None = None,
        name: str | None = None,
        keep_alive: Duration = 60.0,
        listeners: tuple[Listener, ...] = DEFAULT_LISTENERS,
        thread_exit: Callable[[], object] | None = None,
    ) -> None:
        owner = "BoundedExecutor"
        check_int_range(owner, "max_workers", max_workers, 1, 100)
        if queue_size is not None and queue_multiplier is not None:
            msg = (
                f"{owner}: queue_size={queue_size!r} and "
                f"queue_multiplier={queue_multiplier!r} were both given; pass "
                f"only one of them"
            )
            raise ValueError(msg)
        if queue_size is None:
            multiplier = 3 if queue_multiplier is None else queue_multiplier
            check_int_range(owner, "queue_multiplier", multiplier, 1, 10)
            queue_size = max_workers * multiplier
        check_int_range(owner, "queue_size", queue_size, 0, 100_000)
        self.queue_timeout: float | None = None
        if queue_timeout is not None:
            self.queue_timeout = to_seconds(
                queue_timeout, owner=owner, field="queue_timeout"
            )
            check_positive(owner, "queue_timeout", self.queue_timeout)
        adaptive_given: object = adaptive
        if adaptive_given is not None and not isinstance(adaptive_given, AdaptiveLimit):
            msg = f"{owner}: adaptive={adaptive!r} is invalid, pass an AdaptiveLimit or None"
            raise TypeError(msg)
        if adaptive is not None and adaptive.minimum > max_workers:
            msg = (
                f"{owner}: adaptive.minimum={adaptive.minimum!r} is greater than "
                f"max_workers={max_workers!r}; lower the minimum or raise max_workers"
            )
            raise ValueError(msg)
        keep_alive_seconds = to_seconds(keep_alive, owner=owner, field="keep_alive")
        check_positive(owner, "keep_alive", keep_alive_seconds)
        self.name = name or f"buttress-executor-{next(_executor_ids)}"
        self.max_workers = max_workers
        self.queue_size = queue_size
        self.adaptive = adaptive
        self.keep_alive = keep_alive_seconds
        self._listeners = tuple(listeners)
        # Rejections come in floods; only listeners that asked for them
        # (anything but the logging default) pay for building the event.
        self._rejection_listeners = tuple(
            listener
            for listener in self._listeners
            if not isinstance(listener, LoggingListener)
        )
        self._lock = threading.Lock()
        self._queue: deque[_Item] = deque()
        self._idle: list[_IdleWorker] = []
        self._threads: set[threading.Thread] = set()
        self._thread_ids = itertools.count(1)
        initial = max_workers
        if adaptive is not None and adaptive.initial is not None:
            initial = min(adaptive.initial, max_workers)
        self._limit = initial
        self._limit_value = float(initial)
        self._active = 0
        self._closed = False
        self._abandoned = 0
        self._abandoned_total = 0
        self._rejected_queue_full = 0
        self._rejected_no_free_worker = 0
        self._rejected_queue_timeout = 0
        self._rejected_closed = 0
        self._withdrawn = 0
        self._completed = 0
        self._failed = 0
        self._peak_active = 0
        self._peak_queued = 0
        self._total_queue_wait = 0.0
        self._max_queue_wait = 0.0
        self._thread_exit = thread_exit
        _live_executors.add(self)

    def _reset_after_fork(self) -> None:
        # Runs in the child of os.fork(), where only the forking thread
        # exists: forget the parent's workers and queued callers.
        self._lock = threading.Lock()
        self._queue.clear()
        self._idle.clear()
        self._threads.clear()
        self._active = 0
        self._abandoned = 0

    def __repr__(self) -> str:
        return (
            f"<BoundedExecutor {self.name!r} max_workers={self.max_workers} "
            f"queue_size={self.queue_size} active={self._active} "
            f"queued={len(self._queue)}>"
        )

    # -- admission --------------------------------------------------------

    def _admit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        notify: Callable[[Any, BaseException | None], None],
        may_queue: bool = True,
    ) -> _Item:
        item = _Item(fn, args, notify)
        with self._lock:
            if self._closed:
                self._rejected_closed += 1
                error: ExecutorSaturated | ExecutorClosed = self._closed_error(
                    "is shut down and accepts no new work; create a new executor"
                )
            elif self._active < self._limit:
                self._dispatch_locked(item)
                return item
            elif may_queue and len(self._queue) < self.queue_size:
                item.enqueued_at = time.monotonic()
                self._queue.append(item)
                if len(self._queue) > self._peak_queued:
                    self._peak_queued = len(self._queue)
                return item
            else:
                error = self._full_error_locked(may_queue)
        self._emit_rejection(error.reason)
        raise error

    def _full_error_locked(self, may_queue: bool) -> ExecutorSaturated:
        # Caller holds the lock and has found no free worker, and no room in
        # the queue when *may_queue*.
        if may_queue:
            self._rejected_queue_full += 1
            reason = "queue_full"
        else:
            self._rejected_no_free_worker += 1
            reason = "no_free_worker"
        # Without __init__: the fields are set directly, and the message is
        # built from them only when read.
        error: ExecutorSaturated = _new_error(ExecutorSaturated)
        error.reason = reason
        error.max_workers = self.max_workers
        error.queue_size = self.queue_size
        error._name = self.name
        error._limit = self._limit
        return error

    def _reject_if_full(self, may_queue: bool) -> ExecutorSaturated | None:
        """
        Return the error for a call that finds the executor full, or None.

        The entry points call it before they build the caller's future and
        work item, so a rejection allocates only its error. The first test
        reads the counters without the lock, and a full executor is
        confirmed under the lock.
        """
        if self._active < self._limit or (
            may_queue and len(self._queue) < self.queue_size
        ):
            return None
        with self._lock:
            if (
                self._closed
                or self._active < self._limit
                or (may_queue and len(self._queue) < self.queue_size)
            ):
                # Closed, or room freed meanwhile: the full path decides.
                return None
            error = self._full_error_locked(may_queue)
        self._emit_rejection(error.reason)
        return error

    def _emit_rejection(self, reason: str) -> None:
        if self._rejection_listeners:
            emit(
                self._rejection_listeners,
                CallRejected(self.name, "executor_saturated", reason),
            )

    def _closed_error(self, text: str) -> ExecutorClosed:
        return ExecutorClosed(
            f"executor {self.name!r} {text}",
            reason="closed",
            max_workers=self.max_workers,
            queue_size=self.queue_size,
        )

    def _dispatch_locked(self, item: _Item) -> None:
        # Caller holds the lock and has checked that active < limit.
        item.state = _ItemState.RUNNING
        if self.adaptive is not None:
            item.started_at = time.monotonic()
        self._active += 1
        if self._active > self._peak_active:
            self._peak_active = self._active
        if self._idle:
            self._idle.pop().wake(item)
            return
        thread = threading.Thread(
            target=self._work,
            args=(item,),
            name=f"{self.name}-{next(self._thread_ids)}",
            daemon=True,
        )
        self._threads.add(thread)
        thread.start()

    def _withdraw(self, item: _Item) -> bool:
        """
        Release a caller's claim on *item* after the caller gave up.

        Returns:
            True if the item was still queued and left the queue.
        """
        with self._lock:
            if item.state is _ItemState.QUEUED:
                self._queue.remove(item)
                item.state = _ItemState.WITHDRAWN
                self._withdrawn += 1
                return True
            if item.state is _ItemState.RUNNING and not item.abandoned:
                item.abandoned = True
                self._abandoned += 1
                self._abandoned_total += 1
                event = self._cut_limit_locked("timeout")
            else:
                return False
        if event is not None:
            emit(self._listeners, event)
        return False

    def _reject_queued(self, item: _Item) -> bool:
        """
        Reject *item* for waiting ``queue_timeout`` if it is still queued.
        """
        with self._lock:
            if item.state is not _ItemState.QUEUED:
                return False
            self._queue.remove(item)
            item.state = _ItemState.WITHDRAWN
            self._rejected_queue_timeout += 1
        self._emit_rejection("queue_timeout")
        return True

    def _queue_timeout_error(self) -> ExecutorSaturated:
        return ExecutorSaturated(
            f"executor {self.name!r} is saturated: the call waited "
            f"{self.queue_timeout:.3f} s in the queue without a free worker",
            reason="queue_timeout",
            max_workers=self.max_workers,
            queue_size=self.queue_size,
        )

    # -- adaptive limit ---------------------------------------------------

    def _set_limit_locked(self, value: float, reason: str) -> LimitChanged | None:
        # Caller holds the lock.
        self._limit_value = value
        new = int(value)
        old = self._limit
        if new == old:
            return None
        self._limit = new
        while self._queue and self._active < self._limit:
            self._start_queued_locked()
        return LimitChanged(self.name, old, new, reason)

    def _cut_limit_locked(self, reason: str) -> LimitChanged | None:
        adaptive = self.adaptive
        if adaptive is None:
            return None
        value = max(
            float(adaptive.minimum), self._limit_value * adaptive.decrease_ratio
        )
        return self._set_limit_locked(value, reason)

    def record_overload(self) -> None:
        """
        Report that the dependency pushed back, so an adaptive limit shrinks.

        Does nothing without an adaptive limit. `buttress.Guard` calls it
        when an attempt fails in a way its breaker counts as a failure.
        """
        if self.adaptive is None:
            return
        with self._lock:
            event = self._cut_limit_locked("overload")
        if event is not None:
            emit(self._listeners, event)

    # -- worker threads ---------------------------------------------------

    def _work(self, item: _Item | None) -> None:
        try:
            while item is not None:
                item = self._next_item(self._run(item))
        finally:
            if self._thread_exit is not None:
                try:
                    self._thread_exit()
                except Exception:
                    _log.exception("executor %s: thread_exit hook failed", self.name)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _run(self, item: _Item) -> Callable[[], None] | None:
        """
        Run *item* and return the call that hands its outcome to the caller,
        or None when the caller gave up.
        """
        error: BaseException | None = None
        result: Any = None
        try:
            result = item.context.run(item.fn, *item.args)
        except BaseException as exc:
            error = exc
        event = None
        with self._lock:
            item.state = _ItemState.DONE
            if error is None:
                self._completed += 1
            else:
                self._failed += 1
            abandoned = item.abandoned
            if abandoned:
                self._abandoned -= 1
            elif error is None and self.adaptive is not None:
                event = self._grow_limit_locked(item)
        if event is not None:
            emit(self._listeners, event)
        if abandoned:
            _log.debug(
                "executor %s dropped the %s of a call whose caller gave up",
                self.name,
                "result" if error is None else type(error).__name__,
            )
            return None
        return functools.partial(item.notify, result, error)

    def _grow_limit_locked(self, item: _Item) -> LimitChanged | None:
        adaptive = self.adaptive
        assert adaptive is not None
        if time.monotonic() - item.started_at > adaptive.latency_target:
            return None
        if self._limit_value >= self.max_workers:
            return None
        value = min(
            float(self.max_workers), self._limit_value + 1.0 / self._limit_value
        )
        return self._set_limit_locked(value, "latency_ok")

    def _start_queued_locked(self) -> _Item:
        item = self._queue.popleft()
        waited = time.monotonic() - item.enqueued_at
        self._total_queue_wait += waited
        if waited > self._max_queue_wait:
            self._max_queue_wait = waited
        self._dispatch_locked(item)
        return item

    def _next_item(self, deliver: Callable[[], None] | None) -> _Item | None:
        """
        Take the next queued item for this thread, or park it as idle.

        *deliver* hands the finished item's outcome to its caller. It runs
        only after the slot was passed on or released, so a caller whose
        call returned never finds its own worker still counted as busy.
        """
        item: _Item | None = None
        parked: _IdleWorker | None = None
        with self._lock:
            if self._queue and self._active <= self._limit:
                # Keep this thread and its slot for the next queued item.
                item = self._queue.popleft()
                waited = time.monotonic() - item.enqueued_at
                self._total_queue_wait += waited
                if waited > self._max_queue_wait:
                    self._max_queue_wait = waited
                item.state = _ItemState.RUNNING
                if self.adaptive is not None:
                    item.started_at = time.monotonic()
            else:
                self._active -= 1
                if not self._closed:
                    parked = _IdleWorker()
                    self._idle.append(parked)
        if deliver is not None:
            try:
                deliver()
            except Exception:
                # A parked worker must stay alive, or the next admission
                # would hand its item to a thread that is gone.
                _log.exception("executor %s: delivering a result failed", self.name)
            # Drop the outcome now: a parked thread would keep the result
            # or the traceback alive until its next item.
            deliver = None
        if parked is None:
            return item
        if not parked.signal.acquire(timeout=self.keep_alive):
            with self._lock:
                if parked in self._idle:
                    self._idle.remove(parked)
                    return None
            # An admission or a shutdown took this worker just as the
            # keep-alive ran out, and is about to wake it.
            parked.signal.acquire()
        return parked.item

    # -- async entry points -----------------------------------------------

    async def run(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        timeout: float | None = None,
    ) -> T:
        """
        Run ``fn(*args)`` in a worker thread and return its result.

        Runs at once if a worker is free, waits in FIFO order if the queue
        has room, and is rejected at once otherwise.

        Args:
            fn: A blocking function; use `functools.partial` for keyword
                arguments.
            timeout: Seconds the caller waits, queue time included; when it
                passes the caller gets `DeadlineExceeded`.

        Raises:
            ExecutorSaturated: At once when every worker is busy and the
                queue is full, or after ``queue_timeout`` in the queue.
            DeadlineExceeded: When *timeout* passed first.
        """
        full = self._reject_if_full(True)
        if full is not None:
            raise full
        waiter = make_waiter()
        item = self._admit(fn, args, waiter.notify)
        queue_timeout = self.queue_timeout
        wait_left = timeout
        try:
            if (
                queue_timeout is not None
                and item.state is _ItemState.QUEUED
                and (timeout is None or queue_timeout < timeout)
            ):
                # The event loop's clock, the one move_on_after uses.
                started = anyio.current_time()
                with anyio.move_on_after(queue_timeout):
                    result, error = await waiter.wait()
                    return cast(T, self._unwrap(result, error))
                if self._reject_queued(item):
                    raise self._queue_timeout_error()
                if timeout is not None:
                    waited = anyio.current_time() - started
                    wait_left = max(0.0, timeout - waited)
            if timeout is None:
                result, error = await waiter.wait()
                return cast(T, self._unwrap(result, error))
            with anyio.move_on_after(wait_left):
                result, error = await waiter.wait()
                return cast(T, self._unwrap(result, error))
        except BaseException:
            # Cancelled, or the function's own error: withdrawing a finished
            # item does nothing.
            self._withdraw(item)
            raise
        self._withdraw(item)
        raise DeadlineExceeded(
            f"executor {self.name!r}: call did not finish within {timeout:.3f} s"
        )

    async def run_nowait(
        self, fn: Callable[..., T], /, *args: Any, timeout: float | None = None
    ) -> T:
        """
        Like `run`, but never queue: the call starts at once or is rejected.

        Raises:
            ExecutorSaturated: At once when no worker is free.
            DeadlineExceeded: When *timeout* passed first.
        """
        full = self._reject_if_full(False)
        if full is not None:
            raise full
        waiter = make_waiter()
        item = self._admit(fn, args, waiter.notify, may_queue=False)
        try:
            with anyio.move_on_after(timeout):
                result, error = await waiter.wait()
                return cast(T, self._unwrap(result, error))
        except BaseException:
            self._withdraw(item)
            raise
        self._withdraw(item)
        raise DeadlineExceeded(
            f"executor {self.name!r}: call did not finish within {timeout:.3f} s"
        )

    @staticmethod
    def _unwrap(result: Any, error: BaseException | None) -> Any:
        if error is not None:
            try:
                raise error
            finally:
                # Break the frame -> exception -> traceback -> frame cycle.
                del error
        return result

    # -- sync entry points ------------------------------------------------

    def _submit(
        self, fn: Callable[..., T], args: tuple[Any, ...], may_queue: bool
    ) -> tuple[concurrent.futures.Future[T], _Item]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def notify(result: Any, error: BaseException | None) -> None:
            if not future.set_running_or_notify_cancel():
                return
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        item = self._admit(fn, args, notify, may_queue)

        def on_done(done: concurrent.futures.Future[T]) -> None:
            if done.cancelled():
                self._withdraw(item)

        future.add_done_callback(on_done)
        return future, item

    def submit(
        self, fn: Callable[..., T], /, *args: Any
    ) -> concurrent.futures.Future[T]:
        """
        Schedule ``fn(*args)`` and return a `concurrent.futures.Future`.

        Cancelling the future while the call is queued frees its place; while
        it runs, the call is counted as abandoned and its result dropped.

        Raises:
            ExecutorSaturated: At once, when every worker is busy and the
                queue is full.
        """
        full = self._reject_if_full(True)
        if full is not None:
            raise full
        return self._submit(fn, args, True)[0]

    def submit_nowait(
        self, fn: Callable[..., T], /, *args: Any
    ) -> concurrent.futures.Future[T]:
        """
        Like `submit`, but never queue: the call starts at once or is
        rejected with `ExecutorSaturated`.
        """
        full = self._reject_if_full(False)
        if full is not None:
            raise full
        return self._submit(fn, args, False)[0]

    def call(
        self, fn: Callable[..., T], /, *args: Any, timeout: float | None = None
    ) -> T:
        """
        Run ``fn(*args)`` in a worker thread and block until it returns.

        Raises:
            ExecutorSaturated: At once when every worker is busy and the
                queue is full, or after ``queue_timeout`` in the queue.
            DeadlineExceeded: When *timeout* seconds passed first.
        """
        full = self._reject_if_full(True)
        if full is not None:
            raise full
        future, item = self._submit(fn, args, True)
        started = time.monotonic()
        try:
            queue_timeout = self.queue_timeout
            if (
                queue_timeout is not None
                and item.state is _ItemState.QUEUED
                and (timeout is None or queue_timeout < timeout)
            ):
                done, _ = concurrent.futures.wait((future,), queue_timeout)
                if not done and self._reject_queued(item):
                    future.cancel()
                    raise self._queue_timeout_error()
            left = None if timeout is None else timeout - (time.monotonic() - started)
            return future.result(None if left is None else max(0.0, left))
        except concurrent.futures.TimeoutError:
            if future.done():
                # The function itself raised TimeoutError.
                raise
            future.cancel()
            raise DeadlineExceeded(
                f"executor {self.name!r}: call did not finish within {timeout:.3f} s"
            ) from None
        except BaseException:
            # KeyboardInterrupt in the waiting thread: release the claim. The
            # future stays pending until the worker delivers the outcome, so
            # cancel() succeeds, and its done callback withdraws the item.
            if not future.done():
                future.cancel()
            raise

    # -- lifecycle --------------------------------------------------------

    def _close(self, cancel_queued: bool) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            dropped: list[_Item] = []
            if cancel_queued:
                dropped = list(self._queue)
                self._queue.clear()
                for item in dropped:
                    item.state = _ItemState.WITHDRAWN
                self._rejected_closed += len(dropped)
        for worker in idle:
            worker.wake(None)
        for item in dropped:
            item.notify(
                None, self._closed_error("was shut down before the call started")
            )
            self._emit_rejection("closed")

    def _join(self, timeout: float | None) -> bool:
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [t for t in self._threads if t.is_alive()]
            if not threads:
                return True
            for thread in threads:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                thread.join(None if math.isinf(left) else left)

    def shutdown(
        self,
        wait: bool = True,
        *,
        cancel_queued: bool = True,
        timeout: float | None = None,
    ) -> bool:
        """
        Stop accepting work and, with *wait*, wait for running work to end.

        Args:
            wait: Block until worker threads have exited.
            cancel_queued: Fail queued calls with `ExecutorClosed` instead
                of running them.
            timeout: Upper bound on the wait, in seconds.

        Returns:
            Whether every worker thread had exited when it returned.
        """
        self._close(cancel_queued)
        if not wait:
            with self._lock:
                return not any(t.is_alive() for t in self._threads)
        return self._join(timeout)

    async def aclose(
        self, *, cancel_queued: bool = True, timeout: float | None = None
    ) -> bool:
        """
        Stop accepting work and wait for running work, without blocking the
        event loop.

        Returns:
            Whether every worker thread had exited when it returned.
        """
        self._close(cancel_queued)
        join = functools.partial(self._join, timeout)
        return await anyio.to_thread.run_sync(join, abandon_on_cancel=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def statistics(self) -> ExecutorStatistics:
        """
        Return a consistent snapshot of the executor's counters.
        """
        with self._lock:
            rejected = (
                self._rejected_queue_full
                + self._rejected_no_free_worker
                + self._rejected_queue_timeout
                + self._rejected_closed
            )
            return ExecutorStatistics(
                name=self.name,
                max_workers=self.max_workers,
                limit=self._limit,
                active=self._active,
                queued=len(self._queue),
                queue_capacity=self.queue_size,
                threads=len(self._threads),
                abandoned=self._abandoned,
                abandoned_total=self._abandoned_total,
                rejected=rejected,
                rejected_queue_full=self._rejected_queue_full,
                rejected_no_free_worker=self._rejected_no_free_worker,
                rejected_queue_timeout=self._rejected_queue_timeout,
                rejected_closed=self._rejected_closed,
                withdrawn=self._withdrawn,
                completed=self._completed,
                failed=self._failed,
                peak_active=self._peak_active,
                peak_queued=self._peak_queued,
                total_queue_wait=self._total_queue_wait,
                max_queue_wait=self._max_queue_wait,
                closed=self._closed,
            )
