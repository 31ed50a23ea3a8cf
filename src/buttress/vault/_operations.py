"""
The operations of `VaultAdapter`, grouped by secrets engine: ``adapter.kv``,
``adapter.kv1``, ``adapter.transit``, ``adapter.database``, ``adapter.pki``,
``adapter.token`` and ``adapter.lease``.

Every method checks its arguments, describes the operation as a `Call`
with its replay class, and runs it through the adapter's Guard. Every
method takes ``mount_point`` (where the engine has one) and ``namespace``:
None sends the configured namespace, ``""`` the root namespace, and any
other value that namespace, as the ``X-Vault-Namespace`` header.
`buttress.vault._sync` has the blocking twins of these classes.
"""

from __future__ import annotations

import builtins
import datetime
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from . import _database, _kv, _kv1, _pki, _token, _transit
from ._database import DatabaseCredentials, StaticCredentials
from ._kv import KVMetadata, KVSecret, KVSubkeys, KVVersion
from ._kv1 import KV1Secret
from ._pki import CertificateRevocation, IssuedCertificate
from ._runtime import Call
from ._token import LeaseInfo, LeaseRenewal, TokenInfo, TokenRenewal
from ._transit import TransitBatchItem, TransitCiphertext

__all__ = [
    "DatabaseOperations",
    "Duration",
    "KVv1Operations",
    "KVv2Operations",
    "LeaseOperations",
    "PKIOperations",
    "TokenOperations",
    "TransitOperations",
]

T = TypeVar("T")

Duration = float | datetime.timedelta | str
"""
A duration sent to the server: seconds, a `datetime.timedelta`, or a str
that the server parses, such as ``"1h30m"``.
"""


class AsyncRunner(Protocol):
    """
    Runs a `Call` through an adapter's Guard from async code.
    """

    def __call__(self, call: Call[T], /) -> Awaitable[T]: ...


