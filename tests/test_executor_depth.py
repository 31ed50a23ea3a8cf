"""
Tests of BoundedExecutor beyond admission and the bound: never-queueing
calls, the queue timeout, the adaptive concurrency limit, the thread-exit
hook, the reset in a forked child, and rejection accounting.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future
from typing import Any

import anyio
import pytest

from _executor_helpers import Gate, executor, wait_for_stats
from _virtual_time import virtual_time_backends
from buttress import (
    AdaptiveLimit,
    BoundedExecutor,
    CallRejected,
    DeadlineExceeded,
    Event,
    ExecutorClosed,
    ExecutorSaturated,
    LimitChanged,
)


class EventRecorder:
    """
    A listener that keeps every event it receives.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def limits(self) -> list[tuple[int, int, str]]:
        return [
            (e.old, e.new, e.reason) for e in self.events if isinstance(e, LimitChanged)
        ]

    def rejections(self) -> list[str]:
        return [e.reason for e in self.events if isinstance(e, CallRejected)]


def fail() -> None:
    raise ConnectionError("dependency down")


# -- never queueing ---------------------------------------------------------------


@pytest.mark.anyio
async def test_run_nowait_rejects_when_busy() -> None:
    gate = Gate()
    with executor(max_workers=1, queue_size=5, name="vault-io") as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)

        with pytest.raises(ExecutorSaturated) as excinfo:
            await pool.run_nowait(gate)

        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert excinfo.value.reason == "no_free_worker"
    assert "'vault-io' has no free worker" in str(excinfo.value)
    assert "all 1 workers are busy" in str(excinfo.value)
    assert stats.queued == 0
    assert stats.rejected_no_free_worker == 1
    assert gate.entered == 1


def test_submit_nowait_runs_when_free() -> None:
    with executor(max_workers=2, queue_size=0) as pool:
        assert pool.submit_nowait(pow, 2, 8).result(timeout=10) == 256


@pytest.mark.anyio
async def test_run_nowait_follows_adaptive_limit() -> None:
    gate = Gate()
    adaptive = AdaptiveLimit(initial=1)
    with executor(max_workers=4, adaptive=adaptive) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)

        with pytest.raises(ExecutorSaturated) as excinfo:
            await pool.run_nowait(gate)

        gate.open()
        blocker.result(timeout=10)

    assert excinfo.value.reason == "no_free_worker"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_nowait_timeout() -> None:
    gate = Gate()
    with executor(max_workers=1) as pool:
        with pytest.raises(DeadlineExceeded):
            await pool.run_nowait(gate, timeout=30.0)

        stats = pool.statistics()
        gate.open()

    assert stats.abandoned == 1


# -- queue timeout ----------------------------------------------------------------


def test_call_queue_timeout() -> None:
    gate = Gate()
    ran: list[str] = []
    with executor(max_workers=1, queue_size=2, queue_timeout=0.05) as pool:
        blocker = pool.submit(gate)
        gate.wait_entered(1)

        with pytest.raises(ExecutorSaturated) as excinfo:
            pool.call(ran.append, "rejected after waiting")

        during = pool.statistics()
        gate.open()
        blocker.result(timeout=10)
        after = wait_for_stats(pool, lambda s: s.active == 0)

    assert excinfo.value.reason == "queue_timeout"
    assert "waited 0.050 s in the queue" in str(excinfo.value)
    assert during.queued == 0
    assert during.rejected_queue_timeout == 1
    assert during.rejected == 1
    assert during.withdrawn == 0
    assert after.completed == 1
    assert ran == []


def test_call_timeout_before_queue_timeout() -> None:
    gate = Gate()
    with executor(max_workers=1, queue_size=2, queue_timeout=30.0) as pool:
        blocker = pool.submit(gate)
        gate.wait_entered(1)

        with pytest.raises(DeadlineExceeded):
            pool.call(gate, timeout=0.05)

        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert stats.rejected_queue_timeout == 0
    assert stats.withdrawn == 1
    assert stats.queued == 0


def test_queue_timeout_skips_free_worker() -> None:
    with executor(max_workers=1, queue_timeout=0.001) as pool:
        for _ in range(20):
            assert pool.call(pow, 3, 3) == 27

    assert pool.statistics().rejected == 0


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_queue_timeout_first() -> None:
    gate = Gate()
    ran: list[str] = []
    with executor(max_workers=1, queue_timeout=5.0) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)
        started = anyio.current_time()

        with pytest.raises(ExecutorSaturated) as excinfo:
            await pool.run(ran.append, "rejected after waiting", timeout=60.0)

        waited = anyio.current_time() - started
        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert excinfo.value.reason == "queue_timeout"
    assert waited == pytest.approx(5.0)
    assert stats.rejected_queue_timeout == 1
    assert stats.withdrawn == 0
    assert ran == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_timeout_before_queue_timeout() -> None:
    gate = Gate()
    with executor(max_workers=1, queue_timeout=30.0) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)

        with pytest.raises(DeadlineExceeded):
            await pool.run(gate, timeout=5.0)

        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert stats.rejected_queue_timeout == 0
    assert stats.withdrawn == 1
    assert stats.queued == 0


