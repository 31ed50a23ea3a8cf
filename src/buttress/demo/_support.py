"""
Parts that the phases share: the target server, the phase context, load
loops, monitoring, and the checks that every phase makes.
"""

from __future__ import annotations

import functools
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import hvac

from .. import CircuitBreaker, Listener, LoggingListener
from ..testing import OpenBaoDevServer
from ..vault import VaultAdapter
from ._record import CallRecord, Outcome, PhaseRecorder, ResourceSampler, percentile
from ._report import CheckList, Printer, run_progress

__all__ = [
    "FAST_REJECTION_MEDIAN",
    "Phase",
    "PhaseContext",
    "ReadVerifier",
    "Target",
    "breaker_of",
    "calls_between",
    "expect_bounds",
    "expect_fast_rejections",
    "expect_reads",
    "monitored",
    "outcome_summary",
    "purge_secrets",
    "read_loop",
    "wait_for",
    "write_all",
]

# Threads that may exist besides the executor's workers during a phase:
# anyio's worker threads, which run `server.seal()`, `server.unseal()` and
# the cleanup and stay idle for a while afterwards, and the event loop's own.
THREAD_SLACK = 4

# A local rejection takes well under a millisecond of CPU. What the caller
# measures also includes waits for the CPU, the GIL and garbage collection,
# which reached 200 ms for single calls when two CPU-bound processes shared
# a 2-core machine. So the median gets a tight limit, and the slowest call
# one relative to the timeout that a call waiting for the server would hit.
FAST_REJECTION_MEDIAN = 0.005

# Socket timeout of each cleanup request, in seconds.
_PURGE_TIMEOUT = 10.0


@attrs.frozen
class Target:
    """
    The server the demo talks to.

    ``server`` is the dev server the demo started, or None for a server
    given by ``VAULT_ADDR``, which the demo never freezes or seals.
    ``verify`` is the TLS verification setting: True, False or the path of
    a CA bundle.
    """

    url: str
    token: str = attrs.field(repr=False)
    namespace: str | None
    mount_point: str
    prefix: str
    server: OpenBaoDevServer | None
    verify: bool | str = True


@attrs.frozen
class PhaseContext:
    """
    The server, backend, output and options of one phase run, and the
    secret paths the phase was given, which the runner purges afterwards.
    """

    target: Target
    backend: str
    printer: Printer
    verbose: bool
    quick: bool
    written_paths: list[str] = attrs.Factory(list)

    def config(self, **overrides: Any) -> dict[str, Any]:
        """
        Return an adapter configuration for this target with *overrides*.
        """
        config: dict[str, Any] = {
            "url": self.target.url,
            "token": self.target.token,
            "timeout_seconds": 5.0,
            "max_concurrent_operations": 8,
            "max_queue_size_multiplier": 2,
            "circuit_breaker_enabled": True,
            "circuit_breaker_failure_threshold": 5,
            "circuit_breaker_reset_timeout_seconds": 2.0,
            "retry": {
                "max_attempts": 3,
                "initial_backoff_seconds": 0.05,
                "max_backoff_seconds": 0.5,
                "exponential_base": 2.0,
            },
        }
        if self.target.namespace:
            config["namespace"] = self.target.namespace
        if self.target.verify is not True:
            config["verify"] = self.target.verify
        config.update(overrides)
        return config

    def adapter(self, recorder: PhaseRecorder, **overrides: Any) -> VaultAdapter:
        """
        Create an adapter whose retry and breaker events go to *recorder*,
        and also to the log with ``--verbose``.
        """
        listeners: list[Listener] = [recorder]
        if self.verbose:
            listeners.append(LoggingListener())
        return VaultAdapter(self.config(**overrides), listeners=listeners)

    def paths(self, phase: str, count: int) -> list[str]:
        """
        Return *count* secret paths private to this phase and backend, and
        remember them for `purge_secrets`.
        """
        paths = [
            f"{self.target.prefix}/{phase}-{self.backend}/secret-{i:02d}"
            for i in range(count)
        ]
        self.written_paths.extend(paths)
        return paths

    def require_server(self) -> OpenBaoDevServer:
        """
        Return the dev server the demo started, which destructive phases
        need.
        """
        server = self.target.server
        if server is None:
            msg = "this phase freezes or seals the server, so it runs only on the dev server the demo starts"
            raise RuntimeError(msg)
        return server


