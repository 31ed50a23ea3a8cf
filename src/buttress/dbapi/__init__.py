"""
Any PEP 249 (DB-API 2.0) driver behind a `buttress.Guard`.

`DBAPIAdapter` gives each worker thread its own connection, runs every
operation as one transaction, and retries what is safe to retry.
`DBAPIClassifier` maps each driver error to a retry and breaker verdict.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from ._adapter import DBAPIAdapter, SyncDBAPIAdapter
from ._classify import DEFAULT_CODES, DBAPIClassifier, ErrorCode, Rule
from ._types import Connection, Cursor, ExecuteResult, Params

__all__ = [
    "DEFAULT_CODES",
    "Connection",
    "Cursor",
    "DBAPIAdapter",
    "DBAPIClassifier",
    "ErrorCode",
    "ExecuteResult",
    "Params",
    "Rule",
    "SyncDBAPIAdapter",
]

# Show public names, not private module paths, in reprs and tracebacks.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("buttress.dbapi._"):
        try:
            _obj.__module__ = "buttress.dbapi"
        except (AttributeError, TypeError):
            pass
del _name, _obj
