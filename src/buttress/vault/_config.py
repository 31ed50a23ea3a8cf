"""
The adapter's configuration, validated when it is built.

Each invalid value fails at construction with a message that names the
field, the value given, the allowed range and an example of a valid value.
The token is the exception: its messages give its length, never its value.
`VaultConfig.from_env` reads the same settings from ``BAO_*``, ``VAULT_*``
and ``BUTTRESS_VAULT_*`` environment variables (see
`buttress.vault._env`).
"""

from __future__ import annotations

import datetime
import difflib
import logging
import math
import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO, TypeAlias

import attrs
from typing_extensions import Self

from .._secret import Secret

__all__ = ["RateLimit", "RetrySettings", "Transport", "VaultConfig"]

_log = logging.getLogger("buttress.vault")

Verify: TypeAlias = bool | str
"""TLS verification: True, False, or the path of a CA bundle file or directory."""

Transport: TypeAlias = Literal["urllib3", "requests"]
"""The HTTP library under hvac: ``"urllib3"`` (the default) or ``"requests"``."""

Validator: TypeAlias = Callable[[object, "attrs.Attribute[Any]", Any], None]


def _type_name(value: object) -> str:
    return type(value).__name__


def _to_float(
    value: object, owner: str, field: str, example: str, *, seconds: bool
) -> float:
    """
    Convert a number to a float, and also a `datetime.timedelta` when
    *seconds* is true. Other types raise TypeError.
    """
    if seconds and isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "number of seconds (or a datetime.timedelta)" if seconds else "number"
        msg = (
            f"{owner}: {field}={value!r} is invalid. It must be a {kind}, "
            f"such as {example} (got {_type_name(value)})."
        )
        raise TypeError(msg)
    return float(value)


def _at_least(owner: str, low: float, example: str, *, inclusive: bool) -> Validator:
    relation = f"of at least {low}" if inclusive else f"greater than {low:g}"

    def validate(
        instance: object, attribute: attrs.Attribute[Any], value: float
    ) -> None:
        ok = value >= low if inclusive else value > low
        if not (math.isfinite(value) and ok):
            msg = (
                f"{owner}: {attribute.name}={value!r} is out of range. It must be "
                f"a finite number {relation}, such as {example}."
            )
            raise ValueError(msg)

    return validate


def _integer(owner: str, low: int, high: int | None, example: int) -> Validator:
    allowed = f"from {low} to {high}" if high is not None else f"at least {low}"

    def validate(
        instance: object, attribute: attrs.Attribute[Any], value: object
    ) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            msg = (
                f"{owner}: {attribute.name}={value!r} is invalid. It must be an "
                f"integer {allowed}, such as {example} (got {_type_name(value)})."
            )
            raise TypeError(msg)
        if value < low or (high is not None and value > high):
            msg = (
                f"{owner}: {attribute.name}={value!r} is out of range. It must be "
                f"an integer {allowed}, such as {example}."
            )
            raise ValueError(msg)

    return validate


def _strict_bool(owner: str) -> Validator:
    def validate(
        instance: object, attribute: attrs.Attribute[Any], value: object
    ) -> None:
        if not isinstance(value, bool):
            msg = (
                f"{owner}: {attribute.name}={value!r} is invalid. It must be True "
                f"or False (got {_type_name(value)})."
            )
            raise TypeError(msg)

    return validate


def _check_keys(
    owner: str, mapping: Mapping[Any, Any], valid: list[str], prefix: str
) -> None:
    """
    Raise ValueError for the first key of *mapping* not in *valid*, with the
    closest valid key as a suggestion. *prefix* names the enclosing key.
    """
    for key in mapping:
        if key in valid:
            continue
        message = f"{owner}: unknown key {prefix + str(key)!r}."
        if isinstance(key, str):
            close = difflib.get_close_matches(key, valid, n=1)
            if close:
                message += f" Did you mean {prefix + close[0]!r}?"
        message += f" Valid keys are: {', '.join(prefix + name for name in valid)}."
        raise ValueError(message)


