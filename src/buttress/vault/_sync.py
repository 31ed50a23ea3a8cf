"""
`SyncVaultAdapter`: the operations of `VaultAdapter` for threaded programs.

Each blocking method describes its operation exactly as the async method
does and runs it through the same Guard with `buttress.Guard.call`, so the
retry policy sleeps in the calling thread and the request runs in the
shared thread pool. A standalone `SyncVaultAdapter` owns a private
`VaultAdapter`. ``VaultAdapter.sync`` returns one that borrows the async
adapter's Guard, thread pool and breaker.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

import anyio
from typing_extensions import Self

from .._breaker import CircuitBreaker
from .._clock import Clock
from .._events import Listener
from .._executor import BoundedExecutor
from .._guard import Guard, GuardStatistics
from . import _database, _generic, _kv, _kv1, _pki, _token, _transit
from ._adapter import VaultAdapter
from ._classify import Replay
from ._config import VaultConfig
from ._database import DatabaseCredentials, StaticCredentials
from ._generic import GenericResponse
from ._kv import KVMetadata, KVSecret, KVSubkeys, KVVersion
from ._kv1 import KV1Secret
from ._operations import Duration
from ._pki import CertificateRevocation, IssuedCertificate
from ._ratelimit import TokenBucket
from ._runtime import Call, VaultClients, call_sync
from ._token import LeaseInfo, LeaseRenewal, TokenInfo, TokenRenewal
from ._transit import TransitBatchItem, TransitCiphertext

__all__ = [
    "SyncDatabaseOperations",
    "SyncKVv1Operations",
    "SyncKVv2Operations",
    "SyncLeaseOperations",
    "SyncPKIOperations",
    "SyncTokenOperations",
    "SyncTransitOperations",
    "SyncVaultAdapter",
]

T = TypeVar("T")


class SyncRunner(Protocol):
    """
    Runs a `Call` through an adapter's Guard, blocking the calling thread.
    """

    def __call__(self, call: Call[T], /) -> T: ...


class _Group:
    def __init__(self, run: SyncRunner) -> None:
        self._run = run

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class SyncKVv2Operations(_Group):
    """
    The blocking form of `KVv2Operations`, as ``adapter.kv``.

    .. versionadded:: 0.1.0
    """

    def read(
        self,
        path: str,
        *,
        version: int | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVSecret:
        """See `KVv2Operations.read`."""
        return self._run(
            _kv.read_call("kv.read", path, mount_point, version, namespace)
        )

    def write(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        cas: int | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVVersion:
        """See `KVv2Operations.write`."""
        return self._run(
            _kv.write_call("kv.write", path, data, mount_point, cas, namespace)
        )

    def patch(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        cas: int | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVVersion:
        """See `KVv2Operations.patch`."""
        return self._run(
            _kv.patch_call("kv.patch", path, data, mount_point, cas, namespace)
        )

    def list(
        self,
        path: str = "",
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> builtins.list[str]:
        """See `KVv2Operations.list`."""
        return self._run(_kv.list_call("kv.list", path, mount_point, namespace))

    def read_metadata(
        self,
        path: str,
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVMetadata:
        """See `KVv2Operations.read_metadata`."""
        return self._run(
            _kv.read_metadata_call("kv.read_metadata", path, mount_point, namespace)
        )

    def write_metadata(
        self,
        path: str,
        *,
        max_versions: int | None = None,
        cas_required: bool | None = None,
        custom_metadata: Mapping[str, str] | None = None,
        delete_version_after: Duration | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """See `KVv2Operations.write_metadata`."""
        self._run(
            _kv.write_metadata_call(
                "kv.write_metadata",
                path,
                mount_point,
                namespace,
                max_versions=max_versions,
                cas_required=cas_required,
                custom_metadata=custom_metadata,
                delete_version_after=delete_version_after,
            )
        )

    def read_subkeys(
        self,
        path: str,
        *,
        version: int | None = None,
        depth: int | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVSubkeys:
        """See `KVv2Operations.read_subkeys`."""
        return self._run(
            _kv.read_subkeys_call(
                "kv.read_subkeys", path, mount_point, version, depth, namespace
            )
        )

    def delete(
        self,
        path: str,
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """See `KVv2Operations.delete`."""
        self._run(_kv.delete_latest_call("kv.delete", path, mount_point, namespace))

    def delete_versions(
        self,
        path: str,
        versions: Sequence[int],
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """See `KVv2Operations.delete_versions`."""
        self._run(
            _kv.versions_call(
                "kv.delete_versions", "delete", path, versions, mount_point, namespace
            )
        )

    def undelete_versions(
        self,
        path: str,
        versions: Sequence[int],
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """See `KVv2Operations.undelete_versions`."""
        self._run(
            _kv.versions_call(
                "kv.undelete_versions",
                "undelete",
                path,
                versions,
                mount_point,
                namespace,
            )
        )

    def destroy_versions(
        self,
        path: str,
        versions: Sequence[int],
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """See `KVv2Operations.destroy_versions`."""
        self._run(
            _kv.versions_call(
                "kv.destroy_versions", "destroy", path, versions, mount_point, namespace
            )
        )

    def delete_metadata(
        self,
        path: str,
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """See `KVv2Operations.delete_metadata`."""
        self._run(
            _kv.delete_metadata_call("kv.delete_metadata", path, mount_point, namespace)
        )


class SyncKVv1Operations(_Group):
    """
    The blocking form of `KVv1Operations`, as ``adapter.kv1``.

    .. versionadded:: 0.1.0
    """

    def read(
        self,
        path: str,
        *,
        mount_point: str = _kv1.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KV1Secret:
        """See `KVv1Operations.read`."""
        return self._run(_kv1.read_call("kv1.read", path, mount_point, namespace))

    def write(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        mount_point: str = _kv1.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """See `KVv1Operations.write`."""
        self._run(_kv1.write_call("kv1.write", path, data, mount_point, namespace))

    def list(
        self,
        path: str = "",
        *,
        mount_point: str = _kv1.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> builtins.list[str]:
        """See `KVv1Operations.list`."""
        return self._run(_kv1.list_call("kv1.list", path, mount_point, namespace))

    def delete(
        self,
        path: str,
        *,
        mount_point: str = _kv1.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """See `KVv1Operations.delete`."""
        self._run(_kv1.delete_call("kv1.delete", path, mount_point, namespace))


class SyncTransitOperations(_Group):
    """
    The blocking form of `TransitOperations`, as ``adapter.transit``.

    .. versionadded:: 0.1.0
    """

    def encrypt(
        self,
        key_name: str,
        plaintext: bytes | str,
        *,
        context: bytes | None = None,
        associated_data: bytes | None = None,
        key_version: int | None = None,
        create_key: bool = True,
        mount_point: str = _transit.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> TransitCiphertext:
        """See `TransitOperations.encrypt`."""
        return self._run(
            _transit.encrypt_call(
                "transit.encrypt",
                key_name,
                plaintext,
                context=context,
                associated_data=associated_data,
                key_version=key_version,
                create_key=create_key,
                mount_point=mount_point,
                namespace=namespace,
            )
        )

    def decrypt(
        self,
        key_name: str,
        ciphertext: str,
        *,
        context: bytes | None = None,
        associated_data: bytes | None = None,
        mount_point: str = _transit.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> bytes:
        """See `TransitOperations.decrypt`."""
        return self._run(
            _transit.decrypt_call(
                "transit.decrypt",
                key_name,
                ciphertext,
                context=context,
                associated_data=associated_data,
                mount_point=mount_point,
                namespace=namespace,
            )
        )

    def rewrap(
        self,
        key_name: str,
        ciphertext: str,
        *,
        context: bytes | None = None,
        associated_data: bytes | None = None,
        key_version: int | None = None,
        mount_point: str = _transit.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> TransitCiphertext:
        """See `TransitOperations.rewrap`."""
        return self._run(
            _transit.rewrap_call(
                "transit.rewrap",
                key_name,
                ciphertext,
                context=context,
                associated_data=associated_data,
                key_version=key_version,
                mount_point=mount_point,
                namespace=namespace,
            )
        )

    def encrypt_batch(
        self,
        key_name: str,
        plaintexts: Sequence[bytes | str],
        *,
        contexts: Sequence[bytes | None] | None = None,
        associated_data: Sequence[bytes | None] | None = None,
        key_version: int | None = None,
        create_key: bool = True,
        mount_point: str = _transit.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> builtins.list[TransitBatchItem]:
        """See `TransitOperations.encrypt_batch`."""
        return self._run(
            _transit.encrypt_batch_call(
                "transit.encrypt_batch",
                key_name,
                plaintexts,
                contexts=contexts,
                associated_data=associated_data,
                key_version=key_version,
                create_key=create_key,
                mount_point=mount_point,
                namespace=namespace,
            )
        )

    def decrypt_batch(
        self,
        key_name: str,
        ciphertexts: Sequence[str],
        *,
        contexts: Sequence[bytes | None] | None = None,
        associated_data: Sequence[bytes | None] | None = None,
        mount_point: str = _transit.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> builtins.list[TransitBatchItem]:
        """See `TransitOperations.decrypt_batch`."""
        return self._run(
            _transit.decrypt_batch_call(
                "transit.decrypt_batch",
                key_name,
                ciphertexts,
                contexts=contexts,
                associated_data=associated_data,
                mount_point=mount_point,
                namespace=namespace,
            )
        )

    def rewrap_batch(
        self,
        key_name: str,
        ciphertexts: Sequence[str],
        *,
        contexts: Sequence[bytes | None] | None = None,
        associated_data: Sequence[bytes | None] | None = None,
        key_version: int | None = None,
        mount_point: str = _transit.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> builtins.list[TransitBatchItem]:
        """See `TransitOperations.rewrap_batch`."""
        return self._run(
            _transit.rewrap_batch_call(
                "transit.rewrap_batch",
                key_name,
                ciphertexts,
                contexts=contexts,
                associated_data=associated_data,
                key_version=key_version,
                mount_point=mount_point,
                namespace=namespace,
            )
        )


class SyncDatabaseOperations(_Group):
    """
    The blocking form of `DatabaseOperations`, as ``adapter.database``.

    .. versionadded:: 0.1.0
    """

    def generate_credentials(
        self,
        role: str,
        *,
        mount_point: str = _database.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> DatabaseCredentials:
        """See `DatabaseOperations.generate_credentials`."""
        return self._run(
            _database.generate_credentials_call(
                "database.generate_credentials", role, mount_point, namespace
            )
        )

    def read_static_credentials(
        self,
        role: str,
        *,
        mount_point: str = _database.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> StaticCredentials:
        """See `DatabaseOperations.read_static_credentials`."""
        return self._run(
            _database.read_static_credentials_call(
                "database.read_static_credentials", role, mount_point, namespace
            )
        )


class SyncPKIOperations(_Group):
    """
    The blocking form of `PKIOperations`, as ``adapter.pki``.

    .. versionadded:: 0.1.0
    """

    def issue(
        self,
        role: str,
        common_name: str,
        *,
        alt_names: Sequence[str] | None = None,
        ip_sans: Sequence[str] | None = None,
        uri_sans: Sequence[str] | None = None,
        ttl: Duration | None = None,
        extra: Mapping[str, Any] | None = None,
        mount_point: str = _pki.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> IssuedCertificate:
        """See `PKIOperations.issue`."""
        return self._run(
            _pki.issue_call(
                "pki.issue",
                role,
                common_name,
                alt_names=alt_names,
                ip_sans=ip_sans,
                uri_sans=uri_sans,
                ttl=ttl,
                extra=extra,
                mount_point=mount_point,
                namespace=namespace,
            )
        )

    def revoke(
        self,
        serial_number: str,
        *,
        mount_point: str = _pki.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> CertificateRevocation:
        """See `PKIOperations.revoke`."""
        return self._run(
            _pki.revoke_call("pki.revoke", serial_number, mount_point, namespace)
        )


class SyncTokenOperations(_Group):
    """
    The blocking form of `TokenOperations`, as ``adapter.token``.

    .. versionadded:: 0.1.0
    """

    def lookup_self(self, *, namespace: str | None = None) -> TokenInfo:
        """See `TokenOperations.lookup_self`."""
        return self._run(_token.lookup_self_call("token.lookup_self", namespace))

    def renew_self(
        self, *, increment: Duration | None = None, namespace: str | None = None
    ) -> TokenRenewal:
        """See `TokenOperations.renew_self`."""
        return self._run(
            _token.renew_self_call("token.renew_self", increment, namespace)
        )

    def revoke_self(self, *, namespace: str | None = None) -> None:
        """See `TokenOperations.revoke_self`."""
        self._run(_token.revoke_self_call("token.revoke_self", namespace))


class SyncLeaseOperations(_Group):
    """
    The blocking form of `LeaseOperations`, as ``adapter.lease``.

    .. versionadded:: 0.1.0
    """

    def lookup(self, lease_id: str, *, namespace: str | None = None) -> LeaseInfo:
        """See `LeaseOperations.lookup`."""
        return self._run(_token.lookup_lease_call("lease.lookup", lease_id, namespace))

    def renew(
        self,
        lease_id: str,
        *,
        increment: Duration | None = None,
        namespace: str | None = None,
    ) -> LeaseRenewal:
        """See `LeaseOperations.renew`."""
        return self._run(
            _token.renew_lease_call("lease.renew", lease_id, increment, namespace)
        )

    def revoke(self, lease_id: str, *, namespace: str | None = None) -> None:
        """See `LeaseOperations.revoke`."""
        self._run(_token.revoke_lease_call("lease.revoke", lease_id, namespace))


class SyncVaultAdapter:
    """
    The operations of `VaultAdapter` for threaded programs: every method
    blocks the calling thread until the operation ends.

    Args:
        config: A `VaultConfig`, or a mapping accepted by
            `VaultConfig.from_mapping`. Without one, the constructor reads
            the environment as `VaultAdapter` does, with the same order of
            precedence. Otherwise, pass the config to `initialize`.
        listeners: Receivers of retry, breaker and executor events.
        clock: Time source for the deadline, backoff and breaker.

    Use it as ``with SyncVaultAdapter(config) as adapter:``, or call
    `initialize` and `close` yourself. Every method is safe to call from
    many threads at once. Do not call them from an event loop's thread,
    which they would block: use `VaultAdapter` there. ``VaultAdapter.sync``
    returns a `SyncVaultAdapter` that shares the async adapter's thread
    pool, breaker and retry policy.

    .. versionadded:: 0.1.0
    """

    _adapter: VaultAdapter
    _owner: bool

    def __init__(
        self,
        config: VaultConfig | Mapping[str, Any] | None = None,
        *,
        listeners: Sequence[Listener] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._setup(VaultAdapter(config, listeners=listeners, clock=clock), owner=True)

    @classmethod
    def _borrow(cls, adapter: VaultAdapter) -> SyncVaultAdapter:
        """
        Return a `SyncVaultAdapter` that runs through *adapter*'s parts and
        leaves its life to *adapter*.
        """
        view = cls.__new__(cls)
        view._setup(adapter, owner=False)
        return view

    def _setup(self, adapter: VaultAdapter, *, owner: bool) -> None:
        self._adapter = adapter
        self._owner = owner
        self._kv = SyncKVv2Operations(self._call)
        self._kv1 = SyncKVv1Operations(self._call)
        self._transit = SyncTransitOperations(self._call)
        self._database = SyncDatabaseOperations(self._call)
        self._pki = SyncPKIOperations(self._call)
        self._token = SyncTokenOperations(self._call)
        self._lease = SyncLeaseOperations(self._call)

    def __repr__(self) -> str:
        adapter = self._adapter
        url = adapter._config.url if adapter._config is not None else None
        if adapter._closed:
            state = "closed"
        elif adapter._runtime is not None:
            state = "initialized"
        else:
            state = "not initialized"
        shared = "" if self._owner else " shared with a VaultAdapter"
        return f"<SyncVaultAdapter url={url!r} {state}{shared}>"

    # -- lifecycle ----------------------------------------------------------

    def initialize(self, config: VaultConfig | Mapping[str, Any] | None = None) -> None:
        """
        Build the thread pool, breaker, retry policy and Guard.

        Raises:
            RuntimeError: When the adapter is closed, has no configuration,
                was initialized with a different one, or is the
                ``VaultAdapter.sync`` of an async adapter, which that
                adapter initializes.
        """
        if not self._owner:
            msg = (
                "This SyncVaultAdapter belongs to a VaultAdapter. Initialize "
                "that adapter with 'await adapter.initialize()' instead."
            )
            raise RuntimeError(msg)
        self._adapter._start(config, owner="SyncVaultAdapter")

    def close(self) -> None:
        """
        Shut the thread pool down and wait, up to ``timeout_seconds``, for
        running requests to end. Calling it again does nothing.

        For the ``VaultAdapter.sync`` of an async adapter it does nothing,
        because the async adapter's `VaultAdapter.aclose` closes the parts
        they share.
        """
        if self._owner:
            self._adapter._close_sync()

    def __enter__(self) -> Self:
        adapter = self._adapter
        if self._owner and adapter._config is not None and adapter._runtime is None:
            self.initialize()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, KeyboardInterrupt) and self._owner:
            # The user wants out: running requests are not waited for.
            self._adapter._close_sync(wait=False)
            return
        self.close()

    def _runtime(self) -> VaultClients:
        adapter = self._adapter
        if adapter._closed:
            raise RuntimeError("SyncVaultAdapter is closed. Create a new adapter.")
        if adapter._runtime is None:
            if self._owner:
                msg = (
                    "SyncVaultAdapter is not initialized. Call "
                    "adapter.initialize(config) first, or use 'with "
                    "SyncVaultAdapter(config) as adapter', or set BAO_ADDR or "
                    "VAULT_ADDR before building the adapter."
                )
            else:
                msg = (
                    "The VaultAdapter of this SyncVaultAdapter is not "
                    "initialized. Call 'await adapter.initialize(config)' first."
                )
            raise RuntimeError(msg)
        return adapter._runtime

    def _call(self, call: Call[T]) -> T:
        return call_sync(self._runtime(), call)

    # -- parts ----------------------------------------------------------------

    @property
    def config(self) -> VaultConfig:
        """See `VaultAdapter.config`."""
        return self._adapter.config

    @property
    def guard(self) -> Guard:
        """See `VaultAdapter.guard`."""
        return self._adapter.guard

    @property
    def breaker(self) -> CircuitBreaker | None:
        """See `VaultAdapter.breaker`."""
        return self._adapter.breaker

    @property
    def executor(self) -> BoundedExecutor:
        """See `VaultAdapter.executor`."""
        return self._adapter.executor

    @property
    def rate_limiter(self) -> TokenBucket | None:
        """See `VaultAdapter.rate_limiter`."""
        return self._adapter.rate_limiter

    def statistics(self) -> GuardStatistics:
        """See `VaultAdapter.statistics`."""
        return self._adapter.statistics()

    def health_check(self, *, deep: bool = False) -> dict[str, Any]:
        """
        Return the report of `VaultAdapter.health_check`.

        It runs the async check in a new event loop in the calling thread,
        so it raises RuntimeError when called from a thread that is already
        running one.
        """
        check = functools.partial(self._adapter.health_check, deep=deep)
        return anyio.run(check)

    # -- operations -------------------------------------------------------------

    @property
    def kv(self) -> SyncKVv2Operations:
        """Operations on KV version 2 secrets."""
        return self._kv

    @property
    def kv1(self) -> SyncKVv1Operations:
        """Operations on KV version 1 secrets."""
        return self._kv1

    @property
    def transit(self) -> SyncTransitOperations:
        """Encryption and decryption with the transit secrets engine."""
        return self._transit

    @property
    def database(self) -> SyncDatabaseOperations:
        """Credentials from the database secrets engine."""
        return self._database

    @property
    def pki(self) -> SyncPKIOperations:
        """Certificates from the PKI secrets engine."""
        return self._pki

    @property
    def token(self) -> SyncTokenOperations:
        """Lookup, renewal and revocation of the adapter's own token."""
        return self._token

    @property
    def lease(self) -> SyncLeaseOperations:
        """Lookup, renewal and revocation of leases."""
        return self._lease

    def read_secret(
        self,
        path: str,
        *,
        mount_point: str = "secret",
        version: int | None = None,
        namespace: str | None = None,
    ) -> KVSecret:
        """See `VaultAdapter.read_secret`."""
        return self._call(
            _kv.read_call("read_secret", path, mount_point, version, namespace)
        )

    def write_secret(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        mount_point: str = "secret",
        cas: int | None = None,
        namespace: str | None = None,
    ) -> int:
        """See `VaultAdapter.write_secret`."""
        call = _kv.write_call("write_secret", path, data, mount_point, cas, namespace)
        return self._call(call).version

    def list_secrets(
        self,
        path: str = "",
        *,
        mount_point: str = "secret",
        namespace: str | None = None,
    ) -> builtins.list[str]:
        """See `VaultAdapter.list_secrets`."""
        return self._call(_kv.list_call("list_secrets", path, mount_point, namespace))

    def delete_secret(
        self, path: str, *, mount_point: str = "secret", namespace: str | None = None
    ) -> None:
        """See `VaultAdapter.delete_secret`."""
        self._call(
            _kv.delete_latest_call("delete_secret", path, mount_point, namespace)
        )

    def read(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        replay: Replay = "safe",
        namespace: str | None = None,
    ) -> GenericResponse:
        """See `VaultAdapter.read`."""
        return self._call(_generic.read_call("read", path, params, replay, namespace))

    def write(
        self,
        path: str,
        data: Mapping[str, Any] | None = None,
        *,
        replay: Replay,
        namespace: str | None = None,
    ) -> GenericResponse:
        """See `VaultAdapter.write`."""
        return self._call(_generic.write_call("write", path, data, replay, namespace))

    def list(
        self,
        path: str,
        *,
        replay: Replay = "safe",
        namespace: str | None = None,
    ) -> builtins.list[str]:
        """See `VaultAdapter.list`."""
        return self._call(_generic.list_call("list", path, replay, namespace))

    def delete(
        self,
        path: str,
        *,
        replay: Replay,
        namespace: str | None = None,
    ) -> GenericResponse:
        """See `VaultAdapter.delete`."""
        return self._call(_generic.delete_call("delete", path, replay, namespace))
