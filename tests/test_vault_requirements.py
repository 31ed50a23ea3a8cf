"""
Tests of the Vault error details and the classification cases that the
other test files leave out: lease-count quotas, unknown mounts and
upstream 502 responses, and the response details and attempt count that
each error carries.

A scripted HTTP proxy on 127.0.0.1 sits between the adapter and the real
OpenBao dev server and replaces chosen responses. The retry policy runs on
a `FakeClock`, so backoff costs no real time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from _scripted_proxy import Reply, ScriptedProxy, html_page, vault_errors
from buttress import Event, RetryScheduled
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import (
    InvalidRequest,
    MountNotFound,
    NotFound,
    QuotaExceeded,
    RateLimited,
    SyncVaultAdapter,
    UpstreamError,
    VaultAdapter,
    VaultSealed,
    VaultServerError,
    VaultUnavailable,
)
from buttress.vault._classify import Operation, VaultClassifier, translate
from buttress.vault._transport import ResponseFailure

pytestmark = pytest.mark.anyio

LEASE_QUOTA_TEXT = 'request path "database/creds/app": lease count quota exceeded'


@pytest.fixture
def proxy(openbao: OpenBaoDevServer) -> Iterator[ScriptedProxy]:
    server = ScriptedProxy(openbao.address)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unique_path(name: str) -> str:
    return f"buttress-tests/{name}-{uuid.uuid4().hex[:10]}"


def adapter(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer, events: list[Event]
) -> VaultAdapter:
    config = {
        "url": proxy.address,
        "token": openbao.root_token,
        "timeout_seconds": 10.0,
        "circuit_breaker_failure_threshold": 10,
        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.05},
    }
    return VaultAdapter(config, clock=FakeClock(), listeners=[events.append])


def retry_count(events: list[Event]) -> int:
    return sum(isinstance(event, RetryScheduled) for event in events)


def json_reply(status: int, body: dict[str, object], **headers: str) -> Reply:
    sent = {"Content-Type": "application/json", **headers}
    return Reply(status, json.dumps(body).encode(), sent)


# -- classification ---------------------------------------------------------


def test_lease_quota_verdict() -> None:
    op = Operation("database.generate_credentials", "database", "app", True, "x")
    error = translate(ResponseFailure(429, errors=(LEASE_QUOTA_TEXT,)), op)
    verdict = VaultClassifier().classify(error) if error is not None else None

    assert type(error) is QuotaExceeded
    assert not isinstance(error, RateLimited)
    assert error.outcome == "not_executed"
    assert error.retryable is False
    assert verdict is not None
    assert verdict.retryable is False
    assert verdict.breaker_failure is None
    assert verdict.retry_after is None


async def test_lease_quota_not_retried(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    events: list[Event] = []
    proxy.script(vault_errors(429, LEASE_QUOTA_TEXT))
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(QuotaExceeded) as rejected:
            await vault.read_secret(unique_path("lease-quota"))
        throttled_for = vault.statistics().throttled_for

    assert rejected.value.status == 429
    assert rejected.value.attempts == 1
    assert proxy.methods() == ["GET"]
    assert retry_count(events) == 0
    # A lease-count quota is no reason to slow down every other caller.
    assert throttled_for == 0.0


async def test_rate_limit_still_retried(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    path = unique_path("rate-limit")
    events: list[Event] = []
    async with adapter(proxy, openbao, events) as vault:
        await vault.write_secret(path, {"k": "v"})
        proxy.script(vault_errors(429, "rate limit quota exceeded"))
        secret = await vault.read_secret(path)

    assert secret.data == {"k": "v"}
    assert retry_count(events) == 1


async def test_unknown_mount_is_mount_not_found(openbao: OpenBaoDevServer) -> None:
    config = {"url": openbao.address, "token": openbao.root_token}
    async with VaultAdapter(config, clock=FakeClock()) as vault:
        with pytest.raises(MountNotFound) as missing:
            await vault.kv.read("app/db", mount_point="no-such-mount")
        with pytest.raises(MountNotFound):
            await vault.kv.list("app", mount_point="no-such-mount")

    assert isinstance(missing.value, NotFound)
    assert missing.value.status == 404
    assert missing.value.retryable is False
    assert missing.value.mount == "no-such-mount"


async def test_missing_secret_not_mount_not_found(openbao: OpenBaoDevServer) -> None:
    config = {"url": openbao.address, "token": openbao.root_token}
    async with VaultAdapter(config, clock=FakeClock()) as vault:
        with pytest.raises(NotFound) as missing:
            await vault.kv.read(unique_path("never-written"))

    assert type(missing.value) is NotFound


async def test_upstream_502_retried_for_read(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    path = unique_path("upstream-read")
    events: list[Event] = []
    async with adapter(proxy, openbao, events) as vault:
        await vault.write_secret(path, {"k": "v"})
        proxy.script(vault_errors(502, "upstream database failed"))
        secret = await vault.read_secret(path)

    assert secret.data == {"k": "v"}
    assert proxy.methods() == ["POST", "GET", "GET"]
    assert retry_count(events) == 1


async def test_upstream_502_write_not_retried(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    events: list[Event] = []
    proxy.script(vault_errors(502, "upstream database failed"))
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(UpstreamError) as failed:
            await vault.write_secret(unique_path("upstream-write"), {"k": "v"})

    assert isinstance(failed.value, VaultServerError)
    assert failed.value.outcome == "unknown"
    assert failed.value.retryable is False
    assert failed.value.from_intermediary is False
    assert proxy.methods() == ["POST"]


# -- what an error carries --------------------------------------------------


async def test_error_carries_response_details(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    reply = json_reply(
        400,
        {
            "errors": ["invalid parameter"],
            "warnings": ["the endpoint is deprecated"],
            "request_id": "8f1c2a9e-0000-4000-8000-000000000001",
        },
        **{"X-Vault-Hostname": "vault-2", "X-Vault-Raft-Node-ID": "node-2"},
    )
    events: list[Event] = []
    proxy.script(reply)
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(InvalidRequest) as rejected:
            await vault.read_secret(unique_path("details"))

    error = rejected.value
    assert error.errors == ("invalid parameter",)
    assert error.warnings == ("the endpoint is deprecated",)
    assert error.request_id == "8f1c2a9e-0000-4000-8000-000000000001"
    assert error.hostname == "vault-2"
    assert error.raft_node_id == "node-2"
    assert error.from_intermediary is False
    assert error.attempts == 1


async def test_proxy_page_flagged_intermediary(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    events: list[Event] = []
    proxy.script(html_page(502))
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(VaultUnavailable) as failed:
            await vault.write_secret(unique_path("proxy-page"), {"k": "v"})

    assert failed.value.status == 502
    assert failed.value.from_intermediary is True
    assert failed.value.warnings == ()
    assert failed.value.request_id is None


async def test_attempts_count_retries(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    sealed = vault_errors(503, "Vault is sealed")
    events: list[Event] = []
    proxy.script(sealed, sealed, sealed)
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(VaultSealed) as failed:
            await vault.read_secret(unique_path("sealed"))

    assert failed.value.attempts == 3
    assert proxy.methods() == ["GET", "GET", "GET"]


def test_sync_attempts_count_retries(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    sealed = vault_errors(503, "Vault is sealed")
    config = {
        "url": proxy.address,
        "token": openbao.root_token,
        "retry": {"max_attempts": 2, "initial_backoff_seconds": 0.01},
    }
    proxy.script(sealed, sealed)
    with SyncVaultAdapter(config) as vault, pytest.raises(VaultSealed) as failed:
        vault.read_secret(unique_path("sync-sealed"))

    assert failed.value.attempts == 2
    assert proxy.methods() == ["GET", "GET"]
