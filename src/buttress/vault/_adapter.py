"""
`VaultAdapter`: KV version 2 operations on Vault or OpenBao through a
`buttress.Guard`.

Every operation runs its hvac call in a worker thread of a
`BoundedExecutor`, behind a circuit breaker and a retry policy, within
``timeout_seconds``. A `buttress.clients.ClientAdapter` subclass owns
those parts and gives each worker thread its own hvac client. The worker
thread translates every failure into a `VaultAdapterError`, and
`VaultClassifier` reads the retry and breaker verdicts from it. An
operation that is not safe to replay runs with ``replay_safe=False``, so
the Guard does not retry it after an outcome that is unknown.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import hvac
from typing_extensions import Self

from .._backoff import Backoff
from .._breaker import CircuitBreaker
from .._breaker_store import CircuitState
from .._clock import SYSTEM_CLOCK, Clock
from .._errors import DeadlineExceeded, ExecutorSaturated
from .._events import DEFAULT_LISTENERS, Listener
from .._executor import BoundedExecutor
from .._guard import Guard, GuardStatistics
from .._retry import RetryPolicy
from ..clients import ClientAdapter
from . import _kv
from ._classify import Operation, VaultClassifier, translate
from ._config import VaultConfig
from ._errors import CasConflict
from ._health import HealthProbe, probe_server
from ._kv import KVSecret
from ._transport import build_client, close_client

__all__ = ["VaultAdapter"]

_log = logging.getLogger("buttress.vault")

T = TypeVar("T")

HANDLER_TYPE = "buttress.vault"
# Upper bound on the health probe, so a hung server cannot hold a health
# check for the whole operation timeout.
HEALTH_TIMEOUT_CAP = 5.0
# Maximum Retry-After wait honoured, in seconds. A longer requested wait is
# cut to this.
RETRY_AFTER_CAP = 60.0


class _VaultClients(ClientAdapter[hvac.Client]):
    """
    The guarded pipeline of one initialized `VaultAdapter`, with one hvac
    client per worker thread.
    """

    handler_type = HANDLER_TYPE

    def __init__(
        self, config: VaultConfig, *, clock: Clock, listeners: tuple[Listener, ...]
    ) -> None:
        self.config = config
        classifier = VaultClassifier()
        breaker = None
        if config.circuit_breaker_enabled:
            breaker = CircuitBreaker(
                failure_threshold=config.circuit_breaker_failure_threshold,
                reset_timeout=config.circuit_breaker_reset_timeout_seconds,
                classifier=classifier,
                name="vault",
                clock=clock,
                listeners=listeners,
            )
        settings = config.retry
        retry = RetryPolicy(
            attempts=settings.max_attempts,
            backoff=Backoff(
                initial=settings.initial_backoff_seconds,
                maximum=settings.max_backoff_seconds,
                multiplier=settings.exponential_base,
            ),
            # The classifier also supplies the Retry-After of a 429, which
            # the policy raises to at least the initial backoff.
            retry_on=classifier,
            hint_cap=RETRY_AFTER_CAP,
            clock=clock,
            listeners=listeners,
        )
        super().__init__(
            name="buttress-vault",
            max_workers=config.max_concurrent_operations,
            queue_multiplier=config.max_queue_size_multiplier,
            timeout=config.timeout_seconds,
            retry=retry,
            breaker=breaker,
            clock=clock,
            listeners=listeners,
        )

    def create_client(self) -> hvac.Client:
        return build_client(self.config)

    def close_client(self, client: hvac.Client) -> None:
        close_client(client)

    def classifier(self) -> VaultClassifier:
        return VaultClassifier()


def _as_config(value: object) -> VaultConfig:
    if isinstance(value, VaultConfig):
        return value
    if isinstance(value, Mapping):
        return VaultConfig.from_mapping(value)
    # The value is not echoed, because it may contain the token.
    msg = (
        f"VaultAdapter: config is invalid. Pass a VaultConfig or a mapping of "
        f"its settings, such as {{'url': ..., 'token': ...}} (got "
        f"{type(value).__name__})."
    )
    raise TypeError(msg)


def _check_text(method: str, name: str, value: object, *, allow_empty: bool) -> str:
    """
    Return *value* without leading and trailing slashes, after checking it
    is a str that is non-empty unless *allow_empty*.
    """
    if not isinstance(value, str):
        msg = f"{method}: {name} must be a str (got {type(value).__name__})."
        raise TypeError(msg)
    cleaned = value.strip("/")
    if not cleaned and not allow_empty:
        example = "'app/db'" if name == "path" else "'secret'"
        msg = f"{method}: {name}={value!r} is empty. Pass one such as {example}."
        raise ValueError(msg)
    return cleaned


def _check_optional_int(
    method: str, name: str, value: object, low: int, fix: str
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{method}: {name}={value!r} is invalid. It must be None or an integer (got {type(value).__name__})."
        raise TypeError(msg)
    if value < low:
        msg = f"{method}: {name}={value!r} is out of range. It must be at least {low}, {fix}."
        raise ValueError(msg)


class _CasWrite:
    """
    A check-and-set write that recognizes its own earlier success.

    When an attempt's outcome is unknown (say, the response was lost) the
    write may have been applied, and the retry then fails with a
    check-and-set conflict. In that case the secret is read back. If its
    latest version is ``cas + 1`` and contains this data, the earlier
    attempt succeeded and that version is returned.
    """

    def __init__(
        self, op: Operation, path: str, data: Mapping[str, Any], mount: str, cas: int
    ) -> None:
        self.op = op
        self.path = path
        self.data = data
        self.mount = mount
        self.cas = cas
        # An attempt whose outcome was unknown sets it, and the next attempt
        # reads it. The retry policy starts that attempt only after this one
        # ended, so no lock is needed.
        self.maybe_applied = False

    def __call__(self, client: hvac.Client) -> int:
        try:
            return _kv.write_secret(client, self.path, self.data, self.mount, self.cas)
        except Exception as exc:
            error = translate(exc, self.op)
            if error is None:
                raise
        if isinstance(error, CasConflict) and self.maybe_applied:
            expected = self.cas + 1
            if _kv.wrote_version(client, self.path, self.data, self.mount, expected):
                return expected
        if error.outcome == "unknown":
            self.maybe_applied = True
        raise error


def _run_translated(
    op: Operation, work: Callable[[hvac.Client], T], client: hvac.Client
) -> T:
    """
    Run *work* with this worker thread's *client*, translating failures.

    The translated error is raised outside the ``except`` block, so it does
    not carry the original exception, whose text contains the request URL.
    """
    try:
        return work(client)
    except Exception as exc:
        error = translate(exc, op)
        if error is None:
            raise
    raise error


class VaultAdapter:
    """
    Read, write, list and delete KV version 2 secrets in Vault or OpenBao,
    with retries, a circuit breaker, a bounded thread pool and a deadline.

    Args:
        config: A `VaultConfig`, or a mapping accepted by
            `VaultConfig.from_mapping`. Without one, pass it to `initialize`.
        listeners: Receivers of retry, breaker and executor events; the
            default logs them to the ``buttress`` loggers.
        clock: Time source for the deadline, backoff sleeps and the
            breaker's open duration; `buttress.testing.FakeClock` in tests.

    Use it as ``async with VaultAdapter(config) as adapter:``, or call
    `initialize` and `aclose` yourself. Every method is safe to call from
    many tasks at once, on asyncio or trio.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        config: VaultConfig | Mapping[str, Any] | None = None,
        *,
        listeners: Sequence[Listener] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._config = None if config is None else _as_config(config)
        self._listeners = DEFAULT_LISTENERS if listeners is None else tuple(listeners)
        self._clock: Clock = SYSTEM_CLOCK if clock is None else clock
        self._runtime: _VaultClients | None = None
        self._closed = False

    def __repr__(self) -> str:
        url = self._config.url if self._config is not None else None
        if self._closed:
            state = "closed"
        elif self._runtime is not None:
            state = "initialized"
        else:
            state = "not initialized"
        return f"<VaultAdapter url={url!r} {state}>"

    # -- lifecycle ----------------------------------------------------------

    async def initialize(
        self, config: VaultConfig | Mapping[str, Any] | None = None
    ) -> None:
        """
        Build the thread pool, breaker, retry policy and Guard.

        Args:
            config: The configuration, unless the constructor had one.

        Raises:
            RuntimeError: When the adapter is closed, has no configuration,
                or was initialized with a different one.
        """
        if self._closed:
            raise RuntimeError("VaultAdapter is closed. Create a new adapter.")
        new_config = None if config is None else _as_config(config)
        if self._runtime is not None:
            if new_config is None or new_config == self._runtime.config:
                return
            msg = (
                "VaultAdapter is already initialized with another config. "
                "Create a new adapter for it."
            )
            raise RuntimeError(msg)
        if new_config is None:
            new_config = self._config
        if new_config is None:
            msg = (
                "VaultAdapter has no config. Pass one to the constructor or to "
                "initialize()."
            )
            raise RuntimeError(msg)
        self._config = new_config
        self._runtime = _VaultClients(
            new_config, clock=self._clock, listeners=self._listeners
        )
        _log.debug("vault adapter initialized for %s", new_config.url)

    async def aclose(self) -> None:
        """
        Shut the thread pool down and wait for running requests to end.

        Queued operations fail with `buttress.ExecutorClosed`. The wait is
        bounded by ``timeout_seconds``, which also bounds every request's
        socket timeout. Calling it again does nothing.
        """
        runtime = self._runtime
        self._closed = True
        if runtime is None:
            return
        await runtime.aclose(timeout=runtime.config.timeout_seconds)
        threads = runtime.executor.statistics().threads
        if threads:
            _log.warning(
                "vault adapter closed while %d worker thread(s) were still running",
                threads,
            )

    async def __aenter__(self) -> Self:
        if self._config is not None and self._runtime is None:
            await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _require_runtime(self, *, allow_closed: bool = False) -> _VaultClients:
        """
        Return the parts built by `initialize`, which stay readable after
        `aclose` only with *allow_closed*.
        """
        if self._closed and not allow_closed:
            raise RuntimeError("VaultAdapter is closed. Create a new adapter.")
        if self._runtime is None:
            msg = (
                "VaultAdapter is not initialized. Call 'await "
                "adapter.initialize(config)' first, or use 'async with "
                "VaultAdapter(config) as adapter'."
            )
            raise RuntimeError(msg)
        return self._runtime

    # -- parts ----------------------------------------------------------------

    @property
    def config(self) -> VaultConfig:
        """
        The configuration in use.

        Raises:
            RuntimeError: When no configuration was given yet.
        """
        if self._config is None:
            msg = "VaultAdapter has no config yet. Pass one to initialize()."
            raise RuntimeError(msg)
        return self._config

    @property
    def guard(self) -> Guard:
        """
        The Guard every operation runs through.
        """
        return self._require_runtime(allow_closed=True).guard

    @property
    def breaker(self) -> CircuitBreaker | None:
        """
        The circuit breaker, or None when ``circuit_breaker_enabled`` is
        False.
        """
        return self._require_runtime(allow_closed=True).guard.breaker

    @property
    def executor(self) -> BoundedExecutor:
        """
        The thread pool that runs the hvac calls.
        """
        return self._require_runtime(allow_closed=True).executor

    def statistics(self) -> GuardStatistics:
        """
        Return the statistics of the breaker and the thread pool.
        """
        return self._require_runtime(allow_closed=True).guard.statistics()

    # -- KV version 2 ---------------------------------------------------------

    def _operation(
        self, name: str, mount: str, path: str, *, replay_safe: bool
    ) -> Operation:
        # A closed or uninitialized adapter raises RuntimeError here, before
        # anything is sent.
        runtime = self._require_runtime()
        return Operation(name, mount, path, replay_safe, runtime.config.url)

    async def _submit(self, op: Operation, work: Callable[[hvac.Client], T]) -> T:
        runtime = self._require_runtime()

        def attempt(client: hvac.Client) -> T:
            return _run_translated(op, work, client)

        # Retry events and logs name the operation.
        attempt.__qualname__ = f"VaultAdapter.{op.name}"
        return await runtime.run(attempt, replay_safe=op.replay_safe)

    async def read_secret(
        self, path: str, *, mount_point: str = "secret", version: int | None = None
    ) -> KVSecret:
        """
        Read the latest version of a KV version 2 secret, or *version*.

        Raises:
            NotFound: When no secret exists at *path*, or not that version.
            SecretDeleted: When the version is deleted or destroyed.
            VaultAdapterError: For any other failure, after retries.
        """
        method = "read_secret"
        path = _check_text(method, "path", path, allow_empty=False)
        mount = _check_text(method, "mount_point", mount_point, allow_empty=False)
        _check_optional_int(
            method, "version", version, 1, "or None for the latest version"
        )
        op = self._operation(method, mount, path, replay_safe=True)
        return await self._submit(
            op,
            functools.partial(_kv.read_secret, path=path, mount=mount, version=version),
        )

    async def write_secret(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        mount_point: str = "secret",
        cas: int | None = None,
    ) -> int:
        """
        Write *data* as a new version of a KV version 2 secret.

        Without *cas*, the write is not safe to replay (each replay adds a
        version and could overwrite a concurrent writer), so it is retried
        only when the request never ran. With *cas*, it is retried like a
        read, and a retry that conflicts with its own earlier success is
        recognized as that success.

        Args:
            cas: Check-and-set: the write succeeds only if the secret's
                current version is this one; 0 means the secret must not
                exist yet.

        Returns:
            The new version.

        Raises:
            CasConflict: When *cas* does not match the current version.
            VaultAdapterError: For any other failure, after retries.
        """
        method = "write_secret"
        path = _check_text(method, "path", path, allow_empty=False)
        mount = _check_text(method, "mount_point", mount_point, allow_empty=False)
        mapping: object = data
        if not isinstance(mapping, Mapping):
            msg = f"{method}: data must be a mapping of str keys (got {type(mapping).__name__})."
            raise TypeError(msg)
        _check_optional_int(method, "cas", cas, 0, "or None to write unconditionally")
        data = dict(data)
        if cas is None:
            op = self._operation(method, mount, path, replay_safe=False)
            work: Callable[[hvac.Client], int] = functools.partial(
                _kv.write_secret, path=path, data=data, mount=mount, cas=None
            )
        else:
            op = self._operation(method, mount, path, replay_safe=True)
            work = _CasWrite(op, path, data, mount, cas)
        return await self._submit(op, work)

    async def list_secrets(
        self, path: str = "", *, mount_point: str = "secret"
    ) -> list[str]:
        """
        List the keys directly below *path*; a folder's key ends with ``/``.

        Returns:
            The keys, or an empty list when nothing exists below *path*.
        """
        method = "list_secrets"
        path = _check_text(method, "path", path, allow_empty=True)
        mount = _check_text(method, "mount_point", mount_point, allow_empty=False)
        op = self._operation(method, mount, path, replay_safe=True)
        return await self._submit(
            op, functools.partial(_kv.list_keys, path=path, mount=mount)
        )

    async def delete_secret(self, path: str, *, mount_point: str = "secret") -> None:
        """
        Soft-delete the latest version of a KV version 2 secret.

        It is not safe to replay, because it deletes whatever version is the
        latest when it runs, so it is retried only when the request never
        ran. Deleting a secret that does not exist succeeds.
        """
        method = "delete_secret"
        path = _check_text(method, "path", path, allow_empty=False)
        mount = _check_text(method, "mount_point", mount_point, allow_empty=False)
        op = self._operation(method, mount, path, replay_safe=False)
        await self._submit(
            op, functools.partial(_kv.delete_latest, path=path, mount=mount)
        )

    # -- health -----------------------------------------------------------------

    async def health_check(self) -> dict[str, Any]:
        """
        Probe the server and report on it and on every resilience layer.

        The probe is ``GET /v1/sys/health`` and a lookup of the token,
        within ``min(timeout_seconds, 5)`` seconds. It bypasses the retry
        policy and the circuit breaker, so it reports while the breaker is
        open, and it runs in the thread pool only if the pool has room.
        It reports a server failure or a full pool in the result instead of
        raising it.

        Returns:
            A dict with these keys:

            - ``healthy``: True when the server is reachable, initialized
              and unsealed, the token is valid, the breaker is not open and
              the thread pool is not full.
            - ``reasons``: Why it is not healthy, such as
              ``"server_sealed"`` or ``"circuit_breaker_open"``.
            - ``handler_type``: ``"buttress.vault"``.
            - ``initialized``: Whether the adapter is initialized (and not
              closed). When False, the server is not probed.
            - ``url``, ``timeout_seconds``: From the config.
            - ``server_reachable``, ``server_role``, ``server_status``,
              ``server_initialized``, ``sealed``, ``standby``, ``version``,
              ``cluster_name``, ``latency_seconds``: From sys/health, None
              when unknown.
            - ``token_valid``: True, False when the server rejected the
              token, or None when it was not checked.
            - ``token_ttl_remaining_seconds``: The token's remaining TTL,
              or None when the token never expires (a root token's TTL is
              0) or the lookup did not succeed.
            - ``circuit_breaker_enabled``, ``circuit_breaker_state``
              (``"closed"``, ``"open"``, ``"half_open"``, ``"forced_open"``,
              ``"forced_closed"`` or ``"disabled"``),
              ``circuit_breaker_failure_count`` (consecutive failures),
              ``circuit_breaker_open_count``.
            - ``thread_pool_active_workers``, ``thread_pool_max_workers``,
              ``thread_pool_queue_depth``, ``thread_pool_queue_capacity``,
              ``thread_pool_rejected``, ``thread_pool_saturated``.
            - ``error``: The probe's error message, or None.
        """
        runtime = None if self._closed else self._runtime
        if runtime is None:
            return self._report(None, HealthProbe(), saturated=False)
        config = runtime.config
        probe_timeout = min(config.timeout_seconds, HEALTH_TIMEOUT_CAP)
        op = self._operation("health_check", "sys", "", replay_safe=True)
        probe = functools.partial(probe_server, config, op, probe_timeout)

        saturated = False
        try:
            result = await runtime.executor.run(probe, timeout=probe_timeout)
        except ExecutorSaturated as exc:
            saturated = exc.reason != "closed"
            result = HealthProbe(
                error=f"the server was not probed: {exc}", probed=False
            )
        except DeadlineExceeded:
            result = HealthProbe(
                error=f"the health probe did not finish within {probe_timeout:g} s"
            )
        if result.error is not None:
            _log.debug("vault health probe: %s", result.error)
        return self._report(runtime, result, saturated=saturated)

    def _report(
        self, runtime: _VaultClients | None, probe: HealthProbe, *, saturated: bool
    ) -> dict[str, Any]:
        config = self._config
        report: dict[str, Any] = {
            "healthy": False,
            "reasons": [],
            "handler_type": HANDLER_TYPE,
            "initialized": runtime is not None,
            "url": None if config is None else config.url,
            "timeout_seconds": None if config is None else config.timeout_seconds,
            **_server_fields(probe),
            **_breaker_fields(None if runtime is None else runtime.guard.breaker),
            **_pool_fields(None if runtime is None else runtime.executor, saturated),
            "error": probe.error,
        }
        if runtime is None:
            closed = "adapter_closed" if self._closed else "adapter_not_initialized"
            report["reasons"] = [closed]
            return report
        report["reasons"] = _reasons(report, probe)
        report["healthy"] = not report["reasons"]
        return report


