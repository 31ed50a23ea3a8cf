"""
Tests of the KV operations of `buttress.vault.VaultAdapter` against a real
OpenBao dev server: every KV version 2 operation, KV version 1 and how it
differs, namespaces per adapter and per call, the generic operations on
any path, and the warnings that responses carry.

Each test uses its own paths and mounts, so tests do not depend on each
other. The KV version 2 mount is the dev server's ``secret``.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from _scripted_proxy import ScriptedProxy, vault_errors
from _vault_admin import admin, mounted, unique
from buttress import Event, RetryScheduled
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import (
    CasConflict,
    InvalidRequest,
    KV1Secret,
    KVMetadata,
    KVSecret,
    KVVersion,
    NotFound,
    SecretDeleted,
    SyncVaultAdapter,
    VaultAdapter,
    VersionDestroyed,
    replay_class,
)

pytestmark = pytest.mark.anyio


def secret_path(name: str) -> str:
    return f"buttress-kv/{unique(name)}/secret"


def settings(url: str, token: str, **overrides: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "url": url,
        "token": token,
        "timeout_seconds": 10.0,
        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.01},
    }
    mapping.update(overrides)
    return mapping


def adapter(openbao: OpenBaoDevServer, **overrides: Any) -> VaultAdapter:
    return VaultAdapter(settings(openbao.address, openbao.root_token, **overrides))


def retries(events: list[Event]) -> int:
    return sum(isinstance(event, RetryScheduled) for event in events)


# -- KV version 2 -----------------------------------------------------------


async def test_kv_versions_round_trip(openbao: OpenBaoDevServer) -> None:
    path = secret_path("versions")
    async with adapter(openbao) as vault:
        first = await vault.kv.write(path, {"user": "app", "password": "one"})
        second = await vault.kv.write(path, {"user": "app", "password": "two"})
        latest = await vault.kv.read(path)
        old = await vault.kv.read(path, version=1)

    assert isinstance(first, KVVersion)
    assert first.version == 1
    assert second.version == 2
    assert second.created_time is not None
    assert second.deletion_time is None
    assert second.destroyed is False
    assert isinstance(latest, KVSecret)
    assert latest.version == 2
    assert latest.data == {"user": "app", "password": "two"}
    assert latest.deletion_time is None
    assert latest.destroyed is False
    assert latest.warnings == ()
    assert old.version == 1
    assert old.data["password"] == "one"
    assert "two" not in repr(latest)
    assert path not in repr(latest)


async def test_kv_cas_conflict(openbao: OpenBaoDevServer) -> None:
    path = secret_path("cas")
    events: list[Event] = []
    vault = VaultAdapter(
        settings(openbao.address, openbao.root_token), listeners=[events.append]
    )
    async with vault:
        created = await vault.kv.write(path, {"n": 1}, cas=0)
        with pytest.raises(CasConflict) as exists:
            await vault.kv.write(path, {"n": 2}, cas=0)
        updated = await vault.kv.write(path, {"n": 2}, cas=created.version)
        with pytest.raises(CasConflict) as stale:
            await vault.kv.write(path, {"n": 3}, cas=created.version)
        current = await vault.kv.read(path)

    assert created.version == 1
    assert updated.version == 2
    assert exists.value.retryable is False
    assert stale.value.status == 400
    assert current.data == {"n": 2}
    assert retries(events) == 0


async def test_kv_missing_deleted_destroyed(openbao: OpenBaoDevServer) -> None:
    path = secret_path("states")
    async with adapter(openbao) as vault:
        with pytest.raises(NotFound) as never:
            await vault.kv.read(path)
        await vault.kv.write(path, {"v": 1})
        await vault.kv.write(path, {"v": 2})
        await vault.kv.delete(path)
        with pytest.raises(SecretDeleted) as deleted:
            await vault.kv.read(path)
        await vault.kv.destroy_versions(path, [1])
        with pytest.raises(VersionDestroyed) as destroyed:
            await vault.kv.read(path, version=1)
        metadata = await vault.kv.read_metadata(path)
        await vault.kv.undelete_versions(path, [2])
        restored = await vault.kv.read(path)
        await vault.kv.delete_versions(path, [2])
        with pytest.raises(SecretDeleted):
            await vault.kv.read(path, version=2)
        await vault.kv.delete_metadata(path)
        with pytest.raises(NotFound) as gone:
            await vault.kv.read(path)

    assert not isinstance(never.value, SecretDeleted)
    assert not isinstance(deleted.value, VersionDestroyed)
    assert deleted.value.version == 2
    assert deleted.value.deletion_time is not None
    assert deleted.value.destroyed is False
    assert destroyed.value.version == 1
    assert destroyed.value.destroyed is True
    assert "destroyed" in str(destroyed.value)
    assert metadata.versions[1].destroyed is True
    assert metadata.versions[2].deletion_time is not None
    assert restored.version == 2
    assert restored.data == {"v": 2}
    assert not isinstance(gone.value, SecretDeleted)


async def test_kv_patch_merges(openbao: OpenBaoDevServer) -> None:
    path = secret_path("patch")
    async with adapter(openbao) as vault:
        await vault.kv.write(path, {"a": 1, "b": {"c": 2, "d": 3}, "gone": "x"})
        patched = await vault.kv.patch(path, {"b": {"c": None, "e": 4}, "gone": None})
        current = await vault.kv.read(path)
        again = await vault.kv.patch(path, {"a": 5}, cas=patched.version)
        with pytest.raises(CasConflict):
            await vault.kv.patch(path, {"a": 6}, cas=patched.version)
        with pytest.raises(NotFound):
            await vault.kv.patch(secret_path("patch-missing"), {"a": 1})

    assert patched.version == 2
    assert current.data == {"a": 1, "b": {"d": 3, "e": 4}}
    assert again.version == 3


async def test_kv_metadata_round_trip(openbao: OpenBaoDevServer) -> None:
    path = secret_path("metadata")
    async with adapter(openbao) as vault:
        await vault.kv.write(path, {"k": "v"})
        await vault.kv.write_metadata(
            path,
            max_versions=3,
            cas_required=True,
            custom_metadata={"owner": "team-a"},
            delete_version_after=3600,
        )
        metadata = await vault.kv.read_metadata(path)
        with pytest.raises(InvalidRequest) as cas_missing:
            await vault.kv.write(path, {"k": "w"})
        written = await vault.kv.write(path, {"k": "w"}, cas=1)
        secret = await vault.kv.read(path)
        await vault.kv.write_metadata(path, cas_required=False)
        relaxed = await vault.kv.read_metadata(path)

    assert isinstance(metadata, KVMetadata)
    assert metadata.max_versions == 3
    assert metadata.cas_required is True
    assert metadata.custom_metadata == {"owner": "team-a"}
    assert metadata.delete_version_after == "1h0m0s"
    assert metadata.current_version == 1
    assert set(metadata.versions) == {1}
    assert metadata.created_time is not None
    assert not isinstance(cas_missing.value, CasConflict)
    assert written.version == 2
    # A version written while delete_version_after is set has a deletion time.
    assert secret.deletion_time is not None
    assert secret.custom_metadata == {"owner": "team-a"}
    assert relaxed.cas_required is False
    assert relaxed.max_versions == 3


async def test_kv_subkeys_without_values(openbao: OpenBaoDevServer) -> None:
    path = secret_path("subkeys")
    async with adapter(openbao) as vault:
        await vault.kv.write(path, {"user": "u", "tls": {"cert": "c", "key": "k"}})
        await vault.kv.write(path, {"user": "u"})
        latest = await vault.kv.read_subkeys(path)
        first = await vault.kv.read_subkeys(path, version=1)
        shallow = await vault.kv.read_subkeys(path, version=1, depth=1)

    assert latest.subkeys == {"user": None}
    assert latest.version == 2
    assert first.subkeys == {"user": None, "tls": {"cert": None, "key": None}}
    assert first.version == 1
    assert shallow.subkeys == {"user": None, "tls": None}


async def test_kv_list_folder(openbao: OpenBaoDevServer) -> None:
    folder = f"buttress-kv/{unique('list')}"
    async with adapter(openbao) as vault:
        await vault.kv.write(f"{folder}/b", {"k": "v"})
        await vault.kv.write(f"{folder}/a/nested", {"k": "v"})
        keys = await vault.kv.list(folder)
        empty = await vault.kv.list(f"{folder}/missing")

    assert sorted(keys) == ["a/", "b"]
    assert empty == []


async def test_kv_shortcuts_match_groups(openbao: OpenBaoDevServer) -> None:
    path = secret_path("shortcut")
    async with adapter(openbao) as vault:
        version = await vault.write_secret(path, {"k": "v"}, cas=0)
        secret = await vault.read_secret(path)
        via_group = await vault.kv.read(path)

    assert version == 1
    assert secret == via_group


# -- KV version 1 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def kv1_mount(openbao: OpenBaoDevServer) -> Iterator[str]:
    with mounted(openbao, "kv", options={"version": "1"}) as mount:
        yield mount


async def test_kv1_round_trip(openbao: OpenBaoDevServer, kv1_mount: str) -> None:
    path = secret_path("kv1")
    folder = path.rsplit("/", 1)[0]
    async with adapter(openbao) as vault:
        await vault.kv1.write(
            path, {"x": "1", "y": "2", "ttl": "1h"}, mount_point=kv1_mount
        )
        first = await vault.kv1.read(path, mount_point=kv1_mount)
        # A write replaces the whole secret and keeps no history.
        await vault.kv1.write(path, {"x": "replaced-value"}, mount_point=kv1_mount)
        second = await vault.kv1.read(path, mount_point=kv1_mount)
        keys = await vault.kv1.list(folder, mount_point=kv1_mount)
        empty = await vault.kv1.list(f"{folder}/missing", mount_point=kv1_mount)
        await vault.kv1.delete(path, mount_point=kv1_mount)
        await vault.kv1.delete(path, mount_point=kv1_mount)
        with pytest.raises(NotFound) as missing:
            await vault.kv1.read(path, mount_point=kv1_mount)

    assert isinstance(first, KV1Secret)
    assert first.data == {"x": "1", "y": "2", "ttl": "1h"}
    assert first.lease_duration == 3600
    assert second.data == {"x": "replaced-value"}
    assert keys == ["secret"]
    assert empty == []
    assert not isinstance(missing.value, SecretDeleted)
    assert "replaced-value" not in repr(second)


async def test_kv1_and_kv2_differ(openbao: OpenBaoDevServer, kv1_mount: str) -> None:
    path = secret_path("versions-differ")
    async with adapter(openbao) as vault:
        await vault.kv1.write(path, {"k": "v"}, mount_point=kv1_mount)
        # KV version 2 routes (data/, metadata/) do not exist on a v1 mount.
        with pytest.raises(NotFound):
            await vault.kv.read(path, mount_point=kv1_mount)
        await vault.kv.write(path, {"k": "v"})
        second = await vault.kv.write(path, {"k": "v"})
        plain = await vault.kv1.read(path, mount_point=kv1_mount)

    assert second.version == 2
    assert plain.data == {"k": "v"}
    # A secret without a ttl key gets the mount's default TTL as its hint.
    assert plain.lease_duration is not None


# -- namespaces -------------------------------------------------------------


@pytest.fixture(scope="module")
def namespaces(openbao: OpenBaoDevServer) -> Iterator[tuple[str, str]]:
    """
    Two namespaces, each with a KV version 2 engine at ``secret``.
    """
    names = (unique("team-a"), unique("team-b"))
    for name in names:
        admin(openbao, "POST", f"sys/namespaces/{name}", {})
        body = {"type": "kv", "options": {"version": "2"}}
        admin(openbao, "POST", "sys/mounts/secret", body, namespace=name)
    try:
        yield names
    finally:
        for name in names:
            admin(openbao, "DELETE", "sys/mounts/secret", namespace=name)
            admin(openbao, "DELETE", f"sys/namespaces/{name}")


async def test_namespace_from_config(
    openbao: OpenBaoDevServer, namespaces: tuple[str, str]
) -> None:
    team_a, _ = namespaces
    path = secret_path("namespace")
    async with adapter(openbao, namespace=team_a) as vault:
        await vault.kv.write(path, {"team": "a"})
        inside = await vault.kv.read(path)
    async with adapter(openbao) as root:
        with pytest.raises(NotFound):
            await root.kv.read(path)

    assert inside.data == {"team": "a"}


async def test_namespace_per_call(
    openbao: OpenBaoDevServer, namespaces: tuple[str, str]
) -> None:
    team_a, team_b = namespaces
    path = secret_path("per-call")
    async with adapter(openbao, namespace=team_a) as vault:
        await vault.kv.write(path, {"where": "a"})
        await vault.kv.write(path, {"where": "b"}, namespace=team_b)
        await vault.kv.write(path, {"where": "root"}, namespace="")
        in_a = await vault.kv.read(path)
        in_b = await vault.kv.read(path, namespace=team_b)
        in_root = await vault.kv.read(path, namespace="")
        # The override lasts for one call only.
        in_a_again = await vault.kv.read(path)
        listed = await vault.list(
            f"secret/metadata/{path.rsplit('/', 1)[0]}", namespace=team_b
        )

    assert in_a.data == {"where": "a"}
    assert in_b.data == {"where": "b"}
    assert in_root.data == {"where": "root"}
    assert in_a_again.data == {"where": "a"}
    assert listed == ["secret"]


# -- any path -------------------------------------------------------------------


async def test_generic_operations(openbao: OpenBaoDevServer) -> None:
    path = secret_path("generic")
    async with adapter(openbao) as vault:
        mounts = await vault.read("sys/mounts")
        written = await vault.write(
            f"secret/data/{path}", {"data": {"k": "v"}}, replay="non_idempotent"
        )
        read = await vault.read(f"secret/data/{path}", params={"version": 1})
        keys = await vault.list(f"secret/metadata/{path.rsplit('/', 1)[0]}")
        deleted = await vault.delete(f"secret/metadata/{path}", replay="idempotent")
        with pytest.raises(NotFound):
            await vault.read(f"secret/data/{path}")

    assert mounts.data is not None
    assert "secret/" in mounts.data
    assert written.data is not None
    assert written.data["version"] == 1
    assert read.data is not None
    assert read.data["data"] == {"k": "v"}
    assert read.request_id is not None
    assert keys == ["secret"]
    assert deleted.data is None
    assert "'v'" not in repr(read)


async def test_generic_auth_hidden_from_repr(openbao: OpenBaoDevServer) -> None:
    async with adapter(openbao) as vault:
        created = await vault.write(
            "auth/token/create",
            {"ttl": "1m", "policies": ["default"]},
            replay="non_idempotent",
        )
        assert created.auth is not None
        token = created.auth["client_token"]
        await vault.write("auth/token/revoke", {"token": token}, replay="idempotent")

    assert token not in repr(created)


async def test_generic_replay_checked(openbao: OpenBaoDevServer) -> None:
    async with adapter(openbao) as vault:
        with pytest.raises(ValueError, match="replay='sometimes' is invalid"):
            await vault.write("secret/data/x", {}, replay="sometimes")  # type: ignore[arg-type]


async def test_warnings_surfaced_and_logged(
    openbao: OpenBaoDevServer, caplog: pytest.LogCaptureFixture
) -> None:
    path = secret_path("warnings")
    # A new option name per run, because a repeated warning is logged once.
    option = f"unknown_{uuid.uuid4().hex[:8]}"
    body = {"data": {"k": "hidden-value"}, option: True}
    caplog.set_level(logging.WARNING, logger="buttress.vault")
    async with adapter(openbao) as vault:
        written = await vault.write(
            f"secret/data/{path}", body, replay="non_idempotent"
        )
        again = await vault.write(f"secret/data/{path}", body, replay="non_idempotent")

    assert any(option in warning for warning in written.warnings)
    assert again.warnings == written.warnings
    logged = [record.getMessage() for record in caplog.records]
    assert sum(option in message for message in logged) == 1
    assert all(path not in message for message in logged)
    assert all("hidden-value" not in message for message in logged)


# -- PATCH fallback ---------------------------------------------------------


@pytest.fixture
def proxy(openbao: OpenBaoDevServer) -> Iterator[ScriptedProxy]:
    server = ScriptedProxy(openbao.address)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_kv_patch_falls_back_without_patch(
    openbao: OpenBaoDevServer, proxy: ScriptedProxy
) -> None:
    path = secret_path("patch-405")
    config = settings(proxy.address, openbao.root_token)
    async with VaultAdapter(config, clock=FakeClock()) as vault:
        await vault.kv.write(path, {"a": 1, "b": 2})
        proxy.script(vault_errors(405, "unsupported operation"))
        patched = await vault.kv.patch(path, {"b": None, "c": 3})
        current = await vault.kv.read(path)

    assert patched.version == 2
    assert current.data == {"a": 1, "c": 3}
    # The write, the refused PATCH, the read and check-and-set write of
    # the fallback, and the final read.
    assert proxy.methods() == ["POST", "PATCH", "GET", "POST", "GET"]


# -- the operation table ----------------------------------------------------


def test_replay_classes_of_unsafe_operations() -> None:
    assert replay_class("database.generate_credentials") == "non_idempotent"
    assert replay_class("pki.issue") == "non_idempotent"
    assert replay_class("kv.delete") == "non_idempotent"
    assert replay_class("kv.write") == "non_idempotent"
    assert replay_class("kv.write", cas=True) == "idempotent_with_cas"
    assert replay_class("kv.patch", cas=True) == "idempotent_with_cas"
    assert replay_class("kv.read", cas=True) == "safe"
    assert replay_class("lease.revoke") == "idempotent"


def test_every_operation_has_replay_class() -> None:
    vault = VaultAdapter()
    groups = {
        "kv": vault.kv,
        "kv1": vault.kv1,
        "transit": vault.transit,
        "database": vault.database,
        "pki": vault.pki,
        "token": vault.token,
        "lease": vault.lease,
    }
    for prefix, group in groups.items():
        for name, _ in inspect.getmembers(group, inspect.iscoroutinefunction):
            if not name.startswith("_"):
                assert replay_class(f"{prefix}.{name}") in (
                    "safe",
                    "idempotent",
                    "idempotent_with_cas",
                    "non_idempotent",
                    "never_retry",
                )


def test_sync_groups_mirror_async() -> None:
    vault = VaultAdapter()
    sync = SyncVaultAdapter()
    for group in ("kv", "kv1", "transit", "database", "pki", "token", "lease"):
        async_group = getattr(vault, group)
        sync_group = getattr(sync, group)
        names = {
            name
            for name, _ in inspect.getmembers(async_group, inspect.iscoroutinefunction)
            if not name.startswith("_")
        }
        for name in names:
            async_signature = inspect.signature(getattr(async_group, name))
            sync_signature = inspect.signature(getattr(sync_group, name))
            assert sync_signature == async_signature, f"{group}.{name}"
    for name in (
        "read_secret",
        "write_secret",
        "list_secrets",
        "delete_secret",
        "read",
        "write",
        "list",
        "delete",
    ):
        assert inspect.signature(getattr(sync, name)) == inspect.signature(
            getattr(vault, name)
        ), name


async def test_arguments_checked_before_sending() -> None:
    # The adapter is not even initialized: the checks run first.
    vault = VaultAdapter()
    with pytest.raises(ValueError, match="cas=-1 is out of range"):
        await vault.kv.write("app", {}, cas=-1)
    with pytest.raises(ValueError, match="versions is empty"):
        await vault.kv.destroy_versions("app", [])
    with pytest.raises(TypeError, match="namespace=5 is invalid"):
        await vault.kv.read("app", namespace=5)  # type: ignore[arg-type]


def test_secret_value_not_in_argument_errors() -> None:
    value = f"secret-{uuid.uuid4().hex}"
    with pytest.raises(TypeError) as wrong:
        SyncVaultAdapter().kv.write("app", [("k", value)])  # type: ignore[arg-type]

    assert value not in str(wrong.value)
