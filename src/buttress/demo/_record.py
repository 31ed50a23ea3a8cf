"""
Per-phase bookkeeping: the outcome and latency of every call, the retry and
breaker events the adapter emits, and samples of executor and thread counts.
"""

from __future__ import annotations

import contextvars
import enum
import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from .. import (
    CircuitOpen,
    CircuitStateChanged,
    DeadlineExceeded,
    Event,
    ExecutorSaturated,
    ExecutorStatistics,
    RetryGaveUp,
    RetryScheduled,
)
from ..vault import VaultSealed, VaultTimeout

__all__ = [
    "CallRecord",
    "Outcome",
    "PhaseRecorder",
    "ResourceSampler",
    "percentile",
]


class Outcome(enum.Enum):
    """
    The result of one demo call, one of the columns of the phase table.
    """

    SUCCESS = "success"
    CIRCUIT_OPEN = "circuit_open"
    EXECUTOR_SATURATED = "executor_saturated"
    TIMEOUT = "timeout"
    SEALED = "sealed"
    ERROR = "error"


def classify(exc: BaseException) -> Outcome:
    """
    Map an exception raised by an adapter call to its table column.
    """
    if isinstance(exc, CircuitOpen):
        return Outcome.CIRCUIT_OPEN
    if isinstance(exc, ExecutorSaturated) and exc.reason == "queue_full":
        return Outcome.EXECUTOR_SATURATED
    if isinstance(exc, (VaultTimeout, DeadlineExceeded)):
        return Outcome.TIMEOUT
    if isinstance(exc, VaultSealed):
        return Outcome.SEALED
    return Outcome.ERROR


@attrs.define
class CallRecord:
    """
    One adapter call: when it started, how long it took and how it ended.

    ``started`` and ``finished`` are `time.monotonic` values. ``value`` is
    the call's return value when it succeeded.
    """

    started: float
    finished: float
    outcome: Outcome
    error_type: str | None = None
    value: Any = None
    retries: int = 0

    @property
    def latency(self) -> float:
        """
        Seconds from the start of the call to its result or exception.
        """
        return self.finished - self.started


def percentile(values: Sequence[float], fraction: float) -> float:
    """
    Return the nearest-rank percentile of *values*, or ``nan`` when it is
    empty.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@attrs.frozen
class Transition:
    """
    A breaker state change seen by the demo's listener, at monotonic *at*.
    """

    old: str
    new: str
    at: float


@attrs.define
class _RetryCount:
    value: int = 0


# The retry counter of the call running in the current task. Retry events
# are emitted in the task that makes the call, so the listener can credit
# each retry to its call.
_current_retries: contextvars.ContextVar[_RetryCount | None] = contextvars.ContextVar(
    "buttress_demo_current_retries", default=None
)


class PhaseRecorder:
    """
    Collect call outcomes and adapter events for one phase.

    The recorder is also the adapter's event listener. Listeners may run in
    worker threads, so every update takes a `threading.Lock`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.calls: list[CallRecord] = []
        self.retries = 0
        self.retried_types: Counter[str] = Counter()
        # RetryGaveUp events by reason: attempts, deadline or not_retryable.
        self.gave_up: Counter[str] = Counter()
        self.transitions: list[Transition] = []

    # -- listener ---------------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, RetryScheduled):
                self.retries += 1
                counter = _current_retries.get()
                if counter is not None:
                    counter.value += 1
                self.retried_types[event.exception_type] += 1
            elif isinstance(event, RetryGaveUp):
                self.gave_up[event.reason] += 1
            elif isinstance(event, CircuitStateChanged):
                self.transitions.append(
                    Transition(event.old, event.new, time.monotonic())
                )

    # -- calls ------------------------------------------------------------

    async def call(self, operation: Callable[[], Awaitable[Any]]) -> CallRecord:
        """
        Await *operation*, record how it ended and return the record.

        Exceptions are recorded, not raised, but cancellation propagates.
        """
        counter = _RetryCount()
        token = _current_retries.set(counter)
        started = time.monotonic()
        try:
            value = await operation()
        except Exception as exc:
            record = CallRecord(
                started, time.monotonic(), classify(exc), type(exc).__name__
            )
        else:
            record = CallRecord(started, time.monotonic(), Outcome.SUCCESS, value=value)
        finally:
            _current_retries.reset(token)
        record.retries = counter.value
        with self._lock:
            self.calls.append(record)
        return record

    def snapshot(self) -> list[CallRecord]:
        """
        Return a copy of the calls recorded so far.
        """
        with self._lock:
            return list(self.calls)

    def counts(self) -> Counter[Outcome]:
        """
        Return how many recorded calls ended with each outcome.
        """
        with self._lock:
            return Counter(record.outcome for record in self.calls)

    def transition_path(self) -> list[str]:
        """
        Return the breaker states in order, starting with the first old state.

        Without any transition the breaker stayed closed.
        """
        with self._lock:
            if not self.transitions:
                return ["closed"]
            return [self.transitions[0].old, *(t.new for t in self.transitions)]

    def describe_transitions(self) -> str:
        """
        Return the breaker states in order with the seconds since the phase
        started at which each was entered.
        """
        with self._lock:
            if not self.transitions:
                return "closed (no transitions)"
            parts = [self.transitions[0].old]
            parts += [
                f"{t.new} at {t.at - self.started:.2f} s" for t in self.transitions
            ]
        return " -> ".join(parts)

    def transition_times(self, state: str) -> list[float]:
        """
        Return the monotonic times at which the breaker entered *state*.
        """
        with self._lock:
            return [t.at for t in self.transitions if t.new == state]


class ResourceSampler:
    """
    Track the maximum executor load and live thread count seen in samples.
    """

    def __init__(self) -> None:
        self.samples = 0
        self.baseline_threads = threading.active_count()
        self.max_threads = self.baseline_threads
        self.max_active = 0
        self.max_queued = 0
        self.max_executor_threads = 0

    def sample(self, stats: ExecutorStatistics) -> None:
        """
        Fold one executor snapshot and the current thread count into the
        maxima.
        """
        self.samples += 1
        self.max_threads = max(self.max_threads, threading.active_count())
        self.max_active = max(self.max_active, stats.active)
        self.max_queued = max(self.max_queued, stats.queued)
        self.max_executor_threads = max(self.max_executor_threads, stats.threads)
