"""
KV version 2 operations: their results, the blocking functions that send
their requests, and the builders that check arguments and describe each
operation as a `Call`.

The blocking functions run in a worker thread. An error status leaves
them as `ResponseFailure`, and a body without the expected fields as
`UnexpectedBody`; the caller's worker thread translates both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from ._checks import (
    check_data,
    check_duration,
    check_namespace,
    check_optional_int,
    check_text,
    check_versions,
)
from ._classify import redact_path, replay_class, translate
from ._errors import CasConflict
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

__all__ = [
    "KVMetadata",
    "KVSecret",
    "KVSubkeys",
    "KVVersion",
    "merge_patch",
]

T = TypeVar("T")

DEFAULT_MOUNT = "secret"
# The content type that KV version 2 requires for a PATCH of a secret.
MERGE_PATCH_TYPE = "application/merge-patch+json"


def _path_repr(path: str) -> str:
    return repr(redact_path(path))


# -- results ------------------------------------------------------------


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
        deletion_time: When the version is set to be deleted by
            ``delete_version_after``, as RFC 3339 text, or None. A version
            already deleted cannot be read, so it is never in the past.
        destroyed: Whether the version is destroyed; always False for a
            version that could be read.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    path: str = attrs.field(repr=_path_repr)
    mount: str
    data: dict[str, Any] = attrs.field(repr=False)
    version: int
    created_time: str | None
    custom_metadata: dict[str, str] | None
    deletion_time: str | None = None
    destroyed: bool = False
    warnings: tuple[str, ...] = ()


@attrs.frozen
class KVVersion:
    """
    The state of one version of a KV version 2 secret, as a write or patch
    returns it and as the secret's metadata lists it.

    Attributes:
        version: The version number, counting from 1.
        created_time: When it was written, as RFC 3339 text, or None.
        deletion_time: When it was (or is set to be) deleted, or None.
        destroyed: Whether its data is destroyed for good.
        custom_metadata: The secret's custom metadata, when the response
            has it, or None.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    version: int
    created_time: str | None = None
    deletion_time: str | None = None
    destroyed: bool = False
    custom_metadata: dict[str, str] | None = None
    warnings: tuple[str, ...] = ()


@attrs.frozen
class KVMetadata:
    """
    The metadata of a KV version 2 secret and the state of its versions.

    Attributes:
        path: The secret's path below the mount.
        mount: The KV version 2 mount.
        current_version: The latest version.
        oldest_version: The oldest version kept.
        max_versions: Versions kept before the oldest is removed; 0 means
            the mount's setting applies.
        cas_required: Whether every write must give ``cas``.
        delete_version_after: How long a version lives, as the server
            formats it (``"0s"`` means forever).
        custom_metadata: The secret's custom metadata, or None.
        created_time: When the secret was first written.
        updated_time: When the secret or its metadata last changed.
        versions: The state of each kept version, by version number.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    path: str = attrs.field(repr=_path_repr)
    mount: str
    current_version: int
    oldest_version: int
    max_versions: int
    cas_required: bool
    delete_version_after: str | None
    custom_metadata: dict[str, str] | None
    created_time: str | None
    updated_time: str | None
    versions: dict[int, KVVersion]
    warnings: tuple[str, ...] = ()


@attrs.frozen
class KVSubkeys:
    """
    The keys of one version of a KV version 2 secret, without the values.

    Attributes:
        path: The secret's path below the mount.
        mount: The KV version 2 mount.
        subkeys: The secret's structure: each key maps to None, or to the
            same kind of mapping for a nested object.
        version: The version described.
        created_time: When that version was written, or None.
        custom_metadata: The secret's custom metadata, or None.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    path: str = attrs.field(repr=_path_repr)
    mount: str
    subkeys: dict[str, Any] = attrs.field(repr=False)
    version: int
    created_time: str | None
    custom_metadata: dict[str, str] | None
    warnings: tuple[str, ...] = ()


def _custom_metadata(container: Mapping[str, Any]) -> dict[str, str] | None:
    value = container.get("custom_metadata")
    return value if isinstance(value, dict) else None


