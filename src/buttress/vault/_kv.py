"""
KV version 2 operations as blocking functions of an hvac client.

They run in a worker thread. Each sends one request (a reconciling read
aside) and parses the response, raising `ResponseFailure` for an error
status and `UnexpectedBody` for a body without the expected fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
import hvac

from ._classify import redact_path
from ._transport import ResponseFailure, UnexpectedBody, json_body

__all__ = [
    "KVSecret",
    "delete_latest",
    "list_keys",
    "read_secret",
    "write_secret",
]


def _path_repr(path: str) -> str:
    return repr(redact_path(path))


@attrs.frozen
class KVSecret:
    """
    One version of a KV version 2 secret.

    Its repr shows neither the data nor more of the path than its first
    segment.

    Attributes:
        path: The secret's path below the mount.
        mount: The KV version 2 mount.
        data: The secret's key-value pairs.
        version: The version read.
        created_time: When the version was written, as RFC 3339 text.
        custom_metadata: The secret's custom metadata, or None.

    .. versionadded:: 0.1.0
    """

    path: str = attrs.field(repr=_path_repr)
    mount: str
    data: dict[str, Any] = attrs.field(repr=False)
    version: int
    created_time: str | None
    custom_metadata: dict[str, str] | None


def _field(container: object, key: str, where: str) -> Any:
    if not isinstance(container, dict) or key not in container:
        raise UnexpectedBody(f"{where}.{key}")
    return container[key]


def read_secret(
    client: hvac.Client, path: str, mount: str, version: int | None
) -> KVSecret:
    """
    Read the latest version of the secret at *path*, or *version*.
    """
    response = client.secrets.kv.v2.read_secret_version(
        path=path, version=version, mount_point=mount, raise_on_deleted_version=True
    )
    body = json_body(response)
    data = _field(body, "data", "body")
    secret = _field(data, "data", "body.data")
    metadata = _field(data, "metadata", "body.data")
    if not isinstance(secret, dict):
        raise UnexpectedBody("body.data.data")
    number = _field(metadata, "version", "body.data.metadata")
    if not isinstance(number, int):
        raise UnexpectedBody("body.data.metadata.version")
    created_time = metadata.get("created_time")
    custom_metadata = metadata.get("custom_metadata")
    return KVSecret(
        path=path,
        mount=mount,
        data=secret,
        version=number,
        created_time=created_time if isinstance(created_time, str) else None,
        custom_metadata=custom_metadata if isinstance(custom_metadata, dict) else None,
    )


def write_secret(
    client: hvac.Client, path: str, data: Mapping[str, Any], mount: str, cas: int | None
) -> int:
    """
    Write *data* as a new version of the secret at *path*; return the new
    version.
    """
    response = client.secrets.kv.v2.create_or_update_secret(
        path=path, secret=dict(data), cas=cas, mount_point=mount
    )
    number = _field(_field(json_body(response), "data", "body"), "version", "body.data")
    if not isinstance(number, int):
        raise UnexpectedBody("body.data.version")
    return number


def wrote_version(
    client: hvac.Client, path: str, data: Mapping[str, Any], mount: str, version: int
) -> bool:
    """
    Return whether the latest version of *path* is *version* and contains
    *data*, as it would after an earlier write of *data* succeeded.
    """
    try:
        current = read_secret(client, path, mount, None)
    except ResponseFailure as failure:
        if failure.status == 404:
            return False
        raise
    # Compare as JSON, the form in which the data was sent.
    sent = json.loads(json.dumps(dict(data)))
    return current.version == version and current.data == sent


def list_keys(client: hvac.Client, path: str, mount: str) -> list[str]:
    """
    Return the keys directly below *path*; a folder's key ends with ``/``.

    An empty or missing folder gives an empty list, because Vault returns
    HTTP 404 with no error text for a LIST that finds no keys.
    """
    try:
        response = client.secrets.kv.v2.list_secrets(path=path, mount_point=mount)
    except ResponseFailure as failure:
        if failure.status == 404 and not failure.errors:
            return []
        raise
    keys = _field(_field(json_body(response), "data", "body"), "keys", "body.data")
    if not isinstance(keys, list):
        raise UnexpectedBody("body.data.keys")
    return [str(key) for key in keys]


def delete_latest(client: hvac.Client, path: str, mount: str) -> None:
    """
    Soft-delete the latest version of the secret at *path*.
    """
    client.secrets.kv.v2.delete_latest_version_of_secret(path=path, mount_point=mount)
