"""
Reading `VaultConfig` settings from environment variables.

Each setting that Vault's and OpenBao's own clients read is looked up as
``BAO_<NAME>`` first and ``VAULT_<NAME>`` second. A ``BAO_`` variable that
is set but empty still wins, and then means "use the default", as an empty
variable does for the Go clients. An argument passed to
`VaultConfig.from_env` beats both. Settings that only this adapter has use
the ``BUTTRESS_VAULT_`` prefix, so a future upstream variable cannot
collide with them.

========================  =====================================================
Variable                  Setting
========================  =====================================================
ADDR                      ``url``; ``AGENT_ADDR``, when set, replaces it
TOKEN                     ``token``; without one, the file named by
                          ``BUTTRESS_VAULT_TOKEN_FILE``, else ``~/.vault-token``
NAMESPACE                 ``namespace``
CACERT, CAPATH            ``verify`` as a CA file or directory (CACERT wins)
SKIP_VERIFY               ``verify=False`` when true (logs a warning)
CLIENT_CERT, CLIENT_KEY   ``client_cert``, ``client_key``
TLS_SERVER_NAME           ``tls_server_name``
CLIENT_TIMEOUT            ``timeout_seconds``: ``30s``, ``1m30s``, ``500ms`` or
                          plain seconds such as ``30``
MAX_RETRIES               ``retry.max_attempts`` = MAX_RETRIES + 1; ``-1``
                          turns retries off as 0 does
RETRY_WAIT_MIN, _MAX      ``retry.initial_backoff_seconds``,
                          ``retry.max_backoff_seconds`` (durations)
RATE_LIMIT                ``rate_limit``: ``rate`` or ``rate:burst``
PROXY_ADDR                ``proxy_url``
DISABLE_REDIRECTS         ``follow_redirects=False`` when true
========================  =====================================================

The ``BUTTRESS_VAULT_`` variables are ``MAX_CONCURRENT_OPERATIONS``,
``QUEUE_MULTIPLIER``, ``CIRCUIT_BREAKER_ENABLED``,
``CIRCUIT_BREAKER_FAILURE_THRESHOLD``, ``CIRCUIT_BREAKER_RESET_TIMEOUT``
(a duration), ``TRANSPORT`` (``urllib3`` or ``requests``),
``ATTEMPT_TIMEOUT`` and ``CONNECT_TIMEOUT`` (durations) and
``TOKEN_FILE``. An unknown one is an error, because it is most likely a
misspelling. Booleans accept 1, t, true, yes, on, 0, f, false, no and off
in any case.

``SRV_LOOKUP``, ``HEADERS``, ``WRAP_TTL``, ``MFA`` and the ``*_BYTES``
variants of the certificate variables are not supported. When one is set,
a warning is logged and the variable is ignored.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._config import RateLimit, RetrySettings, VaultConfig, redact_url, shown_url

__all__ = [
    "describe_config",
    "parse_bool",
    "parse_duration",
    "parse_rate_limit",
    "resolve_environment",
    "setting_sources",
]

_log = logging.getLogger("buttress.vault")

OWN_PREFIX = "BUTTRESS_VAULT_"
UPSTREAM_PREFIXES = ("BAO_", "VAULT_")
DEFAULT_TOKEN_FILE = ".vault-token"

_TRUE = frozenset(("1", "t", "true", "yes", "on"))
_FALSE = frozenset(("0", "f", "false", "no", "off"))
_BOOL_FORM = "a boolean: 1, t, true, yes, on, 0, f, false, no or off"
_DURATION_FORM = (
    "a duration such as 30s, 1m30s or 500ms (units h, m, s, ms, us, ns), or a "
    "plain number of seconds such as 30"
)
_DURATION_UNITS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    # Go accepts the micro sign and the Greek letter mu.
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ns": 1e-9,
}
_DURATION_PART = re.compile(
    "(\\d+(?:\\.\\d*)?|\\.\\d+)(h|ms|m|s|us|\u00b5s|\u03bcs|ns)"
)
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")

# Upstream variables this adapter does not implement.
_UNSUPPORTED = (
    "SRV_LOOKUP",
    "HEADERS",
    "WRAP_TTL",
    "MFA",
    "CACERT_BYTES",
    "CLIENT_CERT_BYTES",
    "CLIENT_KEY_BYTES",
)


class _Invalid(ValueError):
    """
    A variable's value could not be parsed; the message gives the reason and what
    form is allowed, without the variable's name and value.
    """


# -- parsers ----------------------------------------------------------------


def parse_bool(text: str) -> bool:
    """
    Parse a boolean such as ``"true"`` or ``"0"``, ignoring case.

    Raises:
        ValueError: For any other text.
    """
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _Invalid(f"It must be {_BOOL_FORM}.")


def parse_duration(text: str) -> float:
    """
    Parse a Go-style duration (``"1m30s"``, ``"500ms"``) or a plain number
    of seconds (``"30"``, ``"0.5"``) into seconds.

    Raises:
        ValueError: For a negative, infinite or unparseable value.
    """
    stripped = text.strip()
    try:
        seconds = float(stripped)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        raise _Invalid(f"It must be {_DURATION_FORM}, not negative or infinite.")
    if not _DURATION.fullmatch(stripped):
        raise _Invalid(f"It must be {_DURATION_FORM}.")
    return sum(
        float(number) * _DURATION_UNITS[unit]
        for number, unit in _DURATION_PART.findall(stripped)
    )


def parse_int(text: str) -> int:
    """
    Parse a decimal integer.

    Raises:
        ValueError: For anything else.
    """
    stripped = text.strip()
    if not re.fullmatch(r"[+-]?\d+", stripped):
        raise _Invalid("It must be a whole number such as 10.")
    return int(stripped)


def parse_rate_limit(text: str) -> RateLimit:
    """
    Parse ``"rate"`` or ``"rate:burst"``, such as ``"50"`` or ``"50:10"``,
    into a `RateLimit`.

    Raises:
        ValueError: For another form, a rate that is not greater than 0, or
            a burst below 1.
    """
    form = (
        "It must be 'rate' or 'rate:burst' with a rate in requests per second "
        "greater than 0 and a whole burst of at least 1, such as 50 or 50:10."
    )
    rate_text, separator, burst_text = text.strip().partition(":")
    try:
        rate = float(rate_text)
        if separator:
            return RateLimit(rate=rate, burst=parse_int(burst_text))
        return RateLimit(rate=rate)
    except (TypeError, ValueError):
        raise _Invalid(form) from None


def parse_transport(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("urllib3", "requests"):
        raise _Invalid("It must be urllib3 (the default, faster) or requests.")
    return lowered


def parse_max_retries(text: str) -> int:
    """
    Turn a retry count into attempts: ``"2"`` gives 3 attempts, and ``"0"``
    and ``"-1"`` both give 1 (no retries).
    """
    form = "It must be a whole number of at least 0, or -1 to turn retries off."
    try:
        retries = parse_int(text)
    except ValueError:
        raise _Invalid(form) from None
    if retries < -1:
        raise _Invalid(form)
    return max(retries, 0) + 1


# -- the table of variables ---------------------------------------------------


@attrs.frozen
class _Setting:
    """
    One setting read from a variable.

    Attributes:
        name: The config field, or ``retry.<field>`` for a retry setting.
        suffix: The variable name after the prefix, such as ``"ADDR"``.
        own: Whether the prefix is ``BUTTRESS_VAULT_`` rather than
            ``BAO_`` and ``VAULT_``.
        parse: Turns the variable's text into the setting's value.
    """

    name: str
    suffix: str
    own: bool
    parse: Callable[[str], Any]


def _text(text: str) -> str:
    return text.strip()


def _negate(parse: Callable[[str], bool]) -> Callable[[str], bool]:
    def parse_negated(text: str) -> bool:
        return not parse(text)

    return parse_negated


# The settings with one variable each. url, token and verify, which combine
# several variables, are resolved by their own functions below.
_SETTINGS = (
    _Setting("namespace", "NAMESPACE", own=False, parse=_text),
    _Setting("client_cert", "CLIENT_CERT", own=False, parse=_text),
    _Setting("client_key", "CLIENT_KEY", own=False, parse=_text),
    _Setting("tls_server_name", "TLS_SERVER_NAME", own=False, parse=_text),
    _Setting("timeout_seconds", "CLIENT_TIMEOUT", own=False, parse=parse_duration),
    _Setting("retry.max_attempts", "MAX_RETRIES", own=False, parse=parse_max_retries),
    _Setting(
        "retry.initial_backoff_seconds",
        "RETRY_WAIT_MIN",
        own=False,
        parse=parse_duration,
    ),
    _Setting(
        "retry.max_backoff_seconds", "RETRY_WAIT_MAX", own=False, parse=parse_duration
    ),
    _Setting("rate_limit", "RATE_LIMIT", own=False, parse=parse_rate_limit),
    _Setting("proxy_url", "PROXY_ADDR", own=False, parse=_text),
    _Setting(
        "follow_redirects",
        "DISABLE_REDIRECTS",
        own=False,
        parse=_negate(parse_bool),
    ),
    _Setting(
        "max_concurrent_operations",
        "MAX_CONCURRENT_OPERATIONS",
        own=True,
        parse=parse_int,
    ),
    _Setting(
        "max_queue_size_multiplier", "QUEUE_MULTIPLIER", own=True, parse=parse_int
    ),
    _Setting(
        "circuit_breaker_enabled", "CIRCUIT_BREAKER_ENABLED", own=True, parse=parse_bool
    ),
    _Setting(
        "circuit_breaker_failure_threshold",
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        own=True,
        parse=parse_int,
    ),
    _Setting(
        "circuit_breaker_reset_timeout_seconds",
        "CIRCUIT_BREAKER_RESET_TIMEOUT",
        own=True,
        parse=parse_duration,
    ),
    _Setting("transport", "TRANSPORT", own=True, parse=parse_transport),
    _Setting(
        "connect_timeout_seconds", "CONNECT_TIMEOUT", own=True, parse=parse_duration
    ),
    _Setting(
        "retry.attempt_timeout_seconds",
        "ATTEMPT_TIMEOUT",
        own=True,
        parse=parse_duration,
    ),
)
# BUTTRESS_VAULT_ variables read outside the table.
_OWN_EXTRA = ("TOKEN_FILE",)
_OWN_NAMES = tuple(
    sorted(
        [OWN_PREFIX + setting.suffix for setting in _SETTINGS if setting.own]
        + [OWN_PREFIX + suffix for suffix in _OWN_EXTRA]
    )
)


# -- resolution -----------------------------------------------------------------


class _Reader:
    """
    Looks variables up in one environment and collects values and sources.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def upstream(self, suffix: str) -> tuple[str, str] | None:
        """
        Return the name and value of ``BAO_<suffix>`` if it is set, else of
        ``VAULT_<suffix>`` if that is set, else None.
        """
        for prefix in UPSTREAM_PREFIXES:
            name = prefix + suffix
            value = self.environ.get(name)
            if value is not None:
                return name, value
        return None

    def own(self, suffix: str) -> tuple[str, str] | None:
        name = OWN_PREFIX + suffix
        value = self.environ.get(name)
        return None if value is None else (name, value)

    def lookup(self, setting: _Setting) -> tuple[str, str] | None:
        return (
            self.own(setting.suffix) if setting.own else self.upstream(setting.suffix)
        )

    def set(self, name: str, value: Any, source: str) -> None:
        self.values[name] = value
        self.sources[name] = source


