"""
Shared benchmark helpers: timing loops, memory readings and result records.

Every subject module (``bench_*.py``) returns a `Subject` made of plain
dicts and lists, so the runner can print it as tables and write it as JSON.
Timings use `time.perf_counter_ns`. A case is warmed up and then timed in
several repeats. The fastest repeat is kept, because on a shared machine
noise only ever adds time.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

# The timing budget of one repeat of a micro-benchmark case, in seconds.
FULL_REPEAT_SECONDS = 0.03
QUICK_REPEAT_SECONDS = 0.01
FULL_REPEATS = 15
QUICK_REPEATS = 5

SyncLoop = Callable[[int], int]
"""Runs a case *n* times and returns the elapsed nanoseconds."""

AsyncLoop = Callable[[int], Awaitable[int]]
"""Awaits a case *n* times and returns the elapsed nanoseconds."""


class Subject:
    """
    The results of one subject: tables, target checks and notes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.tables: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.skipped: str | None = None

    def table(
        self, title: str, columns: list[tuple[str, str, str]], note: str = ""
    ) -> list[dict[str, Any]]:
        """
        Add a table and return its row list for the caller to fill.

        Each column is ``(key, header, kind)``. The kind selects how the
        runner formats the value (see `run.format_value`).
        """
        rows: list[dict[str, Any]] = []
        self.tables.append(
            {
                "title": title,
                "columns": [list(column) for column in columns],
                "rows": rows,
                "note": note,
            }
        )
        return rows

    def target(self, name: str, goal: str, measured: str, met: bool) -> None:
        self.targets.append(
            {"name": name, "goal": goal, "measured": measured, "met": met}
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.name,
            "skipped": self.skipped,
            "tables": self.tables,
            "targets": self.targets,
            "notes": self.notes,
        }


def optional_import(name: str, missing: list[str]) -> ModuleType | None:
    """
    Import a peer library, or add its name to *missing* and return None.

    Peers are compared when installed; a missing one drops its rows only.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        missing.append(name)
        return None


def missing_note(missing: list[str]) -> str:
    """
    Return the note that names peer libraries left out for not being installed.
    """
    names = ", ".join(sorted(set(missing)))
    return f"Not installed, so left out: {names}."


def progress(message: str) -> None:
    """
    Print a progress line to stderr, so stdout stays free for results.
    """
    print(f"  .. {message}", file=sys.stderr, flush=True)


def sync_loop(fn: Callable[[], object]) -> SyncLoop:
    """
    Return a loop that calls *fn* with no arguments *n* times.
    """

    def run(n: int) -> int:
        iterations = range(n)
        started = time.perf_counter_ns()
        for _ in iterations:
            fn()
        return time.perf_counter_ns() - started

    return run


def sync_rejection_loop(
    fn: Callable[[], object],
    error: type[BaseException] | tuple[type[BaseException], ...],
) -> SyncLoop:
    """
    Return a loop that calls *fn* *n* times and catches *error* each time.
    """

    def run(n: int) -> int:
        iterations = range(n)
        started = time.perf_counter_ns()
        for _ in iterations:
            try:
                fn()
            except error:
                pass
        return time.perf_counter_ns() - started

    return run


def async_loop(fn: Callable[[], Awaitable[object]]) -> AsyncLoop:
    """
    Return a loop that awaits ``fn()`` *n* times inside the running loop.
    """

    async def run(n: int) -> int:
        iterations = range(n)
        started = time.perf_counter_ns()
        for _ in iterations:
            await fn()
        return time.perf_counter_ns() - started

    return run


def async_rejection_loop(
    fn: Callable[[], Awaitable[object]],
    error: type[BaseException] | tuple[type[BaseException], ...],
) -> AsyncLoop:
    """
    Return a loop that awaits ``fn()`` *n* times and catches *error*.
    """

    async def run(n: int) -> int:
        iterations = range(n)
        started = time.perf_counter_ns()
        for _ in iterations:
            try:
                await fn()
            except error:
                pass
        return time.perf_counter_ns() - started

    return run


def _repeat_settings(quick: bool) -> tuple[float, int]:
    if quick:
        return QUICK_REPEAT_SECONDS, QUICK_REPEATS
    return FULL_REPEAT_SECONDS, FULL_REPEATS


def _iterations_for(elapsed_ns: int, n: int, budget: float) -> int:
    per_call = max(elapsed_ns, 1) / n
    return max(100, int(budget * 1e9 / per_call))


def measure_sync(cases: dict[str, SyncLoop], *, quick: bool) -> dict[str, float]:
    """
    Return the best time per call, in nanoseconds, of each case.

    Each case is calibrated so one repeat takes about the repeat budget,
    warmed up, then timed in rounds that visit every case once, so a burst
    of load from another process hits all cases alike. The garbage
    collector is off while a repeat runs, as in `timeit`.
    """
    budget, repeats = _repeat_settings(quick)
    iterations: dict[str, int] = {}
    for name, loop in cases.items():
        n = 1000
        elapsed = loop(n)
        iterations[name] = _iterations_for(elapsed, n, budget)
        loop(iterations[name])
    best = dict.fromkeys(cases, float("inf"))
    gc_was_enabled = gc.isenabled()
    try:
        for _ in range(repeats):
            for name, loop in cases.items():
                gc.disable()
                elapsed = loop(iterations[name])
                if gc_was_enabled:
                    gc.enable()
                best[name] = min(best[name], elapsed / iterations[name])
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


async def measure_async(
    cases: dict[str, AsyncLoop], *, quick: bool
) -> dict[str, float]:
    """
    Return the best time per await, in nanoseconds, of each case.

    The async twin of `measure_sync`; run it inside one event loop, so all
    cases share that loop.
    """
    budget, repeats = _repeat_settings(quick)
    iterations: dict[str, int] = {}
    for name, loop in cases.items():
        n = 1000
        elapsed = await loop(n)
        iterations[name] = _iterations_for(elapsed, n, budget)
        await loop(iterations[name])
    best = dict.fromkeys(cases, float("inf"))
    gc_was_enabled = gc.isenabled()
    try:
        for _ in range(repeats):
            for name, loop in cases.items():
                gc.disable()
                elapsed = await loop(iterations[name])
                if gc_was_enabled:
                    gc.enable()
                best[name] = min(best[name], elapsed / iterations[name])
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def rss_kib() -> int:
    """
    Return this process's resident set size in KiB, from /proc/self/status.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    msg = "VmRSS is missing from /proc/self/status"
    raise RuntimeError(msg)


def percentile(sorted_values: list[float], share: float) -> float:
    """
    Return the nearest-rank percentile of an ascending list.
    """
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(share * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def module_main(run: Callable[[bool], Subject]) -> None:
    """
    Run a subject from the command line and write its JSON result.

    ``python bench_retry.py [--quick] [--json-out PATH]``; without
    ``--json-out`` the JSON goes to stdout.
    """
    parser = argparse.ArgumentParser(description="Run one benchmark subject.")
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats, for a smoke test"
    )
    parser.add_argument("--json-out", help="file to write the JSON result to")
    args = parser.parse_args()
    subject = run(args.quick)
    text = json.dumps(subject.to_dict(), indent=2)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as output:
            output.write(text)
    else:
        print(text)
