"""
Tests of DBAPIAdapter against real SQLite databases on disk: round trips,
connections per thread, shutdown, lock contention, whole-function retries
of transactions, an unavailable database and the breaker, and the blocking
facade used from threads.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from buttress import (
    Backoff,
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    Event,
    RetryPolicy,
    RetryScheduled,
)
from buttress.dbapi import DBAPIAdapter, ExecuteResult
from buttress.testing import FakeClock


class TrackedConnection(sqlite3.Connection):
    """
    A real sqlite3 connection that records which threads opened and closed
    it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened_in = threading.get_ident()
        self.closed_in: int | None = None

    def close(self) -> None:
        self.closed_in = threading.get_ident()
        super().close()


class AutocommitConnection(TrackedConnection):
    """
    A connection that reports autocommit mode, the way psycopg and sqlite3
    on Python 3.12 and newer do.
    """

    autocommit = True


class Connector:
    """
    Opens tracked connections to one database file, with ``timeout=0`` so
    that a held lock raises at once instead of waiting.

    Args:
        path: The database file.
        attach: Another database file, attached to every connection as
            ``other``.
        poison_first: Make every statement on the first connection fail
            with sqlite3's real "interrupted" OperationalError, as a
            connection that broke would.
        factory: The connection class.
    """

    def __init__(
        self,
        path: Path,
        *,
        attach: Path | None = None,
        poison_first: bool = False,
        factory: type[TrackedConnection] = TrackedConnection,
    ) -> None:
        self.path = path
        self.attach = attach
        self.poison_first = poison_first
        self.factory = factory
        self.attempts = 0
        self.connections: list[TrackedConnection] = []
        self._lock = threading.Lock()

    def __call__(self) -> TrackedConnection:
        with self._lock:
            self.attempts += 1
        connection = sqlite3.connect(self.path, timeout=0, factory=self.factory)
        if self.attach is not None:
            try:
                connection.execute("ATTACH DATABASE ? AS other", (str(self.attach),))
            except BaseException:
                connection.close()
                raise
        with self._lock:
            if self.poison_first and not self.connections:
                # A progress handler that returns non-zero aborts the
                # statement, and sqlite3 raises OperationalError.
                connection.set_progress_handler(lambda: 1, 1)
            self.connections.append(connection)
        return connection


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"
        )
    connection.close()
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def lock_holder(database: Path) -> Iterator[sqlite3.Connection]:
    """
    A raw connection that the test uses to hold locks on the database.
    """
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def fast_retry(clock: FakeClock, events: list[Event], attempts: int = 5) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts,
        backoff=Backoff(initial=0.01, maximum=0.1),
        clock=clock,
        listeners=(events.append,),
    )


def releasing_listener(holder: sqlite3.Connection, events: list[Event]) -> Any:
    """
    A retry listener that records events and ends the holder's
    transaction when the first retry is scheduled.
    """

    def listener(event: Event) -> None:
        events.append(event)
        if isinstance(event, RetryScheduled) and holder.in_transaction:
            holder.execute("ROLLBACK")

    return listener


def retries(events: list[Event]) -> list[RetryScheduled]:
    return [event for event in events if isinstance(event, RetryScheduled)]


# -- round trip ---------------------------------------------------------------


@pytest.mark.anyio
async def test_round_trip(database: Path) -> None:
    async with DBAPIAdapter(Connector(database)) as db:
        first = await db.execute("INSERT INTO items (name) VALUES (?)", ("apple",))
        many = await db.executemany(
            "INSERT INTO items (name) VALUES (:name)",
            [{"name": "banana"}, {"name": "cherry"}],
        )
        # A generator, read once, still serves every attempt.
        from_generator = await db.executemany(
            "INSERT INTO items (name) VALUES (?)",
            ((name,) for name in ("date", "elder")),
        )
        rows = await db.fetchall("SELECT id, name FROM items ORDER BY id")
        one = await db.fetchone("SELECT name FROM items WHERE id = ?", (2,))
        none = await db.fetchone("SELECT name FROM items WHERE id = ?", (99,))
        deleted = await db.execute("DELETE FROM items WHERE name != ?", ("apple",))

    assert first == ExecuteResult(rowcount=1, lastrowid=1)
    assert many.rowcount == 2
    assert from_generator.rowcount == 2
    assert rows == [
        (1, "apple"),
        (2, "banana"),
        (3, "cherry"),
        (4, "date"),
        (5, "elder"),
    ]
    assert one == ("banana",)
    assert none is None
    assert deleted.rowcount == 4


