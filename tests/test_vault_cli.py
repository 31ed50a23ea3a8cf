"""
Tests of ``python -m buttress.vault``: the commands run as subprocesses
against the OpenBao dev server, configured through BAO_ADDR and BAO_TOKEN
in an environment without the developer's Vault variables, plus a few
in-process checks of option parsing and configuration errors.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _vault_admin import admin, mounted, unique
from buttress.testing import OpenBaoDevServer
from buttress.vault._cli import main

# The variables the CLI must not inherit from the developer's shell: the
# Vault settings, and proxies that could send 127.0.0.1 traffic elsewhere.
_INHERITED_PREFIXES = ("VAULT_", "BAO_", "BUTTRESS_VAULT_")
_PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

BAD_TOKEN = "s.cli-test-bad-token-5f2c9a"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    An empty home directory, so no ``~/.vault-token`` is found.
    """
    return tmp_path_factory.mktemp("home")


def _clean_env(home: Path, **variables: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_PREFIXES) and name.upper() not in _PROXY_NAMES
    }
    env["HOME"] = str(home)
    env.update(variables)
    return env


def _server_env(
    server: OpenBaoDevServer, home: Path, **variables: str
) -> dict[str, str]:
    settings = {"BAO_ADDR": server.address, "BAO_TOKEN": server.root_token}
    settings.update(variables)
    return _clean_env(home, **settings)


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buttress.vault", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _closed_port() -> int:
    # A port that was free a moment ago, so nothing listens on it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def versions_path(openbao: OpenBaoDevServer) -> Iterator[str]:
    """
    A KV version 2 secret at ``secret/<path>`` with two versions.
    """
    path = f"{unique('cli')}/db"
    for version in (1, 2):
        data = {"password": f"value-{version}", "count": version}
        admin(openbao, "POST", f"secret/data/{path}", {"data": data})
    yield path
    admin(openbao, "DELETE", f"secret/metadata/{path}")


@pytest.fixture(scope="module")
def deleted_path(openbao: OpenBaoDevServer) -> Iterator[str]:
    """
    A KV version 2 secret whose latest version (2) is deleted.
    """
    path = f"{unique('cli')}/deleted"
    for version in (1, 2):
        data = {"password": f"gone-{version}"}
        admin(openbao, "POST", f"secret/data/{path}", {"data": data})
    admin(openbao, "DELETE", f"secret/data/{path}")
    yield path
    admin(openbao, "DELETE", f"secret/metadata/{path}")


# -- check ----------------------------------------------------------------


def test_check_healthy_server(openbao: OpenBaoDevServer, home: Path) -> None:
    completed = _run_cli("check", env=_server_env(openbao, home))

    assert completed.returncode == 0, completed.stderr
    assert re.search(r"^  verdict +ready$", completed.stdout, re.MULTILINE)
    assert re.search(r"^  token +<redacted> +BAO_TOKEN$", completed.stdout, re.M)
    assert re.search(
        r"^  url +http://127\.0\.0\.1:\d+ +BAO_ADDR$", completed.stdout, re.M
    )
    assert re.search(r"^  server role +active \(HTTP 200\)$", completed.stdout, re.M)
    assert openbao.root_token not in completed.stdout
    assert openbao.root_token not in completed.stderr


def test_check_closed_port(openbao: OpenBaoDevServer, home: Path) -> None:
    address = f"http://127.0.0.1:{_closed_port()}"
    env = _server_env(openbao, home, BAO_ADDR=address)

    completed = _run_cli("check", env=env)

    assert completed.returncode == 1, completed.stderr
    assert re.search(r"^  verdict +not ready$", completed.stdout, re.MULTILINE)
    assert "server_unreachable" in completed.stdout
    assert f"could not connect to {address}" in completed.stdout
    assert "Traceback" not in completed.stderr


def test_check_json_document(openbao: OpenBaoDevServer, home: Path) -> None:
    completed = _run_cli("check", "--json", env=_server_env(openbao, home))

    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["health"]["ready"] is True
    assert document["health"]["server_role"] == "active"
    assert document["config"]["token"] == {"value": "<redacted>", "source": "BAO_TOKEN"}
    assert document["config"]["url"]["source"] == "BAO_ADDR"
    assert openbao.root_token not in completed.stdout


def test_check_options_override_env(openbao: OpenBaoDevServer, home: Path) -> None:
    env = _server_env(openbao, home, BAO_ADDR="http://127.0.0.1:1")

    completed = _run_cli(
        "check", "--json", "--address", openbao.address, "--timeout", "7s", env=env
    )

    assert completed.returncode == 0, completed.stderr
    config = json.loads(completed.stdout)["config"]
    assert config["url"] == {"value": openbao.address, "source": "argument"}
    assert config["timeout_seconds"] == {"value": 7.0, "source": "argument"}


def test_check_invalid_env_value(openbao: OpenBaoDevServer, home: Path) -> None:
    env = _server_env(openbao, home, BAO_CLIENT_TIMEOUT="abc")

    completed = _run_cli("check", env=env)

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.startswith("error: BAO_CLIENT_TIMEOUT='abc' is invalid.")
    assert "Change the variable or unset it." in completed.stderr
    assert "Traceback" not in completed.stderr


def test_check_deep_bad_token(openbao: OpenBaoDevServer, home: Path) -> None:
    env = _server_env(openbao, home, BAO_TOKEN=BAD_TOKEN)

    completed = _run_cli("check", "--deep", env=env)

    assert completed.returncode == 1, completed.stderr
    assert "token_invalid: the server rejected the token from BAO_TOKEN" in (
        completed.stdout
    )
    assert BAD_TOKEN not in completed.stdout
    assert BAD_TOKEN not in completed.stderr


