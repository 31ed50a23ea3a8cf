"""
Tests of the Vault adapter's shared throttle and client-side rate limiter.

The shared throttle: after one HTTP 429 with Retry-After, every caller of
the adapter waits that long before its next attempt, raised to the retry
floor and cut to the cap. A wait that would end past the deadline raises
`DeadlineExceeded` at once. Some tests create a real rate-limit
quota on the OpenBao dev server. The others put `FakeClockQuota` in front
of the server, which answers 429 while a block measured on the adapter's
`FakeClock` lasts, because a real quota's block runs in real time while
the adapter waits in virtual time.

The rate limiter: every attempt, a retry included, takes a token before
it starts. The counts come from the limiter's statistics and the waits
from the FakeClock, never from the wall clock.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from _scripted_proxy import Action, Reply, ScriptedProxy, vault_errors
from _vault_admin import admin, mounted, unique
from buttress import CircuitState, DeadlineExceeded
from buttress.clients import ClientAdapter
from buttress.testing import FakeClock, OpenBaoDevServer
from buttress.vault import RateLimited, SyncVaultAdapter, VaultAdapter

pytestmark = pytest.mark.anyio

# The retry floor of the adapters below: the minimum wait after a 429.
FLOOR = 0.5
# The adapter's cap on a Retry-After wait, in seconds.
CAP = 60.0


def settings(url: str, token: str, **overrides: Any) -> dict[str, Any]:
    """
    Return a config mapping with one attempt per call, so each 429 reaches
    the caller, and a retry floor of `FLOOR`.
    """
    mapping: dict[str, Any] = {
        "url": url,
        "token": token,
        "timeout_seconds": 120.0,
        "max_concurrent_operations": 8,
        "retry": {
            "max_attempts": 1,
            "initial_backoff_seconds": FLOOR,
            "max_backoff_seconds": 2.0,
        },
    }
    mapping.update(overrides)
    return mapping


def rate_limited(retry_after: float) -> Reply:
    reply = vault_errors(429, "rate limit quota exceeded")
    return Reply(
        reply.status, reply.body, {**reply.headers, "Retry-After": f"{retry_after:g}"}
    )


class FakeClockQuota(ScriptedProxy):
    """
    A proxy to OpenBao that acts as a rate-limit quota in virtual time.

    After `exhaust`, the next request starts a block of *block* seconds on
    *clock* and gets HTTP 429. Every request during the block gets 429
    with the seconds left as Retry-After, and later requests are forwarded.

    Attributes:
        arrivals: The clock time of every request received.
        limited: The number of 429 responses sent.
    """

    def __init__(self, upstream: str, clock: FakeClock, block: float) -> None:
        super().__init__(upstream)
        self.clock = clock
        self.block = block
        self.arrivals: list[float] = []
        self.limited = 0
        self._exhausted = False
        self._blocked_until = -math.inf

    def exhaust(self) -> None:
        with self._lock:
            self._exhausted = True

    def next_action(self, method: str, path: str) -> Action:
        action = super().next_action(method, path)
        now = self.clock.monotonic()
        with self._lock:
            self.arrivals.append(now)
            if self._exhausted:
                self._exhausted = False
                self._blocked_until = now + self.block
            if now < self._blocked_until:
                self.limited += 1
                return rate_limited(math.ceil(self._blocked_until - now))
        return action


@pytest.fixture
def kv_mount(openbao: OpenBaoDevServer) -> Iterator[str]:
    with mounted(openbao, "kv-v2") as mount:
        admin(openbao, "POST", f"{mount}/data/app", {"data": {"k": "v"}})
        yield mount


@pytest.fixture
def quota_headers(openbao: OpenBaoDevServer) -> Iterator[None]:
    """
    Turn on the Retry-After header of rate-limit quotas for one test.
    """
    body = {"enable_rate_limit_response_headers": True}
    admin(openbao, "POST", "sys/quotas/config", body)
    try:
        yield
    finally:
        body = {"enable_rate_limit_response_headers": False}
        admin(openbao, "POST", "sys/quotas/config", body)


@pytest.fixture
def counting_proxy(openbao: OpenBaoDevServer) -> Iterator[ScriptedProxy]:
    proxy = ScriptedProxy(openbao.address)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


class Quota:
    """
    A real rate-limit quota of one request per *interval* on *mount*,
    deleted when the ``with`` block ends.
    """

    def __init__(self, openbao: OpenBaoDevServer, mount: str, interval: str) -> None:
        self.openbao = openbao
        self.path = f"sys/quotas/rate-limit/{unique('throttle')}"
        self.body = {"path": f"{mount}/", "rate": 1, "interval": interval}

    def __enter__(self) -> Quota:
        admin(self.openbao, "POST", self.path, self.body)
        return self

    def __exit__(self, *exc_info: object) -> None:
        admin(self.openbao, "DELETE", self.path)


async def first_429(vault: VaultAdapter, mount: str) -> RateLimited:
    """
    Read until the quota rejects a request with 429, and return that error.
    """
    for _ in range(5):
        try:
            await vault.read_secret("app", mount_point=mount)
        except RateLimited as error:
            return error
    pytest.fail("the quota never answered 429")


# -- shared throttle, real OpenBao quota ------------------------------------


async def test_real_quota_throttles_next_callers(
    openbao: OpenBaoDevServer,
    kv_mount: str,
    quota_headers: None,
    counting_proxy: ScriptedProxy,
) -> None:
    clock = FakeClock()
    config = settings(counting_proxy.address, openbao.root_token)
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        with Quota(openbao, kv_mount, "30s"):
            error = await first_429(vault, kv_mount)
            limited_at = clock.monotonic()
            throttled_for = vault.statistics().throttled_for
            health = await vault.health_check()
            sent = len(counting_proxy.requests)
            arrivals: list[float] = []

            async def read() -> None:
                # The quota still blocks in real time, so these get 429 too.
                with pytest.raises(RateLimited):
                    await vault.read_secret("app", mount_point=kv_mount)
                arrivals.append(clock.monotonic())

            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(read)

    assert error.retry_after is not None
    assert 1 <= error.retry_after <= 30
    assert throttled_for == pytest.approx(error.retry_after)
    assert health["throttled_for_seconds"] == pytest.approx(error.retry_after)
    assert health["last_retry_after_seconds"] == error.retry_after
    assert health["seconds_since_last_429"] == pytest.approx(0.0)
    assert len(counting_proxy.requests) == sent + 3
    # The throttle adds up to the initial backoff of jitter to each wait.
    assert error.retry_after <= clock.sleeps[0] <= error.retry_after + FLOOR
    assert min(arrivals) >= limited_at + error.retry_after


async def test_real_quota_wait_is_capped(
    openbao: OpenBaoDevServer, kv_mount: str, quota_headers: None
) -> None:
    clock = FakeClock()
    config = settings(openbao.address, openbao.root_token)
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        with Quota(openbao, kv_mount, "300s"):
            error = await first_429(vault, kv_mount)
            throttled_for = vault.statistics().throttled_for

    assert error.retry_after is not None
    assert error.retry_after > CAP
    assert throttled_for == pytest.approx(CAP)


async def test_real_quota_zero_retry_after_uses_floor(
    openbao: OpenBaoDevServer, kv_mount: str, quota_headers: None
) -> None:
    clock = FakeClock()
    config = settings(openbao.address, openbao.root_token)
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        # Without a block interval, a one-second quota sends Retry-After: 0.
        with Quota(openbao, kv_mount, "1s"):
            error = await first_429(vault, kv_mount)
            throttled_for = vault.statistics().throttled_for

    assert error.retry_after == 0.0
    assert throttled_for == pytest.approx(FLOOR)


async def test_real_quota_past_deadline_fails_fast(
    openbao: OpenBaoDevServer,
    kv_mount: str,
    quota_headers: None,
    counting_proxy: ScriptedProxy,
) -> None:
    clock = FakeClock()
    config = settings(counting_proxy.address, openbao.root_token, timeout_seconds=5.0)
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        with Quota(openbao, kv_mount, "30s"):
            await first_429(vault, kv_mount)
            sent = len(counting_proxy.requests)
            with pytest.raises(DeadlineExceeded, match="past this call's deadline"):
                await vault.read_secret("app", mount_point=kv_mount)

    assert len(counting_proxy.requests) == sent
    assert clock.sleeps == []


# -- shared throttle, quota in virtual time ---------------------------------


@pytest.fixture
def quota_clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def fake_quota(
    openbao: OpenBaoDevServer, quota_clock: FakeClock
) -> Iterator[FakeClockQuota]:
    proxy = FakeClockQuota(openbao.address, quota_clock, block=3.0)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


async def test_one_429_delays_every_caller(
    openbao: OpenBaoDevServer,
    kv_mount: str,
    quota_clock: FakeClock,
    fake_quota: FakeClockQuota,
) -> None:
    config = settings(fake_quota.address, openbao.root_token)
    results: list[str] = []
    async with VaultAdapter(config, clock=quota_clock, listeners=()) as vault:
        fake_quota.exhaust()
        with pytest.raises(RateLimited) as first:
            await vault.read_secret("app", mount_point=kv_mount)

        async def read() -> None:
            secret = await vault.read_secret("app", mount_point=kv_mount)
            results.append(secret.data["k"])

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(read)

    assert first.value.retry_after == 3.0
    assert fake_quota.limited == 1
    assert results == ["v"] * 5
    assert min(fake_quota.arrivals[1:]) >= fake_quota.arrivals[0] + 3.0


async def test_retry_after_429_waits_throttle_once(
    openbao: OpenBaoDevServer,
    kv_mount: str,
    quota_clock: FakeClock,
    fake_quota: FakeClockQuota,
) -> None:
    retrying = {"max_attempts": 3, "initial_backoff_seconds": FLOOR}
    config = settings(fake_quota.address, openbao.root_token, retry=retrying)
    async with VaultAdapter(config, clock=quota_clock, listeners=()) as vault:
        fake_quota.exhaust()
        secret = await vault.read_secret("app", mount_point=kv_mount)

    assert secret.data == {"k": "v"}
    assert fake_quota.limited == 1
    # The retry's own wait ends the throttle, so no second wait follows.
    assert quota_clock.sleeps == [3.0]


def test_sync_429_delays_every_thread(
    openbao: OpenBaoDevServer,
    kv_mount: str,
    quota_clock: FakeClock,
    fake_quota: FakeClockQuota,
) -> None:
    config = settings(fake_quota.address, openbao.root_token)
    results: list[str] = []
    errors: list[Exception] = []

    def read(vault: SyncVaultAdapter) -> None:
        try:
            results.append(vault.read_secret("app", mount_point=kv_mount).data["k"])
        except Exception as error:
            errors.append(error)

    with SyncVaultAdapter(config, clock=quota_clock, listeners=()) as vault:
        fake_quota.exhaust()
        with pytest.raises(RateLimited):
            vault.read_secret("app", mount_point=kv_mount)
        threads = [threading.Thread(target=read, args=(vault,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == []
    assert results == ["v"] * 4
    assert fake_quota.limited == 1


async def test_adapter_guard_has_shared_throttle(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao.address, openbao.root_token)) as vault:
        assert vault.guard.shared_throttle is True


def test_client_adapter_forwards_shared_throttle() -> None:
    class Plain(ClientAdapter[object]):
        def create_client(self) -> object:
            return object()

    throttled = Plain(name="throttled", shared_throttle=True)
    default = Plain(name="default")
    try:
        assert throttled.guard.shared_throttle is True
        assert default.guard.shared_throttle is False
    finally:
        throttled.close()
        default.close()


# -- client-side rate limiter -----------------------------------------------


class BlockingClock(FakeClock):
    """
    A FakeClock whose async sleep never returns, so a test can cancel a
    caller while it waits for a token.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = anyio.Event()

    async def asleep(self, seconds: float) -> None:
        self.sleeping.set()
        await anyio.sleep_forever()


