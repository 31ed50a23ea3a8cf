"""
The base of every client backend: a blocking client per worker thread,
behind one `Guard`.

A backend subclasses `ClientAdapter`, defines how to build and close its
client, and supplies a `Classifier` that interprets the client's errors. Each operation is a function that receives the calling worker
thread's client; `run` and `call` send it through the Guard. Clients are
built lazily in the worker thread that uses them, never shared between
threads, and closed in that same thread when it exits, so drivers that
reject cross-thread use (sqlite3, for one) work unchanged.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from typing_extensions import Self

from .._breaker import CircuitBreaker
from .._budget import RetryBudget
from .._classify import Classifier
from .._clock import SYSTEM_CLOCK, Clock
from .._events import DEFAULT_LISTENERS, Listener
from .._executor import BoundedExecutor
from .._guard import Guard, GuardStatistics
from .._retry import RetryPolicy
from .._validate import Duration

__all__ = ["ClientAdapter"]

C = TypeVar("C")
T = TypeVar("T")


class _Default(enum.Enum):
    """The marker for "build the default part" in `ClientAdapter`."""

    TOKEN = 0


DEFAULT = _Default.TOKEN


class ClientAdapter(Generic[C]):
    """
    A guarded blocking client: one client per worker thread, one pipeline.

    Subclasses implement `create_client` and may override `close_client`,
    `classifier` and `health_details`.

    Args:
        name: Names the executor threads, the breaker and log records.
        max_workers: Worker threads, 1 to 100.
        queue_multiplier: Queue size as a multiple of ``max_workers``.
        timeout: Seconds for a whole operation, retries included.
        retry: Retry policy; None disables retries.
        breaker: Circuit breaker; by default one with 5 consecutive failures
            and a 30 s reset timeout; None disables it.
        budget: Optional retry budget shared by every operation.
        shared_throttle: When an attempt fails with a server-suggested
            wait (the classifier's ``retry_after``, such as an HTTP 429
            Retry-After), every operation of this adapter waits until then
            before its next attempt starts; see `buttress.Guard`.
        clock: Time source for every part.
        listeners: Receivers of retry, breaker and executor events.

    .. versionadded:: 0.1.0
    """

    handler_type: ClassVar[str] = "buttress.clients"

    def __init__(
        self,
        *,
        name: str,
        max_workers: int = 10,
        queue_multiplier: int = 3,
        timeout: Duration | None = 30.0,
        retry: RetryPolicy | _Default | None = DEFAULT,
        breaker: CircuitBreaker | _Default | None = DEFAULT,
        budget: RetryBudget | None = None,
        shared_throttle: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] = DEFAULT_LISTENERS,
    ) -> None:
        self.name = name
        self._local = threading.local()
        if retry is DEFAULT:
            retry = RetryPolicy(clock=clock, listeners=listeners)
        if breaker is DEFAULT:
            breaker = CircuitBreaker(name=name, clock=clock, listeners=listeners)
        self.executor = BoundedExecutor(
            max_workers,
            queue_multiplier=queue_multiplier,
            name=f"{name}-worker",
            listeners=listeners,
            thread_exit=self._close_thread_client,
        )
        self.guard = self._make_guard(
            retry=retry,
            breaker=breaker,
            executor=self.executor,
            timeout=timeout,
            budget=budget,
            classifier=self.classifier(),
            shared_throttle=shared_throttle,
            clock=clock,
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- what a backend provides ------------------------------------------

    def create_client(self) -> C:
        """
        Build one client; called in the worker thread that will use it.
        """
        raise NotImplementedError

    def close_client(self, client: C) -> None:
        """
        Close one client; called in the thread that built it. By default
        calls its ``close()`` method if it has one.
        """
        close = getattr(client, "close", None)
        if callable(close):
            close()

    def _make_guard(
        self,
        *,
        retry: RetryPolicy | None,
        breaker: CircuitBreaker | None,
        executor: BoundedExecutor,
        timeout: Duration | None,
        budget: RetryBudget | None,
        classifier: Classifier | None,
        shared_throttle: bool,
        clock: Clock,
    ) -> Guard:
        """
        Build the Guard from its parts. A backend may override this to
        return a `Guard` subclass that adds a step to every attempt.
        """
        return Guard(
            retry=retry,
            breaker=breaker,
            executor=executor,
            timeout=timeout,
            budget=budget,
            classifier=classifier,
            shared_throttle=shared_throttle,
            clock=clock,
        )

    def classifier(self) -> Classifier | None:
        """
        Return the classifier for this backend's errors, or None to use the
        retry policy's ``retry_on`` and the breaker's settings.
        """
        return None

    async def health_details(self) -> dict[str, Any]:
        """
        Return backend-specific health fields, merged into `health_check`.

        A backend may set ``"healthy": False`` here, with a reason.
        """
        return {}

    # -- per-thread clients ---------------------------------------------

    def _thread_client(self) -> C:
        client: C | None = getattr(self._local, "client", None)
        if client is None:
            client = self.create_client()
            self._local.client = client
        return client

    def _close_thread_client(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            self.close_client(client)

    def discard_thread_client(self) -> None:
        """
        Close the calling worker thread's client, so its next operation
        builds a new one; for use inside an operation after an error that
        leaves the client unusable (a lost connection, for one).
        """
        self._close_thread_client()

    def _bind(self, op: Callable[..., T], args: tuple[Any, ...]) -> Callable[[], T]:
        def run_op() -> T:
            return op(self._thread_client(), *args)

        run_op.__qualname__ = getattr(op, "__qualname__", type(op).__qualname__)
        return run_op

    # -- running operations -----------------------------------------------

    async def run(
        self, op: Callable[..., T], /, *args: Any, replay_safe: bool = True
    ) -> T:
        """
        Run ``op(client, *args)`` in a worker thread through the pipeline.

        Args:
            op: A blocking function taking the thread's client first.
            replay_safe: Whether running *op* twice has the same effect as
                once. If False, *op* is not retried after an error whose
                outcome is unknown (a timeout after the request was sent).
        """
        self._check_open()
        bound = self._bind(op, args)
        if replay_safe:
            return await self.guard.run(bound)
        return await self.guard.run_unsafe(bound)

    def call(self, op: Callable[..., T], /, *args: Any, replay_safe: bool = True) -> T:
        """
        Like `run`, from a plain thread: blocks until the operation ends.
        """
        self._check_open()
        bound = self._bind(op, args)
        if replay_safe:
            return self.guard.call(bound)
        return self.guard.call_unsafe(bound)

    def _check_open(self) -> None:
        if self._closed:
            msg = f"{type(self).__name__} {self.name!r} is closed; create a new one"
            raise RuntimeError(msg)

    # -- visibility -----------------------------------------------------

    def statistics(self) -> GuardStatistics:
        """
        Return the statistics of the breaker, executor and budget.
        """
        return self.guard.statistics()

    def _common_health(self) -> dict[str, Any]:
        stats = self.guard.statistics()
        health = self.guard.health()
        executor = stats.executor
        breaker = stats.breaker
        assert executor is not None
        return {
            "healthy": health.healthy and not self._closed,
            "reasons": list(health.reasons) + (["closed"] if self._closed else []),
            "handler_type": self.handler_type,
            "name": self.name,
            "timeout_seconds": self.guard.timeout,
            "circuit_breaker_state": breaker.state.value if breaker else None,
            "circuit_breaker_failure_count": (
                breaker.consecutive_failures if breaker else 0
            ),
            "thread_pool_active_workers": executor.active,
            "thread_pool_max_workers": executor.max_workers,
            "thread_pool_queue_depth": executor.queued,
            "thread_pool_queue_capacity": executor.queue_capacity,
            "thread_pool_rejected": executor.rejected,
        }

    async def health_check(self) -> dict[str, Any]:
        """
        Return the common health fields merged with `health_details`.
        """
        result = self._common_health()
        details = await self.health_details()
        if details.get("healthy") is False:
            result["healthy"] = False
            reason = details.get("reason")
            if reason:
                result["reasons"].append(reason)
        result.update(
            {k: v for k, v in details.items() if k not in ("healthy", "reason")}
        )
        return result

    # -- lifecycle --------------------------------------------------------

    async def aclose(self, *, timeout: float | None = 10.0) -> None:
        """
        Reject new operations, fail queued ones, and close every client as
        its worker thread exits; waits up to *timeout* seconds for running
        operations.
        """
        self._closed = True
        await self.executor.aclose(timeout=timeout)

    def close(self, *, timeout: float | None = 10.0) -> None:
        """
        Close the adapter and its worker threads: the sync twin of `aclose`.
        """
        self._closed = True
        self.executor.shutdown(timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
