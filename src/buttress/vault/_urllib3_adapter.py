"""
The default transport: an hvac adapter that sends requests with urllib3
directly, without a `requests.Session`.

requests adds about half a millisecond of CPU time to every Vault request
(environment and proxy lookups, cookie handling, request preparation and
response wrapping), which caps a process at a few thousand requests per
second because that work holds the GIL. This adapter keeps what the
adapter needs and nothing else: a `urllib3.PoolManager` (a
`urllib3.ProxyManager` behind a proxy) owned by one worker thread, with a
kept-alive connection per host, urllib3's retries off, and a socket
timeout that follows the caller's deadline.

It returns `VaultResponse` objects, which offer the parts of
`requests.Response` that hvac and the adapter read. urllib3's exceptions
leave it as the requests exceptions that requests would raise for the same
failure, so error translation does not depend on the transport.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

import hvac.adapters
import requests.exceptions
import urllib3
import urllib3.exceptions
import urllib3.util

from .. import __version__
from ._config import VaultConfig
from ._connection import proxy_for, proxy_headers, urllib3_pool_options
from ._http import ResponseFailure, VaultResponse, socket_timeout

__all__ = ["Urllib3Adapter"]

USER_AGENT = f"buttress/{__version__} hvac"
# requests follows up to 30 redirects. Vault sends at most one (a standby
# redirecting to the active node), so a longer chain is a loop.
MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
# urllib3 re-raises the original exception when total is False, and the
# adapter follows redirects itself.
_NO_RETRIES = urllib3.util.Retry(total=False, redirect=False, raise_on_redirect=False)


def as_requests_error(exc: urllib3.exceptions.HTTPError) -> Exception:
    """
    Return the requests exception that requests raises for the urllib3
    exception *exc*, such as `requests.exceptions.ReadTimeout` for
    `urllib3.exceptions.ReadTimeoutError`.

    The caller raises it ``from exc``, so the chain keeps the root cause
    (such as `ssl.SSLCertVerificationError`) that error translation reads.
    """
    errors = requests.exceptions
    text = str(exc)
    # Order matters: NewConnectionError and NameResolutionError are
    # subclasses of ConnectTimeoutError, and ReadTimeoutError of
    # urllib3's TimeoutError.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return errors.ConnectionError(text)
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return errors.ConnectTimeout(text)
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return errors.ReadTimeout(text)
    if isinstance(exc, urllib3.exceptions.ProxyError):
        return errors.ProxyError(text)
    if isinstance(exc, urllib3.exceptions.SSLError):
        return errors.SSLError(text)
    if isinstance(exc, urllib3.exceptions.LocationValueError):
        return errors.InvalidURL(text)
    if isinstance(exc, urllib3.exceptions.InvalidHeader):
        return errors.InvalidHeader(text)
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return errors.ContentDecodingError(text)
    return errors.ConnectionError(text)


def _encode_query(params: Any) -> str:
    """
    Encode query parameters as requests does: keys with a None value are
    left out, and a list value repeats its key.
    """
    if params is None:
        return ""
    if isinstance(params, (str, bytes)):
        return params.decode("ascii") if isinstance(params, bytes) else params
    pairs = params.items() if isinstance(params, Mapping) else params
    kept = [(key, value) for key, value in pairs if value is not None]
    return urllib.parse.urlencode(kept, doseq=True)


def _encode_body(json_data: object, data: object) -> tuple[bytes | None, str | None]:
    """
    Return the request body and its content type, from hvac's ``json`` or
    ``data`` argument; ``data`` wins when both are given, as in requests.

    Raises:
        requests.exceptions.InvalidJSONError: When *json_data* cannot be
            encoded, such as a set or a NaN inside it.
    """
    if data is not None and data != b"" and data != "":
        if isinstance(data, bytes):
            return data, None
        if isinstance(data, str):
            return data.encode("utf-8"), None
        if isinstance(data, Mapping):
            form = urllib.parse.urlencode(list(data.items()), doseq=True)
            return form.encode("ascii"), "application/x-www-form-urlencoded"
        read = getattr(data, "read", None)
        if callable(read):
            content = read()
            return (
                content.encode("utf-8") if isinstance(content, str) else content
            ), None
        msg = f"data of type {type(data).__name__} is not supported"
        raise TypeError(msg)
    if json_data is None:
        return None, None
    try:
        text = json.dumps(json_data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise requests.exceptions.InvalidJSONError(str(exc)) from None
    return text.encode("utf-8"), "application/json"


# hvac ships no type information, so its classes are `Any` to mypy.
class Urllib3Adapter(hvac.adapters.RawAdapter):  # type: ignore[misc]
    """
    An hvac adapter on urllib3 that bounds every request by the caller's
    deadline and raises `ResponseFailure` for error statuses.

    Build it through ``hvac.Client(adapter=functools.partial(Urllib3Adapter,
    config=config))``. The TLS, proxy and redirect settings come from
    *config*; hvac's own ``verify``, ``cert`` and ``proxies`` arguments are
    kept only where hvac's code reads them back. It is not safe to share
    between threads.

    Args:
        config: The adapter's configuration.
        timeout: Socket timeout in seconds for a request sent outside any
            deadline; within one, the time left when shorter.
    """

    def __init__(
        self, *args: Any, config: VaultConfig, timeout: float = 30.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, timeout=timeout, **kwargs)
        self.timeout_seconds = float(timeout)
        self._connect_timeout = config.connect_timeout_seconds
        self.allow_redirects: bool = (
            bool(kwargs.get("allow_redirects", True)) and config.follow_redirects
        )
        base = urllib.parse.urlsplit(self.base_uri)
        self._origin = f"{base.scheme}://{base.netloc}"
        self._base_path = base.path.rstrip("/")
        options = urllib3_pool_options(config)
        proxy = proxy_for(config, self.base_uri)
        self._manager: urllib3.PoolManager
        if proxy is None:
            self._manager = urllib3.PoolManager(num_pools=4, **options)
        else:
            scheme = urllib.parse.urlsplit(proxy).scheme
            if scheme not in ("http", "https"):
                # The proxy URL is not echoed, because it may hold a password.
                msg = (
                    f"VaultConfig: the proxy for {self._origin} uses the scheme "
                    f"{scheme!r}, which the urllib3 transport does not support. "
                    f"Use an http or https proxy, or set transport='requests' "
                    f"with the requests[socks] extra installed."
                )
                raise ValueError(msg)
            self._manager = urllib3.ProxyManager(
                proxy, num_pools=4, proxy_headers=proxy_headers(proxy), **options
            )
        # A plain-HTTP request through a proxy must go through the
        # ProxyManager, which sends the absolute URL. Any other request to
        # the base address can use its pool directly, which saves a URL
        # parse and a pool lookup.
        self._base_pool: urllib3.HTTPConnectionPool | None = None
        if proxy is None or base.scheme == "https":
            self._base_pool = self._manager.connection_from_url(self._origin)

    def close(self) -> None:
        """
        Close the pooled connections.
        """
        self._manager.clear()
        super().close()

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        raise_exception: bool = True,
        **kwargs: Any,
    ) -> VaultResponse:
        response = self._request(method, url, headers, anonymous=False, **kwargs)
        if raise_exception and not self.ignore_exceptions and not response.ok:
            raise ResponseFailure.from_response(response)
        return response

    def read_health(self, timeout: float) -> VaultResponse:
        """
        Send ``GET /v1/sys/health`` without the token or namespace, and
        return the response whatever its status.
        """
        return self._request(
            "GET", "/v1/sys/health", None, anonymous=True, timeout=timeout
        )

    def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        *,
        anonymous: bool,
        **kwargs: Any,
    ) -> VaultResponse:
        limit = kwargs.pop("timeout", None)
        limit = self.timeout_seconds if limit is None else float(limit)
        query = _encode_query(kwargs.pop("params", None))
        body, content_type = _encode_body(
            kwargs.pop("json", None), kwargs.pop("data", None)
        )
        wrap_ttl = kwargs.pop("wrap_ttl", None)
        if kwargs:
            msg = (
                f"the urllib3 transport does not support the request arguments "
                f"{sorted(kwargs)}. Set transport='requests' to use them."
            )
            raise TypeError(msg)

        # The same headers as hvac's RawAdapter, which sets its own after
        # the caller's.
        sent = {"User-Agent": USER_AGENT}
        if headers:
            sent.update(headers)
        if self.request_header:
            sent["X-Vault-Request"] = "true"
        if self.token and not anonymous:
            sent["X-Vault-Token"] = self.token
        if self.namespace and not anonymous:
            sent["X-Vault-Namespace"] = self.namespace
        if wrap_ttl:
            sent["X-Vault-Wrap-TTL"] = str(wrap_ttl)
        if content_type is not None:
            sent["Content-Type"] = content_type

        method = method.upper()
        if self.strict_http and method == "LIST":
            method = "GET"
            query = f"{query}&list=true" if query else "list=true"
        while "//" in url:
            # Vault reads a double slash as one, as hvac's RawAdapter does.
            url = url.replace("//", "/")
        target = f"{self._origin}{self._base_path}/{url.strip('/')}"
        if query:
            target = f"{target}?{query}"
        return self._send(method, target, body, sent, limit)

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        limit: float,
    ) -> VaultResponse:
        """
        Send the request and follow redirects, each hop with the socket
        timeout left of *limit* and of the deadline.
        """
        redirects = 0
        while True:
            raw = self._urlopen(method, url, body, headers, socket_timeout(limit))
            location = raw.headers.get("Location")
            if (
                not self.allow_redirects
                or raw.status not in _REDIRECT_STATUSES
                or not location
            ):
                return VaultResponse(raw.status, raw.headers, raw.data, url, raw.reason)
            if redirects == MAX_REDIRECTS:
                msg = f"more than {MAX_REDIRECTS} redirects"
                raise requests.exceptions.TooManyRedirects(msg)
            redirects += 1
            next_url = urllib.parse.urljoin(url, location)
            if url.startswith("https:") and not next_url.startswith("https:"):
                # The token would then cross the network in clear text.
                msg = "a redirect from https to another scheme was refused"
                raise requests.exceptions.InvalidURL(msg)
            if (raw.status == 303 and method != "HEAD") or (
                raw.status in (301, 302) and method == "POST"
            ):
                # Browsers and requests turn these into a GET without a body.
                method = "GET"
                body = None
                headers = {k: v for k, v in headers.items() if k != "Content-Type"}
            url = next_url

    def _urlopen(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> urllib3.BaseHTTPResponse:
        options: dict[str, Any] = {
            "body": body,
            "headers": headers,
            "retries": _NO_RETRIES,
            "redirect": False,
            "timeout": urllib3.Timeout(
                connect=min(self._connect_timeout, timeout), read=timeout
            ),
            # The body is read before the connection returns to the pool.
            "preload_content": True,
        }
        origin = self._origin
        try:
            if self._base_pool is not None and url.startswith(origin):
                path = url[len(origin) :]
                if path.startswith(("/", "?")):
                    return self._base_pool.urlopen(
                        method, path, assert_same_host=False, **options
                    )
            return self._manager.urlopen(method, url, **options)
        except urllib3.exceptions.HTTPError as exc:
            raise as_requests_error(exc) from exc
