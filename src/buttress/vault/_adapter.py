"""
`VaultAdapter`: secrets operations on Vault or OpenBao through a
`buttress.Guard`.

Every operation runs its requests in a worker thread of a
`BoundedExecutor`, behind a circuit breaker and a retry policy, within
``timeout_seconds``. `buttress.vault._runtime` builds those parts and
gives each worker thread its own hvac client. The worker thread
translates every failure into a `VaultAdapterError`, and
`VaultClassifier` reads the retry and breaker verdicts from it. Each
operation declares a replay class, so the Guard does not retry an
operation that is not safe to replay after an outcome that is unknown.

The operations live in groups, one per secrets engine (``adapter.kv``,
``adapter.transit``, ...), defined in `buttress.vault._operations`.
`SyncVaultAdapter` offers the same operations to threaded programs.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import Self

from .._breaker import CircuitBreaker
from .._clock import SYSTEM_CLOCK, Clock
from .._events import DEFAULT_LISTENERS, Listener
from .._executor import BoundedExecutor
from .._guard import Guard, GuardStatistics
from . import _generic, _kv
from ._classify import Operation, Replay
from ._config import VaultConfig
from ._generic import GenericResponse
from ._health import check_health
from ._kv import KVSecret
from ._operations import (
    DatabaseOperations,
    KVv1Operations,
    KVv2Operations,
    LeaseOperations,
    PKIOperations,
    TokenOperations,
    TransitOperations,
)
from ._ratelimit import TokenBucket
from ._runtime import Call, as_config, config_from_environment, run_call
from ._runtime import VaultClients as _VaultClients

if TYPE_CHECKING:
    from ._sync import SyncVaultAdapter

__all__ = ["VaultAdapter"]

_log = logging.getLogger("buttress.vault")

T = TypeVar("T")

# Upper bound on the health probe, so a hung server cannot hold a health
# check for the whole operation timeout.
HEALTH_TIMEOUT_CAP = 5.0


class VaultAdapter:
    """
    Read and write secrets in Vault or OpenBao, with retries, a circuit
    breaker, a bounded thread pool and a deadline.

    Args:
        config: A `VaultConfig`, or a mapping accepted by
            `VaultConfig.from_mapping`. Without one, the constructor reads
            the configuration with `VaultConfig.from_env` when ``BAO_ADDR``,
            ``VAULT_ADDR`` or an agent address is set. Otherwise, pass the
            config to `initialize`.
        listeners: Receivers of retry, breaker and executor events; the
            default logs them to the ``buttress`` loggers.
        clock: Time source for the deadline, backoff sleeps and the
            breaker's open duration; `buttress.testing.FakeClock` in tests.

    Use it as ``async with VaultAdapter(config) as adapter:``, or call
    `initialize` and `aclose` yourself. Every method is safe to call from
    many tasks at once, on asyncio or trio.

    Settings apply in this order: the config passed to the constructor or
    to `initialize`, then ``BAO_*`` variables (a set but empty one still
    wins), then ``VAULT_*`` variables, then the defaults. The environment
    is read once, when the adapter is built, and the constructor raises
    ValueError when an address is set but the token or another variable
    is missing or invalid.

    The operations are grouped by secrets engine: `kv` (KV version 2),
    `kv1`, `transit`, `database`, `pki`, `token` (the adapter's own token)
    and `lease`. `read_secret`, `write_secret`, `list_secrets` and
    `delete_secret` are shortcuts for the common KV version 2 operations,
    and `read`, `write`, `list` and `delete` reach any other API path.
    `sync` offers every operation to plain threads.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        config: VaultConfig | Mapping[str, Any] | None = None,
        *,
        listeners: Sequence[Listener] | None = None,
        clock: Clock | None = None,
    ) -> None:
        # Why the environment gave no config, for the error of initialize().
        self._env_note = ""
        if config is None:
            self._config, self._env_note = config_from_environment()
        else:
            self._config = as_config(config, "VaultAdapter")
        self._listeners = DEFAULT_LISTENERS if listeners is None else tuple(listeners)
        self._clock: Clock = SYSTEM_CLOCK if clock is None else clock
        self._runtime: _VaultClients | None = None
        self._closed = False
        self._sync: SyncVaultAdapter | None = None
        self._kv = KVv2Operations(self._run_call)
        self._kv1 = KVv1Operations(self._run_call)
        self._transit = TransitOperations(self._run_call)
        self._database = DatabaseOperations(self._run_call)
        self._pki = PKIOperations(self._run_call)
        self._token = TokenOperations(self._run_call)
        self._lease = LeaseOperations(self._run_call)

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
            config: The configuration. Without one, the config given to the
                constructor or read from the environment applies.

        Raises:
            RuntimeError: When the adapter is closed, has no configuration,
                or was initialized with a different one.
        """
        self._start(config, owner="VaultAdapter")

    def _start(
        self, config: VaultConfig | Mapping[str, Any] | None, *, owner: str
    ) -> None:
        # Building the parts never waits, so the async and the sync adapter
        # share this.
        if self._closed:
            raise RuntimeError(f"{owner} is closed. Create a new adapter.")
        new_config = None if config is None else as_config(config, owner)
        if self._runtime is not None:
            if new_config is None or new_config == self._runtime.config:
                return
            msg = (
                f"{owner} is already initialized with another config. "
                f"Create a new adapter for it."
            )
            raise RuntimeError(msg)
        if new_config is None:
            new_config = self._config
        if new_config is None:
            msg = (
                f"{owner} has no config. Set BAO_ADDR or VAULT_ADDR and "
                f"BAO_TOKEN or VAULT_TOKEN before building the adapter, or "
                f"pass a config to the constructor or to initialize()."
            )
            if self._env_note:
                msg = f"{msg} {self._env_note}"
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
        self._warn_running_threads(runtime)

    def _close_sync(self, *, wait: bool = True) -> None:
        # The blocking twin of aclose, for SyncVaultAdapter. Without *wait*,
        # running requests are left to end in their daemon threads.
        runtime = self._runtime
        self._closed = True
        if runtime is None:
            return
        runtime.close(timeout=runtime.config.timeout_seconds if wait else 0.0)
        self._warn_running_threads(runtime)

    @staticmethod
    def _warn_running_threads(runtime: _VaultClients) -> None:
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
                "VaultAdapter(config) as adapter', or set BAO_ADDR or "
                "VAULT_ADDR before building the adapter."
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
            msg = (
                "VaultAdapter has no config yet. Pass one to initialize(), or "
                "set BAO_ADDR or VAULT_ADDR before building the adapter."
            )
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

    @property
    def rate_limiter(self) -> TokenBucket | None:
        """
        The client-side rate limiter built from ``config.rate_limit``, or
        None when the config sets no limit. Every attempt takes a token
        from it before it starts.
        """
        return self._require_runtime(allow_closed=True).rate_limiter

    def statistics(self) -> GuardStatistics:
        """
        Return the statistics of the breaker and the thread pool.
        """
        return self._require_runtime(allow_closed=True).guard.statistics()

    @property
    def sync(self) -> SyncVaultAdapter:
        """
        The same operations for plain threads, sharing this adapter's
        Guard, thread pool and breaker.

        Its methods block the calling thread, so call them from threads
        other than the event loop's. This adapter's `initialize` and
        `aclose` control its life.
        """
        if self._sync is None:
            from ._sync import SyncVaultAdapter

            self._sync = SyncVaultAdapter._borrow(self)
        return self._sync

    # -- operations -------------------------------------------------------------

    @property
    def kv(self) -> KVv2Operations:
        """
        Operations on KV version 2 secrets.
        """
        return self._kv

    @property
    def kv1(self) -> KVv1Operations:
        """
        Operations on KV version 1 secrets.
        """
        return self._kv1

    @property
    def transit(self) -> TransitOperations:
        """
        Encryption and decryption with the transit secrets engine.
        """
        return self._transit

    @property
    def database(self) -> DatabaseOperations:
        """
        Credentials from the database secrets engine.
        """
        return self._database

    @property
    def pki(self) -> PKIOperations:
        """
        Certificates from the PKI secrets engine.
        """
        return self._pki

    @property
    def token(self) -> TokenOperations:
        """
        Lookup, renewal and revocation of the adapter's own token.
        """
        return self._token

    @property
    def lease(self) -> LeaseOperations:
        """
        Lookup, renewal and revocation of leases.
        """
        return self._lease

    def _operation(
        self, name: str, mount: str, path: str, *, replay_safe: bool
    ) -> Operation:
        # A closed or uninitialized adapter raises RuntimeError here, before
        # anything is sent.
        runtime = self._require_runtime()
        return Operation(name, mount, path, replay_safe, runtime.config.url)

    async def _run_call(self, call: Call[T]) -> T:
        return await run_call(self._require_runtime(), call)

    # -- KV version 2 shortcuts -------------------------------------------------

    async def read_secret(
        self,
        path: str,
        *,
        mount_point: str = "secret",
        version: int | None = None,
        namespace: str | None = None,
    ) -> KVSecret:
        """
        Read the latest version of a KV version 2 secret, or *version*.

        Raises:
            NotFound: When no secret exists at *path*, or not that version.
            SecretDeleted: When the version is deleted.
            VersionDestroyed: When the version is destroyed.
            VaultAdapterError: For any other failure, after retries.
        """
        call = _kv.read_call("read_secret", path, mount_point, version, namespace)
        return await self._run_call(call)

    async def write_secret(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        mount_point: str = "secret",
        cas: int | None = None,
        namespace: str | None = None,
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
            The new version. `kv.write` returns its full state.

        Raises:
            CasConflict: When *cas* does not match the current version.
            VaultAdapterError: For any other failure, after retries.
        """
        call = _kv.write_call("write_secret", path, data, mount_point, cas, namespace)
        written = await self._run_call(call)
        return written.version

    async def list_secrets(
        self,
        path: str = "",
        *,
        mount_point: str = "secret",
        namespace: str | None = None,
    ) -> builtins.list[str]:
        """
        List the keys directly below *path*; a folder's key ends with ``/``.

        Returns:
            The keys, or an empty list when nothing exists below *path*.
        """
        call = _kv.list_call("list_secrets", path, mount_point, namespace)
        return await self._run_call(call)

    async def delete_secret(
        self, path: str, *, mount_point: str = "secret", namespace: str | None = None
    ) -> None:
        """
        Soft-delete the latest version of a KV version 2 secret.

        It is not safe to replay, because it deletes whatever version is the
        latest when it runs, so it is retried only when the request never
        ran. Deleting a secret that does not exist succeeds.
        """
        call = _kv.delete_latest_call("delete_secret", path, mount_point, namespace)
        await self._run_call(call)

    # -- any path -----------------------------------------------------------

    async def read(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        replay: Replay = "safe",
        namespace: str | None = None,
    ) -> GenericResponse:
        """
        Send ``GET /v1/<path>`` and return the response body.

        Args:
            path: The API path, such as ``"sys/mounts"`` or
                ``"secret/data/app"``.
            params: Query parameters.
            replay: The replay class of this request: ``"safe"`` for a
                read that changes nothing.

        Raises:
            NotFound: When the server returns 404.
        """
        call = _generic.read_call("read", path, params, replay, namespace)
        return await self._run_call(call)

    async def write(
        self,
        path: str,
        data: Mapping[str, Any] | None = None,
        *,
        replay: Replay,
        namespace: str | None = None,
    ) -> GenericResponse:
        """
        Send ``POST /v1/<path>`` with *data* as the JSON body, and return
        the response body (empty for HTTP 204).

        Args:
            replay: What a second run of this request does, which decides
                the retries after an unknown outcome: ``"idempotent"`` when
                it leaves the same state, ``"non_idempotent"`` when it
                creates something each time, ``"never_retry"`` for no
                retries at all. The caller must declare it, because the adapter
                cannot know.
        """
        call = _generic.write_call("write", path, data, replay, namespace)
        return await self._run_call(call)

    async def list(
        self,
        path: str,
        *,
        replay: Replay = "safe",
        namespace: str | None = None,
    ) -> builtins.list[str]:
        """
        Send ``LIST /v1/<path>`` and return the keys; an empty or missing
        folder gives an empty list.
        """
        call = _generic.list_call("list", path, replay, namespace)
        return await self._run_call(call)

    async def delete(
        self,
        path: str,
        *,
        replay: Replay,
        namespace: str | None = None,
    ) -> GenericResponse:
        """
        Send ``DELETE /v1/<path>`` and return the response body.

        Args:
            replay: The replay class of this request, as for `write`.
        """
        call = _generic.delete_call("delete", path, replay, namespace)
        return await self._run_call(call)

    # -- health -----------------------------------------------------------------

    async def health_check(self, *, deep: bool = False) -> dict[str, Any]:
        """
        Probe the server and report on it and on every resilience layer.

        The probe is ``GET /v1/sys/health`` without a token, within
        ``min(timeout_seconds, 5)`` seconds, so it spends no use of a token
        limited to a number of uses. It bypasses the retry policy and the
        circuit breaker, so it reports while the breaker is open, and it
        runs in the thread pool only if the pool has room. It reports a
        server failure or a full pool in the result instead of raising it.

        Point a liveness probe at ``live`` and a readiness probe at
        ``ready``: a process whose Vault is down should stop taking
        traffic, not be restarted.

        Args:
            deep: Also look the token up (``auth/token/lookup-self``). A
                token limited to a number of uses spends one on the first
                deep check, and later deep checks skip the lookup.

        Returns:
            A dict with these keys:

            - ``live``: The adapter itself works: it is initialized and not
              closed, and its workers are not stalled (all busy, none
              finishing, for more than twice ``timeout_seconds``).
              ``liveness_reasons`` lists why not: ``"adapter_closed"``,
              ``"adapter_not_initialized"``, ``"executor_closed"``,
              ``"thread_pool_stalled"``.
            - ``ready`` (and ``healthy``, the same value): the adapter is
              live, the breaker is not open, the pool is not full, and the
              server is reachable, initialized, unsealed, in a role that
              serves requests, and has not rejected the token.
            - ``reasons``: Why it is not ready, such as
              ``"server_sealed"``, ``"circuit_breaker_open"``,
              ``"token_invalid"`` (deep checks only) or ``"server_removed"``.
            - ``handler_type`` (``"buttress.vault"``), ``initialized``,
              ``deep``, ``url``, ``timeout_seconds``, ``transport``.
            - From sys/health, None when unknown: ``server_reachable``,
              ``server_role`` (``"active"``, ``"standby"``,
              ``"performance_standby"``, ``"dr_secondary"``,
              ``"standby_disconnected"``, ``"uninitialized"``,
              ``"sealed"``, ``"removed"`` or ``"unreachable"``),
              ``server_status``, ``server_initialized``, ``sealed``,
              ``standby``, ``performance_standby``,
              ``replication_performance_mode``, ``replication_dr_mode``,
              ``version``, ``cluster_name``, ``cluster_id``,
              ``server_time_utc``, ``server_extra`` (unknown body fields),
              ``latency_seconds``.
            - ``clock_skew_seconds``: The server's clock minus the local
              one, good to about a second, because token and lease expiry
              are computed on the local clock.
            - ``token_checked``, ``token_valid`` (None unless checked),
              ``token_ttl_remaining_seconds`` (None for a token that never
              expires), ``token_num_uses``, ``token_renewable``,
              ``token_type``.
            - ``circuit_breaker_enabled``, ``circuit_breaker_state``
              (``"closed"``, ``"open"``, ``"half_open"``, ``"forced_open"``,
              ``"forced_closed"`` or ``"disabled"``),
              ``circuit_breaker_failure_count`` (consecutive failures),
              ``circuit_breaker_open_count``,
              ``circuit_breaker_seconds_since_change``,
              ``circuit_breaker_seconds_until_probe``.
            - ``thread_pool_active_workers``, ``thread_pool_max_workers``,
              ``thread_pool_queue_depth``, ``thread_pool_queue_capacity``,
              ``thread_pool_rejected``, ``thread_pool_saturated``,
              ``thread_pool_abandoned``, ``thread_pool_closed``,
              ``thread_pool_stalled_seconds``.
            - ``throttled_for_seconds``: The wait the shared throttle
              imposes after a 429 with Retry-After.
            - ``last_retry_after_seconds``, ``seconds_since_last_429``: The
              Retry-After of the last HTTP 429 (None when it had none) and
              how long ago it arrived; both None before the first 429.
            - ``rate_limit`` (``"rate:burst"`` or None),
              ``rate_limit_available``, ``rate_limit_delayed``,
              ``rate_limit_rejected``: The client-side rate limiter's
              state, None where the adapter has none.
            - ``error``: The probe's error message, or None.
        """
        runtime = None if self._closed else self._runtime
        report = await check_health(
            self._config,
            guard=None if runtime is None else runtime.guard,
            closed=self._closed,
            clock=self._clock,
            deep=deep,
            rate_limiter=None if runtime is None else runtime.rate_limiter,
        )
        if report["error"] is not None:
            _log.debug("vault health probe: %s", report["error"])
        return report
