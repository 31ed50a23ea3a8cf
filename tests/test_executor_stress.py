"""
Stress tests of BoundedExecutor: overload by ten times more callers than it
can hold, FIFO order of async callers, several event loops in several
threads at once, and the result of a call whose caller gave up.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import tracemalloc
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
import trio

from _executor_helpers import Gate, await_stats, executor, wait_for_stats
from _virtual_time import virtual_time_backends
from buttress import (
    BoundedExecutor,
    DeadlineExceeded,
    ExecutorSaturated,
    ExecutorStatistics,
)

MAX_WORKERS = 4
QUEUE_SIZE = 8
CALLERS = 10 * (MAX_WORKERS + QUEUE_SIZE)
FIRST_WAVE = CALLERS // 2
WARM_UP_ROUNDS = 1
MEASURED_ROUNDS = 20
MEMORY_GROWTH_LIMIT = 512 * 1024
"""
Bytes that traced memory may grow by over the measured rounds.

The measured rounds make 2,400 calls, so keeping about 220 bytes per call
crosses the limit. One rejection error kept with its traceback takes about
800 bytes. In runs of this test on CPython 3.11, growth without a leak
stayed below 32 KiB on asyncio and on trio.
"""


class ConcurrencyCounter:
    """
    Counts the calls running at once inside a blocking function, from any
    thread, and keeps the maximum.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.calls = 0

    @contextmanager
    def running_call(self) -> Iterator[None]:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.max_running = max(self.max_running, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1


# -- overload ---------------------------------------------------------------------


class StatsSampler:
    """
    Reads the executor's statistics, from a task or from any thread, and
    keeps the highest ``queued`` and ``active`` seen.
    """

    def __init__(self, pool: BoundedExecutor) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self.samples = 0
        self.max_queued = 0
        self.max_active = 0
        self.stop = anyio.Event()

    def sample(self) -> None:
        stats = self._pool.statistics()
        with self._lock:
            self.samples += 1
            self.max_queued = max(self.max_queued, stats.queued)
            self.max_active = max(self.max_active, stats.active)

    async def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            # A busy loop would keep the GIL from the worker threads, so
            # pause 0.1 ms between samples.
            await anyio.sleep(0.0001)


async def overload_round(
    pool: BoundedExecutor,
    counter: ConcurrencyCounter,
    sampler: StatsSampler,
    seen: Counter[str],
) -> None:
    """
    Send `CALLERS` calls at the executor in two waves and count what each
    caller saw.

    The first wave arrives while every running call blocks, so exactly
    ``MAX_WORKERS + QUEUE_SIZE`` of its callers are admitted. The second
    arrives while the workers drain the queue, so its split between
    completed and rejected varies from run to run.
    """
    gate = threading.Event()

    def blocking_call(value: int) -> int:
        with counter.running_call():
            sampler.sample()
            if not gate.wait(10):
                raise AssertionError("the gate was never opened")
            return value

    async def caller(index: int) -> None:
        if index >= FIRST_WAVE:
            # Spread the second wave over several scheduling steps.
            for _ in range(index % 4):
                await anyio.sleep(0)
        try:
            value = await pool.run(blocking_call, index)
        except ExecutorSaturated as exc:
            seen[exc.reason] += 1
            seen["rejected"] += 1
        else:
            assert value == index
            seen["completed"] += 1

    rejected_before = pool.statistics().rejected
    first_wave_rejected = FIRST_WAVE - MAX_WORKERS - QUEUE_SIZE
    async with anyio.create_task_group() as group:
        for index in range(FIRST_WAVE):
            group.start_soon(caller, index)
        await await_stats(
            pool, lambda s: s.rejected == rejected_before + first_wave_rejected
        )
        stats = pool.statistics()
        assert stats.active == MAX_WORKERS
        assert stats.queued == QUEUE_SIZE

        gate.set()
        for index in range(FIRST_WAVE, CALLERS):
            group.start_soon(caller, index)


@pytest.mark.anyio
async def test_overload_completes_or_rejects() -> None:
    counter = ConcurrencyCounter()
    seen: Counter[str] = Counter()
    rounds = WARM_UP_ROUNDS + MEASURED_ROUNDS
    # Leave tracing on afterwards if it was on before, as with
    # PYTHONTRACEMALLOC set.
    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        with executor(max_workers=MAX_WORKERS, queue_size=QUEUE_SIZE) as pool:
            sampler = StatsSampler(pool)
            async with anyio.create_task_group() as group:
                group.start_soon(sampler.run)
                for _ in range(WARM_UP_ROUNDS):
                    await overload_round(pool, counter, sampler, seen)
                gc.collect()
                memory_before, _ = tracemalloc.get_traced_memory()

                for _ in range(MEASURED_ROUNDS):
                    await overload_round(pool, counter, sampler, seen)
                gc.collect()
                memory_after, _ = tracemalloc.get_traced_memory()
                sampler.stop.set()
            stats = pool.statistics()
    finally:
        if not was_tracing:
            tracemalloc.stop()

    # Every caller saw exactly one outcome, and only full-queue rejections.
    assert seen["completed"] + seen["rejected"] == rounds * CALLERS
    assert seen["rejected"] == seen["queue_full"]
    assert seen["rejected"] >= rounds * (FIRST_WAVE - MAX_WORKERS - QUEUE_SIZE)

    # The statistics count what the callers saw.
    assert stats.completed == seen["completed"]
    assert stats.rejected == seen["rejected"]
    assert stats.rejected_queue_full == seen["rejected"]
    assert stats.failed == 0
    assert stats.withdrawn == 0
    assert stats.abandoned_total == 0
    assert counter.calls == seen["completed"]

    # Neither bound was ever passed, and both were reached.
    assert counter.max_running <= MAX_WORKERS
    assert sampler.samples > 0
    assert sampler.max_active <= MAX_WORKERS
    assert sampler.max_queued <= QUEUE_SIZE
    assert stats.peak_active == MAX_WORKERS
    assert stats.peak_queued == QUEUE_SIZE

    growth = memory_after - memory_before
    assert growth < MEMORY_GROWTH_LIMIT, f"traced memory grew by {growth} bytes"


# -- queue order ------------------------------------------------------------------


def queued_is(count: int) -> Callable[[ExecutorStatistics], bool]:
    return lambda stats: stats.queued == count


@pytest.mark.anyio
async def test_run_queue_fifo_order() -> None:
    gate = Gate()
    order: list[int] = []
    with executor(max_workers=1, queue_size=20) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)
        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(pool.run, order.append, index)
                # trio may start new tasks in reverse order, so admit one at a
                # time.
                await await_stats(pool, queued_is(index + 1))
            gate.open()
        blocker.result(timeout=10)

    assert order == list(range(20))


