"""
Tests that run docs/examples/custom_backend.py, so the example in the
client guide keeps working: the script itself, retries after BUSY, a lost
reply, an unreachable server and the sync twin.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import buttress
from buttress import CircuitBreaker, CircuitOpen

EXAMPLE = (
    Path(__file__).resolve().parent.parent / "docs" / "examples" / "custom_backend.py"
)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("custom_backend", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example()


def test_script_runs() -> None:
    # The script must find the same buttress as the tests, installed or not.
    env = dict(os.environ)
    package_parent = str(Path(buttress.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_parent, *filter(None, [env.get("PYTHONPATH")])]
    )
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == [
        "visits: 1",
        "rejected: name does not hold a number",
        "breaker: closed",
    ]
    assert "attempt 1 raised ServerBusy" in completed.stderr


@pytest.mark.anyio
async def test_main(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    visits = await example.main()

    assert visits == 1
    assert "visits: 1" in capsys.readouterr().out


@pytest.mark.anyio
async def test_busy_server_retried(example: ModuleType) -> None:
    with example.LineServer() as server:
        async with example.CounterAdapter(server.address) as counters:
            server.reply_busy(2)
            first = await counters.incr("hits")
            second = await counters.incr("hits")
            breaker = counters.statistics().breaker

    assert (first, second) == (1, 2)
    assert breaker is not None
    assert breaker.failures == 0


@pytest.mark.anyio
async def test_lost_reply_not_replayed(example: ModuleType) -> None:
    with example.LineServer() as server:
        async with example.CounterAdapter(server.address) as counters:
            server.drop_replies(1)
            with pytest.raises(example.ConnectionLost):
                await counters.incr("hits")
            # The server did count it, which is why INCR was not repeated.
            assert await counters.get("hits") == "1"

            # GET is safe to repeat: it is retried on a new connection.
            server.drop_replies(1)
            assert await counters.get("hits") == "1"
            breaker = counters.statistics().breaker

    assert breaker is not None
    assert breaker.failures == 2


@pytest.mark.anyio
async def test_unreachable_server_opens_breaker(example: ModuleType) -> None:
    with example.LineServer() as server:
        address = server.address
    breaker = CircuitBreaker(name="counters", failure_threshold=2, reset_timeout=60)

    async with example.CounterAdapter(address, retry=None, breaker=breaker) as counters:
        for _ in range(2):
            with pytest.raises(example.ConnectFailed):
                await counters.get("hits")
        with pytest.raises(CircuitOpen):
            await counters.get("hits")
        health = await counters.health_check()

    assert health["healthy"] is False
    assert health["circuit_breaker_state"] == "open"


@pytest.mark.anyio
async def test_invalid_key_not_sent(example: ModuleType) -> None:
    with example.LineServer() as server:
        async with example.CounterAdapter(server.address) as counters:
            with pytest.raises(ValueError, match="words must be non-empty"):
                await counters.set("two words", "x")
            breaker = counters.statistics().breaker

    assert breaker is not None
    assert breaker.failures == 0
    assert breaker.ignored == 1


def test_sync_twin_from_threads(example: ModuleType) -> None:
    results: list[Any] = []

    def count(counters: Any) -> None:
        results.extend(counters.incr_sync("hits") for _ in range(5))

    with (
        example.LineServer() as server,
        example.CounterAdapter(server.address, max_workers=2) as counters,
    ):
        threads = [threading.Thread(target=count, args=(counters,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert sorted(results) == list(range(1, 21))
