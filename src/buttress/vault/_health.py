"""
The server probe behind `VaultAdapter.health_check`.

The probe sends ``GET /v1/sys/health`` without a token, because that
endpoint is unauthenticated and exempt from rate-limit quotas by default,
then looks up the adapter's own token. It runs in a worker thread, outside
the retry policy and the circuit breaker, so it still reports while the
breaker is open. It returns a failed request or an unusable response as
part of its result instead of raising it.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import hvac
import requests

from ._classify import Operation, translate
from ._config import VaultConfig
from ._transport import (
    MIN_SOCKET_TIMEOUT,
    ResponseFailure,
    build_client,
    close_client,
    json_body,
)

__all__ = ["HealthProbe", "probe_server"]

# The role of a server by its sys/health status, with Vault's and OpenBao's
# default status codes.
_ROLES = {
    200: "active",
    429: "standby",
    472: "dr_secondary",
    473: "performance_standby",
    474: "standby_disconnected",
    501: "uninitialized",
    503: "sealed",
    530: "removed",
}


@attrs.frozen
class HealthProbe:
    """
    What one probe of the server found.

    Attributes:
        server_reachable: Whether the server responded with a health body.
        role: ``"active"``, ``"standby"``, ``"sealed"``,
            ``"uninitialized"`` and the other roles of `_ROLES`, or
            ``"unreachable"``.
        status: The HTTP status of sys/health, or None without a response.
        server_initialized: The body's ``initialized``, or None.
        sealed: The body's ``sealed``, or None.
        standby: The body's ``standby``, or None.
        version: The server's version, or None.
        cluster_name: The cluster's name, or None (absent while sealed).
        latency_seconds: Round trip of the sys/health request, or None.
        token_valid: True when the token lookup succeeded, False when the
            server rejected the token, None when it was not checked or the
            lookup failed for another reason.
        token_ttl_seconds: The token's ``ttl`` from the lookup, or None.
        error: Why the probe or the token lookup failed, or None.
        probed: False when the probe did not run, because the thread pool
            rejected it.
    """

    server_reachable: bool = False
    role: str = "unreachable"
    status: int | None = None
    server_initialized: bool | None = None
    sealed: bool | None = None
    standby: bool | None = None
    version: str | None = None
    cluster_name: str | None = None
    latency_seconds: float | None = None
    token_valid: bool | None = None
    token_ttl_seconds: int | None = None
    error: str | None = None
    probed: bool = True


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    return value if isinstance(value, kind) else None


def _parse_health(response: requests.Response, latency: float) -> HealthProbe:
    status = response.status_code
    try:
        body = json_body(response)
    except ResponseFailure:
        body = None
    if body is None or not isinstance(body.get("initialized"), bool):
        return HealthProbe(
            status=status,
            latency_seconds=latency,
            error=(
                f"sys/health returned HTTP {status} without a Vault health body, "
                f"so a proxy may have responded in place of the server"
            ),
        )
    return HealthProbe(
        server_reachable=True,
        role=_ROLES.get(status, "unknown"),
        status=status,
        server_initialized=body["initialized"],
        sealed=_optional(body, "sealed", bool),
        standby=_optional(body, "standby", bool),
        version=_optional(body, "version", str),
        cluster_name=_optional(body, "cluster_name", str),
        latency_seconds=latency,
    )


def _lookup_token(
    client: hvac.Client, op: Operation, probe: HealthProbe, deadline: float
) -> HealthProbe:
    timeout = deadline - time.monotonic()
    if timeout < MIN_SOCKET_TIMEOUT:
        return attrs.evolve(probe, error="no time was left to look up the token")
    lookup = Operation("token_lookup_self", "auth/token", "", True, op.server)
    try:
        response = client.adapter.get("/v1/auth/token/lookup-self", timeout=timeout)
        data = json_body(response).get("data")
    except Exception as exc:
        error = translate(exc, lookup)
        if error is None:
            raise
        rejected = isinstance(exc, ResponseFailure) and exc.status in (401, 403)
        return attrs.evolve(
            probe, token_valid=False if rejected else None, error=str(error)
        )
    ttl = data.get("ttl") if isinstance(data, dict) else None
    return attrs.evolve(
        probe,
        token_valid=True,
        token_ttl_seconds=ttl if isinstance(ttl, int) else None,
    )


def probe_server(config: VaultConfig, op: Operation, timeout: float) -> HealthProbe:
    """
    Probe the server with sys/health and a token lookup, within *timeout*
    seconds for both.

    The probe builds a client of its own and closes it at the end, because
    the worker thread's client is handed only to operations that run
    through the Guard, and the probe must bypass the Guard. The token is looked up only on an initialized, unsealed server, since any
    other would reject the lookup anyway. A token limited to a number of
    uses spends one on each lookup.
    """
    client = build_client(config)
    try:
        return _probe(client, op, timeout)
    finally:
        close_client(client)


def _probe(client: hvac.Client, op: Operation, timeout: float) -> HealthProbe:
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    try:
        response = client.adapter.read_health(timeout)
    except Exception as exc:
        error = translate(exc, op)
        if error is None:
            raise
        return HealthProbe(error=str(error))
    probe = _parse_health(response, time.monotonic() - started)
    if probe.sealed is False and probe.server_initialized:
        probe = _lookup_token(client, op, probe, deadline)
    return probe