class _Group:
    def __init__(self, run: AsyncRunner) -> None:
        self._run = run

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class KVv2Operations(_Group):
    """
    Operations on KV version 2 secrets, as ``adapter.kv``.

    Reads and explicit-version changes are retried after any transient
    failure. A write or patch without ``cas`` and a delete of the latest
    version are retried only when the request was never processed, because
    a replay would add another version or delete a newer one. With
    ``cas``, a write or patch that is retried after an unknown outcome and
    then conflicts with its own earlier success returns that success.

    .. versionadded:: 0.1.0
    """

    async def read(
        self,
        path: str,
        *,
        version: int | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVSecret:
        """
        Read the latest version of a secret, or *version*.

        Raises:
            NotFound: When nothing was ever written at *path*, or the
                version does not exist.
            SecretDeleted: When the version is deleted (it can be
                undeleted).
            VersionDestroyed: When the version is destroyed.
        """
        call = _kv.read_call("kv.read", path, mount_point, version, namespace)
        return await self._run(call)

    async def write(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        cas: int | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVVersion:
        """
        Write *data* as a new version of a secret.

        Args:
            cas: Check-and-set: the write succeeds only if the secret's
                current version is this one; 0 means the secret must not
                exist yet.

        Raises:
            CasConflict: When *cas* does not match the current version.
        """
        call = _kv.write_call("kv.write", path, data, mount_point, cas, namespace)
        return await self._run(call)

    async def patch(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        cas: int | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVVersion:
        """
        Merge *data* into the latest version of a secret, as a JSON merge
        patch: a key set to None is removed, and a nested mapping is merged
        key by key.

        It sends an HTTP PATCH. A server that returns 405 (a Vault older
        than 1.9) gets a read and a check-and-set write instead.

        Raises:
            NotFound: When the secret does not exist.
            CasConflict: When *cas* does not match the current version.
        """
        call = _kv.patch_call("kv.patch", path, data, mount_point, cas, namespace)
        return await self._run(call)

    async def list(
        self,
        path: str = "",
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> builtins.list[str]:
        """
        List the keys directly below *path*; a folder's key ends with
        ``/``. A missing or empty folder gives an empty list.
        """
        call = _kv.list_call("kv.list", path, mount_point, namespace)
        return await self._run(call)

    async def read_metadata(
        self,
        path: str,
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVMetadata:
        """
        Read a secret's metadata and the state of each of its versions.

        Raises:
            NotFound: When the secret does not exist.
        """
        call = _kv.read_metadata_call("kv.read_metadata", path, mount_point, namespace)
        return await self._run(call)

    async def write_metadata(
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
        """
        Change a secret's metadata settings. The settings left at None keep
        their values; *custom_metadata* replaces the whole mapping.

        Args:
            max_versions: Versions to keep, 0 for the mount's setting.
            cas_required: Whether every write must give ``cas``.
            custom_metadata: Key-value pairs of str to store with the
                secret.
            delete_version_after: How long each version lives, 0 for
                forever.
        """
        call = _kv.write_metadata_call(
            "kv.write_metadata",
            path,
            mount_point,
            namespace,
            max_versions=max_versions,
            cas_required=cas_required,
            custom_metadata=custom_metadata,
            delete_version_after=delete_version_after,
        )
        await self._run(call)

    async def read_subkeys(
        self,
        path: str,
        *,
        version: int | None = None,
        depth: int | None = None,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KVSubkeys:
        """
        Read the keys of a secret's latest version (or *version*) without
        their values, down to *depth* levels (None or 0 for all).

        Raises:
            NotFound, SecretDeleted, VersionDestroyed: As for `read`.
        """
        call = _kv.read_subkeys_call(
            "kv.read_subkeys", path, mount_point, version, depth, namespace
        )
        return await self._run(call)

    async def delete(
        self,
        path: str,
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """
        Soft-delete the latest version of a secret; `undelete_versions`
        restores it. Deleting a secret that does not exist succeeds.

        It is never retried after an unknown outcome, because the latest
        version may have changed in between.
        """
        call = _kv.delete_latest_call("kv.delete", path, mount_point, namespace)
        await self._run(call)

    async def delete_versions(
        self,
        path: str,
        versions: Sequence[int],
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """
        Soft-delete the given versions of a secret.
        """
        call = _kv.versions_call(
            "kv.delete_versions", "delete", path, versions, mount_point, namespace
        )
        await self._run(call)

    async def undelete_versions(
        self,
        path: str,
        versions: Sequence[int],
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """
        Restore soft-deleted versions of a secret. Destroyed versions stay
        destroyed.
        """
        call = _kv.versions_call(
            "kv.undelete_versions", "undelete", path, versions, mount_point, namespace
        )
        await self._run(call)

    async def destroy_versions(
        self,
        path: str,
        versions: Sequence[int],
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """
        Destroy the data of the given versions for good; their metadata
        stays, marked destroyed.
        """
        call = _kv.versions_call(
            "kv.destroy_versions", "destroy", path, versions, mount_point, namespace
        )
        await self._run(call)

    async def delete_metadata(
        self,
        path: str,
        *,
        mount_point: str = _kv.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """
        Delete a secret's metadata and every version, so that it reads as
        never written. Deleting a secret that does not exist succeeds.
        """
        call = _kv.delete_metadata_call(
            "kv.delete_metadata", path, mount_point, namespace
        )
        await self._run(call)


class KVv1Operations(_Group):
    """
    Operations on KV version 1 secrets, as ``adapter.kv1``. A secret has no
    versions and a write replaces it whole, so every operation is retried
    after any transient failure.

    The default mount is ``kv``, where ``bao secrets enable -version=1 kv``
    mounts the engine.

    .. versionadded:: 0.1.0
    """

    async def read(
        self,
        path: str,
        *,
        mount_point: str = _kv1.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> KV1Secret:
        """
        Read a secret; its ``lease_duration`` is the interval at which to read it again.

        Raises:
            NotFound: When no secret exists at *path*.
        """
        call = _kv1.read_call("kv1.read", path, mount_point, namespace)
        return await self._run(call)

    async def write(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        mount_point: str = _kv1.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """
        Replace a secret with *data*. A ``ttl`` key in *data* sets the
        ``lease_duration`` that reads return.
        """
        call = _kv1.write_call("kv1.write", path, data, mount_point, namespace)
        await self._run(call)

    async def list(
        self,
        path: str = "",
        *,
        mount_point: str = _kv1.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> builtins.list[str]:
        """
        List the keys directly below *path*; a folder's key ends with
        ``/``. A missing or empty folder gives an empty list.
        """
        call = _kv1.list_call("kv1.list", path, mount_point, namespace)
        return await self._run(call)

    async def delete(
        self,
        path: str,
        *,
        mount_point: str = _kv1.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> None:
        """
        Delete a secret. Deleting a secret that does not exist succeeds.
        """
        call = _kv1.delete_call("kv1.delete", path, mount_point, namespace)
        await self._run(call)


class TransitOperations(_Group):
    """
    Encryption with the transit engine, as ``adapter.transit``. Plaintexts,
    contexts and associated data are bytes (a str is encoded as UTF-8), and
    ciphertexts are the server's ``vault:v<n>:...`` strings.

    Every operation is retried after any transient failure: the server
    keeps no state per request.

    By default an encryption that names a missing key creates it, as the
    server does. Pass ``create_key=False`` to check that the key exists
    first (one more request) and raise `NotFound` when it does not.

    .. versionadded:: 0.1.0
    """

    async def encrypt(
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
        """
        Encrypt *plaintext* with the transit key *key_name*.

        Args:
            context: The key derivation context, required by derived keys.
            associated_data: Data authenticated with the ciphertext but not
                encrypted (AEAD key types only); decryption needs the same.
            key_version: The key version to use, None for the latest.
            create_key: False to raise `NotFound` instead of creating a
                missing key.
        """
        call = _transit.encrypt_call(
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
        return await self._run(call)

    async def decrypt(
        self,
        key_name: str,
        ciphertext: str,
        *,
        context: bytes | None = None,
        associated_data: bytes | None = None,
        mount_point: str = _transit.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> bytes:
        """
        Decrypt *ciphertext* with the transit key *key_name* and return the
        plaintext.

        Raises:
            InvalidRequest: When the ciphertext, context or associated data
                is wrong.
        """
        call = _transit.decrypt_call(
            "transit.decrypt",
            key_name,
            ciphertext,
            context=context,
            associated_data=associated_data,
            mount_point=mount_point,
            namespace=namespace,
        )
        return await self._run(call)

    async def rewrap(
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
        """
        Re-encrypt *ciphertext* with the latest key version (or
        *key_version*), without the plaintext leaving the server.
        """
        call = _transit.rewrap_call(
            "transit.rewrap",
            key_name,
            ciphertext,
            context=context,
            associated_data=associated_data,
            key_version=key_version,
            mount_point=mount_point,
            namespace=namespace,
        )
        return await self._run(call)

    async def encrypt_batch(
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
        """
        Encrypt many plaintexts in one request.

        *contexts* and *associated_data* give one value (or None) per
        plaintext. An item that fails has its ``error`` set, and the other
        items still succeed.
        """
        call = _transit.encrypt_batch_call(
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
        return await self._run(call)

    async def decrypt_batch(
        self,
        key_name: str,
        ciphertexts: Sequence[str],
        *,
        contexts: Sequence[bytes | None] | None = None,
        associated_data: Sequence[bytes | None] | None = None,
        mount_point: str = _transit.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> builtins.list[TransitBatchItem]:
        """
        Decrypt many ciphertexts in one request; each item's ``plaintext``
        or ``error`` is set.
        """
        call = _transit.decrypt_batch_call(
            "transit.decrypt_batch",
            key_name,
            ciphertexts,
            contexts=contexts,
            associated_data=associated_data,
            mount_point=mount_point,
            namespace=namespace,
        )
        return await self._run(call)

    async def rewrap_batch(
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
        """
        Re-encrypt many ciphertexts in one request; each item's
        ``ciphertext`` or ``error`` is set.
        """
        call = _transit.rewrap_batch_call(
            "transit.rewrap_batch",
            key_name,
            ciphertexts,
            contexts=contexts,
            associated_data=associated_data,
            key_version=key_version,
            mount_point=mount_point,
            namespace=namespace,
        )
        return await self._run(call)


class DatabaseOperations(_Group):
    """
    Credentials from the database secrets engine, as ``adapter.database``.

    .. versionadded:: 0.1.0
    """

    async def generate_credentials(
        self,
        role: str,
        *,
        mount_point: str = _database.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> DatabaseCredentials:
        """
        Create a database user for *role* and return its credentials and
        lease.

        Each call creates a new user, so it is never retried once the
        request may have reached the server. After such a failure
        (``outcome == "unknown"``) a user may exist that the caller never
        saw; it is dropped when its lease expires.
        """
        call = _database.generate_credentials_call(
            "database.generate_credentials", role, mount_point, namespace
        )
        return await self._run(call)

    async def read_static_credentials(
        self,
        role: str,
        *,
        mount_point: str = _database.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> StaticCredentials:
        """
        Read the current credentials of the static role *role*.
        """
        call = _database.read_static_credentials_call(
            "database.read_static_credentials", role, mount_point, namespace
        )
        return await self._run(call)


class PKIOperations(_Group):
    """
    Certificates from the PKI secrets engine, as ``adapter.pki``.

    .. versionadded:: 0.1.0
    """

    async def issue(
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
        """
        Issue a certificate and a new private key for *common_name* under
        *role*.

        Each call creates a new certificate, so it is never retried once
        the request may have reached the server.

        Args:
            alt_names: DNS names and email addresses to add as subject
                alternative names.
            ip_sans: IP addresses to add as subject alternative names.
            uri_sans: URIs to add as subject alternative names.
            ttl: The certificate's lifetime, capped by the role.
            extra: Other parameters of the issue endpoint, sent as given,
                such as ``{"format": "der"}``.
        """
        call = _pki.issue_call(
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
        return await self._run(call)

    async def revoke(
        self,
        serial_number: str,
        *,
        mount_point: str = _pki.DEFAULT_MOUNT,
        namespace: str | None = None,
    ) -> CertificateRevocation:
        """
        Revoke the certificate with *serial_number*. Revoking it again
        succeeds.
        """
        call = _pki.revoke_call("pki.revoke", serial_number, mount_point, namespace)
        return await self._run(call)


class TokenOperations(_Group):
    """
    Operations on the adapter's own token, as ``adapter.token``. None of
    them returns the token itself.

    .. versionadded:: 0.1.0
    """

    async def lookup_self(self, *, namespace: str | None = None) -> TokenInfo:
        """
        Return the server's record of the token: its TTL, policies,
        renewability and accessor.

        A token with a use limit spends one use on each lookup.
        """
        return await self._run(_token.lookup_self_call("token.lookup_self", namespace))

    async def renew_self(
        self, *, increment: Duration | None = None, namespace: str | None = None
    ) -> TokenRenewal:
        """
        Renew the token, asking for *increment* more seconds from now (the
        server may grant less).

        Raises:
            LeaseNotRenewable: When the token cannot be renewed, as a batch
                token cannot.
        """
        call = _token.renew_self_call("token.renew_self", increment, namespace)
        return await self._run(call)

    async def revoke_self(self, *, namespace: str | None = None) -> None:
        """
        Revoke the token and every lease and child token it created. Every
        later operation of the adapter then fails with `PermissionDenied`.
        """
        await self._run(_token.revoke_self_call("token.revoke_self", namespace))


class LeaseOperations(_Group):
    """
    Operations on leases, such as those of dynamic database credentials, as
    ``adapter.lease``.

    .. versionadded:: 0.1.0
    """

    async def lookup(self, lease_id: str, *, namespace: str | None = None) -> LeaseInfo:
        """
        Return a lease's TTL, expiry and renewability.

        Raises:
            LeaseExpired: When the lease does not exist any more.
        """
        return await self._run(
            _token.lookup_lease_call("lease.lookup", lease_id, namespace)
        )

    async def renew(
        self,
        lease_id: str,
        *,
        increment: Duration | None = None,
        namespace: str | None = None,
    ) -> LeaseRenewal:
        """
        Renew a lease, asking for *increment* more seconds from now (the
        server may grant less).

        Raises:
            LeaseNotRenewable: When the lease cannot be renewed.
            LeaseExpired: When the lease does not exist any more.
        """
        call = _token.renew_lease_call("lease.renew", lease_id, increment, namespace)
        return await self._run(call)

    async def revoke(self, lease_id: str, *, namespace: str | None = None) -> None:
        """
        Revoke a lease now, which ends its secret (a database user is
        dropped). Revoking a revoked lease succeeds.
        """
        await self._run(_token.revoke_lease_call("lease.revoke", lease_id, namespace))