def _version_state(
    metadata: object, where: str, warnings: tuple[str, ...] = ()
) -> KVVersion:
    number = require(metadata, "version", where)
    if isinstance(number, bool) or not isinstance(number, int):
        raise UnexpectedBody(f"{where}.version")
    if not isinstance(metadata, dict):
        raise UnexpectedBody(where)
    return KVVersion(
        version=number,
        created_time=optional_str(metadata, "created_time"),
        deletion_time=optional_str(metadata, "deletion_time"),
        destroyed=bool(metadata.get("destroyed")),
        custom_metadata=_custom_metadata(metadata),
        warnings=warnings,
    )


# -- blocking operations ------------------------------------------------


def read_secret(
    exchange: Exchange, path: str, mount: str, version: int | None
) -> KVSecret:
    """
    Read the latest version of the secret at *path*, or *version*.
    """
    params = None if version is None else {"version": version}
    data, warnings = exchange.data("GET", f"{mount}/data/{path}", params=params)
    secret = require(data, "data", "body.data")
    if not isinstance(secret, dict):
        raise UnexpectedBody("body.data.data")
    state = _version_state(require(data, "metadata", "body.data"), "body.data.metadata")
    return KVSecret(
        path=path,
        mount=mount,
        data=secret,
        version=state.version,
        created_time=state.created_time,
        custom_metadata=state.custom_metadata,
        deletion_time=state.deletion_time,
        destroyed=state.destroyed,
        warnings=warnings,
    )


def write_secret(
    exchange: Exchange,
    path: str,
    data: Mapping[str, Any],
    mount: str,
    cas: int | None,
) -> KVVersion:
    """
    Write *data* as a new version of the secret at *path*.
    """
    payload: dict[str, Any] = {"data": dict(data)}
    if cas is not None:
        payload["options"] = {"cas": cas}
    body, warnings = exchange.data("POST", f"{mount}/data/{path}", json=payload)
    return _version_state(body, "body.data", warnings)


def _as_sent(data: Mapping[str, Any]) -> Any:
    # The data as the server stores it: decoded from the JSON sent.
    return json.loads(json.dumps(dict(data)))


def _latest_or_none(exchange: Exchange, path: str, mount: str) -> KVSecret | None:
    try:
        return read_secret(exchange, path, mount, None)
    except ResponseFailure as failure:
        if failure.status == 404:
            return None
        raise


def merge_patch(target: Any, patch: Any) -> Any:
    """
    Return *target* with the JSON merge patch *patch* applied (RFC 7396):
    a key set to None is removed, a nested object is merged key by key,
    and any other value replaces the old one.
    """
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patch_secret(
    exchange: Exchange,
    path: str,
    patch: Mapping[str, Any],
    mount: str,
    cas: int | None,
) -> KVVersion:
    """
    Merge *patch* into the latest version of the secret at *path*, writing
    a new version.

    A server without PATCH support (HTTP 405) gets a read of the latest
    version and a check-and-set write of the merged data instead.
    """
    payload: dict[str, Any] = {"data": dict(patch)}
    if cas is not None:
        payload["options"] = {"cas": cas}
    try:
        body = exchange.call(
            "PATCH",
            f"{mount}/data/{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": MERGE_PATCH_TYPE},
        )
    except ResponseFailure as failure:
        if failure.status != 405:
            raise
        return _patch_by_rewrite(exchange, path, patch, mount, cas)
    data = require(body, "data", "body")
    return _version_state(data, "body.data", warnings_of(body))


def _patch_by_rewrite(
    exchange: Exchange,
    path: str,
    patch: Mapping[str, Any],
    mount: str,
    cas: int | None,
) -> KVVersion:
    current = read_secret(exchange, path, mount, None)
    merged = merge_patch(current.data, _as_sent(patch))
    # Without a caller's cas, the version just read is the condition, so a
    # concurrent write between the read and this write is not lost.
    condition = current.version if cas is None else cas
    return write_secret(exchange, path, merged, mount, condition)


