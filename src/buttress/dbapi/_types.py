"""
The parts of PEP 249 that the adapter uses, as structural types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar

import attrs

__all__ = ["Connection", "Cursor", "ExecuteResult", "Params"]

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]
"""Query parameters: a sequence for positional markers, a mapping for named."""


class Cursor(Protocol):
    """
    A PEP 249 cursor, reduced to what the adapter calls.
    """

    @property
    def rowcount(self) -> int: ...

    def execute(self, operation: str, parameters: Any = ..., /) -> object: ...

    def executemany(
        self, operation: str, seq_of_parameters: Iterable[Any], /
    ) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...

    def close(self) -> object: ...


class Connection(Protocol):
    """
    A PEP 249 connection, reduced to what the adapter calls.
    """

    def cursor(self) -> Cursor: ...

    def commit(self) -> object: ...

    def rollback(self) -> object: ...

    def close(self) -> object: ...


ConnectionT = TypeVar("ConnectionT", bound=Connection)


@attrs.frozen
class ExecuteResult:
    """
    The result of a write statement.

    Attributes:
        rowcount: Rows the statement changed, as the driver's cursor
            reports it. PEP 249 drivers report -1 when the count is unknown.
        lastrowid: The row id of the last inserted row, or None when the
            driver's cursor has no ``lastrowid`` or the statement inserted
            nothing.

    .. versionadded:: 0.1.0
    """

    rowcount: int
    lastrowid: int | None
