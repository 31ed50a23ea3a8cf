"""
Requests to the Vault HTTP API from inside a worker thread.

Every operation's blocking part receives an `Exchange`: the calling worker
thread's hvac client and the `Operation` it serves. `Exchange.call` sends
one request, returns the decoded JSON object, and logs the ``warnings``
the server attached to it. `run_attempt` runs one attempt of an operation
with the namespace it requests and translates every failure into a
`VaultAdapterError` before it leaves the thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import attrs
import hvac

from ._classify import Operation, redact_server_text, translate, warnings_of
from ._transport import HTTPResponse, ResponseFailure, UnexpectedBody, json_body

__all__ = [
    "Exchange",
    "optional_int",
    "optional_str",
    "require",
    "run_attempt",
    "warnings_of",
]

_log = logging.getLogger("buttress.vault")

T = TypeVar("T")

# The same warning for the same operation is logged at most once in this
# many seconds, and the repeats in between are counted.
WARNING_LOG_INTERVAL = 60.0
# Distinct warnings remembered for that purpose; the memory is cleared when
# it is full.
_MAX_REMEMBERED_WARNINGS = 512


class _WarningLog:
    """
    Logs server warnings at WARNING level, once per interval for each
    distinct (operation, mount, text), with the count of repeats skipped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (operation, mount, text) -> (time last logged, repeats skipped)
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}

    def log(self, op: Operation, warnings: tuple[str, ...]) -> None:
        text = redact_server_text(warnings, op)
        key = (op.name, op.mount, text)
        now = time.monotonic()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < WARNING_LOG_INTERVAL:
                self._seen[key] = (last[0], last[1] + 1)
                return
            if len(self._seen) >= _MAX_REMEMBERED_WARNINGS:
                self._seen.clear()
            self._seen[key] = (now, 0)
        skipped = 0 if last is None else last[1]
        if skipped:
            _log.warning(
                "vault returned a warning for %s: %s (repeated %d more times "
                "in the last %g s)",
                op.where(),
                text,
                skipped,
                WARNING_LOG_INTERVAL,
            )
        else:
            _log.warning("vault returned a warning for %s: %s", op.where(), text)


_WARNINGS = _WarningLog()


def require(container: object, key: str, where: str) -> Any:
    """
    Return ``container[key]``.

    Raises:
        UnexpectedBody: When *container* is not a dict or lacks *key*;
            *where* names the container in the error, such as
            ``"body.data"``.
    """
    if not isinstance(container, dict) or key not in container:
        raise UnexpectedBody(f"{where}.{key}")
    return container[key]


def optional_str(container: Mapping[str, Any], key: str) -> str | None:
    """
    Return ``container[key]`` when it is a non-empty str, else None.

    Vault sends ``""`` for an unset time, such as the ``deletion_time`` of
    a version that is not deleted.
    """
    value = container.get(key)
    return value if isinstance(value, str) and value else None


def optional_int(container: Mapping[str, Any], key: str) -> int | None:
    """
    Return ``container[key]`` as an int when it is an integer or a numeric
    str, else None.
    """
    value = container.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _quote(path: str) -> str:
    # Slashes separate the segments of a Vault path, so they stay as they
    # are. The operations refuse "." and ".." segments in their arguments;
    # this refuses any that a path built from them would still contain.
    if any(segment in (".", "..") for segment in path.split("/")):
        msg = "a request path contains a '.' or '..' segment and was not sent"
        raise ValueError(msg)
    return urllib.parse.quote(path, safe="/")


@attrs.define
class Exchange:
    """
    The requests of one attempt of an operation, on one worker thread's
    client.

    Attributes:
        client: The calling worker thread's hvac client.
        op: The operation the requests serve.
    """

    client: hvac.Client
    op: Operation

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPResponse:
        """
        Send one request to ``/v1/<path>`` and return the response.

        Raises:
            ResponseFailure: For a status of 400 or more.
        """
        kwargs: dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = dict(json)
        if params is not None:
            kwargs["params"] = dict(params)
        if data is not None:
            kwargs["data"] = data
        response: HTTPResponse = self.client.adapter.request(
            method,
            f"/v1/{_quote(path)}",
            headers=dict(headers) if headers else None,
            **kwargs,
        )
        return response

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """
        Send one request and return its JSON body, or ``{}`` for a response
        without a body (HTTP 204). The body's warnings are logged.

        Raises:
            ResponseFailure: For a status of 400 or more, or a body that is
                not a JSON object.
        """
        response = self.send(
            method, path, json=json, params=params, data=data, headers=headers
        )
        if response.status_code == 204 or not response.text.strip():
            return {}
        body = json_body(response)
        warnings = warnings_of(body)
        if warnings:
            _WARNINGS.log(self.op, warnings)
        return body

    def data(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """
        Send one request and return the ``data`` object of its body with
        the body's warnings.

        Raises:
            UnexpectedBody: When the body has no ``data`` object.
        """
        body = self.call(method, path, json=json, params=params)
        data = require(body, "data", "body")
        if not isinstance(data, dict):
            raise UnexpectedBody("body.data")
        return data, warnings_of(body)


@contextlib.contextmanager
def _namespace(client: hvac.Client, namespace: str | None) -> Iterator[None]:
    """
    Send the requests made inside the block with *namespace* in place of
    the configured one; ``""`` sends none, so they reach the root namespace.

    The client belongs to the calling worker thread alone, so changing its
    adapter for the duration of the block affects no other request.
    """
    if namespace is None:
        yield
        return
    adapter = client.adapter
    configured = adapter.namespace
    adapter.namespace = namespace or None
    try:
        yield
    finally:
        adapter.namespace = configured


def run_attempt(op: Operation, work: Callable[[Exchange], T], client: hvac.Client) -> T:
    """
    Run one attempt of *op* with this worker thread's *client*, in the
    operation's namespace, translating failures into `VaultAdapterError`.

    The translated error is raised outside the ``except`` block, so it does
    not carry the original exception, whose text contains the request URL.
    """
    try:
        with _namespace(client, op.namespace):
            return work(Exchange(client, op))
    except Exception as exc:
        error = translate(exc, op)
        if error is None:
            raise
    raise error


def not_found_without_errors(failure: ResponseFailure) -> bool:
    """
    Return whether *failure* is the HTTP 404 with an empty ``errors`` list
    that Vault sends for a LIST that finds no keys.
    """
    return failure.status == 404 and not failure.errors
