"""
The fallback transport: hvac's own `RawAdapter` on a `requests.Session`.

Select it with ``transport="requests"`` (or
``BUTTRESS_VAULT_TRANSPORT=requests``) when a feature of requests is
needed that the urllib3 transport lacks, such as SOCKS proxies, or to rule
the transport out while debugging. It costs more CPU time per request.
"""

from __future__ import annotations

from typing import Any, cast

import hvac.adapters
import requests
import requests.adapters
import urllib3.util

from ._config import VaultConfig
from ._connection import MIN_TLS_VERSION
from ._http import ResponseFailure, socket_timeout

__all__ = ["VaultHTTPAdapter", "build_session"]


class _PoolAdapter(requests.adapters.HTTPAdapter):
    """
    A requests transport adapter whose pools also get the TLS server name
    and the minimum TLS version.
    """

    def __init__(self, pool_options: dict[str, Any], **kwargs: Any) -> None:
        self._pool_options = pool_options
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(
            connections, maxsize, block, **self._pool_options, **pool_kwargs
        )


def build_session(config: VaultConfig) -> requests.Session:
    """
    Build a session for one worker thread, with the TLS and proxy settings
    of *config* and urllib3's retries off.
    """
    session = requests.Session()
    # hvac copies a truthy session.verify over its own verify argument, so
    # the session must carry the configured value.
    session.verify = config.verify
    if config.client_cert is not None:
        session.cert = (
            config.client_cert
            if config.client_key is None
            else (config.client_cert, config.client_key)
        )
    if config.proxy_url is not None:
        session.proxies = {"http": config.proxy_url, "https": config.proxy_url}
    pool_options: dict[str, Any] = {"ssl_minimum_version": MIN_TLS_VERSION}
    if config.tls_server_name is not None:
        pool_options["server_hostname"] = config.tls_server_name
    # One connection is enough, because only this thread uses the session.
    # total=0 turns off every urllib3 retry, and read=False re-raises a read
    # error at once instead of counting it.
    no_retries = urllib3.util.Retry(total=0, read=False)
    http = _PoolAdapter(
        pool_options, pool_connections=1, pool_maxsize=1, max_retries=no_retries
    )
    session.mount("http://", http)
    session.mount("https://", http)
    return session


# hvac ships no type information, so its classes are `Any` to mypy.
class VaultHTTPAdapter(hvac.adapters.RawAdapter):  # type: ignore[misc]
    """
    An hvac adapter on requests that bounds every request by the caller's
    deadline and raises `ResponseFailure` for error statuses.

    It returns the `requests.Response` itself, so callers see the headers
    too, such as Retry-After, which hvac's own exceptions do not keep.
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

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        raise_exception: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        # hvac passes these keyword arguments on to requests, where a
        # per-call timeout overrides the one given at construction. This is
        # how each request's socket timeout follows the time left.
        limit = kwargs.get("timeout")
        kwargs["timeout"] = self._timeouts(
            self.timeout_seconds if limit is None else float(limit)
        )
        response = cast(
            requests.Response,
            super().request(
                method, url, headers=headers, raise_exception=False, **kwargs
            ),
        )
        if raise_exception and not self.ignore_exceptions and not response.ok:
            raise ResponseFailure.from_response(response)
        return response

    def _timeouts(self, limit: float) -> tuple[float, float]:
        # requests takes (connect, read) timeouts.
        read = socket_timeout(limit)
        return min(self._connect_timeout, read), read

    def read_health(self, timeout: float) -> requests.Response:
        """
        Send ``GET /v1/sys/health`` without the token or namespace, and
        return the response whatever its status.
        """
        url = self.urljoin(self.base_uri, "v1/sys/health")
        headers = {"X-Vault-Request": "true"}
        # verify and cert are passed per request, as hvac's own requests
        # do, because requests lets REQUESTS_CA_BUNDLE override the
        # session's verify but not a per-request one.
        return self.session.get(  # type: ignore[no-any-return]
            url,
            headers=headers,
            timeout=self._timeouts(timeout),
            allow_redirects=self.allow_redirects,
            verify=self._kwargs["verify"],
            cert=self._kwargs["cert"],
        )
