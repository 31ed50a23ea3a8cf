"""
Tests of tokens that stop working on the real OpenBao dev server: a token
whose TTL ran out and a token whose uses are spent. OpenBao rejects both
with HTTP 403, which the adapter raises as `PermissionDenied` without a
retry and without counting a breaker failure. The token never appears in
an error, a repr or a log line.

The TTL test waits for the server's own expiry, which real time alone
drives, so its token lives for one second and the wait is a bounded poll.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from _vault_admin import admin, unique
from buttress import Event, RetryScheduled
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import PermissionDenied, VaultAdapter

pytestmark = pytest.mark.anyio

# Maximum real wait, in seconds, for the server to expire a short-TTL token.
EXPIRY_WAIT_SECONDS = 15.0


@pytest.fixture(scope="module")
def reader_policy(openbao: OpenBaoDevServer) -> Iterator[str]:
    """
    A policy that may read and write KV version 2 secrets under
    ``buttress-tokens/`` on the ``secret`` mount.
    """
    name = unique("buttress-tokens")
    rules = 'path "secret/data/buttress-tokens/*" { capabilities = ["create", "read", "update"] }'
    admin(openbao, "PUT", f"sys/policies/acl/{name}", {"policy": rules})
    try:
        yield name
    finally:
        admin(openbao, "DELETE", f"sys/policies/acl/{name}")


def create_token(openbao: OpenBaoDevServer, policy: str, **options: Any) -> str:
    body = {"policies": ["default", policy], **options}
    token: str = admin(openbao, "POST", "auth/token/create", body)["auth"][
        "client_token"
    ]
    return token


def settings(openbao: OpenBaoDevServer, token: str) -> dict[str, Any]:
    return {
        "url": openbao.address,
        "token": token,
        "timeout_seconds": 10.0,
        "circuit_breaker_failure_threshold": 2,
        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.01},
    }


def token_status(openbao: OpenBaoDevServer, token: str) -> int:
    """
    Return the HTTP status of a lookup of *token* with itself.
    """
    request = urllib.request.Request(
        f"{openbao.address}/v1/auth/token/lookup-self",
        headers={"X-Vault-Token": token},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code
    return status


def wait_until_rejected(openbao: OpenBaoDevServer, token: str) -> None:
    deadline = time.monotonic() + EXPIRY_WAIT_SECONDS
    while token_status(openbao, token) != 403:
        if time.monotonic() > deadline:
            pytest.fail(f"the token was still valid after {EXPIRY_WAIT_SECONDS} s")
        time.sleep(0.1)


def rendered(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", [])
    return "\n".join([str(exc), repr(exc), *notes])


def retries(events: list[Event]) -> int:
    return sum(isinstance(event, RetryScheduled) for event in events)


def secret_path() -> str:
    return f"buttress-tokens/{uuid.uuid4().hex[:10]}/secret"


async def test_expired_token_is_denied(
    openbao: OpenBaoDevServer,
    reader_policy: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress")
    path = secret_path()
    admin(openbao, "POST", f"secret/data/{path}", {"data": {"k": "v"}})
    token = create_token(openbao, reader_policy, ttl="1s", renewable=False)
    events: list[Event] = []
    vault = VaultAdapter(
        settings(openbao, token), clock=FakeClock(), listeners=[events.append]
    )
    async with vault:
        before = await vault.read_secret(path)
        wait_until_rejected(openbao, token)
        with pytest.raises(PermissionDenied) as denied:
            await vault.read_secret(path)
        breaker = vault.breaker
        assert breaker is not None
        stats = breaker.statistics()
        health = await vault.health_check(deep=True)
        texts = [rendered(denied.value), repr(vault), repr(vault.config), str(health)]

    assert before.data == {"k": "v"}
    assert denied.value.status == 403
    assert denied.value.outcome == "failed"
    assert denied.value.retryable is False
    assert retries(events) == 0
    # A 403 shows the server is up, so it resets the failure count.
    assert stats.failures == 0
    assert stats.consecutive_failures == 0
    assert health["token_valid"] is False
    assert health["reasons"] == ["token_invalid"]
    assert health["live"] is True
    for text in [*texts, caplog.text]:
        assert token not in text


async def test_used_up_token_is_denied(
    openbao: OpenBaoDevServer,
    reader_policy: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress")
    path = secret_path()
    admin(openbao, "POST", f"secret/data/{path}", {"data": {"k": "v"}})
    token = create_token(openbao, reader_policy, num_uses=1)
    events: list[Event] = []
    vault = VaultAdapter(
        settings(openbao, token), clock=FakeClock(), listeners=[events.append]
    )
    async with vault:
        first = await vault.read_secret(path)
        with pytest.raises(PermissionDenied) as denied:
            await vault.read_secret(path)
        breaker = vault.breaker
        assert breaker is not None
        stats = breaker.statistics()
        texts = [rendered(denied.value), repr(vault), repr(vault.config)]

    assert first.data == {"k": "v"}
    assert denied.value.status == 403
    assert denied.value.retryable is False
    assert retries(events) == 0
    assert stats.failures == 0
    assert stats.consecutive_failures == 0
    assert stats.state.value == "closed"
    for text in [*texts, caplog.text]:
        assert token not in text


async def test_health_spares_token_uses(
    openbao: OpenBaoDevServer, reader_policy: str
) -> None:
    path = secret_path()
    admin(openbao, "POST", f"secret/data/{path}", {"data": {"k": "v"}})
    token = create_token(openbao, reader_policy, num_uses=3)
    async with VaultAdapter(settings(openbao, token), clock=FakeClock()) as vault:
        # A plain check sends no token, so it spends no use.
        plain = await vault.health_check()
        # The first deep check spends one use and finds the limit, so the
        # next one skips the lookup.
        first_deep = await vault.health_check(deep=True)
        second_deep = await vault.health_check(deep=True)
        # The two uses left.
        await vault.read_secret(path)
        await vault.read_secret(path)
        with pytest.raises(PermissionDenied):
            await vault.read_secret(path)

    assert plain["token_checked"] is False
    assert first_deep["token_checked"] is True
    assert first_deep["token_valid"] is True
    # The lookup reports the uses left after its own.
    assert first_deep["token_num_uses"] == 2
    assert second_deep["token_checked"] is False
    assert second_deep["ready"] is True
    assert "not looked up" in second_deep["error"]
