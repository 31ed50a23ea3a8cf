"""
Tests of BoundedExecutor: admission, the bound under mixed async and thread
load, queue order, cancellation, timeouts, shutdown and statistics.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import types
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import anyio
import pytest

from _executor_helpers import Gate, await_stats, executor
from _virtual_time import virtual_time_backends
from buttress import (
    BoundedExecutor,
    DeadlineExceeded,
    ExecutorClosed,
    ExecutorSaturated,
    ExecutorStatistics,
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """
    Let the interpreter switch threads as often as it can, so that a race
    between a worker thread and its caller shows up within a few calls.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragments"),
    [
        ({"max_workers": 0}, ValueError, ["max_workers=0", "from 1 to 100"]),
        ({"max_workers": 101}, ValueError, ["max_workers=101", "from 1 to 100"]),
        ({"max_workers": 2.5}, TypeError, ["max_workers=2.5", "integer"]),
        ({"queue_multiplier": 0}, ValueError, ["queue_multiplier=0", "from 1 to 10"]),
        ({"queue_multiplier": 11}, ValueError, ["queue_multiplier=11", "from 1 to 10"]),
        (
            {"queue_size": 4, "queue_multiplier": 2},
            ValueError,
            ["queue_size=4", "queue_multiplier=2", "only one"],
        ),
        ({"queue_size": -1}, ValueError, ["queue_size=-1"]),
        ({"keep_alive": 0}, ValueError, ["keep_alive=0.0"]),
        ({"queue_timeout": "1s"}, TypeError, ["queue_timeout='1s'"]),
    ],
)
def test_invalid_config_message(
    kwargs: dict[str, Any], error: type[Exception], fragments: list[str]
) -> None:
    with pytest.raises(error) as excinfo:
        BoundedExecutor(**kwargs)

    message = str(excinfo.value)
    assert "BoundedExecutor" in message
    for fragment in fragments:
        assert fragment in message


def test_queue_size_defaults() -> None:
    with executor(max_workers=4) as pool:
        assert pool.statistics().queue_capacity == 12
    with executor(max_workers=4, queue_multiplier=2) as pool:
        assert pool.statistics().queue_capacity == 8
    with executor(max_workers=4, queue_size=0) as pool:
        assert pool.statistics().queue_capacity == 0


# -- running work ---------------------------------------------------------------


@pytest.mark.anyio
async def test_run_returns_result() -> None:
    with executor(max_workers=2) as pool:
        assert await pool.run(pow, 2, 10) == 1024


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_run_while_trio_half_imported(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another thread importing trio leaves a module without attributes in
    # sys.modules for a moment; asyncio callers must not trip over it.
    monkeypatch.setitem(sys.modules, "trio", types.ModuleType("trio"))
    with executor(max_workers=2) as pool:
        assert await pool.run(pow, 2, 10) == 1024


def test_call_from_threads() -> None:
    results: dict[int, int] = {}

    with executor(max_workers=3) as pool:

        def caller(index: int) -> None:
            results[index] = pool.call(pow, index, 2)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)

    assert results == {index: index**2 for index in range(8)}


def test_submit_returns_future() -> None:
    with executor(max_workers=2) as pool:
        futures = [pool.submit(pow, index, 3) for index in range(5)]

        assert [future.result(timeout=10) for future in futures] == [0, 1, 8, 27, 64]


@pytest.mark.usefixtures("frequent_thread_switches")
def test_slot_free_after_call_returns() -> None:
    # A caller whose call returned must find its worker free again: with one
    # worker and no queue, back-to-back calls never see the executor busy.
    with executor(max_workers=1, queue_size=0) as pool:
        for index in range(300):
            assert pool.call(abs, -index) == index
            assert pool.statistics().active == 0


@pytest.mark.anyio
@pytest.mark.usefixtures("frequent_thread_switches")
async def test_run_slot_free_after_return() -> None:
    with executor(max_workers=1, queue_size=0) as pool:
        for index in range(100):
            assert await pool.run_nowait(abs, -index) == index
            assert pool.statistics().active == 0


def test_thread_names_carry_name() -> None:
    with executor(max_workers=1, name="vault-io") as pool:
        name = pool.call(lambda: threading.current_thread().name)

    assert name.startswith("vault-io-")


