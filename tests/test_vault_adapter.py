"""
Tests of `buttress.vault.VaultAdapter` against a real OpenBao dev server:
KV version 2 round trips, error translation, retries, the circuit breaker
on a sealed and a frozen server, health checks, rate limiting and the
adapter's lifecycle.

Each test uses its own secret paths, so tests do not depend on each other.
A test that seals or freezes the shared server restores it in ``finally``.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import Any

import anyio
import pytest
import requests

from buttress import (
    CircuitOpen,
    CircuitState,
    DeadlineExceeded,
    Event,
    RetryGaveUp,
    RetryScheduled,
)
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import (
    CasConflict,
    KVSecret,
    NotFound,
    PermissionDenied,
    RateLimited,
    SecretDeleted,
    VaultAdapter,
    VaultConfig,
    VaultSealed,
    VaultTimeout,
    VaultUnavailable,
)

pytestmark = pytest.mark.anyio


def unique_path(name: str) -> str:
    return f"buttress-tests/{name}-{uuid.uuid4().hex[:10]}/secret"


def settings(openbao: OpenBaoDevServer, **overrides: Any) -> dict[str, Any]:
    """
    Return a runbook mapping for *openbao* with short timeouts and backoff.
    """
    mapping: dict[str, Any] = {
        "url": openbao.address,
        "token": openbao.root_token,
        "timeout_seconds": 5.0,
        "max_concurrent_operations": 4,
        "max_queue_size_multiplier": 2,
        "circuit_breaker_enabled": True,
        "circuit_breaker_failure_threshold": 3,
        "circuit_breaker_reset_timeout_seconds": 30.0,
        "retry": {
            "max_attempts": 3,
            "initial_backoff_seconds": 0.01,
            "max_backoff_seconds": 0.05,
            "exponential_base": 2.0,
        },
    }
    mapping.update(overrides)
    return mapping


def free_port() -> int:
    """
    Return a loopback port that nothing listens on.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def retries(events: list[Event]) -> list[RetryScheduled]:
    return [event for event in events if isinstance(event, RetryScheduled)]


def rendered(exc: BaseException) -> str:
    """
    Return every text a traceback or log line could show for *exc*.
    """
    notes = getattr(exc, "__notes__", [])
    return "\n".join([str(exc), repr(exc), *notes])


def admin(openbao: OpenBaoDevServer, method: str, path: str, **kwargs: Any) -> None:
    """
    Send one administrative request to *openbao* with the root token.
    """
    response = requests.request(
        method,
        f"{openbao.address}/v1/{path}",
        headers={"X-Vault-Token": openbao.root_token},
        timeout=10,
        **kwargs,
    )
    response.raise_for_status()


# -- KV version 2 ---------------------------------------------------------


async def test_round_trip(openbao: OpenBaoDevServer) -> None:
    path = unique_path("round-trip")
    folder = path.rsplit("/", 1)[0]
    async with VaultAdapter(settings(openbao)) as vault:
        first = await vault.write_secret(path, {"user": "app", "password": "pw-1"})
        second = await vault.write_secret(path, {"user": "app", "password": "pw-2"})
        latest = await vault.read_secret(path)
        old = await vault.read_secret(path, version=first)
        keys = await vault.list_secrets(folder)
        await vault.delete_secret(path)
        with pytest.raises(SecretDeleted) as deleted:
            await vault.read_secret(path)

    assert second == first + 1
    assert isinstance(latest, KVSecret)
    assert latest.data == {"user": "app", "password": "pw-2"}
    assert latest.version == second
    assert latest.path == path
    assert latest.mount == "secret"
    assert latest.created_time is not None
    assert old.data["password"] == "pw-1"
    assert keys == ["secret"]
    assert deleted.value.version == second
    assert deleted.value.deletion_time is not None


async def test_read_missing_raises_not_found(openbao: OpenBaoDevServer) -> None:
    events: list[Event] = []
    async with VaultAdapter(settings(openbao), listeners=[events.append]) as vault:
        with pytest.raises(NotFound) as missing:
            await vault.read_secret(unique_path("missing"))

    error = missing.value
    assert not isinstance(error, SecretDeleted)
    assert error.status == 404
    assert error.outcome == "failed"
    assert error.retryable is False
    assert error.operation == "read_secret"
    assert error.mount == "secret"
    assert error.path == "buttress-tests/…"
    assert retries(events) == []


