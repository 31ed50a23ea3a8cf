"""
The ``python -m buttress.vault`` command line.

``check`` prints the effective configuration and the server's health, and
``get`` reads a KV secret. Both build the config with
`VaultConfig.from_env` (``BAO_*``, then ``VAULT_*``, then the defaults, and
``BUTTRESS_VAULT_*`` for the adapter's own settings), with the command
line options taking precedence, and run one `SyncVaultAdapter`.

Exit statuses: 0 on success, 1 when the server is not ready or a request
failed, 2 for invalid options or configuration, 130 on an interrupt.

The token never reaches the output: the configuration table redacts it,
and the adapter's error messages and log records never contain it. Secret
values go only to stdout, and only from ``get``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .._errors import ButtressError
from ._classify import redact_path
from ._config import VaultConfig, redact_url
from ._env import parse_duration
from ._errors import NotFound, PermissionDenied, SecretDeleted
from ._kv import KVSecret
from ._kv1 import KV1Secret
from ._sync import SyncVaultAdapter

__all__ = ["build_parser", "check_document", "format_check", "main"]

PROG = "python -m buttress.vault"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Loggers whose warnings only --verbose shows, because a retry logs one
# warning per attempt and the final error message already names the failure.
_VERBOSE_ONLY_LOGGERS = ("buttress.retry", "buttress.breaker")

_REASONS = {
    "adapter_closed": "the adapter is closed",
    "adapter_not_initialized": "the adapter is not initialized",
    "executor_closed": "the adapter's thread pool is closed",
    "thread_pool_stalled": (
        "every worker thread has been busy, with none finishing, for more "
        "than twice the timeout"
    ),
    "circuit_breaker_open": "the circuit breaker is open after consecutive failures",
    "thread_pool_saturated": "the thread pool and its queue are full",
    "server_unreachable": "the server sent no health response (see error)",
    "server_not_initialized": (
        "the server is not initialized, so initialize it with 'bao operator init'"
    ),
    "server_sealed": "the server is sealed, so unseal it",
    "token_not_checked": "the token lookup failed (see error)",
}


# `VaultConfig.from_env` ends the first sentence about a missing address or token
# with the keyword argument to pass instead. The command line offers
# --address for the address, and no token option, because other users
# could read a token from the process list.
_ARGUMENT_HINTS = (
    (re.compile(r", or pass url=\."), ", or pass --address."),
    (re.compile(r", ([^,]+), or pass token=\."), r", or \1."),
)


# -- options ----------------------------------------------------------------


def _timeout(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}. {exc}") from None
    if seconds <= 0:
        msg = f"invalid value {text!r}. It must be greater than 0, such as 5 or 500ms."
        raise argparse.ArgumentTypeError(msg)
    return seconds


def _version(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        msg = f"invalid value {text!r}. It must be a version number of at least 1."
        raise argparse.ArgumentTypeError(msg)
    return number


def _path(text: str) -> str:
    cleaned = text.strip("/")
    if not cleaned:
        msg = f"invalid value {text!r}. It must be a non-empty path such as app/db."
        raise argparse.ArgumentTypeError(msg)
    return cleaned


def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection options")
    group.add_argument(
        "--address",
        metavar="URL",
        help=(
            "server address, such as https://vault.example.com:8200 "
            "(default: BAO_ADDR, else VAULT_ADDR)"
        ),
    )
    group.add_argument(
        "--namespace",
        metavar="NS",
        help=(
            "Vault namespace sent with every request "
            "(default: BAO_NAMESPACE, else VAULT_NAMESPACE, else none)"
        ),
    )
    group.add_argument(
        "--timeout",
        metavar="S",
        type=_timeout,
        help=(
            "time limit of one operation, retries included, in seconds or as a "
            "duration such as 500ms or 1m (default: BAO_CLIENT_TIMEOUT, else "
            "VAULT_CLIENT_TIMEOUT, else 30 s). The health probe stops after at "
            "most 5 s."
        ),
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log retries, circuit breaker changes and INFO messages to stderr",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """
    Build the parser of ``python -m buttress.vault`` and its subcommands.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Check a Vault or OpenBao server and read its secrets through "
            "buttress.vault. The settings come from the BAO_* variables, then "
            "VAULT_* (such as BAO_ADDR, BAO_TOKEN, BAO_CACERT), then "
            "BUTTRESS_VAULT_* for the adapter's own settings, and the options "
            "of each command override them."
        ),
        epilog=(
            "Exit status: 0 on success, 1 when the server is not ready or a "
            "request failed, 2 for invalid options or configuration."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection = _connection_options()

    check = commands.add_parser(
        "check",
        parents=[connection],
        help="print the effective configuration and the server's health",
        description=(
            "Print every setting with its value and source (the token "
            "redacted), then probe the server with GET /v1/sys/health, which "
            "needs no token, and print the verdict. Exit status: 0 when "
            "ready, 1 when not ready, 2 for invalid options or configuration."
        ),
    )
    check.add_argument(
        "--deep",
        action="store_true",
        help=(
            "also look the token up (auth/token/lookup-self), which spends one "
            "use of a token limited to a number of uses"
        ),
    )
    check.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document with the keys config and health instead of text",
    )
    check.set_defaults(run=_run_check, subparser=check)

    get = commands.add_parser(
        "get",
        parents=[connection],
        help="read a secret from a KV secrets engine",
        description=(
            "Read the secret at PATH of a KV secrets engine and print its data "
            "as a JSON object on stdout. Exit status: 0 when read, 1 when the "
            "secret does not exist or the request failed, 2 for invalid "
            "options or configuration."
        ),
    )
    get.add_argument(
        "path",
        metavar="PATH",
        type=_path,
        help="path of the secret below the mount, such as app/db",
    )
    get.add_argument(
        "--mount",
        default="secret",
        type=_path,
        help="mount path of the KV secrets engine (default: secret)",
    )
    get.add_argument(
        "--kv",
        type=int,
        choices=(1, 2),
        default=2,
        help="KV version of the mount (default: 2)",
    )
    get.add_argument(
        "--version",
        metavar="N",
        type=_version,
        help="version to read, from 1 (default: the latest; KV version 2 only)",
    )
    get.add_argument(
        "--field",
        metavar="NAME",
        help=(
            "print only the value of this field: a string as it is, any other "
            "value as JSON, with a newline added only when stdout is a terminal"
        ),
    )
    get.add_argument(
        "--json",
        action="store_true",
        help=(
            "print the data and the metadata (version, times) as one JSON "
            "document; with --field, print the field's value as JSON"
        ),
    )
    get.set_defaults(run=_run_get, subparser=get)
    return parser


