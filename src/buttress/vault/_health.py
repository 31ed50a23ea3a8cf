"""
The health check behind `VaultAdapter.health_check`.

How it works: the server probe sends ``GET /v1/sys/health`` without a
token, because that endpoint is unauthenticated and exempt from rate-limit
quotas by default, so the probe spends no token use. Only ``deep=True``
adds a lookup of the adapter's own token, which spends one use of a token
limited to a number of uses. The probe runs in a worker thread of the
adapter's pool, outside the retry policy and the circuit breaker, so it
still reports while the breaker is open. It returns a failed request or an
unusable response as part of its result instead of raising it.

The report separates two verdicts:

- ``live``: the adapter itself works. It is initialized and not closed,
  its thread pool accepts work, and its workers are not stalled (all busy,
  with none finishing, for longer than twice ``timeout_seconds``). Restart
  the process only when this is False. It does not depend on Vault.
- ``ready``: a request sent now should succeed. The adapter is live, the
  breaker is not open, the pool is not full, and the server is reachable,
  initialized, unsealed, in a role that serves requests, and has not
  rejected the token.

Between calls, a check remembers per thread pool when its workers were
last seen finishing, and whether a deep check found the token limited to a
number of uses (later deep checks then skip the lookup).
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from typing import Any

import attrs
import hvac

from .._breaker import BreakerStatistics, CircuitState
from .._clock import Clock
from .._errors import DeadlineExceeded, ExecutorClosed, ExecutorSaturated
from .._executor import BoundedExecutor, ExecutorStatistics
from .._guard import Guard
from ._classify import Operation, translate
from ._config import VaultConfig
from ._http import MIN_SOCKET_TIMEOUT, HTTPResponse, ResponseFailure, json_body
from ._ratelimit import TokenBucket
from ._transport import build_client, close_client

__all__ = ["HealthProbe", "check_health", "parse_health", "probe_server"]

# Upper bound on the probe, so a hung server cannot hold a health check for
# the whole operation timeout.
HEALTH_TIMEOUT_CAP = 5.0

# The role of a server by its sys/health status, with Vault's and OpenBao's
# default status codes. OpenBao uses 200, 429, 501 and 503; HashiCorp Vault
# also the others.
ROLES_BY_STATUS = {
    200: "active",
    429: "standby",
    472: "dr_secondary",
    473: "performance_standby",
    474: "standby_disconnected",
    501: "uninitialized",
    503: "sealed",
    530: "removed",
}
# Roles that handle requests: a standby forwards them to the active node
# (or, on OpenBao 2.5 and later, serves reads itself).
SERVING_ROLES = frozenset(("active", "standby", "performance_standby"))

# The health body fields with a report key of their own, and their types.
_KNOWN_FIELDS: dict[str, type] = {
    "initialized": bool,
    "sealed": bool,
    "standby": bool,
    "performance_standby": bool,
    "replication_performance_mode": str,
    "replication_dr_mode": str,
    "server_time_utc": int,
    "version": str,
    "cluster_name": str,
    "cluster_id": str,
}


@attrs.frozen
class HealthProbe:
    """
    What one probe of the server found.

    Attributes:
        server_reachable: Whether the server responded with a health body.
        role: One of the values of `ROLES_BY_STATUS`, or
            ``"unreachable"``. An unknown status with a health body gets
            the role its ``sealed``, ``initialized`` and ``standby`` fields
            describe.
        status: The HTTP status of sys/health, or None without a response.
        server_initialized, sealed, standby, performance_standby,
        replication_performance_mode, replication_dr_mode, version,
        cluster_name, cluster_id, server_time_utc: The body's fields, None
            when absent or of another type. ``cluster_name`` and
            ``cluster_id`` are absent while sealed.
        extra: Body fields without an attribute of their own, unchanged.
        clock_skew_seconds: The server's clock minus the local clock,
            estimated from ``server_time_utc``, or None. The server sends
            whole seconds, so the estimate is only good to about ±0.5 s
            plus half the latency.
        latency_seconds: Round trip of the sys/health request, or None.
        token_checked: Whether the token was looked up (``deep=True``).
        token_valid: True when the lookup succeeded, False when the server
            rejected the token, None when not checked or the lookup failed
            for another reason.
        token_ttl_seconds, token_num_uses, token_renewable, token_type:
            From the lookup, or None.
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
    performance_standby: bool | None = None
    replication_performance_mode: str | None = None
    replication_dr_mode: str | None = None
    version: str | None = None
    cluster_name: str | None = None
    cluster_id: str | None = None
    server_time_utc: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
    clock_skew_seconds: float | None = None
    latency_seconds: float | None = None
    token_checked: bool = False
    token_valid: bool | None = None
    token_ttl_seconds: int | None = None
    token_num_uses: int | None = None
    token_renewable: bool | None = None
    token_type: str | None = None
    error: str | None = None
    probed: bool = True


