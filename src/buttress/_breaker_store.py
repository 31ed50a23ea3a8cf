"""
Where a circuit breaker keeps its state-machine position.

The breaker's position (state, generation, when it opened, until when) is
separate from its local counters, so that several breakers, in one process
or in many, can share one position through a store. Every transition is a
compare-and-set on the generation: of two breakers that both see failures,
one wins the transition and the other adopts the winner's position.
"""

from __future__ import annotations

import enum
import threading
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["BreakerPosition", "BreakerStore", "CircuitState", "MemoryBreakerStore"]


class CircuitState(enum.Enum):
    """
    The state of a `CircuitBreaker`.
    """

    CLOSED = "closed"
    """Calls pass; outcomes are counted."""
    OPEN = "open"
    """Calls are rejected with `CircuitOpen` until the open duration ends."""
    HALF_OPEN = "half_open"
    """A limited number of probe calls test whether the dependency is back."""
    FORCED_OPEN = "forced_open"
    """Set by `CircuitBreaker.force_open`: every call is rejected."""
    FORCED_CLOSED = "forced_closed"
    """Set by `CircuitBreaker.force_closed`: every call passes and is
    counted, but the state never changes on its own."""


@attrs.frozen
class BreakerPosition:
    """
    The shared part of a breaker's state.

    Attributes:
        state: The state.
        generation: Incremented by every transition.
        changed_at: Clock time of the transition into this state.
        open_until: While open, the clock time when the next probe may run.
        consecutive_opens: Opens since the breaker was last healthy and
            closed; it scales a growing open duration.
    """

    state: CircuitState = CircuitState.CLOSED
    generation: int = 0
    changed_at: float | None = None
    open_until: float = 0.0
    consecutive_opens: int = 0


@runtime_checkable
class BreakerStore(Protocol):
    """
    Storage for a breaker's `BreakerPosition`.

    ``load`` is called on every admission that finds the breaker not
    closed, and before every transition, so an implementation backed by a
    network service should serve it from a short-lived local copy.
    """

    def load(self) -> BreakerPosition:
        """
        Return the current position.
        """
        ...

    def compare_and_set(
        self, expected_generation: int, position: BreakerPosition
    ) -> BreakerPosition:
        """
        Store *position* if the stored generation is *expected_generation*.

        Returns:
            The stored position afterwards: *position* if it was stored,
            otherwise the position that won.
        """
        ...


class MemoryBreakerStore:
    """
    A `BreakerStore` in process memory; the default, one per breaker.

    Sharing one instance between breakers makes them open and close
    together.
    """

    def __init__(self) -> None:
        self._position = BreakerPosition()
        self._lock = threading.Lock()

    def load(self) -> BreakerPosition:
        return self._position

    def compare_and_set(
        self, expected_generation: int, position: BreakerPosition
    ) -> BreakerPosition:
        with self._lock:
            if self._position.generation == expected_generation:
                self._position = position
            return self._position
