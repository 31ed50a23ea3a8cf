"""
Typed events that primitives emit, and the listener that logs them.

Primitives never log directly. They hand each event to their listeners, and
`LoggingListener` is the default one. Events carry types, counts and
durations only: never call arguments, return values or exception messages,
which may contain secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeAlias

import attrs

__all__ = [
    "CallRejected",
    "CircuitStateChanged",
    "Event",
    "LimitChanged",
    "Listener",
    "LoggingListener",
    "RetryGaveUp",
    "RetryScheduled",
    "emit",
]

_log = logging.getLogger("buttress")


@attrs.frozen
class RetryScheduled:
    """
    A retry policy will sleep *delay* seconds and then run attempt + 1.

    Attributes:
        name: The retried function's name.
        attempt: The attempt that failed, counting from 1.
        delay: Seconds until the next attempt.
        exception_type: The failed attempt's exception type name, or
            ``"result"`` when a return value asked for the retry.
        reason: ``"error"``, ``"hint"`` (the delay came from the server) or
            ``"result"``.
        error: The exception itself, for listeners that opt in to reading
            it; it may hold secrets, so never log it by default.
    """

    name: str
    attempt: int
    delay: float
    exception_type: str
    reason: str = "error"
    error: BaseException | None = attrs.field(default=None, repr=False, eq=False)


@attrs.frozen
class RetryGaveUp:
    """
    A retry policy stopped: the last error propagates or, for a result that
    asked for a retry, the last result is returned.

    Attributes:
        reason: ``"attempts"``, ``"deadline"``, ``"budget"`` or
            ``"not_retryable"``.
        error: The last exception, if any; never log it by default.
    """

    name: str
    attempts: int
    elapsed: float
    reason: str
    exception_type: str
    error: BaseException | None = attrs.field(default=None, repr=False, eq=False)


@attrs.frozen
class CircuitStateChanged:
    """
    A circuit breaker moved from *old* to *new* state.
    """

    name: str
    old: str
    new: str
    reason: str
    generation: int


@attrs.frozen
class CallRejected:
    """
    A call was rejected locally: ``kind`` is ``"circuit_open"`` or
    ``"executor_saturated"``.
    """

    name: str
    kind: str
    reason: str


@attrs.frozen
class LimitChanged:
    """
    An executor's adaptive concurrency limit moved from *old* to *new*.

    ``reason`` is ``"latency_ok"`` for a growth, or ``"timeout"`` or
    ``"overload"`` for a cut.
    """

    name: str
    old: int
    new: int
    reason: str


Event: TypeAlias = (
    RetryScheduled | RetryGaveUp | CircuitStateChanged | CallRejected | LimitChanged
)
Listener: TypeAlias = Callable[[Event], None]


@attrs.frozen
class LoggingListener:
    """
    Log events to the stdlib logger ``buttress.<component>``.

    Retries and give-ups log at WARNING, a breaker opening at WARNING and
    any other state change at INFO. Rejections are not logged, because they
    come in floods exactly when a dependency is down; they are counted in
    ``statistics()`` instead.

    Args:
        include_messages: Also log the exception's message. Off by default
            because messages of client errors can carry secrets.
    """

    include_messages: bool = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, RetryScheduled):
            logging.getLogger("buttress.retry").warning(
                "retrying %s: attempt %d raised %s%s, sleeping %.3f s",
                event.name,
                event.attempt,
                event.exception_type,
                self._message(event.error),
                event.delay,
            )
        elif isinstance(event, RetryGaveUp):
            if event.attempts == 1 and event.reason == "not_retryable":
                # A first failure that is not retryable was never a retry.
                return
            logging.getLogger("buttress.retry").warning(
                "gave up on %s after %d attempts in %.3f s (%s): %s%s",
                event.name,
                event.attempts,
                event.elapsed,
                event.reason,
                event.exception_type,
                self._message(event.error),
            )
        elif isinstance(event, CircuitStateChanged):
            opened = event.new in ("open", "forced_open")
            level = logging.WARNING if opened else logging.INFO
            verb = {
                "open": "opened",
                "closed": "closed",
                "half_open": "half-open",
                "forced_open": "forced open",
                "forced_closed": "forced closed",
            }
            logging.getLogger("buttress.breaker").log(
                level,
                "circuit breaker %s %s (%s, generation %d)",
                event.name,
                verb.get(event.new, event.new),
                event.reason,
                event.generation,
            )
        elif isinstance(event, LimitChanged):
            logging.getLogger("buttress.executor").info(
                "executor %s concurrency limit %d -> %d (%s)",
                event.name,
                event.old,
                event.new,
                event.reason,
            )

    def _message(self, error: BaseException | None) -> str:
        if not self.include_messages or error is None:
            return ""
        return f" ({error})"


DEFAULT_LISTENERS: tuple[Listener, ...] = (LoggingListener(),)


def emit(listeners: Sequence[Listener], event: Event) -> None:
    """
    Hand *event* to each listener; a failing listener is logged, not raised.
    """
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            _log.exception("event listener %r failed", listener)