async def test_missing_mount_raises_not_found(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao)) as vault:
        with pytest.raises(NotFound) as missing:
            await vault.read_secret("app/db", mount_point="no-such-mount")

    assert "no-such-mount" in str(missing.value)
    assert "app/db" not in str(missing.value)


async def test_list_missing_folder_is_empty(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao)) as vault:
        keys = await vault.list_secrets(unique_path("empty-folder"))

    assert keys == []


async def test_cas_conflict_is_not_retried(openbao: OpenBaoDevServer) -> None:
    path = unique_path("cas")
    events: list[Event] = []
    async with VaultAdapter(settings(openbao), listeners=[events.append]) as vault:
        created = await vault.write_secret(path, {"n": 1}, cas=0)
        updated = await vault.write_secret(path, {"n": 2}, cas=created)
        with pytest.raises(CasConflict) as conflict:
            await vault.write_secret(path, {"n": 3}, cas=created)
        current = await vault.read_secret(path)

    assert created == 1
    assert updated == 2
    assert conflict.value.status == 400
    assert conflict.value.retryable is False
    assert retries(events) == []
    assert current.data == {"n": 2}


async def test_secret_values_never_rendered(
    openbao: OpenBaoDevServer, caplog: pytest.LogCaptureFixture
) -> None:
    path = unique_path("rendering")
    value = f"value-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG, logger="buttress")
    vault = VaultAdapter(settings(openbao))
    async with vault:
        await vault.write_secret(path, {"password": value})
        secret = await vault.read_secret(path)
        with pytest.raises(NotFound) as missing:
            await vault.read_secret(path + "-missing")
        health = await vault.health_check()
        rendered_texts = [
            repr(vault.config),
            str(vault.config),
            repr(vault),
            repr(secret),
            str(secret),
            rendered(missing.value),
            str(health),
            repr(vault.statistics()),
        ]
    rendered_texts.append(caplog.text)

    for text in rendered_texts:
        assert openbao.root_token not in text
        assert value not in text
        assert path not in text


# -- errors and retries ---------------------------------------------------


async def test_bad_token_is_permission_denied(openbao: OpenBaoDevServer) -> None:
    token = f"not-a-token-{uuid.uuid4().hex}"
    events: list[Event] = []
    config = settings(openbao, token=token)
    async with VaultAdapter(config, listeners=[events.append]) as vault:
        with pytest.raises(PermissionDenied) as denied:
            await vault.read_secret(unique_path("denied"))
        breaker = vault.breaker
        assert breaker is not None
        stats = breaker.statistics()
        health = await vault.health_check(deep=True)

    assert denied.value.status == 403
    assert denied.value.retryable is False
    assert retries(events) == []
    assert stats.failures == 0
    assert stats.consecutive_failures == 0
    assert stats.successes == 1
    assert token not in rendered(denied.value)
    assert health["token_valid"] is False
    assert health["healthy"] is False
    assert "token_invalid" in health["reasons"]
    assert token not in str(health)


async def test_connection_refused_is_unavailable() -> None:
    clock = FakeClock()
    events: list[Event] = []
    mapping = {
        "url": f"http://127.0.0.1:{free_port()}",
        "token": "unused-token",
        "circuit_breaker_failure_threshold": 5,
    }
    async with VaultAdapter(mapping, clock=clock, listeners=[events.append]) as vault:
        with pytest.raises(VaultUnavailable) as refused:
            await vault.read_secret("app/db")
        breaker = vault.breaker
        assert breaker is not None
        stats = breaker.statistics()
        health = await vault.health_check()

    assert refused.value.outcome == "not_executed"
    assert refused.value.retryable is True
    assert refused.value.status is None
    assert "Connection refused" in str(refused.value)
    assert len(retries(events)) == 2
    assert stats.failures == 3
    assert health["server_reachable"] is False
    assert health["server_role"] == "unreachable"
    assert "server_unreachable" in health["reasons"]


