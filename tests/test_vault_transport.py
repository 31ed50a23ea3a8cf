"""
Tests of the HTTP layer under the Vault adapter: the urllib3 transport and
the requests fallback, against a real OpenBao dev server and against local
stand-ins for what OpenBao cannot produce (redirects, HTML bodies, TLS,
proxies, a hung socket).

Most tests run once per transport, to show that both behave the same and
that error translation sees the same failures from either.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests.exceptions
import urllib3
import urllib3.exceptions

from _vault_fake_server import (
    Certificates,
    FakeVault,
    ForwardingProxy,
    Reply,
    make_certificates,
    openssl_available,
    silent_server,
    unused_port,
)
from buttress.testing import OpenBaoDevServer
from buttress.vault import (
    InvalidRequest,
    VaultAdapter,
    VaultAdapterError,
    VaultConfig,
    VaultConfigError,
    VaultTimeout,
    VaultUnavailable,
)
from buttress.vault._classify import Operation, translate
from buttress.vault._http import ResponseFailure, VaultResponse
from buttress.vault._transport import build_client, close_client
from buttress.vault._urllib3_adapter import (
    MAX_REDIRECTS,
    Urllib3Adapter,
    as_requests_error,
)

TOKEN = "s.transport-test-token"
TRANSPORTS = ["urllib3", "requests"]
HEALTH_BODY = {"initialized": True, "sealed": False, "standby": False}


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def client_of() -> Iterator[Any]:
    """
    Build hvac clients with `build_client` and close them after the test.
    """
    clients: list[hvac.Client] = []

    def build(url: str, transport: str, **settings: Any) -> hvac.Client:
        config = VaultConfig(url=url, token=TOKEN, transport=transport, **settings)
        client = build_client(config)
        clients.append(client)
        return client

    yield build
    for client in clients:
        close_client(client)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if not openssl_available():
        pytest.skip("the openssl binary is not installed, so no test certificate")
    directory = tmp_path_factory.mktemp("tls")
    return make_certificates(directory, "DNS:localhost,IP:127.0.0.1,DNS:vault.test")


@pytest.fixture(scope="module")
def named_certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """
    Certificates whose server certificate names only ``vault.test``, not
    the address the tests connect to.
    """
    if not openssl_available():
        pytest.skip("the openssl binary is not installed, so no test certificate")
    return make_certificates(tmp_path_factory.mktemp("named"), "DNS:vault.test")


def operation(url: str) -> Operation:
    return Operation("read_secret", "secret", "app/db", True, url)


def failure_of(client: hvac.Client, url: str) -> VaultAdapterError:
    """
    Read a secret with *client*, expect it to fail, and return the
    translated error.
    """
    with pytest.raises(Exception) as raised:  # noqa: PT011 - translated below
        client.secrets.kv.v2.read_secret_version(
            path="app/db", mount_point="secret", raise_on_deleted_version=True
        )
    error = translate(raised.value, operation(url))
    assert error is not None, f"not translated: {raised.value!r}"
    return error


def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# -- against OpenBao ----------------------------------------------------------


def test_transport_kv_round_trip(openbao: OpenBaoDevServer, transport: str) -> None:
    config = VaultConfig(
        url=openbao.address, token=openbao.root_token, transport=transport
    )
    client = build_client(config)
    path = f"buttress-tests/transport-{uuid.uuid4().hex[:8]}/réglage secret"
    try:
        written = client.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"value": "ünïcode"}, mount_point="secret"
        )
        client.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"value": "second"}, mount_point="secret"
        )
        first = client.secrets.kv.v2.read_secret_version(
            path=path, version=1, mount_point="secret", raise_on_deleted_version=True
        )
        latest = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", raise_on_deleted_version=True
        )
        listed = client.secrets.kv.v2.list_secrets(
            path=path.rpartition("/")[0], mount_point="secret"
        )
    finally:
        close_client(client)

    assert written.status_code == 200
    assert written.json()["data"]["version"] == 1
    assert first.json()["data"]["data"] == {"value": "ünïcode"}
    assert latest.json()["data"]["data"] == {"value": "second"}
    assert latest.json()["data"]["metadata"]["version"] == 2
    assert listed.json()["data"]["keys"] == ["réglage secret"]


def test_transport_error_status_raises_failure(
    openbao: OpenBaoDevServer, transport: str
) -> None:
    config = VaultConfig(
        url=openbao.address, token="s.not-a-token", transport=transport
    )
    client = build_client(config)
    try:
        with pytest.raises(ResponseFailure) as raised:
            client.secrets.kv.v2.read_secret_version(
                path="anything", mount_point="secret", raise_on_deleted_version=True
            )
    finally:
        close_client(client)

    assert raised.value.status == 403
    assert raised.value.errors == ("permission denied",)
    assert raised.value.body == {"errors": ["permission denied"]}


@pytest.mark.anyio
async def test_adapter_works_with_both_transports(
    openbao: OpenBaoDevServer, transport: str
) -> None:
    config = VaultConfig(
        url=openbao.address,
        token=openbao.root_token,
        timeout_seconds=5.0,
        transport=transport,
    )
    path = f"buttress-tests/transport-{uuid.uuid4().hex[:8]}/adapter"
    async with VaultAdapter(config) as vault:
        version = await vault.write_secret(path, {"user": "app"})
        secret = await vault.read_secret(path)
        health = await vault.health_check()

    assert version == 1
    assert secret.data == {"user": "app"}
    assert health["transport"] == transport
    assert health["server_role"] == "active"


# -- what is sent ---------------------------------------------------------------


def test_request_headers_and_body(client_of: Any, transport: str) -> None:
    with FakeVault() as fake:
        fake.default = Reply(200, {"data": {}})
        client = client_of(fake.url, transport, namespace="team-a")
        client.write_data("secret/data/app", data={"data": {"key": "value"}})
        client.adapter.read_health(2.0)

    write, health = fake.received
    assert write.method == "POST"
    assert write.path == "/v1/secret/data/app"
    assert write.headers["X-Vault-Token"] == TOKEN
    assert write.headers["X-Vault-Namespace"] == "team-a"
    assert write.headers["X-Vault-Request"] == "true"
    assert write.headers["Content-Type"] == "application/json"
    assert json.loads(write.body) == {"data": {"key": "value"}}
    assert health.path == "/v1/sys/health"
    assert "X-Vault-Token" not in health.headers
    assert "X-Vault-Namespace" not in health.headers


def test_request_query_and_path(client_of: Any, transport: str) -> None:
    with FakeVault() as fake:
        fake.default = Reply(200, {"data": {}})
        client = client_of(fake.url + "/prefix/", transport)
        client.adapter.get("//v1//secret/data/app", params={"version": 2, "x": None})
        client.adapter.get("/v1/secret/data/app", params={"key": ["a", "b"]})
        client.adapter.get("/v1/secret/data/app", wrap_ttl="60s")

    first, second, wrapped = fake.received
    assert first.path == "/prefix/v1/secret/data/app?version=2"
    assert second.path == "/prefix/v1/secret/data/app?key=a&key=b"
    assert wrapped.headers["X-Vault-Wrap-TTL"] == "60s"


def test_list_sends_list_method(client_of: Any, transport: str) -> None:
    with FakeVault() as fake:
        fake.default = Reply(200, {"data": {"keys": ["a"]}})
        client = client_of(fake.url, transport)
        response = client.secrets.kv.v2.list_secrets(path="folder", mount_point="kv")

    assert response.json()["data"]["keys"] == ["a"]
    assert fake.received[0].method == "LIST"
    assert fake.received[0].path == "/v1/kv/metadata/folder"


def test_unencodable_json_is_invalid_request(client_of: Any, transport: str) -> None:
    with FakeVault() as fake:
        client = client_of(fake.url, transport)
        with pytest.raises(Exception) as raised:  # noqa: PT011 - translated below
            client.write_data("secret/data/app", data={"data": {"bad": float("nan")}})
        error = translate(raised.value, operation(fake.url))

    assert isinstance(error, InvalidRequest)
    assert error.outcome == "not_executed"
    assert fake.received == []


def test_urllib3_rejects_unknown_arguments(client_of: Any) -> None:
    with FakeVault() as fake:
        client = client_of(fake.url, "urllib3")
        with pytest.raises(TypeError, match="stream"):
            client.adapter.get("/v1/sys/health", stream=True)


# -- failures, translated the same for both transports --------------------------


def test_connection_refused_is_not_executed(client_of: Any, transport: str) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    error = failure_of(client_of(url, transport), url)

    assert isinstance(error, VaultUnavailable)
    assert error.outcome == "not_executed"
    assert error.retryable is True
    assert "ConnectionRefusedError" in str(error)


def test_read_timeout_is_unknown_outcome(client_of: Any, transport: str) -> None:
    with silent_server() as url:
        client = client_of(url, transport, timeout_seconds=0.3)
        error = failure_of(client, url)

    assert isinstance(error, VaultTimeout)
    assert error.outcome == "unknown"
    assert "app/db" not in str(error)


def test_html_502_from_proxy_is_unavailable(client_of: Any, transport: str) -> None:
    with FakeVault() as fake:
        fake.default = Reply(502, "<html><body>Bad Gateway</body></html>")
        error = failure_of(client_of(fake.url, transport), fake.url)

    assert isinstance(error, VaultUnavailable)
    assert error.status == 502
    assert error.outcome == "unknown"


def test_server_closing_connection_is_unknown_outcome(
    client_of: Any, transport: str
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def close_after_request() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()

    import threading

    thread = threading.Thread(target=close_after_request, daemon=True)
    thread.start()
    try:
        error = failure_of(client_of(url, transport, timeout_seconds=5.0), url)
    finally:
        thread.join(5)
        listener.close()

    assert isinstance(error, VaultUnavailable)
    assert error.outcome == "unknown"


def test_as_requests_error_mapping() -> None:
    pool = urllib3.HTTPConnectionPool("127.0.0.1")
    cases = [
        (
            urllib3.exceptions.NewConnectionError(pool, "refused"),
            requests.exceptions.ConnectionError,
        ),
        (
            urllib3.exceptions.ConnectTimeoutError("slow"),
            requests.exceptions.ConnectTimeout,
        ),
        (
            urllib3.exceptions.ReadTimeoutError(pool, "/", "slow"),
            requests.exceptions.ReadTimeout,
        ),
        (
            urllib3.exceptions.ProxyError("no", OSError()),
            requests.exceptions.ProxyError,
        ),
        (urllib3.exceptions.SSLError("bad"), requests.exceptions.SSLError),
        (urllib3.exceptions.LocationParseError("x"), requests.exceptions.InvalidURL),
        (
            urllib3.exceptions.ProtocolError("reset"),
            requests.exceptions.ConnectionError,
        ),
        (
            urllib3.exceptions.DecodeError("gzip"),
            requests.exceptions.ContentDecodingError,
        ),
    ]
    for original, expected in cases:
        converted = as_requests_error(original)
        assert type(converted) is expected, (original, converted)


# -- redirects ------------------------------------------------------------------------


def test_redirect_is_followed_with_method_and_body(
    client_of: Any, transport: str
) -> None:
    with FakeVault() as active, FakeVault() as standby:
        active.default = Reply(200, {"data": {"version": 3}})
        standby.default = Reply(
            307, b"", {"Location": f"{active.url}/v1/secret/data/app"}
        )
        client = client_of(standby.url, transport)
        response = client.write_data("secret/data/app", data={"data": {"k": "v"}})

    assert response.json() == {"data": {"version": 3}}
    assert [r.method for r in active.received] == ["POST"]
    assert json.loads(active.received[0].body) == {"data": {"k": "v"}}
    assert active.received[0].headers["X-Vault-Token"] == TOKEN


def test_redirect_loop_is_config_error(client_of: Any, transport: str) -> None:
    with FakeVault() as fake:
        fake.default = Reply(307, b"", {"Location": "/v1/secret/data/app"})
        error = failure_of(client_of(fake.url, transport), fake.url)

    assert isinstance(error, VaultConfigError)
    assert len(fake.received) > MAX_REDIRECTS


def test_redirects_disabled_returns_redirect(client_of: Any, transport: str) -> None:
    with FakeVault() as fake:
        fake.default = Reply(307, b"", {"Location": "/elsewhere"})
        client = client_of(fake.url, transport, follow_redirects=False)
        response = client.adapter.get("/v1/secret/data/app")

    assert response.status_code == 307
    assert len(fake.received) == 1


def test_urllib3_refuses_https_to_http_redirect(
    client_of: Any, certificates: Certificates
) -> None:
    with FakeVault() as plain, FakeVault(certificates.server_context()) as secure:
        secure.default = Reply(307, b"", {"Location": f"{plain.url}/v1/x"})
        client = client_of(secure.url, "urllib3", verify=str(certificates.ca))
        error = failure_of(client, secure.url)

    assert isinstance(error, VaultConfigError)
    assert plain.received == []


# -- TLS ----------------------------------------------------------------------------


def test_tls_with_ca_file(
    client_of: Any, transport: str, certificates: Certificates
) -> None:
    with FakeVault(certificates.server_context()) as fake:
        fake.default = Reply(200, HEALTH_BODY)
        client = client_of(fake.url, transport, verify=str(certificates.ca))
        response = client.adapter.read_health(5.0)

    assert response.status_code == 200
    assert response.json() == HEALTH_BODY


def test_tls_with_ca_directory(
    client_of: Any, transport: str, certificates: Certificates, tmp_path: Path
) -> None:
    directory = tmp_path / "cas"
    directory.mkdir()
    (directory / "ca.pem").write_bytes(certificates.ca.read_bytes())
    subprocess.run(["openssl", "rehash", str(directory)], check=True, timeout=60)
    with FakeVault(certificates.server_context()) as fake:
        fake.default = Reply(200, HEALTH_BODY)
        client = client_of(fake.url, transport, verify=str(directory))
        response = client.adapter.read_health(5.0)

    assert response.status_code == 200


def test_tls_unknown_ca_is_config_error(
    client_of: Any, transport: str, certificates: Certificates
) -> None:
    with FakeVault(certificates.server_context()) as fake:
        error = failure_of(client_of(fake.url, transport), fake.url)

    assert isinstance(error, VaultConfigError)
    assert "could not be verified" in str(error)
    assert error.retryable is False


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verify_off(
    client_of: Any,
    transport: str,
    certificates: Certificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeVault(certificates.server_context()) as fake:
        fake.default = Reply(200, HEALTH_BODY)
        client = client_of(fake.url, transport, verify=False)
        response = client.adapter.read_health(5.0)

    assert response.status_code == 200
    assert any(
        record.levelname == "WARNING" and "verification is OFF" in record.getMessage()
        for record in caplog.records
    )


def test_tls_server_name(
    client_of: Any, transport: str, named_certificates: Certificates
) -> None:
    named = named_certificates
    with FakeVault(named.server_context()) as fake:
        fake.default = Reply(200, HEALTH_BODY)
        mismatch = failure_of(
            client_of(fake.url, transport, verify=str(named.ca)), fake.url
        )
        client = client_of(
            fake.url, transport, verify=str(named.ca), tls_server_name="vault.test"
        )
        response = client.adapter.read_health(5.0)

    assert isinstance(mismatch, VaultConfigError)
    assert response.status_code == 200


def test_tls_client_certificate(
    client_of: Any, transport: str, certificates: Certificates
) -> None:
    context = certificates.server_context(require_client_cert=True)
    with FakeVault(context) as fake:
        fake.default = Reply(200, HEALTH_BODY)
        without = failure_of(
            client_of(fake.url, transport, verify=str(certificates.ca)), fake.url
        )
        client = client_of(
            fake.url,
            transport,
            verify=str(certificates.ca),
            client_cert=str(certificates.client_cert),
            client_key=str(certificates.client_key),
        )
        response = client.adapter.read_health(5.0)

    assert isinstance(without, VaultUnavailable)
    assert response.status_code == 200
    assert len(fake.received) == 1


# -- proxies ----------------------------------------------------------------------


def test_proxy_from_environment(
    client_of: Any, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_proxy_environment(monkeypatch)
    with FakeVault() as fake, ForwardingProxy() as proxy:
        fake.default = Reply(200, HEALTH_BODY)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        response = client_of(fake.url, transport).adapter.read_health(5.0)

    assert response.status_code == 200
    assert [r.path for r in proxy.received] == [f"{fake.url}/v1/sys/health"]
    assert len(fake.received) == 1


def test_no_proxy_bypasses_proxy(
    client_of: Any, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_proxy_environment(monkeypatch)
    with FakeVault() as fake, ForwardingProxy() as proxy:
        fake.default = Reply(200, HEALTH_BODY)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        response = client_of(fake.url, transport).adapter.read_health(5.0)

    assert response.status_code == 200
    assert proxy.received == []
    assert len(fake.received) == 1


def test_explicit_proxy_with_credentials(
    client_of: Any, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_proxy_environment(monkeypatch)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FakeVault() as fake, ForwardingProxy() as proxy:
        fake.default = Reply(200, HEALTH_BODY)
        proxy_url = proxy.url.replace("http://", "http://user:p%40ss@")
        response = client_of(
            fake.url, transport, proxy_url=proxy_url
        ).adapter.read_health(5.0)

    expected = "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert response.status_code == 200
    assert len(proxy.received) == 1
    assert proxy.received[0].headers["Proxy-Authorization"] == expected


def test_https_through_proxy_tunnels(
    client_of: Any,
    transport: str,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_proxy_environment(monkeypatch)
    with FakeVault(certificates.server_context()) as fake, ForwardingProxy() as proxy:
        fake.default = Reply(200, HEALTH_BODY)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        client = client_of(fake.url, transport, verify=str(certificates.ca))
        response = client.adapter.read_health(5.0)

    port = fake.url.rpartition(":")[2]
    assert response.status_code == 200
    assert [(r.method, r.path) for r in proxy.received] == [
        ("CONNECT", f"127.0.0.1:{port}")
    ]


def test_urllib3_rejects_socks_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    no_proxy_environment(monkeypatch)
    monkeypatch.setenv("ALL_PROXY", "socks5://user:secret@127.0.0.1:1080")
    config = VaultConfig(url="http://127.0.0.1:8200", token=TOKEN)

    with pytest.raises(ValueError, match="socks5") as raised:
        build_client(config)

    assert "secret" not in str(raised.value)
    assert "transport='requests'" in str(raised.value)


def test_urllib3_adapter_is_used_by_default() -> None:
    client = build_client(VaultConfig(url="http://127.0.0.1:8200", token=TOKEN))
    try:
        assert isinstance(client.adapter, Urllib3Adapter)
    finally:
        close_client(client)


# -- the response object --------------------------------------------------------------


def test_vault_response_reads_like_requests() -> None:
    headers = urllib3.HTTPHeaderDict({"Content-Type": "application/json"})
    response = VaultResponse(
        200, headers, b'{"data": {"k": "v"}}', "http://x/v1/a", "OK"
    )
    failed = VaultResponse(503, headers, b"<html>\xff</html>", "http://x/v1/a", "Down")

    assert response.ok is True
    assert bool(response) is True
    assert response.json() == {"data": {"k": "v"}}
    assert response.headers["content-type"] == "application/json"
    assert response.text == '{"data": {"k": "v"}}'
    response.raise_for_status()
    assert failed.ok is False
    assert bool(failed) is False
    assert failed.text == "<html>\ufffd</html>"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        failed.json()
    with pytest.raises(ValueError, match="Expecting value"):
        VaultResponse(200, headers, b"not json", "u", "OK").json()
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        failed.raise_for_status()
    assert "/v1/a" not in str(raised.value)
