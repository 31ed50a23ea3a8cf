"""
Running blocking functions in worker threads from async code: one-call
latency, throughput with 100 concurrent tasks, the cost of a rejection, and
an overload run.

Every subject gets 10 worker threads: asyncio's ``run_in_executor`` with a
``ThreadPoolExecutor(10)``, ``asyncio.to_thread`` with a 10-worker default
executor, anyio's ``to_thread.run_sync`` with ``CapacityLimiter(10)`` on
asyncio and on trio, trio's ``to_thread.run_sync`` with a
``trio.CapacityLimiter(10)``, and buttress ``BoundedExecutor.run`` on asyncio
and on trio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import trio
from _common import (
    Subject,
    async_rejection_loop,
    measure_async,
    measure_sync,
    module_main,
    percentile,
    progress,
    rss_kib,
    sync_rejection_loop,
)

import buttress

# Latency and throughput keep the best of this many rounds in a full run.
FULL_ROUNDS = 3

WORKERS = 10
QUEUE_SIZE = 10_000
TASKS = 100
TOTAL_CALLS = 10_000
SLEEP_SECONDS = 0.001
IDEAL_CALLS_PER_SECOND = WORKERS / SLEEP_SECONDS

# The overload run uses a small queue, so ten times the capacity is a
# number of tasks an event loop handles easily.
OVERLOAD_QUEUE_SIZE = 90
OVERLOAD_CALLERS = 10 * (WORKERS + OVERLOAD_QUEUE_SIZE)
OVERLOAD_PAUSE_SECONDS = 0.001
OVERLOAD_SAMPLE_SECONDS = 0.005

RUN_IN_EXECUTOR = "asyncio loop.run_in_executor, ThreadPoolExecutor(10)"
TO_THREAD = "asyncio.to_thread, default executor of 10"
ANYIO_ASYNCIO = "anyio.to_thread.run_sync, CapacityLimiter(10), asyncio"
ANYIO_TRIO = "anyio.to_thread.run_sync, CapacityLimiter(10), trio"
TRIO = "trio.to_thread.run_sync, CapacityLimiter(10)"
BUTTRESS_ASYNCIO = "buttress BoundedExecutor.run, asyncio"
BUTTRESS_TRIO = "buttress BoundedExecutor.run, trio"

Submit = Callable[[Callable[[], object]], Awaitable[object]]


def noop() -> None:
    return None


def sleep_1ms() -> None:
    time.sleep(SLEEP_SECONDS)


# -- subjects: each yields a function that runs one call in a worker -------


@asynccontextmanager
async def _run_in_executor() -> AsyncIterator[Submit]:
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(WORKERS)
    try:
        yield lambda fn: loop.run_in_executor(pool, fn)
    finally:
        pool.shutdown(wait=True)


@asynccontextmanager
async def _to_thread() -> AsyncIterator[Submit]:
    # The event loop shuts its default executor down when it closes.
    pool = concurrent.futures.ThreadPoolExecutor(WORKERS)
    asyncio.get_running_loop().set_default_executor(pool)
    yield asyncio.to_thread


@asynccontextmanager
async def _anyio() -> AsyncIterator[Submit]:
    limiter = anyio.CapacityLimiter(WORKERS)

    def submit(fn: Callable[[], object]) -> Awaitable[object]:
        return anyio.to_thread.run_sync(fn, limiter=limiter)

    yield submit


@asynccontextmanager
async def _trio() -> AsyncIterator[Submit]:
    limiter = trio.CapacityLimiter(WORKERS)

    def submit(fn: Callable[[], object]) -> Awaitable[object]:
        return trio.to_thread.run_sync(fn, limiter=limiter)

    yield submit


@asynccontextmanager
async def _buttress() -> AsyncIterator[Submit]:
    executor = buttress.BoundedExecutor(max_workers=WORKERS, queue_size=QUEUE_SIZE)
    try:
        yield executor.run
    finally:
        executor.shutdown(wait=True)


# (backend, context manager) per subject, in table order.
SUBJECTS: dict[str, tuple[str, Callable[[], Any]]] = {
    RUN_IN_EXECUTOR: ("asyncio", _run_in_executor),
    TO_THREAD: ("asyncio", _to_thread),
    ANYIO_ASYNCIO: ("asyncio", _anyio),
    BUTTRESS_ASYNCIO: ("asyncio", _buttress),
    ANYIO_TRIO: ("trio", _anyio),
    TRIO: ("trio", _trio),
    BUTTRESS_TRIO: ("trio", _buttress),
}


# -- measurements -----------------------------------------------------------


async def _latency(submit: Submit, fn: Callable[[], object], calls: int) -> float:
    """
    Return the mean seconds per call of *calls* sequential calls.
    """
    started = time.perf_counter_ns()
    for _ in range(calls):
        await submit(fn)
    return (time.perf_counter_ns() - started) / calls / 1e9


async def _throughput(submit: Submit, fn: Callable[[], object]) -> float:
    """
    Return calls per second of TASKS tasks sharing TOTAL_CALLS calls.
    """
    per_task = TOTAL_CALLS // TASKS

    async def task() -> None:
        for _ in range(per_task):
            await submit(fn)

    started = time.perf_counter_ns()
    async with anyio.create_task_group() as group:
        for _ in range(TASKS):
            group.start_soon(task)
    elapsed = (time.perf_counter_ns() - started) / 1e9
    return per_task * TASKS / elapsed


async def _one_round(name: str, quick: bool) -> dict[str, float]:
    _, make = SUBJECTS[name]
    async with make() as submit:
        # Warm-up: start every worker thread and take the first-call costs.
        async def warm_up() -> None:
            await submit(noop)

        async with anyio.create_task_group() as group:
            for _ in range(TASKS):
                group.start_soon(warm_up)
        await _latency(submit, noop, 50)
        return {
            "latency_noop": await _latency(submit, noop, 500 if quick else 2000),
            "latency_sleep": await _latency(submit, sleep_1ms, 100 if quick else 300),
            "throughput_noop": await _throughput(submit, noop),
            "throughput_sleep": await _throughput(submit, sleep_1ms),
        }


def _run_round(name: str, quick: bool) -> dict[str, float]:
    backend, _ = SUBJECTS[name]
    result: dict[str, float] = anyio.run(_one_round, name, quick, backend=backend)
    return result


def _bare_latencies(quick: bool) -> dict[str, float]:
    """
    Return the mean seconds per direct call of each function, no thread hop.
    """
    best = {"latency_noop": float("inf"), "latency_sleep": float("inf")}
    for _ in range(3):
        started = time.perf_counter_ns()
        for _ in range(10_000):
            noop()
        best["latency_noop"] = min(
            best["latency_noop"], (time.perf_counter_ns() - started) / 1e13
        )
        calls = 100 if quick else 300
        started = time.perf_counter_ns()
        for _ in range(calls):
            sleep_1ms()
        per_call = (time.perf_counter_ns() - started) / calls / 1e9
        best["latency_sleep"] = min(best["latency_sleep"], per_call)
    return best


def _speed_tables(subject: Subject, quick: bool) -> dict[str, dict[str, float]]:
    rounds = 1 if quick else FULL_ROUNDS
    best: dict[str, dict[str, float]] = {}
    for round_number in range(rounds):
        for name in SUBJECTS:
            progress(f"executor: round {round_number + 1}/{rounds}, {name}")
            result = _run_round(name, quick)
            previous = best.setdefault(name, result)
            for key, value in result.items():
                better = min if key.startswith("latency") else max
                previous[key] = better(previous[key], value)
    bare = _bare_latencies(quick)

    latency = subject.table(
        "Executor, one-call round trip (sequential calls from one task)",
        [
            ("case", "case", "text"),
            ("noop", "no-op", "seconds"),
            ("noop_ratio", "x run_in_executor", "ratio"),
            ("sleep", "sleep(1 ms)", "seconds"),
            ("overhead", "sleep(1 ms) minus direct call", "seconds"),
        ],
        note="The direct row calls the function in the event loop's thread.",
    )
    latency.append(
        {
            "case": "direct call, no thread",
            "noop": bare["latency_noop"],
            "noop_ratio": None,
            "sleep": bare["latency_sleep"],
            "overhead": None,
        }
    )
    reference = best[RUN_IN_EXECUTOR]["latency_noop"]
    for name, result in best.items():
        latency.append(
            {
                "case": name,
                "noop": result["latency_noop"],
                "noop_ratio": result["latency_noop"] / reference,
                "sleep": result["latency_sleep"],
                "overhead": result["latency_sleep"] - bare["latency_sleep"],
            }
        )

    sleep_ideal = WORKERS / bare["latency_sleep"]
    throughput = subject.table(
        f"Executor, throughput: {TASKS} tasks, {TOTAL_CALLS:,} calls, {WORKERS} workers",
        [
            ("case", "case", "text"),
            ("noop", "no-op calls/s", "rate"),
            ("noop_ratio", "x run_in_executor", "ratio"),
            ("sleep", "sleep(1 ms) calls/s", "rate"),
            ("efficiency", "efficiency", "percent"),
            ("measured_efficiency", "vs measured sleep", "percent"),
        ],
        note=(
            f"Efficiency is calls/s over {IDEAL_CALLS_PER_SECOND:,.0f} "
            f"({WORKERS} workers x 1,000 calls/s). time.sleep(0.001) took "
            f"{bare['latency_sleep'] * 1e3:.3f} ms here, so the last column "
            f"divides by {sleep_ideal:,.0f} calls/s instead."
        ),
    )
    reference = best[RUN_IN_EXECUTOR]["throughput_noop"]
    for name, result in best.items():
        throughput.append(
            {
                "case": name,
                "noop": result["throughput_noop"],
                "noop_ratio": result["throughput_noop"] / reference,
                "sleep": result["throughput_sleep"],
                "efficiency": result["throughput_sleep"] / IDEAL_CALLS_PER_SECOND,
                "measured_efficiency": result["throughput_sleep"] / sleep_ideal,
            }
        )
    return best


# -- rejections -------------------------------------------------------------


def _rejection_costs(subject: Subject, quick: bool) -> None:
    """
    Fill an executor with blocked calls, then time calls that it rejects.
    """
    release = threading.Event()
    executor = buttress.BoundedExecutor(max_workers=WORKERS, queue_size=QUEUE_SIZE)
    blocked_calls = [executor.submit(release.wait) for _ in range(WORKERS + QUEUE_SIZE)]
    try:
        stats = executor.statistics()
        if stats.active != WORKERS or stats.queued != QUEUE_SIZE:
            msg = f"executor was not full before timing rejections: {stats}"
            raise RuntimeError(msg)
        saturated = buttress.ExecutorSaturated
        results = measure_sync(
            {"submit": sync_rejection_loop(lambda: executor.submit(noop), saturated)},
            quick=quick,
        )

        async def in_loop() -> dict[str, float]:
            cases = {"run": async_rejection_loop(lambda: executor.run(noop), saturated)}
            return await measure_async(cases, quick=quick)

        on_asyncio = anyio.run(in_loop, backend="asyncio")
        on_trio = anyio.run(in_loop, backend="trio")
        rejected = executor.statistics().rejected_queue_full
    finally:
        release.set()
        executor.shutdown(wait=True, cancel_queued=False)
    for future in blocked_calls:
        future.result()
    rows = subject.table(
        f"BoundedExecutor rejection cost (full: {WORKERS} running, {QUEUE_SIZE:,} queued)",
        [("case", "case", "text"), ("ns", "per rejection", "ns")],
        note=f"{rejected:,} rejections counted by statistics() across all rows.",
    )
    rows.append({"case": "submit() from a plain thread", "ns": results["submit"]})
    rows.append({"case": "await run() on asyncio", "ns": on_asyncio["run"]})
    rows.append({"case": "await run() on trio", "ns": on_trio["run"]})


# -- overload ---------------------------------------------------------------


async def _overload(seconds: float) -> dict[str, Any]:
    gc.collect()
    rss_before = rss_kib()
    executor = buttress.BoundedExecutor(
        max_workers=WORKERS, queue_size=OVERLOAD_QUEUE_SIZE
    )
    counts = {"completed": 0, "rejected": 0}
    peaks = {"queued": 0, "active": 0, "threads": 0, "rss": rss_before}
    latencies: list[float] = []
    samples = 0
    stop = anyio.Event()

    async def caller() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await executor.run(sleep_1ms)
            except buttress.ExecutorSaturated:
                counts["rejected"] += 1
                await anyio.sleep(OVERLOAD_PAUSE_SECONDS)
            else:
                counts["completed"] += 1
                latencies.append(time.perf_counter() - started)

    async def sampler() -> None:
        nonlocal samples
        while not stop.is_set():
            stats = executor.statistics()
            samples += 1
            peaks["queued"] = max(peaks["queued"], stats.queued)
            peaks["active"] = max(peaks["active"], stats.active)
            peaks["threads"] = max(peaks["threads"], stats.threads)
            if samples % 10 == 0:
                peaks["rss"] = max(peaks["rss"], rss_kib())
            await anyio.sleep(OVERLOAD_SAMPLE_SECONDS)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(sampler)
        for _ in range(OVERLOAD_CALLERS):
            group.start_soon(caller)
        await anyio.sleep(seconds)
        stop.set()
    elapsed = time.perf_counter() - started
    final = executor.statistics()
    executor.shutdown(wait=True)
    latencies.sort()
    p50 = percentile(latencies, 0.50)
    p99 = percentile(latencies, 0.99)
    latencies.clear()
    gc.collect()
    return {
        "seconds": elapsed,
        "completed": counts["completed"],
        "rejected": counts["rejected"],
        "calls_per_second": counts["completed"] / elapsed,
        "p50": p50,
        "p99": p99,
        "samples": samples,
        "max_queued": max(peaks["queued"], final.peak_queued),
        "max_active": max(peaks["active"], final.peak_active),
        "max_threads": peaks["threads"],
        "counted_rejected": final.rejected_queue_full,
        "rss_before": rss_before,
        "rss_peak": peaks["rss"],
        "rss_after": rss_kib(),
    }


def _overload_table(subject: Subject, quick: bool) -> None:
    seconds = 1.0 if quick else 3.0
    rows = subject.table(
        f"BoundedExecutor overload: {OVERLOAD_CALLERS:,} callers, {WORKERS} workers, "
        f"queue {OVERLOAD_QUEUE_SIZE}, sleep(1 ms) calls, {seconds:.0f} s",
        [
            ("backend", "backend", "text"),
            ("completed", "completed", "int"),
            ("rejected", "rejected", "int"),
            ("calls_per_second", "completed/s", "rate"),
            ("p50", "p50 completed call", "seconds"),
            ("p99", "p99 completed call", "seconds"),
            ("samples", "samples", "int"),
            ("max_queued", "max queued", "int"),
            ("max_active", "max active", "int"),
            ("max_threads", "max threads", "int"),
            ("rss_before", "RSS before", "kib"),
            ("rss_peak", "RSS peak", "kib"),
            ("rss_after", "RSS after", "kib"),
        ],
        note=(
            f"Each caller loops: run sleep(1 ms); after a rejection it sleeps "
            f"{OVERLOAD_PAUSE_SECONDS * 1e3:.0f} ms. A task samples "
            f"statistics() every {OVERLOAD_SAMPLE_SECONDS * 1e3:.0f} ms, so "
            f"fewer samples than seconds / {OVERLOAD_SAMPLE_SECONDS} mean the "
            f"event loop lagged. The maxima include peak_queued and "
            f"peak_active from statistics()."
        ),
    )
    for backend in ("asyncio", "trio"):
        progress(f"executor: overload on {backend}")
        result = anyio.run(_overload, seconds, backend=backend)
        rows.append({"backend": backend, **result})
        bounded = (
            result["max_queued"] <= OVERLOAD_QUEUE_SIZE
            and result["max_active"] <= WORKERS
            and result["max_threads"] <= WORKERS
        )
        subject.target(
            f"overload on {backend}: queue, workers and threads stay bounded",
            f"queued ≤ {OVERLOAD_QUEUE_SIZE}, active and threads ≤ {WORKERS}",
            f"queued {result['max_queued']}, active {result['max_active']}, "
            f"threads {result['max_threads']}",
            bounded,
        )
        counted = result["counted_rejected"] == result["rejected"]
        subject.target(
            f"overload on {backend}: statistics() counts every rejection",
            "rejected_queue_full equals rejections seen by callers",
            f"{result['counted_rejected']:,} counted, {result['rejected']:,} seen",
            counted,
        )


# -- targets ----------------------------------------------------------------


def _ratio_target(
    subject: Subject,
    best: dict[str, dict[str, float]],
    ours: str,
    theirs: str,
    factor: float,
    key: str,
    label: str,
) -> None:
    ratio = best[ours][key] / best[theirs][key]
    goal = f"≥ {factor:g}x {theirs}"
    subject.target(f"{ours}, {label}", goal, f"{ratio:.2f}x", ratio >= factor)


def _targets(subject: Subject, best: dict[str, dict[str, float]]) -> None:
    for key, label in (
        ("throughput_noop", "no-op throughput"),
        ("throughput_sleep", "sleep(1 ms) throughput"),
    ):
        _ratio_target(subject, best, BUTTRESS_ASYNCIO, RUN_IN_EXECUTOR, 1.0, key, label)
        _ratio_target(subject, best, BUTTRESS_TRIO, TRIO, 1.0, key, label)
        _ratio_target(subject, best, BUTTRESS_ASYNCIO, ANYIO_ASYNCIO, 2.0, key, label)
        _ratio_target(subject, best, BUTTRESS_TRIO, ANYIO_TRIO, 2.0, key, label)
    for name in (BUTTRESS_ASYNCIO, BUTTRESS_TRIO):
        efficiency = best[name]["throughput_sleep"] / IDEAL_CALLS_PER_SECOND
        subject.target(
            f"{name}, sleep(1 ms) efficiency",
            "≥ 95 % of 10 workers x 1,000 calls/s",
            f"{efficiency * 100:.1f} %",
            efficiency >= 0.95,
        )


def run(quick: bool) -> Subject:
    subject = Subject("executor")
    best = _speed_tables(subject, quick)
    progress("executor: rejection cost")
    _rejection_costs(subject, quick)
    _overload_table(subject, quick)
    _targets(subject, best)
    subject.notes.append(
        "Throughput and latency are the best of "
        f"{1 if quick else FULL_ROUNDS} round(s); each round starts a fresh event "
        "loop per subject and warms it up with 100 concurrent no-op calls."
    )
    subject.notes.append(
        "For sleep(1 ms), every subject is bounded by the same ideal, so a "
        "2x lead over anyio is possible only if anyio reaches less than half "
        "of it; that target is meaningful for the no-op rows."
    )
    return subject


if __name__ == "__main__":
    module_main(run)