def _invalid(
    variable: str, raw: str, reason: str, *, secret: bool = False
) -> ValueError:
    # An address or proxy variable may contain a URL with a password in it.
    subject = (
        f"{variable} (value hidden)" if secret else f"{variable}={shown_url(raw)!r}"
    )
    return ValueError(
        f"{subject} is invalid. {reason} Change the variable or unset it."
    )


def _field(name: str) -> attrs.Attribute[Any]:
    if name.startswith("retry."):
        return attrs.fields_dict(RetrySettings)[name.removeprefix("retry.")]
    return attrs.fields_dict(VaultConfig)[name]


def _check_field(name: str, value: Any, variable: str, raw: str) -> None:
    """
    Run the config field's own conversion and checks on *value*, so an
    out-of-range value names the variable it came from.
    """
    field = _field(name)
    convert: Callable[[Any], Any] | None = field.converter  # type: ignore[assignment]
    try:
        converted = value if convert is None else convert(value)
        if field.validator is not None:
            field.validator(None, field, converted)
    except (TypeError, ValueError) as exc:
        raise _invalid(variable, raw, str(exc), secret=name == "token") from None


def _resolve_setting(reader: _Reader, setting: _Setting) -> None:
    found = reader.lookup(setting)
    if found is None:
        return
    variable, raw = found
    if not raw.strip():
        reader.sources[setting.name] = f"default ({variable} is set but empty)"
        return
    try:
        value = setting.parse(raw)
    except _Invalid as exc:
        raise _invalid(variable, raw, str(exc)) from None
    _check_field(setting.name, value, variable, raw)
    reader.set(setting.name, value, variable)


