"""
Phase results, their checks, the result table and the progress line.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import anyio
import attrs

from ._record import Outcome, PhaseRecorder, percentile

__all__ = [
    "Check",
    "CheckList",
    "PhaseResult",
    "Printer",
    "format_table",
    "run_progress",
]


@attrs.frozen
class Check:
    """
    One expectation of a phase: what was expected, whether it held, and
    the measured values behind the verdict.
    """

    description: str
    passed: bool
    detail: str


class CheckList:
    """
    The checks of one phase, in the order they ran.
    """

    def __init__(self) -> None:
        self.items: list[Check] = []

    def expect(self, description: str, passed: bool, detail: str) -> bool:
        """
        Add a check and return whether it held.
        """
        self.items.append(Check(description, passed, detail))
        return passed


@attrs.define
class PhaseResult:
    """
    The counts, latencies and checks of one phase on one backend.
    """

    phase: str
    backend: str
    seconds: float
    calls: int
    successes: int
    retries: int
    circuit_open: int
    executor_saturated: int
    timeouts: int
    sealed: int
    other_errors: int
    breaker_path: tuple[str, ...]
    p50_ms: float
    p99_ms: float
    checks: list[Check] = attrs.Factory(list)

    @classmethod
    def from_recorder(
        cls, phase: str, backend: str, seconds: float, recorder: PhaseRecorder
    ) -> PhaseResult:
        """
        Summarise a finished phase's recorder into one table row.
        """
        calls = recorder.snapshot()
        counts = recorder.counts()
        latencies = [record.latency for record in calls]
        return cls(
            phase=phase,
            backend=backend,
            seconds=seconds,
            calls=len(calls),
            successes=counts[Outcome.SUCCESS],
            retries=recorder.retries,
            circuit_open=counts[Outcome.CIRCUIT_OPEN],
            executor_saturated=counts[Outcome.EXECUTOR_SATURATED],
            timeouts=counts[Outcome.TIMEOUT],
            sealed=counts[Outcome.SEALED],
            other_errors=counts[Outcome.ERROR],
            breaker_path=tuple(recorder.transition_path()),
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
        )

    @property
    def passed(self) -> bool:
        """
        Whether every check of the phase held.
        """
        return all(check.passed for check in self.checks)


def _arrow(stream: TextIO) -> str:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "→".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "->"
    return "→"


_COLUMNS = (
    "phase",
    "backend",
    "calls",
    "ok",
    "retries",
    "circuit_open",
    "executor_saturated",
    "timeouts",
    "sealed",
    "other",
    "breaker transitions",
    "p50 ms",
    "p99 ms",
)
_LEFT_ALIGNED = {"phase", "backend", "breaker transitions"}


def _format_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def format_table(results: Sequence[PhaseResult], arrow: str = "->") -> str:
    """
    Render phase results as a plain-text table, one row per phase.
    """
    rows = [
        (
            result.phase,
            result.backend,
            str(result.calls),
            str(result.successes),
            str(result.retries),
            str(result.circuit_open),
            str(result.executor_saturated),
            str(result.timeouts),
            str(result.sealed),
            str(result.other_errors),
            arrow.join(result.breaker_path),
            _format_ms(result.p50_ms),
            _format_ms(result.p99_ms),
        )
        for result in results
    ]
    widths = [
        max(len(column), *(len(row[i]) for row in rows)) if rows else len(column)
        for i, column in enumerate(_COLUMNS)
    ]

    def render(cells: Sequence[str]) -> str:
        parts = []
        for column, cell, width in zip(_COLUMNS, cells, widths, strict=True):
            parts.append(
                cell.ljust(width) if column in _LEFT_ALIGNED else cell.rjust(width)
            )
        return "  ".join(parts).rstrip()

    lines = [render(_COLUMNS), render(["-" * width for width in widths])]
    lines.extend(render(row) for row in rows)
    return "\n".join(lines)


class Printer:
    """
    Write demo output to a stream, flushing every line so that progress
    shows up at once in a pipe or a CI log.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.arrow = _arrow(self.stream)
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._status_width = 0

    def line(self, text: str = "") -> None:
        """
        Write one line, replacing the progress status if one is shown.
        """
        self.clear_status()
        self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        """
        Show a progress status: rewritten in place on a terminal, one new
        line per update otherwise.
        """
        if self.is_tty:
            # A status wider than the terminal wraps, and "\r" then returns
            # only to the start of its last row.
            text = text[: shutil.get_terminal_size().columns - 1]
            padding = " " * max(0, self._status_width - len(text))
            self.stream.write("\r" + text + padding)
            self._status_width = len(text)
            self.stream.flush()
        else:
            self.line(text)

    def clear_status(self) -> None:
        """
        Erase the in-place progress status, if one is shown.
        """
        if self._status_width:
            self.stream.write("\r" + " " * self._status_width + "\r")
            self._status_width = 0

    def table(self, results: Sequence[PhaseResult]) -> None:
        """
        Write *results* as a table.
        """
        for text in format_table(results, self.arrow).splitlines():
            self.line(text)


async def run_progress(
    printer: Printer,
    recorder: PhaseRecorder,
    breaker_state: Callable[[], str],
    stop: anyio.Event,
) -> None:
    """
    Print the phase's running counts until *stop* is set.

    The status is updated every 0.5 s on a terminal and every 1 s otherwise,
    which keeps a CI log short.
    """
    interval = 0.5 if printer.is_tty else 1.0
    started = time.monotonic()
    while True:
        with anyio.move_on_after(interval):
            await stop.wait()
        if stop.is_set():
            printer.clear_status()
            return
        counts = recorder.counts()
        printer.status(
            f"    {time.monotonic() - started:5.1f} s  breaker {breaker_state()}"
            f"  calls {sum(counts.values())}"
            f"  ok {counts[Outcome.SUCCESS]}"
            f"  circuit_open {counts[Outcome.CIRCUIT_OPEN]}"
            f"  executor_saturated {counts[Outcome.EXECUTOR_SATURATED]}"
            f"  timeouts {counts[Outcome.TIMEOUT]}"
            f"  sealed {counts[Outcome.SEALED]}"
            f"  other {counts[Outcome.ERROR]}"
        )
