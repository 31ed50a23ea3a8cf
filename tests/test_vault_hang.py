"""
Tests of the adapter against a server that accepts connections and never
responds: a local socket on 127.0.0.1 that counts the connections it
accepts, so each test sees how many attempts reached it.

The breaker opening on such a server is tested with a frozen OpenBao dev
server in test_vault_adapter.py.

By default each attempt's socket timeout is the time left before the
whole call's deadline, so one hung attempt uses up the deadline. With
``retry.attempt_timeout_seconds`` shorter than the deadline, a hung read is
abandoned and retried, and a plain write is not.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from buttress import Event, RetryGaveUp, RetryScheduled
from buttress.vault import (
    SyncVaultAdapter,
    VaultAdapter,
    VaultTimeout,
    VaultUnavailable,
)

pytestmark = pytest.mark.anyio

TIMEOUT = 0.5
ATTEMPTS = 5


class HungServer:
    """
    A listener on 127.0.0.1 that accepts connections, keeps them open and
    never reads from or writes to them.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._connections)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(connection)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # shutdown wakes the accept() of the thread, which close alone may not.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for connection in self._connections:
                connection.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    server = HungServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def settings(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "token": "unused-token",
        "timeout_seconds": TIMEOUT,
        "circuit_breaker_failure_threshold": 10,
        "retry": {
            "max_attempts": ATTEMPTS,
            "initial_backoff_seconds": 0.01,
            "max_backoff_seconds": 0.02,
        },
    }


def check_timed_out(error: BaseException, events: list[Event]) -> None:
    # The socket timeout and the deadline end together, so either may
    # report the hang first.
    assert isinstance(error, TimeoutError)
    if isinstance(error, VaultTimeout):
        assert error.outcome == "unknown"
        assert error.status is None
    assert not any(isinstance(event, RetryScheduled) for event in events)
    gave_up = [event for event in events if isinstance(event, RetryGaveUp)]
    assert len(gave_up) == 1
    # The deadline bounds the whole call: the first attempt used it up, so
    # none of the other ATTEMPTS - 1 started.
    assert gave_up[0].attempts == 1


async def test_hung_read_ends_at_deadline(hung: HungServer) -> None:
    events: list[Event] = []
    async with VaultAdapter(settings(hung.url), listeners=[events.append]) as vault:
        with pytest.raises(TimeoutError) as timed_out:
            await vault.read_secret("app/db")

    check_timed_out(timed_out.value, events)
    assert hung.accepted == 1


async def test_hung_plain_write_sent_once(hung: HungServer) -> None:
    events: list[Event] = []
    async with VaultAdapter(settings(hung.url), listeners=[events.append]) as vault:
        with pytest.raises(TimeoutError) as timed_out:
            await vault.write_secret("app/db", {"k": "v"})

    check_timed_out(timed_out.value, events)
    # The write may have taken effect, so it is not sent again.
    assert hung.accepted == 1


def test_sync_hung_read_ends_at_deadline(hung: HungServer) -> None:
    events: list[Event] = []
    with SyncVaultAdapter(settings(hung.url), listeners=[events.append]) as vault:
        with pytest.raises(TimeoutError) as timed_out:
            vault.read_secret("app/db")
        health = vault.health_check()

    check_timed_out(timed_out.value, events)
    assert hung.accepted == 2
    assert health["server_reachable"] is False
    assert health["reasons"] == ["server_unreachable"]


def with_attempt_timeout(url: str) -> dict[str, Any]:
    config = settings(url)
    config["timeout_seconds"] = 10.0
    config["retry"] = {**config["retry"], "max_attempts": 3}
    config["retry"]["attempt_timeout_seconds"] = 0.2
    return config


def retries(events: list[Event]) -> int:
    return sum(isinstance(event, RetryScheduled) for event in events)