def list_keys(exchange: Exchange, path: str, mount: str) -> list[str]:
    """
    Return the keys directly below *path*; a folder's key ends with ``/``.

    An empty or missing folder gives an empty list, because Vault returns
    HTTP 404 with no error text for a LIST that finds no keys.
    """
    try:
        data, _ = exchange.data("LIST", f"{mount}/metadata/{path}")
    except ResponseFailure as failure:
        if not_found_without_errors(failure):
            return []
        raise
    keys = require(data, "keys", "body.data")
    if not isinstance(keys, list):
        raise UnexpectedBody("body.data.keys")
    return [str(key) for key in keys]


def read_metadata(exchange: Exchange, path: str, mount: str) -> KVMetadata:
    """
    Read the metadata of the secret at *path*.
    """
    data, warnings = exchange.data("GET", f"{mount}/metadata/{path}")
    versions: dict[int, KVVersion] = {}
    listed = data.get("versions")
    if isinstance(listed, dict):
        for key, state in listed.items():
            if not isinstance(state, dict):
                continue
            try:
                number = int(key)
            except ValueError:
                continue
            versions[number] = _version_state(
                {**state, "version": number}, "body.data.versions"
            )
    return KVMetadata(
        path=path,
        mount=mount,
        current_version=optional_int(data, "current_version") or 0,
        oldest_version=optional_int(data, "oldest_version") or 0,
        max_versions=optional_int(data, "max_versions") or 0,
        cas_required=bool(data.get("cas_required")),
        delete_version_after=optional_str(data, "delete_version_after"),
        custom_metadata=_custom_metadata(data),
        created_time=optional_str(data, "created_time"),
        updated_time=optional_str(data, "updated_time"),
        versions=versions,
        warnings=warnings,
    )


def read_subkeys(
    exchange: Exchange,
    path: str,
    mount: str,
    version: int | None,
    depth: int | None,
) -> KVSubkeys:
    """
    Read the keys, without the values, of the latest version of the secret
    at *path*, or of *version*.
    """
    params: dict[str, int] = {}
    if version is not None:
        params["version"] = version
    if depth is not None:
        params["depth"] = depth
    data, warnings = exchange.data(
        "GET", f"{mount}/subkeys/{path}", params=params or None
    )
    subkeys = require(data, "subkeys", "body.data")
    if not isinstance(subkeys, dict):
        raise UnexpectedBody("body.data.subkeys")
    state = _version_state(require(data, "metadata", "body.data"), "body.data.metadata")
    return KVSubkeys(
        path=path,
        mount=mount,
        subkeys=subkeys,
        version=state.version,
        created_time=state.created_time,
        custom_metadata=state.custom_metadata,
        warnings=warnings,
    )


# -- retries that recognize their own earlier success --------------------


class CasReconciling(Generic[T]):
    """
    A check-and-set change that recognizes its own earlier success.

    When an attempt's outcome is unknown (say, the response was lost) the
    change may have been applied, and the retry then fails with a
    check-and-set conflict. In that case *applied* reads the secret back
    and returns the result of the earlier attempt, or None when the secret
    does not show it.
    """

    def __init__(
        self,
        change: Callable[[Exchange], T],
        applied: Callable[[Exchange], T | None],
    ) -> None:
        self._change = change
        self._applied = applied
        # An attempt whose outcome was unknown sets it, and the next attempt
        # reads it. The retry policy starts that attempt only after this one
        # ended, so no lock is needed.
        self.maybe_applied = False

    def __call__(self, exchange: Exchange) -> T:
        try:
            return self._change(exchange)
        except Exception as exc:
            error = translate(exc, exchange.op)
            if error is None:
                raise
        if isinstance(error, CasConflict) and self.maybe_applied:
            earlier = self._applied(exchange)
            if earlier is not None:
                return earlier
        if error.outcome == "unknown":
            self.maybe_applied = True
        raise error


