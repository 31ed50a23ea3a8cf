"""
The machinery that every Vault operation runs through, shared by
`VaultAdapter` and `SyncVaultAdapter`.

`VaultClients` is the guarded pipeline of one adapter: a bounded thread
pool with one hvac client per worker thread, a circuit breaker, a retry
policy and a deadline. It also has the shared throttle that a 429 response
sets, and an optional client-side rate limiter. An operation is described
by a `Call`: its name, mount, path, replay class, namespace, and the
blocking function that sends its requests. `run_call` runs a call from
async code and `call_sync` from a plain thread; both go through the same
Guard.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs
import hvac

from .._backoff import Backoff
from .._breaker import CircuitBreaker
from .._clock import Clock, deadline_scope
from .._errors import Rejected
from .._events import Listener
from .._guard import Guard
from .._retry import RetryPolicy
from ..clients import ClientAdapter
from ._classify import Operation, Replay, VaultClassifier, redact_path
from ._config import VaultConfig
from ._env import UPSTREAM_PREFIXES
from ._errors import RateLimited, VaultAdapterError
from ._ratelimit import TokenBucket
from ._request import Exchange, run_attempt
from ._transport import build_client, close_client

__all__ = [
    "HANDLER_TYPE",
    "Call",
    "VaultClients",
    "as_config",
    "call_sync",
    "config_from_environment",
    "run_call",
]

T = TypeVar("T")

HANDLER_TYPE = "buttress.vault"
# Maximum Retry-After wait honoured, in seconds. A longer requested wait is
# cut to this.
RETRY_AFTER_CAP = 60.0


class _VaultGuard(Guard):
    """
    The Guard of a Vault adapter, with two additions to every attempt.

    Before an attempt starts, it takes a token from the client-side rate
    limiter, if the adapter has one. The Guard has no public hook before an
    attempt, so this subclass wraps the Guard's own attempt step. A token
    taken there, rather than once per call before the Guard, is taken by
    every retry too. The wait also stays out of the worker thread, because
    the async attempt step runs on the event loop and the sync one in the
    calling thread.

    After an HTTP 429, the shared throttle makes every caller wait as long
    as the retry policy makes the failed call wait: the Retry-After
    seconds, raised to at least the policy's hint floor
    (``initial_backoff_seconds``) and cut to its hint cap. So a 429 without
    Retry-After (the OpenBao default) or with ``Retry-After: 0`` still
    makes every caller wait for the floor.
    """

    def __init__(self, *, rate_limiter: TokenBucket | None, **parts: Any) -> None:
        super().__init__(**parts)
        self.rate_limiter = rate_limiter
        # The last 429's Retry-After in seconds (None when it had none),
        # and the clock time it arrived, for the health report.
        self.last_retry_after: float | None = None
        self.last_rate_limited_at: float | None = None

    def _server_hint(self, exc: Exception) -> float | None:
        hinted = super()._server_hint(exc)
        retry = self.retry
        if not isinstance(exc, RateLimited):
            return hinted
        self.last_retry_after = exc.retry_after
        self.last_rate_limited_at = self.clock.monotonic()
        if retry is None:
            return hinted
        floor = retry.backoff.initial if retry.hint_floor is None else retry.hint_floor
        return min(max(hinted or 0.0, floor), retry.hint_cap)

    async def _attempt(self, call: Callable[[], T]) -> T:
        limiter = self.rate_limiter
        if limiter is None:
            return await super()._attempt(call)
        # Callers waiting for the throttle take their tokens when it ends,
        # so they start one token apart instead of all at once. The Guard's
        # own step checks the throttle again, in case a 429 extended it
        # during the token wait.
        await self._wait_throttle_async()
        await limiter.acquire()
        try:
            return await super()._attempt(call)
        except Rejected:
            # The breaker or the full thread pool rejected the attempt, so
            # no request was sent.
            limiter.refund()
            raise

    def _attempt_sync(self, call: Callable[[], T]) -> T:
        limiter = self.rate_limiter
        if limiter is None:
            return super()._attempt_sync(call)
        self._wait_throttle_sync()
        limiter.acquire_sync()
        try:
            return super()._attempt_sync(call)
        except Rejected:
            limiter.refund()
            raise


class VaultClients(ClientAdapter[hvac.Client]):
    """
    The guarded pipeline of one initialized adapter, with one hvac client
    per worker thread.

    Attributes:
        rate_limiter: The client-side rate limiter built from
            ``config.rate_limit``, or None when the config sets no limit.
    """

    handler_type = HANDLER_TYPE

    def __init__(
        self, config: VaultConfig, *, clock: Clock, listeners: tuple[Listener, ...]
    ) -> None:
        self.clock = clock
        self.config = config
        self.rate_limiter: TokenBucket | None = None
        if config.rate_limit is not None:
            self.rate_limiter = TokenBucket.from_settings(
                config.rate_limit, clock=clock
            )
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
            # After one 429, every caller of this adapter waits, instead of
            # each caller running into the rate limit itself.
            shared_throttle=True,
            clock=clock,
            listeners=listeners,
        )

    def _make_guard(self, **parts: Any) -> Guard:
        return _VaultGuard(rate_limiter=self.rate_limiter, **parts)

    def create_client(self) -> hvac.Client:
        return build_client(self.config)

    def close_client(self, client: hvac.Client) -> None:
        close_client(client)

    def classifier(self) -> VaultClassifier:
        return VaultClassifier()


def as_config(value: object, owner: str) -> VaultConfig:
    """
    Return *value* as a `VaultConfig`, building one from a mapping.
    """
    if isinstance(value, VaultConfig):
        return value
    if isinstance(value, Mapping):
        return VaultConfig.from_mapping(value)
    # The value is not echoed, because it may contain the token.
    msg = (
        f"{owner}: config is invalid. Pass a VaultConfig or a mapping of "
        f"its settings, such as {{'url': ..., 'token': ...}} (got "
        f"{type(value).__name__})."
    )
    raise TypeError(msg)


def config_from_environment(
    environ: Mapping[str, str] | None = None,
) -> tuple[VaultConfig | None, str]:
    """
    Read a `VaultConfig` with `VaultConfig.from_env` when the environment
    sets a server address, for an adapter built without a config.

    Returns:
        The config and ``""`` when an address is set. Otherwise None and
        a note for the error of a later `initialize` without a config. The
        note names each empty ``BAO_`` variable that hides a ``VAULT_``
        one, and is ``""`` when there is none.

    Raises:
        ValueError: When an address is set but another variable is
            missing or invalid, such as the token.
    """
    if environ is None:
        environ = os.environ
    hidden: list[str] = []
    for suffix in ("AGENT_ADDR", "ADDR"):
        names = [prefix + suffix for prefix in UPSTREAM_PREFIXES]
        # The first variable that is set wins, even when it is empty.
        chosen = next((name for name in names if name in environ), None)
        if chosen is None:
            continue
        if environ[chosen].strip():
            return VaultConfig.from_env(environ), ""
        hidden.extend(
            f"{chosen} is set but empty, so {name} is ignored."
            for name in names[names.index(chosen) + 1 :]
            if environ.get(name, "").strip()
        )
    return None, " ".join(hidden)


def _path_repr(path: str) -> str:
    return repr(redact_path(path))


@attrs.frozen
class Call(Generic[T]):
    """
    One operation, ready to run: what errors and the retry policy need to
    know about it, and the blocking function that sends its requests.

    Attributes:
        name: The operation's name in errors and logs, such as ``"kv.read"``.
        mount: The secrets engine mount, or the first segment of a generic
            path.
        path: The path below the mount; its repr is redacted.
        replay: The replay class, which decides the retries after an
            unknown outcome.
        work: Runs one attempt in a worker thread. The same object runs
            every attempt, so it may carry state from one to the next.
        namespace: The namespace for this call, ``""`` for the root
            namespace, or None for the configured one.
    """

    name: str
    mount: str
    path: str = attrs.field(repr=_path_repr)
    replay: Replay
    work: Callable[[Exchange], T] = attrs.field(repr=False)
    namespace: str | None = None

    def operation(self, server: str) -> Operation:
        """
        Return the `Operation` that errors of this call describe.
        """
        return Operation.create(
            self.name, self.mount, self.path, self.replay, server, self.namespace
        )


def _attempt(
    runtime: VaultClients, call: Call[T]
) -> tuple[Operation, Callable[[hvac.Client], T]]:
    op = call.operation(runtime.config.url)
    clock = runtime.clock
    attempt_timeout = runtime.config.retry.attempt_timeout_seconds
    # The retry policy starts an attempt only after the previous one ended,
    # so the count needs no lock.
    attempts = 0

    def attempt(client: hvac.Client) -> T:
        nonlocal attempts
        attempts += 1
        try:
            if attempt_timeout is None:
                return run_attempt(op, call.work, client)
            # The socket timeouts of this attempt's requests end with it, so
            # a hung request fails as VaultTimeout, which the classifier
            # retries when the operation is safe to replay.
            with deadline_scope(clock, clock.monotonic() + attempt_timeout):
                return run_attempt(op, call.work, client)
        except VaultAdapterError as error:
            error.attempts = attempts
            raise

    # Retry events and logs name the operation.
    attempt.__qualname__ = f"VaultAdapter.{call.name}"
    return op, attempt


async def run_call(runtime: VaultClients, call: Call[T]) -> T:
    """
    Run *call* through *runtime*'s Guard from async code.
    """
    op, attempt = _attempt(runtime, call)
    result: T = await runtime.run(attempt, replay_safe=op.replay_safe)
    return result


def call_sync(runtime: VaultClients, call: Call[T]) -> T:
    """
    Run *call* through *runtime*'s Guard from a plain thread, blocking it
    until the call ends.
    """
    op, attempt = _attempt(runtime, call)
    result: T = runtime.call(attempt, replay_safe=op.replay_safe)
    return result
