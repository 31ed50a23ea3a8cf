"""
A client-side rate limiter: a token bucket checked before each attempt.

The bucket refills at ``rate`` tokens per second up to ``burst``. Taking a
token never blocks while holding the lock: `TokenBucket.reserve` takes one
at once, letting the count go below zero, and returns how long the caller
must wait before using it. Callers that arrive while the bucket is empty
thus queue up in arrival order, each waiting ``1 / rate`` seconds longer
than the one before, and a waiting caller sleeps on the event loop (or in
its own thread for the sync entry point), never in a worker thread.

A wait that would end past the caller's deadline is not started: the token
is given back and `buttress.DeadlineExceeded` is raised at once. A caller
cancelled while it waits gives its token back too.
"""

from __future__ import annotations

import threading

import attrs

from .._clock import SYSTEM_CLOCK, Clock, time_remaining
from .._errors import DeadlineExceeded
from ._config import RateLimit

__all__ = ["RateLimiterStatistics", "TokenBucket"]


@attrs.frozen
class RateLimiterStatistics:
    """
    A snapshot of a `TokenBucket`.

    Attributes:
        rate: Tokens added per second.
        burst: Maximum tokens held.
        available: Tokens available now; below zero while callers wait for
            tokens they reserved.
        acquired: Tokens handed out, waited for or not.
        delayed: Tokens whose caller had to wait.
        total_wait: Seconds of waiting handed out to callers.
        rejected: Callers turned away because the wait would end past
            their deadline.
        refunded: Tokens given back by callers cancelled while waiting.
    """

    rate: float
    burst: int
    available: float
    acquired: int
    delayed: int
    total_wait: float
    rejected: int
    refunded: int


class TokenBucket:
    """
    Limit how fast calls start: at most *burst* at once after an idle
    period, and *rate* per second on average.

    Safe to share between threads and between tasks of any event loop.

    Args:
        rate: Tokens added per second, greater than 0.
        burst: Maximum tokens held, at least 1.
        clock: Time source for refills and waits.
    """

    def __init__(self, rate: float, burst: int, *, clock: Clock = SYSTEM_CLOCK) -> None:
        limit = RateLimit(rate=rate, burst=burst)
        self.rate = limit.rate
        self.burst = limit.burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(limit.burst)
        self._updated = clock.monotonic()
        self._acquired = 0
        self._delayed = 0
        self._total_wait = 0.0
        self._rejected = 0
        self._refunded = 0

    @classmethod
    def from_settings(
        cls, limit: RateLimit, *, clock: Clock = SYSTEM_CLOCK
    ) -> TokenBucket:
        """
        Build a bucket from a config's `RateLimit`.
        """
        return cls(limit.rate, limit.burst, clock=clock)

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self.rate:g}/s burst={self.burst}>"

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._updated = now

    def reserve(self, max_wait: float | None = None) -> float:
        """
        Take one token and return the seconds to wait before using it; 0.0
        when one was available.

        Raises:
            DeadlineExceeded: When the wait would be longer than
                *max_wait*; no token is taken then.
        """
        with self._lock:
            self._refill(self._clock.monotonic())
            self._tokens -= 1.0
            if self._tokens >= 0.0:
                self._acquired += 1
                return 0.0
            wait = -self._tokens / self.rate
            if max_wait is not None and wait > max_wait:
                self._tokens += 1.0
                self._rejected += 1
                rejected = True
            else:
                self._acquired += 1
                self._delayed += 1
                self._total_wait += wait
                rejected = False
        if rejected:
            msg = (
                f"the client-side rate limit of {self.rate:g} requests/s would "
                f"delay this call by {wait:.3f} s, past its deadline"
            )
            raise DeadlineExceeded(msg)
        return wait

    def try_acquire(self) -> bool:
        """
        Take a token if one is available now, without waiting.
        """
        with self._lock:
            self._refill(self._clock.monotonic())
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            self._acquired += 1
            return True

    def refund(self) -> None:
        """
        Give back a token whose caller will not use it, such as one
        cancelled while it waited.
        """
        with self._lock:
            self._tokens = min(float(self.burst), self._tokens + 1.0)
            self._refunded += 1

    async def acquire(self) -> None:
        """
        Wait until the caller may start, on asyncio or trio.

        Raises:
            DeadlineExceeded: When the wait would end past the deadline of
                the enclosing `buttress.Guard` or retry policy.
        """
        wait = self.reserve(time_remaining())
        if wait <= 0.0:
            return
        try:
            await self._clock.asleep(wait)
        except BaseException:
            self.refund()
            raise

    def acquire_sync(self) -> None:
        """
        Block the calling thread until it may start.

        Raises:
            DeadlineExceeded: As `acquire`.
        """
        wait = self.reserve(time_remaining())
        if wait <= 0.0:
            return
        try:
            self._clock.sleep(wait)
        except BaseException:
            self.refund()
            raise

    def statistics(self) -> RateLimiterStatistics:
        """
        Return a snapshot of the bucket.
        """
        with self._lock:
            self._refill(self._clock.monotonic())
            return RateLimiterStatistics(
                rate=self.rate,
                burst=self.burst,
                available=self._tokens,
                acquired=self._acquired,
                delayed=self._delayed,
                total_wait=self._total_wait,
                rejected=self._rejected,
                refunded=self._refunded,
            )
