"""
buttress: keep programs alive when the blocking clients they call are slow,
failing or overloaded.

Three primitives, usable alone or composed in a `Guard`:

- `BoundedExecutor`: worker threads and a bounded queue that rejects when
  full;
- `CircuitBreaker`: fails fast while a dependency is down;
- `RetryPolicy` with `Backoff`: retries with jittered exponential delays
  within a deadline.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._backoff import Backoff, Jitter
from ._breaker import BreakerStatistics, CircuitBreaker, CircuitState
from ._breaker_store import BreakerPosition, BreakerStore, MemoryBreakerStore
from ._budget import BudgetStatistics, RetryBudget
from ._classify import Classifier, Verdict
from ._clock import Clock, SystemClock, time_remaining
from ._errors import (
    ButtressError,
    CircuitOpen,
    DeadlineExceeded,
    ExecutorClosed,
    ExecutorSaturated,
    Rejected,
)
from ._events import (
    CallRejected,
    CircuitStateChanged,
    Event,
    LimitChanged,
    Listener,
    LoggingListener,
    RetryGaveUp,
    RetryScheduled,
)
from ._executor import AdaptiveLimit, BoundedExecutor, ExecutorStatistics
from ._guard import Guard, GuardHealth, GuardStatistics
from ._presets import PROFILES, Profile, Sizing, size_pool
from ._retry import Attempt, RetryPolicy
from ._secret import Secret
from ._windows import CountWindow, TimeWindow

try:
    __version__ = version("buttress")
except PackageNotFoundError:  # pragma: no cover - only in an uninstalled tree
    __version__ = "0.0.0"

__all__ = [
    "PROFILES",
    "AdaptiveLimit",
    "Attempt",
    "Backoff",
    "BoundedExecutor",
    "BreakerPosition",
    "BreakerStatistics",
    "BreakerStore",
    "BudgetStatistics",
    "ButtressError",
    "CallRejected",
    "CircuitBreaker",
    "CircuitOpen",
    "CircuitState",
    "CircuitStateChanged",
    "Classifier",
    "Clock",
    "CountWindow",
    "DeadlineExceeded",
    "Event",
    "ExecutorClosed",
    "ExecutorSaturated",
    "ExecutorStatistics",
    "Guard",
    "GuardHealth",
    "GuardStatistics",
    "Jitter",
    "LimitChanged",
    "Listener",
    "LoggingListener",
    "MemoryBreakerStore",
    "Profile",
    "Rejected",
    "RetryBudget",
    "RetryGaveUp",
    "RetryPolicy",
    "RetryScheduled",
    "Secret",
    "Sizing",
    "SystemClock",
    "TimeWindow",
    "Verdict",
    "size_pool",
    "time_remaining",
]

# Show public names, not private module paths, in reprs and tracebacks.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("buttress._"):
        try:
            _obj.__module__ = "buttress"
        except (AttributeError, TypeError):
            pass
del _name, _obj
