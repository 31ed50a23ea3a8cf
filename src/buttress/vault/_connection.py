"""
TLS and proxy options of a connection to Vault, for either transport.

Both transports decide the same way: `verify` is True, False, or the path
of a CA bundle file or directory; the client certificate and key come from
the config; the TLS server name replaces the URL's host name for SNI and
certificate checks. A ``proxy_url`` in the config is used for every
request. Without one, the proxy comes from the ``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` environment variables
(upper or lower case), read when each worker thread builds its client, by
the same function requests uses.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import requests.utils
import urllib3.util

from ._config import VaultConfig

__all__ = [
    "default_ca_bundle",
    "proxy_for",
    "proxy_headers",
    "urllib3_pool_options",
]

# TLS 1.0 and 1.1 are deprecated (RFC 8996), and Vault's listeners default
# to TLS 1.2 as their minimum.
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2


def default_ca_bundle() -> str:
    """
    Return the CA bundle used when ``verify`` is True, as requests picks
    it: the ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` environment
    variable when set, else certifi's bundle.
    """
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        bundle = os.environ.get(variable)
        if bundle:
            return bundle
    return str(requests.utils.DEFAULT_CA_BUNDLE_PATH)


def proxy_for(config: VaultConfig, url: str) -> str | None:
    """
    Return the proxy URL for a request to *url*, or None to connect
    directly.
    """
    if config.proxy_url is not None:
        return config.proxy_url
    proxies = requests.utils.get_environ_proxies(url)
    proxy: str | None = requests.utils.select_proxy(url, proxies)
    return proxy or None


def proxy_headers(proxy_url: str) -> dict[str, str]:
    """
    Return the ``Proxy-Authorization`` header for credentials in
    *proxy_url*, or no headers when it has none.
    """
    username, password = requests.utils.get_auth_from_url(proxy_url)
    if not username:
        return {}
    return urllib3.util.make_headers(proxy_basic_auth=f"{username}:{password}")


def urllib3_pool_options(config: VaultConfig) -> dict[str, Any]:
    """
    Return the keyword arguments of a `urllib3.PoolManager` (or
    `urllib3.ProxyManager`) for *config*: one kept-alive connection per
    host, and the TLS settings.

    urllib3 drops the TLS keywords for plain-HTTP pools.
    """
    options: dict[str, Any] = {
        # Only the worker thread that owns the pool uses it, so one
        # connection per host is enough.
        "maxsize": 1,
        "block": False,
        "ssl_minimum_version": MIN_TLS_VERSION,
    }
    verify = config.verify
    if verify is False:
        options["cert_reqs"] = ssl.CERT_NONE
    else:
        options["cert_reqs"] = ssl.CERT_REQUIRED
        bundle = default_ca_bundle() if verify is True else verify
        if os.path.isdir(bundle):
            options["ca_cert_dir"] = bundle
        else:
            options["ca_certs"] = bundle
    if config.client_cert is not None:
        options["cert_file"] = config.client_cert
        options["key_file"] = config.client_key
    if config.tls_server_name is not None:
        options["server_hostname"] = config.tls_server_name
    return options
