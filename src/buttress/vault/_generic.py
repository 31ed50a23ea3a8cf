"""
Generic operations on any API path, for endpoints the adapter has no
method for. They run through the same pipeline as every other operation,
with the replay class the caller declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from ._checks import check_data, check_namespace, check_replay, check_text
from ._classify import Replay, redact_path
from ._request import (
    Exchange,
    not_found_without_errors,
    optional_int,
    optional_str,
    require,
    warnings_of,
)
from ._runtime import Call
from ._transport import ResponseFailure, UnexpectedBody

__all__ = ["GenericResponse"]

T = TypeVar("T")


def _path_repr(path: str) -> str:
    return repr(redact_path(path))


@attrs.frozen
class GenericResponse:
    """
    The body of a response to a generic request.

    Only the path's first segment, the lease fields and the warnings appear
    in the repr: ``data``, ``auth`` and ``wrap_info`` may hold secrets and
    tokens.

    Attributes:
        path: The API path requested, below ``/v1/``.
        data: The body's ``data`` object, or None (as for HTTP 204).
        lease_id: The lease's ID, or None when the response has no lease.
        lease_duration: The lease's duration in seconds, or 0.
        renewable: Whether the lease can be renewed.
        auth: The body's ``auth`` object (it contains a token), or None.
        wrap_info: The body's ``wrap_info`` object (it contains a wrapping
            token), or None.
        request_id: The server's ID of the request, for its audit log.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    path: str = attrs.field(repr=_path_repr)
    data: dict[str, Any] | None = attrs.field(repr=False)
    lease_id: str | None = None
    lease_duration: int = 0
    renewable: bool = False
    auth: dict[str, Any] | None = attrs.field(default=None, repr=False)
    wrap_info: dict[str, Any] | None = attrs.field(default=None, repr=False)
    request_id: str | None = None
    warnings: tuple[str, ...] = ()


def _object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    return value if isinstance(value, dict) else None


def _response(path: str, body: dict[str, Any]) -> GenericResponse:
    return GenericResponse(
        path=path,
        data=_object(body, "data"),
        lease_id=optional_str(body, "lease_id"),
        lease_duration=optional_int(body, "lease_duration") or 0,
        renewable=bool(body.get("renewable")),
        auth=_object(body, "auth"),
        wrap_info=_object(body, "wrap_info"),
        request_id=optional_str(body, "request_id"),
        warnings=warnings_of(body),
    )


def _call(
    name: str,
    full_path: str,
    replay: Replay,
    namespace: object,
    work: Callable[[Exchange], T],
) -> Call[T]:
    # Errors name the first segment as the mount, and redact the rest.
    mount, _, rest = full_path.partition("/")
    return Call(name, mount, rest, replay, work, check_namespace(name, namespace))


def read_call(
    name: str, path: object, params: object, replay: object, namespace: object
) -> Call[GenericResponse]:
    """
    Describe a GET of *path*.
    """
    full_path = check_text(name, "path", path, allow_empty=False)
    query = None if params is None else check_data(name, "params", params)

    def work(exchange: Exchange) -> GenericResponse:
        return _response(full_path, exchange.call("GET", full_path, params=query))

    return _call(name, full_path, check_replay(name, replay), namespace, work)


def write_call(
    name: str, path: object, data: object, replay: object, namespace: object
) -> Call[GenericResponse]:
    """
    Describe a POST of *data* to *path*.
    """
    full_path = check_text(name, "path", path, allow_empty=False)
    payload = {} if data is None else check_data(name, "data", data)
    declared = check_replay(name, replay)

    def work(exchange: Exchange) -> GenericResponse:
        return _response(full_path, exchange.call("POST", full_path, json=payload))

    return _call(name, full_path, declared, namespace, work)


def list_call(
    name: str, path: object, replay: object, namespace: object
) -> Call[list[str]]:
    """
    Describe a LIST of *path*; a 404 without errors is an empty list.
    """
    full_path = check_text(name, "path", path, allow_empty=False)

    def work(exchange: Exchange) -> list[str]:
        try:
            data, _ = exchange.data("LIST", full_path)
        except ResponseFailure as failure:
            if not_found_without_errors(failure):
                return []
            raise
        keys = require(data, "keys", "body.data")
        if not isinstance(keys, list):
            raise UnexpectedBody("body.data.keys")
        return [str(key) for key in keys]

    return _call(name, full_path, check_replay(name, replay), namespace, work)


def delete_call(
    name: str, path: object, replay: object, namespace: object
) -> Call[GenericResponse]:
    """
    Describe a DELETE of *path*.
    """
    full_path = check_text(name, "path", path, allow_empty=False)
    declared = check_replay(name, replay)

    def work(exchange: Exchange) -> GenericResponse:
        return _response(full_path, exchange.call("DELETE", full_path))

    return _call(name, full_path, declared, namespace, work)