def test_contextvars_reach_worker() -> None:
    token = request_id.set("req-42")
    try:
        with executor(max_workers=1) as pool:
            assert pool.call(request_id.get) == "req-42"
            assert pool.submit(request_id.get).result(timeout=10) == "req-42"
    finally:
        request_id.reset(token)


@pytest.mark.anyio
async def test_contextvars_reach_worker_async() -> None:
    request_id.set("task-7")
    with executor(max_workers=1) as pool:
        assert await pool.run(request_id.get) == "task-7"


# -- errors ---------------------------------------------------------------------


class LookupFailed(Exception):
    pass


def test_call_error_unchanged() -> None:
    error = LookupFailed("no such key")

    def lookup() -> None:
        raise error

    with executor(max_workers=1) as pool:
        with pytest.raises(LookupFailed) as excinfo:
            pool.call(lookup)
        with pytest.raises(LookupFailed) as from_future:
            pool.submit(lookup).result(timeout=10)

    assert excinfo.value is error
    assert from_future.value is error
    assert pool.statistics().failed == 2


@pytest.mark.anyio
async def test_run_error_unchanged() -> None:
    error = LookupFailed("no such key")

    def lookup() -> None:
        raise error

    with executor(max_workers=1) as pool, pytest.raises(LookupFailed) as excinfo:
        await pool.run(lookup)

    assert excinfo.value is error


def test_saturated_rejects_at_once() -> None:
    gate = Gate()
    ran: list[str] = []
    with executor(max_workers=1, queue_size=1, name="vault-io") as pool:
        running = pool.submit(gate)
        gate.wait_entered(1)
        queued = pool.submit(gate)

        with pytest.raises(ExecutorSaturated) as excinfo:
            pool.submit(ran.append, "rejected call")

        stats = pool.statistics()
        gate.open()
        running.result(timeout=10)
        queued.result(timeout=10)

    error = excinfo.value
    assert type(error) is ExecutorSaturated
    assert error.reason == "queue_full"
    assert error.max_workers == 1
    assert error.queue_size == 1
    assert "'vault-io'" in str(error)
    assert "1 workers are busy" in str(error)
    assert "queue of 1 is full" in str(error)
    assert ran == []
    assert stats.rejected == 1
    assert stats.rejected_queue_full == 1


@pytest.mark.anyio
async def test_run_saturated_rejects_at_once() -> None:
    gate = Gate()
    with executor(max_workers=1, queue_size=0) as pool:
        running = pool.submit(gate)
        gate.wait_entered(1)

        with pytest.raises(ExecutorSaturated) as excinfo:
            await pool.run(gate)

        gate.open()
        running.result(timeout=10)

    assert excinfo.value.reason == "queue_full"


def test_nowait_rejects_when_busy() -> None:
    gate = Gate()
    with executor(max_workers=1, queue_size=5) as pool:
        running = pool.submit(gate)
        gate.wait_entered(1)

        with pytest.raises(ExecutorSaturated) as excinfo:
            pool.submit_nowait(gate)

        stats = pool.statistics()
        gate.open()
        running.result(timeout=10)

    assert excinfo.value.reason == "no_free_worker"
    assert stats.queued == 0
    assert stats.rejected_no_free_worker == 1


# -- queue ----------------------------------------------------------------------


def test_queue_runs_in_fifo_order() -> None:
    gate = Gate()
    order: list[int] = []
    with executor(max_workers=1, queue_size=20) as pool:
        blocker = pool.submit(gate)
        gate.wait_entered(1)
        futures = [pool.submit(order.append, index) for index in range(20)]

        assert pool.statistics().queued == 20

        gate.open()
        blocker.result(timeout=10)
        for future in futures:
            future.result(timeout=10)

    assert order == list(range(20))
    assert pool.statistics().peak_queued == 20


def test_cancelled_future_leaves_queue() -> None:
    gate = Gate()
    ran: list[str] = []
    with executor(max_workers=1, queue_size=2) as pool:
        blocker = pool.submit(gate)
        gate.wait_entered(1)
        queued = pool.submit(ran.append, "withdrawn call")

        assert queued.cancel()

        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert stats.queued == 0
    assert stats.withdrawn == 1
    assert ran == []


