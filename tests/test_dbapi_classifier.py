"""
Tests of DBAPIClassifier: PEP 249 classes by name, driver error codes,
SQLite's lock and SQL-error codes, phases, user rules and configuration
errors.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import sys
import types
from pathlib import Path

import pytest

from buttress import CircuitOpen, DeadlineExceeded, Verdict
from buttress.dbapi import DEFAULT_CODES, DBAPIClassifier
from buttress.dbapi._classify import mark_phase


def make_driver() -> types.ModuleType:
    """
    Build a module with the PEP 249 exception tree, the way every driver
    defines it, plus a psycopg2-style subclass that carries a SQLSTATE.
    """
    driver = types.ModuleType("fakedriver")

    class Error(Exception):
        pass

    class InterfaceError(Error):
        pass

    class DatabaseError(Error):
        pass

    class DataError(DatabaseError):
        pass

    class OperationalError(DatabaseError):
        pass

    class IntegrityError(DatabaseError):
        pass

    class InternalError(DatabaseError):
        pass

    class ProgrammingError(DatabaseError):
        pass

    class NotSupportedError(DatabaseError):
        pass

    class TransactionRollbackError(OperationalError):
        def __init__(self, message: str, pgcode: str) -> None:
            super().__init__(message)
            self.pgcode = pgcode

    for cls in (
        Error,
        InterfaceError,
        DatabaseError,
        DataError,
        OperationalError,
        IntegrityError,
        InternalError,
        ProgrammingError,
        NotSupportedError,
        TransactionRollbackError,
    ):
        setattr(driver, cls.__name__, cls)
    return driver


DRIVER = make_driver()

CONNECTION_FAILURE = Verdict(retryable=True, breaker_failure=True, outcome_known=False)
CONTENTION = Verdict(retryable=True, breaker_failure=False, outcome_known=True)
REJECTED = Verdict(retryable=False, breaker_failure=False)
UNCLASSIFIED = Verdict(retryable=False, breaker_failure=None)


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [
        ("OperationalError", CONNECTION_FAILURE),
        ("InterfaceError", CONNECTION_FAILURE),
        ("IntegrityError", REJECTED),
        ("ProgrammingError", REJECTED),
        ("DataError", REJECTED),
        ("NotSupportedError", REJECTED),
        ("InternalError", UNCLASSIFIED),
        ("DatabaseError", UNCLASSIFIED),
        ("Error", UNCLASSIFIED),
    ],
)
def test_pep249_classes(class_name: str, expected: Verdict) -> None:
    exc = getattr(DRIVER, class_name)("failed")

    assert DBAPIClassifier().classify(exc) == expected
    assert DBAPIClassifier(driver=DRIVER).classify(exc) == expected


def test_subclass_uses_nearest_pep249_class() -> None:
    class ConnectionLost(DRIVER.OperationalError):  # type: ignore[name-defined,misc]
        pass

    verdict = DBAPIClassifier().classify(ConnectionLost("server closed the connection"))

    assert verdict == CONNECTION_FAILURE


@pytest.mark.parametrize(
    "exc",
    [ConnectionResetError("reset by peer"), TimeoutError("read timed out")],
    ids=["ConnectionResetError", "TimeoutError"],
)
def test_builtin_network_errors(exc: Exception) -> None:
    assert DBAPIClassifier().classify(exc) == CONNECTION_FAILURE


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad input"), KeyError("id")],
    ids=["ValueError", "KeyError"],
)
def test_other_exceptions_unclassified(exc: Exception) -> None:
    assert DBAPIClassifier().classify(exc) == UNCLASSIFIED


@pytest.mark.parametrize(
    "exc",
    [
        CircuitOpen("open", name="db", retry_after=1.0),
        DeadlineExceeded("too slow"),
    ],
    ids=["CircuitOpen", "DeadlineExceeded"],
)
def test_buttress_errors_unclassified(exc: Exception) -> None:
    assert DBAPIClassifier().classify(exc) == UNCLASSIFIED


# -- phases -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "known"),
    [
        ("connect", True),
        ("transaction", True),
        ("statement", False),
        ("commit", False),
    ],
)
def test_phase_decides_outcome(phase: str, known: bool) -> None:
    exc = DRIVER.OperationalError("connection lost")
    mark_phase(exc, phase)  # type: ignore[arg-type]

    verdict = DBAPIClassifier().classify(exc)

    assert verdict.retryable is True
    assert verdict.breaker_failure is True
    assert verdict.outcome_known is known


def test_phase_does_not_change_contention() -> None:
    exc = DRIVER.TransactionRollbackError("could not serialize access", "40001")
    mark_phase(exc, "commit")

    assert DBAPIClassifier().classify(exc) == CONTENTION


def test_unmarked_connection_error_outcome_unknown() -> None:
    verdict = DBAPIClassifier().classify(
        DRIVER.InterfaceError("connection already closed")
    )

    assert verdict.outcome_known is False


# -- driver codes -------------------------------------------------------------


@pytest.mark.parametrize("code", ["40001", "40P01", "55P03"])
def test_default_postgres_codes(code: str) -> None:
    exc = DRIVER.TransactionRollbackError("rolled back", code)

    assert DBAPIClassifier().classify(exc) == CONTENTION


def test_sqlstate_attribute() -> None:
    # psycopg 3 keeps the code in ``sqlstate`` instead of ``pgcode``.
    exc = DRIVER.OperationalError("deadlock detected")
    exc.sqlstate = "40P01"

    assert DBAPIClassifier().classify(exc) == CONTENTION


def test_unknown_code_falls_back_to_class() -> None:
    exc = DRIVER.TransactionRollbackError("admin shutdown", "57P01")

    assert DBAPIClassifier().classify(exc) == CONNECTION_FAILURE


def test_user_codes_merged_over_defaults() -> None:
    give_up = Verdict(retryable=False, breaker_failure=False)
    # MySQL's ER_LOCK_WAIT_TIMEOUT, as pymysql reports it: the number first.
    lock_wait = DRIVER.OperationalError(1205, "Lock wait timeout exceeded")
    classifier = DBAPIClassifier(codes={1205: CONTENTION, "40001": give_up})

    assert classifier.classify(lock_wait) == CONTENTION
    serialization = DRIVER.TransactionRollbackError("rolled back", "40001")
    assert classifier.classify(serialization) == give_up
    deadlock = DRIVER.TransactionRollbackError("rolled back", "40P01")
    assert classifier.classify(deadlock) == CONTENTION
    assert dict(DEFAULT_CODES) == {
        "40001": CONTENTION,
        "40P01": CONTENTION,
        "55P03": CONTENTION,
    }


def test_rules_tried_first_in_order() -> None:
    seen: list[str] = []
    read_only = Verdict(retryable=True, breaker_failure=True, outcome_known=True)

    def first(exc: BaseException) -> Verdict | None:
        seen.append("first")
        return None

    def second(exc: BaseException) -> Verdict | None:
        seen.append("second")
        return read_only if "read-only" in str(exc) else None

    classifier = DBAPIClassifier(rules=[first, second])

    assert (
        classifier.classify(DRIVER.IntegrityError("replica is read-only")) == read_only
    )
    assert seen == ["first", "second"]
    assert classifier.classify(DRIVER.IntegrityError("duplicate key")) == REJECTED


def test_driver_restricts_class_names() -> None:
    class OperationalError(Exception):
        """Not a database error: a name shared with an unrelated library."""

    classifier = DBAPIClassifier(driver=DRIVER)

    assert classifier.classify(OperationalError("boom")) == UNCLASSIFIED
    assert DBAPIClassifier().classify(OperationalError("boom")) == CONNECTION_FAILURE
    assert classifier.classify(DRIVER.OperationalError("boom")) == CONNECTION_FAILURE


# -- real sqlite3 errors ----------------------------------------------------


def sqlite_error(database: Path, statement: str) -> sqlite3.Error:
    connection = sqlite3.connect(database, timeout=0)
    try:
        connection.execute(statement)
    except sqlite3.Error as exc:
        return exc
    finally:
        connection.close()
    raise AssertionError(f"{statement!r} did not fail")


def test_sqlite_locked(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("CREATE TABLE items (name TEXT)")
        holder.execute("BEGIN EXCLUSIVE")
        exc = sqlite_error(database, "INSERT INTO items VALUES ('x')")
    finally:
        holder.close()
    mark_phase(exc, "statement")

    assert isinstance(exc, sqlite3.OperationalError)
    assert "database is locked" in str(exc)
    assert DBAPIClassifier().classify(exc) == CONTENTION
    assert DBAPIClassifier(driver=sqlite3).classify(exc) == CONTENTION


@pytest.mark.parametrize(
    "message", ["database is locked", "database is busy", "database table is locked"]
)
def test_sqlite_locked_by_message(message: str) -> None:
    # sqlite3 before Python 3.11 sets no error code, only the message.
    exc = sqlite3.OperationalError(message)

    assert DBAPIClassifier().classify(exc) == CONTENTION


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="sqlite3 has no sqlite_errorcode before 3.11"
)
@pytest.mark.parametrize(
    "statement", ["SELECT * FROM missing_table", "SELEC 1"], ids=["no-table", "syntax"]
)
def test_sqlite_sql_mistake_rejected(tmp_path: Path, statement: str) -> None:
    exc = sqlite_error(tmp_path / "app.db", statement)

    assert isinstance(exc, sqlite3.OperationalError)
    assert DBAPIClassifier().classify(exc) == REJECTED


def test_sqlite_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as caught:
        sqlite3.connect(tmp_path / "missing" / "app.db")
    mark_phase(caught.value, "connect")

    verdict = DBAPIClassifier().classify(caught.value)

    assert verdict == Verdict(retryable=True, breaker_failure=True, outcome_known=True)


def test_sqlite_integrity(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE items (name TEXT UNIQUE)")
        connection.execute("INSERT INTO items VALUES ('x')")
    connection.close()

    exc = sqlite_error(database, "INSERT INTO items VALUES ('x')")

    assert isinstance(exc, sqlite3.IntegrityError)
    assert DBAPIClassifier().classify(exc) == REJECTED


# -- configuration ------------------------------------------------------------


def test_codes_must_be_mapping() -> None:
    with pytest.raises(
        TypeError, match=r"codes=\['40001'\] is invalid, pass a mapping"
    ):
        DBAPIClassifier(codes=["40001"])  # type: ignore[arg-type]


def test_code_verdict_must_be_verdict() -> None:
    with pytest.raises(TypeError, match=r"codes\['40001'\]=True is invalid"):
        DBAPIClassifier(codes={"40001": True})  # type: ignore[dict-item]


def test_rules_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"rules contains 'retry', which is invalid"):
        DBAPIClassifier(rules=["retry"])  # type: ignore[list-item]


def test_driver_must_be_module() -> None:
    with pytest.raises(
        TypeError, match=r"driver='sqlite3' is invalid, pass the driver's module"
    ):
        DBAPIClassifier(driver="sqlite3")  # type: ignore[arg-type]


def test_mark_phase_on_frozen_exception() -> None:
    @dataclasses.dataclass(frozen=True)
    class OperationalError(Exception):
        code: str

    exc = OperationalError("08006")
    mark_phase(exc, "connect")

    # The mark could not be stored, so the outcome is taken as unknown.
    assert DBAPIClassifier().classify(exc) == CONNECTION_FAILURE
