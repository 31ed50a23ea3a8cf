"""
The meaning of PEP 249 driver exceptions for retries and the circuit breaker.

Every PEP 249 driver names its exception classes the same way
(``OperationalError``, ``IntegrityError``, ...), so `DBAPIClassifier` works
for any driver by walking the exception's MRO. Driver error codes come
first, because some codes (a serialization failure, a lock held by another
writer) arrive as an ``OperationalError`` yet mean that the database is
healthy and the work is worth repeating.

Whether an outcome is known depends on where the error was raised, and
only the adapter has that information. `DBAPIAdapter` records it on the
exception with `mark_phase` before re-raising, and the classifier reads it
back:

- ``"connect"``: nothing was sent, so the outcome is known;
- ``"transaction"``: a statement inside an explicit transaction, which is
  rolled back (by the adapter, or by the server when the connection drops);
- ``"statement"``: a statement that the driver may have committed on its
  own (in autocommit mode), so a lost connection leaves it unknown;
- ``"commit"``: a lost connection during COMMIT leaves it unknown.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, TypeAlias

import attrs

from .._classify import Verdict
from .._errors import ButtressError

__all__ = ["DEFAULT_CODES", "DBAPIClassifier", "ErrorCode", "Rule", "mark_phase"]

Phase: TypeAlias = Literal["connect", "statement", "transaction", "commit"]

ErrorCode: TypeAlias = str | int
"""A SQLSTATE such as ``"40001"``, a SQLite result name, or a numeric code."""

Rule: TypeAlias = Callable[[BaseException], Verdict | None]
"""Returns the verdict for an exception, or None to let later rules decide."""

_PHASE_ATTRIBUTE = "_buttress_dbapi_phase"

# The database is healthy but another transaction got in the way. The
# server rolled this one back, so repeating it is safe.
_CONTENTION = Verdict(retryable=True, breaker_failure=False, outcome_known=True)
# The database processed the statement and rejected it, so repeating it
# cannot help.
_REJECTED = Verdict(retryable=False, breaker_failure=False)
# Neither a sign of health nor of failure: an internal error, or an error
# raised by the caller's own code inside a transaction.
_UNCLASSIFIED = Verdict(retryable=False, breaker_failure=None)

DEFAULT_CODES: Mapping[ErrorCode, Verdict] = types.MappingProxyType(
    {
        "40001": _CONTENTION,  # PostgreSQL serialization_failure
        "40P01": _CONTENTION,  # PostgreSQL deadlock_detected
        "55P03": _CONTENTION,  # PostgreSQL lock_not_available
    }
)
"""Driver error codes that `DBAPIClassifier` recognizes by default."""

# PEP 249 exception class names. OperationalError and InterfaceError are
# absent: they mean the connection or the server failed, and get a verdict
# whose outcome depends on the phase.
_REJECTED_CLASSES = frozenset(
    {"IntegrityError", "ProgrammingError", "DataError", "NotSupportedError"}
)
_CONNECTION_CLASSES = frozenset({"OperationalError", "InterfaceError"})

# Attributes where drivers keep an error code: psycopg 3 and
# mysql-connector (sqlstate), psycopg2 (pgcode), sqlite3 on Python 3.11 and
# newer (sqlite_errorname), mysql-connector (errno).
_CODE_ATTRIBUTES = ("sqlstate", "pgcode", "sqlite_errorname", "errno")

# SQLite primary result codes, from sqlite3.h.
_SQLITE_ERROR = 1
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_BUSY_MESSAGES = (
    "database is locked",
    "database is busy",
    "database table is locked",
)


def mark_phase(exc: BaseException, phase: Phase) -> None:
    """
    Record on *exc* the phase of the operation that raised it.

    An exception that rejects new attributes (a frozen dataclass, for one)
    cannot carry the mark. The classifier then takes the outcome of a
    connection failure as unknown.
    """
    try:
        setattr(exc, _PHASE_ATTRIBUTE, phase)
    except (AttributeError, TypeError):
        pass


def _phase_of(exc: BaseException) -> Phase | None:
    phase: Phase | None = getattr(exc, _PHASE_ATTRIBUTE, None)
    return phase


def _error_codes(exc: BaseException) -> list[ErrorCode]:
    codes: list[ErrorCode] = []
    for attribute in _CODE_ATTRIBUTES:
        value = getattr(exc, attribute, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            codes.append(value)
    # pymysql and mysqlclient pass the numeric code as the first argument.
    if exc.args and type(exc.args[0]) is int:
        codes.append(exc.args[0])
    return codes


def _sqlite_verdict(exc: BaseException, pep249_name: str | None) -> Verdict | None:
    if pep249_name != "OperationalError":
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        # Extended result codes carry the primary code in the low byte.
        primary = code & 0xFF
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return _CONTENTION
        if primary == _SQLITE_ERROR:
            # sqlite3 raises SQL mistakes ("no such table", syntax errors)
            # as OperationalError with this generic code.
            return _REJECTED
        return None
    # NOTE: sqlite3 before Python 3.11 has no sqlite_errorcode. Lock
    # contention is still found by its message, but SQL mistakes then look
    # like connection failures and are retried.
    message = str(exc)
    if any(text in message for text in _SQLITE_BUSY_MESSAGES):
        return _CONTENTION
    return None


def _to_code_table(codes: Mapping[ErrorCode, Verdict]) -> Mapping[ErrorCode, Verdict]:
    untyped_codes: object = codes
    if not isinstance(untyped_codes, Mapping):
        msg = (
            f"DBAPIClassifier: codes={codes!r} is invalid, pass a mapping from "
            f"error codes to buttress.Verdict"
        )
        raise TypeError(msg)
    for code, verdict in codes.items():
        untyped_verdict: object = verdict
        if not isinstance(untyped_verdict, Verdict):
            msg = (
                f"DBAPIClassifier: codes[{code!r}]={verdict!r} is invalid, "
                f"pass a buttress.Verdict"
            )
            raise TypeError(msg)
    return types.MappingProxyType({**DEFAULT_CODES, **codes})


def _to_rule_tuple(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    rule_tuple = tuple(rules)
    for rule in rule_tuple:
        untyped_rule: object = rule
        if not callable(untyped_rule):
            msg = (
                f"DBAPIClassifier: rules contains {rule!r}, which is invalid; "
                f"pass functions taking the exception and returning a "
                f"buttress.Verdict or None"
            )
            raise TypeError(msg)
    return rule_tuple


def _check_driver(
    instance: DBAPIClassifier, attribute: object, value: types.ModuleType | None
) -> None:
    untyped_value: object = value
    if untyped_value is not None and not isinstance(untyped_value, types.ModuleType):
        msg = (
            f"DBAPIClassifier: driver={value!r} is invalid, pass the driver's "
            f"module (such as sqlite3) or None"
        )
        raise TypeError(msg)


@attrs.frozen(eq=False)
class DBAPIClassifier:
    """
    Classify the exceptions of any PEP 249 driver.

    The first match decides:

    1. *rules*, in order;
    2. driver error codes, *codes* merged over `DEFAULT_CODES` (PostgreSQL
       SQLSTATE 40001 serialization failure, 40P01 deadlock detected and
       55P03 lock not available): retryable, a breaker success, outcome
       known;
    3. SQLite busy or locked ("database is locked"): the same;
    4. SQL mistakes that sqlite3 raises as OperationalError (a syntax
       error, no such table): not retryable, a breaker success;
    5. OperationalError, InterfaceError, and the builtin ConnectionError
       and TimeoutError: retryable and a breaker failure. The outcome is
       known only for an error raised while connecting or inside
       `DBAPIAdapter.transaction`;
    6. IntegrityError, ProgrammingError, DataError and NotSupportedError:
       not retryable, a breaker success;
    7. anything else (InternalError, the caller's own exceptions): not
       retryable, and the breaker counts it neither way.

    A breaker success means the database responded, so it resets the count
    of consecutive failures.

    Args:
        driver: The driver's module (``sqlite3``, ``psycopg``). When given,
            a PEP 249 class name matches only that module's class, so an
            unrelated exception that happens to be called
            ``OperationalError`` is not mistaken for a database error.
        codes: Verdicts by driver error code, merged over `DEFAULT_CODES`.
            Codes are read from the exception's ``sqlstate``, ``pgcode``,
            ``sqlite_errorname`` and ``errno`` attributes and from a
            numeric first argument.
        rules: Functions tried first, in order; each returns a `Verdict`
            or None to pass.

    .. versionadded:: 0.1.0
    """

    driver: types.ModuleType | None = attrs.field(default=None, validator=_check_driver)
    codes: Mapping[ErrorCode, Verdict] = attrs.field(
        factory=dict, converter=_to_code_table
    )
    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_to_rule_tuple)

    def classify(self, exc: BaseException) -> Verdict:
        """
        Return the verdict for *exc*.
        """
        if isinstance(exc, ButtressError):
            return _UNCLASSIFIED
        for rule in self.rules:
            verdict = rule(exc)
            if verdict is not None:
                return verdict
        for code in _error_codes(exc):
            verdict = self.codes.get(code)
            if verdict is not None:
                return verdict
        pep249_name = self._pep249_name(exc)
        sqlite = _sqlite_verdict(exc, pep249_name)
        if sqlite is not None:
            return sqlite
        if pep249_name in _REJECTED_CLASSES:
            return _REJECTED
        if pep249_name in _CONNECTION_CLASSES or isinstance(
            exc, (ConnectionError, TimeoutError)
        ):
            phase = _phase_of(exc)
            return Verdict(
                retryable=True,
                breaker_failure=True,
                outcome_known=phase in ("connect", "transaction"),
            )
        return _UNCLASSIFIED

    def _pep249_name(self, exc: BaseException) -> str | None:
        """
        Return the most derived PEP 249 class name in *exc*'s MRO.
        """
        for cls in type(exc).__mro__:
            name = cls.__name__
            if name not in _REJECTED_CLASSES and name not in _CONNECTION_CLASSES:
                continue
            if self.driver is None or getattr(self.driver, name, None) is cls:
                return name
        return None
