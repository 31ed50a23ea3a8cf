"""
Circuit breakers: the cost of a call while closed and of a rejection while
open, next to a bare call, plus the memory a flood of rejections leaves.

Compared: buttress `CircuitBreaker`, pybreaker, circuitbreaker, aiobreaker
(async functions only) and purgatory, each used as a decorator the way its
documentation shows. pybreaker has no async form in this table, because its
async support needs tornado.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from _common import (
    AsyncLoop,
    Subject,
    SyncLoop,
    async_loop,
    async_rejection_loop,
    measure_async,
    measure_sync,
    missing_note,
    module_main,
    optional_import,
    progress,
    rss_kib,
    sync_loop,
    sync_rejection_loop,
)

import buttress

MISSING: list[str] = []
aiobreaker = optional_import("aiobreaker", MISSING)
circuitbreaker = optional_import("circuitbreaker", MISSING)
purgatory = optional_import("purgatory", MISSING)
pybreaker = optional_import("pybreaker", MISSING)

BARE = "bare call"
RAISE = "reference: raise and catch a ValueError"
BUTTRESS = "buttress CircuitBreaker"
PYBREAKER = "pybreaker CircuitBreaker"
CIRCUITBREAKER = "circuitbreaker CircuitBreaker"
AIOBREAKER = "aiobreaker CircuitBreaker"
PURGATORY = "purgatory circuit breaker factory"

# Open breakers stay open for the whole run.
OPEN_SECONDS = 3600

# Rejections in the memory check. The peers get fewer, because purgatory
# keeps a traceback entry for every rejection (about 1.5 KiB each).
REJECTIONS_FULL = 1_000_000
REJECTIONS_QUICK = 200_000
PEER_REJECTIONS_FULL = 100_000
PEER_REJECTIONS_QUICK = 20_000
WARM_UP_REJECTIONS = 10_000


def _rejection_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [buttress.CircuitOpen]
    if pybreaker is not None:
        types.append(pybreaker.CircuitBreakerError)
    if circuitbreaker is not None:
        types.append(circuitbreaker.CircuitBreakerError)
    if aiobreaker is not None:
        types.append(aiobreaker.CircuitBreakerError)
    if purgatory is not None:
        # purgatory raises its open-state object, which is an exception.
        from purgatory.domain.model import OpenedState

        types.append(OpenedState)
    return tuple(types)


# Any of these means "rejected because the breaker is open".
REJECTIONS = _rejection_types()


class Boom(Exception):
    """The failure used to trip breakers open."""


def noop() -> None:
    return None


def fail() -> None:
    raise Boom


def raise_value_error() -> None:
    raise ValueError("reference")


async def anoop() -> None:
    return None


async def afail() -> None:
    raise Boom


async def araise_value_error() -> None:
    raise ValueError("reference")


def _trip(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Boom:
        pass


async def _atrip(fn: Callable[[], Awaitable[object]]) -> None:
    try:
        await fn()
    except Boom:
        pass


def _buttress_breaker() -> buttress.CircuitBreaker:
    # No listeners: the default one logs each state change to stderr. No
    # event is emitted on the closed or rejection paths measured here.
    return buttress.CircuitBreaker(
        failure_threshold=1, reset_timeout=OPEN_SECONDS, name="bench", listeners=()
    )


# Set when a failure did not leave the buttress breaker open, so the
# benchmark had to fall back to force_open(); the runner prints it.
FORCED_OPEN_NOTE: list[str] = []


def _open_buttress_breaker() -> buttress.CircuitBreaker:
    """
    Return a buttress breaker opened by one failure, or forced open if the
    failure did not keep it open.
    """
    breaker = _buttress_breaker()
    _trip(breaker(fail))
    if breaker.statistics().state is buttress.CircuitState.OPEN:
        return breaker
    state = breaker.statistics().state.value
    if not FORCED_OPEN_NOTE:
        FORCED_OPEN_NOTE.append(
            f"After one failure with failure_threshold=1 and reset_timeout="
            f"{OPEN_SECONDS} s, the buttress breaker read {state!r} instead of "
            f"'open', so its rejection rows use force_open(). A forced-open "
            f"rejection skips formatting retry_after into the message."
        )
    breaker.reset()
    breaker.force_open()
    return breaker


def _circuitbreaker() -> Any:
    assert circuitbreaker is not None
    return circuitbreaker.CircuitBreaker(
        failure_threshold=1, recovery_timeout=OPEN_SECONDS
    )


def _sync_wrapped(opened: bool) -> dict[str, Callable[[], object]]:
    """
    Return each library's decorated no-op, with its breaker open if asked.
    """
    wrapped: dict[str, Callable[[], object]] = {}

    breaker = _open_buttress_breaker() if opened else _buttress_breaker()
    wrapped[BUTTRESS] = breaker(noop)

    if pybreaker is not None:
        py = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=OPEN_SECONDS)
        if opened:
            py.open()
        wrapped[PYBREAKER] = py(noop)

    if circuitbreaker is not None:
        cb = _circuitbreaker()
        if opened:
            _trip(cb(fail))
        wrapped[CIRCUITBREAKER] = cb(noop)

    if purgatory is not None:
        factory = purgatory.SyncCircuitBreakerFactory(
            default_threshold=1, default_ttl=OPEN_SECONDS
        )
        factory.initialize()
        if opened:
            _trip(factory("bench")(fail))
        wrapped[PURGATORY] = factory("bench")(noop)
    return wrapped


async def _async_wrapped(opened: bool) -> dict[str, Callable[[], Awaitable[object]]]:
    """
    Return each library's decorated async no-op; call in the running loop.
    """
    wrapped: dict[str, Callable[[], Awaitable[object]]] = {}

    breaker = _open_buttress_breaker() if opened else _buttress_breaker()
    wrapped[BUTTRESS] = breaker(anoop)

    if circuitbreaker is not None:
        cb = _circuitbreaker()
        if opened:
            await _atrip(cb(afail))
        wrapped[CIRCUITBREAKER] = cb(anoop)

    if aiobreaker is not None:
        aio = aiobreaker.CircuitBreaker(
            fail_max=1, timeout_duration=datetime.timedelta(seconds=OPEN_SECONDS)
        )
        if opened:
            aio.open()
        wrapped[AIOBREAKER] = aio(anoop)

    if purgatory is not None:
        factory = purgatory.AsyncCircuitBreakerFactory(
            default_threshold=1, default_ttl=OPEN_SECONDS
        )
        await factory.initialize()
        if opened:
            await _atrip(factory("bench")(afail))
        wrapped[PURGATORY] = factory("bench")(anoop)
    return wrapped


def _check_rejects(wrapped: dict[str, Callable[[], object]]) -> None:
    for name, fn in wrapped.items():
        try:
            fn()
        except REJECTIONS:
            continue
        msg = f"{name} did not reject a call while open"
        raise RuntimeError(msg)


async def _acheck_rejects(wrapped: dict[str, Callable[[], Awaitable[object]]]) -> None:
    for name, fn in wrapped.items():
        try:
            await fn()
        except REJECTIONS:
            continue
        msg = f"{name} did not reject a call while open"
        raise RuntimeError(msg)


def _sync_results(quick: bool) -> tuple[dict[str, float], dict[str, float]]:
    closed: dict[str, SyncLoop] = {BARE: sync_loop(noop)}
    for name, fn in _sync_wrapped(opened=False).items():
        closed[name] = sync_loop(fn)
    open_wrapped = _sync_wrapped(opened=True)
    _check_rejects(open_wrapped)
    rejected: dict[str, SyncLoop] = {
        BARE: sync_rejection_loop(noop, REJECTIONS),
        RAISE: sync_rejection_loop(raise_value_error, ValueError),
    }
    for name, fn in open_wrapped.items():
        rejected[name] = sync_rejection_loop(fn, REJECTIONS)
    return measure_sync(closed, quick=quick), measure_sync(rejected, quick=quick)


async def _async_results(quick: bool) -> tuple[dict[str, float], dict[str, float]]:
    closed: dict[str, AsyncLoop] = {BARE: async_loop(anoop)}
    for name, fn in (await _async_wrapped(opened=False)).items():
        closed[name] = async_loop(fn)
    open_wrapped = await _async_wrapped(opened=True)
    await _acheck_rejects(open_wrapped)
    rejected: dict[str, AsyncLoop] = {
        BARE: async_rejection_loop(anoop, REJECTIONS),
        RAISE: async_rejection_loop(araise_value_error, ValueError),
    }
    for name, fn in open_wrapped.items():
        rejected[name] = async_rejection_loop(fn, REJECTIONS)
    return (
        await measure_async(closed, quick=quick),
        await measure_async(rejected, quick=quick),
    )


def _fill(rows: list[dict[str, Any]], results: dict[str, float]) -> None:
    bare = results[BARE]
    for name, ns in results.items():
        rows.append({"case": name, "ns": ns, "ratio": ns / bare})


def _rss_growth(guarded: Callable[[], object], count: int) -> dict[str, Any]:
    """
    Reject *count* calls to *guarded* and return the RSS and time they took.
    """
    # Warm up, so lazily created objects do not count as growth.
    for _ in range(WARM_UP_REJECTIONS):
        try:
            guarded()
        except REJECTIONS:
            pass

    gc.collect()
    before = rss_kib()
    started = time.perf_counter_ns()
    for _ in range(count):
        try:
            guarded()
        except REJECTIONS:
            pass
    elapsed = time.perf_counter_ns() - started
    gc.collect()
    after = rss_kib()
    return {
        "rejections": count,
        "before": before,
        "after": after,
        "growth": after - before,
        "bytes_per_call": (after - before) * 1024 / count,
        "per_call": elapsed / count,
    }


def _memory_table(subject: Subject) -> list[dict[str, Any]]:
    return subject.table(
        "Memory across rejections while open (sync calls)",
        [
            ("case", "case", "text"),
            ("rejections", "rejections", "int"),
            ("counted", "counted by statistics()", "int"),
            ("before", "RSS before", "kib"),
            ("after", "RSS after", "kib"),
            ("growth", "growth", "kib"),
            ("bytes_per_call", "bytes per rejection", "decimal"),
            ("per_call", "per rejection", "ns"),
        ],
        note=(
            "RSS from /proc/self/status after gc.collect(), one run each. "
            "buttress runs first, in a fresh process; the peers run after "
            "the timing tables, and their rows show their own growth only."
        ),
    )


def _buttress_memory(rows: list[dict[str, Any]], quick: bool) -> None:
    count = REJECTIONS_QUICK if quick else REJECTIONS_FULL
    breaker = _open_buttress_breaker()
    result = _rss_growth(breaker(noop), count)
    result["counted"] = breaker.statistics().rejected - WARM_UP_REJECTIONS
    rows.append({"case": BUTTRESS, **result})


def _peer_memory(rows: list[dict[str, Any]], quick: bool) -> None:
    count = PEER_REJECTIONS_QUICK if quick else PEER_REJECTIONS_FULL
    for name, guarded in _sync_wrapped(opened=True).items():
        if name == BUTTRESS:
            continue
        rows.append({"case": name, "counted": None, **_rss_growth(guarded, count)})


def run(quick: bool) -> Subject:
    subject = Subject("breaker")
    columns = [
        ("case", "case", "text"),
        ("ns", "per call", "ns"),
        ("ratio", "x bare", "ratio"),
    ]

    # Memory first, while this process has allocated little else.
    progress("breaker: buttress memory across rejections")
    memory_rows = _memory_table(subject)
    _buttress_memory(memory_rows, quick)

    progress("breaker: sync calls")
    closed, rejected = _sync_results(quick)
    _fill(subject.table("Breaker closed, sync call", columns), closed)
    _fill(subject.table("Breaker open, sync call rejected", columns), rejected)

    for loop_name in ("asyncio", "trio"):
        progress(f"breaker: async calls on {loop_name}")
        if loop_name == "asyncio":
            closed, rejected = asyncio.run(_async_results(quick))
        else:
            closed, rejected = trio.run(_async_results, quick)
        _fill(
            subject.table(
                f"Breaker closed, async call on {loop_name} (x bare await)", columns
            ),
            closed,
        )
        _fill(
            subject.table(
                f"Breaker open, async call on {loop_name} rejected (x bare await)",
                columns,
            ),
            rejected,
        )

    progress("breaker: peers' memory across rejections")
    _peer_memory(memory_rows, quick)
    subject.notes.extend(FORCED_OPEN_NOTE)
    if MISSING:
        subject.notes.append(missing_note(MISSING))
    subject.notes.append(
        "Rejection rows catch each library's own exception; the bare and "
        "reference rows use the same try/except loop."
    )
    subject.notes.append(
        "aiobreaker, circuitbreaker and purgatory contain no trio-specific "
        "code. Their closed and rejection paths never sleep, so they run "
        "under trio here."
    )
    return subject


if __name__ == "__main__":
    module_main(run)
