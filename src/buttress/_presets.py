"""
Tuning profiles and a sizing helper for a guarded blocking client.
"""

from __future__ import annotations

import math

import attrs

from ._backoff import Backoff
from ._breaker import CircuitBreaker
from ._clock import SYSTEM_CLOCK, Clock
from ._executor import BoundedExecutor
from ._guard import Guard
from ._retry import RetryPolicy
from ._validate import check_int_range, check_positive

__all__ = ["PROFILES", "Profile", "Sizing", "size_pool"]


@attrs.frozen
class Profile:
    """
    A complete set of pipeline settings for one kind of workload.

    Attributes:
        name: The profile's name.
        max_workers: Worker threads.
        queue_multiplier: Queue size as a multiple of ``max_workers``.
        timeout: Seconds for a whole operation, retries included.
        failure_threshold: Consecutive failures that open the breaker.
        reset_timeout: Seconds the breaker stays open before a probe.
        attempts: Attempts per operation, the first included.
        initial_backoff: First retry delay, in seconds.
        max_backoff: Largest retry delay, in seconds.
        backoff_multiplier: Growth of the delay per attempt.
    """

    name: str
    max_workers: int
    queue_multiplier: int
    timeout: float
    failure_threshold: int
    reset_timeout: float
    attempts: int
    initial_backoff: float
    max_backoff: float
    backoff_multiplier: float = 2.0

    def guard(self, *, name: str | None = None, clock: Clock = SYSTEM_CLOCK) -> Guard:
        """
        Build a `Guard` with this profile's settings.
        """
        label = name or self.name
        return Guard(
            retry=RetryPolicy(
                attempts=self.attempts,
                backoff=Backoff(
                    initial=self.initial_backoff,
                    maximum=self.max_backoff,
                    multiplier=self.backoff_multiplier,
                ),
                clock=clock,
            ),
            breaker=CircuitBreaker(
                failure_threshold=self.failure_threshold,
                reset_timeout=self.reset_timeout,
                name=label,
                clock=clock,
            ),
            executor=BoundedExecutor(
                self.max_workers,
                queue_multiplier=self.queue_multiplier,
                name=f"{label}-worker",
            ),
            timeout=self.timeout,
            clock=clock,
        )


# NOTE: these values are buttress's own starting points, chosen from the
# defaults' ranges (workers 1-100, queue multiplier 1-10); measure your
# dependency and adjust.
PROFILES: dict[str, Profile] = {
    "default": Profile(
        name="default",
        max_workers=10,
        queue_multiplier=3,
        timeout=30.0,
        failure_threshold=5,
        reset_timeout=30.0,
        attempts=3,
        initial_backoff=0.1,
        max_backoff=10.0,
    ),
    "high_throughput": Profile(
        name="high_throughput",
        max_workers=50,
        queue_multiplier=5,
        timeout=30.0,
        failure_threshold=10,
        reset_timeout=30.0,
        attempts=3,
        initial_backoff=0.1,
        max_backoff=10.0,
    ),
    "low_latency": Profile(
        name="low_latency",
        max_workers=20,
        queue_multiplier=1,
        timeout=5.0,
        failure_threshold=3,
        reset_timeout=10.0,
        attempts=2,
        initial_backoff=0.05,
        max_backoff=1.0,
    ),
    "resource_constrained": Profile(
        name="resource_constrained",
        max_workers=4,
        queue_multiplier=2,
        timeout=30.0,
        failure_threshold=5,
        reset_timeout=60.0,
        attempts=3,
        initial_backoff=0.5,
        max_backoff=10.0,
    ),
}
"""The built-in profiles, by name."""


@attrs.frozen
class Sizing:
    """
    Worker and queue sizes suggested by `size_pool`, with the reasoning.
    """

    max_workers: int
    queue_size: int
    reasons: tuple[str, ...]


_STACK_MB_PER_THREAD = 1.0
# Share of the container's memory that worker thread stacks may take.
_STACK_SHARE = 0.25


def size_pool(
    expected_concurrency: int,
    call_latency: float,
    *,
    memory_mb: float | None = None,
    max_queue_wait: float | None = None,
) -> Sizing:
    """
    Suggest ``max_workers`` and ``queue_size`` for a blocking client.

    The reasoning, step by step:

    1. Workers are the expected concurrent operations times 1.5, rounded
       up, so bursts above the average still find a free thread.
    2. Each thread reserves about 1 MB of stack; with ``memory_mb`` given,
       stacks may take at most a quarter of it, which caps the workers.
    3. The result is clamped to 1 to 100 workers.
    4. The queue holds what the workers drain within ``max_queue_wait``
       (default: 2 call latencies): ``workers * max_queue_wait /
       call_latency``, at least 1 and at most ``workers * 10``. A longer
       queue only makes callers wait for a timeout instead of being
       rejected at once.

    Args:
        expected_concurrency: Operations in flight at a typical peak.
        call_latency: Seconds one call usually takes.
        memory_mb: Memory available to the process, in MB, if limited.
        max_queue_wait: Seconds a caller may usefully wait in the queue.

    .. versionadded:: 0.1.0
    """
    owner = "size_pool"
    check_int_range(owner, "expected_concurrency", expected_concurrency, 1)
    check_positive(owner, "call_latency", call_latency)
    if memory_mb is not None:
        check_positive(owner, "memory_mb", memory_mb)
    if max_queue_wait is not None:
        check_positive(owner, "max_queue_wait", max_queue_wait)
    reasons = []
    workers = math.ceil(expected_concurrency * 1.5)
    reasons.append(
        f"{expected_concurrency} concurrent operations x 1.5 = {workers} workers"
    )
    if memory_mb is not None:
        cap = max(1, int(memory_mb * _STACK_SHARE / _STACK_MB_PER_THREAD))
        if workers > cap:
            reasons.append(
                f"capped at {cap}: about {_STACK_MB_PER_THREAD:.0f} MB of stack per "
                f"thread within a quarter of {memory_mb:.0f} MB"
            )
            workers = cap
    if workers > 100:
        reasons.append("capped at the maximum of 100 workers")
        workers = 100
    wait = 2 * call_latency if max_queue_wait is None else max_queue_wait
    # Rounding first keeps float error from flooring an exact quotient one
    # below: 3 * 0.3 / 0.1 evaluates to 8.999999999999998, not 9.
    drained = math.floor(round(workers * wait / call_latency, 9))
    queue = max(1, min(workers * 10, drained))
    reasons.append(
        f"queue of {queue}: what {workers} workers drain in {wait:.3f} s at "
        f"{call_latency:.3f} s per call, between 1 and 10 x workers"
    )
    return Sizing(max_workers=workers, queue_size=queue, reasons=tuple(reasons))
