"""
Tests of `buttress.vault.SyncVaultAdapter` against the real OpenBao dev
server, called from plain threads: KV round trips from several threads
sharing one adapter, one operation of each other group, errors of the
same types as `VaultAdapter` raises, and the adapter's lifecycle. The
``VaultAdapter.sync`` view of an async adapter runs on asyncio and trio.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from _vault_admin import admin, mounted, unique
from _vault_fake_server import unused_port
from buttress import Event, RetryScheduled
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import (
    CasConflict,
    KV1Secret,
    KVSecret,
    LeaseExpired,
    MountNotFound,
    NotFound,
    PermissionDenied,
    SecretDeleted,
    SyncVaultAdapter,
    TransitCiphertext,
    VaultAdapter,
    VaultAdapterError,
    VaultUnavailable,
)

THREADS = 8


def settings(openbao: OpenBaoDevServer, **overrides: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "url": openbao.address,
        "token": openbao.root_token,
        "timeout_seconds": 10.0,
        "max_concurrent_operations": 4,
        "max_queue_size_multiplier": 4,
        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.01},
    }
    mapping.update(overrides)
    return mapping


def secret_path(name: str) -> str:
    return f"buttress-sync/{unique(name)}/secret"


def retries(events: list[Event]) -> int:
    return sum(isinstance(event, RetryScheduled) for event in events)


@pytest.fixture(scope="module")
def kv1_mount(openbao: OpenBaoDevServer) -> Iterator[str]:
    with mounted(openbao, "kv", options={"version": "1"}) as mount:
        yield mount


@pytest.fixture(scope="module")
def transit_mount(openbao: OpenBaoDevServer) -> Iterator[str]:
    with mounted(openbao, "transit") as mount:
        admin(openbao, "POST", f"{mount}/keys/app", {})
        yield mount


# -- operations from plain threads --------------------------------------------


def test_sync_kv_from_threads(openbao: OpenBaoDevServer) -> None:
    folder = f"buttress-sync/{unique('threads')}"
    start = threading.Barrier(THREADS)

    def round_trip(index: int) -> tuple[int, int, KVSecret, list[str]]:
        path = f"{folder}/secret-{index}"
        start.wait(timeout=10)
        first = vault.write_secret(path, {"index": index})
        second = vault.kv.write(path, {"index": index, "n": 2}, cas=first).version
        latest = vault.read_secret(path)
        keys = vault.list_secrets(folder)
        vault.delete_secret(path)
        with pytest.raises(SecretDeleted):
            vault.read_secret(path)
        return first, second, latest, keys

    with SyncVaultAdapter(settings(openbao)) as vault:
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(round_trip, range(THREADS)))
        stats = vault.executor.statistics()

    assert len(results) == THREADS
    for index, (first, second, latest, keys) in enumerate(results):
        assert first == 1
        assert second == 2
        assert latest.data == {"index": index, "n": 2}
        assert latest.version == 2
        assert f"secret-{index}" in keys
    # Eight threads shared four workers; the pool never ran more.
    assert stats.peak_active <= 4
    assert stats.rejected == 0


def test_sync_other_groups(
    openbao: OpenBaoDevServer, kv1_mount: str, transit_mount: str
) -> None:
    path = secret_path("groups")
    missing_lease = f"{transit_mount}/no-such-lease/{uuid.uuid4().hex}"
    with SyncVaultAdapter(settings(openbao)) as vault:
        vault.kv1.write(path, {"k": "v"}, mount_point=kv1_mount)
        plain = vault.kv1.read(path, mount_point=kv1_mount)
        encrypted = vault.transit.encrypt("app", b"payload", mount_point=transit_mount)
        decrypted = vault.transit.decrypt(
            "app", encrypted.ciphertext, mount_point=transit_mount
        )
        token = vault.token.lookup_self()
        with pytest.raises(LeaseExpired):
            vault.lease.lookup(missing_lease)
        generic = vault.read("sys/mounts")
        health = vault.health_check(deep=True)

    assert isinstance(plain, KV1Secret)
    assert plain.data == {"k": "v"}
    assert isinstance(encrypted, TransitCiphertext)
    assert decrypted == b"payload"
    # The dev server's root token never expires.
    assert token.ttl == 0
    assert generic.data is not None
    assert "secret/" in generic.data
    assert health["ready"] is True
    assert health["token_valid"] is True


def test_sync_cas_conflict(openbao: OpenBaoDevServer) -> None:
    path = secret_path("cas")
    events: list[Event] = []
    with SyncVaultAdapter(
        settings(openbao), clock=FakeClock(), listeners=[events.append]
    ) as vault:
        created = vault.kv.write(path, {"n": 1}, cas=0)
        with pytest.raises(CasConflict) as conflict:
            vault.kv.write(path, {"n": 2}, cas=0)
        current = vault.kv.read(path)

    assert created.version == 1
    assert conflict.value.status == 400
    assert conflict.value.retryable is False
    assert retries(events) == 0
    assert current.data == {"n": 1}


# -- errors match the async adapter -------------------------------------------


def failing_operations(
    openbao: OpenBaoDevServer, deleted_path: str
) -> dict[str, tuple[dict[str, Any], Callable[[Any], Any]]]:
    """
    Return, by name, a config and an operation that fails with it. Each
    operation takes an adapter and calls it the same way on both kinds.
    """
    missing = secret_path("missing")
    return {
        "missing": (settings(openbao), lambda v: v.read_secret(missing)),
        "deleted": (settings(openbao), lambda v: v.kv.read(deleted_path)),
        "cas": (
            settings(openbao),
            lambda v: v.kv.write(deleted_path, {"n": 9}, cas=1),
        ),
        "mount": (
            settings(openbao),
            lambda v: v.kv.read("app", mount_point="no-such-mount"),
        ),
        "token": (
            settings(openbao, token=f"bad-{uuid.uuid4().hex}"),
            lambda v: v.read_secret(missing),
        ),
        "lease": (
            settings(openbao),
            lambda v: v.lease.lookup(f"secret/no-such-lease/{uuid.uuid4().hex}"),
        ),
        "refused": (
            settings(openbao, url=f"http://127.0.0.1:{unused_port()}"),
            lambda v: v.read_secret(missing),
        ),
    }


EXPECTED_TYPES = {
    "missing": NotFound,
    "deleted": SecretDeleted,
    "cas": CasConflict,
    "mount": MountNotFound,
    "token": PermissionDenied,
    "lease": LeaseExpired,
    "refused": VaultUnavailable,
}


@pytest.mark.anyio
async def test_sync_errors_match_async(openbao: OpenBaoDevServer) -> None:
    deleted_path = secret_path("deleted")
    admin(openbao, "POST", f"secret/data/{deleted_path}", {"data": {"n": 1}})
    admin(openbao, "POST", f"secret/data/{deleted_path}", {"data": {"n": 2}})
    admin(openbao, "DELETE", f"secret/data/{deleted_path}")
    operations = failing_operations(openbao, deleted_path)
    async_errors: dict[str, VaultAdapterError] = {}
    sync_errors: dict[str, VaultAdapterError] = {}

    for name, (config, operation) in operations.items():
        async with VaultAdapter(config, clock=FakeClock()) as vault:
            with pytest.raises(VaultAdapterError) as raised:
                await operation(vault)
            async_errors[name] = raised.value

        def run_sync(
            config: dict[str, Any] = config,
            operation: Callable[[Any], Any] = operation,
        ) -> VaultAdapterError:
            with (
                SyncVaultAdapter(config, clock=FakeClock()) as vault,
                pytest.raises(VaultAdapterError) as raised,
            ):
                operation(vault)
            return raised.value

        sync_errors[name] = await anyio.to_thread.run_sync(run_sync)

    for name, expected in EXPECTED_TYPES.items():
        async_error = async_errors[name]
        sync_error = sync_errors[name]
        assert type(async_error) is expected, name
        assert type(sync_error) is expected, name
        assert sync_error.status == async_error.status, name
        assert sync_error.outcome == async_error.outcome, name
        assert sync_error.retryable == async_error.retryable, name
        assert sync_error.operation == async_error.operation, name
        assert str(sync_error) == str(async_error), name


# -- lifecycle -------------------------------------------------------------------


def test_sync_close_and_use_after(openbao: OpenBaoDevServer) -> None:
    path = secret_path("closed")
    with SyncVaultAdapter(settings(openbao)) as vault:
        vault.write_secret(path, {"k": "v"})
        assert "initialized" in repr(vault)
    vault.close()
    health = vault.health_check()

    with pytest.raises(RuntimeError, match="closed"):
        vault.read_secret(path)
    with pytest.raises(RuntimeError, match="closed"):
        vault.kv.read(path)
    with pytest.raises(RuntimeError, match="closed"):
        vault.transit.encrypt("app", b"x")
    with pytest.raises(RuntimeError, match="closed"):
        vault.initialize()
    assert repr(vault).endswith("closed>")
    assert vault.executor.statistics().closed is True
    assert health["live"] is False
    assert health["liveness_reasons"] == ["adapter_closed"]
    assert openbao.root_token not in repr(vault)


def test_sync_use_before_initialize(openbao: OpenBaoDevServer) -> None:
    vault = SyncVaultAdapter()
    with pytest.raises(RuntimeError, match="not initialized"):
        vault.read_secret("app/db")
    with pytest.raises(RuntimeError, match="has no config"):
        vault.initialize()
    vault.initialize(settings(openbao))
    try:
        keys = vault.list_secrets(secret_path("empty"))
    finally:
        vault.close()

    assert keys == []


@pytest.mark.anyio
async def test_sync_view_shares_async_parts(openbao: OpenBaoDevServer) -> None:
    path = secret_path("shared")
    async with VaultAdapter(settings(openbao)) as vault:
        view = vault.sync
        await vault.write_secret(path, {"k": "async"})

        def from_thread() -> KVSecret:
            view.write_secret(path, {"k": "sync"})
            return view.read_secret(path)

        read_back = await anyio.to_thread.run_sync(from_thread)
        latest = await vault.read_secret(path)
        # Closing the view leaves the async adapter running.
        view.close()
        still_open = await vault.read_secret(path)
        with pytest.raises(RuntimeError, match="belongs to a VaultAdapter"):
            view.initialize()
        shared = (
            view.executor is vault.executor,
            view.breaker is vault.breaker,
            view.guard is vault.guard,
        )
        completed = vault.executor.statistics().completed
    with pytest.raises(RuntimeError, match="closed"):
        view.read_secret(path)

    assert read_back.data == {"k": "sync"}
    assert read_back.version == 2
    assert latest.version == 2
    assert still_open.version == 2
    assert shared == (True, True, True)
    # Both adapters' writes and reads ran in the one shared pool.
    assert completed == 5
    assert "shared with a VaultAdapter" in repr(view)
