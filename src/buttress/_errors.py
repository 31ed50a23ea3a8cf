"""
Exceptions raised by buttress itself.

buttress raises its own exception types only for conditions it creates.
When a protected call fails and retries run out, the caller's own exception
propagates unchanged.

The tree::

    ButtressError
    ├── Rejected                 local fast-fail, raised before any work starts
    │   ├── ExecutorSaturated    every worker busy and the queue full
    │   ├── ExecutorClosed       the executor was shut down
    │   └── CircuitOpen          the breaker is open or its probe slots are taken
    └── DeadlineExceeded         the caller's time ran out (also a TimeoutError)
"""

from __future__ import annotations

__all__ = [
    "ButtressError",
    "CircuitOpen",
    "DeadlineExceeded",
    "ExecutorClosed",
    "ExecutorSaturated",
    "Rejected",
]


class ButtressError(Exception):
    """
    Root of every exception that buttress raises itself.
    """


class Rejected(ButtressError):
    """
    A call was rejected locally before any work started.

    Rejections are raised in microseconds, are not retried by default and
    never count as circuit breaker failures.
    """


class ExecutorSaturated(Rejected):
    """
    The executor has no free worker and no room left in its queue.

    Attributes:
        reason: ``"queue_full"``; ``"no_free_worker"`` for admission that
            never queues; ``"queue_timeout"`` when a caller waited in the
            queue longer than the executor's queue timeout.
        max_workers: The executor's worker limit.
        queue_size: The executor's queue capacity.
    """

    # As for CircuitOpen, the message of a full executor is built only when
    # it is read, because rejections come in floods.
    _message: str | None = None
    _name: str = ""
    _limit: int = 0

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str = "queue_full",
        max_workers: int = 0,
        queue_size: int = 0,
        name: str = "",
        limit: int | None = None,
    ) -> None:
        if message is not None:
            super().__init__(message)
        self.reason = reason
        self.max_workers = max_workers
        self.queue_size = queue_size
        self._message = message
        self._name = name
        self._limit = max_workers if limit is None else limit

    def __str__(self) -> str:
        if self._message is not None:
            return self._message
        if self.reason == "no_free_worker":
            return (
                f"executor {self._name!r} has no free worker: all {self._limit} "
                f"workers are busy"
            )
        return (
            f"executor {self._name!r} is saturated: all {self._limit} workers "
            f"are busy and the queue of {self.queue_size} is full; retry later "
            f"or raise max_workers or queue_size"
        )

    def __repr__(self) -> str:
        return (
            f"ExecutorSaturated(reason={self.reason!r}, "
            f"max_workers={self.max_workers!r}, queue_size={self.queue_size!r})"
        )


class ExecutorClosed(Rejected):
    """
    The executor was shut down and accepts no new work.

    It is not an `ExecutorSaturated`: waiting and trying again never helps.

    Attributes:
        reason: Always ``"closed"``.
        max_workers: The executor's worker limit.
        queue_size: The executor's queue capacity.
    """

    def __init__(
        self,
        message: str = "the executor is shut down",
        *,
        reason: str = "closed",
        max_workers: int = 0,
        queue_size: int = 0,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.max_workers = max_workers
        self.queue_size = queue_size


class CircuitOpen(Rejected):
    """
    The circuit breaker rejected the call because the dependency is failing.

    Attributes:
        name: The breaker's name.
        retry_after: Seconds until the breaker admits its next probe call.
            It is ``0.0`` when the breaker is half-open and its probe slots
            are all taken, because a slot frees as soon as a probe ends, and
            ``inf`` while the breaker is forced open.
        reason: ``"open"``, ``"half_open_full"`` or ``"forced_open"``.
    """

    # The message is built only when it is read: a breaker rejects in
    # floods while a dependency is down, and most rejections are counted,
    # not printed. Class-level defaults let the breaker's fast path set only
    # the two fields that vary.
    name: str = ""
    retry_after: float = 0.0
    reason: str = "open"
    _message: str | None = None
    _probe_slots: int = 1

    def __init__(
        self,
        message: str | None = None,
        *,
        name: str = "",
        retry_after: float = 0.0,
        reason: str = "open",
        probe_slots: int = 1,
    ) -> None:
        if message is not None:
            super().__init__(message)
        self.name = name
        self.retry_after = retry_after
        self.reason = reason
        self._message = message
        self._probe_slots = probe_slots

    def __str__(self) -> str:
        if self._message is not None:
            return self._message
        if self.reason == "forced_open":
            return (
                f"circuit breaker {self.name!r} is forced open; call reset() or "
                f"force_closed() to let calls through"
            )
        if self.reason == "half_open_full":
            return (
                f"circuit breaker {self.name!r} is half-open and its "
                f"{self._probe_slots} probe slot(s) are taken; retry shortly"
            )
        return (
            f"circuit breaker {self.name!r} is open; the next probe is admitted "
            f"in {self.retry_after:.3f} s"
        )

    def __repr__(self) -> str:
        return (
            f"CircuitOpen(name={self.name!r}, retry_after={self.retry_after!r}, "
            f"reason={self.reason!r})"
        )


class DeadlineExceeded(ButtressError, TimeoutError):
    """
    The time the caller allowed ran out before the call finished.

    When the deadline ends a running attempt, the attempt's own exception,
    if any, is chained as ``__cause__``.
    """