@pytest.mark.anyio
async def test_writes_are_committed(database: Path) -> None:
    async with DBAPIAdapter(Connector(database)) as db:
        await db.execute("INSERT INTO items (name) VALUES ('kept')")

        # A separate connection reads only committed rows.
        with sqlite3.connect(database) as reader:
            rows = reader.execute("SELECT name FROM items").fetchall()
        reader.close()

    assert rows == [("kept",)]


# -- connections and threads ------------------------------------------------


@pytest.mark.anyio
async def test_connection_per_worker_thread(database: Path) -> None:
    connector = Connector(database)
    workers = 3
    barrier = threading.Barrier(workers, timeout=10)
    seen: list[tuple[int, TrackedConnection]] = []

    def meet(connection: TrackedConnection) -> None:
        # Every call waits for the others, so each runs in its own thread.
        barrier.wait()
        connection.execute("SELECT 1").fetchall()
        seen.append((threading.get_ident(), connection))

    db = DBAPIAdapter(connector, max_workers=workers)
    async with db, anyio.create_task_group() as tasks:
        for _ in range(workers):
            tasks.start_soon(db.transaction, meet)

    threads = {thread for thread, _ in seen}
    assert len(threads) == workers
    assert len(connector.connections) == workers
    for thread, connection in seen:
        assert connection.opened_in == thread


@pytest.mark.anyio
async def test_connections_closed_on_shutdown(database: Path) -> None:
    connector = Connector(database)
    barrier = threading.Barrier(2, timeout=10)

    def meet(connection: TrackedConnection) -> None:
        barrier.wait()

    db = DBAPIAdapter(connector, max_workers=2)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(db.transaction, meet)
        tasks.start_soon(db.transaction, meet)
    await db.aclose()

    assert len(connector.connections) == 2
    for connection in connector.connections:
        assert connection.closed_in == connection.opened_in
    health = await db.health_check()
    assert health["connections_opened"] == 2
    assert health["connections_closed"] == 2


@pytest.mark.anyio
async def test_closed_adapter_raises(database: Path) -> None:
    db = DBAPIAdapter(Connector(database), name="orders")
    await db.aclose()

    with pytest.raises(RuntimeError, match="DBAPIAdapter 'orders' is closed"):
        await db.fetchall("SELECT 1")
    with pytest.raises(RuntimeError, match="DBAPIAdapter 'orders' is closed"):
        db.sync.execute("DELETE FROM items")


@pytest.mark.anyio
async def test_broken_connection_replaced(database: Path, clock: FakeClock) -> None:
    connector = Connector(database, poison_first=True)
    events: list[Event] = []
    db = DBAPIAdapter(connector, max_workers=1, retry=fast_retry(clock, events))
    async with db:
        rows = await db.fetchall("SELECT count(*) FROM items")

    assert rows == [(0,)]
    assert len(connector.connections) == 2
    broken, replacement = connector.connections
    assert broken.closed_in is not None
    assert replacement.closed_in is not None
    assert len(retries(events)) == 1
    breaker = db.statistics().breaker
    assert breaker is not None
    assert breaker.failures == 1