async def test_sealed_server_opens_breaker(openbao: OpenBaoDevServer) -> None:
    path = unique_path("sealed")
    clock = FakeClock()
    events: list[Event] = []
    config = settings(openbao, circuit_breaker_failure_threshold=3)
    async with VaultAdapter(config, clock=clock, listeners=[events.append]) as vault:
        breaker = vault.breaker
        assert breaker is not None
        await vault.write_secret(path, {"k": "v"})
        openbao.seal()
        try:
            sealed_health = await vault.health_check()
            with pytest.raises(VaultSealed) as sealed:
                await vault.read_secret(path)
            opened = breaker.statistics()
            with pytest.raises(CircuitOpen):
                await vault.read_secret(path)
            open_health = await vault.health_check()
        finally:
            openbao.unseal()
        clock.advance(config["circuit_breaker_reset_timeout_seconds"])
        recovered = await vault.read_secret(path)
        closed = breaker.statistics()

    assert sealed.value.status == 503
    assert sealed.value.outcome == "not_executed"
    assert sealed.value.retryable is True
    assert len(retries(events)) == 2
    assert opened.state is CircuitState.OPEN
    assert opened.failures == 3
    assert sealed_health["sealed"] is True
    assert sealed_health["server_role"] == "sealed"
    assert sealed_health["server_reachable"] is True
    assert sealed_health["healthy"] is False
    assert "server_sealed" in sealed_health["reasons"]
    assert sealed_health["circuit_breaker_state"] == "closed"
    assert open_health["circuit_breaker_state"] == "open"
    assert open_health["circuit_breaker_open_count"] == 1
    assert "circuit_breaker_open" in open_health["reasons"]
    assert open_health["sealed"] is True
    assert recovered.data == {"k": "v"}
    assert closed.state is CircuitState.CLOSED


async def test_frozen_server_opens_breaker(
    openbao: OpenBaoDevServer,
) -> None:
    path = unique_path("frozen")
    max_workers = 2
    config = settings(
        openbao,
        timeout_seconds=1.0,
        max_concurrent_operations=max_workers,
        max_queue_size_multiplier=1,
        circuit_breaker_failure_threshold=max_workers,
    )
    failures: list[BaseException] = []
    active_seen: list[int] = []
    async with VaultAdapter(config) as vault:
        await vault.write_secret(path, {"k": "v"})

        async def read_and_record() -> None:
            try:
                await vault.read_secret(path)
            except (VaultTimeout, DeadlineExceeded) as exc:
                failures.append(exc)

        async def sample_executor(done: anyio.Event) -> None:
            while not done.is_set():
                active_seen.append(vault.executor.statistics().active)
                await anyio.sleep(0.02)

        openbao.freeze()
        try:
            done = anyio.Event()
            async with anyio.create_task_group() as group:
                group.start_soon(sample_executor, done)
                async with anyio.create_task_group() as readers:
                    for _ in range(max_workers):
                        readers.start_soon(read_and_record)
                done.set()
            started = time.monotonic()
            with pytest.raises(CircuitOpen):
                await vault.read_secret(path)
            rejected_after = time.monotonic() - started
            started = time.monotonic()
            health = await vault.health_check()
            health_took = time.monotonic() - started
            stats = vault.executor.statistics()
        finally:
            openbao.thaw()

    assert len(failures) == max_workers
    assert rejected_after < 0.1
    assert max(active_seen) <= max_workers
    assert stats.peak_active <= max_workers
    assert health_took < 3.0
    assert health["healthy"] is False
    assert health["circuit_breaker_state"] == "open"
    assert health["server_reachable"] is False


