"""
Exceptions raised by `buttress.vault`.

They are independent of hvac and requests: the adapter translates every
hvac, requests and urllib3 exception inside the worker thread, so only
these types (and buttress's own `CircuitOpen`, `ExecutorSaturated` and
`DeadlineExceeded`) reach the caller. Messages name the operation, the
mount and at most the first segment of the secret path. They never contain
the token or secret values.

The tree::

    VaultAdapterError (buttress.ButtressError)
    ├── VaultUnavailable       the server could not be reached, or a proxy
    │                          in front of it failed
    ├── VaultTimeout           no response in time (also a TimeoutError)
    ├── VaultSealed            HTTP 503, the server is sealed
    ├── VaultNotInitialized    HTTP 501
    ├── VaultServerError       HTTP 500, or 502 with a Vault JSON body
    │   └── UpstreamError      HTTP 502 with a Vault JSON body: a backend
    │                          that a secrets engine calls failed
    ├── RateLimited            HTTP 429, a rate-limit quota
    ├── QuotaExceeded          HTTP 429, a lease-count quota
    ├── PermissionDenied       HTTP 403
    │   └── AuthenticationFailed   HTTP 401, which Vault never sends: a
    │                              proxy in front of it wants credentials
    ├── NotFound               HTTP 404
    │   ├── MountNotFound      no secrets engine is mounted at the path
    │   └── SecretDeleted      the version exists but is deleted or destroyed
    │       └── VersionDestroyed   the version is destroyed for good
    ├── InvalidRequest         HTTP 400, 405, 413, 415 and other 4xx
    │   ├── CasConflict        the check-and-set version did not match
    │   ├── LeaseNotRenewable  the lease or token cannot be renewed
    │   └── LeaseExpired       the lease expired, was revoked or is unknown
    └── VaultConfigError       TLS verification failed, or the URL is unusable
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias, TypedDict

from typing_extensions import Unpack

from .._errors import ButtressError

__all__ = [
    "CasConflict",
    "InvalidRequest",
    "LeaseExpired",
    "LeaseNotRenewable",
    "MountNotFound",
    "NotFound",
    "Outcome",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "SecretDeleted",
    "UpstreamError",
    "VaultAdapterError",
    "VaultConfigError",
    "VaultNotInitialized",
    "VaultSealed",
    "VaultServerError",
    "VaultTimeout",
    "VaultUnavailable",
    "VersionDestroyed",
]

Outcome: TypeAlias = Literal["not_executed", "failed", "unknown"]
"""
What the server did with the request: ``"not_executed"`` (it never ran, so
a retry is safe for any operation), ``"failed"`` (it ran and was rejected)
or ``"unknown"`` (it may have taken effect, such as a timeout after the
request was sent).
"""


class _Details(TypedDict, total=False):
    # The keyword arguments of `VaultAdapterError`, for subclasses that add
    # their own.
    operation: str | None
    mount: str | None
    path: str | None
    status: int | None
    errors: Sequence[str]
    outcome: Outcome
    retryable: bool
    warnings: Sequence[str]
    request_id: str | None
    hostname: str | None
    raft_node_id: str | None
    from_intermediary: bool
    attempts: int


class VaultAdapterError(ButtressError):
    """
    Root of every error that `buttress.vault` raises for a Vault request.

    Attributes:
        operation: The adapter operation, such as ``"read_secret"``.
        mount: The secrets engine mount, such as ``"secret"``.
        path: The secret path redacted to its first segment, such as
            ``"app/…"``; the full path is never stored in an error.
        status: The HTTP status, or None when no response arrived.
        errors: Vault's ``errors`` list from the response body.
        outcome: ``"not_executed"``, ``"failed"`` or ``"unknown"``.
        retryable: Whether the adapter retries this error for this
            operation. An error with an unknown outcome is retried only
            for operations that are safe to replay.
        warnings: Vault's ``warnings`` list from the response body.
        request_id: Vault's ``request_id`` from the response body, which
            names the request in the server's audit log, or None.
        hostname: The ``X-Vault-Hostname`` response header, the node
            that handled the request, or None.
        raft_node_id: The ``X-Vault-Raft-Node-ID`` response header, or
            None.
        from_intermediary: True when the response body was not a Vault
            JSON object, as when a proxy or load balancer responded in
            place of the server.
        attempts: The number of attempts the operation made, including
            the one that raised this error.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        mount: str | None = None,
        path: str | None = None,
        status: int | None = None,
        errors: Sequence[str] = (),
        outcome: Outcome = "failed",
        retryable: bool = False,
        warnings: Sequence[str] = (),
        request_id: str | None = None,
        hostname: str | None = None,
        raft_node_id: str | None = None,
        from_intermediary: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.mount = mount
        self.path = path
        self.status = status
        self.errors = tuple(errors)
        self.outcome: Outcome = outcome
        self.retryable = retryable
        self.warnings = tuple(warnings)
        self.request_id = request_id
        self.hostname = hostname
        self.raft_node_id = raft_node_id
        self.from_intermediary = from_intermediary
        self.attempts = attempts