async def test_attempt_timeout_retries_hung_read(hung: HungServer) -> None:
    events: list[Event] = []
    config = with_attempt_timeout(hung.url)
    async with VaultAdapter(config, listeners=[events.append]) as vault:
        with pytest.raises(VaultTimeout) as timed_out:
            await vault.read_secret("app/db")

    assert timed_out.value.outcome == "unknown"
    assert retries(events) == 2
    assert hung.accepted == 3


async def test_attempt_timeout_keeps_plain_write_single(hung: HungServer) -> None:
    events: list[Event] = []
    config = with_attempt_timeout(hung.url)
    async with VaultAdapter(config, listeners=[events.append]) as vault:
        with pytest.raises(VaultTimeout) as timed_out:
            await vault.write_secret("app/db", {"k": "v"})

    assert timed_out.value.outcome == "unknown"
    assert timed_out.value.retryable is False
    assert retries(events) == 0
    assert hung.accepted == 1


def test_sync_attempt_timeout_retries_hung_read(hung: HungServer) -> None:
    events: list[Event] = []
    config = with_attempt_timeout(hung.url)
    with (
        SyncVaultAdapter(config, listeners=[events.append]) as vault,
        pytest.raises(VaultTimeout),
    ):
        vault.read_secret("app/db")

    assert retries(events) == 2
    assert hung.accepted == 3


class FullBacklog:
    """
    A listener on 127.0.0.1 whose accept queue is full: it never accepts,
    and other sockets already fill its backlog, so a new connection attempt
    hangs in the handshake until its connect timeout.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=0)
        self._fillers: list[socket.socket] = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(self._listener.getsockname())
            except BlockingIOError:
                pass
            self._fillers.append(filler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()


@pytest.fixture
def full_backlog() -> Iterator[FullBacklog]:
    server = FullBacklog()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("transport", ["urllib3", "requests"])
async def test_connect_timeout_retries_even_a_write(
    full_backlog: FullBacklog, transport: str
) -> None:
    events: list[Event] = []
    config = settings(full_backlog.url)
    config.update(timeout_seconds=30.0, connect_timeout_seconds=0.1)
    config["transport"] = transport
    config["retry"] = {**config["retry"], "max_attempts": 3}
    async with VaultAdapter(config, listeners=[events.append]) as vault:
        with pytest.raises(VaultUnavailable) as unreachable:
            await vault.write_secret("app/db", {"k": "v"})

    # Nothing was sent, so even a write that is not safe to replay is
    # retried, and each attempt ended at the connect timeout, long before
    # the operation's 30 s.
    assert unreachable.value.outcome == "not_executed"
    assert retries(events) == 2


def test_interrupt_closes_without_waiting(hung: HungServer) -> None:
    config = settings(hung.url)
    config["timeout_seconds"] = 30.0
    vault = SyncVaultAdapter(config)
    vault.initialize()
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            vault.read_secret("app/db")
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    while hung.accepted == 0 and reader.is_alive():
        time.sleep(0.01)

    with pytest.raises(KeyboardInterrupt), vault:
        raise KeyboardInterrupt

    # Closing returned while the request was still running in its worker,
    # long before its 30 s deadline.
    assert reader.is_alive()
    assert not outcome
    assert vault.executor.statistics().active == 1
    hung.stop()
    reader.join(timeout=30)
    assert len(outcome) == 1


@pytest.mark.parametrize("transport", ["urllib3", "requests"])
async def test_handshake_timeout_retries_even_a_write(
    hung: HungServer, transport: str
) -> None:
    # The listener accepts the TCP connection and never answers the TLS
    # handshake, so the request is never sent.
    events: list[Event] = []
    config = settings(hung.url.replace("http://", "https://"))
    config.update(timeout_seconds=30.0, connect_timeout_seconds=0.1, verify=False)
    config["transport"] = transport
    config["retry"] = {**config["retry"], "max_attempts": 3}
    async with VaultAdapter(config, listeners=[events.append]) as vault:
        with pytest.raises(VaultUnavailable) as unreachable:
            await vault.write_secret("app/db", {"k": "v"})

    assert unreachable.value.outcome == "not_executed"
    assert retries(events) == 2
    assert hung.accepted == 3