def _check_mapping(owner: str, value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        msg = f"{owner}: expected a mapping of settings (got {_type_name(value)})."
        raise TypeError(msg)
    return value


# -- retry settings -----------------------------------------------------

_RETRY = "RetrySettings"


def _attempt_timeout_seconds(value: object) -> float:
    return _to_float(
        value, _RETRY, "attempt_timeout_seconds", "5.0, or None", seconds=True
    )


def _initial_backoff_seconds(value: object) -> float:
    return _to_float(value, _RETRY, "initial_backoff_seconds", "0.1", seconds=True)


def _max_backoff_seconds(value: object) -> float:
    return _to_float(value, _RETRY, "max_backoff_seconds", "10.0", seconds=True)


def _exponential_base(value: object) -> float:
    return _to_float(value, _RETRY, "exponential_base", "2.0", seconds=False)


@attrs.frozen
class RetrySettings:
    """
    How the adapter retries a failed Vault request.

    Args:
        max_attempts: Attempts per operation, the first one included; at
            least 1 (1 disables retries).
        initial_backoff_seconds: Delay before the second attempt, greater
            than 0. It is also the minimum wait after a 429 response, even
            when its ``Retry-After`` header requests less.
        max_backoff_seconds: Upper bound on any delay, at least
            ``initial_backoff_seconds``.
        exponential_base: Factor by which the delay grows per attempt, at
            least 1.0. Each delay is then jittered between 0 and its value.
        attempt_timeout_seconds: Time one attempt may take, greater than 0,
            or None to let an attempt use all of ``timeout_seconds``. A
            request still unanswered after this is abandoned with
            `VaultTimeout` and, when the operation is safe to replay,
            retried within ``timeout_seconds``: set it to survive a server
            that hangs on some requests.

    .. versionadded:: 0.1.0
    """

    max_attempts: int = attrs.field(default=3, validator=_integer(_RETRY, 1, None, 3))
    initial_backoff_seconds: float = attrs.field(
        default=0.1,
        converter=_initial_backoff_seconds,
        validator=_at_least(_RETRY, 0.0, "0.1", inclusive=False),
    )
    max_backoff_seconds: float = attrs.field(
        default=10.0,
        converter=_max_backoff_seconds,
        validator=_at_least(_RETRY, 0.0, "10.0", inclusive=False),
    )
    exponential_base: float = attrs.field(
        default=2.0,
        converter=_exponential_base,
        validator=_at_least(
            _RETRY, 1.0, "2.0 (1.0 keeps the delay constant)", inclusive=True
        ),
    )

    attempt_timeout_seconds: float | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(_attempt_timeout_seconds),
        validator=attrs.validators.optional(
            _at_least(_RETRY, 0.0, "5.0, or None", inclusive=False)
        ),
    )

    def __attrs_post_init__(self) -> None:
        if self.max_backoff_seconds < self.initial_backoff_seconds:
            msg = (
                f"{_RETRY}: max_backoff_seconds={self.max_backoff_seconds!r} is "
                f"out of range. It must be at least initial_backoff_seconds="
                f"{self.initial_backoff_seconds!r}, so raise it or lower "
                f"initial_backoff_seconds."
            )
            raise ValueError(msg)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Self:
        """
        Build settings from a mapping with the field names as keys.

        Raises:
            ValueError: For an unknown key, naming the valid ones.
        """
        return cls._from_mapping(mapping, f"{_RETRY}.from_mapping", "")

    @classmethod
    def _from_mapping(cls, mapping: Mapping[str, Any], owner: str, prefix: str) -> Self:
        mapping = _check_mapping(owner, mapping)
        _check_keys(
            owner, mapping, sorted(field.name for field in attrs.fields(cls)), prefix
        )
        return cls(**mapping)


def _retry_settings(value: object) -> RetrySettings:
    if isinstance(value, RetrySettings):
        return value
    if isinstance(value, Mapping):
        return RetrySettings._from_mapping(value, _CONFIG, "retry.")
    msg = (
        f"VaultConfig: retry={value!r} is invalid. Pass a RetrySettings or a "
        f"mapping with the keys max_attempts, initial_backoff_seconds, "
        f"max_backoff_seconds, exponential_base and attempt_timeout_seconds."
    )
    raise TypeError(msg)


