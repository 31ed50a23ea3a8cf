"""
KV version 1 operations: a secret is one unversioned set of key-value
pairs, and a write replaces all of it, so every operation is safe to
replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from ._checks import check_data, check_namespace, check_text
from ._classify import redact_path, replay_class
from ._request import (
    Exchange,
    not_found_without_errors,
    optional_int,
    require,
    warnings_of,
)
from ._runtime import Call
from ._transport import ResponseFailure, UnexpectedBody

__all__ = ["KV1Secret"]

T = TypeVar("T")

# The mount that ``bao secrets enable -version=1 kv`` creates.
DEFAULT_MOUNT = "kv"


def _path_repr(path: str) -> str:
    return repr(redact_path(path))


@attrs.frozen
class KV1Secret:
    """
    A KV version 1 secret.

    Attributes:
        path: The secret's path below the mount.
        mount: The KV version 1 mount.
        data: The secret's key-value pairs.
        lease_duration: Seconds until the secret should be read again, or
            None. It is only a hint for caches: the server sends the
            secret's ``ttl`` key (or the mount's default) and creates no
            lease.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    path: str = attrs.field(repr=_path_repr)
    mount: str
    data: dict[str, Any] = attrs.field(repr=False)
    lease_duration: int | None
    warnings: tuple[str, ...] = ()


def _call(
    name: str, mount: str, path: str, namespace: object, work: Callable[[Exchange], T]
) -> Call[T]:
    return Call(
        name, mount, path, replay_class(name), work, check_namespace(name, namespace)
    )


def _target(name: str, path: object, mount_point: object) -> tuple[str, str]:
    return (
        check_text(name, "path", path, allow_empty=False),
        check_text(name, "mount_point", mount_point, allow_empty=False),
    )


def read_call(
    name: str, path: object, mount_point: object, namespace: object
) -> Call[KV1Secret]:
    """
    Describe a read of a KV version 1 secret.
    """
    path, mount = _target(name, path, mount_point)

    def work(exchange: Exchange) -> KV1Secret:
        body = exchange.call("GET", f"{mount}/{path}")
        data = require(body, "data", "body")
        if not isinstance(data, dict):
            raise UnexpectedBody("body.data")
        return KV1Secret(
            path=path,
            mount=mount,
            data=data,
            # A duration of 0 means the server gave no hint.
            lease_duration=optional_int(body, "lease_duration") or None,
            warnings=warnings_of(body),
        )

    return _call(name, mount, path, namespace, work)


def write_call(
    name: str, path: object, data: object, mount_point: object, namespace: object
) -> Call[None]:
    """
    Describe a write that replaces a KV version 1 secret.
    """
    path, mount = _target(name, path, mount_point)
    values = check_data(name, "data", data)

    def work(exchange: Exchange) -> None:
        exchange.call("POST", f"{mount}/{path}", json=values)

    return _call(name, mount, path, namespace, work)


def list_call(
    name: str, path: object, mount_point: object, namespace: object
) -> Call[list[str]]:
    """
    Describe a listing of the keys below a KV version 1 folder.
    """
    folder = check_text(name, "path", path, allow_empty=True)
    mount = check_text(name, "mount_point", mount_point, allow_empty=False)

    def work(exchange: Exchange) -> list[str]:
        try:
            data, _ = exchange.data("LIST", f"{mount}/{folder}")
        except ResponseFailure as failure:
            if not_found_without_errors(failure):
                return []
            raise
        keys = require(data, "keys", "body.data")
        if not isinstance(keys, list):
            raise UnexpectedBody("body.data.keys")
        return [str(key) for key in keys]

    return _call(name, mount, folder, namespace, work)


def delete_call(
    name: str, path: object, mount_point: object, namespace: object
) -> Call[None]:
    """
    Describe a delete of a KV version 1 secret; deleting a missing secret
    succeeds.
    """
    path, mount = _target(name, path, mount_point)

    def work(exchange: Exchange) -> None:
        exchange.call("DELETE", f"{mount}/{path}")

    return _call(name, mount, path, namespace, work)
