"""
Tests of `buttress.vault.VaultConfig` and `RetrySettings`: defaults, the
runbook mapping, and the text of every validation message.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from buttress import Secret
from buttress.vault import RetrySettings, VaultConfig

URL = "https://vault.example.com:8200"
TOKEN = "s.example-token-value"

RUNBOOK = {
    "url": URL,
    "token": TOKEN,
    "namespace": "team-a",
    "timeout_seconds": 12.5,
    "max_concurrent_operations": 20,
    "max_queue_size_multiplier": 4,
    "circuit_breaker_enabled": False,
    "circuit_breaker_failure_threshold": 7,
    "circuit_breaker_reset_timeout_seconds": 45,
    "retry": {
        "max_attempts": 5,
        "initial_backoff_seconds": 0.2,
        "max_backoff_seconds": 4,
        "exponential_base": 3,
    },
}


def test_config_defaults() -> None:
    config = VaultConfig(url=URL, token=TOKEN)

    assert config.namespace is None
    assert config.timeout_seconds == 30.0
    assert config.max_concurrent_operations == 10
    assert config.max_queue_size_multiplier == 3
    assert config.circuit_breaker_enabled is True
    assert config.circuit_breaker_failure_threshold == 5
    assert config.circuit_breaker_reset_timeout_seconds == 30.0
    assert config.retry == RetrySettings()
    assert config.retry.max_attempts == 3
    assert config.retry.initial_backoff_seconds == 0.1
    assert config.retry.max_backoff_seconds == 10.0
    assert config.retry.exponential_base == 2.0
    assert config.verify is True


def test_config_from_runbook_mapping() -> None:
    config = VaultConfig.from_mapping(RUNBOOK)

    assert config.url == URL
    assert config.token.get_secret_value() == TOKEN
    assert config.namespace == "team-a"
    assert config.timeout_seconds == 12.5
    assert config.max_concurrent_operations == 20
    assert config.max_queue_size_multiplier == 4
    assert config.circuit_breaker_enabled is False
    assert config.circuit_breaker_failure_threshold == 7
    assert config.circuit_breaker_reset_timeout_seconds == 45.0
    assert config.retry == RetrySettings(
        max_attempts=5,
        initial_backoff_seconds=0.2,
        max_backoff_seconds=4.0,
        exponential_base=3.0,
    )


def test_config_token_wrapped_in_secret() -> None:
    config = VaultConfig(url=URL, token=TOKEN)
    from_secret = VaultConfig(url=URL, token=Secret(TOKEN))

    assert isinstance(config.token, Secret)
    assert config == from_secret
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)


def test_config_normalizes_values() -> None:
    config = VaultConfig(
        url=URL + "/",
        token=TOKEN,
        timeout_seconds=datetime.timedelta(seconds=3),
        retry={"max_attempts": 2},
    )

    assert config.url == URL
    assert config.timeout_seconds == 3.0
    assert config.retry.max_attempts == 2


def test_config_verify_accepts_ca_path(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not checked until a request is sent")

    assert VaultConfig(url=URL, token=TOKEN, verify=bundle).verify == str(bundle)
    assert VaultConfig(url=URL, token=TOKEN, verify=False).verify is False


# Each case: the settings, the error type, and fragments the message must
# contain (field, value given, allowed range or fix).
INVALID_CONFIGS: list[tuple[dict[str, Any], type[Exception], tuple[str, ...]]] = [
    (
        {"timeout_seconds": 0},
        ValueError,
        ("timeout_seconds=0.0", "greater than 0", "30.0"),
    ),
    ({"timeout_seconds": -1.5}, ValueError, ("timeout_seconds=-1.5", "greater than 0")),
    ({"timeout_seconds": float("inf")}, ValueError, ("timeout_seconds=inf", "finite")),
    (
        {"timeout_seconds": "30"},
        TypeError,
        ("timeout_seconds='30'", "number of seconds", "str"),
    ),
    (
        {"max_concurrent_operations": 0},
        ValueError,
        ("max_concurrent_operations=0", "from 1 to 100"),
    ),
    (
        {"max_concurrent_operations": 101},
        ValueError,
        ("max_concurrent_operations=101", "from 1 to 100"),
    ),
    (
        {"max_concurrent_operations": 2.5},
        TypeError,
        ("max_concurrent_operations=2.5", "integer", "float"),
    ),
    (
        {"max_concurrent_operations": True},
        TypeError,
        ("max_concurrent_operations=True", "integer", "bool"),
    ),
    (
        {"max_queue_size_multiplier": 11},
        ValueError,
        ("max_queue_size_multiplier=11", "from 1 to 10"),
    ),
    (
        {"max_queue_size_multiplier": 0},
        ValueError,
        ("max_queue_size_multiplier=0", "from 1 to 10"),
    ),
    (
        {"circuit_breaker_enabled": "yes"},
        TypeError,
        ("circuit_breaker_enabled='yes'", "True or False"),
    ),
    (
        {"circuit_breaker_failure_threshold": 0},
        ValueError,
        ("circuit_breaker_failure_threshold=0", "at least 1"),
    ),
    (
        {"circuit_breaker_reset_timeout_seconds": 0},
        ValueError,
        ("circuit_breaker_reset_timeout_seconds=0.0", "greater than 0"),
    ),
    (
        {"url": "ftp://vault:8200"},
        ValueError,
        ("url='ftp://vault:8200'", "http or https", URL),
    ),
    (
        {"url": "vault.example.com"},
        ValueError,
        ("url='vault.example.com'", "http or https"),
    ),
    ({"url": "https://"}, ValueError, ("url='https://'", "no host name")),
    (
        {"url": "https://vault:8200/?x=1"},
        ValueError,
        ("url='https://vault:8200/?x=1'", "query"),
    ),
    ({"url": 8200}, TypeError, ("url=8200", "str")),
    ({"namespace": ""}, ValueError, ("namespace=''", "non-empty")),
    (
        {"verify": "/no/such/ca.pem"},
        ValueError,
        ("verify='/no/such/ca.pem'", "CA bundle"),
    ),
    ({"verify": 1}, TypeError, ("verify=1", "True, False")),
    ({"retry": 3}, TypeError, ("retry=3", "RetrySettings")),
]


@pytest.mark.parametrize(
    ("settings", "error", "fragments"),
    INVALID_CONFIGS,
    ids=[
        next(iter(case[0])) + "-" + repr(next(iter(case[0].values())))
        for case in INVALID_CONFIGS
    ],
)
def test_config_invalid_value_message(
    settings: dict[str, Any], error: type[Exception], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(error) as raised:
        VaultConfig(**{"url": URL, "token": TOKEN, **settings})

    message = str(raised.value)
    assert message.startswith("VaultConfig: ")
    for fragment in fragments:
        assert fragment in message


INVALID_RETRY: list[tuple[dict[str, Any], type[Exception], tuple[str, ...]]] = [
    ({"max_attempts": 0}, ValueError, ("max_attempts=0", "at least 1")),
    (
        {"initial_backoff_seconds": 0},
        ValueError,
        ("initial_backoff_seconds=0.0", "greater than 0"),
    ),
    (
        {"max_backoff_seconds": -1},
        ValueError,
        ("max_backoff_seconds=-1.0", "greater than 0"),
    ),
    (
        {"initial_backoff_seconds": 2, "max_backoff_seconds": 1},
        ValueError,
        ("max_backoff_seconds=1.0", "at least initial_backoff_seconds=2.0"),
    ),
    ({"exponential_base": 0.5}, ValueError, ("exponential_base=0.5", "at least 1.0")),
    ({"exponential_base": "2"}, TypeError, ("exponential_base='2'", "number")),
]


@pytest.mark.parametrize(
    ("settings", "error", "fragments"),
    INVALID_RETRY,
    ids=["-".join(case[0]) for case in INVALID_RETRY],
)
def test_retry_invalid_value_message(
    settings: dict[str, Any], error: type[Exception], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(error) as raised:
        RetrySettings(**settings)

    message = str(raised.value)
    assert message.startswith("RetrySettings: ")
    for fragment in fragments:
        assert fragment in message


def test_from_mapping_unknown_key() -> None:
    with pytest.raises(ValueError, match="unknown key") as raised:
        VaultConfig.from_mapping({**RUNBOOK, "timeout": 5})

    message = str(raised.value)
    assert "'timeout'" in message
    assert "Did you mean 'timeout_seconds'?" in message
    assert "circuit_breaker_enabled, circuit_breaker_failure_threshold" in message


def test_from_mapping_unknown_retry_key() -> None:
    mapping = {**RUNBOOK, "retry": {"max_attempt": 2}}
    with pytest.raises(ValueError, match="unknown key") as raised:
        VaultConfig.from_mapping(mapping)

    message = str(raised.value)
    assert "'retry.max_attempt'" in message
    assert "Did you mean 'retry.max_attempts'?" in message
    assert "retry.exponential_base" in message


def test_from_mapping_unknown_key_without_match() -> None:
    with pytest.raises(ValueError, match="unknown key") as raised:
        VaultConfig.from_mapping({**RUNBOOK, "zzz": 1})

    assert "Did you mean" not in str(raised.value)
    assert "Valid keys are: " in str(raised.value)


@pytest.mark.parametrize("key", ["url", "token"])
def test_from_mapping_missing_required_key(key: str) -> None:
    mapping = {name: value for name, value in RUNBOOK.items() if name != key}
    with pytest.raises(ValueError, match=f"required key '{key}' is missing"):
        VaultConfig.from_mapping(mapping)


def test_from_mapping_rejects_non_mapping() -> None:
    with pytest.raises(TypeError, match="expected a mapping"):
        VaultConfig.from_mapping([("url", URL)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "error", "fragment"),
    [
        ("", ValueError, "token is empty"),
        (TOKEN + "\n", ValueError, f"redacted, {len(TOKEN) + 1} characters"),
        (" " + TOKEN, ValueError, "Character 0 is whitespace"),
        (12345, TypeError, "got int"),
        (Secret(12345), TypeError, "must hold a str"),
    ],
    ids=["empty", "trailing-newline", "leading-space", "int", "secret-of-int"],
)
def test_config_invalid_token_hides_value(
    token: object, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as raised:
        VaultConfig(url=URL, token=token)

    message = str(raised.value)
    assert fragment in message
    assert TOKEN not in message
    assert "12345" not in message


def test_config_url_with_password_hides_it() -> None:
    with pytest.raises(ValueError, match="user name or password") as raised:
        VaultConfig(url="https://admin:hunter2@vault:8200", token=TOKEN)

    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    "environ",
    [
        {"BAO_ADDR": "http://admin:hunter2@vault:port", "BAO_TOKEN": TOKEN},
        {"BAO_ADDR": URL, "BAO_TOKEN": TOKEN, "BAO_PROXY_ADDR": "ftp://u:hunter2@px"},
        {
            "VAULT_ADDR": URL,
            "VAULT_TOKEN": TOKEN,
            "VAULT_PROXY_ADDR": "http://u:hunter2@",
        },
    ],
    ids=["unparseable-address", "proxy-scheme", "proxy-without-host"],
)
def test_env_url_password_not_in_error(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="is invalid") as raised:
        VaultConfig.from_env(environ)

    assert "hunter2" not in str(raised.value)
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize("suffix", ["ADDR", "TOKEN"])
def test_env_empty_bao_variable_named_when_it_hides_vault(suffix: str) -> None:
    environ = {"BAO_ADDR": URL, "BAO_TOKEN": TOKEN, "HOME": "/nonexistent"}
    environ[f"BAO_{suffix}"] = ""
    environ[f"VAULT_{suffix}"] = URL if suffix == "ADDR" else TOKEN

    with pytest.raises(ValueError, match=f"Unset BAO_{suffix} to use VAULT_{suffix}"):
        VaultConfig.from_env(environ)


def test_env_attempt_timeout() -> None:
    environ = {
        "BAO_ADDR": URL,
        "BAO_TOKEN": TOKEN,
        "BUTTRESS_VAULT_ATTEMPT_TIMEOUT": "250ms",
    }

    config = VaultConfig.from_env(environ)

    assert config.retry.attempt_timeout_seconds == 0.25
    assert "BUTTRESS_VAULT_ATTEMPT_TIMEOUT" in config.describe()


def test_mapping_attempt_timeout() -> None:
    mapping = {"url": URL, "token": TOKEN, "retry": {"attempt_timeout_seconds": 2}}

    assert VaultConfig.from_mapping(mapping).retry.attempt_timeout_seconds == 2.0
