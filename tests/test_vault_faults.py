"""
Tests of `buttress.vault.VaultAdapter` on failures that OpenBao does not
produce on demand: server errors, proxy pages, lost responses and
``Retry-After`` dates. A scripted HTTP proxy on 127.0.0.1 sits between
the adapter and the real OpenBao dev server and replaces chosen responses.

The retry policy runs on a `FakeClock`, so backoff costs no real time.
"""

from __future__ import annotations

import email.utils
import time
import uuid
from collections.abc import Iterator

import attrs
import pytest

from _scripted_proxy import DROP, ScriptedProxy, html_page, vault_errors
from buttress import Event, RetryScheduled
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import (
    RateLimited,
    VaultAdapter,
    VaultServerError,
    VaultUnavailable,
)

pytestmark = pytest.mark.anyio


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
    proxy: ScriptedProxy,
    openbao: OpenBaoDevServer,
    events: list[Event],
    clock: FakeClock | None = None,
) -> VaultAdapter:
    config = {
        "url": proxy.address,
        "token": openbao.root_token,
        "timeout_seconds": 10.0,
        "circuit_breaker_failure_threshold": 10,
        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.05},
    }
    return VaultAdapter(config, clock=clock or FakeClock(), listeners=[events.append])


def retry_count(events: list[Event]) -> int:
    return sum(isinstance(event, RetryScheduled) for event in events)


async def test_server_error_retried_for_read(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    path = unique_path("read-500")
    events: list[Event] = []
    async with adapter(proxy, openbao, events) as vault:
        await vault.write_secret(path, {"k": "v"})
        proxy.script(vault_errors(500, "internal error"))
        secret = await vault.read_secret(path)

    assert secret.data == {"k": "v"}
    assert proxy.methods() == ["POST", "GET", "GET"]
    assert retry_count(events) == 1


async def test_plain_write_500_not_retried(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    events: list[Event] = []
    proxy.script(vault_errors(500, "internal error"))
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(VaultServerError) as failed:
            await vault.write_secret(unique_path("write-500"), {"k": "v"})

    assert failed.value.status == 500
    assert failed.value.outcome == "unknown"
    assert failed.value.retryable is False
    assert failed.value.errors == ("internal error",)
    assert proxy.methods() == ["POST"]
    assert retry_count(events) == 0


async def test_plain_write_lost_response_not_retried(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    path = unique_path("write-lost")
    events: list[Event] = []
    proxy.script(DROP)
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(VaultUnavailable) as lost:
            await vault.write_secret(path, {"k": "v"})
        stored = await vault.read_secret(path)

    assert lost.value.outcome == "unknown"
    assert lost.value.retryable is False
    assert lost.value.status is None
    assert retry_count(events) == 0
    # The write took effect once; a blind retry would have added version 2.
    assert stored.version == 1
    assert proxy.methods() == ["POST", "GET"]


async def test_lost_response_cas_write_reconciled(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    path = unique_path("cas-lost")
    events: list[Event] = []
    async with adapter(proxy, openbao, events) as vault:
        first = await vault.write_secret(path, {"n": 1}, cas=0)
        proxy.script(DROP)
        second = await vault.write_secret(path, {"n": 2}, cas=first)
        stored = await vault.read_secret(path)

    assert second == first + 1
    assert stored.version == second
    assert stored.data == {"n": 2}
    # The lost write, its retry (a check-and-set conflict), the read that
    # recognized the earlier success, and the final read.
    assert proxy.methods() == ["POST", "POST", "POST", "GET", "GET"]
    assert retry_count(events) == 1


async def test_lost_response_retried_for_read(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    path = unique_path("read-lost")
    events: list[Event] = []
    async with adapter(proxy, openbao, events) as vault:
        await vault.write_secret(path, {"k": "v"})
        proxy.script(DROP)
        secret = await vault.read_secret(path)

    assert secret.data == {"k": "v"}
    assert retry_count(events) == 1


async def test_proxy_page_is_unavailable(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    path = unique_path("bad-gateway")
    events: list[Event] = []
    async with adapter(proxy, openbao, events) as vault:
        await vault.write_secret(path, {"k": "v"})
        proxy.script(html_page(502))
        secret = await vault.read_secret(path)
        proxy.script(html_page(504))
        with pytest.raises(VaultUnavailable) as gateway:
            await vault.delete_secret(path)

    assert secret.data == {"k": "v"}
    assert gateway.value.status == 504
    assert gateway.value.outcome == "unknown"
    assert gateway.value.retryable is False
    assert retry_count(events) == 1


async def test_upstream_error_with_vault_body(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    events: list[Event] = []
    proxy.script(*[vault_errors(502, "upstream failed")] * 3)
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(VaultServerError) as upstream:
            await vault.read_secret(unique_path("upstream"))

    assert upstream.value.status == 502
    assert upstream.value.outcome == "unknown"
    assert upstream.value.retryable is True
    assert retry_count(events) == 2


async def test_plain_write_503_page_retried(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    events: list[Event] = []
    proxy.script(html_page(503))
    async with adapter(proxy, openbao, events) as vault:
        version = await vault.write_secret(unique_path("write-503"), {"k": "v"})

    # A 503 means the request was not processed, so even a write is retried.
    assert version == 1
    assert proxy.methods() == ["POST", "POST"]
    assert retry_count(events) == 1


async def test_success_status_without_json(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    events: list[Event] = []
    proxy.script(*[html_page(200)] * 3)
    async with adapter(proxy, openbao, events) as vault:
        with pytest.raises(VaultUnavailable) as odd:
            await vault.read_secret(unique_path("html-200"))

    assert odd.value.status == 200
    assert odd.value.outcome == "unknown"
    assert "something other than Vault responded" in str(odd.value)
    assert retry_count(events) == 2


async def test_retry_after_as_http_date(
    proxy: ScriptedProxy, openbao: OpenBaoDevServer
) -> None:
    path = unique_path("retry-date")
    events: list[Event] = []
    clock = FakeClock()
    retry_at = email.utils.formatdate(time.time() + 3, usegmt=True)
    limited = vault_errors(429, "rate limit quota exceeded")
    limited = attrs.evolve(
        limited, headers={**limited.headers, "Retry-After": retry_at}
    )
    async with adapter(proxy, openbao, events, clock) as vault:
        await vault.write_secret(path, {"k": "v"})
        proxy.script(*[limited] * 3)
        with pytest.raises(RateLimited) as rejected:
            await vault.read_secret(path)

    assert rejected.value.retry_after is not None
    assert 1.0 <= rejected.value.retry_after <= 3.0
    assert len(clock.sleeps) == 2
    assert all(1.0 <= delay <= 3.0 for delay in clock.sleeps)