# -- adaptive limit ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("initial", "limit"), [(2, 2), (None, 8), (50, 8)], ids=["given", "none", "above"]
)
def test_adaptive_starts_at_initial(initial: int | None, limit: int) -> None:
    with executor(max_workers=8, adaptive=AdaptiveLimit(initial=initial)) as pool:
        assert pool.statistics().limit == limit


def test_adaptive_limit_bounds_running() -> None:
    gate = Gate()
    with executor(max_workers=4, adaptive=AdaptiveLimit(initial=1)) as pool:
        futures = [pool.submit(gate) for _ in range(3)]
        gate.wait_entered(1)
        stats = pool.statistics()
        gate.open()
        for future in futures:
            future.result(timeout=10)

    assert stats.active == 1
    assert stats.queued == 2


@pytest.mark.parametrize(
    ("minimum", "limits", "changes"),
    [
        (1, [2, 1, 1], [(4, 2, "overload"), (2, 1, "overload")]),
        (3, [3, 3, 3], [(4, 3, "overload")]),
    ],
    ids=["halves-to-one", "stops-at-minimum"],
)
def test_record_overload_halves(
    minimum: int, limits: list[int], changes: list[tuple[int, int, str]]
) -> None:
    recorder = EventRecorder()
    adaptive = AdaptiveLimit(minimum=minimum, latency_target=30.0)
    with executor(max_workers=4, adaptive=adaptive, listeners=(recorder,)) as pool:
        seen = []
        for _ in range(3):
            pool.record_overload()
            seen.append(pool.statistics().limit)

    assert seen == limits
    assert recorder.limits() == changes


def test_record_overload_without_adaptive() -> None:
    recorder = EventRecorder()
    with executor(max_workers=4, listeners=(recorder,)) as pool:
        pool.record_overload()

        assert pool.statistics().limit == 4

    assert recorder.limits() == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_caller_timeout_cuts_limit() -> None:
    gate = Gate()
    recorder = EventRecorder()
    with executor(
        max_workers=4, adaptive=AdaptiveLimit(), listeners=(recorder,)
    ) as pool:
        with pytest.raises(DeadlineExceeded):
            await pool.run(gate, timeout=30.0)

        stats = pool.statistics()
        gate.open()

    assert stats.limit == 2
    assert recorder.limits() == [(4, 2, "timeout")]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_queued_timeout_keeps_limit() -> None:
    gate = Gate()
    recorder = EventRecorder()
    adaptive = AdaptiveLimit(initial=1)
    with executor(max_workers=4, adaptive=adaptive, listeners=(recorder,)) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)

        with pytest.raises(DeadlineExceeded):
            await pool.run(gate, timeout=30.0)

        stats = pool.statistics()
        gate.open()
        blocker.result(timeout=10)

    assert stats.limit == 1
    assert stats.withdrawn == 1
    assert [change for change in recorder.limits() if change[2] == "timeout"] == []


def test_call_timeout_cuts_limit() -> None:
    gate = Gate()
    with executor(max_workers=4, adaptive=AdaptiveLimit()) as pool:
        with pytest.raises(DeadlineExceeded):
            pool.call(gate, timeout=0.05)

        stats = pool.statistics()
        gate.open()

    assert stats.limit == 2