def _written_version(
    path: str, data: Mapping[str, Any], mount: str, version: int
) -> Callable[[Exchange], KVVersion | None]:
    """
    Return a check of whether the latest version of *path* is *version*
    and contains *data*, as after an earlier write of *data* succeeded.
    """
    sent = _as_sent(data)

    def check(exchange: Exchange) -> KVVersion | None:
        current = _latest_or_none(exchange, path, mount)
        if current is None or current.version != version or current.data != sent:
            return None
        return KVVersion(
            version=current.version,
            created_time=current.created_time,
            deletion_time=current.deletion_time,
            custom_metadata=current.custom_metadata,
        )

    return check


def _patched_version(
    path: str, patch: Mapping[str, Any], mount: str, version: int
) -> Callable[[Exchange], KVVersion | None]:
    """
    Return a check of whether the latest version of *path* is *version*
    and applying *patch* to it changes nothing, as after an earlier patch
    succeeded.
    """
    sent = _as_sent(patch)

    def check(exchange: Exchange) -> KVVersion | None:
        current = _latest_or_none(exchange, path, mount)
        if current is None or current.version != version:
            return None
        if merge_patch(current.data, sent) != current.data:
            return None
        return KVVersion(
            version=current.version,
            created_time=current.created_time,
            deletion_time=current.deletion_time,
            custom_metadata=current.custom_metadata,
        )

    return check


# -- calls ----------------------------------------------------------------


def _target(method: str, path: object, mount_point: object) -> tuple[str, str]:
    return (
        check_text(method, "path", path, allow_empty=False),
        check_text(method, "mount_point", mount_point, allow_empty=False),
    )


def _call(
    name: str,
    mount: str,
    path: str,
    namespace: object,
    work: Callable[[Exchange], T],
    *,
    cas: bool = False,
) -> Call[T]:
    return Call(
        name,
        mount,
        path,
        replay_class(name, cas=cas),
        work,
        check_namespace(name, namespace),
    )


def read_call(
    name: str, path: object, mount_point: object, version: object, namespace: object
) -> Call[KVSecret]:
    """
    Describe a read of the latest version of a secret, or of *version*.
    """
    path, mount = _target(name, path, mount_point)
    number = check_optional_int(
        name, "version", version, 1, "or None for the latest version"
    )

    def work(exchange: Exchange) -> KVSecret:
        return read_secret(exchange, path, mount, number)

    return _call(name, mount, path, namespace, work)


def write_call(
    name: str,
    path: object,
    data: object,
    mount_point: object,
    cas: object,
    namespace: object,
) -> Call[KVVersion]:
    """
    Describe a write of a new version; with *cas*, one that recognizes its
    own earlier success when retried.
    """
    path, mount = _target(name, path, mount_point)
    values = check_data(name, "data", data)
    condition = check_optional_int(
        name, "cas", cas, 0, "or None to write unconditionally"
    )

    def write(exchange: Exchange) -> KVVersion:
        return write_secret(exchange, path, values, mount, condition)

    if condition is None:
        return _call(name, mount, path, namespace, write)
    work = CasReconciling(write, _written_version(path, values, mount, condition + 1))
    return _call(name, mount, path, namespace, work, cas=True)


def patch_call(
    name: str,
    path: object,
    patch: object,
    mount_point: object,
    cas: object,
    namespace: object,
) -> Call[KVVersion]:
    """
    Describe a merge patch of the latest version of a secret.
    """
    path, mount = _target(name, path, mount_point)
    values = check_data(name, "data", patch)
    condition = check_optional_int(
        name, "cas", cas, 1, "or None to patch the latest version"
    )

    def change(exchange: Exchange) -> KVVersion:
        return patch_secret(exchange, path, values, mount, condition)

    if condition is None:
        return _call(name, mount, path, namespace, change)
    work = CasReconciling(change, _patched_version(path, values, mount, condition + 1))
    return _call(name, mount, path, namespace, work, cas=True)


def list_call(
    name: str, path: object, mount_point: object, namespace: object
) -> Call[list[str]]:
    """
    Describe a listing of the keys below a folder.
    """
    folder = check_text(name, "path", path, allow_empty=True)
    mount = check_text(name, "mount_point", mount_point, allow_empty=False)

    def work(exchange: Exchange) -> list[str]:
        return list_keys(exchange, folder, mount)

    return _call(name, mount, folder, namespace, work)