@pytest.mark.anyio
async def test_cancel_while_queued() -> None:
    gate = Gate()
    ran: list[str] = []
    with executor(max_workers=1, queue_size=2) as pool:
        blocker = pool.submit(gate)
        gate.wait_entered(1)
        async with anyio.create_task_group() as group:
            group.start_soon(pool.run, ran.append, "withdrawn call")
            await await_stats(pool, lambda s: s.queued == 1)
            group.cancel_scope.cancel()

        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert stats.queued == 0
    assert stats.withdrawn == 1
    assert stats.abandoned == 0
    assert ran == []


@pytest.mark.anyio
async def test_cancel_while_running() -> None:
    gate = Gate()
    with executor(max_workers=1) as pool:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(pool.run, gate, "dropped result")
                await anyio.to_thread.run_sync(gate.wait_entered, 1)
                group.cancel_scope.cancel()
        # The caller is released although the function still blocks.
        during = pool.statistics()
        gate.open()
        after = await await_stats(pool, lambda s: s.active == 0)

    assert during.active == 1
    assert during.abandoned == 1
    assert during.abandoned_total == 1
    assert after.abandoned == 0
    assert after.abandoned_total == 1
    assert after.completed == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_timeout() -> None:
    gate = Gate()
    with executor(max_workers=1, name="vault-io") as pool:
        with pytest.raises(DeadlineExceeded) as excinfo:
            await pool.run(gate, timeout=30.0)

        during = pool.statistics()
        gate.open()

    assert isinstance(excinfo.value, TimeoutError)
    assert "'vault-io'" in str(excinfo.value)
    assert "30.000 s" in str(excinfo.value)
    assert during.abandoned == 1
    assert during.active == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_timeout_while_queued() -> None:
    gate = Gate()
    ran: list[str] = []
    with executor(max_workers=1) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)

        with pytest.raises(DeadlineExceeded):
            await pool.run(ran.append, "timed out in the queue", timeout=30.0)

        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert stats.queued == 0
    assert stats.withdrawn == 1
    assert ran == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_queue_timeout() -> None:
    gate = Gate()
    with executor(max_workers=1, queue_timeout=5.0) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)

        with pytest.raises(ExecutorSaturated) as excinfo:
            await pool.run(gate)

        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert excinfo.value.reason == "queue_timeout"
    assert "5.000 s" in str(excinfo.value)
    assert stats.rejected_queue_timeout == 1
    assert stats.queued == 0


def test_call_timeout() -> None:
    gate = Gate()
    with executor(max_workers=1) as pool:
        with pytest.raises(DeadlineExceeded):
            pool.call(gate, timeout=0.05)

        stats = pool.statistics()
        gate.open()

    assert stats.abandoned == 1


# -- shutdown ---------------------------------------------------------------------


def test_shutdown_fails_queued() -> None:
    gate = Gate()
    pool = BoundedExecutor(max_workers=1, queue_size=4, listeners=())
    running = pool.submit(gate)
    gate.wait_entered(1)
    queued = [pool.submit(gate) for _ in range(2)]

    pool.shutdown(wait=False, cancel_queued=True)

    for future in queued:
        with pytest.raises(ExecutorClosed) as excinfo:
            future.result(timeout=10)
        assert excinfo.value.reason == "closed"
    with pytest.raises(ExecutorClosed, match="accepts no new work"):
        pool.submit(gate)
    gate.open()
    assert running.result(timeout=10) is None
    assert pool.shutdown(wait=True, timeout=10)
    stats = pool.statistics()
    assert stats.closed
    assert stats.threads == 0
    assert stats.rejected_closed == 3


def test_shutdown_keeps_queued() -> None:
    gate = Gate()
    pool = BoundedExecutor(max_workers=1, queue_size=4, listeners=())
    running = pool.submit(gate)
    gate.wait_entered(1)
    queued = pool.submit(pow, 3, 2)

    pool.shutdown(wait=False, cancel_queued=False)
    gate.open()

    assert running.result(timeout=10) is None
    assert queued.result(timeout=10) == 9
    assert pool.shutdown(wait=True, timeout=10)


