"""
Tests of ClientAdapter with a small real blocking client: one client per
worker thread, closing in the owning thread, replay safety, health fields,
the closed state and fork safety.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import warnings
from multiprocessing.connection import Connection as PipeEnd
from typing import Any

import anyio
import pytest

from buttress import Backoff, RetryPolicy, Verdict
from buttress.clients import ClientAdapter
from buttress.testing import FakeClock


class TallyClient:
    """
    A blocking client that counts its requests and records the thread and
    process that created and closed it.
    """

    def __init__(self) -> None:
        self.created_in = threading.get_ident()
        self.created_by_pid = os.getpid()
        self.closed_in: int | None = None
        self.requests = 0

    def request(self, value: Any) -> Any:
        self.requests += 1
        return value

    def close(self) -> None:
        self.closed_in = threading.get_ident()


class OutcomeUnknown(Exception):
    """The request may have taken effect: the reply was lost."""


class Busy(Exception):
    """The server rejected the request before doing anything."""


class TallyClassifier:
    def classify(self, exc: BaseException) -> Verdict:
        if isinstance(exc, OutcomeUnknown):
            return Verdict(retryable=True, breaker_failure=True, outcome_known=False)
        if isinstance(exc, Busy):
            return Verdict(retryable=True, breaker_failure=False, outcome_known=True)
        return Verdict(retryable=False, breaker_failure=False)


class TallyAdapter(ClientAdapter[TallyClient]):
    handler_type = "tests.tally"

    def __init__(self, **options: Any) -> None:
        self.clients: list[TallyClient] = []
        self._clients_lock = threading.Lock()
        options.setdefault("name", "tally")
        super().__init__(**options)

    def create_client(self) -> TallyClient:
        client = TallyClient()
        with self._clients_lock:
            self.clients.append(client)
        return client

    def classifier(self) -> TallyClassifier:
        return TallyClassifier()


class FailingFirst:
    """
    An operation that raises *error* on its first call and then succeeds.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def __call__(self, client: TallyClient, value: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise self.error
        return client.request(value)


def retrying_adapter(**options: Any) -> TallyAdapter:
    clock = FakeClock()
    retry = RetryPolicy(attempts=3, backoff=Backoff(initial=0.01), clock=clock)
    return TallyAdapter(retry=retry, clock=clock, **options)


def thread_and_client(client: TallyClient) -> tuple[int, TallyClient]:
    return threading.get_ident(), client


# -- one client per thread ----------------------------------------------------


@pytest.mark.anyio
async def test_client_per_worker_thread() -> None:
    workers = 3
    barrier = threading.Barrier(workers, timeout=10)
    seen: list[tuple[int, TallyClient]] = []

    def meet(client: TallyClient) -> None:
        # Every call waits for the others, so each runs in its own thread.
        barrier.wait()
        seen.append((threading.get_ident(), client))

    async with TallyAdapter(max_workers=workers) as adapter:
        async with anyio.create_task_group() as tasks:
            for _ in range(workers):
                tasks.start_soon(adapter.run, meet)
        # Later calls reuse the clients already built.
        for _ in range(5):
            await adapter.run(thread_and_client)

    assert len({thread for thread, _ in seen}) == workers
    assert len(adapter.clients) == workers
    for thread, client in seen:
        assert client.created_in == thread


@pytest.mark.anyio
async def test_clients_closed_in_own_thread() -> None:
    workers = 2
    barrier = threading.Barrier(workers, timeout=10)

    def meet(client: TallyClient) -> None:
        barrier.wait()

    adapter = TallyAdapter(max_workers=workers)
    async with anyio.create_task_group() as tasks:
        for _ in range(workers):
            tasks.start_soon(adapter.run, meet)
    assert all(client.closed_in is None for client in adapter.clients)

    await adapter.aclose()

    assert len(adapter.clients) == workers
    for client in adapter.clients:
        assert client.closed_in == client.created_in


def test_sync_close_closes_clients() -> None:
    with TallyAdapter() as adapter:
        thread, client = adapter.call(thread_and_client)

    assert client.created_in == thread
    assert client.closed_in == thread


@pytest.mark.anyio
async def test_discard_thread_client() -> None:
    def discard(client: TallyClient, adapter: TallyAdapter) -> TallyClient:
        adapter.discard_thread_client()
        return client

    async with TallyAdapter(max_workers=1) as adapter:
        discarded = await adapter.run(discard, adapter)
        assert discarded.closed_in == discarded.created_in
        _, replacement = await adapter.run(thread_and_client)

    assert replacement is not discarded
    assert adapter.clients == [discarded, replacement]


def test_client_without_close() -> None:
    class Bare:
        pass

    class BareAdapter(ClientAdapter[Bare]):
        def create_client(self) -> Bare:
            return Bare()

    with BareAdapter(name="bare") as adapter:
        assert isinstance(adapter.call(lambda client: client), Bare)


def test_create_client_required() -> None:
    adapter: ClientAdapter[object] = ClientAdapter(name="plain", retry=None)
    with adapter, pytest.raises(NotImplementedError):
        adapter.call(lambda client: client)


# -- replay safety ------------------------------------------------------------


@pytest.mark.anyio
async def test_unknown_outcome_not_replayed() -> None:
    op = FailingFirst(OutcomeUnknown("reply lost"))
    async with retrying_adapter() as adapter:
        with pytest.raises(OutcomeUnknown, match="reply lost"):
            await adapter.run(op, "charge", replay_safe=False)

    assert op.calls == 1


@pytest.mark.anyio
async def test_unknown_outcome_replayed_when_safe() -> None:
    op = FailingFirst(OutcomeUnknown("reply lost"))
    async with retrying_adapter() as adapter:
        result = await adapter.run(op, "read", replay_safe=True)

    assert result == "read"
    assert op.calls == 2


@pytest.mark.anyio
async def test_known_outcome_retried_when_unsafe() -> None:
    op = FailingFirst(Busy("try again"))
    async with retrying_adapter() as adapter:
        result = await adapter.run(op, "charge", replay_safe=False)

    assert result == "charge"
    assert op.calls == 2


def test_sync_call_replay_safety() -> None:
    unknown = FailingFirst(OutcomeUnknown("reply lost"))
    busy = FailingFirst(Busy("try again"))
    with retrying_adapter() as adapter:
        with pytest.raises(OutcomeUnknown):
            adapter.call(unknown, "charge", replay_safe=False)
        assert adapter.call(busy, "charge", replay_safe=False) == "charge"

    assert unknown.calls == 1
    assert busy.calls == 2


@pytest.mark.anyio
async def test_not_retryable_error_raised_once() -> None:
    op = FailingFirst(ValueError("bad request"))
    async with retrying_adapter() as adapter:
        with pytest.raises(ValueError, match="bad request"):
            await adapter.run(op, "x")

    assert op.calls == 1


@pytest.mark.anyio
async def test_classifier_drives_breaker() -> None:
    async with TallyAdapter(retry=None) as adapter:
        with pytest.raises(OutcomeUnknown):
            await adapter.run(FailingFirst(OutcomeUnknown("lost")), "x")
        after_failure = adapter.statistics().breaker
        with pytest.raises(Busy):
            await adapter.run(FailingFirst(Busy("busy")), "x")
        after_busy = adapter.statistics().breaker

    assert after_failure is not None
    assert after_failure.failures == 1
    assert after_failure.consecutive_failures == 1
    assert after_busy is not None
    assert after_busy.failures == 1
    assert after_busy.consecutive_failures == 0


# -- health -------------------------------------------------------------------


@pytest.mark.anyio
async def test_health_check_common_fields() -> None:
    async with TallyAdapter(name="ledger", max_workers=4, timeout=5.0) as adapter:
        await adapter.run(thread_and_client)
        health = await adapter.health_check()

    assert health == {
        "healthy": True,
        "reasons": [],
        "handler_type": "tests.tally",
        "name": "ledger",
        "timeout_seconds": 5.0,
        "circuit_breaker_state": "closed",
        "circuit_breaker_failure_count": 0,
        "thread_pool_active_workers": 0,
        "thread_pool_max_workers": 4,
        "thread_pool_queue_depth": 0,
        "thread_pool_queue_capacity": 12,
        "thread_pool_rejected": 0,
    }


@pytest.mark.anyio
async def test_health_details_merged() -> None:
    class MaintenanceAdapter(TallyAdapter):
        async def health_details(self) -> dict[str, Any]:
            return {"healthy": False, "reason": "maintenance", "server_version": "2.1"}

    async with MaintenanceAdapter() as adapter:
        health = await adapter.health_check()

    assert health["healthy"] is False
    assert health["reasons"] == ["maintenance"]
    assert health["server_version"] == "2.1"
    assert "reason" not in health


@pytest.mark.anyio
async def test_health_without_breaker() -> None:
    async with TallyAdapter(breaker=None) as adapter:
        health = await adapter.health_check()

    assert health["healthy"] is True
    assert health["circuit_breaker_state"] is None
    assert health["circuit_breaker_failure_count"] == 0


# -- closed -------------------------------------------------------------------


@pytest.mark.anyio
async def test_closed_adapter_raises() -> None:
    adapter = TallyAdapter(name="ledger")
    await adapter.aclose()

    with pytest.raises(
        RuntimeError, match=r"TallyAdapter 'ledger' is closed; create a new one"
    ):
        await adapter.run(thread_and_client)
    with pytest.raises(RuntimeError, match=r"TallyAdapter 'ledger' is closed"):
        adapter.call(thread_and_client)
    health = await adapter.health_check()
    assert health["healthy"] is False
    assert "closed" in health["reasons"]
    assert "executor_closed" in health["reasons"]


def test_repr() -> None:
    with TallyAdapter(name="ledger") as adapter:
        assert repr(adapter) == "<TallyAdapter 'ledger'>"


# -- fork -----------------------------------------------------------------------


def report_from_child(adapter: TallyAdapter, sender: PipeEnd) -> None:
    """
    Run in a forked child: report the executor's state and use the adapter
    from a thread and from an event loop.
    """
    try:
        before = adapter.executor.statistics()
        _, sync_client = adapter.call(thread_and_client)
        _, async_client = anyio.run(adapter.run, thread_and_client)
        report: dict[str, Any] = {
            "threads_before": before.threads,
            "active_before": before.active,
            "pid": os.getpid(),
            "sync_client_pid": sync_client.created_by_pid,
            "async_client_pid": async_client.created_by_pid,
        }
        adapter.close()
    except BaseException as exc:
        report = {"error": repr(exc)}
    sender.send(report)
    sender.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_starts_fresh() -> None:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    with TallyAdapter(max_workers=2) as adapter:
        _, parent_client = adapter.call(thread_and_client)
        assert adapter.executor.statistics().threads == 1

        child = context.Process(target=report_from_child, args=(adapter, sender))
        with warnings.catch_warnings():
            # Python 3.12 and newer warn when a process with threads forks;
            # the executor resets itself in the child for exactly this case.
            warnings.simplefilter("ignore", DeprecationWarning)
            child.start()
        sender.close()
        try:
            assert receiver.poll(30), "the child sent no report within 30 s"
            report = receiver.recv()
        finally:
            child.join(30)
            if child.is_alive():
                child.kill()
                child.join(10)
            receiver.close()

    assert child.exitcode == 0
    assert "error" not in report, report["error"]
    assert report["threads_before"] == 0
    assert report["active_before"] == 0
    assert report["pid"] != os.getpid()
    assert report["sync_client_pid"] == report["pid"]
    assert report["async_client_pid"] == report["pid"]
    assert parent_client.created_by_pid == os.getpid()
