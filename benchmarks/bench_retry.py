"""
Retry decorators on the success path: what wrapping a call that succeeds at
once costs, next to calling the function bare.

Compared: buttress `RetryPolicy` with and without a deadline, tenacity,
stamina and backoff, on sync functions and on async functions under asyncio
and under trio. Async cases run many awaits inside one running event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable

import anyio
import trio
from _common import (
    AsyncLoop,
    Subject,
    async_loop,
    measure_async,
    measure_sync,
    missing_note,
    module_main,
    optional_import,
    progress,
    sync_loop,
)

import buttress

MISSING: list[str] = []
tenacity = optional_import("tenacity", MISSING)
stamina = optional_import("stamina", MISSING)
backoff = optional_import("backoff", MISSING)

BARE = "bare call"
BUTTRESS_DEADLINE = "buttress RetryPolicy(attempts=3, deadline=10)"
BUTTRESS_PLAIN = "buttress RetryPolicy(attempts=3)"
TENACITY = "tenacity retry(stop=stop_after_attempt(3))"
STAMINA = "stamina retry(on=Exception, attempts=3)"
BACKOFF = "backoff on_exception(expo, Exception, max_tries=3)"
# The minimum work of a wrapper that enforces a deadline, for scale: publish
# the deadline to the call (sync), or run the call in a cancel scope (async).
SYNC_FLOOR = "reference: clock read, context variable set and reset"
ASYNC_FLOOR = "reference: await inside anyio.move_on_after(10)"

SYNC_TARGET = 10.0
ASYNC_TARGET = 5.0


def noop() -> None:
    return None


async def anoop() -> None:
    return None


Decorator = Callable[[Callable[..., object]], Callable[..., object]]


def _decorators() -> dict[str, Decorator]:
    # A new decorator per call of this function, so sync and async cases
    # never share state.
    decorators: dict[str, Decorator] = {
        BUTTRESS_DEADLINE: buttress.RetryPolicy(attempts=3, deadline=10),
        BUTTRESS_PLAIN: buttress.RetryPolicy(attempts=3),
    }
    if tenacity is not None:
        decorators[TENACITY] = tenacity.retry(stop=tenacity.stop_after_attempt(3))
    if stamina is not None:
        # stamina's default timeout of 45 s stays on, as a user gets it.
        decorators[STAMINA] = stamina.retry(on=Exception, attempts=3)
    if backoff is not None:
        decorators[BACKOFF] = backoff.on_exception(backoff.expo, Exception, max_tries=3)
    return decorators


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "bench_deadline", default=None
)


def deadline_floor() -> None:
    token = _deadline.set(time.monotonic() + 10)
    try:
        return noop()
    finally:
        _deadline.reset(token)


async def scope_floor() -> None:
    with anyio.move_on_after(10):
        return await anoop()


def _sync_cases() -> dict[str, Callable[[int], int]]:
    cases = {BARE: sync_loop(noop), SYNC_FLOOR: sync_loop(deadline_floor)}
    for name, decorate in _decorators().items():
        cases[name] = sync_loop(decorate(noop))
    return cases


def _async_cases() -> dict[str, AsyncLoop]:
    cases = {BARE: async_loop(anoop), ASYNC_FLOOR: async_loop(scope_floor)}
    for name, decorate in _decorators().items():
        decorated: Callable[[], Awaitable[object]] = decorate(anoop)  # type: ignore[assignment]
        cases[name] = async_loop(decorated)
    return cases


def _fill(rows: list[dict[str, object]], results: dict[str, float]) -> None:
    bare = results[BARE]
    for name, ns in results.items():
        rows.append({"case": name, "ns": ns, "ratio": ns / bare})


def run(quick: bool) -> Subject:
    subject = Subject("retry")
    columns = [
        ("case", "case", "text"),
        ("ns", "per call", "ns"),
        ("ratio", "x bare", "ratio"),
    ]

    progress("retry: sync functions")
    sync_results = measure_sync(_sync_cases(), quick=quick)
    _fill(subject.table("Retry, sync function, success path", columns), sync_results)

    async def in_loop() -> dict[str, float]:
        return await measure_async(_async_cases(), quick=quick)

    progress("retry: async functions on asyncio")
    asyncio_results = asyncio.run(in_loop())
    _fill(
        subject.table(
            "Retry, async function on asyncio, success path (x bare await)", columns
        ),
        asyncio_results,
    )

    progress("retry: async functions on trio")
    trio_results = trio.run(in_loop)
    _fill(
        subject.table(
            "Retry, async function on trio, success path (x bare await)", columns
        ),
        trio_results,
    )

    ratio = sync_results[BUTTRESS_DEADLINE] / sync_results[BARE]
    subject.target(
        "buttress sync, with deadline",
        f"≤ {SYNC_TARGET:.0f}x bare call",
        f"{ratio:.1f}x",
        ratio <= SYNC_TARGET,
    )
    for loop_name, results in (("asyncio", asyncio_results), ("trio", trio_results)):
        for case, label in (
            (BUTTRESS_DEADLINE, "with deadline"),
            (BUTTRESS_PLAIN, "no deadline"),
        ):
            ratio = results[case] / results[BARE]
            subject.target(
                f"buttress async on {loop_name}, {label}",
                f"≤ {ASYNC_TARGET:.0f}x bare await",
                f"{ratio:.1f}x",
                ratio <= ASYNC_TARGET,
            )
    subject.notes.append(
        "Each figure is the fastest repeat; the loop around the call is "
        "included in every row alike, so ratios slightly understate the "
        "wrappers' own cost."
    )
    subject.notes.append(
        "backoff's async retry sleeps with asyncio.sleep; on trio only its "
        "success path works, which is all this table measures."
    )
    if MISSING:
        subject.notes.append(missing_note(MISSING))
    return subject


if __name__ == "__main__":
    module_main(run)