# -- get ----------------------------------------------------------------------


def test_get_prints_latest_data(
    openbao: OpenBaoDevServer, home: Path, versions_path: str
) -> None:
    completed = _run_cli("get", versions_path, env=_server_env(openbao, home))

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"password": "value-2", "count": 2}
    assert completed.stderr == ""


def test_get_field_is_raw(
    openbao: OpenBaoDevServer, home: Path, versions_path: str
) -> None:
    env = _server_env(openbao, home)

    text = _run_cli("get", versions_path, "--field", "password", env=env)
    number = _run_cli("get", versions_path, "--field", "count", env=env)

    assert text.returncode == 0, text.stderr
    # Without a terminal, the value is written without a newline.
    assert text.stdout == "value-2"
    assert number.returncode == 0, number.stderr
    assert number.stdout == "2"


def test_get_version_with_json(
    openbao: OpenBaoDevServer, home: Path, versions_path: str
) -> None:
    env = _server_env(openbao, home)

    completed = _run_cli("get", versions_path, "--version", "1", "--json", env=env)

    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["data"] == {"password": "value-1", "count": 1}
    assert document["metadata"]["version"] == 1
    assert document["metadata"]["path"] == versions_path
    assert document["metadata"]["mount"] == "secret"


def test_get_missing_field(
    openbao: OpenBaoDevServer, home: Path, versions_path: str
) -> None:
    env = _server_env(openbao, home)

    completed = _run_cli("get", versions_path, "--field", "user", env=env)

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "has no field 'user'. Its fields are: count, password." in (completed.stderr)
    assert "value-2" not in completed.stderr


def test_get_missing_path(openbao: OpenBaoDevServer, home: Path) -> None:
    head = unique("cli-missing")

    completed = _run_cli("get", f"{head}/db", env=_server_env(openbao, home))

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert f"at path '{head}/…' failed with HTTP 404" in completed.stderr
    assert "Nothing exists at this path" in completed.stderr
    assert f"{head}/db" not in completed.stderr
    assert "Traceback" not in completed.stderr


def test_get_deleted_latest_version(
    openbao: OpenBaoDevServer, home: Path, deleted_path: str
) -> None:
    env = _server_env(openbao, home)

    completed = _run_cli("get", deleted_path, env=env)
    earlier = _run_cli("get", deleted_path, "--version", "1", env=env)

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "version 2 of the secret is deleted" in completed.stderr
    assert "pass --version N" in completed.stderr
    assert "Nothing exists at this path" not in completed.stderr
    assert earlier.returncode == 0, earlier.stderr
    assert json.loads(earlier.stdout) == {"password": "gone-1"}


def test_get_bad_token(
    openbao: OpenBaoDevServer, home: Path, versions_path: str
) -> None:
    env = _server_env(openbao, home, BAO_TOKEN=BAD_TOKEN)

    completed = _run_cli("get", versions_path, env=env)

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "HTTP 403: permission denied" in completed.stderr
    assert "The token came from BAO_TOKEN." in completed.stderr
    assert BAD_TOKEN not in completed.stderr


def test_get_kv_version_1(openbao: OpenBaoDevServer, home: Path) -> None:
    env = _server_env(openbao, home)
    with mounted(openbao, "kv") as mount:
        admin(openbao, "POST", f"{mount}/app/db", {"password": "v1-value"})

        completed = _run_cli("get", "app/db", "--mount", mount, "--kv", "1", env=env)
        as_v2 = _run_cli("get", "app/db", "--mount", mount, env=env)

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"password": "v1-value"}
    assert as_v2.returncode == 1
    assert f"If mount '{mount}' is KV version 1, pass --kv 1." in as_v2.stderr


def test_get_closed_port_quiet_retries(openbao: OpenBaoDevServer, home: Path) -> None:
    env = _server_env(openbao, home, BAO_ADDR=f"http://127.0.0.1:{_closed_port()}")

    quiet = _run_cli("get", "app/db", env=env)
    verbose = _run_cli("get", "app/db", "--verbose", env=env)

    assert quiet.returncode == 1
    assert quiet.stderr.count("\n") == 1, quiet.stderr
    assert quiet.stderr.startswith("error: kv.read on mount 'secret'")
    assert "could not connect" in quiet.stderr
    assert verbose.returncode == 1
    assert "WARNING buttress.retry: retrying" in verbose.stderr


# -- in process ---------------------------------------------------------------


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in list(os.environ):
        if name.startswith(_INHERITED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))


@pytest.mark.usefixtures("clean_environ")
def test_missing_token_names_the_fixes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BAO_ADDR", "http://127.0.0.1:1")

    status = main(["check"])

    assert status == 2
    error = capsys.readouterr().err
    assert "no token is set. Set BAO_TOKEN or VAULT_TOKEN" in error
    assert error.rstrip().endswith("or write it to ~/.vault-token.")
    assert "token=" not in error


@pytest.mark.usefixtures("clean_environ")
def test_missing_address_names_option(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check"])

    assert status == 2
    error = capsys.readouterr().err
    assert "no server address is set" in error
    assert error.rstrip().endswith("or pass --address.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get", "a", "--kv", "1", "--version", "2"], "KV version 2 only"),
        (["get", "a", "--version", "0"], "argument --version: invalid value '0'"),
        (["get", "/"], "argument PATH: invalid value '/'"),
        (["check", "--timeout", "0"], "argument --timeout: invalid value '0'"),
        (["check", "--timeout", "soon"], "argument --timeout: invalid value 'soon'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_invalid_options_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
