"""
Tests of `VaultAdapter.health_check`: how each ``sys/health`` response is
read, the clock skew and latency fields, and the separate ``ready`` and
``live`` verdicts.

Responses that OpenBao's dev server cannot be made to send (standby,
performance standby, DR secondary, uninitialized, removed, unknown codes,
bodies that are empty or not JSON) come from a local HTTP server on
127.0.0.1. The sealed and rate-limited cases run against the real OpenBao
dev server, which they restore in ``finally``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from _vault_admin import admin, mounted
from _vault_fake_server import FakeVault, Reply, silent_server
from buttress import Event, RetryScheduled
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import RateLimited, VaultAdapter, VaultAdapterError

pytestmark = pytest.mark.anyio

HEALTH_PATH = "/v1/sys/health"


def settings(url: str, token: str = "unused-token", **overrides: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "url": url,
        "token": token,
        "timeout_seconds": 5.0,
        "max_concurrent_operations": 2,
        "max_queue_size_multiplier": 1,
        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.01},
    }
    mapping.update(overrides)
    return mapping


def health_body(**fields: Any) -> dict[str, Any]:
    """
    Return a sys/health body of an unsealed active OpenBao node, with
    *fields* replaced or added.
    """
    body: dict[str, Any] = {
        "initialized": True,
        "sealed": False,
        "standby": False,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": int(time.time()),
        "version": "2.7.2",
        "cluster_name": "vault-cluster-test",
        "cluster_id": "8f7c1a2e-0000-4000-8000-000000000001",
    }
    body.update(fields)
    return body


async def check_fake(reply: Reply, **overrides: Any) -> dict[str, Any]:
    """
    Run one health check against a local server that sends *reply* for
    sys/health.
    """
    with FakeVault() as fake:
        fake.routes[HEALTH_PATH] = reply
        async with VaultAdapter(settings(fake.url, **overrides)) as vault:
            return await vault.health_check()


# -- every sys/health status ------------------------------------------------

# Status, body fields, expected role, and why the adapter is not ready
# (an empty list when it is).
SERVER_ROLES = [
    pytest.param(200, {}, "active", [], id="200-active"),
    pytest.param(429, {"standby": True}, "standby", [], id="429-standby"),
    pytest.param(
        472,
        {"replication_dr_mode": "secondary"},
        "dr_secondary",
        ["server_dr_secondary"],
        id="472-dr-secondary",
    ),
    pytest.param(
        473,
        {"standby": True, "performance_standby": True},
        "performance_standby",
        [],
        id="473-performance-standby",
    ),
    pytest.param(
        474,
        {"standby": True},
        "standby_disconnected",
        ["server_standby_disconnected"],
        id="474-standby-disconnected",
    ),
    pytest.param(
        501,
        {"initialized": False, "sealed": True, "standby": True},
        "uninitialized",
        ["server_not_initialized"],
        id="501-uninitialized",
    ),
    pytest.param(
        503,
        {"sealed": True, "standby": True, "cluster_name": None, "cluster_id": None},
        "sealed",
        ["server_sealed"],
        id="503-sealed",
    ),
    pytest.param(
        530,
        {"removed_from_cluster": True},
        "removed",
        ["server_removed"],
        id="530-removed",
    ),
    # A code that no Vault sends by default, such as one set with
    # activecode or standbycode: the body decides the role.
    pytest.param(299, {}, "active", [], id="299-active-body"),
    pytest.param(418, {"standby": True}, "standby", [], id="418-standby-body"),
    pytest.param(
        599,
        {"sealed": True},
        "sealed",
        ["server_sealed"],
        id="599-sealed-body",
    ),
    pytest.param(
        299,
        {"initialized": False},
        "uninitialized",
        ["server_not_initialized"],
        id="299-uninitialized-body",
    ),
]


@pytest.mark.parametrize(("status", "fields", "role", "reasons"), SERVER_ROLES)
async def test_health_status_sets_role(
    status: int, fields: dict[str, Any], role: str, reasons: list[str]
) -> None:
    body = health_body(**fields)
    health = await check_fake(Reply(status, body))

    assert health["server_reachable"] is True
    assert health["server_status"] == status
    assert health["server_role"] == role
    assert health["server_initialized"] is body["initialized"]
    assert health["sealed"] is body["sealed"]
    assert health["standby"] is body["standby"]
    assert health["performance_standby"] is body.get("performance_standby")
    assert health["replication_dr_mode"] == body["replication_dr_mode"]
    assert health["version"] == "2.7.2"
    assert health["cluster_name"] == body["cluster_name"]
    assert health["reasons"] == reasons
    assert health["ready"] is (not reasons)
    assert health["healthy"] is health["ready"]
    # The server's state never makes the adapter itself not live.
    assert health["live"] is True
    assert health["liveness_reasons"] == []
    assert health["error"] is None


# Bodies that are not a Vault health body: a proxy or load balancer
# responded, or the response lost its body.
NOT_HEALTH_BODIES = [
    pytest.param(Reply(200, b""), id="200-empty"),
    pytest.param(Reply(503, b""), id="503-empty"),
    pytest.param(Reply(502, "<html><body>Bad gateway</body></html>"), id="502-html"),
    pytest.param(Reply(200, "<html>login page</html>"), id="200-html"),
    pytest.param(Reply(200, b"\xff\xfe not utf-8"), id="200-binary"),
    pytest.param(Reply(200, b"[1, 2]"), id="200-json-list"),
    pytest.param(Reply(503, {"errors": ["no healthy upstream"]}), id="503-errors-only"),
    pytest.param(Reply(200, {"initialized": "true"}), id="200-initialized-string"),
]


@pytest.mark.parametrize("reply", NOT_HEALTH_BODIES)
async def test_health_without_health_body(reply: Reply) -> None:
    health = await check_fake(reply)

    assert health["server_reachable"] is False
    assert health["server_role"] == "unreachable"
    assert health["server_status"] == reply.status
    assert health["server_initialized"] is None
    assert health["sealed"] is None
    assert health["version"] is None
    assert health["clock_skew_seconds"] is None
    assert health["latency_seconds"] is not None
    assert health["reasons"] == ["server_unreachable"]
    assert health["ready"] is False
    assert health["live"] is True
    assert f"HTTP {reply.status} without a Vault health body" in health["error"]


async def test_health_field_types_checked() -> None:
    body = health_body(
        sealed="false",
        standby=1,
        version=2.7,
        server_time_utc=True,
        cluster_name=["a"],
        last_wal=12,
        license={"state": "autoloaded"},
    )
    health = await check_fake(Reply(200, body))

    # A field of the wrong type reads as unknown rather than as a guess.
    assert health["sealed"] is None
    assert health["standby"] is None
    assert health["version"] is None
    assert health["server_time_utc"] is None
    assert health["clock_skew_seconds"] is None
    assert health["cluster_name"] is None
    assert health["server_extra"] == {
        "last_wal": 12,
        "license": {"state": "autoloaded"},
    }
    assert health["server_role"] == "active"
    assert health["ready"] is True


async def test_health_probe_sends_no_token() -> None:
    token = f"token-{uuid.uuid4().hex}"
    with FakeVault() as fake:
        fake.routes[HEALTH_PATH] = Reply(200, health_body())
        config = settings(fake.url, token, namespace="team-a")
        async with VaultAdapter(config) as vault:
            await vault.health_check()
            await vault.health_check()

    assert len(fake.received) == 2
    for request in fake.received:
        assert request.method == "GET"
        assert request.path == HEALTH_PATH
        assert "X-Vault-Token" not in request.headers
        assert "X-Vault-Namespace" not in request.headers
        assert token.encode() not in request.body


async def test_deep_check_looks_token_up() -> None:
    token = f"token-{uuid.uuid4().hex}"
    lookup = {"data": {"ttl": 300, "num_uses": 0, "renewable": True, "type": "service"}}
    with FakeVault() as fake:
        fake.routes[HEALTH_PATH] = Reply(200, health_body())
        fake.routes["/v1/auth/token/lookup-self"] = Reply(200, lookup)
        async with VaultAdapter(settings(fake.url, token)) as vault:
            health = await vault.health_check(deep=True)

    looked_up = [r for r in fake.received if r.path == "/v1/auth/token/lookup-self"]
    assert len(looked_up) == 1
    assert looked_up[0].headers["X-Vault-Token"] == token
    assert health["token_checked"] is True
    assert health["token_valid"] is True
    assert health["token_ttl_remaining_seconds"] == 300
    assert health["token_renewable"] is True
    assert health["token_type"] == "service"
    assert health["ready"] is True
    assert token not in str(health)


async def test_deep_check_skipped_while_sealed() -> None:
    body = health_body(sealed=True, standby=True)
    with FakeVault() as fake:
        fake.routes[HEALTH_PATH] = Reply(503, body)
        async with VaultAdapter(settings(fake.url)) as vault:
            health = await vault.health_check(deep=True)

    # A sealed server rejects every lookup, so none is sent.
    assert [request.path for request in fake.received] == [HEALTH_PATH]
    assert health["token_checked"] is False
    assert health["token_valid"] is None
    assert health["reasons"] == ["server_sealed"]


# -- clock skew and latency -------------------------------------------------


@pytest.mark.parametrize("offset", [3600, -120, 0])
async def test_health_clock_skew(offset: int) -> None:
    body = health_body(server_time_utc=int(time.time()) + offset)
    health = await check_fake(Reply(200, body))

    # The server sends whole seconds, and the probe takes some time, so the
    # estimate is good to about a second.
    assert health["server_time_utc"] == body["server_time_utc"]
    assert offset - 1.5 <= health["clock_skew_seconds"] <= offset + 1.5


async def test_health_without_server_time() -> None:
    body = health_body()
    del body["server_time_utc"]
    health = await check_fake(Reply(200, body))

    assert health["server_time_utc"] is None
    assert health["clock_skew_seconds"] is None
    assert health["ready"] is True


@contextlib.contextmanager
def delayed_health_server(delay: float, body: dict[str, Any]) -> Iterator[str]:
    """
    Yield the URL of a local server that returns *body* for sys/health
    after *delay* seconds.
    """
    content = json.dumps(body).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_health_latency_measured() -> None:
    delay = 0.2
    with delayed_health_server(delay, health_body()) as url:
        async with VaultAdapter(settings(url)) as vault:
            started = time.monotonic()
            health = await vault.health_check()
            took = time.monotonic() - started

    assert delay <= health["latency_seconds"] <= took
    assert health["ready"] is True


async def test_health_probe_time_capped() -> None:
    # The probe waits at most timeout_seconds for a server that never
    # responds, and reports the timeout rather than raising it.
    with silent_server() as url:
        async with VaultAdapter(settings(url, timeout_seconds=0.3)) as vault:
            health = await vault.health_check()

    assert health["server_reachable"] is False
    assert health["server_status"] is None
    assert health["latency_seconds"] is None
    assert health["reasons"] == ["server_unreachable"]
    assert health["live"] is True
    assert "0.3" in health["error"] or "timed out" in health["error"]


# -- the real server ---------------------------------------------------------


async def test_health_real_server_fields(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao.address, openbao.root_token)) as vault:
        health = await vault.health_check()

    assert health["server_status"] == 200
    assert health["server_role"] == "active"
    assert health["version"].startswith("2.")
    assert health["cluster_name"]
    assert health["cluster_id"]
    assert isinstance(health["server_time_utc"], int)
    # Server and tests share this host's clock.
    assert abs(health["clock_skew_seconds"]) <= 2.0
    assert health["latency_seconds"] > 0
    assert health["throttled_for_seconds"] == 0.0
    assert health["rate_limit"] is None
    assert health["ready"] is True
    assert health["live"] is True


async def test_health_sealed_then_unsealed(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao.address, openbao.root_token)) as vault:
        openbao.seal()
        try:
            sealed = await vault.health_check(deep=True)
        finally:
            openbao.unseal()
        unsealed = await vault.health_check(deep=True)

    assert sealed["server_status"] == 503
    assert sealed["server_role"] == "sealed"
    assert sealed["sealed"] is True
    assert sealed["standby"] is True
    assert sealed["server_initialized"] is True
    assert sealed["version"] is not None
    # OpenBao leaves the cluster fields out while sealed.
    assert sealed["cluster_name"] is None
    assert sealed["cluster_id"] is None
    assert sealed["token_checked"] is False
    assert sealed["reasons"] == ["server_sealed"]
    assert sealed["ready"] is False
    assert sealed["live"] is True
    assert unsealed["server_role"] == "active"
    assert unsealed["token_valid"] is True
    assert unsealed["ready"] is True


# -- ready and live ------------------------------------------------------------


async def test_breaker_open_is_live_not_ready(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao.address, openbao.root_token)) as vault:
        breaker = vault.breaker
        assert breaker is not None
        breaker.force_open()
        health = await vault.health_check()

    assert health["server_reachable"] is True
    assert health["reasons"] == ["circuit_breaker_open"]
    assert health["ready"] is False
    assert health["live"] is True
    assert health["liveness_reasons"] == []


async def test_full_pool_then_stalled() -> None:
    clock = FakeClock()
    timeout = 5.0
    # A socket that accepts connections and never responds keeps the
    # workers busy.
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    config = settings(
        f"http://127.0.0.1:{listener.getsockname()[1]}",
        timeout_seconds=timeout,
        max_concurrent_operations=1,
        max_queue_size_multiplier=1,
    )
    try:
        async with VaultAdapter(config, clock=clock) as vault:

            async def read_and_ignore() -> None:
                with contextlib.suppress(VaultAdapterError):
                    await vault.read_secret("app/db")

            async with anyio.create_task_group() as readers:
                # One read occupies the only worker and one waits in the queue.
                for _ in range(2):
                    readers.start_soon(read_and_ignore)
                with anyio.fail_after(5):
                    while vault.executor.statistics().queued < 1:
                        await anyio.sleep(0.01)
                full = await vault.health_check()
                clock.advance(2 * timeout + 1)
                stalled = await vault.health_check()
                # Closing the listener resets the hung connection, so the
                # reads fail at once and the adapter closes without waiting.
                listener.close()
    finally:
        listener.close()

    assert full["thread_pool_saturated"] is True
    assert full["reasons"] == ["thread_pool_saturated"]
    assert full["ready"] is False
    assert full["live"] is True
    assert "not probed" in full["error"]
    # All workers busy with none finishing for over twice timeout_seconds.
    assert stalled["liveness_reasons"] == ["thread_pool_stalled"]
    assert stalled["live"] is False
    assert stalled["ready"] is False
    assert stalled["thread_pool_stalled_seconds"] > 2 * timeout


async def test_closed_adapter_not_live(openbao: OpenBaoDevServer) -> None:
    vault = VaultAdapter(settings(openbao.address, openbao.root_token))
    before = await vault.health_check()
    await vault.initialize()
    running = await vault.health_check()
    await vault.aclose()
    after = await vault.health_check()

    assert before["live"] is False
    assert before["liveness_reasons"] == ["adapter_not_initialized"]
    assert running["live"] is True
    assert running["ready"] is True
    assert after["live"] is False
    assert after["ready"] is False
    assert after["liveness_reasons"] == ["adapter_closed"]
    assert after["server_reachable"] is False
    # The closed adapter sends nothing, so no probe result is reported.
    assert after["server_status"] is None


# -- HTTP 429 without Retry-After ---------------------------------------------


async def test_quota_without_retry_after(openbao: OpenBaoDevServer) -> None:
    clock = FakeClock()
    events: list[Event] = []
    with mounted(openbao, "kv", options={"version": "2"}) as mount:
        quota = f"sys/quotas/rate-limit/{mount}"
        # Response headers are off by default, so the 429 has no
        # Retry-After. One request per minute lets only the write through.
        admin(
            openbao,
            "POST",
            quota,
            {"path": f"{mount}/", "rate": 1, "interval": "60s"},
        )
        try:
            config = settings(
                openbao.address,
                openbao.root_token,
                retry={
                    "max_attempts": 3,
                    "initial_backoff_seconds": 0.5,
                    "max_backoff_seconds": 4.0,
                },
            )
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
        finally:
            admin(openbao, "DELETE", quota)

    scheduled = [event for event in events if isinstance(event, RetryScheduled)]
    assert limited.value.status == 429
    assert limited.value.retry_after is None
    assert limited.value.outcome == "not_executed"
    assert "no Retry-After header" in str(limited.value)
    # Without a server hint the adapter falls back to its own backoff.
    assert len(scheduled) == 2
    assert [event.reason for event in scheduled] == ["error", "error"]
    assert all(0 < event.delay <= 4.0 for event in scheduled)
    assert stats.failures == 0
    assert stats.consecutive_failures == 0
    # sys/health is exempt from rate-limit quotas.
    assert health["ready"] is True