def _typed(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if kind is int and isinstance(value, bool):
        return None
    return value if isinstance(value, kind) else None


def _role_from_body(body: dict[str, Any]) -> str:
    """
    Return the role that a health body describes, for a status code that
    `ROLES_BY_STATUS` does not know (a proxy may rewrite it).
    """
    if body.get("initialized") is False:
        return "uninitialized"
    if body.get("sealed") is True:
        return "sealed"
    if body.get("performance_standby") is True:
        return "performance_standby"
    if body.get("standby") is True:
        return "standby"
    return "active"


def parse_health(
    response: HTTPResponse, latency: float, local_time: float
) -> HealthProbe:
    """
    Turn a sys/health response into a probe result.

    Args:
        response: The response, whatever its status.
        latency: Seconds the request took.
        local_time: Local Unix time halfway through the request, for the
            clock skew estimate.
    """
    status = response.status_code
    try:
        body: dict[str, Any] | None = json_body(response)
    except ResponseFailure:
        body = None
    if body is None or not isinstance(body.get("initialized"), bool):
        return HealthProbe(
            status=status,
            latency_seconds=latency,
            error=(
                f"sys/health returned HTTP {status} without a Vault health body, "
                f"so a proxy or load balancer may have responded in place of "
                f"the server"
            ),
        )
    fields = {key: _typed(body, key, kind) for key, kind in _KNOWN_FIELDS.items()}
    server_time = fields["server_time_utc"]
    skew = None
    if server_time is not None:
        # The server truncates its time to whole seconds, so its true time
        # lies in [server_time, server_time + 1); the middle is the estimate.
        skew = server_time + 0.5 - local_time
    return HealthProbe(
        server_reachable=True,
        role=ROLES_BY_STATUS.get(status) or _role_from_body(body),
        status=status,
        server_initialized=fields.pop("initialized"),
        extra={key: value for key, value in body.items() if key not in _KNOWN_FIELDS},
        clock_skew_seconds=skew,
        latency_seconds=latency,
        **fields,
    )


def _lookup_token(
    client: hvac.Client, op: Operation, probe: HealthProbe, deadline: float
) -> HealthProbe:
    timeout = deadline - time.monotonic()
    if timeout < MIN_SOCKET_TIMEOUT:
        return attrs.evolve(
            probe, token_checked=True, error="no time was left to look up the token"
        )
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
            probe,
            token_checked=True,
            token_valid=False if rejected else None,
            error=str(error),
        )
    if not isinstance(data, dict):
        data = {}
    return attrs.evolve(
        probe,
        token_checked=True,
        token_valid=True,
        token_ttl_seconds=_typed(data, "ttl", int),
        token_num_uses=_typed(data, "num_uses", int),
        token_renewable=_typed(data, "renewable", bool),
        token_type=_typed(data, "type", str),
    )


