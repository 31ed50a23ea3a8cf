"""
A container that keeps a secret value out of reprs, logs and messages.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Secret"]

T = TypeVar("T")


class Secret(Generic[T]):
    """
    Hold a secret value so that `repr` and `str` never reveal it.

    Read the value with `get_secret_value`. Two secrets compare equal when
    their values do, and the hash is not defined, so a secret cannot leak
    through a dict key's repr.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def get_secret_value(self) -> T:
        """
        Return the wrapped value.
        """
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return bool(self._value == other._value)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return bool(self._value)
