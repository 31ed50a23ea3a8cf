"""
The HTTP layer under the adapter: how one hvac client is built.

A client is not safe to share between threads, so each worker thread gets
its own from `build_client`. Its adapter is the urllib3 transport
(`Urllib3Adapter`) by default, or hvac's requests-based adapter
(`VaultHTTPAdapter`) with ``transport="requests"``. Both send each request
once: urllib3's retries are off, because the adapter's retry policy is the
only retry layer, and two layers would multiply attempts and hide the
delays from the deadline.

Failures leave this layer as `ResponseFailure`, `UnexpectedBody`,
`NoTimeLeft` or requests exceptions. `buttress.vault._classify` translates
all of them before they leave the worker thread.
"""

from __future__ import annotations

import functools

import hvac

from ._config import VaultConfig
from ._http import (
    MIN_SOCKET_TIMEOUT,
    HTTPResponse,
    NoTimeLeft,
    ResponseFailure,
    UnexpectedBody,
    VaultResponse,
    json_body,
    socket_timeout,
)
from ._requests_adapter import VaultHTTPAdapter, build_session
from ._urllib3_adapter import Urllib3Adapter

__all__ = [
    "MIN_SOCKET_TIMEOUT",
    "HTTPResponse",
    "NoTimeLeft",
    "ResponseFailure",
    "UnexpectedBody",
    "Urllib3Adapter",
    "VaultHTTPAdapter",
    "VaultResponse",
    "build_client",
    "close_client",
    "json_body",
    "socket_timeout",
]


def build_client(config: VaultConfig) -> hvac.Client:
    """
    Build an hvac client for *config* that only this thread may use.
    """
    cert = None
    if config.client_cert is not None:
        cert = (config.client_cert, config.client_key)
    # verify and cert are passed to hvac too, because hvac's TLS
    # certificate login reads them back from the adapter.
    common = {
        "url": config.url,
        "token": config.token.get_secret_value(),
        "namespace": config.namespace,
        "verify": config.verify,
        "cert": cert,
        "timeout": config.timeout_seconds,
    }
    if config.transport == "requests":
        return hvac.Client(
            **common,
            session=build_session(config),
            adapter=functools.partial(VaultHTTPAdapter, config=config),
        )
    return hvac.Client(
        **common, adapter=functools.partial(Urllib3Adapter, config=config)
    )


def close_client(client: hvac.Client) -> None:
    """
    Close *client*'s connections.
    """
    client.adapter.close()