@pytest.mark.anyio
async def test_write_not_retried_after_statement_failure(
    database: Path, clock: FakeClock
) -> None:
    # The statement failed on a broken connection; a driver in autocommit
    # mode could have applied it, so the write is not repeated.
    connector = Connector(database, poison_first=True)
    events: list[Event] = []
    async with DBAPIAdapter(connector, retry=fast_retry(clock, events)) as db:
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            await db.execute("INSERT INTO items (name) VALUES ('once')")
        assert retries(events) == []
        assert connector.connections[0].closed_in is not None

        # The same write, marked safe to repeat, is retried on a new connection.
        await db.execute("INSERT INTO items (name) VALUES ('twice')", replay_safe=True)
        rows = await db.fetchall("SELECT name FROM items")

    assert rows == [("twice",)]


# -- errors the database returned -----------------------------------------


@pytest.mark.anyio
async def test_integrity_error_not_retried(database: Path, clock: FakeClock) -> None:
    connector = Connector(database)
    events: list[Event] = []
    async with DBAPIAdapter(connector, retry=fast_retry(clock, events)) as db:
        await db.execute("INSERT INTO items (name) VALUES ('pear')")
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            await db.execute(
                "INSERT INTO items (name) VALUES ('pear')", replay_safe=True
            )
        rows = await db.fetchall("SELECT name FROM items")
        breaker = db.statistics().breaker

    assert rows == [("pear",)]
    assert retries(events) == []
    assert breaker is not None
    assert breaker.failures == 0
    assert breaker.consecutive_failures == 0
    # The database responded, so the connection was rolled back and kept.
    assert len(connector.connections) == 1


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="sqlite3 has no sqlite_errorcode before 3.11"
)
@pytest.mark.anyio
async def test_sql_mistake_not_retried(database: Path, clock: FakeClock) -> None:
    events: list[Event] = []
    async with DBAPIAdapter(Connector(database), retry=fast_retry(clock, events)) as db:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await db.fetchall("SELECT * FROM missing_table")
        breaker = db.statistics().breaker

    assert retries(events) == []
    assert breaker is not None
    assert breaker.failures == 0


# -- lock contention ----------------------------------------------------------


@pytest.mark.anyio
async def test_locked_database_retried(
    database: Path, clock: FakeClock, lock_holder: sqlite3.Connection
) -> None:
    events: list[Event] = []
    retry = RetryPolicy(
        attempts=5,
        backoff=Backoff(initial=0.01, maximum=0.1),
        clock=clock,
        listeners=(releasing_listener(lock_holder, events),),
    )
    lock_holder.execute("BEGIN EXCLUSIVE")
    async with DBAPIAdapter(Connector(database), retry=retry, clock=clock) as db:
        # A write is not safe to replay by default, but a locked database
        # rejected it before it ran, so it is retried.
        result = await db.execute("INSERT INTO items (name) VALUES ('plum')")
        rows = await db.fetchall("SELECT name FROM items")
        breaker = db.statistics().breaker

    assert result.rowcount == 1
    assert rows == [("plum",)]
    scheduled = retries(events)
    assert len(scheduled) == 1
    assert scheduled[0].exception_type == "OperationalError"
    assert breaker is not None
    assert breaker.failures == 0


@pytest.mark.anyio
async def test_executemany_generator_retried(
    database: Path, clock: FakeClock, lock_holder: sqlite3.Connection
) -> None:
    events: list[Event] = []
    retry = RetryPolicy(
        attempts=5,
        backoff=Backoff(initial=0.01, maximum=0.1),
        clock=clock,
        listeners=(releasing_listener(lock_holder, events),),
    )
    lock_holder.execute("BEGIN EXCLUSIVE")
    async with DBAPIAdapter(Connector(database), retry=retry, clock=clock) as db:
        result = await db.executemany(
            "INSERT INTO items (name) VALUES (?)", ((name,) for name in ("a", "b"))
        )
        rows = await db.fetchall("SELECT name FROM items ORDER BY id")

    assert len(retries(events)) == 1
    assert result.rowcount == 2
    assert rows == [("a",), ("b",)]


