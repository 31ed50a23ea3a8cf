"""
Tests of `VaultAdapter` and `SyncVaultAdapter` built without a config,
which read it from the environment when they are built.

Settings apply in this order: an explicit config, then ``BAO_*`` (a set
but empty one still wins), then ``VAULT_*``, then the defaults. Every test
starts from an environment without ``BAO_*``, ``VAULT_*`` and
``BUTTRESS_VAULT_*`` variables and with ``HOME`` in a temporary folder, so
a developer's own settings and ``~/.vault-token`` cannot leak in.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from buttress.testing import OpenBaoDevServer
from buttress.vault import (
    PermissionDenied,
    SyncVaultAdapter,
    VaultAdapter,
    VaultUnavailable,
)

pytestmark = pytest.mark.anyio

_PREFIXES = ("BAO_", "VAULT_", "BUTTRESS_VAULT_")
# A token the dev server does not know, for the variable that must lose.
WRONG_TOKEN = "s.wrong-token-that-must-lose"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def unused_address() -> str:
    """
    Return the address of a loopback port that nothing listens on.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def unique_path(name: str) -> str:
    return f"buttress-tests/{name}-{uuid.uuid4().hex[:10]}"


def explicit(openbao: OpenBaoDevServer, **overrides: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "url": openbao.address,
        "token": openbao.root_token,
        "timeout_seconds": 5.0,
        "retry": {"max_attempts": 1},
    }
    mapping.update(overrides)
    return mapping


def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # A refused connection then fails at once instead of after backoff.
    monkeypatch.setenv("BAO_MAX_RETRIES", "0")
    monkeypatch.setenv("BAO_CLIENT_TIMEOUT", "5s")


# -- built from the environment ------------------------------------------------


