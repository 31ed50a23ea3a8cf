"""
Exponential backoff schedules with jitter.
"""

from __future__ import annotations

import enum
import math
import random

import attrs

from ._validate import Duration, check_positive, to_seconds

__all__ = ["Backoff", "Jitter"]


class Jitter(enum.Enum):
    """
    How a delay *d* from the exponential schedule is randomised.

    Every kind returns a value in ``[0, maximum]``.
    """

    NONE = "none"
    """Exactly *d*."""
    FULL = "full"
    """Uniform in ``[0, d]``."""
    EQUAL = "equal"
    """``d / 2`` plus uniform in ``[0, d / 2]``."""
    DECORRELATED = "decorrelated"
    """Uniform in ``[initial, min(maximum, 3 * previous)]``, where *previous*
    is the delay slept before this one (``initial`` for the first)."""


def _initial_seconds(value: Duration) -> float:
    return to_seconds(value, owner="Backoff", field="initial")


def _maximum_seconds(value: Duration) -> float:
    return to_seconds(value, owner="Backoff", field="maximum")


# While (attempt - 1) * log(multiplier) is below this, the exact power
# multiplier ** (attempt - 1) is below exp(700), about 1e304, so it cannot
# overflow.
_MAX_EXACT_GROWTH = 700.0


def _multiplier_value(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = (
            f"Backoff: multiplier={value!r} is invalid, it must be a number of "
            f"at least 1.0, got {type(value).__name__}"
        )
        raise TypeError(msg)
    return float(value)


def _jitter_value(jitter: Jitter | str) -> Jitter:
    # Typed callers pass a Jitter or a str; untyped ones may pass anything.
    value: object = jitter
    if isinstance(value, Jitter):
        return value
    choices = ", ".join(repr(kind.value) for kind in Jitter)
    if isinstance(value, str):
        try:
            return Jitter(value.lower())
        except ValueError:
            pass
        msg = (
            f"Backoff: jitter={value!r} is invalid. Pass a Jitter member or one "
            f"of {choices}."
        )
        raise ValueError(msg)
    msg = (
        f"Backoff: jitter={value!r} is invalid. Pass a Jitter member such as "
        f"Jitter.FULL, or one of {choices} (got {type(value).__name__})."
    )
    raise TypeError(msg)


def _check_multiplier(
    instance: Backoff, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (math.isfinite(value) and value >= 1.0):
        msg = (
            f"Backoff: multiplier={value!r} is invalid, it must be a finite "
            f"number of at least 1.0 (1.0 gives a constant delay)"
        )
        raise ValueError(msg)


@attrs.frozen
class Backoff:
    """
    An exponential delay schedule: ``min(initial * multiplier ** (n - 1),
    maximum)`` before attempt *n* + 1, then jittered.

    Args:
        initial: Delay after the first failure, in seconds or a timedelta.
        maximum: Upper bound on any delay.
        multiplier: Growth factor per attempt, at least 1.0.
        jitter: How each delay is randomised: a `Jitter` member or its
            value, such as ``"full"``.
        rng: Random source; pass ``random.Random(seed)`` for reproducible
            schedules in tests.

    .. versionadded:: 0.1.0
    """

    initial: float = attrs.field(default=0.1, converter=_initial_seconds)
    maximum: float = attrs.field(default=10.0, converter=_maximum_seconds)
    multiplier: float = attrs.field(
        default=2.0, converter=_multiplier_value, validator=_check_multiplier
    )
    jitter: Jitter = attrs.field(default=Jitter.FULL, converter=_jitter_value)
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        check_positive("Backoff", "initial", self.initial)
        check_positive("Backoff", "maximum", self.maximum)
        if self.maximum < self.initial:
            msg = (
                f"Backoff: maximum={self.maximum!r} is less than "
                f"initial={self.initial!r}; raise maximum or lower initial"
            )
            raise ValueError(msg)

    def base_delay(self, attempt: int) -> float:
        """
        Return the delay after failed attempt *attempt* before jitter.

        Safe for any attempt number: the result is capped at ``maximum``
        without ever computing an overflowing power.
        """
        if attempt <= 1 or self.multiplier == 1.0:
            return self.initial
        # Compare exponents in log space so that huge attempt numbers reach
        # the cap instead of raising OverflowError. The logs are taken
        # separately because maximum / initial itself can overflow.
        headroom = math.log(self.maximum) - math.log(self.initial)
        growth = (attempt - 1) * math.log(self.multiplier)
        if growth >= headroom:
            return self.maximum
        if growth < _MAX_EXACT_GROWTH:
            return min(self.initial * self.multiplier ** (attempt - 1), self.maximum)
        # The power alone would overflow although the product stays below
        # maximum, which happens only for a tiny initial delay.
        return min(math.exp(math.log(self.initial) + growth), self.maximum)

    def delay(self, attempt: int, previous: float | None = None) -> float:
        """
        Return the jittered delay to sleep after failed attempt *attempt*.

        Args:
            attempt: The attempt that just failed, counting from 1.
            previous: The delay slept before this one, used by
                `Jitter.DECORRELATED`; ``None`` means ``initial``.
        """
        jitter = self.jitter
        if jitter is Jitter.DECORRELATED:
            last = self.initial if previous is None else max(previous, self.initial)
            upper = min(self.maximum, 3.0 * last)
            return self.rng.uniform(self.initial, upper)
        base = self.base_delay(attempt)
        if jitter is Jitter.NONE:
            return base
        if jitter is Jitter.FULL:
            return self.rng.uniform(0.0, base)
        half = base / 2.0
        return half + self.rng.uniform(0.0, half)

    @classmethod
    def constant(cls, delay: Duration) -> Backoff:
        """
        Return a schedule that always waits *delay* seconds, without jitter.
        """
        seconds = to_seconds(delay, owner="Backoff.constant", field="delay")
        check_positive("Backoff.constant", "delay", seconds)
        return cls(initial=seconds, maximum=seconds, multiplier=1.0, jitter=Jitter.NONE)
