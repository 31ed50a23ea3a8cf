"""
HTTP pieces shared by both transports: the failures they raise, the
per-request socket timeout, and the response type of the urllib3
transport.

Failures leave a transport as `ResponseFailure`, `UnexpectedBody`,
`NoTimeLeft` or a requests exception. The urllib3 transport converts
urllib3's exceptions into the requests exception that requests itself
would raise for the same failure, so `buttress.vault._classify` sees the
same exceptions whichever transport is in use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import requests.exceptions

from .._clock import time_remaining

__all__ = [
    "MIN_SOCKET_TIMEOUT",
    "HTTPResponse",
    "NoTimeLeft",
    "ResponseFailure",
    "UnexpectedBody",
    "VaultResponse",
    "json_body",
    "socket_timeout",
]

# Below this many seconds left, a request is not sent at all, because no
# response could arrive in time.
MIN_SOCKET_TIMEOUT = 0.01


class HTTPResponse(Protocol):
    """
    What the adapter reads from a response of either transport: the
    subset of `requests.Response` that `VaultResponse` also provides.
    """

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def ok(self) -> bool: ...

    @property
    def text(self) -> str: ...

    def json(self, **kwargs: Any) -> Any: ...


class ResponseFailure(Exception):
    """
    A response the adapter cannot use: an error status, or a body that is
    not a Vault JSON object.

    Attributes:
        status: The HTTP status.
        errors: Vault's ``errors`` list, empty when the body has none.
        body: The decoded JSON object, or None when the body is not one
            (such as the HTML page of a proxy).
        retry_after: The raw ``Retry-After`` header, or None.
        hostname: The ``X-Vault-Hostname`` header, the name of the node
            that handled the request, or None.
        raft_node_id: The ``X-Vault-Raft-Node-ID`` header, or None.
    """

    def __init__(
        self,
        status: int,
        *,
        errors: tuple[str, ...] = (),
        body: dict[str, Any] | None = None,
        retry_after: str | None = None,
        hostname: str | None = None,
        raft_node_id: str | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.errors = errors
        self.body = body
        self.retry_after = retry_after
        self.hostname = hostname
        self.raft_node_id = raft_node_id

    @classmethod
    def from_response(cls, response: HTTPResponse) -> ResponseFailure:
        """
        Build a failure from *response*, decoding its body if it is JSON.
        """
        body = decode_object(response)
        errors: tuple[str, ...] = ()
        if body is not None and isinstance(body.get("errors"), list):
            errors = tuple(str(error) for error in body["errors"])
        headers = response.headers
        return cls(
            response.status_code,
            errors=errors,
            body=body,
            retry_after=headers.get("Retry-After"),
            hostname=headers.get("X-Vault-Hostname"),
            raft_node_id=headers.get("X-Vault-Raft-Node-ID"),
        )


class UnexpectedBody(Exception):
    """
    A successful response lacks a field the operation needs.

    Attributes:
        field: The missing field, such as ``"body.data.version"``.
    """

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class NoTimeLeft(Exception):
    """
    The deadline left too little time to send the request, so it was not
    sent.
    """


def decode_object(response: HTTPResponse) -> dict[str, Any] | None:
    """
    Return the JSON object in *response*'s body, or None when the body is
    not a JSON object.
    """
    try:
        body = response.json()
    except ValueError:
        # json.JSONDecodeError and requests' JSONDecodeError are both
        # ValueError subclasses.
        return None
    return body if isinstance(body, dict) else None


def json_body(response: HTTPResponse) -> dict[str, Any]:
    """
    Return the JSON object in a successful *response*.

    Raises:
        ResponseFailure: When the body is not a JSON object, as when a proxy
            responds in place of the server.
    """
    body = decode_object(response)
    if body is None:
        raise ResponseFailure(response.status_code)
    return body


def socket_timeout(limit: float) -> float:
    """
    Return the socket timeout for a request sent now: *limit*, or less when
    the current deadline is closer.

    Raises:
        NoTimeLeft: When the deadline leaves less than `MIN_SOCKET_TIMEOUT`.
    """
    remaining = time_remaining()
    timeout = limit if remaining is None else min(limit, remaining)
    if timeout < MIN_SOCKET_TIMEOUT:
        raise NoTimeLeft
    return timeout


class VaultResponse:
    """
    A response of the urllib3 transport, read in full.

    It offers the parts of `requests.Response` that hvac and the adapter
    read (``status_code``, ``ok``, ``headers``, ``content``, ``text``,
    ``json()``, ``raise_for_status()``, truthiness), so code written for
    hvac's `RawAdapter` works with it unchanged.

    Attributes:
        status_code: The HTTP status.
        headers: The response headers; lookups ignore case.
        content: The body as bytes.
        url: The URL that produced this response, after any redirects.
        reason: The status line's reason phrase, such as ``"OK"``.
    """

    __slots__ = ("content", "headers", "reason", "status_code", "url")

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        content: bytes,
        url: str,
        reason: str | None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url
        self.reason = reason

    def __repr__(self) -> str:
        return f"<VaultResponse [{self.status_code}]>"

    def __bool__(self) -> bool:
        return self.ok

    @property
    def ok(self) -> bool:
        """
        Whether the status is below 400, as `requests.Response.ok` defines it.
        """
        return self.status_code < 400

    @property
    def text(self) -> str:
        """
        The body decoded as UTF-8, the encoding of Vault's JSON; bytes that
        are not valid UTF-8 become U+FFFD.
        """
        return self.content.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """
        Decode the body as JSON.

        Raises:
            requests.exceptions.JSONDecodeError: When the body is not JSON,
                the same exception `requests.Response.json` raises. It is
                also a `ValueError`.
        """
        try:
            return json.loads(self.content, **kwargs)
        except json.JSONDecodeError as exc:
            raise requests.exceptions.JSONDecodeError(
                exc.msg, exc.doc, exc.pos
            ) from None
        except UnicodeDecodeError as exc:
            raise requests.exceptions.JSONDecodeError(
                f"the body is not UTF-8 ({exc.reason})", "", 0
            ) from None

    def raise_for_status(self) -> None:
        """
        Raise `requests.HTTPError` for a status of 400 or more.
        """
        if self.status_code >= 400:
            # The URL is left out, because it contains the secret path.
            kind = "Client" if self.status_code < 500 else "Server"
            msg = f"{self.status_code} {kind} Error: {self.reason}"
            raise requests.exceptions.HTTPError(msg)
