"""
Tests of RetryBudget: the allowance formula, the sliding window on a fake
clock, the exhausted counter, validation and concurrent withdrawals.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest

from buttress import RetryBudget
from buttress.testing import FakeClock


def make_budget(clock: FakeClock | None = None, **kwargs: Any) -> RetryBudget:
    return RetryBudget(clock=clock or FakeClock(), **kwargs)


def withdraw_all(budget: RetryBudget, tries: int) -> int:
    """
    Call `try_withdraw` *tries* times and return how many were granted.
    """
    return sum(budget.try_withdraw() for _ in range(tries))


# -- the allowance ------------------------------------------------------------------


def test_allowance_reserve_only() -> None:
    budget = make_budget(ratio=0.5, min_per_second=2.0, window=10.0)

    stats = budget.statistics()

    assert stats.allowance == 20.0
    assert stats.requests == 0
    assert stats.retries == 0


def test_allowance_formula() -> None:
    budget = make_budget(ratio=0.5, min_per_second=1.0, window=10.0)
    for _ in range(4):
        budget.record_request()
    assert withdraw_all(budget, 3) == 3

    stats = budget.statistics()

    # 1 per second x 10 s + 0.5 x 4 requests - 3 retries
    assert stats.allowance == 9.0
    assert stats.requests == 4
    assert stats.retries == 3


def test_ratio_grants_retries() -> None:
    budget = make_budget(ratio=0.25, min_per_second=0.0)
    for _ in range(8):
        budget.record_request()

    assert withdraw_all(budget, 5) == 2
    assert budget.statistics().allowance == 0.0


def test_fraction_below_one_refused() -> None:
    # An allowance of 1.5 grants one retry; the remaining half is not enough.
    budget = make_budget(ratio=0.0, min_per_second=0.15, window=10.0)

    assert budget.try_withdraw()
    assert not budget.try_withdraw()
    assert budget.statistics().allowance == pytest.approx(0.5)


def test_exhausted_counts_refusals() -> None:
    budget = make_budget(ratio=0.0, min_per_second=0.2, window=10.0)

    granted = [budget.try_withdraw() for _ in range(5)]

    assert granted == [True, True, False, False, False]
    stats = budget.statistics()
    assert stats.exhausted == 3
    assert stats.retries == 2
    assert stats.allowance == 0.0


def test_zero_budget_refuses_all() -> None:
    budget = make_budget(ratio=0.0, min_per_second=0.0)
    budget.record_request()

    assert not budget.try_withdraw()
    assert budget.statistics().exhausted == 1


# -- the window -----------------------------------------------------------------------


def test_window_forgets_retries() -> None:
    clock = FakeClock(start=1_000.0)
    budget = make_budget(clock, ratio=0.0, min_per_second=0.2, window=10.0)
    assert withdraw_all(budget, 3) == 2

    clock.advance(9.99)

    assert not budget.try_withdraw()

    clock.advance(0.01)

    assert budget.statistics().retries == 0
    assert budget.try_withdraw()


def test_window_forgets_requests() -> None:
    clock = FakeClock(start=1_000.0)
    budget = make_budget(clock, ratio=1.0, min_per_second=0.0, window=10.0)
    for _ in range(3):
        budget.record_request()
    clock.advance(5.0)
    budget.record_request()

    assert budget.statistics().requests == 4

    clock.advance(5.0)

    # The first three requests fell into a bucket that has now expired.
    stats = budget.statistics()
    assert stats.requests == 1
    assert stats.allowance == 1.0


def test_window_expires_bucket_by_bucket() -> None:
    clock = FakeClock(start=0.0)
    budget = make_budget(clock, ratio=1.0, min_per_second=0.0, window=10.0)
    for _ in range(10):
        budget.record_request()
        clock.advance(1.0)

    assert budget.statistics().requests == 9

    clock.advance(4.0)

    assert budget.statistics().requests == 5


def test_window_bucket_reused_after_wrap() -> None:
    # After a full window, a bucket slot holds a new slice of time; its old
    # counts must not leak into the new slice.
    clock = FakeClock(start=0.0)
    budget = make_budget(clock, ratio=1.0, min_per_second=0.0, window=10.0)
    for _ in range(5):
        budget.record_request()

    clock.advance(20.0)
    budget.record_request()

    assert budget.statistics().requests == 1


def test_window_accepts_timedelta() -> None:
    budget = make_budget(window=datetime.timedelta(seconds=30), min_per_second=1.0)

    assert budget.window == 30.0
    assert budget.statistics().allowance == 30.0


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"ratio": -0.1}, ValueError, "ratio=-0.1"),
        ({"ratio": float("inf")}, ValueError, "ratio=inf"),
        ({"min_per_second": -1.0}, ValueError, "min_per_second=-1.0"),
        ({"min_per_second": float("nan")}, ValueError, "min_per_second=nan"),
        ({"window": 0}, ValueError, "window=0.0"),
        ({"window": "10s"}, TypeError, "window='10s'"),
    ],
)
def test_invalid_config_message(
    kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as excinfo:
        RetryBudget(**kwargs)

    assert "RetryBudget" in str(excinfo.value)
    assert fragment in str(excinfo.value)


# -- threads --------------------------------------------------------------------------


def test_concurrent_withdraw_never_overdraws() -> None:
    budget = make_budget(ratio=0.0, min_per_second=10.0, window=10.0)
    threads, tries = 8, 200
    granted = [0] * threads
    barrier = threading.Barrier(threads, timeout=10)

    def worker(index: int) -> None:
        barrier.wait()
        granted[index] = withdraw_all(budget, tries)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)

    stats = budget.statistics()
    assert not any(thread.is_alive() for thread in pool)
    assert sum(granted) == 100
    assert stats.retries == 100
    assert stats.exhausted == threads * tries - 100


def test_concurrent_requests_all_counted() -> None:
    budget = make_budget(ratio=0.1, min_per_second=0.0)
    threads, requests = 8, 500

    def worker() -> None:
        for _ in range(requests):
            budget.record_request()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)

    assert budget.statistics().requests == threads * requests
    assert budget.statistics().allowance == pytest.approx(400.0)