class ThreadRecordingClock(FakeClock):
    """
    A FakeClock that records the thread of every blocking sleep.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sleep_threads: list[int] = []

    def sleep(self, seconds: float) -> None:
        self.sleep_threads.append(threading.get_ident())
        super().sleep(seconds)


async def test_rate_limit_spaces_calls(
    openbao: OpenBaoDevServer, kv_mount: str
) -> None:
    clock = FakeClock()
    limit = {"rate": 2.0, "burst": 1}
    config = settings(openbao.address, openbao.root_token, rate_limit=limit)
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        for _ in range(5):
            await vault.read_secret("app", mount_point=kv_mount)
        limiter = vault.rate_limiter
        assert limiter is not None
        stats = limiter.statistics()
        health = await vault.health_check()

    assert stats.acquired == 5
    assert stats.delayed == 4
    assert stats.total_wait == pytest.approx(2.0)
    assert clock.sleeps == pytest.approx([0.5] * 4)
    assert health["rate_limit"] == "2:1"
    assert health["rate_limit_delayed"] == 4


async def test_rate_limit_concurrent_callers_wait(
    openbao: OpenBaoDevServer, kv_mount: str
) -> None:
    clock = FakeClock()
    limit = {"rate": 10.0, "burst": 2}
    config = settings(openbao.address, openbao.root_token, rate_limit=limit)
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        async with anyio.create_task_group() as group:
            read = functools.partial(vault.read_secret, "app", mount_point=kv_mount)
            for _ in range(6):
                group.start_soon(read)
        limiter = vault.rate_limiter
        assert limiter is not None
        stats = limiter.statistics()

    assert stats.acquired == 6
    assert stats.delayed >= 4


async def test_rate_limit_applies_to_retries(
    openbao: OpenBaoDevServer, kv_mount: str, counting_proxy: ScriptedProxy
) -> None:
    clock = FakeClock()
    counting_proxy.script(vault_errors(503, "Vault is sealed"))
    config = settings(
        counting_proxy.address,
        openbao.root_token,
        rate_limit={"rate": 1.0, "burst": 1},
        retry={"max_attempts": 2, "initial_backoff_seconds": 0.01},
    )
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        await vault.read_secret("app", mount_point=kv_mount)
        limiter = vault.rate_limiter
        assert limiter is not None
        stats = limiter.statistics()

    assert len(counting_proxy.requests) == 2
    assert stats.acquired == 2
    assert stats.delayed == 1


async def test_rate_limit_past_deadline_rejected(
    openbao: OpenBaoDevServer, kv_mount: str, counting_proxy: ScriptedProxy
) -> None:
    clock = FakeClock()
    config = settings(
        counting_proxy.address,
        openbao.root_token,
        timeout_seconds=5.0,
        rate_limit={"rate": 0.1, "burst": 1},
    )
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        await vault.read_secret("app", mount_point=kv_mount)
        with pytest.raises(DeadlineExceeded, match="client-side rate limit"):
            await vault.read_secret("app", mount_point=kv_mount)
        limiter = vault.rate_limiter
        assert limiter is not None
        stats = limiter.statistics()

    assert len(counting_proxy.requests) == 1
    assert stats.rejected == 1
    assert stats.available == pytest.approx(0.0)
    assert clock.sleeps == []


async def test_rate_limit_cancelled_waiter_refunds(
    openbao: OpenBaoDevServer, kv_mount: str, counting_proxy: ScriptedProxy
) -> None:
    clock = BlockingClock()
    limit = {"rate": 1.0, "burst": 1}
    config = settings(counting_proxy.address, openbao.root_token, rate_limit=limit)
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        await vault.read_secret("app", mount_point=kv_mount)
        limiter = vault.rate_limiter
        assert limiter is not None
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                read = functools.partial(vault.read_secret, "app", mount_point=kv_mount)
                group.start_soon(read)
                # A bound in real time, so a caller that never waits fails
                # the test instead of hanging it.
                with anyio.fail_after(10):
                    await clock.sleeping.wait()
                waiting = limiter.statistics()
                scope.cancel()
        stats = limiter.statistics()

    assert waiting.available == pytest.approx(-1.0)
    assert stats.refunded == 1
    assert stats.available == pytest.approx(0.0)
    assert len(counting_proxy.requests) == 1


async def test_rate_limit_refunds_breaker_rejection(
    openbao: OpenBaoDevServer, kv_mount: str
) -> None:
    clock = FakeClock()
    limit = {"rate": 1.0, "burst": 1}
    config = settings(openbao.address, openbao.root_token, rate_limit=limit)
    async with VaultAdapter(config, clock=clock, listeners=()) as vault:
        breaker = vault.breaker
        limiter = vault.rate_limiter
        assert breaker is not None
        assert limiter is not None
        breaker.force_open()
        assert breaker.state is CircuitState.FORCED_OPEN
        for _ in range(3):
            with pytest.raises(Exception, match="open"):
                await vault.read_secret("app", mount_point=kv_mount)
        stats = limiter.statistics()

    assert stats.refunded == 3
    assert stats.delayed == 0
    assert stats.available == pytest.approx(1.0)


def test_sync_rate_limit_waits_in_calling_thread(
    openbao: OpenBaoDevServer, kv_mount: str
) -> None:
    clock = ThreadRecordingClock()
    limit = {"rate": 4.0, "burst": 1}
    config = settings(openbao.address, openbao.root_token, rate_limit=limit)
    with SyncVaultAdapter(config, clock=clock, listeners=()) as vault:
        for _ in range(4):
            vault.read_secret("app", mount_point=kv_mount)
        limiter = vault.rate_limiter
        assert limiter is not None
        stats = limiter.statistics()

    assert stats.delayed == 3
    assert clock.sleeps == pytest.approx([0.25] * 3)
    assert clock.sleep_threads == [threading.get_ident()] * 3


async def test_no_rate_limit_by_default(openbao: OpenBaoDevServer) -> None:
    async with VaultAdapter(settings(openbao.address, openbao.root_token)) as vault:
        assert vault.rate_limiter is None
