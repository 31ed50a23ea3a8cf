"""
Sliding windows of call outcomes for rate-based circuit breaking.

Both windows keep running totals, so recording a call costs O(1) whatever
the window size. The time window reads in O(buckets) when it drops expired
buckets.
"""

from __future__ import annotations

import attrs

from ._validate import Duration, check_int_range, check_positive, to_seconds

__all__ = ["CountWindow", "TimeWindow"]


def _window_seconds(value: Duration) -> float:
    return to_seconds(value, owner="TimeWindow", field="seconds")


@attrs.frozen
class CountWindow:
    """
    Judge the failure rate over the last *size* recorded calls.

    .. versionadded:: 0.1.0
    """

    size: int = 100

    def __attrs_post_init__(self) -> None:
        check_int_range("CountWindow", "size", self.size, 1, 1_000_000)

    def _accumulator(self) -> _CountAccumulator:
        return _CountAccumulator(self.size)


@attrs.frozen
class TimeWindow:
    """
    Judge the failure rate over the calls of the last *seconds*, kept in
    *buckets* equal slices; a slice expires as a whole.

    .. versionadded:: 0.1.0
    """

    seconds: float = attrs.field(default=60.0, converter=_window_seconds)
    buckets: int = 10

    def __attrs_post_init__(self) -> None:
        check_positive("TimeWindow", "seconds", self.seconds)
        check_int_range("TimeWindow", "buckets", self.buckets, 1, 1_000)

    def _accumulator(self) -> _TimeAccumulator:
        return _TimeAccumulator(self.seconds, self.buckets)


# Marks a time bucket that holds no calls.
_EMPTY = -(2**62)

# Outcome codes stored in a count window.
_SUCCESS = 0
_FAILURE = 1
_SLOW = 2


class _CountAccumulator:
    __slots__ = ("_codes", "_failures", "_filled", "_next", "_slow")

    def __init__(self, size: int) -> None:
        self._codes = bytearray(size)
        self._next = 0
        self._filled = 0
        self._failures = 0
        self._slow = 0

    def record(self, now: float, failure: bool, slow: bool) -> None:
        codes = self._codes
        index = self._next
        if self._filled == len(codes):
            old = codes[index]
            self._failures -= old & _FAILURE
            self._slow -= (old & _SLOW) >> 1
        else:
            self._filled += 1
        code = (_FAILURE if failure else 0) | (_SLOW if slow else 0)
        codes[index] = code
        self._failures += failure
        self._slow += slow
        self._next = (index + 1) % len(codes)

    def totals(self, now: float) -> tuple[int, int, int]:
        """
        Return (calls, failures, slow calls) in the window.
        """
        return self._filled, self._failures, self._slow

    def clear(self) -> None:
        self._next = 0
        self._filled = 0
        self._failures = 0
        self._slow = 0


class _TimeAccumulator:
    __slots__ = (
        "_bucket_calls",
        "_bucket_failures",
        "_bucket_slow",
        "_calls",
        "_epochs",
        "_failures",
        "_slow",
        "_width",
    )

    def __init__(self, seconds: float, buckets: int) -> None:
        self._width = seconds / buckets
        self._epochs = [_EMPTY] * buckets
        self._bucket_calls = [0] * buckets
        self._bucket_failures = [0] * buckets
        self._bucket_slow = [0] * buckets
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def _expire(self, slot: int) -> None:
        self._calls -= self._bucket_calls[slot]
        self._failures -= self._bucket_failures[slot]
        self._slow -= self._bucket_slow[slot]
        self._bucket_calls[slot] = 0
        self._bucket_failures[slot] = 0
        self._bucket_slow[slot] = 0

    def record(self, now: float, failure: bool, slow: bool) -> None:
        epoch = int(now // self._width)
        slot = epoch % len(self._epochs)
        if self._epochs[slot] != epoch:
            self._expire(slot)
            self._epochs[slot] = epoch
        self._bucket_calls[slot] += 1
        self._bucket_failures[slot] += failure
        self._bucket_slow[slot] += slow
        self._calls += 1
        self._failures += failure
        self._slow += slow

    def totals(self, now: float) -> tuple[int, int, int]:
        """
        Return (calls, failures, slow calls) in the last window.
        """
        oldest = int(now // self._width) - len(self._epochs) + 1
        for slot, epoch in enumerate(self._epochs):
            if epoch != _EMPTY and epoch < oldest:
                self._expire(slot)
                self._epochs[slot] = _EMPTY
        return self._calls, self._failures, self._slow

    def clear(self) -> None:
        for slot in range(len(self._epochs)):
            self._expire(slot)
            self._epochs[slot] = _EMPTY