def probe_server(
    config: VaultConfig, op: Operation, timeout: float, *, lookup_token: bool
) -> HealthProbe:
    """
    Probe the server with sys/health, and with *lookup_token* also look
    the token up, within *timeout* seconds for both.

    The probe builds a client of its own and closes it at the end, because
    the worker thread's client is handed only to operations that run
    through the Guard, and the probe must bypass the Guard. The token is
    looked up only on an initialized, unsealed server, since any other
    would reject the lookup anyway.
    """
    client = build_client(config)
    try:
        return _probe(client, op, timeout, lookup_token=lookup_token)
    finally:
        close_client(client)


def _probe(
    client: hvac.Client, op: Operation, timeout: float, *, lookup_token: bool
) -> HealthProbe:
    deadline = time.monotonic() + timeout
    wall_started = time.time()
    started = time.monotonic()
    try:
        response = client.adapter.read_health(timeout)
    except Exception as exc:
        error = translate(exc, op)
        if error is None:
            raise
        return HealthProbe(error=str(error))
    latency = time.monotonic() - started
    probe = parse_health(response, latency, wall_started + latency / 2)
    if lookup_token and probe.sealed is False and probe.server_initialized:
        probe = _lookup_token(client, op, probe, deadline)
    return probe


# -- what a check remembers between calls --------------------------------


class _Memory:
    """
    State that health checks of one adapter keep between calls.
    """

    def __init__(self) -> None:
        # Whether a deep check found the token limited to a number of uses.
        self.token_uses_limited = False
        # Functions finished when the pool was last seen making progress,
        # and since when it has been fully busy without any finishing.
        self.finished = -1
        self.busy_since: float | None = None

    def stalled_for(self, stats: ExecutorStatistics, now: float) -> float:
        """
        Return for how long every worker has been busy with none finishing,
        as far as the checks so far could see.
        """
        finished = stats.completed + stats.failed
        busy = stats.active >= stats.limit
        if not busy or finished != self.finished:
            self.finished = finished
            self.busy_since = now if busy else None
            return 0.0
        if self.busy_since is None:
            self.busy_since = now
        return now - self.busy_since


_memories: weakref.WeakKeyDictionary[BoundedExecutor, _Memory] = (
    weakref.WeakKeyDictionary()
)
_memories_lock = threading.Lock()


def _memory(executor: BoundedExecutor) -> _Memory:
    with _memories_lock:
        memory = _memories.get(executor)
        if memory is None:
            memory = _memories[executor] = _Memory()
        return memory


# -- the report ------------------------------------------------------------


async def check_health(
    config: VaultConfig | None,
    *,
    guard: Guard | None,
    closed: bool,
    clock: Clock,
    deep: bool,
    rate_limiter: TokenBucket | None = None,
) -> dict[str, Any]:
    """
    Probe the server and build the health report of an adapter.

    Args:
        config: The adapter's config, or None before it has one.
        guard: The adapter's Guard, or None when it is not initialized or
            is closed; the server is then not probed.
        closed: Whether the adapter was closed.
        clock: The adapter's clock, for breaker and liveness times.
        deep: Also look the token up, spending one use of a token limited
            to a number of uses, unless an earlier deep check found such a
            limit.
        rate_limiter: The adapter's client-side rate limiter, if any.
    """
    executor = None if guard is None else guard.executor
    if guard is None or executor is None or config is None:
        reason = "adapter_closed" if closed else "adapter_not_initialized"
        return _report(
            config,
            HealthProbe(probed=False),
            guard=None,
            clock=clock,
            deep=deep,
            liveness_reasons=[reason],
            saturated=False,
            stalled_for=0.0,
            rate_limiter=rate_limiter,
        )

    op = Operation("health_check", "sys", "", True, config.url)
    memory = _memory(executor)
    lookup = deep and not memory.token_uses_limited
    probe_timeout = min(config.timeout_seconds, HEALTH_TIMEOUT_CAP)
    probe_call = functools.partial(
        probe_server, config, op, probe_timeout, lookup_token=lookup
    )
    saturated = False
    try:
        probe = await executor.run(probe_call, timeout=probe_timeout)
    except (ExecutorSaturated, ExecutorClosed) as exc:
        saturated = isinstance(exc, ExecutorSaturated)
        probe = HealthProbe(error=f"the server was not probed: {exc}", probed=False)
    except DeadlineExceeded:
        probe = HealthProbe(
            error=f"the health probe did not finish within {probe_timeout:g} s"
        )
    if probe.token_num_uses:
        memory.token_uses_limited = True
    elif deep and not lookup:
        probe = attrs.evolve(
            probe,
            error=probe.error
            or "the token is limited to a number of uses, so it was not looked up",
        )

    stats = executor.statistics()
    stalled_for = memory.stalled_for(stats, clock.monotonic())
    liveness_reasons = []
    if stats.closed:
        liveness_reasons.append("executor_closed")
    if stalled_for > 2 * config.timeout_seconds:
        liveness_reasons.append("thread_pool_stalled")
    return _report(
        config,
        probe,
        guard=guard,
        clock=clock,
        deep=deep,
        liveness_reasons=liveness_reasons,
        saturated=saturated,
        stalled_for=stalled_for,
        rate_limiter=rate_limiter,
    )


