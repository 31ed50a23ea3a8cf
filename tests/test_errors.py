"""
Tests of the exception types that buttress raises itself.
"""

from __future__ import annotations

import pickle

import pytest

from buttress import (
    ButtressError,
    CircuitOpen,
    DeadlineExceeded,
    ExecutorClosed,
    ExecutorSaturated,
    Rejected,
)


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (Rejected, (ButtressError,)),
        (ExecutorSaturated, (Rejected, ButtressError)),
        (ExecutorClosed, (Rejected, ButtressError)),
        (CircuitOpen, (Rejected, ButtressError)),
        (DeadlineExceeded, (ButtressError, TimeoutError, OSError)),
    ],
)
def test_exception_tree(
    error: type[Exception], bases: tuple[type[Exception], ...]
) -> None:
    for base in bases:
        assert issubclass(error, base)
    assert issubclass(error, Exception)


def test_closed_is_not_saturated() -> None:
    # "Saturated" invites a retry later; a closed executor never recovers.
    assert not issubclass(ExecutorClosed, ExecutorSaturated)


def test_deadline_is_not_rejection() -> None:
    assert not issubclass(DeadlineExceeded, Rejected)
    assert not issubclass(CircuitOpen, TimeoutError)


def test_deadline_caught_as_timeout() -> None:
    with pytest.raises(TimeoutError, match="ran out"):
        raise DeadlineExceeded("time ran out")


def test_circuit_open_attributes() -> None:
    error = CircuitOpen("circuit 'db' is open", name="db", retry_after=2.5)

    assert error.name == "db"
    assert error.retry_after == 2.5
    assert str(error) == "circuit 'db' is open"


def test_saturated_attributes() -> None:
    error = ExecutorSaturated(
        "executor 'io' is saturated", reason="queue_full", max_workers=4, queue_size=12
    )

    assert error.reason == "queue_full"
    assert error.max_workers == 4
    assert error.queue_size == 12
    assert str(error) == "executor 'io' is saturated"


def test_closed_attributes() -> None:
    error = ExecutorClosed(
        "executor 'io' is shut down", reason="closed", max_workers=1, queue_size=0
    )

    assert error.reason == "closed"
    assert error.max_workers == 1
    assert error.queue_size == 0


@pytest.mark.parametrize(
    "error",
    [
        ExecutorSaturated(reason="queue_full", max_workers=2, queue_size=4),
        ExecutorSaturated("full", reason="no_free_worker", max_workers=2, queue_size=0),
        ExecutorClosed("closed", max_workers=1, queue_size=0),
        CircuitOpen(name="db", retry_after=1.5),
        DeadlineExceeded("late"),
    ],
    ids=repr,
)
def test_errors_survive_pickling(error: ButtressError) -> None:
    # Errors cross process boundaries, as in multiprocessing pools.
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