# -- the adapter's configuration ----------------------------------------

_CONFIG = "VaultConfig"
_URL_EXAMPLE = "'https://vault.example.com:8200'"


def _timeout_seconds(value: object) -> float:
    return _to_float(value, _CONFIG, "timeout_seconds", "30.0", seconds=True)


def _connect_timeout_seconds(value: object) -> float:
    return _to_float(value, _CONFIG, "connect_timeout_seconds", "5.0", seconds=True)


def _reset_timeout_seconds(value: object) -> float:
    field = "circuit_breaker_reset_timeout_seconds"
    return _to_float(value, _CONFIG, field, "30.0", seconds=True)


def _normalize_url(value: object) -> str:
    """
    Check that *value* is an http or https URL with a host, and return it
    without surrounding whitespace and trailing slashes.
    """
    if not isinstance(value, str):
        msg = (
            f"{_CONFIG}: url={value!r} is invalid. It must be a str such as "
            f"{_URL_EXAMPLE} (got {_type_name(value)})."
        )
        raise TypeError(msg)
    try:
        parts = urllib.parse.urlsplit(value.strip())
        port = parts.port
    except ValueError:
        msg = (
            f"{_CONFIG}: url={shown_url(value)!r} is invalid. It is not a "
            f"parseable URL, so pass one such as {_URL_EXAMPLE}."
        )
        raise ValueError(msg) from None
    if parts.username is not None or parts.password is not None:
        # The value is not echoed, because it contains credentials.
        msg = (
            f"{_CONFIG}: url is invalid because it contains a user name or "
            f"password. Remove them, because Vault authenticates with the token."
        )
        raise ValueError(msg)
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = f"Its scheme is {parts.scheme!r}, but it must be http or https."
    elif not parts.hostname:
        problem = "It has no host name."
    elif parts.query or parts.fragment:
        problem = "It has a query or fragment, which a server address cannot have."
    elif port == 0:
        problem = "Its port is 0, but it must be from 1 to 65535."
    if problem is not None:
        msg = (
            f"{_CONFIG}: url={value!r} is invalid. {problem} Pass one such as "
            f"{_URL_EXAMPLE}."
        )
        raise ValueError(msg)
    return value.strip().rstrip("/")


def _to_secret(value: object) -> Secret[str]:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    # The value is not echoed, because a wrongly typed token may still be one.
    msg = (
        f"{_CONFIG}: token is invalid. It must be a str or a buttress.Secret[str] "
        f"(got {_type_name(value)})."
    )
    raise TypeError(msg)


def _check_token(
    instance: object, attribute: attrs.Attribute[Secret[str]], value: Secret[str]
) -> None:
    token: object = value.get_secret_value()
    if not isinstance(token, str):
        msg = (
            f"{_CONFIG}: token is invalid. The Secret must hold a str "
            f"(got {_type_name(token)})."
        )
        raise TypeError(msg)
    if not token:
        msg = (
            f"{_CONFIG}: token is empty. Pass the Vault token, for example from "
            f"the VAULT_TOKEN environment variable."
        )
        raise ValueError(msg)
    for index, char in enumerate(token):
        if not char.isprintable() or char.isspace():
            msg = (
                f"{_CONFIG}: token (redacted, {len(token)} characters) is invalid. "
                f"Character {index} is whitespace or not printable, such as the "
                f"trailing newline of a token file. Strip the value before passing it."
            )
            raise ValueError(msg)


