"""
A buttress backend for a small blocking client, in one module.

The client speaks a line protocol over TCP to a key-value server: one
request line, one reply line. The server is part of this file too and
listens on 127.0.0.1 only, so the example runs anywhere::

    python docs/examples/custom_backend.py

The backend itself is the three parts in the middle: typed errors, a
classifier that maps each error to a retry and breaker verdict, and a `ClientAdapter`
subclass with one typed method per operation.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from types import TracebackType
from typing import Any

import anyio

import buttress
from buttress import Verdict
from buttress.clients import ClientAdapter

# -- the blocking client ------------------------------------------------------


class LineError(Exception):
    """Base of the client's errors."""


class ConnectFailed(LineError):
    """The client could not connect, so no request was sent."""


class ConnectionLost(LineError):
    """The connection failed after the request was sent, so it may have run."""


class ServerBusy(LineError):
    """The server rejected the request before running it."""


class CommandError(LineError):
    """The server ran the request and reported an error."""


class LineClient:
    """
    A blocking client with one TCP connection. Like most blocking clients,
    it is not safe to share between threads.
    """

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.timeout = timeout
        try:
            self._socket = socket.create_connection(address, timeout=timeout)
        except OSError as exc:
            msg = f"connecting to {address[0]}:{address[1]} failed"
            raise ConnectFailed(msg) from exc
        self._stream = self._socket.makefile("rwb")

    def request(self, *words: str) -> str:
        """
        Send one request and return the server's reply.
        """
        for word in words:
            if not word or any(character.isspace() for character in word):
                msg = f"{word!r} is invalid, words must be non-empty with no spaces"
                raise ValueError(msg)
        # Wait no longer than the guarded call has left. A timeout of 0
        # would make the socket non-blocking, hence the small floor.
        remaining = buttress.time_remaining()
        timeout = self.timeout if remaining is None else max(remaining, 0.001)
        self._socket.settimeout(timeout)
        try:
            self._stream.write(" ".join(words).encode() + b"\n")
            self._stream.flush()
            reply = self._stream.readline()
        except OSError as exc:
            raise ConnectionLost("the connection failed during a request") from exc
        if not reply:
            raise ConnectionLost("the server closed the connection")
        text = reply.decode().rstrip("\n")
        if text == "BUSY":
            raise ServerBusy("the server is busy")
        if text.startswith("ERROR "):
            raise CommandError(text.removeprefix("ERROR "))
        return text

    def close(self) -> None:
        self._stream.close()
        self._socket.close()


# -- the backend: classifier and adapter -------------------------------------


class LineClassifier:
    """
    Map the client's errors to what they mean for retries and the breaker.
    """

    def classify(self, exc: BaseException) -> Verdict:
        if isinstance(exc, ServerBusy):
            # Healthy but loaded. Nothing ran, so any request may repeat.
            return Verdict(retryable=True, breaker_failure=False)
        if isinstance(exc, ConnectFailed):
            return Verdict(retryable=True, breaker_failure=True)
        if isinstance(exc, ConnectionLost):
            return Verdict(retryable=True, breaker_failure=True, outcome_known=False)
        if isinstance(exc, CommandError):
            # The server responded, so repeating the request cannot help.
            return Verdict(retryable=False, breaker_failure=False)
        # A bug in the caller's code is no sign of the server's health.
        return Verdict(retryable=False, breaker_failure=None)


