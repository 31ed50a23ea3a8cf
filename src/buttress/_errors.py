"""
Exceptions raised by buttress itself.

buttress raises its own exception types only for conditions it creates.
When a protected call fails and retries run out, the caller's own exception
propagates unchanged.

The tree::

    ButtressError
    ├── Rejected                 local fast-fail, raised before any work starts
    │   ├── ExecutorSaturated    every worker busy and the queue full
    │   │   └── ExecutorClosed   the executor was shut down
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
        reason: ``"queue_full"`` or ``"closed"``.
        max_workers: The executor's worker limit.
        queue_size: The executor's queue capacity.
    """

    def __init__(
        self, message: str, *, reason: str, max_workers: int, queue_size: int
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.max_workers = max_workers
        self.queue_size = queue_size


class ExecutorClosed(ExecutorSaturated):
    """
    The executor was shut down and accepts no new work.
    """


class CircuitOpen(Rejected):
    """
    The circuit breaker rejected the call because the dependency is failing.

    Attributes:
        name: The breaker's name.
        retry_after: Seconds until the breaker admits its next probe call.
            It is ``0.0`` when the breaker is half-open and its probe slots
            are all taken, because the slot frees as soon as a probe ends.
    """

    def __init__(self, message: str, *, name: str, retry_after: float) -> None:
        super().__init__(message)
        self.name = name
        self.retry_after = retry_after


class DeadlineExceeded(ButtressError, TimeoutError):
    """
    The time the caller allowed ran out before the call finished.

    When the deadline ends a running attempt, the attempt's own exception,
    if any, is chained as ``__cause__``.
    """
