"""
Local stand-ins for the Vault tests: an HTTP(S) server that responds with
configured replies, a forwarding proxy, a socket that never responds, and
certificates made with the ``openssl`` binary.

Everything listens on 127.0.0.1 only and runs in daemon threads that the
context managers stop.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import select
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
from requests.structures import CaseInsensitiveDict


@attrs.frozen
class Reply:
    """
    What the fake server sends: a status, a body (a dict is sent as JSON)
    and extra headers.
    """

    status: int = 200
    body: dict[str, Any] | bytes | str = attrs.field(factory=dict)
    headers: dict[str, str] = attrs.field(factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/html"
        return self.body, "application/octet-stream"


@attrs.frozen
class Received:
    """
    One request the fake server or the proxy received; header lookups
    ignore case.
    """

    method: str
    path: str
    headers: CaseInsensitiveDict[str]
    body: bytes


class FakeVault:
    """
    An HTTP server on 127.0.0.1 that responds to each path with a `Reply` and
    records every request. Unknown paths get ``default``.

    Args:
        tls: A server-side `ssl.SSLContext` to serve HTTPS, or None.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Reply] = {}
        self.default = Reply(404, {"errors": []})
        self.received: list[Received] = []
        self._tls = tls
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{port}"

    def __enter__(self) -> FakeVault:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.received.append(
                    Received(
                        self.command, self.path, CaseInsensitiveDict(self.headers), body
                    )
                )
                path = urllib.parse.urlsplit(self.path).path
                reply = fake.routes.get(path, fake.default)
                content, content_type = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = do_HEAD = handle_any  # noqa: N815
            do_PATCH = handle_any  # noqa: N815

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


class ForwardingProxy:
    """
    An HTTP proxy on 127.0.0.1: it forwards absolute-form requests and
    tunnels CONNECT requests, and records the request line of each.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ForwardingProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.received.append(
                    Received(
                        self.command, self.path, CaseInsensitiveDict(self.headers), body
                    )
                )
                target = urllib.parse.urlsplit(self.path)
                upstream = http.client.HTTPConnection(
                    target.hostname or "", target.port, timeout=10
                )
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in ("proxy-authorization", "connection")
                }
                path = target.path + (f"?{target.query}" if target.query else "")
                upstream.request(self.command, path, body=body or None, headers=headers)
                response = upstream.getresponse()
                content = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)
                upstream.close()

            def do_CONNECT(self) -> None:
                proxy.received.append(
                    Received(
                        "CONNECT", self.path, CaseInsensitiveDict(self.headers), b""
                    )
                )
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                _pump(self.connection, upstream)
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = forward  # noqa: N815

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def _pump(client: socket.socket, upstream: socket.socket) -> None:
    """
    Copy bytes both ways between two sockets until either side closes.
    """
    sockets = [client, upstream]
    with upstream:
        while True:
            readable, _, _ = select.select(sockets, [], [], 10)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """
    Yield the URL of a socket that accepts connections (through the
    kernel's backlog) but never reads or responds, like a hung server.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def unused_port() -> int:
    """
    Return a loopback port that nothing listens on, for "connection
    refused".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- certificates -------------------------------------------------------------


@attrs.frozen
class Certificates:
    """
    PEM files of a throwaway CA, a server certificate it signed, and a
    client certificate it signed.
    """

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str | Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def make_certificates(directory: Path, server_names: str) -> Certificates:
    """
    Create a CA and sign a server certificate for *server_names* (a
    subjectAltName value such as ``"DNS:vault.test"``) and a client
    certificate.
    """
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=buttress test CA", "-keyout", ca_key, "-out", ca,
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT), which wants a
        # CA to declare its key usage.
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    paths = {}
    for name, extension in (
        ("server", f"subjectAltName={server_names}"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        key, csr, cert = (
            directory / f"{name}.{suffix}" for suffix in ("key", "csr", "pem")
        )
        extensions = directory / f"{name}.ext"
        extensions.write_text(
            f"{extension}\nbasicConstraints=CA:FALSE\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        )
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=buttress {name}",
            "-keyout", key, "-out", csr,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-days", "1", "-extfile", extensions, "-out", cert,
        )  # fmt: skip
        paths[name] = (cert, key)
    return Certificates(
        ca=ca,
        server_cert=paths["server"][0],
        server_key=paths["server"][1],
        client_cert=paths["client"][0],
        client_key=paths["client"][1],
    )