class CounterAdapter(ClientAdapter[LineClient]):
    """
    Guarded access to the key-value server from asyncio, trio or threads.
    """

    handler_type = "example.counters"

    def __init__(self, address: tuple[str, int], **options: Any) -> None:
        self.address = address
        options.setdefault("name", "counters")
        super().__init__(**options)

    def create_client(self) -> LineClient:
        return LineClient(self.address)

    def classifier(self) -> LineClassifier:
        return LineClassifier()

    def _request(self, client: LineClient, *words: str) -> str:
        try:
            return client.request(*words)
        except ConnectionLost:
            # The stream may contain half a reply, so the next attempt reconnects.
            self.discard_thread_client()
            raise

    def _get(self, client: LineClient, key: str) -> str | None:
        reply = self._request(client, "GET", key)
        return None if reply == "MISSING" else reply.removeprefix("VALUE ")

    def _set(self, client: LineClient, key: str, value: str) -> None:
        self._request(client, "SET", key, value)

    def _incr(self, client: LineClient, key: str) -> int:
        return int(self._request(client, "INCR", key).removeprefix("VALUE "))

    async def get(self, key: str) -> str | None:
        """
        Return the value of *key*, or None when it is not set.
        """
        return await self.run(self._get, key)

    async def set(self, key: str, value: str) -> None:
        """
        Set *key*. Setting the same value twice is harmless, so it may be
        retried after any retryable error.
        """
        await self.run(self._set, key, value)

    async def incr(self, key: str) -> int:
        """
        Add one to *key* and return the new value. Running it twice would
        count twice, so it is retried only when the server surely did not
        run it.
        """
        return await self.run(self._incr, key, replay_safe=False)

    def incr_sync(self, key: str) -> int:
        """
        Like `incr`, for a plain thread.
        """
        return self.call(self._incr, key, replay_safe=False)


# -- a server to talk to ------------------------------------------------------


class _LineHandler(socketserver.StreamRequestHandler):
    server: LineServer

    def handle(self) -> None:
        for line in self.rfile:
            reply = self.server.reply(line.decode().split())
            if reply is None:
                return
            self.wfile.write(reply.encode() + b"\n")


class LineServer(socketserver.ThreadingTCPServer):
    """
    The key-value server, listening on 127.0.0.1 on a free port.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LineHandler)
        host, port = self.server_address[:2]
        self.address: tuple[str, int] = (str(host), int(port))
        self._values: dict[str, str] = {}
        self._busy_replies = 0
        self._dropped_replies = 0
        self._lock = threading.Lock()

    def reply_busy(self, count: int) -> None:
        """
        Reply BUSY to the next *count* requests, without running them.
        """
        with self._lock:
            self._busy_replies = count

    def drop_replies(self, count: int) -> None:
        """
        Run the next *count* requests, then close the connection instead of
        replying, as a network failure would.
        """
        with self._lock:
            self._dropped_replies = count

    def reply(self, words: list[str]) -> str | None:
        """
        Run one request and return the reply line, or None to close the
        connection without one.
        """
        with self._lock:
            if self._busy_replies:
                self._busy_replies -= 1
                return "BUSY"
            reply = self._run(words)
            if self._dropped_replies:
                self._dropped_replies -= 1
                return None
            return reply

    def _run(self, words: list[str]) -> str:
        match words:
            case ["GET", key]:
                value = self._values.get(key)
                return "MISSING" if value is None else f"VALUE {value}"
            case ["SET", key, value]:
                self._values[key] = value
                return "OK"
            case ["INCR", key]:
                current = self._values.get(key, "0")
                if not current.isdigit():
                    return f"ERROR {key} does not hold a number"
                self._values[key] = str(int(current) + 1)
                return f"VALUE {self._values[key]}"
        return "ERROR unknown command"

    def __enter__(self) -> LineServer:
        # A short poll interval lets shutdown() return quickly.
        serve = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        serve.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
        self.server_close()


# -- using it -------------------------------------------------------------------


async def main() -> int:
    """
    Count visits through the adapter while the server is busy at first.
    """
    with LineServer() as server:
        async with CounterAdapter(server.address) as counters:
            await counters.set("visits", "0")
            # INCR is not safe to replay, but BUSY means it never ran, so
            # the adapter retries it.
            server.reply_busy(2)
            visits = await counters.incr("visits")
            print("visits:", visits)
            await counters.set("name", "ada")
            try:
                await counters.incr("name")
            except CommandError as exc:
                print("rejected:", exc)
            health = await counters.health_check()
            print("breaker:", health["circuit_breaker_state"])
    return visits


if __name__ == "__main__":
    # Show the adapter's retry and breaker events as they happen.
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    anyio.run(main)