async def test_health_check_reports_full_pool(openbao: OpenBaoDevServer) -> None:
    path = unique_path("full-pool")
    config = settings(
        openbao,
        timeout_seconds=1.0,
        max_concurrent_operations=1,
        max_queue_size_multiplier=1,
    )
    async with VaultAdapter(config) as vault:
        await vault.write_secret(path, {"k": "v"})

        async def read_expecting_timeout() -> None:
            with pytest.raises((VaultTimeout, DeadlineExceeded)):
                await vault.read_secret(path)

        openbao.freeze()
        try:
            async with anyio.create_task_group() as readers:
                # One read runs in the only worker and one waits in the queue.
                for _ in range(2):
                    readers.start_soon(read_expecting_timeout)
                with anyio.fail_after(5):
                    while vault.executor.statistics().queued < 1:
                        await anyio.sleep(0.01)
                health = await vault.health_check()
        finally:
            openbao.thaw()

    assert health["thread_pool_saturated"] is True
    assert health["thread_pool_active_workers"] == 1
    assert health["thread_pool_queue_depth"] == 1
    assert health["thread_pool_rejected"] == 1
    assert health["reasons"] == ["thread_pool_saturated"]
    assert health["healthy"] is False
    assert "not probed" in health["error"]


async def test_rate_limited_waits_retry_after(openbao: OpenBaoDevServer) -> None:
    # A mount of its own, so that the quota cannot slow other tests down.
    mount = f"rate-limited-{uuid.uuid4().hex[:8]}"
    quota = f"sys/quotas/rate-limit/{mount}"
    admin(openbao, "POST", f"sys/mounts/{mount}", json={"type": "kv-v2"})
    admin(
        openbao,
        "POST",
        "sys/quotas/config",
        json={"enable_rate_limit_response_headers": True},
    )
    try:
        # One request per second, then every request is rejected for 5 s.
        admin(
            openbao,
            "POST",
            quota,
            json={
                "path": f"{mount}/",
                "rate": 1,
                "interval": "1s",
                "block_interval": "5s",
            },
        )
        clock = FakeClock()
        events: list[Event] = []
        config = settings(openbao, timeout_seconds=30.0)
        async with VaultAdapter(
            config, clock=clock, listeners=[events.append]
        ) as vault:
            await vault.write_secret("app", {"k": "v"}, mount_point=mount)
            with pytest.raises(RateLimited) as limited:
                await vault.read_secret("app", mount_point=mount)
            breaker = vault.breaker
            assert breaker is not None
            stats = breaker.statistics()
            health = await vault.health_check()
        short = settings(openbao, timeout_seconds=1.0)
        short_events: list[Event] = []
        async with VaultAdapter(
            short, clock=FakeClock(), listeners=[short_events.append]
        ) as vault:
            with pytest.raises(RateLimited):
                await vault.read_secret("app", mount_point=mount)
    finally:
        admin(openbao, "DELETE", quota)
        admin(
            openbao,
            "POST",
            "sys/quotas/config",
            json={"enable_rate_limit_response_headers": False},
        )
        admin(openbao, "DELETE", f"sys/mounts/{mount}")

    error = limited.value
    scheduled = retries(events)
    assert error.status == 429
    assert error.outcome == "not_executed"
    assert error.retry_after is not None
    assert 0 < error.retry_after <= 5
    assert len(scheduled) == 2
    assert all(event.reason == "hint" for event in scheduled)
    assert clock.sleeps == [event.delay for event in scheduled]
    assert all(1 <= delay <= 5 for delay in clock.sleeps)
    assert stats.failures == 0
    assert stats.consecutive_failures == 0
    assert stats.state is CircuitState.CLOSED
    # sys/health is exempt from rate-limit quotas.
    assert health["healthy"] is True
    # A wait that would end past the deadline is not started.
    gave_up = [event for event in short_events if isinstance(event, RetryGaveUp)]
    assert retries(short_events) == []
    assert [event.reason for event in gave_up] == ["deadline"]


# -- health ---------------------------------------------------------------


async def test_health_check_healthy(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao)) as vault:
        health = await vault.health_check(deep=True)

    assert health["healthy"] is True
    assert health["reasons"] == []
    assert health["handler_type"] == "buttress.vault"
    assert health["initialized"] is True
    assert health["timeout_seconds"] == 5.0
    assert health["server_reachable"] is True
    assert health["server_role"] == "active"
    assert health["server_initialized"] is True
    assert health["sealed"] is False
    assert isinstance(health["version"], str)
    assert health["token_valid"] is True
    # The dev server's root token never expires, which reads as None.
    assert health["token_ttl_remaining_seconds"] is None
    assert health["circuit_breaker_state"] == "closed"
    assert health["circuit_breaker_failure_count"] == 0
    assert health["thread_pool_max_workers"] == 4
    assert health["thread_pool_queue_capacity"] == 8
    assert health["thread_pool_active_workers"] == 0
    assert health["thread_pool_queue_depth"] == 0
    assert health["thread_pool_rejected"] == 0
    assert health["thread_pool_saturated"] is False
    assert health["last_retry_after_seconds"] is None
    assert health["seconds_since_last_429"] is None
    assert health["error"] is None