@pytest.mark.anyio
async def test_locked_database_between_adapters(database: Path) -> None:
    # One adapter holds a write transaction open in its worker thread while
    # a second adapter writes to the same file.
    holding = threading.Event()
    release = threading.Event()
    events: list[Event] = []
    # Real sleeps: the first writer's thread needs real time to commit.
    retry = RetryPolicy(
        attempts=10,
        backoff=Backoff(initial=0.05, maximum=0.2),
        listeners=(events.append, lambda event: release.set()),
    )

    def hold_write_lock(connection: TrackedConnection) -> None:
        connection.execute("INSERT INTO items (name) VALUES ('first')")
        holding.set()
        if not release.wait(10):
            raise AssertionError("the second writer never retried")

    async with (
        DBAPIAdapter(Connector(database), name="first") as first,
        DBAPIAdapter(Connector(database), name="second", retry=retry) as second,
    ):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first.transaction, hold_write_lock)
            await anyio.to_thread.run_sync(holding.wait, 10)
            result = await second.execute("INSERT INTO items (name) VALUES ('second')")
        rows = await second.fetchall("SELECT name FROM items ORDER BY id")

    assert result.rowcount == 1
    assert rows == [("first",), ("second",)]
    assert len(retries(events)) >= 1


# -- transactions -------------------------------------------------------------


