"""
Command line entry point: start or find the server, run the phases on each
backend, print the results and return the exit status.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import secrets
import sys
import time
from collections.abc import Sequence

import anyio

from ..testing import OpenBaoDevServer, find_bao_binary
from ._phases import PHASES
from ._record import PhaseRecorder
from ._report import CheckList, PhaseResult, Printer
from ._support import Phase, PhaseContext, Target, purge_secrets

__all__ = ["main"]

EXIT_PASSED = 0
EXIT_CHECK_FAILED = 1
EXIT_SETUP_FAILED = 2
EXIT_INTERRUPTED = 130

_log = logging.getLogger("buttress.demo")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m buttress.demo",
        description=(
            "Drive a Vault-compatible server through steady load, outages and "
            "overload with buttress.vault.VaultAdapter, and check that the "
            "adapter times out, fails fast, recovers and rejects excess load "
            "as configured. Without VAULT_ADDR the demo starts its own OpenBao "
            "dev server on 127.0.0.1 and runs every phase. With VAULT_ADDR and "
            "VAULT_TOKEN set it runs only the phases that leave the server "
            "untouched (steady load and overload), under a path prefix it "
            "deletes afterwards. VAULT_NAMESPACE and VAULT_CACERT are honoured."
        ),
    )
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio", "both"),
        default="both",
        help="event loop to run the phases on (default: both, asyncio first)",
    )
    parser.add_argument(
        "--phase",
        action="append",
        choices=[phase.name for phase in PHASES],
        help=(
            "run only the named phase, and repeat the option to run several "
            "(default: every phase that the server allows)"
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            "shorten the run: 20 tasks of 6 operations in the steady-load phase "
            "instead of 50 of 8, and 0.5 s instead of 1 s of load before each "
            "outage and after each recovery"
        ),
    )
    parser.add_argument(
        "--mount-point",
        default="secret",
        help="KV version 2 mount to write the demo secrets to (default: secret)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log retries, breaker changes and executor messages from the buttress loggers",
    )
    return parser.parse_args(argv)


def _print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    # Retries log a warning each, which would bury the progress lines.
    logging.getLogger("buttress").setLevel(logging.INFO if verbose else logging.ERROR)


def _report_phase(printer: Printer, result: PhaseResult) -> None:
    printer.table([result])
    for check in result.checks:
        mark = "ok  " if check.passed else "FAIL"
        printer.line(f"    {mark} {check.description}: {check.detail}")
    verdict = "passed" if result.passed else "FAILED"
    printer.line(
        f"    phase {result.phase} on {result.backend} {verdict} in {result.seconds:.1f} s"
    )
    printer.line()


async def _run_phase(
    phase: Phase, ctx: PhaseContext, recorder: PhaseRecorder, checks: CheckList
) -> None:
    """
    Run one phase, turning a crash into a failed check, and delete every
    secret the phase wrote, also after a crash or an interrupt.
    """
    try:
        try:
            await phase.run(ctx, recorder, checks)
        finally:
            with anyio.CancelScope(shield=True):
                cleanup_error = await purge_secrets(ctx.target, ctx.written_paths)
    except Exception as exc:
        _log.debug("phase %s failed", phase.name, exc_info=True)
        checks.expect("phase ran to the end", False, f"{type(exc).__name__}: {exc}")
        return
    checks.expect(
        "deleted every secret the phase wrote",
        cleanup_error is None,
        cleanup_error or f"{len(ctx.written_paths)} secrets and their versions deleted",
    )


async def _run_phases(
    target: Target,
    backend: str,
    phases: Sequence[Phase],
    printer: Printer,
    verbose: bool,
    quick: bool,
) -> list[PhaseResult]:
    results = []
    for number, phase in enumerate(phases, start=1):
        printer.line(
            f"== {backend}: phase {number}/{len(phases)} {phase.name}: {phase.title}"
        )
        ctx = PhaseContext(
            target=target,
            backend=backend,
            printer=printer,
            verbose=verbose,
            quick=quick,
        )
        recorder = PhaseRecorder()
        checks = CheckList()
        started = time.monotonic()
        await _run_phase(phase, ctx, recorder, checks)
        result = PhaseResult.from_recorder(
            phase.name, backend, time.monotonic() - started, recorder
        )
        result.checks = checks.items
        _report_phase(printer, result)
        results.append(result)
    return results


def _select_phases(names: Sequence[str] | None, external: bool) -> list[Phase]:
    phases = [phase for phase in PHASES if names is None or phase.name in names]
    if external:
        phases = [phase for phase in phases if not phase.destructive]
    return phases


def _run_backends(
    target: Target, args: argparse.Namespace, phases: Sequence[Phase], printer: Printer
) -> list[PhaseResult]:
    backends = ("asyncio", "trio") if args.backend == "both" else (args.backend,)
    results: list[PhaseResult] = []
    for backend in backends:
        results += anyio.run(
            _run_phases,
            target,
            backend,
            phases,
            printer,
            args.verbose,
            args.quick,
            backend=backend,
        )
    return results


def _summarise(printer: Printer, results: Sequence[PhaseResult], seconds: float) -> int:
    printer.line("== summary")
    printer.table(results)
    printer.line()
    checks = [(result, check) for result in results for check in result.checks]
    failed = [(result, check) for result, check in checks if not check.passed]
    for result, check in failed:
        printer.line(
            f"FAILED check: {result.phase} on {result.backend}: {check.description}: {check.detail}"
        )
    if not results:
        printer.line("demo FAILED: no phase ran")
        return EXIT_CHECK_FAILED
    if failed:
        printer.line(
            f"demo FAILED: {len(failed)} of {len(checks)} checks failed in {len(results)} phases "
            f"({seconds:.1f} s)"
        )
        return EXIT_CHECK_FAILED
    printer.line(
        f"demo passed: {len(checks)} checks in {len(results)} phases ({seconds:.1f} s)"
    )
    return EXIT_PASSED


def _run_external(
    args: argparse.Namespace, printer: Printer, address: str, run_id: str
) -> list[PhaseResult] | None:
    token = os.environ.get("VAULT_TOKEN")
    if not token:
        _print_error(
            "VAULT_ADDR is set but VAULT_TOKEN is missing. Set VAULT_TOKEN to a "
            "token that may write, list and delete under the mount, or unset "
            "VAULT_ADDR to let the demo start its own OpenBao dev server"
        )
        return None
    phases = _select_phases(args.phase, external=True)
    skipped = [
        phase.name
        for phase in _select_phases(args.phase, external=False)
        if phase not in phases
    ]
    printer.line(f"using the server at {address} from VAULT_ADDR")
    if skipped:
        printer.line(
            f"skipping {', '.join(skipped)}: they freeze or seal the server, "
            "so they run only on the dev server the demo starts itself"
        )
    target = Target(
        url=address,
        token=token,
        namespace=os.environ.get("VAULT_NAMESPACE") or None,
        mount_point=args.mount_point,
        prefix=f"buttress-demo/{run_id}",
        server=None,
        verify=os.environ.get("VAULT_CACERT") or True,
    )
    return _run_backends(target, args, phases, printer)


def _run_dev_server(
    args: argparse.Namespace, printer: Printer, run_id: str
) -> list[PhaseResult] | None:
    try:
        binary = find_bao_binary()
    except FileNotFoundError as exc:
        _print_error(str(exc))
        return None
    printer.line(f"starting an OpenBao dev server with {binary}")
    server = OpenBaoDevServer()
    try:
        server.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        _print_error(f"the OpenBao dev server did not start: {exc}")
        return None
    try:
        printer.line(f"OpenBao dev server is up at {server.address} (pid {server.pid})")
        target = Target(
            url=server.address,
            token=server.root_token,
            namespace=None,
            mount_point=args.mount_point,
            prefix=f"buttress-demo/{run_id}",
            server=server,
        )
        phases = _select_phases(args.phase, external=False)
        return _run_backends(target, args, phases, printer)
    finally:
        # stop() also resumes a server that an interrupt left frozen.
        printer.line(f"stopping the OpenBao dev server (pid {server.pid})")
        server.stop()


def _contains_interrupt(exc: BaseException) -> bool:
    """
    Return whether *exc* is a KeyboardInterrupt or an exception group that
    contains one. On trio, Ctrl-C arrives wrapped in the task groups'
    exception groups.
    """
    if isinstance(exc, KeyboardInterrupt):
        return True
    nested: Sequence[BaseException] = getattr(exc, "exceptions", ())
    return any(_contains_interrupt(inner) for inner in nested)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the demo and return the process exit status.

    The status is 0 when every check held, 1 when a check failed, 2 when
    the server could not be set up, and 130 after Ctrl-C.
    """
    args = _parse_args(argv)
    _configure_logging(args.verbose)
    if args.backend != "asyncio" and importlib.util.find_spec("trio") is None:
        _print_error(
            "trio is not installed, so the trio backend cannot run. Install it "
            "with `pip install 'buttress[demo]'`, or pass --backend asyncio."
        )
        return EXIT_SETUP_FAILED
    printer = Printer()
    started = time.monotonic()
    # A random prefix per run keeps concurrent runs, and leftovers of an
    # interrupted run, apart.
    run_id = secrets.token_hex(4)
    address = os.environ.get("VAULT_ADDR")
    try:
        if address:
            results = _run_external(args, printer, address, run_id)
        else:
            results = _run_dev_server(args, printer, run_id)
    except BaseException as exc:
        if not _contains_interrupt(exc):
            raise
        printer.line("interrupted")
        return EXIT_INTERRUPTED
    if results is None:
        return EXIT_SETUP_FAILED
    return _summarise(printer, results, time.monotonic() - started)