def _resolve_url(reader: _Reader) -> None:
    # An agent address, from either prefix, replaces the server address,
    # as in Vault's and OpenBao's Go clients.
    for suffix in ("AGENT_ADDR", "ADDR"):
        found = reader.upstream(suffix)
        if found is None or not found[1].strip():
            continue
        variable, raw = found
        _check_field("url", raw, variable, raw)
        reader.set("url", raw.strip(), variable)
        return
    msg = (
        "VaultConfig.from_env: no server address is set. Set BAO_ADDR or "
        "VAULT_ADDR (such as https://vault.example.com:8200), or pass url=."
    )
    raise ValueError(msg + _shadowed(reader, "ADDR"))


def _shadowed(reader: _Reader, suffix: str) -> str:
    """
    Return a sentence for an error message when an empty ``BAO_`` variable
    hides a ``VAULT_`` variable that is set, or ``""``.
    """
    bao, vault = (prefix + suffix for prefix in UPSTREAM_PREFIXES)
    own = reader.environ.get(bao)
    other = reader.environ.get(vault)
    if own is not None and not own.strip() and other is not None and other.strip():
        return (
            f" {bao} is set but empty, and an empty BAO_ variable takes "
            f"precedence over {vault}, so {vault} is not used. Unset {bao} "
            f"to use {vault}."
        )
    return ""


