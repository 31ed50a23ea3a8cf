"""
Checks of the arguments of adapter operations, run before anything is sent.

Each check raises TypeError or ValueError with a message that names the
method, the argument, the value and a valid example. Secret values (the
data of a write, plaintexts) are never echoed: their messages give only the
type.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._classify import Replay

__all__ = [
    "check_bytes",
    "check_data",
    "check_duration",
    "check_namespace",
    "check_optional_int",
    "check_replay",
    "check_segments",
    "check_text",
    "check_versions",
]

_DOT_SEGMENTS = frozenset({".", ".."})

_REPLAY_NAMES: tuple[Replay, ...] = (
    "safe",
    "idempotent",
    "idempotent_with_cas",
    "non_idempotent",
    "never_retry",
)


def check_text(method: str, name: str, value: object, *, allow_empty: bool) -> str:
    """
    Return *value* without leading and trailing slashes, after checking it
    is a str that is non-empty unless *allow_empty*.
    """
    if not isinstance(value, str):
        msg = f"{method}: {name} must be a str (got {type(value).__name__})."
        raise TypeError(msg)
    cleaned = value.strip("/")
    if not cleaned and not allow_empty:
        example = "'app/db'" if name == "path" else "'secret'"
        msg = f"{method}: {name}={value!r} is empty. Pass one such as {example}."
        raise ValueError(msg)
    check_segments(method, name, cleaned)
    return cleaned


def check_segments(method: str, name: str, value: str) -> None:
    """
    Raise ValueError when one of the segments of *value* is ``.`` or ``..``.

    The server resolves such segments before routing, so ``app/../../sys``
    below a mount would reach an endpoint outside it.
    """
    if any(segment in _DOT_SEGMENTS for segment in value.split("/")):
        # Only the segments are named: the rest of a path may be sensitive.
        msg = (
            f"{method}: {name} contains a '.' or '..' segment, which the "
            f"server would resolve to a path outside the one named. Pass the "
            f"path without them."
        )
        raise ValueError(msg)


def check_optional_int(
    method: str, name: str, value: object, low: int, fix: str
) -> int | None:
    """
    Return *value* after checking that it is None or an int of at least
    *low*; *fix* ends the range message, such as ``"or None for the latest
    version"``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{method}: {name}={value!r} is invalid. It must be None or an integer (got {type(value).__name__})."
        raise TypeError(msg)
    if value < low:
        msg = f"{method}: {name}={value!r} is out of range. It must be at least {low}, {fix}."
        raise ValueError(msg)
    return value


def check_namespace(method: str, value: object) -> str | None:
    """
    Return a per-call namespace without surrounding slashes: None keeps the
    configured namespace, and ``""`` selects the root namespace.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        msg = (
            f"{method}: namespace={value!r} is invalid. It must be None (the "
            f"configured namespace), '' (the root namespace) or a namespace "
            f"path such as 'team-a' (got {type(value).__name__})."
        )
        raise TypeError(msg)
    cleaned = value.strip().strip("/")
    check_segments(method, "namespace", cleaned)
    return cleaned


def check_data(method: str, name: str, value: object) -> dict[str, Any]:
    """
    Return a copy of a mapping of str keys, such as the data of a write.

    The message for a wrong value gives only its type, because the value
    may hold secrets.
    """
    if not isinstance(value, Mapping):
        msg = f"{method}: {name} must be a mapping of str keys (got {type(value).__name__})."
        raise TypeError(msg)
    for key in value:
        if not isinstance(key, str):
            msg = f"{method}: every key of {name} must be a str (got a key of type {type(key).__name__})."
            raise TypeError(msg)
    return dict(value)


def check_versions(method: str, value: object) -> list[int]:
    """
    Return a non-empty list of KV version numbers, each at least 1.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        msg = f"{method}: versions={value!r} is invalid. It must be a sequence of version numbers, such as [1, 2]."
        raise TypeError(msg)
    if not value:
        msg = f"{method}: versions is empty. Pass at least one version, such as [1]."
        raise ValueError(msg)
    versions: list[int] = []
    for version in value:
        number = check_optional_int(
            method, "versions[]", version, 1, "because versions count from 1"
        )
        if number is None:
            msg = f"{method}: versions contains None. Pass only version numbers."
            raise TypeError(msg)
        versions.append(number)
    return versions


def check_bytes(method: str, name: str, value: object) -> bytes:
    """
    Return *value* as bytes; a str is encoded as UTF-8.

    The message for a wrong value gives only its type, because the value
    may be a plaintext.
    """
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    msg = f"{method}: {name} must be bytes or a str (got {type(value).__name__})."
    raise TypeError(msg)


def check_duration(method: str, name: str, value: object) -> str | None:
    """
    Return a duration as Vault accepts it: None stays None, a number of
    seconds or a `datetime.timedelta` becomes ``"<n>s"``, and a str such
    as ``"1h30m"`` is passed through for the server to parse.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            msg = f"{method}: {name}={value!r} is empty. Pass seconds, a timedelta, or a duration such as '1h'."
            raise ValueError(msg)
        return value.strip()
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        msg = f"{method}: {name}={value!r} is invalid. It must be None, seconds, a datetime.timedelta or a duration such as '1h' (got {type(value).__name__})."
        raise TypeError(msg)
    if not math.isfinite(seconds) or seconds < 0:
        msg = f"{method}: {name}={value!r} is out of range. It must be a finite number of seconds of at least 0."
        raise ValueError(msg)
    # Vault's durations have whole seconds.
    return f"{math.ceil(seconds)}s"


def check_replay(method: str, value: object) -> Replay:
    """
    Return a replay class that the caller declared for a generic operation.
    """
    for name in _REPLAY_NAMES:
        if value == name:
            return name
    names = ", ".join(repr(name) for name in _REPLAY_NAMES)
    msg = f"{method}: replay={value!r} is invalid. It must be one of {names}."
    raise ValueError(msg)