@pytest.mark.anyio
async def test_shutdown_fails_queued_async() -> None:
    gate = Gate()
    pool = BoundedExecutor(max_workers=1, queue_size=4, listeners=())
    running = pool.submit(gate)
    await anyio.to_thread.run_sync(gate.wait_entered, 1)
    errors: list[BaseException] = []

    async def queued_caller() -> None:
        try:
            await pool.run(gate)
        except ExecutorClosed as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(queued_caller)
        await await_stats(pool, lambda s: s.queued == 1)
        pool.shutdown(wait=False)

    with pytest.raises(ExecutorClosed):
        await pool.run(gate)
    gate.open()
    running.result(timeout=10)
    assert len(errors) == 1
    assert await pool.aclose(timeout=10)


def test_context_manager_closes() -> None:
    with BoundedExecutor(max_workers=2, listeners=()) as pool:
        assert pool.call(pow, 2, 3) == 8

    stats = pool.statistics()
    assert stats.closed
    assert stats.threads == 0
    with pytest.raises(ExecutorClosed):
        pool.call(pow, 2, 3)


@pytest.mark.anyio
async def test_async_context_manager_closes() -> None:
    async with BoundedExecutor(max_workers=2, listeners=()) as pool:
        assert await pool.run(pow, 2, 3) == 8

    stats = pool.statistics()
    assert stats.closed
    assert stats.threads == 0
    with pytest.raises(ExecutorClosed):
        await pool.run(pow, 2, 3)


# -- the bound under mixed load -----------------------------------------------------


@pytest.mark.anyio
async def test_bound_holds_under_mixed_load() -> None:
    max_workers, queue_size = 4, 8
    inside = 0
    peak = 0
    lock = threading.Lock()
    violations: list[ExecutorStatistics] = []
    outcomes = {"ok": 0, "rejected": 0}

    def work() -> None:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        threading.Event().wait(0.001)
        with lock:
            inside -= 1

    def count(outcome: str) -> None:
        with lock:
            outcomes[outcome] += 1

    with executor(max_workers=max_workers, queue_size=queue_size) as pool:
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.is_set():
                stats = pool.statistics()
                if (
                    stats.active > max_workers
                    or stats.queued > queue_size
                    or stats.threads > max_workers
                    or stats.abandoned > stats.active
                ):
                    violations.append(stats)
                stop_sampling.wait(0.0002)

        def thread_caller() -> None:
            for _ in range(60):
                try:
                    pool.call(work)
                    count("ok")
                except ExecutorSaturated:
                    count("rejected")

        async def task_caller() -> None:
            for _ in range(30):
                try:
                    await pool.run(work)
                    count("ok")
                except ExecutorSaturated:
                    count("rejected")

        sampler = threading.Thread(target=sample)
        sampler.start()
        callers = [threading.Thread(target=thread_caller) for _ in range(6)]
        for thread in callers:
            thread.start()
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for _ in range(12):
                    group.start_soon(task_caller)
            await anyio.to_thread.run_sync(lambda: [t.join(60) for t in callers])
        stop_sampling.set()
        sampler.join(timeout=10)
        stats = pool.statistics()

    assert peak <= max_workers
    assert violations == []
    assert outcomes["ok"] + outcomes["rejected"] == 6 * 60 + 12 * 30
    assert stats.completed == outcomes["ok"]
    assert stats.rejected == outcomes["rejected"]
    assert stats.peak_active <= max_workers
    assert stats.peak_queued <= queue_size
    assert stats.active == 0
    assert stats.queued == 0


def test_bound_holds_with_abandoned_calls() -> None:
    # Callers that give up do not free their slot: two abandoned calls keep
    # both workers, so a third call waits in the queue.
    gate = Gate()
    with executor(max_workers=2, queue_size=2) as pool:
        for _ in range(2):
            with pytest.raises(DeadlineExceeded):
                pool.call(gate, timeout=0.01)
        gate.wait_entered(2)
        third: Future[Any] = pool.submit(gate, "third")
        stats = pool.statistics()
        gate.open()

        assert third.result(timeout=10) == "third"

    assert stats.active == 2
    assert stats.abandoned == 2
    assert stats.queued == 1