def test_limit_grows_with_fast_successes() -> None:
    recorder = EventRecorder()
    adaptive = AdaptiveLimit(initial=1, latency_target=30.0)
    with executor(max_workers=4, adaptive=adaptive, listeners=(recorder,)) as pool:
        limits = []
        for _ in range(9):
            pool.call(pow, 2, 2)
            limits.append(pool.statistics().limit)

    # Each success adds 1 / value, up to max_workers: 1, 2, 2.5, 2.9, 3.24,
    # 3.55, 3.83, then 4.
    assert limits == [2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert recorder.limits() == [
        (1, 2, "latency_ok"),
        (2, 3, "latency_ok"),
        (3, 4, "latency_ok"),
    ]


def test_slow_success_no_growth() -> None:
    adaptive = AdaptiveLimit(initial=1, latency_target=0.01)
    with executor(max_workers=4, adaptive=adaptive) as pool:
        # Waits at least 0.1 s, ten times the latency target.
        pool.call(threading.Event().wait, 0.1)

        assert pool.statistics().limit == 1


def test_failure_no_growth() -> None:
    adaptive = AdaptiveLimit(initial=1, latency_target=30.0)
    with executor(max_workers=4, adaptive=adaptive) as pool:
        for _ in range(3):
            with pytest.raises(ConnectionError):
                pool.call(fail)

        assert pool.statistics().limit == 1


def test_growth_starts_queued() -> None:
    first_gate, second_gate = Gate(), Gate()
    adaptive = AdaptiveLimit(initial=1, latency_target=30.0)
    with executor(max_workers=2, adaptive=adaptive) as pool:
        first = pool.submit(first_gate, "first")
        first_gate.wait_entered(1)
        queued = [pool.submit(second_gate, name) for name in ("second", "third")]

        assert pool.statistics().queued == 2

        first_gate.open()
        assert first.result(timeout=10) == "first"
        # Both queued calls run at once because the limit grew to 2.
        second_gate.wait_entered(2)
        stats = pool.statistics()
        second_gate.open()

        assert [future.result(timeout=10) for future in queued] == ["second", "third"]

    assert stats.limit == 2
    assert stats.active == 2
    assert stats.queued == 0


def test_cut_keeps_queued_waiting() -> None:
    first_gate, second_gate = Gate(), Gate()

    def fail_after(gate: Gate) -> None:
        gate()
        raise ConnectionError("dependency down")

    with executor(max_workers=2, adaptive=AdaptiveLimit(latency_target=30.0)) as pool:
        first = pool.submit(fail_after, first_gate)
        second = pool.submit(second_gate)
        first_gate.wait_entered(1)
        second_gate.wait_entered(1)
        pool.record_overload()
        queued = pool.submit(pow, 2, 4)

        first_gate.open()
        with pytest.raises(ConnectionError):
            first.result(timeout=10)
        # One call still runs, which uses up the whole limit of 1.
        stats = pool.statistics()

        second_gate.open()
        second.result(timeout=10)

        assert queued.result(timeout=10) == 16

    assert stats.limit == 1
    assert stats.active == 1
    assert stats.queued == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"minimum": 0}, ValueError, "minimum=0"),
        ({"minimum": 101}, ValueError, "minimum=101"),
        ({"latency_target": 0}, ValueError, "latency_target=0.0"),
        ({"latency_target": "fast"}, TypeError, "latency_target='fast'"),
        ({"decrease_ratio": 1.0}, ValueError, "decrease_ratio=1.0"),
        ({"decrease_ratio": 0.0}, ValueError, "decrease_ratio=0.0"),
        ({"minimum": 2, "initial": 1}, ValueError, "initial=1"),
    ],
)
def test_adaptive_invalid_message(
    kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as excinfo:
        AdaptiveLimit(**kwargs)

    assert "AdaptiveLimit" in str(excinfo.value)
    assert fragment in str(excinfo.value)


def test_adaptive_wrong_type() -> None:
    with pytest.raises(TypeError, match="adaptive=3") as excinfo:
        BoundedExecutor(adaptive=3)  # type: ignore[arg-type]

    assert "AdaptiveLimit" in str(excinfo.value)


def test_adaptive_minimum_above_workers() -> None:
    with pytest.raises(ValueError, match=r"adaptive\.minimum=4") as excinfo:
        BoundedExecutor(max_workers=2, adaptive=AdaptiveLimit(minimum=4))

    assert "max_workers=2" in str(excinfo.value)


# -- thread exit hook -------------------------------------------------------------


class ThreadResources:
    """
    Opens a per-thread resource inside calls and records, from the exit
    hook, which thread closed which resource.
    """

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.opened: dict[int, str] = {}
        self.closed: list[tuple[int, str | None]] = []

    def use(self, gate: Gate | None = None) -> int:
        ident = threading.get_ident()
        self.local.resource = f"resource of {ident}"
        with self.lock:
            self.opened[ident] = self.local.resource
        if gate is not None:
            gate()
        return ident

    def close(self) -> None:
        with self.lock:
            self.closed.append(
                (threading.get_ident(), getattr(self.local, "resource", None))
            )


def test_thread_exit_on_idle_retirement() -> None:
    resources = ThreadResources()
    with executor(max_workers=2, keep_alive=0.05, thread_exit=resources.close) as pool:
        ident = pool.call(resources.use)
        wait_for_stats(pool, lambda s: s.threads == 0)

        assert resources.closed == [(ident, f"resource of {ident}")]

        # A new call after retirement gets a new thread.
        assert pool.call(pow, 2, 3) == 8


def test_thread_exit_on_shutdown() -> None:
    gate = Gate()
    resources = ThreadResources()
    pool = BoundedExecutor(max_workers=2, thread_exit=resources.close, listeners=())
    futures = [pool.submit(resources.use, gate) for _ in range(2)]
    gate.wait_entered(2)

    assert resources.closed == []

    gate.open()
    idents = {future.result(timeout=10) for future in futures}

    assert pool.shutdown(wait=True, timeout=10)
    assert len(idents) == 2
    assert sorted(resources.closed) == sorted(
        (ident, f"resource of {ident}") for ident in idents
    )


def test_thread_exit_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken_hook() -> None:
        raise RuntimeError("could not close the connection")

    pool = BoundedExecutor(max_workers=1, thread_exit=broken_hook, listeners=())
    with caplog.at_level(logging.ERROR, logger="buttress.executor"):
        assert pool.call(pow, 2, 2) == 4
        assert pool.shutdown(wait=True, timeout=10)

    assert pool.statistics().threads == 0
    assert "thread_exit hook failed" in caplog.text


# -- fork ---------------------------------------------------------------------------


def report_from_child(pool: BoundedExecutor, connection: Any) -> None:
    """
    Run in a forked child: send the inherited executor's statistics and the
    result of a new call back to the parent.
    """
    before = pool.statistics()
    result = pool.call(pow, 2, 5)
    connection.send(
        {
            "threads": before.threads,
            "active": before.active,
            "queued": before.queued,
            "abandoned": before.abandoned,
            "result": result,
            "pid": os.getpid(),
        }
    )
    connection.close()


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(),
    reason="the platform cannot fork",
)
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)
def test_forked_child_starts_empty() -> None:
    gate = Gate()
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    with executor(max_workers=1, queue_size=2) as pool:
        running = pool.submit(gate)
        gate.wait_entered(1)
        queued = pool.submit(pow, 3, 2)
        parent = pool.statistics()

        child = context.Process(target=report_from_child, args=(pool, sender))
        child.start()
        sender.close()
        try:
            assert receiver.poll(30), "the child sent no report"
            report = receiver.recv()
        finally:
            child.join(timeout=30)
            gate.open()
        running.result(timeout=10)

        assert queued.result(timeout=10) == 9

    assert parent.threads == 1
    assert parent.queued == 1
    assert child.exitcode == 0
    assert report["pid"] != os.getpid()
    assert report["threads"] == 0
    assert report["active"] == 0
    assert report["queued"] == 0
    assert report["abandoned"] == 0
    assert report["result"] == 32