@attrs.frozen
class Phase:
    """
    A named demo phase. A ``destructive`` phase freezes or seals the server.
    """

    name: str
    title: str
    destructive: bool
    run: Callable[[PhaseContext, PhaseRecorder, CheckList], Awaitable[None]]


async def wait_for(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.02
) -> bool:
    """
    Poll *predicate* until it returns True or *timeout* seconds pass.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(interval)
    return True


async def _sample_executor(
    adapter: VaultAdapter, sampler: ResourceSampler, stop: anyio.Event
) -> None:
    while not stop.is_set():
        sampler.sample(adapter.executor.statistics())
        with anyio.move_on_after(0.02):
            await stop.wait()


@asynccontextmanager
async def monitored(
    ctx: PhaseContext,
    recorder: PhaseRecorder,
    adapter: VaultAdapter,
    sampler: ResourceSampler,
) -> AsyncIterator[anyio.abc.TaskGroup]:
    """
    Run the progress line and the executor sampler around the body, and
    yield a task group for the body's load tasks.

    The body must make its load tasks end, for example by setting the event
    they watch, because the block waits for them before it stops the
    monitors.
    """
    stop = anyio.Event()
    breaker = breaker_of(adapter)

    def breaker_state() -> str:
        return breaker.statistics().state.value

    async with anyio.create_task_group() as monitors:
        monitors.start_soon(run_progress, ctx.printer, recorder, breaker_state, stop)
        monitors.start_soon(_sample_executor, adapter, sampler, stop)
        try:
            async with anyio.create_task_group() as load:
                yield load
        finally:
            stop.set()


@attrs.define
class ReadVerifier:
    """
    The values each path should contain, and how many reads matched them.
    """

    expected: dict[str, dict[str, str]]
    matched: int = 0
    mismatched: int = 0

    def verify(self, path: str, record: CallRecord) -> None:
        """
        Compare a successful read's data with the expected value of *path*.
        """
        if record.outcome is not Outcome.SUCCESS:
            return
        if record.value.data == self.expected[path]:
            self.matched += 1
        else:
            self.mismatched += 1


async def read_loop(
    recorder: PhaseRecorder,
    adapter: VaultAdapter,
    verifier: ReadVerifier,
    mount_point: str,
    stop: anyio.Event,
    seed: int,
    pause: float = 0.05,
) -> None:
    """
    Read random paths until *stop* is set, pausing between calls.
    """
    rng = random.Random(seed)
    paths = sorted(verifier.expected)
    while not stop.is_set():
        path = rng.choice(paths)
        record = await recorder.call(
            functools.partial(adapter.read_secret, path, mount_point=mount_point)
        )
        verifier.verify(path, record)
        with anyio.move_on_after(pause):
            await stop.wait()


async def write_all(
    adapter: VaultAdapter, paths: Sequence[str], mount_point: str, label: str
) -> dict[str, dict[str, str]]:
    """
    Write a fresh value to every path and return the values by path.

    These setup writes are not recorded, so they never count in a phase.
    """
    values: dict[str, dict[str, str]] = {}
    for path in paths:
        data = {"label": label, "value": secrets.token_hex(8)}
        await adapter.write_secret(path, data, mount_point=mount_point)
        values[path] = data
    return values


def breaker_of(adapter: VaultAdapter) -> CircuitBreaker:
    """
    Return the adapter's circuit breaker, which every demo config enables.
    """
    breaker = adapter.breaker
    if breaker is None:
        msg = "the demo adapter has no circuit breaker. Set circuit_breaker_enabled to True."
        raise RuntimeError(msg)
    return breaker


def _purge_blocking(target: Target, paths: Sequence[str]) -> str | None:
    # The adapter's delete_secret only soft-deletes the latest version, so
    # the demo removes every version and the metadata with hvac itself.
    client = hvac.Client(
        url=target.url,
        token=target.token,
        namespace=target.namespace,
        verify=target.verify,
        timeout=_PURGE_TIMEOUT,
    )
    try:
        for done, path in enumerate(paths):
            try:
                client.secrets.kv.v2.delete_metadata_and_all_versions(
                    path, mount_point=target.mount_point
                )
            except Exception as exc:
                return (
                    f"deleting secret {done + 1} of {len(paths)} failed with "
                    f"{type(exc).__name__}"
                )
    finally:
        client.adapter.close()
    return None


async def purge_secrets(target: Target, paths: Sequence[str]) -> str | None:
    """
    Delete every version and the metadata of each path, stopping at the
    first failure.

    Returns:
        None when every path was deleted, else what failed.
    """
    if not paths:
        return None
    return await anyio.to_thread.run_sync(_purge_blocking, target, paths)


def expect_bounds(
    checks: CheckList, adapter: VaultAdapter, sampler: ResourceSampler
) -> None:
    """
    Check that the executor's workers, queue and the process's threads
    stayed within their limits during the phase.
    """
    stats = adapter.executor.statistics()
    checks.expect(
        "executor never ran more calls than max_workers",
        stats.peak_active <= stats.max_workers
        and sampler.max_active <= stats.max_workers,
        f"peak_active={stats.peak_active}, max sampled active={sampler.max_active}, "
        f"max_workers={stats.max_workers}, {sampler.samples} samples",
    )
    checks.expect(
        "executor queue never exceeded its capacity",
        stats.peak_queued <= stats.queue_capacity
        and sampler.max_queued <= stats.queue_capacity,
        f"peak_queued={stats.peak_queued}, max sampled queued={sampler.max_queued}, "
        f"queue_capacity={stats.queue_capacity}",
    )
    thread_limit = sampler.baseline_threads + stats.max_workers + THREAD_SLACK
    checks.expect(
        "live threads stayed bounded",
        sampler.max_threads <= thread_limit
        and sampler.max_executor_threads <= stats.max_workers,
        f"max threads={sampler.max_threads} (limit {thread_limit}: {sampler.baseline_threads} "
        f"at start + {stats.max_workers} workers + {THREAD_SLACK}), "
        f"max executor threads={sampler.max_executor_threads}, "
        f"{stats.abandoned_total} calls abandoned by their callers",
    )


def expect_reads(checks: CheckList, verifier: ReadVerifier, description: str) -> None:
    checks.expect(
        description,
        verifier.mismatched == 0 and verifier.matched > 0,
        f"{verifier.matched} reads matched, {verifier.mismatched} did not",
    )


def expect_fast_rejections(
    checks: CheckList, calls: Sequence[CallRecord], outcome: Outcome, timeout: float
) -> None:
    """
    Check that calls rejected on their first attempt returned at once: the
    median under `FAST_REJECTION_MEDIAN` and the slowest under half the
    operation *timeout*, so no rejection waited for the server.

    A call rejected after retries also slept its backoff first, so it is
    left out.
    """
    latencies = [r.latency for r in calls if r.outcome is outcome and r.retries == 0]
    median = percentile(latencies, 0.50)
    slowest = max(latencies, default=0.0)
    checks.expect(
        f"{outcome.value} rejections returned at once",
        bool(latencies) and median < FAST_REJECTION_MEDIAN and slowest < timeout / 2,
        f"{len(latencies)} rejected on the first attempt, median {median * 1000:.2f} ms "
        f"(limit {FAST_REJECTION_MEDIAN * 1000:.0f} ms), p99 "
        f"{percentile(latencies, 0.99) * 1000:.2f} ms, max {slowest * 1000:.2f} ms "
        f"(limit {timeout / 2 * 1000:.0f} ms, half of timeout_seconds)",
    )


def outcome_summary(calls: Sequence[CallRecord]) -> str:
    counts: dict[str, int] = {}
    for record in calls:
        key = (
            record.error_type
            if record.outcome is Outcome.ERROR
            else record.outcome.value
        )
        counts[key or "?"] = counts.get(key or "?", 0) + 1
    return (
        ", ".join(f"{key} {count}" for key, count in sorted(counts.items()))
        or "no calls"
    )


def calls_between(
    calls: Sequence[CallRecord], start: float, end: float
) -> list[CallRecord]:
    """
    Return the calls that both started and finished in [start, end].
    """
    return [
        record for record in calls if record.started >= start and record.finished <= end
    ]
