"""
Tests of the exponential backoff schedule and its jitter.
"""

from __future__ import annotations

import datetime
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress import Backoff, Jitter

positive_seconds = st.floats(
    min_value=0.0, exclude_min=True, allow_nan=False, allow_infinity=False
)
multipliers = st.floats(min_value=1.0, allow_nan=False, allow_infinity=False)
attempt_numbers = st.integers(min_value=1, max_value=10**6) | st.just(10**6)


@st.composite
def backoffs(
    draw: st.DrawFn, jitter: st.SearchStrategy[Jitter] | None = None
) -> Backoff:
    low, high = sorted((draw(positive_seconds), draw(positive_seconds)))
    return Backoff(
        initial=low,
        maximum=high,
        multiplier=draw(multipliers | st.sampled_from([1e300, 1e308])),
        jitter=draw(st.sampled_from(Jitter) if jitter is None else jitter),
        rng=random.Random(draw(st.integers())),
    )


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.5), (3, 4.5), (4, 13.5), (5, 40.5), (6, 100.0), (50, 100.0)],
)
def test_base_delay_table(attempt: int, expected: float) -> None:
    backoff = Backoff(initial=0.5, maximum=100.0, multiplier=3.0)

    assert backoff.base_delay(attempt) == pytest.approx(expected)


@given(
    initial=st.floats(min_value=1e-3, max_value=10.0),
    maximum=st.floats(min_value=10.0, max_value=1e4),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    attempt=st.integers(min_value=1, max_value=60),
)
def test_base_delay_formula(
    initial: float, maximum: float, multiplier: float, attempt: int
) -> None:
    backoff = Backoff(initial=initial, maximum=maximum, multiplier=multiplier)
    expected = min(initial * multiplier ** (attempt - 1), maximum)

    assert backoff.base_delay(attempt) == pytest.approx(expected, rel=1e-9)


def test_jitter_none_is_base_delay() -> None:
    backoff = Backoff(initial=0.1, maximum=5.0, jitter=Jitter.NONE)

    assert [backoff.delay(n) for n in range(1, 8)] == [
        backoff.base_delay(n) for n in range(1, 8)
    ]


@given(backoff=backoffs(), attempt=attempt_numbers)
def test_delay_within_bounds(backoff: Backoff, attempt: int) -> None:
    delay = backoff.delay(attempt, previous=backoff.maximum)

    assert math.isfinite(delay)
    assert delay >= 0.0
    assert delay <= backoff.maximum


@given(backoff=backoffs(), attempt=attempt_numbers)
def test_base_delay_capped(backoff: Backoff, attempt: int) -> None:
    delay = backoff.base_delay(attempt)

    assert math.isfinite(delay)
    assert delay >= backoff.initial
    assert delay <= backoff.maximum


@given(backoff=backoffs(), attempt=st.integers(min_value=1, max_value=10**6))
def test_base_delay_monotone(backoff: Backoff, attempt: int) -> None:
    assert backoff.base_delay(attempt) <= backoff.base_delay(attempt + 1)


@given(backoff=backoffs(st.just(Jitter.FULL)), attempt=attempt_numbers)
def test_full_jitter_bounds(backoff: Backoff, attempt: int) -> None:
    delay = backoff.delay(attempt)

    assert delay >= 0.0
    assert delay <= backoff.base_delay(attempt)


@given(backoff=backoffs(st.just(Jitter.EQUAL)), attempt=attempt_numbers)
def test_equal_jitter_bounds(backoff: Backoff, attempt: int) -> None:
    delay = backoff.delay(attempt)

    assert delay >= backoff.base_delay(attempt) / 2
    assert delay <= backoff.base_delay(attempt)


@given(
    backoff=backoffs(st.just(Jitter.DECORRELATED)),
    share=st.floats(min_value=0.0, max_value=1.0),
    attempt=attempt_numbers,
)
def test_decorrelated_bounds(backoff: Backoff, share: float, attempt: int) -> None:
    previous = backoff.initial + share * (backoff.maximum - backoff.initial)
    delay = backoff.delay(attempt, previous=previous)

    assert delay >= backoff.initial
    assert delay <= min(backoff.maximum, 3 * previous)