def _report(
    config: VaultConfig | None,
    probe: HealthProbe,
    *,
    guard: Guard | None,
    clock: Clock,
    deep: bool,
    liveness_reasons: list[str],
    saturated: bool,
    stalled_for: float,
    rate_limiter: TokenBucket | None,
) -> dict[str, Any]:
    stats = None if guard is None else guard.statistics()
    report: dict[str, Any] = {
        "healthy": False,
        "ready": False,
        "live": not liveness_reasons,
        "reasons": [],
        "liveness_reasons": liveness_reasons,
        "handler_type": "buttress.vault",
        "initialized": guard is not None,
        "deep": deep,
        "url": None if config is None else config.url,
        "timeout_seconds": None if config is None else config.timeout_seconds,
        "transport": None if config is None else config.transport,
        **_server_fields(probe),
        **_token_fields(probe),
        **_breaker_fields(None if stats is None else stats.breaker, clock),
        **_pool_fields(
            None if stats is None else stats.executor, saturated, stalled_for
        ),
        "throttled_for_seconds": 0.0 if stats is None else stats.throttled_for,
        **_last_429_fields(guard, clock),
        **_rate_limit_fields(config, rate_limiter),
        "error": probe.error,
    }
    reasons = list(liveness_reasons)
    if guard is not None:
        reasons.extend(_readiness_reasons(report, probe))
    report["reasons"] = reasons
    report["ready"] = report["healthy"] = not reasons
    return report


def _last_429_fields(guard: Guard | None, clock: Clock) -> dict[str, Any]:
    # Only the Vault adapter's own Guard records 429s.
    arrived = getattr(guard, "last_rate_limited_at", None)
    return {
        "last_retry_after_seconds": getattr(guard, "last_retry_after", None),
        "seconds_since_last_429": (
            None if arrived is None else max(0.0, clock.monotonic() - arrived)
        ),
    }


def _server_fields(probe: HealthProbe) -> dict[str, Any]:
    return {
        "server_reachable": probe.server_reachable,
        "server_role": probe.role,
        "server_status": probe.status,
        "server_initialized": probe.server_initialized,
        "sealed": probe.sealed,
        "standby": probe.standby,
        "performance_standby": probe.performance_standby,
        "replication_performance_mode": probe.replication_performance_mode,
        "replication_dr_mode": probe.replication_dr_mode,
        "version": probe.version,
        "cluster_name": probe.cluster_name,
        "cluster_id": probe.cluster_id,
        "server_time_utc": probe.server_time_utc,
        "clock_skew_seconds": probe.clock_skew_seconds,
        "server_extra": dict(probe.extra),
        "latency_seconds": probe.latency_seconds,
    }


