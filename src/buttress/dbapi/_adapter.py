"""
`DBAPIAdapter`: any PEP 249 driver behind a `buttress.Guard`.

How it works. Each worker thread of the adapter's executor opens its own
connection on first use, because drivers such as sqlite3 reject a
connection shared between threads, and closes it in that same thread when
the thread exits (idle retirement or shutdown).

Every operation is one transaction in one worker thread: its statement or
the caller's function runs, then COMMIT. Any error rolls the transaction
back before it reaches the Guard, so a retry starts from a clean
connection. An error that the classifier counts as a breaker failure (a
lost connection, a server that went away) closes the connection instead,
and the next attempt in that thread reconnects. The phase in which an
error was raised (connecting, a statement, a transaction, COMMIT) is
recorded on the exception for the classifier, because the phase decides
whether the outcome is known.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Concatenate, Generic, TypeVar

from .._breaker import CircuitBreaker
from .._budget import RetryBudget
from .._classify import Classifier
from .._clock import SYSTEM_CLOCK, Clock
from .._events import DEFAULT_LISTENERS, Listener
from .._retry import RetryPolicy, _callable_name
from .._validate import Duration
from ..clients._adapter import DEFAULT, ClientAdapter, _Default
from ._classify import DBAPIClassifier, Phase, mark_phase
from ._types import ConnectionT, Cursor, ExecuteResult, Params

__all__ = ["DBAPIAdapter", "SyncDBAPIAdapter"]

_log = logging.getLogger("buttress.dbapi")

T = TypeVar("T")


def _execute(sql: str, params: Params | None, cursor: Cursor) -> ExecuteResult:
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)
    return ExecuteResult(
        rowcount=cursor.rowcount, lastrowid=getattr(cursor, "lastrowid", None)
    )


def _executemany(
    sql: str, seq_of_params: Iterable[Params], cursor: Cursor
) -> ExecuteResult:
    cursor.executemany(sql, seq_of_params)
    return ExecuteResult(
        rowcount=cursor.rowcount, lastrowid=getattr(cursor, "lastrowid", None)
    )


def _reusable(seq_of_params: Iterable[Params]) -> Sequence[Params]:
    if isinstance(seq_of_params, Sequence):
        return seq_of_params
    return list(seq_of_params)


def _fetchall(sql: str, params: Params | None, cursor: Cursor) -> list[Any]:
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)
    rows = cursor.fetchall()
    return rows if isinstance(rows, list) else list(rows)


def _fetchone(sql: str, params: Params | None, cursor: Cursor) -> Any:
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)
    return cursor.fetchone()


def _reject_autocommit(connection: object) -> None:
    # psycopg, psycopg2, mysql-connector and sqlite3 on Python 3.12 and
    # newer expose the mode as a boolean ``autocommit`` attribute.
    if getattr(connection, "autocommit", False) is True:
        msg = (
            "DBAPIAdapter.transaction: the connection is in autocommit mode, "
            "so a failed attempt could not be rolled back; open connections "
            "with autocommit off"
        )
        raise RuntimeError(msg)


class DBAPIAdapter(ClientAdapter[ConnectionT]):
    """
    Run statements of any PEP 249 driver through a `buttress.Guard`, from
    asyncio, trio or plain threads.

    Each operation is its own transaction: it commits when it succeeds and
    rolls back when it fails. Reads are retried after any retryable error.
    Writes are retried only after errors whose outcome is known, such as a
    locked database or a failed connect, unless the caller passes
    ``replay_safe=True``. Threaded programs use the same operations,
    blocking, through `sync`.

    Args:
        connect: Opens one connection; called with no arguments in the
            worker thread that will use it, such as
            ``functools.partial(sqlite3.connect, path)``.
        name: Names the worker threads, the breaker, health fields and
            retry events (``"<name>.execute"``).
        classifier: Decides retries and breaker accounting; defaults to a
            `DBAPIClassifier`. A connection whose error it counts as a
            breaker failure is closed and replaced on the next attempt.
        health_query: A cheap statement, such as ``"SELECT 1"``, that
            `health_check` runs through the pipeline; None skips it.
        max_workers: Worker threads, and so connections, 1 to 100.
        queue_multiplier: Queue size as a multiple of ``max_workers``.
        timeout: Seconds for a whole operation, retries included.
        retry: Retry policy; None disables retries.
        breaker: Circuit breaker; None disables it.
        budget: Optional retry budget shared by every operation.
        clock: Time source for every part.
        listeners: Receivers of retry, breaker and executor events.

    Attributes:
        sync: The blocking twin of every operation, for plain threads.

    .. versionadded:: 0.1.0
    """

    handler_type = "buttress.dbapi"

    def __init__(
        self,
        connect: Callable[[], ConnectionT],
        *,
        name: str = "dbapi",
        classifier: Classifier | None = None,
        health_query: str | None = None,
        max_workers: int = 10,
        queue_multiplier: int = 3,
        timeout: Duration | None = 30.0,
        retry: RetryPolicy | _Default | None = DEFAULT,
        breaker: CircuitBreaker | _Default | None = DEFAULT,
        budget: RetryBudget | None = None,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] = DEFAULT_LISTENERS,
    ) -> None:
        untyped_connect: object = connect
        if not callable(untyped_connect):
            msg = (
                f"DBAPIAdapter: connect={connect!r} is invalid, pass a function "
                f"that opens a connection, such as "
                f"functools.partial(sqlite3.connect, path)"
            )
            raise TypeError(msg)

        untyped_query: object = health_query
        if untyped_query is not None and not isinstance(untyped_query, str):
            msg = (
                f"DBAPIAdapter: health_query={health_query!r} is invalid, pass "
                f"a SQL statement such as 'SELECT 1', or None"
            )
            raise TypeError(msg)

        self._connect = connect
        self._classifier = DBAPIClassifier() if classifier is None else classifier
        self.health_query = health_query
        self._connection_lock = threading.Lock()
        self._connections_opened = 0
        self._connections_closed = 0

        super().__init__(
            name=name,
            max_workers=max_workers,
            queue_multiplier=queue_multiplier,
            timeout=timeout,
            retry=retry,
            breaker=breaker,
            budget=budget,
            clock=clock,
            listeners=listeners,
        )
        self.sync: SyncDBAPIAdapter[ConnectionT] = SyncDBAPIAdapter(self)

    # -- the client layer's hooks -------------------------------------------

    def classifier(self) -> Classifier:
        """
        Return the classifier given at construction, or a `DBAPIClassifier`.
        """
        return self._classifier

    def create_client(self) -> ConnectionT:
        """
        Open a connection for the calling worker thread.
        """
        try:
            connection = self._connect()
        except BaseException as exc:
            mark_phase(exc, "connect")
            raise
        with self._connection_lock:
            self._connections_opened += 1
        return connection

    def close_client(self, client: ConnectionT) -> None:
        """
        Close a connection in the thread that opened it. A broken connection
        that fails to close is logged and dropped.
        """
        with self._connection_lock:
            self._connections_closed += 1
        try:
            client.close()
        except Exception as exc:
            _log.debug(
                "%s: closing a connection failed with %s", self.name, type(exc).__name__
            )

    async def health_details(self) -> dict[str, Any]:
        """
        Return connection counts and, with a ``health_query``, its result.
        """
        details: dict[str, Any] = {}
        # A closed adapter is already reported unhealthy with reason "closed".
        if self.health_query is not None and not self._closed:
            try:
                await self.fetchone(self.health_query)
            except Exception as exc:
                # Any failure makes the adapter unhealthy. Only the type is
                # reported, because a driver's message may quote the query.
                details["healthy"] = False
                details["reason"] = "health_query_failed"
                details["health_query_error"] = type(exc).__name__
        with self._connection_lock:
            details["connections_opened"] = self._connections_opened
            details["connections_closed"] = self._connections_closed
        return details

    # -- one transaction in a worker thread -------------------------------

    def _abort(self, connection: ConnectionT, exc: BaseException, phase: Phase) -> None:
        mark_phase(exc, phase)
        if (
            isinstance(exc, Exception)
            and self._classifier.classify(exc).breaker_failure is True
        ):
            # The connection may be broken, and finding out costs a round
            # trip that may hang; a new one is cheaper.
            self.discard_thread_client()
            return
        try:
            connection.rollback()
        except Exception as rollback_error:
            _log.debug(
                "%s: rollback failed with %s, closing the connection",
                self.name,
                type(rollback_error).__name__,
            )
            self.discard_thread_client()

    def _commit(self, connection: ConnectionT) -> None:
        try:
            connection.commit()
        except BaseException as exc:
            self._abort(connection, exc, "commit")
            raise

    def _close_cursor(self, cursor: Cursor) -> None:
        try:
            cursor.close()
        except Exception as exc:
            _log.debug(
                "%s: closing a cursor failed with %s", self.name, type(exc).__name__
            )

    def _statement_op(
        self, operation: str, step: Callable[[Cursor], T]
    ) -> Callable[[ConnectionT], T]:
        def run_statement(connection: ConnectionT) -> T:
            try:
                cursor = connection.cursor()
                try:
                    result = step(cursor)
                finally:
                    self._close_cursor(cursor)
            except BaseException as exc:
                self._abort(connection, exc, "statement")
                raise
            self._commit(connection)
            return result

        run_statement.__qualname__ = f"{self.name}.{operation}"
        return run_statement

    def _transaction_op(
        self, fn: Callable[Concatenate[ConnectionT, ...], T]
    ) -> Callable[..., T]:
        def run_transaction(connection: ConnectionT, *args: Any) -> T:
            _reject_autocommit(connection)
            try:
                result = fn(connection, *args)
            except BaseException as exc:
                self._abort(connection, exc, "transaction")
                raise
            self._commit(connection)
            return result

        run_transaction.__qualname__ = f"{self.name}.{_callable_name(fn)}"
        return run_transaction

    # -- operations ---------------------------------------------------------

    async def execute(
        self, sql: str, params: Params | None = None, *, replay_safe: bool = False
    ) -> ExecuteResult:
        """
        Run one statement that changes data, and commit it.

        Args:
            sql: The statement, with the driver's parameter markers.
            params: Values for the markers; None runs *sql* without any.
            replay_safe: Whether running the statement twice has the same
                effect as once, so it may be retried after an error whose
                outcome is unknown (a connection lost before COMMIT
                returned).
        """
        step = functools.partial(_execute, sql, params)
        return await self.run(
            self._statement_op("execute", step), replay_safe=replay_safe
        )

    async def executemany(
        self,
        sql: str,
        seq_of_params: Iterable[Params],
        *,
        replay_safe: bool = False,
    ) -> ExecuteResult:
        """
        Run one statement once per parameter set, and commit them together.

        An iterator is read into a list first, so a retry sends the same
        parameter sets.
        """
        step = functools.partial(_executemany, sql, _reusable(seq_of_params))
        return await self.run(
            self._statement_op("executemany", step), replay_safe=replay_safe
        )

    async def fetchall(
        self, sql: str, params: Params | None = None, *, replay_safe: bool = True
    ) -> list[Any]:
        """
        Run a query and return every row, in the driver's row type.

        Pass ``replay_safe=False`` for a query that changes data, such as
        ``INSERT ... RETURNING``.
        """
        step = functools.partial(_fetchall, sql, params)
        return await self.run(
            self._statement_op("fetchall", step), replay_safe=replay_safe
        )

    async def fetchone(
        self, sql: str, params: Params | None = None, *, replay_safe: bool = True
    ) -> Any:
        """
        Run a query and return its first row, or None when it has none.
        """
        step = functools.partial(_fetchone, sql, params)
        return await self.run(
            self._statement_op("fetchone", step), replay_safe=replay_safe
        )

    async def transaction(
        self,
        fn: Callable[Concatenate[ConnectionT, ...], T],
        /,
        *args: Any,
        replay_safe: bool = False,
    ) -> T:
        """
        Run ``fn(connection, *args)`` in one transaction in one worker
        thread, commit when it returns, and roll back when it raises.

        A retryable error anywhere in *fn* rolls back the whole attempt and
        runs *fn* again from its start; a retry never resumes half of it.
        *fn* may therefore run more than once, so it should have no effects
        outside the database.

        Args:
            fn: A blocking function taking the connection first. It must
                not commit or roll back itself.
            replay_safe: Whether committing the transaction twice has the
                same effect as once. Only a connection lost during COMMIT
                leaves that unknown; every earlier failure was rolled back
                and is retried either way.

        Raises:
            RuntimeError: If the connection is in autocommit mode, where a
                failed attempt could not be rolled back.
        """
        return await self.run(self._transaction_op(fn), *args, replay_safe=replay_safe)


class SyncDBAPIAdapter(Generic[ConnectionT]):
    """
    The blocking operations of a `DBAPIAdapter`, for plain threads.

    Reached as ``adapter.sync``. It shares the adapter's workers,
    connections, breaker and retry policy, so async and threaded callers
    together stay within one bound. Each method blocks the calling thread
    until the operation ends and takes the same arguments as its async
    twin on `DBAPIAdapter`.

    .. versionadded:: 0.1.0
    """

    def __init__(self, adapter: DBAPIAdapter[ConnectionT]) -> None:
        self._adapter = adapter

    def __repr__(self) -> str:
        return f"<SyncDBAPIAdapter {self._adapter.name!r}>"

    def execute(
        self, sql: str, params: Params | None = None, *, replay_safe: bool = False
    ) -> ExecuteResult:
        """
        Run one statement that changes data, and commit it.
        """
        adapter = self._adapter
        step = functools.partial(_execute, sql, params)
        return adapter.call(
            adapter._statement_op("execute", step), replay_safe=replay_safe
        )

    def executemany(
        self,
        sql: str,
        seq_of_params: Iterable[Params],
        *,
        replay_safe: bool = False,
    ) -> ExecuteResult:
        """
        Run one statement once per parameter set, and commit them together.
        """
        adapter = self._adapter
        step = functools.partial(_executemany, sql, _reusable(seq_of_params))
        return adapter.call(
            adapter._statement_op("executemany", step), replay_safe=replay_safe
        )

    def fetchall(
        self, sql: str, params: Params | None = None, *, replay_safe: bool = True
    ) -> list[Any]:
        """
        Run a query and return every row.
        """
        adapter = self._adapter
        step = functools.partial(_fetchall, sql, params)
        return adapter.call(
            adapter._statement_op("fetchall", step), replay_safe=replay_safe
        )

    def fetchone(
        self, sql: str, params: Params | None = None, *, replay_safe: bool = True
    ) -> Any:
        """
        Run a query and return its first row, or None when it has none.
        """
        adapter = self._adapter
        step = functools.partial(_fetchone, sql, params)
        return adapter.call(
            adapter._statement_op("fetchone", step), replay_safe=replay_safe
        )

    def transaction(
        self,
        fn: Callable[Concatenate[ConnectionT, ...], T],
        /,
        *args: Any,
        replay_safe: bool = False,
    ) -> T:
        """
        Run ``fn(connection, *args)`` in one transaction; see
        `DBAPIAdapter.transaction`.
        """
        adapter = self._adapter
        return adapter.call(adapter._transaction_op(fn), *args, replay_safe=replay_safe)
