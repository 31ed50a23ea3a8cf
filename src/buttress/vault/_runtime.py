"""
The machinery that every Vault operation runs through, shared by
`VaultAdapter` and `SyncVaultAdapter`.

`VaultClients` is the guarded pipeline of one adapter: a bounded thread
pool with one hvac client per worker thread, a circuit breaker, a retry
policy and a deadline. An operation is described by a `Call`: its name,
mount, path, replay class, namespace, and the blocking function that
sends its requests. `run_call` runs a call from async code and
`call_sync` from a plain thread; both go through the same Guard.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

import attrs
import hvac

from .._backoff import Backoff
from .._breaker import CircuitBreaker
from .._clock import Clock
from .._events import Listener
from .._retry import RetryPolicy
from ..clients import ClientAdapter
from ._classify import Operation, Replay, VaultClassifier, redact_path
from ._config import VaultConfig
from ._request import Exchange, run_attempt
from ._transport import build_client, close_client

__all__ = [
    "HANDLER_TYPE",
    "Call",
    "VaultClients",
    "as_config",
    "call_sync",
    "run_call",
]

T = TypeVar("T")

HANDLER_TYPE = "buttress.vault"
# Maximum Retry-After wait honoured, in seconds. A longer requested wait is
# cut to this.
RETRY_AFTER_CAP = 60.0


class VaultClients(ClientAdapter[hvac.Client]):
    """
    The guarded pipeline of one initialized adapter, with one hvac client
    per worker thread.
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

    def attempt(client: hvac.Client) -> T:
        return run_attempt(op, call.work, client)

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
