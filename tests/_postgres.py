"""
A private PostgreSQL cluster for the database secrets engine tests.

`PostgresCluster` runs ``initdb`` in a new temporary directory, starts the
server with ``pg_ctl -w`` on 127.0.0.1 and a free port, and stops it by
the PID in ``postmaster.pid``. PostgreSQL refuses to run as root, so when
the tests run as root the cluster runs as the ``postgres`` user, which
then owns the directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

SUPERUSER = "postgres"
_STOP_TIMEOUT = 30.0


def find_postgres_bin() -> Path | None:
    """
    Return the directory of ``initdb`` and ``pg_ctl``: the one on PATH, or
    the newest ``/usr/lib/postgresql/<version>/bin`` (where Debian's
    ``postgresql`` package puts them), or None when neither has them.
    """
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.parent.name)
        except ValueError:
            return 0.0

    if not candidates:
        return None
    return Path(max(candidates, key=version)).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """
    A throwaway PostgreSQL server with a random superuser password.

    Attributes:
        port: The TCP port on 127.0.0.1.
        password: The password of the ``postgres`` superuser.
    """

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self._workdir = Path(tempfile.mkdtemp(prefix="buttress-pg-"))
        self._data = self._workdir / "data"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = SUPERUSER
            account = pwd.getpwnam(SUPERUSER)
            os.chown(self._workdir, account.pw_uid, account.pw_gid)
        self.port = _free_port()
        self.password = secrets.token_hex(16)
        self.pid: int | None = None

    def _run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        command = [str(self._bin / args[0]), *args[1:]]
        environment = {**os.environ, "LC_ALL": "C", "PGPASSWORD": self.password}
        environment.update(kwargs.pop("env", {}))
        return subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
            cwd=self._workdir,
            user=self._user,
            **kwargs,
        )

    def start(self) -> None:
        """
        Create the cluster and start the server; return once it accepts
        connections.
        """
        password_file = self._workdir / "password"
        password_file.write_text(self.password + "\n")
        if self._user is not None:
            account = pwd.getpwnam(self._user)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        password_file.chmod(0o600)
        self._run(
            "initdb",
            "-D",
            str(self._data),
            "-U",
            SUPERUSER,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self._workdir} -c fsync=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self._data),
            "-l",
            str(self._workdir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        # The first line of postmaster.pid is the server's PID.
        self.pid = int((self._data / "postmaster.pid").read_text().split()[0])

    def psql(
        self, sql: str, *, user: str = SUPERUSER, password: str | None = None
    ) -> str:
        """
        Run one SQL statement over TCP as *user* and return its output
        without headers.
        """
        result = self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            user,
            "-d",
            "postgres",
            "-tAc",
            sql,
            env={"PGPASSWORD": password or self.password},
        )
        return result.stdout.strip()

    def stop(self) -> None:
        """
        Stop the server by its PID (a fast shutdown), wait until it has
        exited, and delete the cluster's directory.
        """
        pid = self.pid
        self.pid = None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + _STOP_TIMEOUT
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                # An immediate shutdown, when the fast one hangs.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
        shutil.rmtree(self._workdir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
