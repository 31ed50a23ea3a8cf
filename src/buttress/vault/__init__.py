"""
Resilient access to HashiCorp Vault and OpenBao through hvac.

`VaultAdapter` runs secrets operations (KV versions 1 and 2, transit,
database credentials, PKI, tokens and leases) in a bounded thread pool,
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
from ._classify import Replay, replay_class
from ._config import RetrySettings, VaultConfig
from ._database import DatabaseCredentials, StaticCredentials
from ._errors import (
    AuthenticationFailed,
    CasConflict,
    ConsistencyLag,
    InvalidRequest,
    LeaseExpired,
    LeaseNotRenewable,
    MountNotFound,
    NotFound,
    Outcome,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    SecretDeleted,
    UpstreamError,
    VaultAdapterError,
    VaultConfigError,
    VaultNotInitialized,
    VaultSealed,
    VaultServerError,
    VaultTimeout,
    VaultUnavailable,
    VersionDestroyed,
)
from ._generic import GenericResponse
from ._kv import KVMetadata, KVSecret, KVSubkeys, KVVersion
from ._kv1 import KV1Secret
from ._operations import (
    DatabaseOperations,
    Duration,
    KVv1Operations,
    KVv2Operations,
    LeaseOperations,
    PKIOperations,
    TokenOperations,
    TransitOperations,
)
from ._pki import CertificateRevocation, IssuedCertificate
from ._sync import (
    SyncDatabaseOperations,
    SyncKVv1Operations,
    SyncKVv2Operations,
    SyncLeaseOperations,
    SyncPKIOperations,
    SyncTokenOperations,
    SyncTransitOperations,
    SyncVaultAdapter,
)
from ._token import LeaseInfo, LeaseRenewal, TokenInfo, TokenRenewal
from ._transit import TransitBatchItem, TransitCiphertext

__all__ = [
    "AuthenticationFailed",
    "CasConflict",
    "CertificateRevocation",
    "ConsistencyLag",
    "DatabaseCredentials",
    "DatabaseOperations",
    "Duration",
    "GenericResponse",
    "InvalidRequest",
    "IssuedCertificate",
    "KV1Secret",
    "KVMetadata",
    "KVSecret",
    "KVSubkeys",
    "KVVersion",
    "KVv1Operations",
    "KVv2Operations",
    "LeaseExpired",
    "LeaseInfo",
    "LeaseNotRenewable",
    "LeaseOperations",
    "LeaseRenewal",
    "MountNotFound",
    "NotFound",
    "Outcome",
    "PKIOperations",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "Replay",
    "RetrySettings",
    "SecretDeleted",
    "StaticCredentials",
    "SyncDatabaseOperations",
    "SyncKVv1Operations",
    "SyncKVv2Operations",
    "SyncLeaseOperations",
    "SyncPKIOperations",
    "SyncTokenOperations",
    "SyncTransitOperations",
    "SyncVaultAdapter",
    "TokenInfo",
    "TokenOperations",
    "TokenRenewal",
    "TransitBatchItem",
    "TransitCiphertext",
    "TransitOperations",
    "UpstreamError",
    "VaultAdapter",
    "VaultAdapterError",
    "VaultConfig",
    "VaultConfigError",
    "VaultNotInitialized",
    "VaultSealed",
    "VaultServerError",
    "VaultTimeout",
    "VaultUnavailable",
    "VersionDestroyed",
    "replay_class",
]

# Show public names, not private module paths, in reprs and tracebacks.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("buttress.vault._"):
        _obj.__module__ = __name__
del _name, _obj
