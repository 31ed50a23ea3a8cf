"""
Validation helpers that turn bad configuration into clear errors.
"""

from __future__ import annotations

import datetime
import math
from typing import TypeAlias

Duration: TypeAlias = float | int | datetime.timedelta
"""Seconds as a number, or a `datetime.timedelta`."""


def to_seconds(value: Duration, *, owner: str = "", field: str = "") -> float:
    """
    Convert a duration to float seconds, accepting `datetime.timedelta`.
    """
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        where = f"{owner}: {field}=" if field else ""
        msg = (
            f"{where}{value!r} is invalid, expected a number of seconds or a "
            f"datetime.timedelta, got {type(value).__name__}"
        )
        raise TypeError(msg)
    return float(value)


def check_positive(owner: str, field: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        msg = (
            f"{owner}: {field}={value!r} is invalid, it must be a finite number "
            f"of seconds greater than 0"
        )
        raise ValueError(msg)


def check_non_negative(owner: str, field: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        msg = (
            f"{owner}: {field}={value!r} is invalid, it must be a finite number "
            f"greater than or equal to 0"
        )
        raise ValueError(msg)


def check_int_range(
    owner: str, field: str, value: object, low: int, high: int | None = None
) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{owner}: {field}={value!r} is invalid, it must be an integer"
        raise TypeError(msg)
    if value < low or (high is not None and value > high):
        allowed = f"from {low} to {high}" if high is not None else f"at least {low}"
        msg = f"{owner}: {field}={value!r} is out of range, it must be {allowed}"
        raise ValueError(msg)


def check_optional_instance(
    owner: str, field: str, value: object, types: type | tuple[type, ...], expected: str
) -> None:
    """
    Raise TypeError unless *value* is None or an instance of *types*.
    """
    if value is not None and not isinstance(value, types):
        msg = f"{owner}: {field}={value!r} is invalid, pass {expected}"
        raise TypeError(msg)


def check_optional_callable(
    owner: str, field: str, value: object, expected: str
) -> None:
    """
    Raise TypeError unless *value* is None or callable.
    """
    if value is not None and not callable(value):
        msg = f"{owner}: {field}={value!r} is invalid, pass {expected}"
        raise TypeError(msg)