async def test_health_check_breaker_forced_open(
    openbao: OpenBaoDevServer,
) -> None:
    async with VaultAdapter(settings(openbao)) as vault:
        breaker = vault.breaker
        assert breaker is not None
        breaker.force_open()
        with pytest.raises(CircuitOpen):
            await vault.read_secret(unique_path("forced-open"))
        health = await vault.health_check(deep=True)

    assert health["server_reachable"] is True
    assert health["token_valid"] is True
    assert health["circuit_breaker_state"] == "forced_open"
    assert health["reasons"] == ["circuit_breaker_open"]
    assert health["healthy"] is False


async def test_health_check_with_token_ttl(openbao: OpenBaoDevServer) -> None:
    response = requests.post(
        f"{openbao.address}/v1/auth/token/create",
        headers={"X-Vault-Token": openbao.root_token},
        json={"ttl": "1h", "policies": ["default"]},
        timeout=10,
    )
    response.raise_for_status()
    token = response.json()["auth"]["client_token"]
    async with VaultAdapter(settings(openbao, token=token)) as vault:
        health = await vault.health_check(deep=True)

    assert health["token_valid"] is True
    assert 3500 <= health["token_ttl_remaining_seconds"] <= 3600


async def test_health_check_breaker_disabled(
    openbao: OpenBaoDevServer,
) -> None:
    config = settings(openbao, circuit_breaker_enabled=False)
    async with VaultAdapter(config) as vault:
        health = await vault.health_check()
        breaker = vault.breaker

    assert breaker is None
    assert health["circuit_breaker_enabled"] is False
    assert health["circuit_breaker_state"] == "disabled"
    assert health["healthy"] is True


# -- configuration and lifecycle --------------------------------------------


async def test_adapter_accepts_runbook_mapping(openbao: OpenBaoDevServer) -> None:
    mapping = settings(openbao, timeout_seconds=7.5)
    async with VaultAdapter(mapping) as vault:
        config = vault.config
        retry = vault.guard.retry
        executor = vault.executor.statistics()

    assert isinstance(config, VaultConfig)
    assert config.timeout_seconds == 7.5
    assert config.retry.max_attempts == 3
    assert vault.guard.timeout == 7.5
    assert retry is not None
    assert retry.attempts == 3
    assert executor.max_workers == 4
    assert executor.queue_capacity == 8


async def test_use_before_initialize_raises(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a config, the adapter reads one from these variables.
    for name in ("BAO_AGENT_ADDR", "VAULT_AGENT_ADDR", "BAO_ADDR", "VAULT_ADDR"):
        monkeypatch.delenv(name, raising=False)
    vault = VaultAdapter()
    health = await vault.health_check()
    with pytest.raises(RuntimeError, match="not initialized"):
        await vault.read_secret("app/db")
    with pytest.raises(RuntimeError, match="has no config"):
        await vault.initialize()

    await vault.initialize(settings(openbao))
    try:
        await vault.initialize()
        with pytest.raises(RuntimeError, match="already initialized"):
            await vault.initialize(settings(openbao, timeout_seconds=9.0))
        assert await vault.list_secrets(unique_path("initialized")) == []
    finally:
        await vault.aclose()

    assert health["initialized"] is False
    assert health["healthy"] is False
    assert health["reasons"] == ["adapter_not_initialized"]


async def test_use_after_close_raises(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao)) as vault:
        pass
    health = await vault.health_check()

    with pytest.raises(RuntimeError, match="closed"):
        await vault.read_secret("app/db")
    with pytest.raises(RuntimeError, match="closed"):
        await vault.initialize()
    assert health["reasons"] == ["adapter_closed"]
    assert vault.executor.statistics().closed is True