# -- rejection accounting ---------------------------------------------------------


def test_rejected_sums_reasons() -> None:
    gate = Gate()
    recorder = EventRecorder()
    pool = BoundedExecutor(
        max_workers=1, queue_size=1, queue_timeout=0.05, listeners=(recorder,)
    )
    blocker = pool.submit(gate)
    gate.wait_entered(1)
    with pytest.raises(ExecutorSaturated, match="waited"):
        pool.call(pow, 2, 2)
    queued: Future[Any] = pool.submit(gate)
    with pytest.raises(ExecutorSaturated, match="is saturated"):
        pool.submit(pow, 2, 2)
    with pytest.raises(ExecutorSaturated, match="no free worker"):
        pool.submit_nowait(pow, 2, 2)
    pool.shutdown(wait=False, cancel_queued=True)
    with pytest.raises(ExecutorClosed):
        pool.submit(pow, 2, 2)
    with pytest.raises(ExecutorClosed):
        queued.result(timeout=10)
    gate.open()
    blocker.result(timeout=10)
    assert pool.shutdown(wait=True, timeout=10)

    stats = pool.statistics()
    assert stats.rejected_queue_timeout == 1
    assert stats.rejected_queue_full == 1
    assert stats.rejected_no_free_worker == 1
    assert stats.rejected_closed == 2
    assert stats.rejected == 5
    assert stats.rejected == (
        stats.rejected_queue_timeout
        + stats.rejected_queue_full
        + stats.rejected_no_free_worker
        + stats.rejected_closed
    )
    assert recorder.rejections() == [
        "queue_timeout",
        "queue_full",
        "no_free_worker",
        "closed",
        "closed",
    ]
    assert {e.kind for e in recorder.events if isinstance(e, CallRejected)} == {
        "executor_saturated"
    }


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_time_backends())
async def test_run_queue_timeout_event() -> None:
    gate = Gate()
    recorder = EventRecorder()
    with executor(
        max_workers=1, queue_timeout=5.0, listeners=(recorder,), name="vault-io"
    ) as pool:
        blocker = pool.submit(gate)
        await anyio.to_thread.run_sync(gate.wait_entered, 1)

        with pytest.raises(ExecutorSaturated):
            await pool.run(gate)

        gate.open()
        blocker.result(timeout=10)

    rejected = [e for e in recorder.events if isinstance(e, CallRejected)]
    assert rejected == [CallRejected("vault-io", "executor_saturated", "queue_timeout")]
