"""
A scripted HTTP proxy for fault tests: it sits between an adapter and a
real OpenBao dev server on 127.0.0.1 and replaces chosen responses with
scripted ones, or drops them after the server handled the request.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import json
import threading
from typing import Any

import attrs

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "host",
    "content-length",
}


@attrs.frozen
class Reply:
    """
    A response the proxy sends in place of the server's.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)


def vault_errors(status: int, *errors: str) -> Reply:
    body = json.dumps({"errors": list(errors)}).encode()
    return Reply(status, body, {"Content-Type": "application/json"})


def html_page(status: int) -> Reply:
    body = b"<html><body>Bad gateway</body></html>"
    return Reply(status, body, {"Content-Type": "text/html"})


FORWARD = "forward"
# Forward the request, then close the connection without responding, as if
# the response were lost on the way back.
DROP = "drop"

Action = str | Reply


class ScriptedProxy:
    """
    An HTTP proxy to an upstream server that takes one scripted action per
    request, then forwards every request once the script is used up.

    Attributes:
        requests: The method and path of every request received.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self._script: collections.deque[Action] = collections.deque()
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        # Handler threads may wait on idle keep-alive connections; stop()
        # does not wait for them.
        self._server.block_on_close = False
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *actions: Action) -> None:
        with self._lock:
            self._script.extend(actions)

    def next_action(self, method: str, path: str) -> Action:
        with self._lock:
            self.requests.append((method, path))
            return self._script.popleft() if self._script else FORWARD

    def methods(self) -> list[str]:
        return [method for method, _ in self.requests]

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=10)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            return response.status, response.getheaders(), payload
        finally:
            connection.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        proxy: ScriptedProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        action = proxy.next_action(self.command, self.path)
        if isinstance(action, Reply):
            self._send(action.status, list(action.headers.items()), action.body)
            return
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in _HOP_BY_HOP
        }
        status, upstream_headers, payload = proxy.forward(
            self.command, self.path, headers, body
        )
        if action == DROP:
            self.close_connection = True
            return
        self._send(status, upstream_headers, payload)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # http.server dispatches each method to do_<METHOD>.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_LIST = _handle  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass
