"""
Tests that keep the public surface of the ``buttress`` package honest.
"""

from __future__ import annotations

import inspect

import pytest

import buttress


def _isort_key(name: str) -> tuple[int, str]:
    # Constants, then classes, then functions: the order ruff keeps.
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


def test_all_sorted() -> None:
    assert buttress.__all__ == sorted(buttress.__all__, key=_isort_key)


def test_all_unique() -> None:
    assert len(buttress.__all__) == len(set(buttress.__all__))


@pytest.mark.parametrize("name", buttress.__all__)
def test_name_resolves(name: str) -> None:
    assert getattr(buttress, name) is not None


@pytest.mark.parametrize(
    "name",
    [
        name
        for name in buttress.__all__
        # Type aliases such as Listener are generic aliases, which Python
        # 3.10 also reports as classes; they keep their origin's module.
        if getattr(getattr(buttress, name), "__origin__", None) is None
        and (
            inspect.isclass(getattr(buttress, name))
            or inspect.isfunction(getattr(buttress, name))
        )
    ],
)
def test_module_is_public(name: str) -> None:
    assert getattr(buttress, name).__module__ == "buttress"


def test_no_public_name_missing() -> None:
    # Every public class or function the package defines is listed.
    defined = {
        name
        for name, value in vars(buttress).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "") == "buttress"
    }

    assert defined <= set(buttress.__all__)


@pytest.mark.parametrize(
    "name",
    [
        "Backoff",
        "BoundedExecutor",
        "ButtressError",
        "CircuitBreaker",
        "CircuitOpen",
        "CircuitState",
        "DeadlineExceeded",
        "ExecutorSaturated",
        "Guard",
        "Jitter",
        "Rejected",
        "RetryPolicy",
    ],
)
def test_fixed_names_exported(name: str) -> None:
    assert name in buttress.__all__


def test_exception_tree() -> None:
    assert issubclass(buttress.ExecutorSaturated, buttress.Rejected)
    assert issubclass(buttress.CircuitOpen, buttress.Rejected)
    assert issubclass(buttress.Rejected, buttress.ButtressError)
    assert issubclass(buttress.DeadlineExceeded, TimeoutError)
    assert issubclass(buttress.DeadlineExceeded, buttress.ButtressError)


def test_version_is_string() -> None:
    assert isinstance(buttress.__version__, str)
    assert buttress.__version__


def test_testing_exports_fake_clock() -> None:
    import buttress.testing

    assert "FakeClock" in buttress.testing.__all__
    assert isinstance(buttress.testing.FakeClock(), buttress.Clock)