def delete_latest_call(
    name: str, path: object, mount_point: object, namespace: object
) -> Call[None]:
    """
    Describe a soft delete of the latest version of a secret.
    """
    path, mount = _target(name, path, mount_point)

    def work(exchange: Exchange) -> None:
        exchange.call("DELETE", f"{mount}/data/{path}")

    return _call(name, mount, path, namespace, work)


def read_metadata_call(
    name: str, path: object, mount_point: object, namespace: object
) -> Call[KVMetadata]:
    """
    Describe a read of a secret's metadata.
    """
    path, mount = _target(name, path, mount_point)

    def work(exchange: Exchange) -> KVMetadata:
        return read_metadata(exchange, path, mount)

    return _call(name, mount, path, namespace, work)


def write_metadata_call(
    name: str,
    path: object,
    mount_point: object,
    namespace: object,
    *,
    max_versions: object,
    cas_required: object,
    custom_metadata: object,
    delete_version_after: object,
) -> Call[None]:
    """
    Describe a change of the metadata settings given; the others keep
    their values.
    """
    path, mount = _target(name, path, mount_point)
    settings: dict[str, Any] = {}
    if max_versions is not None:
        settings["max_versions"] = check_optional_int(
            name, "max_versions", max_versions, 0, "where 0 means the mount's setting"
        )
    if cas_required is not None:
        if not isinstance(cas_required, bool):
            msg = f"{name}: cas_required={cas_required!r} is invalid. It must be None, True or False."
            raise TypeError(msg)
        settings["cas_required"] = cas_required
    if custom_metadata is not None:
        metadata = check_data(name, "custom_metadata", custom_metadata)
        for key, value in metadata.items():
            if not isinstance(value, str):
                msg = f"{name}: custom_metadata[{key!r}] must be a str (got {type(value).__name__})."
                raise TypeError(msg)
        settings["custom_metadata"] = metadata
    lifetime = check_duration(name, "delete_version_after", delete_version_after)
    if lifetime is not None:
        settings["delete_version_after"] = lifetime
    if not settings:
        msg = (
            f"{name}: no setting was given. Pass at least one of max_versions, "
            f"cas_required, custom_metadata or delete_version_after."
        )
        raise ValueError(msg)

    def work(exchange: Exchange) -> None:
        exchange.call("POST", f"{mount}/metadata/{path}", json=settings)

    return _call(name, mount, path, namespace, work)


def read_subkeys_call(
    name: str,
    path: object,
    mount_point: object,
    version: object,
    depth: object,
    namespace: object,
) -> Call[KVSubkeys]:
    """
    Describe a read of a secret's keys without their values.
    """
    path, mount = _target(name, path, mount_point)
    number = check_optional_int(
        name, "version", version, 1, "or None for the latest version"
    )
    levels = check_optional_int(name, "depth", depth, 0, "where 0 means no limit")

    def work(exchange: Exchange) -> KVSubkeys:
        return read_subkeys(exchange, path, mount, number, levels)

    return _call(name, mount, path, namespace, work)


def versions_call(
    name: str,
    action: str,
    path: object,
    versions: object,
    mount_point: object,
    namespace: object,
) -> Call[None]:
    """
    Describe a delete, undelete or destroy (*action*) of explicit versions.
    """
    path, mount = _target(name, path, mount_point)
    numbers = check_versions(name, versions)

    def work(exchange: Exchange) -> None:
        exchange.call("POST", f"{mount}/{action}/{path}", json={"versions": numbers})

    return _call(name, mount, path, namespace, work)


def delete_metadata_call(
    name: str, path: object, mount_point: object, namespace: object
) -> Call[None]:
    """
    Describe a delete of a secret's metadata and all its versions.
    """
    path, mount = _target(name, path, mount_point)

    def work(exchange: Exchange) -> None:
        exchange.call("DELETE", f"{mount}/metadata/{path}")

    return _call(name, mount, path, namespace, work)