def test_decorrelated_first_delay() -> None:
    backoff = Backoff(
        initial=1.0, maximum=100.0, jitter=Jitter.DECORRELATED, rng=random.Random(3)
    )
    delays = [backoff.delay(1) for _ in range(200)]

    assert min(delays) >= 1.0
    assert max(delays) <= 3.0


def test_decorrelated_chain() -> None:
    backoff = Backoff(
        initial=0.5, maximum=20.0, jitter=Jitter.DECORRELATED, rng=random.Random(11)
    )
    previous = None
    for attempt in range(1, 200):
        delay = backoff.delay(attempt, previous)
        upper = min(20.0, 3 * (0.5 if previous is None else previous))
        assert delay >= 0.5
        assert delay <= upper
        previous = delay


@pytest.mark.parametrize("jitter", list(Jitter))
def test_seeded_rng_reproducible(jitter: Jitter) -> None:
    def schedule(seed: int) -> list[float]:
        backoff = Backoff(
            initial=0.1, maximum=30.0, jitter=jitter, rng=random.Random(seed)
        )
        delays: list[float] = []
        previous = None
        for attempt in range(1, 21):
            previous = backoff.delay(attempt, previous)
            delays.append(previous)
        return delays

    assert schedule(42) == schedule(42)
    if jitter is not Jitter.NONE:
        assert schedule(42) != schedule(43)


def test_timedelta_accepted() -> None:
    backoff = Backoff(
        initial=datetime.timedelta(milliseconds=250),
        maximum=datetime.timedelta(minutes=1),
    )

    assert backoff.initial == 0.25
    assert backoff.maximum == 60.0


def test_constant_schedule() -> None:
    backoff = Backoff.constant(datetime.timedelta(seconds=2))

    assert [backoff.delay(n) for n in (1, 2, 10, 10**6)] == [2.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"initial": -1}, ["Backoff", "initial=-1.0", "greater than 0"]),
        ({"initial": 0}, ["initial=0.0", "greater than 0"]),
        ({"initial": math.nan}, ["initial=nan", "finite"]),
        ({"maximum": 0.0}, ["maximum=0.0", "greater than 0"]),
        ({"maximum": math.inf}, ["maximum=inf", "finite"]),
        (
            {"initial": 5.0, "maximum": 1.0},
            ["maximum=1.0", "initial=5.0", "raise maximum or lower initial"],
        ),
        ({"multiplier": 0.5}, ["multiplier=0.5", "at least 1.0"]),
        ({"multiplier": math.inf}, ["multiplier=inf", "finite"]),
        ({"jitter": "fuzzy"}, ["jitter='fuzzy'", "'none', 'full'"]),
    ],
)
def test_invalid_value_message(kwargs: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ValueError, match=r"is invalid|is less than") as excinfo:
        Backoff(**kwargs)

    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"initial": "1"}, ["Backoff", "initial='1'", "timedelta"]),
        ({"maximum": None}, ["Backoff", "maximum=None"]),
        ({"multiplier": "fast"}, ["Backoff", "multiplier='fast'"]),
        ({"jitter": 3}, ["jitter=3", "Jitter.FULL", "'decorrelated'"]),
    ],
)
def test_invalid_type_message(kwargs: dict[str, object], fragments: list[str]) -> None:
    with pytest.raises(TypeError) as excinfo:
        Backoff(**kwargs)  # type: ignore[arg-type]

    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("value", ["full", "FULL", Jitter.FULL])
def test_jitter_accepts_its_value(value: str | Jitter) -> None:
    assert Backoff(jitter=value).jitter is Jitter.FULL


@pytest.mark.parametrize("delay", [0, -1.0, math.inf])
def test_constant_names_delay(delay: float) -> None:
    with pytest.raises(ValueError, match=r"Backoff.constant: delay="):
        Backoff.constant(delay)
