"""
Classifiers: what an error or a result means for retries and breakers.

A client backend knows what its errors mean; the primitives do not guess.
A classifier turns each exception into a `Verdict`, and `RetryPolicy`,
`CircuitBreaker` and `Guard` all accept one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Classifier", "Verdict"]


@attrs.frozen
class Verdict:
    """
    What one failed attempt means.

    Attributes:
        retryable: Whether the attempt may be retried.
        breaker_failure: True counts a breaker failure, False a success
            (the dependency answered), None neither.
        outcome_known: False when the request may have taken effect, such
            as a timeout after it was sent; a caller then retries only
            operations that are safe to replay.
        retry_after: Seconds the server asked the client to wait, or None.
    """

    retryable: bool = False
    breaker_failure: bool | None = False
    outcome_known: bool = True
    retry_after: float | None = None


@runtime_checkable
class Classifier(Protocol):
    """
    Maps an exception raised by a protected call to a `Verdict`.

    It is never asked about cancellation, KeyboardInterrupt, SystemExit,
    GeneratorExit or buttress's own rejections, whose treatment is fixed.
    """

    def classify(self, exc: BaseException) -> Verdict:
        """
        Return the verdict for *exc*.
        """
        ...