def _token_fields(probe: HealthProbe) -> dict[str, Any]:
    return {
        "token_checked": probe.token_checked,
        "token_valid": probe.token_valid,
        # A TTL of 0 means the token never expires, as for a root token.
        "token_ttl_remaining_seconds": probe.token_ttl_seconds or None,
        "token_num_uses": probe.token_num_uses,
        "token_renewable": probe.token_renewable,
        "token_type": probe.token_type,
    }


def _breaker_fields(stats: BreakerStatistics | None, clock: Clock) -> dict[str, Any]:
    if stats is None:
        return {
            "circuit_breaker_enabled": False,
            "circuit_breaker_state": "disabled",
            "circuit_breaker_failure_count": 0,
            "circuit_breaker_open_count": 0,
            "circuit_breaker_seconds_since_change": None,
            "circuit_breaker_seconds_until_probe": None,
        }
    changed_at = stats.last_transition_at
    return {
        "circuit_breaker_enabled": True,
        "circuit_breaker_state": stats.state.value,
        "circuit_breaker_failure_count": stats.consecutive_failures,
        "circuit_breaker_open_count": stats.open_count,
        "circuit_breaker_seconds_since_change": (
            None if changed_at is None else clock.monotonic() - changed_at
        ),
        "circuit_breaker_seconds_until_probe": stats.seconds_until_probe,
    }


_POOL_KEYS = (
    "thread_pool_active_workers",
    "thread_pool_max_workers",
    "thread_pool_queue_depth",
    "thread_pool_queue_capacity",
    "thread_pool_rejected",
    "thread_pool_saturated",
    "thread_pool_abandoned",
    "thread_pool_closed",
    "thread_pool_stalled_seconds",
)


def _pool_fields(
    stats: ExecutorStatistics | None, rejected_probe: bool, stalled_for: float
) -> dict[str, Any]:
    if stats is None:
        return dict.fromkeys(_POOL_KEYS)
    full = stats.active >= stats.max_workers and stats.queued >= stats.queue_capacity
    return dict(
        zip(
            _POOL_KEYS,
            (
                stats.active,
                stats.max_workers,
                stats.queued,
                stats.queue_capacity,
                stats.rejected,
                rejected_probe or full,
                stats.abandoned,
                stats.closed,
                stalled_for,
            ),
            strict=True,
        )
    )


def _rate_limit_fields(
    config: VaultConfig | None, limiter: TokenBucket | None
) -> dict[str, Any]:
    limit = None if config is None else config.rate_limit
    fields: dict[str, Any] = {
        "rate_limit": None if limit is None else str(limit),
        "rate_limit_available": None,
        "rate_limit_delayed": None,
        "rate_limit_rejected": None,
    }
    if limiter is not None:
        stats = limiter.statistics()
        fields["rate_limit"] = f"{stats.rate:g}:{stats.burst}"
        fields["rate_limit_available"] = stats.available
        fields["rate_limit_delayed"] = stats.delayed
        fields["rate_limit_rejected"] = stats.rejected
    return fields


def _readiness_reasons(report: dict[str, Any], probe: HealthProbe) -> list[str]:
    """
    Return why an initialized adapter is not ready, from its report.
    """
    reasons: list[str] = []
    if report["circuit_breaker_state"] in (
        CircuitState.OPEN.value,
        CircuitState.FORCED_OPEN.value,
    ):
        reasons.append("circuit_breaker_open")
    if report["thread_pool_saturated"]:
        reasons.append("thread_pool_saturated")
    if not probe.server_reachable:
        if probe.probed:
            reasons.append("server_unreachable")
    elif probe.server_initialized is False:
        reasons.append("server_not_initialized")
    elif probe.sealed:
        reasons.append("server_sealed")
    elif probe.role not in SERVING_ROLES:
        reasons.append(f"server_{probe.role}")
    elif probe.token_valid is False:
        reasons.append("token_invalid")
    elif probe.token_checked and probe.token_valid is None and probe.error:
        reasons.append("token_not_checked")
    return reasons
