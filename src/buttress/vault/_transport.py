"""
The HTTP layer under the adapter: how one hvac client is built.

A `requests.Session` is not safe to share between threads, so each worker
thread gets its own client from `build_client`. urllib3's retries are
disabled, because the adapter's retry policy is the only retry layer: two
layers would multiply attempts and hide the delays from the deadline.

Failures leave this module as `ResponseFailure`, `UnexpectedBody`,
`NoTimeLeft` or the raw requests and urllib3 exceptions. `buttress.vault._classify` translates all
of them before they leave the worker thread.
"""

from __future__ import annotations

import json
from typing import Any, cast

import hvac
import hvac.adapters
import requests
import requests.adapters
import urllib3.util

from .._clock import time_remaining
from ._config import VaultConfig

__all__ = [
    "NoTimeLeft",
    "ResponseFailure",
    "UnexpectedBody",
    "VaultHTTPAdapter",
    "build_client",
    "close_client",
    "json_body",
]

# Below this many seconds left, a request is not sent at all, because no
# response could arrive in time.
MIN_SOCKET_TIMEOUT = 0.01


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
    """

    def __init__(
        self,
        status: int,
        *,
        errors: tuple[str, ...] = (),
        body: dict[str, Any] | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.errors = errors
        self.body = body
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: requests.Response) -> ResponseFailure:
        """
        Build a failure from *response*, decoding its body if it is JSON.
        """
        body = _decode_object(response)
        errors: tuple[str, ...] = ()
        if body is not None and isinstance(body.get("errors"), list):
            errors = tuple(str(error) for error in body["errors"])
        return cls(
            response.status_code,
            errors=errors,
            body=body,
            retry_after=response.headers.get("Retry-After"),
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


def _decode_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return None
    return body if isinstance(body, dict) else None


def json_body(response: requests.Response) -> dict[str, Any]:
    """
    Return the JSON object in a successful *response*.

    Raises:
        ResponseFailure: When the body is not a JSON object, as when a proxy
            responds in place of the server.
    """
    body = _decode_object(response)
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


# hvac ships no type information, so its classes are `Any` to mypy.
class VaultHTTPAdapter(hvac.adapters.RawAdapter):  # type: ignore[misc]
    """
    An hvac adapter that bounds every request by the caller's deadline and
    raises `ResponseFailure` for error statuses.

    It returns the `requests.Response` itself, so callers see the headers
    too, such as Retry-After, which hvac's own exceptions do not keep.
    """

    def __init__(self, *args: Any, timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, timeout=timeout, **kwargs)
        self.timeout_seconds = float(timeout)

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        raise_exception: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        # NOTE: hvac passes these keyword arguments on to requests, where a
        # per-call timeout overrides the one given at construction. This is
        # how each request's socket timeout follows the time left.
        if "timeout" not in kwargs:
            kwargs["timeout"] = socket_timeout(self.timeout_seconds)
        response = cast(
            requests.Response,
            super().request(
                method, url, headers=headers, raise_exception=False, **kwargs
            ),
        )
        if raise_exception and not response.ok:
            raise ResponseFailure.from_response(response)
        return response

    def read_health(self, timeout: float) -> requests.Response:
        """
        Send ``GET /v1/sys/health`` without the token, and return the
        response whatever its status.
        """
        url = self.urljoin(self.base_uri, "v1/sys/health")
        headers = {"X-Vault-Request": "true"}
        return self.session.get(  # type: ignore[no-any-return]
            url, headers=headers, timeout=timeout, allow_redirects=self.allow_redirects
        )


def _build_session(verify: bool | str) -> requests.Session:
    session = requests.Session()
    # hvac copies a truthy session.verify over its own verify argument, so
    # the session must carry the configured value.
    session.verify = verify
    # One connection is enough, because only this thread uses the session.
    # total=0 turns off every urllib3 retry, and read=False re-raises a read
    # error at once instead of counting it.
    no_retries = urllib3.util.Retry(total=0, read=False)
    http = requests.adapters.HTTPAdapter(
        pool_connections=1, pool_maxsize=1, max_retries=no_retries
    )
    session.mount("http://", http)
    session.mount("https://", http)
    return session


def build_client(config: VaultConfig) -> hvac.Client:
    """
    Build an hvac client for *config* that only this thread may use.
    """
    return hvac.Client(
        url=config.url,
        token=config.token.get_secret_value(),
        namespace=config.namespace,
        verify=config.verify,
        timeout=config.timeout_seconds,
        session=_build_session(config.verify),
        adapter=VaultHTTPAdapter,
    )


def close_client(client: hvac.Client) -> None:
    """
    Close *client*'s session and its connections.
    """
    client.adapter.close()