def _server_fields(probe: HealthProbe) -> dict[str, Any]:
    return {
        "server_reachable": probe.server_reachable,
        "server_role": probe.role,
        "server_status": probe.status,
        "server_initialized": probe.server_initialized,
        "sealed": probe.sealed,
        "standby": probe.standby,
        "version": probe.version,
        "cluster_name": probe.cluster_name,
        "latency_seconds": probe.latency_seconds,
        "token_valid": probe.token_valid,
        # A TTL of 0 means the token never expires, as for a root token.
        "token_ttl_remaining_seconds": probe.token_ttl_seconds or None,
    }


def _breaker_fields(breaker: CircuitBreaker | None) -> dict[str, Any]:
    if breaker is None:
        return {
            "circuit_breaker_enabled": False,
            "circuit_breaker_state": "disabled",
            "circuit_breaker_failure_count": 0,
            "circuit_breaker_open_count": 0,
        }
    stats = breaker.statistics()
    return {
        "circuit_breaker_enabled": True,
        "circuit_breaker_state": stats.state.value,
        "circuit_breaker_failure_count": stats.consecutive_failures,
        "circuit_breaker_open_count": stats.open_count,
    }


def _pool_fields(
    executor: BoundedExecutor | None, rejected_probe: bool
) -> dict[str, Any]:
    if executor is None:
        return dict.fromkeys(
            (
                "thread_pool_active_workers",
                "thread_pool_max_workers",
                "thread_pool_queue_depth",
                "thread_pool_queue_capacity",
                "thread_pool_rejected",
                "thread_pool_saturated",
            )
        )
    pool = executor.statistics()
    full = pool.active >= pool.max_workers and pool.queued >= pool.queue_capacity
    return {
        "thread_pool_active_workers": pool.active,
        "thread_pool_max_workers": pool.max_workers,
        "thread_pool_queue_depth": pool.queued,
        "thread_pool_queue_capacity": pool.queue_capacity,
        "thread_pool_rejected": pool.rejected,
        "thread_pool_saturated": rejected_probe or full,
    }


def _reasons(report: dict[str, Any], probe: HealthProbe) -> list[str]:
    """
    Return why an initialized adapter is not healthy, from its report.
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
    elif probe.token_valid is False:
        reasons.append("token_invalid")
    elif probe.token_valid is None:
        reasons.append("token_not_checked")
    return reasons
