"""
Resilient access to HashiCorp Vault and OpenBao through hvac.

`VaultAdapter` runs KV version 2 operations in a bounded thread pool,
behind a circuit breaker and a retry policy, within a deadline. Every
failure reaches the caller as a `VaultAdapterError` subclass (or as
buttress's own `CircuitOpen`, `ExecutorSaturated` or `DeadlineExceeded`),
never as an hvac or requests exception. The token, secret values and full
secret paths never appear in a repr, a log line or an error message.

Example::

    from buttress.vault import VaultAdapter

    async with VaultAdapter({"url": "https://vault:8200", "token": token}) as vault:
        secret = await vault.read_secret("app/db")
"""

from __future__ import annotations

from ._adapter import VaultAdapter
from ._config import RetrySettings, VaultConfig
from ._errors import (
    CasConflict,
    InvalidRequest,
    NotFound,
    Outcome,
    PermissionDenied,
    RateLimited,
    SecretDeleted,
    VaultAdapterError,
    VaultConfigError,
    VaultNotInitialized,
    VaultSealed,
    VaultServerError,
    VaultTimeout,
    VaultUnavailable,
)
from ._kv import KVSecret

__all__ = [
    "CasConflict",
    "InvalidRequest",
    "KVSecret",
    "NotFound",
    "Outcome",
    "PermissionDenied",
    "RateLimited",
    "RetrySettings",
    "SecretDeleted",
    "VaultAdapter",
    "VaultAdapterError",
    "VaultConfig",
    "VaultConfigError",
    "VaultNotInitialized",
    "VaultSealed",
    "VaultServerError",
    "VaultTimeout",
    "VaultUnavailable",
]

# Show public names, not private module paths, in reprs and tracebacks.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("buttress.vault._"):
        _obj.__module__ = __name__
del _name, _obj