async def test_adapter_from_bao_env(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAO_ADDR", openbao.address)
    monkeypatch.setenv("BAO_TOKEN", openbao.root_token)
    monkeypatch.setenv("BAO_RATE_LIMIT", "50:5")
    path = unique_path("from-env")
    async with VaultAdapter() as vault:
        await vault.write_secret(path, {"k": "v"})
        secret = await vault.read_secret(path)
        config = vault.config
        limiter = vault.rate_limiter

    assert secret.data == {"k": "v"}
    assert config.url == openbao.address
    assert config.sources["url"] == "BAO_ADDR"
    assert config.sources["token"] == "BAO_TOKEN"
    assert limiter is not None
    assert (limiter.rate, limiter.burst) == (50.0, 5)


def test_sync_adapter_from_vault_env(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    path = unique_path("sync-from-env")
    with SyncVaultAdapter() as vault:
        vault.write_secret(path, {"k": "v"})
        secret = vault.read_secret(path)
        sources = vault.config.sources

    assert secret.data == {"k": "v"}
    assert sources["url"] == "VAULT_ADDR"
    assert sources["token"] == "VAULT_TOKEN"


async def test_env_read_when_built(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAO_ADDR", openbao.address)
    monkeypatch.setenv("BAO_TOKEN", openbao.root_token)
    vault = VaultAdapter()
    monkeypatch.setenv("BAO_ADDR", unused_address())
    monkeypatch.setenv("BAO_TOKEN", WRONG_TOKEN)
    async with vault:
        keys = await vault.list_secrets(unique_path("built"))

    assert keys == []
    assert vault.config.url == openbao.address


# -- precedence -------------------------------------------------------------


async def test_bao_beats_vault(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAO_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_ADDR", unused_address())
    monkeypatch.setenv("BAO_TOKEN", openbao.root_token)
    monkeypatch.setenv("VAULT_TOKEN", WRONG_TOKEN)
    async with VaultAdapter() as vault:
        keys = await vault.list_secrets(unique_path("bao-wins"))

    assert keys == []
    assert vault.config.sources["url"] == "BAO_ADDR"


async def test_explicit_config_beats_env(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAO_ADDR", unused_address())
    monkeypatch.setenv("BAO_TOKEN", WRONG_TOKEN)
    async with VaultAdapter(explicit(openbao)) as vault:
        keys = await vault.list_secrets(unique_path("explicit"))

    assert keys == []
    assert vault.config.url == openbao.address


async def test_initialize_config_beats_env(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAO_ADDR", unused_address())
    monkeypatch.setenv("BAO_TOKEN", WRONG_TOKEN)
    vault = VaultAdapter()
    await vault.initialize(explicit(openbao))
    try:
        keys = await vault.list_secrets(unique_path("initialize"))
    finally:
        await vault.aclose()

    assert keys == []
    assert vault.config.url == openbao.address


async def test_env_config_used_by_initialize(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAO_ADDR", unused_address())
    monkeypatch.setenv("BAO_TOKEN", openbao.root_token)
    no_retries(monkeypatch)
    vault = VaultAdapter()
    await vault.initialize()
    try:
        with pytest.raises(VaultUnavailable):
            await vault.list_secrets(unique_path("env-initialize"))
    finally:
        await vault.aclose()


async def test_empty_bao_addr_hides_vault_addr(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAO_ADDR", "")
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    vault = VaultAdapter()
    with pytest.raises(RuntimeError) as missing:
        await vault.initialize()
    await vault.aclose()

    message = str(missing.value)
    assert "has no config" in message
    assert "BAO_ADDR is set but empty, so VAULT_ADDR is ignored" in message
    assert openbao.root_token not in message


async def test_empty_bao_token_hides_vault_token(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The empty BAO_TOKEN wins over VAULT_TOKEN, so the token comes from
    # the next source, the token file.
    token_file = tmp_path / "token"
    token_file.write_text(openbao.root_token + "\n")
    monkeypatch.setenv("BAO_ADDR", openbao.address)
    monkeypatch.setenv("BAO_TOKEN", "")
    monkeypatch.setenv("VAULT_TOKEN", WRONG_TOKEN)
    monkeypatch.setenv("BUTTRESS_VAULT_TOKEN_FILE", str(token_file))
    async with VaultAdapter() as vault:
        keys = await vault.list_secrets(unique_path("empty-token"))

    assert keys == []
    assert vault.config.sources["token"] == f"file {token_file}"


def test_empty_bao_setting_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAO_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("BAO_TOKEN", "s.env-token")
    monkeypatch.setenv("BAO_CLIENT_TIMEOUT", "")
    monkeypatch.setenv("VAULT_CLIENT_TIMEOUT", "7s")
    vault = VaultAdapter()

    assert vault.config.timeout_seconds == 30.0
    assert vault.config.sources["timeout_seconds"].startswith("default")


# -- token files ------------------------------------------------------------


async def test_token_file_variable(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(openbao.root_token + "\n")
    monkeypatch.setenv("BAO_ADDR", openbao.address)
    monkeypatch.setenv("BUTTRESS_VAULT_TOKEN_FILE", str(token_file))
    async with VaultAdapter() as vault:
        keys = await vault.list_secrets(unique_path("token-file"))

    assert keys == []
    assert vault.config.sources["token"] == f"file {token_file}"


def test_home_token_file(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(os.environ["HOME"])
    (home / ".vault-token").write_text(openbao.root_token)
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    with SyncVaultAdapter() as vault:
        keys = vault.list_secrets(unique_path("home-token"))

    assert keys == []
    assert vault.config.sources["token"] == f"file {home / '.vault-token'}"


def test_empty_token_file_raises(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    monkeypatch.setenv("BAO_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("BUTTRESS_VAULT_TOKEN_FILE", str(token_file))

    with pytest.raises(ValueError, match=r"token file .* is empty"):
        VaultAdapter()


# -- errors -----------------------------------------------------------------


async def test_no_env_leaves_adapter_unconfigured() -> None:
    vault = VaultAdapter()
    with pytest.raises(RuntimeError) as missing:
        await vault.initialize()
    with pytest.raises(RuntimeError, match="not initialized"):
        await vault.read_secret("app")
    await vault.aclose()

    message = str(missing.value)
    assert "has no config" in message
    assert "BAO_ADDR" in message
    assert "VAULT_ADDR" in message
    assert "initialize()" in message


def test_sync_no_env_leaves_adapter_unconfigured() -> None:
    vault = SyncVaultAdapter()
    with pytest.raises(RuntimeError, match=r"has no config.*BAO_ADDR or VAULT_ADDR"):
        vault.initialize()
    with pytest.raises(RuntimeError, match="not initialized"):
        vault.read_secret("app")
    vault.close()


def test_address_without_token_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAO_ADDR", "http://127.0.0.1:8200")

    with pytest.raises(ValueError, match=r"no token is set.*BAO_TOKEN or VAULT_TOKEN"):
        VaultAdapter()
    with pytest.raises(ValueError, match="no token is set"):
        SyncVaultAdapter()


def test_invalid_variable_raises_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAO_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("BAO_TOKEN", "s.env-token")
    monkeypatch.setenv("BAO_RATE_LIMIT", "fast")

    with pytest.raises(ValueError, match="BAO_RATE_LIMIT='fast' is invalid"):
        VaultAdapter()


# -- the token never shows ----------------------------------------------------


async def test_env_token_never_rendered(
    openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAO_ADDR", openbao.address)
    monkeypatch.setenv("BAO_TOKEN", WRONG_TOKEN)
    async with VaultAdapter() as vault:
        with pytest.raises(PermissionDenied) as denied:
            await vault.read_secret(unique_path("denied"))
        texts = [
            repr(vault),
            repr(vault.sync),
            repr(vault.config),
            str(vault.config),
            vault.config.describe(),
            str(vault.config.sources),
            str(denied.value),
            repr(denied.value),
            *getattr(denied.value, "__notes__", []),
            str(await vault.health_check(deep=True)),
        ]

    for text in texts:
        assert WRONG_TOKEN not in text


def test_invalid_env_token_not_in_error(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "s.secret with a space"
    monkeypatch.setenv("BAO_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("BAO_TOKEN", token)

    with pytest.raises(ValueError, match="BAO_TOKEN") as invalid:
        VaultAdapter()
    assert token not in str(invalid.value)
    assert "secret with" not in str(invalid.value)