@pytest.mark.anyio
async def test_run_fifo_after_withdrawals() -> None:
    gate = Gate()
    order: list[int] = []
    scopes: dict[int, anyio.CancelScope] = {}

    async def queued_call(index: int) -> None:
        with anyio.CancelScope() as scope:
            scopes[index] = scope
            await pool.run(order.append, index)

    with executor(max_workers=1, queue_size=20) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)
        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(queued_call, index)
                await await_stats(pool, queued_is(index + 1))
            withdrawn = [index for index in range(20) if index % 3 == 1]
            for index in withdrawn:
                scopes[index].cancel()
            await await_stats(pool, lambda s: s.withdrawn == len(withdrawn))
            gate.open()
        blocker.result(timeout=10)
        stats = pool.statistics()

    assert order == [index for index in range(20) if index not in withdrawn]
    assert stats.completed == 1 + len(order)
    assert stats.abandoned_total == 0


# -- several event loops ----------------------------------------------------------


def test_event_loops_in_threads_share_bound() -> None:
    max_workers = 3
    tasks_per_loop = 9
    calls_per_task = 25
    runners: list[Callable[[Callable[[], Coroutine[Any, Any, None]]], None]] = [
        lambda main: asyncio.run(main()),
        lambda main: asyncio.run(main()),
        lambda main: asyncio.run(main()),
        trio.run,
    ]
    calls = len(runners) * tasks_per_loop * calls_per_task
    # Every call waits until max_workers calls are inside the function, so
    # the calls fail with BrokenBarrierError unless the executor keeps all
    # its workers busy. The total is a multiple of max_workers, so the last
    # group of calls fills too.
    assert calls % max_workers == 0
    barrier = threading.Barrier(max_workers, timeout=10)
    counter = ConcurrencyCounter()
    start = threading.Barrier(len(runners), timeout=10)
    totals = [0] * len(runners)
    errors: list[BaseException] = []

    def work(value: int) -> int:
        with counter.running_call():
            barrier.wait()
            return value

    # The queue has room for every caller, so no call is rejected.
    with executor(max_workers=max_workers, queue_size=64) as pool:

        def run_loop(index: int) -> None:
            async def caller() -> None:
                for value in range(calls_per_task):
                    assert await pool.run(work, value) == value
                    totals[index] += 1

            async def main() -> None:
                async with anyio.create_task_group() as group:
                    for _ in range(tasks_per_loop):
                        group.start_soon(caller)

            try:
                start.wait()
                runners[index](main)
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run_loop, args=(index,))
            for index in range(len(runners))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        stats = pool.statistics()

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert counter.max_running <= max_workers
    assert counter.calls == calls
    assert totals == [tasks_per_loop * calls_per_task] * len(runners)
    assert stats.completed == calls
    assert stats.peak_active == max_workers
    assert stats.rejected == 0
    assert stats.failed == 0


# -- callers that gave up -----------------------------------------------------------


def dropped_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "buttress.executor" and record.levelno == logging.DEBUG
    ]


@pytest.mark.anyio
async def test_cancelled_caller_result_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress.executor")
    gate = Gate()
    with executor(max_workers=1, name="vault-io") as pool:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(pool.run, gate, "late result")
                await anyio.to_thread.run_sync(gate.wait_entered, 1)
                group.cancel_scope.cancel()
        during = pool.statistics()
        logged_during = dropped_messages(caplog)

        gate.open()
        # The worker logs before it frees its slot, so active 0 means the
        # line was written.
        after = await await_stats(pool, lambda s: s.active == 0)

    assert during.abandoned == 1
    assert logged_during == []
    assert after.abandoned == 0
    assert after.abandoned_total == 1
    assert after.completed == 1
    assert dropped_messages(caplog) == [
        "executor vault-io dropped the result of a call whose caller gave up"
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_timed_out_caller_error_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress.executor")
    gate = Gate()

    def fail_late() -> None:
        gate()
        raise ConnectionError("dependency down")

    with executor(max_workers=1, name="vault-io") as pool:
        with pytest.raises(DeadlineExceeded):
            await pool.run(fail_late, timeout=30.0)
        during = pool.statistics()

        gate.open()
        # Polled from a plain thread: a timer on the virtual-time loop would
        # jump ahead instead of waiting for the worker.
        after = await anyio.to_thread.run_sync(
            wait_for_stats, pool, lambda s: s.active == 0
        )

    assert during.abandoned == 1
    assert after.abandoned == 0
    assert after.abandoned_total == 1
    assert after.failed == 1
    assert dropped_messages(caplog) == [
        "executor vault-io dropped the ConnectionError of a call whose caller gave up"
    ]
