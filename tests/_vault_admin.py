"""
Administrative requests to the OpenBao dev server of the tests, sent with
the root token over plain HTTP on 127.0.0.1, outside the adapter under
test: enabling and disabling secrets engines and creating namespaces.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from buttress.testing import OpenBaoDevServer


def unique(name: str) -> str:
    """
    Return *name* with a random suffix, so tests never share a path.
    """
    return f"{name}-{uuid.uuid4().hex[:10]}"


def admin(
    server: OpenBaoDevServer,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    namespace: str | None = None,
) -> dict[str, Any]:
    """
    Send one request with the root token and return its JSON body, or
    ``{}`` for an empty one.

    Raises:
        RuntimeError: For an error status, with the server's errors.
    """
    headers = {"X-Vault-Token": server.root_token}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if namespace is not None:
        headers["X-Vault-Namespace"] = namespace
    request = urllib.request.Request(
        f"{server.address}/v1/{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        msg = f"{method} {path} failed with HTTP {error.code}: {detail}"
        raise RuntimeError(msg) from None
    return json.loads(text) if text.strip() else {}


@contextlib.contextmanager
def mounted(
    server: OpenBaoDevServer,
    engine: str,
    *,
    options: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    namespace: str | None = None,
) -> Iterator[str]:
    """
    Enable a secrets engine of type *engine* at a new mount path, yield the
    path, and disable the engine afterwards (which revokes its leases).
    """
    path = unique(engine)
    body: dict[str, Any] = {"type": engine}
    if options is not None:
        body["options"] = dict(options)
    if config is not None:
        body["config"] = dict(config)
    admin(server, "POST", f"sys/mounts/{path}", body, namespace=namespace)
    try:
        yield path
    finally:
        admin(server, "DELETE", f"sys/mounts/{path}", namespace=namespace)