def _check_namespace(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip("/ "):
        msg = (
            f"{_CONFIG}: namespace={value!r} is invalid. It must be None or a "
            f"non-empty namespace path such as 'team-a' or 'team-a/apps'."
        )
        raise ValueError(msg)


def _fspath(value: object) -> object:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _check_verify(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if isinstance(value, bool):
        return
    if not isinstance(value, str):
        msg = (
            f"{_CONFIG}: verify={value!r} is invalid. It must be True, False, or "
            f"the path of a CA bundle (got {_type_name(value)})."
        )
        raise TypeError(msg)
    if not os.path.exists(value):
        msg = (
            f"{_CONFIG}: verify={value!r} is invalid because no file or directory "
            f"exists at that path. Pass the path of the CA bundle that signed "
            f"the server's certificate, or True for certifi's CA bundle."
        )
        raise ValueError(msg)


def _check_optional_file(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        msg = (
            f"{_CONFIG}: {attribute.name}={value!r} is invalid. It must be None "
            f"or the path of a PEM file (got {_type_name(value)})."
        )
        raise TypeError(msg)
    if not os.path.isfile(value):
        msg = (
            f"{_CONFIG}: {attribute.name}={value!r} is invalid because no file "
            f"exists at that path. Pass the path of the PEM file, or None."
        )
        raise ValueError(msg)


def _check_server_name(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or any(c in value for c in "/: "):
        msg = (
            f"{_CONFIG}: tls_server_name={value!r} is invalid. It must be None or "
            f"a host name without scheme or port, such as 'vault.example.com'."
        )
        raise ValueError(msg)


def _normalize_proxy_url(value: object) -> object:
    if isinstance(value, str):
        return value.strip() or None
    return value


def shown_url(value: str) -> str:
    """
    Return *value*, a URL that may hold a password, in a form safe for an
    error message: with the password replaced by ``***``, or hidden whole
    when it cannot be parsed.
    """
    if "@" not in value:
        return value
    try:
        return redact_url(value)
    except ValueError:
        return "<hidden: it may contain a password>"


def redact_url(url: str) -> str:
    """
    Return *url* with any password in it replaced by ``***``.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(
        parts._replace(netloc=f"{parts.username}:***@{host}")
    )


def _check_proxy_url(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        msg = (
            f"{_CONFIG}: proxy_url is invalid. It must be None or a str such as "
            f"'http://proxy.example.com:3128' (got {_type_name(value)})."
        )
        raise TypeError(msg)
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - parsing the port checks it
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # A password in the URL is masked.
        msg = (
            f"{_CONFIG}: proxy_url={redact_url(value)!r} is invalid. It must be "
            f"an http or https URL with a host, such as "
            f"'http://proxy.example.com:3128'."
        )
        raise ValueError(msg)


def _check_transport(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value not in ("urllib3", "requests"):
        msg = (
            f"{_CONFIG}: transport={value!r} is invalid. It must be 'urllib3' "
            f"(the default, faster) or 'requests'."
        )
        raise ValueError(msg)


# -- client-side rate limit ---------------------------------------------

_RATE = "RateLimit"


def _rate(value: object) -> float:
    return _to_float(value, _RATE, "rate", "50.0", seconds=False)


def _default_burst(limit: RateLimit) -> int:
    rate = limit.rate
    # An invalid rate is rejected by its own validator, which runs later.
    return max(1, int(rate)) if math.isfinite(rate) and rate > 0 else 1


@attrs.frozen
class RateLimit:
    """
    A client-side limit on how fast requests are started: a token bucket
    that refills at *rate* tokens per second and holds up to *burst*.

    Args:
        rate: Requests per second, greater than 0.
        burst: Requests that may start at once after an idle period, at
            least 1. The default is ``max(1, int(rate))``.

    .. versionadded:: 0.1.0
    """

    rate: float = attrs.field(
        converter=_rate, validator=_at_least(_RATE, 0.0, "50.0", inclusive=False)
    )
    burst: int = attrs.field(
        default=attrs.Factory(_default_burst, takes_self=True),
        validator=_integer(_RATE, 1, None, 10),
    )

    def __str__(self) -> str:
        return f"{self.rate:g}:{self.burst}"


def _rate_limit(value: object) -> RateLimit | None:
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, Mapping):
        mapping = _check_mapping(f"{_CONFIG}.rate_limit", value)
        _check_keys(_CONFIG, mapping, ["burst", "rate"], "rate_limit.")
        return RateLimit(**mapping)
    msg = (
        f"{_CONFIG}: rate_limit={value!r} is invalid. Pass None, a RateLimit, or "
        f"a mapping such as {{'rate': 50.0, 'burst': 10}}."
    )
    raise TypeError(msg)


@attrs.frozen
class VaultConfig:
    """
    Settings of a `VaultAdapter`: the server, the token, and the limits of
    every resilience layer.

    Args:
        url: The server's address, with an http or https scheme.
        token: The Vault token, as a str or a `buttress.Secret`. It is
            stored as a Secret, so the config's repr never shows it.
        namespace: The Vault namespace sent with every request, or None.
        timeout_seconds: Time one operation may take, retries and backoff
            included, greater than 0. Each request's socket timeout is the
            time left of it.
        max_concurrent_operations: Worker threads, so Vault requests that
            may run at once, from 1 to 100.
        max_queue_size_multiplier: Operations that may wait for a worker,
            as a multiple of ``max_concurrent_operations``, from 1 to 10.
            More are rejected at once with `buttress.ExecutorSaturated`.
        circuit_breaker_enabled: Whether a circuit breaker fails calls fast
            while the server is failing.
        circuit_breaker_failure_threshold: Consecutive failed requests that
            open the breaker, at least 1.
        circuit_breaker_reset_timeout_seconds: Seconds the breaker stays
            open before it lets one probe request through, greater than 0.
        retry: The retry settings.
        verify: TLS verification: True, False, or the path of a CA bundle
            file or directory. False logs a warning, because any server
            can then impersonate Vault and receive the token.
        client_cert: Path of the PEM client certificate for TLS client
            authentication, or None. It may contain the key too.
        client_key: Path of the PEM private key of ``client_cert``, or None
            when the certificate file contains it.
        tls_server_name: Host name sent for SNI and checked against the
            server's certificate in place of the URL's host, or None.
        proxy_url: The http or https proxy for every request, or None to
            take it from ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and
            ``NO_PROXY`` as requests does.
        follow_redirects: Whether to follow HTTP redirects, such as a
            standby's redirect to the active node. A redirect from https
            to http is never followed by the urllib3 transport.
        rate_limit: A client-side `RateLimit` on starting requests, or
            None for no limit.
        transport: The HTTP library under hvac, ``"urllib3"`` (the
            default) or ``"requests"``.
        connect_timeout_seconds: Time to establish a connection, TLS
            handshake included, greater than 0; at most the socket timeout
            of the request. An unreachable server then frees the worker
            thread quickly, and the failure, which sent nothing, is
            retried.

    Use `from_env` to read these settings from environment variables,
    and `describe` to show each value and where it came from.

    .. versionadded:: 0.1.0
    """

    url: str = attrs.field(converter=_normalize_url)
    token: Secret[str] = attrs.field(
        converter=_to_secret, validator=_check_token, hash=False
    )
    namespace: str | None = attrs.field(default=None, validator=_check_namespace)
    timeout_seconds: float = attrs.field(
        default=30.0,
        converter=_timeout_seconds,
        validator=_at_least(_CONFIG, 0.0, "30.0", inclusive=False),
    )
    max_concurrent_operations: int = attrs.field(
        default=10, validator=_integer(_CONFIG, 1, 100, 10)
    )
    max_queue_size_multiplier: int = attrs.field(
        default=3, validator=_integer(_CONFIG, 1, 10, 3)
    )
    circuit_breaker_enabled: bool = attrs.field(
        default=True, validator=_strict_bool(_CONFIG)
    )
    circuit_breaker_failure_threshold: int = attrs.field(
        default=5, validator=_integer(_CONFIG, 1, None, 5)
    )
    circuit_breaker_reset_timeout_seconds: float = attrs.field(
        default=30.0,
        converter=_reset_timeout_seconds,
        validator=_at_least(_CONFIG, 0.0, "30.0", inclusive=False),
    )
    retry: RetrySettings = attrs.field(factory=RetrySettings, converter=_retry_settings)
    verify: Verify = attrs.field(
        default=True, converter=_fspath, validator=_check_verify
    )
    client_cert: str | None = attrs.field(
        default=None, converter=_fspath, validator=_check_optional_file
    )
    client_key: str | None = attrs.field(
        default=None, converter=_fspath, validator=_check_optional_file
    )
    tls_server_name: str | None = attrs.field(
        default=None, validator=_check_server_name
    )
    proxy_url: str | None = attrs.field(
        default=None,
        converter=_normalize_proxy_url,
        validator=_check_proxy_url,
        repr=lambda url: repr(None if url is None else redact_url(url)),
    )
    follow_redirects: bool = attrs.field(default=True, validator=_strict_bool(_CONFIG))
    rate_limit: RateLimit | None = attrs.field(default=None, converter=_rate_limit)
    transport: Transport = attrs.field(default="urllib3", validator=_check_transport)
    connect_timeout_seconds: float = attrs.field(
        default=5.0,
        converter=_connect_timeout_seconds,
        validator=_at_least(_CONFIG, 0.0, "5.0", inclusive=False),
    )
    # Where each setting came from, filled by from_env. A field missing
    # here was passed as an argument or kept its default.
    _sources: Mapping[str, str] = attrs.field(
        init=False, factory=dict, eq=False, repr=False, hash=False
    )

    def __attrs_post_init__(self) -> None:
        if self.client_key is not None and self.client_cert is None:
            msg = (
                f"{_CONFIG}: client_key={self.client_key!r} is set without "
                f"client_cert. Set client_cert to the matching certificate, or "
                f"remove client_key."
            )
            raise ValueError(msg)
        if self.verify is False:
            _log.warning(
                "TLS certificate verification is OFF for %s: any server can "
                "impersonate Vault and receive the token. Use this only in "
                "development, and set verify to a CA bundle instead.",
                self.url,
            )

    @classmethod
    def _field_names(cls) -> list[str]:
        return sorted(field.name for field in attrs.fields(cls) if field.init)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Self:
        """
        Build a config from environment variables, with *overrides* (the
        field names as keyword arguments) taking precedence.

        For each setting the first of these applies: an override, the
        ``BAO_`` variable (even when set but empty, which then means the
        default), the ``VAULT_`` variable, the default. Settings of the
        adapter alone use the ``BUTTRESS_VAULT_`` prefix. The server
        address and the token have no default. See `buttress.vault._env`
        for the variables and their formats.

        Args:
            environ: The variables to read; `os.environ` when None.

        Raises:
            ValueError: For a missing address or token, or an invalid value.
                The message names the variable, the value (never for a
                secret), the allowed form and the fix.
            TypeError: For an override of the wrong type.
        """
        from ._env import resolve_environment

        _check_keys(f"{_CONFIG}.from_env", overrides, cls._field_names(), "")
        values, sources = resolve_environment(
            os.environ if environ is None else environ, overrides
        )
        config = cls(**values)
        object.__setattr__(config, "_sources", dict(sources))
        return config

    @property
    def sources(self) -> dict[str, str]:
        """
        Where each setting came from, by name (``retry.max_attempts`` for
        a retry setting): ``"argument"``, ``"default"``, a variable such as
        ``"BAO_ADDR"``, or a token file such as ``"file ~/.vault-token"``.
        """
        from ._env import setting_sources

        return setting_sources(self, self._sources)

    def describe(self, file: TextIO | None = None) -> str:
        """
        Return a table of every setting, its effective value and where it
        came from, and write it to *file* when one is given.

        The token is shown as ``<redacted>`` and a proxy password as
        ``***``.
        """
        from ._env import describe_config

        text = describe_config(self)
        if file is not None:
            file.write(text)
        return text

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Self:
        """
        Build a config from a mapping such as a parsed YAML or JSON file.

        The keys are the field names: ``url`` and ``token`` are required,
        and ``retry`` is a nested mapping with the `RetrySettings` field
        names as keys.

        Raises:
            ValueError: For an unknown or missing key, naming the valid
                keys, or for an invalid value.
            TypeError: For a value of the wrong type.
        """
        owner = f"{_CONFIG}.from_mapping"
        mapping = _check_mapping(owner, mapping)
        _check_keys(owner, mapping, cls._field_names(), "")
        for required, example in (("url", _URL_EXAMPLE), ("token", "'s.xxxxxxxx'")):
            if required not in mapping:
                msg = (
                    f"{owner}: the required key {required!r} is missing. Add it, "
                    f"such as {required!r}: {example}."
                )
                raise ValueError(msg)
        return cls(**mapping)
