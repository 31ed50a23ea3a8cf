"""
Transit operations: encryption as a service with keys that never leave
the server.

Callers pass and receive bytes. The base64 encoding that the transit API
uses for plaintexts, contexts and associated data happens here. The
server keeps no state per request, so every operation is safe to replay:
a replayed encryption returns another ciphertext, and both decrypt.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from ._checks import (
    check_bytes,
    check_namespace,
    check_optional_int,
    check_text,
)
from ._classify import build_error, replay_class
from ._errors import NotFound
from ._request import Exchange, optional_int, require
from ._runtime import Call
from ._transport import ResponseFailure, UnexpectedBody

__all__ = ["TransitBatchItem", "TransitCiphertext"]

T = TypeVar("T")

DEFAULT_MOUNT = "transit"


@attrs.frozen
class TransitCiphertext:
    """
    A ciphertext from an encryption or a rewrap.

    Attributes:
        ciphertext: The ciphertext as the server formats it, such as
            ``"vault:v1:..."``; pass it to decrypt or rewrap as it is.
        key_version: The version of the key that encrypted it, or None when
            the server did not report it.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    ciphertext: str
    key_version: int | None
    warnings: tuple[str, ...] = ()


@attrs.frozen
class TransitBatchItem:
    """
    The result for one item of a batch request, in the order of the input.

    Attributes:
        ciphertext: The ciphertext, for an encryption or a rewrap that
            succeeded, else None.
        plaintext: The plaintext, for a decryption that succeeded, else
            None. It is left out of the repr.
        key_version: The key version used, when the server reported it.
        error: Why this item failed, or None when it succeeded. Other items
            of the batch are independent of it.

    .. versionadded:: 0.1.0
    """

    ciphertext: str | None = None
    plaintext: bytes | None = attrs.field(default=None, repr=False)
    key_version: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """
        Whether this item succeeded.
        """
        return self.error is None


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _decode_plaintext(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise UnexpectedBody(where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UnexpectedBody(where) from None


def _call(
    name: str,
    mount: str,
    key: str,
    namespace: object,
    work: Callable[[Exchange], T],
) -> Call[T]:
    return Call(
        name, mount, key, replay_class(name), work, check_namespace(name, namespace)
    )


def _target(name: str, key_name: object, mount_point: object) -> tuple[str, str]:
    return (
        check_text(name, "key_name", key_name, allow_empty=False),
        check_text(name, "mount_point", mount_point, allow_empty=False),
    )


def _optional_bytes(name: str, argument: str, value: object) -> bytes | None:
    return None if value is None else check_bytes(name, argument, value)


def _item_options(
    name: str, context: object, associated_data: object
) -> dict[str, str]:
    options: dict[str, str] = {}
    context_bytes = _optional_bytes(name, "context", context)
    if context_bytes is not None:
        options["context"] = _b64(context_bytes)
    data = _optional_bytes(name, "associated_data", associated_data)
    if data is not None:
        options["associated_data"] = _b64(data)
    return options


def _ciphertext(name: str, argument: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        msg = (
            f"{name}: {argument} must be a non-empty str such as 'vault:v1:...' "
            f"(got {type(value).__name__})."
        )
        raise TypeError(msg)
    return value


def ensure_key_exists(exchange: Exchange, mount: str, key: str) -> None:
    """
    Raise `NotFound` unless the transit key *key* exists, so an encryption
    cannot create it.
    """
    try:
        exchange.call("GET", f"{mount}/keys/{key}")
    except ResponseFailure as failure:
        if failure.status != 404:
            raise
        op = exchange.op
        raise build_error(
            NotFound,
            op,
            f"{op.where()} failed: the transit key does not exist, and "
            f"create_key=False forbids creating it. Create the key first, or "
            f"check key_name and mount_point.",
            outcome="failed",
            status=404,
        ) from None


def _single_ciphertext(
    data: dict[str, Any], warnings: tuple[str, ...]
) -> TransitCiphertext:
    ciphertext = require(data, "ciphertext", "body.data")
    if not isinstance(ciphertext, str):
        raise UnexpectedBody("body.data.ciphertext")
    return TransitCiphertext(
        ciphertext=ciphertext,
        key_version=optional_int(data, "key_version"),
        warnings=warnings,
    )


def encrypt_call(
    name: str,
    key_name: object,
    plaintext: object,
    *,
    context: object,
    associated_data: object,
    key_version: object,
    create_key: bool,
    mount_point: object,
    namespace: object,
) -> Call[TransitCiphertext]:
    """
    Describe the encryption of one plaintext.
    """
    key, mount = _target(name, key_name, mount_point)
    payload: dict[str, Any] = {
        "plaintext": _b64(check_bytes(name, "plaintext", plaintext))
    }
    payload.update(_item_options(name, context, associated_data))
    version = check_optional_int(
        name, "key_version", key_version, 1, "or None for the latest version"
    )
    if version is not None:
        payload["key_version"] = version

    def work(exchange: Exchange) -> TransitCiphertext:
        if not create_key:
            ensure_key_exists(exchange, mount, key)
        data, warnings = exchange.data("POST", f"{mount}/encrypt/{key}", json=payload)
        return _single_ciphertext(data, warnings)

    return _call(name, mount, key, namespace, work)


def decrypt_call(
    name: str,
    key_name: object,
    ciphertext: object,
    *,
    context: object,
    associated_data: object,
    mount_point: object,
    namespace: object,
) -> Call[bytes]:
    """
    Describe the decryption of one ciphertext.
    """
    key, mount = _target(name, key_name, mount_point)
    payload: dict[str, Any] = {
        "ciphertext": _ciphertext(name, "ciphertext", ciphertext)
    }
    payload.update(_item_options(name, context, associated_data))

    def work(exchange: Exchange) -> bytes:
        data, _ = exchange.data("POST", f"{mount}/decrypt/{key}", json=payload)
        return _decode_plaintext(
            require(data, "plaintext", "body.data"), "body.data.plaintext"
        )

    return _call(name, mount, key, namespace, work)


def rewrap_call(
    name: str,
    key_name: object,
    ciphertext: object,
    *,
    context: object,
    associated_data: object,
    key_version: object,
    mount_point: object,
    namespace: object,
) -> Call[TransitCiphertext]:
    """
    Describe the re-encryption of one ciphertext with the latest key
    version (or *key_version*), without revealing the plaintext.
    """
    key, mount = _target(name, key_name, mount_point)
    payload: dict[str, Any] = {
        "ciphertext": _ciphertext(name, "ciphertext", ciphertext)
    }
    payload.update(_item_options(name, context, associated_data))
    version = check_optional_int(
        name, "key_version", key_version, 1, "or None for the latest version"
    )
    if version is not None:
        payload["key_version"] = version

    def work(exchange: Exchange) -> TransitCiphertext:
        data, warnings = exchange.data("POST", f"{mount}/rewrap/{key}", json=payload)
        return _single_ciphertext(data, warnings)

    return _call(name, mount, key, namespace, work)


# -- batches ------------------------------------------------------------


def _per_item(
    name: str, argument: str, values: object, count: int
) -> list[bytes | None]:
    """
    Return one optional value per item from *values*, a sequence as long
    as the batch, or None.
    """
    if values is None:
        return [None] * count
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        msg = (
            f"{name}: {argument} must be None or a sequence with one value per "
            f"item (got {type(values).__name__})."
        )
        raise TypeError(msg)
    if len(values) != count:
        msg = (
            f"{name}: {argument} has {len(values)} values for {count} items. "
            f"Pass exactly one per item."
        )
        raise ValueError(msg)
    return [_optional_bytes(name, f"{argument}[]", value) for value in values]


def _batch_inputs(
    name: str,
    field: str,
    values: object,
    contexts: object,
    associated_data: object,
) -> list[dict[str, str]]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        msg = f"{name}: the items must be a sequence (got {type(values).__name__})."
        raise TypeError(msg)
    if not values:
        msg = f"{name}: the batch is empty. Pass at least one item."
        raise ValueError(msg)
    items: list[dict[str, str]] = []
    for value in values:
        if field == "plaintext":
            items.append({field: _b64(check_bytes(name, "plaintexts[]", value))})
        else:
            items.append({field: _ciphertext(name, "ciphertexts[]", value)})
    count = len(items)
    for item, context in zip(
        items, _per_item(name, "contexts", contexts, count), strict=True
    ):
        if context is not None:
            item["context"] = _b64(context)
    extra = _per_item(name, "associated_data", associated_data, count)
    for item, data in zip(items, extra, strict=True):
        if data is not None:
            item["associated_data"] = _b64(data)
    return items


def _batch_results(
    exchange: Exchange, path: str, payload: dict[str, Any], count: int
) -> list[dict[str, Any]]:
    """
    Send a batch request and return its ``batch_results``.

    The server returns HTTP 400 when any item failed, with the results of
    all items in the body, so such a response is a result here too.
    """
    data: object
    try:
        data, _ = exchange.data("POST", path, json=payload)
    except ResponseFailure as failure:
        data = (failure.body or {}).get("data")
        if failure.status != 400 or not isinstance(data, dict):
            raise
        if not isinstance(data.get("batch_results"), list):
            raise
    results = require(data, "batch_results", "body.data")
    if not isinstance(results, list) or len(results) != count:
        raise UnexpectedBody("body.data.batch_results")
    return [result if isinstance(result, dict) else {} for result in results]


def _item_error(result: dict[str, Any]) -> str | None:
    error = result.get("error")
    return str(error) if error else None


def _ciphertext_items(results: list[dict[str, Any]]) -> list[TransitBatchItem]:
    items = []
    for result in results:
        error = _item_error(result)
        ciphertext = result.get("ciphertext")
        if error is None and not isinstance(ciphertext, str):
            error = "the server returned no ciphertext for this item"
        items.append(
            TransitBatchItem(
                ciphertext=ciphertext if error is None else None,
                key_version=optional_int(result, "key_version"),
                error=error,
            )
        )
    return items


def encrypt_batch_call(
    name: str,
    key_name: object,
    plaintexts: object,
    *,
    contexts: object,
    associated_data: object,
    key_version: object,
    create_key: bool,
    mount_point: object,
    namespace: object,
) -> Call[list[TransitBatchItem]]:
    """
    Describe the encryption of many plaintexts in one request.
    """
    key, mount = _target(name, key_name, mount_point)
    items = _batch_inputs(name, "plaintext", plaintexts, contexts, associated_data)
    payload: dict[str, Any] = {"batch_input": items}
    version = check_optional_int(
        name, "key_version", key_version, 1, "or None for the latest version"
    )
    if version is not None:
        payload["key_version"] = version

    def work(exchange: Exchange) -> list[TransitBatchItem]:
        if not create_key:
            ensure_key_exists(exchange, mount, key)
        results = _batch_results(
            exchange, f"{mount}/encrypt/{key}", payload, len(items)
        )
        return _ciphertext_items(results)

    return _call(name, mount, key, namespace, work)


def decrypt_batch_call(
    name: str,
    key_name: object,
    ciphertexts: object,
    *,
    contexts: object,
    associated_data: object,
    mount_point: object,
    namespace: object,
) -> Call[list[TransitBatchItem]]:
    """
    Describe the decryption of many ciphertexts in one request.
    """
    key, mount = _target(name, key_name, mount_point)
    items = _batch_inputs(name, "ciphertext", ciphertexts, contexts, associated_data)
    payload = {"batch_input": items}

    def work(exchange: Exchange) -> list[TransitBatchItem]:
        results = _batch_results(
            exchange, f"{mount}/decrypt/{key}", payload, len(items)
        )
        decrypted = []
        for index, result in enumerate(results):
            error = _item_error(result)
            plaintext = None
            if error is None:
                plaintext = _decode_plaintext(
                    result.get("plaintext"),
                    f"body.data.batch_results[{index}].plaintext",
                )
            decrypted.append(TransitBatchItem(plaintext=plaintext, error=error))
        return decrypted

    return _call(name, mount, key, namespace, work)


def rewrap_batch_call(
    name: str,
    key_name: object,
    ciphertexts: object,
    *,
    contexts: object,
    associated_data: object,
    key_version: object,
    mount_point: object,
    namespace: object,
) -> Call[list[TransitBatchItem]]:
    """
    Describe the re-encryption of many ciphertexts in one request.
    """
    key, mount = _target(name, key_name, mount_point)
    items = _batch_inputs(name, "ciphertext", ciphertexts, contexts, associated_data)
    payload: dict[str, Any] = {"batch_input": items}
    version = check_optional_int(
        name, "key_version", key_version, 1, "or None for the latest version"
    )
    if version is not None:
        payload["key_version"] = version

    def work(exchange: Exchange) -> list[TransitBatchItem]:
        results = _batch_results(exchange, f"{mount}/rewrap/{key}", payload, len(items))
        return _ciphertext_items(results)

    return _call(name, mount, key, namespace, work)
