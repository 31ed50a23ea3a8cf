"""
A retry budget: retries allowed as a share of recent requests.

Retries amplify load exactly when a dependency is struggling. A budget
shared by every caller of a dependency caps the amplification: over a
sliding window, retries may reach ``ratio`` times the requests plus a small
reserve of ``min_per_second`` per second, the scheme gRPC and Finagle use.
"""

from __future__ import annotations

import threading

import attrs

from ._clock import SYSTEM_CLOCK, Clock
from ._validate import Duration, check_non_negative, check_positive, to_seconds

__all__ = ["BudgetStatistics", "RetryBudget"]

_BUCKETS = 10


@attrs.frozen
class BudgetStatistics:
    """
    A snapshot of a `RetryBudget`.

    Attributes:
        requests: Calls recorded in the window.
        retries: Retries granted in the window.
        allowance: Retries that may still be granted now.
        exhausted: Retries refused since the budget was created.
    """

    requests: int
    retries: int
    allowance: float
    exhausted: int


class RetryBudget:
    """
    Limit retries to a share of recent requests, across calls and threads.

    Args:
        ratio: Retries allowed per request in the window (0.2 means 20 %).
        min_per_second: Retries allowed per second whatever the traffic, so
            a quiet client can still retry.
        window: Seconds (or a timedelta) of history kept.
        clock: Time source for the window.

    Share one budget between every policy that calls one dependency.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        window: Duration = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        owner = "RetryBudget"
        check_non_negative(owner, "ratio", ratio)
        check_non_negative(owner, "min_per_second", min_per_second)
        seconds = to_seconds(window, owner=owner, field="window")
        check_positive(owner, "window", seconds)
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.window = seconds
        self._clock = clock
        self._width = seconds / _BUCKETS
        self._lock = threading.Lock()
        self._epochs: list[int | None] = [None] * _BUCKETS
        self._requests = [0] * _BUCKETS
        self._retries = [0] * _BUCKETS
        self._exhausted = 0

    def __repr__(self) -> str:
        return (
            f"<RetryBudget ratio={self.ratio} min_per_second={self.min_per_second} "
            f"window={self.window}>"
        )

    def _slot(self, now: float) -> int:
        # Caller holds the lock. Returns the current bucket, emptied if it
        # last held an older slice of time.
        epoch = int(now // self._width)
        slot = epoch % _BUCKETS
        if self._epochs[slot] != epoch:
            self._epochs[slot] = epoch
            self._requests[slot] = 0
            self._retries[slot] = 0
        return slot

    def _totals(self, now: float) -> tuple[int, int]:
        # Caller holds the lock.
        oldest = int(now // self._width) - _BUCKETS + 1
        requests = retries = 0
        for slot, epoch in enumerate(self._epochs):
            if epoch is not None and epoch >= oldest:
                requests += self._requests[slot]
                retries += self._retries[slot]
        return requests, retries

    def _allowance(self, requests: int, retries: int) -> float:
        return self.min_per_second * self.window + self.ratio * requests - retries

    def record_request(self) -> None:
        """
        Count one call (not one attempt) toward the budget.
        """
        now = self._clock.monotonic()
        with self._lock:
            self._requests[self._slot(now)] += 1

    def try_withdraw(self) -> bool:
        """
        Take one retry from the budget; return False if none is left.
        """
        now = self._clock.monotonic()
        with self._lock:
            requests, retries = self._totals(now)
            if self._allowance(requests, retries) < 1.0:
                self._exhausted += 1
                return False
            self._retries[self._slot(now)] += 1
            return True

    def statistics(self) -> BudgetStatistics:
        """
        Return the budget's counts over the current window.
        """
        now = self._clock.monotonic()
        with self._lock:
            requests, retries = self._totals(now)
            return BudgetStatistics(
                requests=requests,
                retries=retries,
                allowance=max(0.0, self._allowance(requests, retries)),
                exhausted=self._exhausted,
            )