def _read_token_file(path: Path, origin: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        msg = (
            f"{origin}: the token file {str(path)!r} could not be read ({reason}). "
            f"Fix the path or the file's permissions."
        )
        raise ValueError(msg) from None
    if not token:
        msg = (
            f"{origin}: the token file {str(path)!r} is empty. Write the token "
            f"into it, or set BAO_TOKEN or VAULT_TOKEN."
        )
        raise ValueError(msg)
    return token


def _resolve_token(reader: _Reader) -> None:
    found = reader.upstream("TOKEN")
    if found is not None and found[1].strip():
        variable, raw = found
        _check_field("token", raw.strip(), variable, raw)
        reader.set("token", raw.strip(), variable)
        return
    file_setting = reader.own("TOKEN_FILE")
    if file_setting is not None and file_setting[1].strip():
        variable, raw = file_setting
        path = Path(raw.strip()).expanduser()
        origin = variable
    else:
        home = reader.environ.get("HOME")
        default_path = Path(home) / DEFAULT_TOKEN_FILE if home else None
        if default_path is None or not default_path.exists():
            msg = (
                "VaultConfig.from_env: no token is set. Set BAO_TOKEN or "
                "VAULT_TOKEN, point BUTTRESS_VAULT_TOKEN_FILE at a file that "
                f"contains it, write it to ~/{DEFAULT_TOKEN_FILE}, or pass token=."
            )
            raise ValueError(msg + _shadowed(reader, "TOKEN"))
        path = default_path
        origin = f"~/{DEFAULT_TOKEN_FILE}"
    token = _read_token_file(path, origin)
    _check_field("token", token, f"the token in {str(path)!r}", "")
    reader.set("token", token, f"file {path}")


def _resolve_verify(reader: _Reader) -> None:
    skip = reader.upstream("SKIP_VERIFY")
    if skip is not None and skip[1].strip():
        variable, raw = skip
        try:
            skip_verify = parse_bool(raw)
        except _Invalid as exc:
            raise _invalid(variable, raw, str(exc)) from None
        if skip_verify:
            reader.set("verify", False, variable)
            return
    elif skip is not None:
        reader.sources["verify"] = f"default ({skip[0]} is set but empty)"
    # The CA file wins over the CA directory, as in the Go clients.
    for suffix in ("CACERT", "CAPATH"):
        found = reader.upstream(suffix)
        if found is None or not found[1].strip():
            continue
        variable, raw = found
        _check_field("verify", raw.strip(), variable, raw)
        reader.set("verify", raw.strip(), variable)
        return


def _warn_unsupported(environ: Mapping[str, str]) -> None:
    for suffix in _UNSUPPORTED:
        for prefix in UPSTREAM_PREFIXES:
            variable = prefix + suffix
            if environ.get(variable, "").strip():
                _log.warning(
                    "%s is set, but buttress.vault does not support it, so it "
                    "is ignored",
                    variable,
                )


def _check_own_names(environ: Mapping[str, str]) -> None:
    for variable in environ:
        if not variable.startswith(OWN_PREFIX) or variable in _OWN_NAMES:
            continue
        message = f"{variable} is not a setting of buttress.vault."
        close = difflib.get_close_matches(variable, _OWN_NAMES, n=1)
        if close:
            message += f" Did you mean {close[0]}?"
        message += f" Known ones are: {', '.join(_OWN_NAMES)}. Rename or unset it."
        raise ValueError(message)


def resolve_environment(
    environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """
    Return the `VaultConfig` keyword arguments and the source of each
    setting, from *environ* with *overrides* taking precedence.

    Raises:
        ValueError: For a missing address or token, an invalid value, or
            an unknown ``BUTTRESS_VAULT_`` variable.
    """
    _check_own_names(environ)
    _warn_unsupported(environ)
    reader = _Reader(environ)
    if "url" not in overrides:
        _resolve_url(reader)
    if "token" not in overrides:
        _resolve_token(reader)
    if "verify" not in overrides:
        _resolve_verify(reader)
    for setting in _SETTINGS:
        field = setting.name.partition(".")[0]
        if field not in overrides:
            _resolve_setting(reader, setting)

    values = {name: value for name, value in reader.values.items() if "." not in name}
    retry = {
        name.removeprefix("retry."): value
        for name, value in reader.values.items()
        if name.startswith("retry.")
    }
    if retry:
        values["retry"] = retry
    values.update(overrides)
    sources = dict(reader.sources)
    for name in overrides:
        sources[name] = "argument"
        for nested in _nested_names(name):
            sources[nested] = "argument"
    return values, sources


def _nested_names(name: str) -> list[str]:
    if name != "retry":
        return []
    return [f"retry.{field.name}" for field in attrs.fields(RetrySettings)]


# -- describe -----------------------------------------------------------------


def _setting_names() -> Iterator[str]:
    for field in attrs.fields(VaultConfig):
        if not field.init:
            continue
        if field.name == "retry":
            yield from _nested_names("retry")
        else:
            yield field.name


def _default(name: str) -> Any:
    """
    Return the default of a setting, or `attrs.NOTHING` for the address
    and the token, which have none.
    """
    default: Any = _field(name).default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return default.factory()
    return default


def _value(config: VaultConfig, name: str) -> Any:
    if name.startswith("retry."):
        return getattr(config.retry, name.removeprefix("retry."))
    return getattr(config, name)


def setting_sources(config: VaultConfig, stored: Mapping[str, str]) -> dict[str, str]:
    """
    Return the source of every setting of *config*: the one `from_env`
    stored, else ``"argument"`` when the value differs from the default
    and ``"default"`` when it does not.
    """
    sources: dict[str, str] = {}
    for name in _setting_names():
        source = stored.get(name)
        if source is None or source.startswith("default"):
            if _value(config, name) != _default(name):
                source = "argument"
            elif source is None:
                source = "default"
        sources[name] = source
    return sources


def _shown(name: str, value: Any) -> str:
    if name == "token":
        return "<redacted>"
    if name == "proxy_url" and isinstance(value, str):
        return redact_url(value)
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "None"
    return str(value)


def describe_config(config: VaultConfig) -> str:
    """
    Return one line per setting: the name, the effective value and its
    source, in aligned columns under a header line.
    """
    sources = config.sources
    rows = [("setting", "value", "source")]
    rows.extend(
        (name, _shown(name, _value(config, name)), sources[name])
        for name in _setting_names()
    )
    name_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    lines = [
        f"{name:<{name_width}}  {value:<{value_width}}  {source}".rstrip()
        for name, value, source in rows
    ]
    return "\n".join(lines) + "\n"
