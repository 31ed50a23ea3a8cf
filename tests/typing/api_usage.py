"""
Type-checked examples of the public API.

mypy --strict checks this file; pytest never collects or runs it. Each
``assert_type`` pins a type that decorators and entry points must keep.
Each ``# type: ignore[code]`` marks a call that must be a type error: with
``warn_unused_ignores`` (part of --strict), mypy reports the ignore as
unused if the error ever goes away.
"""

from __future__ import annotations

import datetime
from collections.abc import Coroutine
from typing import Any

from typing_extensions import assert_type

import buttress
from buttress.testing import FakeClock

clock = FakeClock()
policy = buttress.RetryPolicy(
    attempts=3,
    backoff=buttress.Backoff(initial=datetime.timedelta(milliseconds=100)),
    deadline=datetime.timedelta(seconds=5),
    retry_on=(ConnectionError, TimeoutError),
    clock=clock,
)
breaker = buttress.CircuitBreaker(failure_threshold=3, reset_timeout=10.0, clock=clock)
executor = buttress.BoundedExecutor(max_workers=4, name="vault-io")
guard = buttress.Guard(retry=policy, breaker=breaker, executor=executor, timeout=10.0)


def read_secret(path: str, *, version: int = 1) -> bytes:
    return f"{path}@{version}".encode()


async def read_secret_async(path: str, *, version: int = 1) -> dict[str, str]:
    return {"path": path, "version": str(version)}


# -- decorators keep the signature ------------------------------------------------

retried = policy(read_secret)
retried_async = policy(read_secret_async)
guarded = breaker(read_secret)
guarded_async = breaker(read_secret_async)
piped = guard(read_secret)
offloaded = guard.offload(read_secret)

assert_type(retried("kv/app", version=2), bytes)
assert_type(guarded("kv/app"), bytes)
assert_type(piped("kv/app"), bytes)

retried(42)  # type: ignore[arg-type]
retried("kv/app", version="2")  # type: ignore[arg-type]
retried("kv/app", revision=2)  # type: ignore[call-arg]
guarded(b"kv/app")  # type: ignore[arg-type]
piped(None)  # type: ignore[arg-type]


async def use_decorated_async() -> None:
    pending: Coroutine[Any, Any, dict[str, str]] = retried_async("kv/app")
    assert_type(await pending, dict[str, str])
    assert_type(await guarded_async("kv/app", version=2), dict[str, str])
    assert_type(await offloaded("kv/app"), bytes)

    await retried_async(42)  # type: ignore[arg-type]
    await guarded_async("kv/app", revision=2)  # type: ignore[call-arg]
    await offloaded(42)  # type: ignore[arg-type]


@policy
def decorated(path: str) -> int:
    return len(path)


@breaker
async def decorated_async(path: str) -> int:
    return len(path)


assert_type(decorated("kv/app"), int)
decorated(3)  # type: ignore[arg-type]


# -- entry points return the function's type ----------------------------------------

assert_type(policy.call(read_secret, "kv/app", version=3), bytes)
assert_type(breaker.call(read_secret, "kv/app"), bytes)
assert_type(guard.call(read_secret, "kv/app"), bytes)
assert_type(executor.call(len, "kv/app"), int)
assert_type(executor.submit(len, "kv/app").result(), int)

policy.call(read_secret, 42)  # type: ignore[arg-type]
breaker.call(read_secret, "kv/app", version="3")  # type: ignore[arg-type]
guard.call(read_secret, ["kv/app"])  # type: ignore[arg-type]


async def use_async_entry_points() -> None:
    assert_type(await policy.acall(read_secret_async, "kv/app"), dict[str, str])
    assert_type(await breaker.acall(read_secret_async, "kv/app"), dict[str, str])
    assert_type(await guard.run(read_secret, "kv/app", version=2), bytes)
    assert_type(await executor.run(len, "kv/app"), int)
    assert_type(await decorated_async("kv/app"), int)

    await policy.acall(read_secret_async, 42)  # type: ignore[arg-type]
    await guard.run(read_secret, "kv/app", version=None)  # type: ignore[arg-type]
    await decorated_async(42)  # type: ignore[arg-type]


# -- records and errors ---------------------------------------------------------------

assert_type(breaker.statistics(), buttress.BreakerStatistics)
assert_type(breaker.statistics().state, buttress.CircuitState)
assert_type(executor.statistics(), buttress.ExecutorStatistics)
assert_type(executor.statistics().active, int)
assert_type(guard.statistics(), buttress.GuardStatistics)
assert_type(buttress.time_remaining(), float | None)
assert_type(buttress.Secret("s.token").get_secret_value(), str)


def handle(error: buttress.CircuitOpen | buttress.ExecutorSaturated) -> float:
    if isinstance(error, buttress.CircuitOpen):
        return error.retry_after
    assert_type(error.reason, str)
    return float(error.queue_size)


rejected: buttress.Rejected = buttress.CircuitOpen("open", name="db", retry_after=1.0)
timed_out: TimeoutError = buttress.DeadlineExceeded("late")

buttress.Backoff(initial="fast")  # type: ignore[arg-type]
buttress.RetryPolicy(attempts="3")  # type: ignore[arg-type]
buttress.BoundedExecutor(max_workers=None)  # type: ignore[arg-type]