@pytest.fixture
def audit_database(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE audit (name TEXT)")
    connection.close()
    return path


@pytest.mark.anyio
async def test_transaction_retries_whole_function(
    database: Path, audit_database: Path, clock: FakeClock
) -> None:
    events: list[Event] = []
    holder = sqlite3.connect(
        audit_database, isolation_level=None, check_same_thread=False
    )
    retry = RetryPolicy(
        attempts=5,
        backoff=Backoff(initial=0.01, maximum=0.1),
        clock=clock,
        listeners=(releasing_listener(holder, events),),
    )
    calls: list[str] = []

    def add_item(connection: TrackedConnection, name: str) -> str:
        calls.append(name)
        connection.execute("INSERT INTO items (name) VALUES (?)", (name,))
        # The audit file is locked on the first call, after the insert
        # above already ran.
        connection.execute("INSERT INTO other.audit (name) VALUES (?)", (name,))
        return name

    connector = Connector(database, attach=audit_database)
    try:
        async with DBAPIAdapter(connector, max_workers=1, retry=retry) as db:
            await db.fetchall("SELECT * FROM other.audit")
            holder.execute("BEGIN EXCLUSIVE")
            result = await db.transaction(add_item, "fig")
            items = await db.fetchall("SELECT name FROM items")
            audit = await db.fetchall("SELECT name FROM other.audit")
            breaker = db.statistics().breaker
    finally:
        holder.close()

    assert result == "fig"
    assert calls == ["fig", "fig"]
    # The first call's insert was rolled back, so only one row exists.
    assert items == [("fig",)]
    assert audit == [("fig",)]
    assert len(retries(events)) == 1
    # Lock contention means the database is healthy.
    assert breaker is not None
    assert breaker.failures == 0


@pytest.mark.anyio
async def test_transaction_rolls_back_on_error(database: Path) -> None:
    calls: list[int] = []

    def add_then_fail(connection: TrackedConnection) -> None:
        calls.append(1)
        connection.execute("INSERT INTO items (name) VALUES ('ghost')")
        raise ValueError("invalid order")

    async with DBAPIAdapter(Connector(database)) as db:
        with pytest.raises(ValueError, match="invalid order"):
            await db.transaction(add_then_fail)
        rows = await db.fetchall("SELECT name FROM items")
        breaker = db.statistics().breaker

    assert calls == [1]
    assert rows == []
    assert breaker is not None
    assert breaker.failures == 0
    assert breaker.ignored == 1


@pytest.mark.anyio
async def test_transaction_commits_several_statements(database: Path) -> None:
    def add_two(connection: TrackedConnection, first: str, second: str) -> int:
        connection.execute("INSERT INTO items (name) VALUES (?)", (first,))
        cursor = connection.execute("INSERT INTO items (name) VALUES (?)", (second,))
        return cursor.lastrowid or 0

    async with DBAPIAdapter(Connector(database)) as db:
        last = await db.transaction(add_two, "kiwi", "lime")
        rows = await db.fetchall("SELECT name FROM items ORDER BY id")

    assert last == 2
    assert rows == [("kiwi",), ("lime",)]


@pytest.mark.anyio
async def test_transaction_rejects_autocommit(database: Path) -> None:
    connector = Connector(database, factory=AutocommitConnection)

    def add(connection: TrackedConnection) -> None:
        raise AssertionError("must not run in autocommit mode")

    async with DBAPIAdapter(connector) as db:
        with pytest.raises(RuntimeError, match="autocommit mode"):
            await db.transaction(add)


# -- an unavailable database and the breaker -------------------------------


@pytest.mark.anyio
async def test_unavailable_database_opens_breaker(
    tmp_path: Path, clock: FakeClock
) -> None:
    # sqlite3 cannot create a file in a directory that does not exist, even
    # as root, so the file is unavailable until the directory is created.
    directory = tmp_path / "not-yet"
    connector = Connector(directory / "app.db")
    breaker = CircuitBreaker(
        name="app-db", failure_threshold=3, reset_timeout=10.0, clock=clock
    )
    async with DBAPIAdapter(connector, retry=None, breaker=breaker, clock=clock) as db:
        for _ in range(3):
            with pytest.raises(sqlite3.OperationalError, match="unable to open"):
                await db.fetchone("SELECT 1")
        assert breaker.statistics().state is CircuitState.OPEN
        with pytest.raises(CircuitOpen) as rejected:
            await db.fetchone("SELECT 1")
        assert rejected.value.retry_after == pytest.approx(10.0)
        assert connector.attempts == 3
        health = await db.health_check()
        assert health["healthy"] is False
        assert "breaker_open" in health["reasons"]

        directory.mkdir()
        clock.advance(10.0)
        row = await db.fetchone("SELECT 1")

    assert row == (1,)
    stats = breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.failures == 3
    assert stats.open_count == 1


@pytest.mark.anyio
async def test_connect_failure_retried_for_writes(
    tmp_path: Path, clock: FakeClock
) -> None:
    # Nothing was sent before the connection failed, so even a write that is
    # not safe to replay is retried.
    connector = Connector(tmp_path / "missing" / "app.db")
    events: list[Event] = []
    retry = fast_retry(clock, events, attempts=3)
    async with DBAPIAdapter(connector, retry=retry, clock=clock) as db:
        with pytest.raises(sqlite3.OperationalError, match="unable to open"):
            await db.execute("INSERT INTO items (name) VALUES ('x')")
        breaker = db.statistics().breaker

    assert connector.attempts == 3
    assert len(retries(events)) == 2
    assert breaker is not None
    assert breaker.failures == 3


# -- health -------------------------------------------------------------------


@pytest.mark.anyio
async def test_health_query(tmp_path: Path, database: Path) -> None:
    async with DBAPIAdapter(Connector(database), health_query="SELECT 1") as db:
        health = await db.health_check()
    closed_health = await db.health_check()

    assert health["healthy"] is True
    assert health["reasons"] == []
    assert health["handler_type"] == "buttress.dbapi"
    assert health["connections_opened"] == 1
    assert "health_query_error" not in health
    assert closed_health["reasons"] == ["executor_closed", "closed"]
    assert "health_query_error" not in closed_health

    unavailable = Connector(tmp_path / "missing" / "app.db")
    async with DBAPIAdapter(unavailable, retry=None, health_query="SELECT 1") as db:
        health = await db.health_check()

    assert health["healthy"] is False
    assert health["reasons"] == ["health_query_failed"]
    assert health["health_query_error"] == "OperationalError"


# -- events -------------------------------------------------------------------


@pytest.mark.anyio
async def test_retry_events_name_operation_not_sql(
    database: Path, clock: FakeClock, lock_holder: sqlite3.Connection
) -> None:
    events: list[Event] = []
    retry = RetryPolicy(
        attempts=3,
        backoff=Backoff(initial=0.01, maximum=0.1),
        clock=clock,
        listeners=(releasing_listener(lock_holder, events),),
    )
    lock_holder.execute("BEGIN EXCLUSIVE")
    async with DBAPIAdapter(Connector(database), name="orders", retry=retry) as db:
        await db.fetchall("SELECT name FROM items WHERE name = ?", ("s3cret",))

    scheduled = retries(events)
    assert [event.name for event in scheduled] == ["orders.fetchall"]
    assert "s3cret" not in repr(scheduled)
    assert "SELECT" not in repr(scheduled)


# -- the blocking facade ------------------------------------------------------


def test_sync_facade_from_threads(database: Path) -> None:
    connector = Connector(database)
    callers = 8
    per_caller = 5
    errors: list[BaseException] = []

    def insert_rows(db: DBAPIAdapter[TrackedConnection], caller: int) -> None:
        try:
            for index in range(per_caller):
                db.sync.execute(
                    "INSERT INTO items (name) VALUES (?)", (f"{caller}-{index}",)
                )
        except BaseException as exc:
            errors.append(exc)

    # A default busy timeout lets writers from several worker threads wait
    # for each other's short transactions instead of failing.
    def connect() -> TrackedConnection:
        connection = connector()
        connection.execute("PRAGMA busy_timeout = 5000")
        return connection

    def count_items(connection: TrackedConnection) -> int:
        count: int = connection.execute("SELECT count(*) FROM items").fetchone()[0]
        return count

    with DBAPIAdapter(connect, max_workers=4) as db:
        threads = [
            threading.Thread(target=insert_rows, args=(db, caller))
            for caller in range(callers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        count = db.sync.fetchone("SELECT count(*) FROM items")
        rows = db.sync.fetchall("SELECT name FROM items WHERE name = ?", ("0-0",))
        many = db.sync.executemany(
            "INSERT INTO items (name) VALUES (?)", [("x",), ("y",)]
        )
        total = db.sync.transaction(count_items)

    assert errors == []
    assert count == (callers * per_caller,)
    assert rows == [("0-0",)]
    assert many.rowcount == 2
    assert total == callers * per_caller + 2
    assert 1 <= len(connector.connections) <= 4
    for connection in connector.connections:
        assert connection.closed_in == connection.opened_in


def test_sync_facade_repr(database: Path) -> None:
    with DBAPIAdapter(Connector(database), name="orders") as db:
        assert repr(db.sync) == "<SyncDBAPIAdapter 'orders'>"
        assert repr(db) == "<DBAPIAdapter 'orders'>"


# -- configuration ------------------------------------------------------------


def test_connect_must_be_callable(database: Path) -> None:
    with pytest.raises(
        TypeError, match=r"connect='app.db' is invalid, pass a function"
    ):
        DBAPIAdapter("app.db")  # type: ignore[arg-type]


def test_health_query_must_be_text(database: Path) -> None:
    with pytest.raises(TypeError, match=r"health_query=1 is invalid"):
        DBAPIAdapter(Connector(database), health_query=1)  # type: ignore[arg-type]


def test_public_names() -> None:
    import buttress.dbapi

    names = buttress.dbapi.__all__

    # Sorted the way ruff's isort-style rule wants: constants first.
    assert names == sorted(names, key=lambda name: (not name.isupper(), name))
    for name in names:
        assert hasattr(buttress.dbapi, name), name
    for cls in (DBAPIAdapter, ExecuteResult, buttress.dbapi.DBAPIClassifier):
        assert cls.__module__ == "buttress.dbapi"