# -- check ------------------------------------------------------------------


def _setting_value(config: VaultConfig, name: str) -> Any:
    if name.startswith("retry."):
        return getattr(config.retry, name.removeprefix("retry."))
    return getattr(config, name)


def _json_setting(name: str, value: Any) -> Any:
    if name == "token":
        return "<redacted>"
    if name == "proxy_url" and isinstance(value, str):
        return redact_url(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def check_document(config: VaultConfig, report: dict[str, Any]) -> dict[str, Any]:
    """
    Return the ``check --json`` document: each setting's value (the token
    redacted) and source under ``config``, and the health report under
    ``health``.
    """
    settings = {
        name: {
            "value": _json_setting(name, _setting_value(config, name)),
            "source": source,
        }
        for name, source in config.sources.items()
    }
    return {"config": settings, "health": report}


def _yes_no(value: object) -> str:
    if value is None:
        return "unknown"
    return "yes" if value else "no"


def _describe_reason(reason: str, config: VaultConfig) -> str:
    if reason == "token_invalid":
        source = config.sources["token"]
        return f"the server rejected the token from {source}"
    known = _REASONS.get(reason)
    if known is not None:
        return known
    if reason.startswith("server_"):
        role = reason.removeprefix("server_")
        return f"the server's role is {role}, which does not serve requests"
    return reason


def _describe_token(report: dict[str, Any]) -> str:
    if not report["token_checked"]:
        return "not checked (pass --deep to look it up)"
    if report["token_valid"] is False:
        return "rejected by the server"
    if report["token_valid"] is None:
        return "not checked, because the lookup failed (see error)"
    parts = ["valid"]
    if report["token_type"]:
        parts.append(f"type {report['token_type']}")
    ttl = report["token_ttl_remaining_seconds"]
    parts.append("no expiry" if ttl is None else f"expires in {ttl} s")
    if report["token_num_uses"]:
        parts.append(f"{report['token_num_uses']} uses left")
    parts.append(f"renewable: {_yes_no(report['token_renewable'])}")
    return ", ".join(parts)


def _health_rows(config: VaultConfig, report: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("verdict", "ready" if report["ready"] else "not ready")]
    rows.extend(
        ("reason", f"{reason}: {_describe_reason(reason, config)}")
        for reason in report["reasons"]
    )
    role = report["server_role"]
    if report["server_status"] is not None:
        role = f"{role} (HTTP {report['server_status']})"
    rows += [
        ("live", _yes_no(report["live"])),
        ("server", str(report["url"])),
        ("server role", role),
        ("server version", report["version"] or "unknown"),
        ("sealed", _yes_no(report["sealed"])),
        ("token", _describe_token(report)),
        ("circuit breaker", str(report["circuit_breaker_state"])),
    ]
    if report["latency_seconds"] is not None:
        rows.append(("latency", f"{report['latency_seconds'] * 1000:.1f} ms"))
    if report["clock_skew_seconds"] is not None:
        rows.append(("clock skew", f"{report['clock_skew_seconds']:+.1f} s"))
    if report["error"]:
        rows.append(("error", str(report["error"])))
    return rows


def format_check(config: VaultConfig, report: dict[str, Any]) -> str:
    """
    Return the text output of ``check``: the configuration table with the
    token redacted, then the health verdict and its details.
    """
    lines = ["Configuration"]
    lines.extend(f"  {line}" for line in config.describe().splitlines())
    lines += ["", "Health"]
    rows = _health_rows(config, report)
    width = max(len(label) for label, _ in rows)
    lines.extend(f"  {label:<{width}}  {value}" for label, value in rows)
    return "\n".join(lines) + "\n"


def _run_check(args: argparse.Namespace, config: VaultConfig) -> int:
    with SyncVaultAdapter(config) as vault:
        report = vault.health_check(deep=args.deep)
    if args.json:
        document = check_document(config, report)
        sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(format_check(config, report))
    sys.stdout.flush()
    return EXIT_OK if report["ready"] else EXIT_FAILED


# -- get --------------------------------------------------------------------


def _secret_document(secret: KVSecret | KV1Secret) -> dict[str, Any]:
    metadata: dict[str, Any] = {"mount": secret.mount, "path": secret.path}
    if isinstance(secret, KVSecret):
        metadata.update(
            version=secret.version,
            created_time=secret.created_time,
            deletion_time=secret.deletion_time,
            destroyed=secret.destroyed,
            custom_metadata=secret.custom_metadata,
        )
    else:
        metadata["lease_duration"] = secret.lease_duration
    return {"data": secret.data, "metadata": metadata}


def _not_found_message(error: NotFound, args: argparse.Namespace) -> str:
    message = str(error)
    if isinstance(error, SecretDeleted):
        if error.version is not None and error.version > 1:
            message += " To read an earlier version, pass --version N."
        return message
    # A KV version 2 read of a KV version 1 mount finds no secret, because it
    # requests <mount>/data/<path>.
    unmounted = "No secrets engine is mounted" in message
    if args.kv == 2 and args.version is None and not unmounted:
        message += f" If mount {args.mount!r} is KV version 1, pass --kv 1."
    return message


def _field_text(secret: KVSecret | KV1Secret, args: argparse.Namespace) -> str | None:
    """
    Return the output of ``get --field``, or None after reporting a field
    that the secret does not have.
    """
    if args.field not in secret.data:
        names = ", ".join(sorted(secret.data)) or "none"
        _print_error(
            f"the secret at path {redact_path(args.path)!r} on mount "
            f"{args.mount!r} has no field {args.field!r}. Its fields are: {names}."
        )
        return None
    value = secret.data[args.field]
    if args.json:
        return json.dumps(value, ensure_ascii=False) + "\n"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    # A redirected value is written byte for byte, so a file contains exactly
    # the secret. A terminal also gets a newline, so the prompt starts a line.
    return text + "\n" if sys.stdout.isatty() else text


def _run_get(args: argparse.Namespace, config: VaultConfig) -> int:
    with SyncVaultAdapter(config) as vault:
        try:
            if args.kv == 1:
                secret: KVSecret | KV1Secret = vault.kv1.read(
                    args.path, mount_point=args.mount
                )
            else:
                secret = vault.kv.read(
                    args.path, version=args.version, mount_point=args.mount
                )
        except NotFound as exc:
            _print_error(_not_found_message(exc, args))
            return EXIT_FAILED
        except PermissionDenied as exc:
            _print_error(f"{exc} The token came from {config.sources['token']}.")
            return EXIT_FAILED
    if args.field is not None:
        text = _field_text(secret, args)
        if text is None:
            return EXIT_FAILED
    elif args.json:
        text = json.dumps(_secret_document(secret), indent=2, ensure_ascii=False)
        text += "\n"
    else:
        text = json.dumps(secret.data, indent=2, ensure_ascii=False) + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


# -- entry point ------------------------------------------------------------


def _print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


class _VerboseOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        quiet = record.name in _VERBOSE_ONLY_LOGGERS
        return record.levelno >= logging.ERROR or not quiet


@contextlib.contextmanager
def _stderr_logging(verbose: bool) -> Iterator[None]:
    """
    Send the ``buttress`` loggers' records to stderr while the command
    runs, and restore the logger afterwards.
    """
    logger = logging.getLogger("buttress")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_VerboseOnly())
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _load_config(args: argparse.Namespace) -> VaultConfig:
    overrides: dict[str, Any] = {}
    if args.address is not None:
        overrides["url"] = args.address
    if args.namespace is not None:
        overrides["namespace"] = args.namespace
    if args.timeout is not None:
        overrides["timeout_seconds"] = args.timeout
    return VaultConfig.from_env(**overrides)


def _run(args: argparse.Namespace) -> int:
    try:
        config = _load_config(args)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        for pattern, replacement in _ARGUMENT_HINTS:
            message = pattern.sub(replacement, message)
        _print_error(message)
        return EXIT_USAGE
    run: Callable[[argparse.Namespace, VaultConfig], int] = args.run
    try:
        return run(args, config)
    except ButtressError as exc:
        # Every VaultAdapterError, CircuitOpen, ExecutorSaturated and
        # DeadlineExceeded. Their messages contain no token or secret value.
        _print_error(str(exc))
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run ``python -m buttress.vault`` with *argv* (default: ``sys.argv[1:]``)
    and return the exit status.
    """
    args = build_parser().parse_args(argv)
    if args.command == "get" and args.kv == 1 and args.version is not None:
        args.subparser.error(
            "--version applies to KV version 2 only, so drop it or use --kv 2"
        )
    try:
        with _stderr_logging(args.verbose):
            return _run(args)
    except KeyboardInterrupt:
        _print_error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away, such as `head`. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