class VaultUnavailable(VaultAdapterError):
    """
    The server could not be reached, or a proxy or load balancer in front
    of it responded instead.

    The outcome is ``"not_executed"`` when the connection failed (refused,
    DNS failure, connect timeout) and ``"unknown"`` when the connection
    broke after the request was sent or a proxy responded with 502 or 504.
    """


class VaultTimeout(VaultAdapterError, TimeoutError):
    """
    The server did not respond within the socket timeout after the request
    was sent, so the outcome is ``"unknown"``.

    The outcome is ``"not_executed"`` when the caller's deadline left too
    little time to send the request at all.
    """


class VaultSealed(VaultAdapterError):
    """
    The server is sealed (HTTP 503) and processed nothing.
    """


class VaultNotInitialized(VaultAdapterError):
    """
    The server is not initialized (HTTP 501) and needs ``bao operator init``.
    """


class ConsistencyLag(VaultAdapterError):
    """
    The server returned HTTP 412 because it has not yet caught up with
    state that the request depends on, such as a write just made through
    another node. It processed nothing, so a retry is safe.
    """


class VaultServerError(VaultAdapterError):
    """
    The server failed internally (HTTP 500) or a backend it depends on
    failed (HTTP 502 with a Vault JSON body); the outcome is ``"unknown"``.
    """


class UpstreamError(VaultServerError):
    """
    A backend that a secrets engine depends on failed, such as the
    database behind the database engine (HTTP 502 with a Vault JSON body).
    The outcome is ``"unknown"``.
    """


class RateLimited(VaultAdapterError):
    """
    A rate-limit quota rejected the request (HTTP 429) before it ran.

    Attributes:
        retry_after: Seconds the server asked the client to wait, from the
            ``Retry-After`` header, or None when the header was absent.
            OpenBao sends it only when ``sys/quotas/config`` enables
            ``enable_rate_limit_response_headers``.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        **details: Unpack[_Details],
    ) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class QuotaExceeded(VaultAdapterError):
    """
    A lease-count quota rejected the request (HTTP 429) before it ran.

    It is not retried, because the quota frees up only when existing
    leases expire or are revoked, which takes longer than a retry waits.
    """


class PermissionDenied(VaultAdapterError):
    """
    The token is invalid, expired, or lacks a policy for this path
    (HTTP 403). Vault returns 403 for a missing or expired token too.
    """


class AuthenticationFailed(PermissionDenied):
    """
    Something in front of Vault, such as an authenticating proxy, rejected
    the request's credentials with HTTP 401. Vault itself never sends 401,
    so the response is no evidence about the server's health.
    """


class NotFound(VaultAdapterError):
    """
    Nothing exists at the path, or the mount does not exist (HTTP 404).
    """


class MountNotFound(NotFound):
    """
    No secrets engine is mounted at the path (HTTP 404 ``no handler for
    route``). Check ``mount_point``.
    """


class SecretDeleted(NotFound):
    """
    The requested version of a KV version 2 secret is deleted or destroyed
    (HTTP 404 with the version's metadata).

    Attributes:
        version: The deleted or destroyed version.
        deletion_time: When it was deleted, as RFC 3339 text, or None.
        destroyed: Whether the version was destroyed for good.
    """

    def __init__(
        self,
        message: str,
        *,
        version: int | None = None,
        deletion_time: str | None = None,
        destroyed: bool = False,
        **details: Unpack[_Details],
    ) -> None:
        super().__init__(message, **details)
        self.version = version
        self.deletion_time = deletion_time
        self.destroyed = destroyed


class VersionDestroyed(SecretDeleted):
    """
    The requested version of a KV version 2 secret is destroyed: its data
    is gone for good and cannot be undeleted (HTTP 404).
    """


class InvalidRequest(VaultAdapterError):
    """
    The server rejected the request as invalid (HTTP 400, 405, 413, 415 or
    another 4xx status), or the request could not be encoded.
    """


class CasConflict(InvalidRequest):
    """
    A check-and-set write was rejected because the secret's current version
    is not the ``cas`` version given (HTTP 400).

    Read the secret again and retry the write with its current version.
    """


class LeaseNotRenewable(InvalidRequest):
    """
    The lease or token cannot be renewed (HTTP 400): it was issued as not
    renewable, or it is a batch token.

    Request a new secret, or log in again, before the current one expires.
    """


class LeaseExpired(InvalidRequest):
    """
    The lease does not exist any more (HTTP 400): it expired, it was
    revoked, the token that created it expired, or the lease ID is wrong.
    """


class VaultConfigError(VaultAdapterError):
    """
    The request cannot work with this configuration: TLS verification
    failed, the URL is unusable, or redirects loop. Retrying does not help.
    """
