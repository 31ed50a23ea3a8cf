"""
Tests of the Vault classification table: how `translate` maps responses and
transport errors to `VaultAdapterError` subclasses, and what
`VaultClassifier` returns to the retry policy and the breaker for each.

Transport errors come from real requests to local sockets, so their shape
is the one requests and urllib3 really raise.
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
import requests

import buttress.vault
from buttress import DeadlineExceeded
from buttress.vault import (
    AuthenticationFailed,
    CasConflict,
    ConsistencyLag,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    SecretDeleted,
    UpstreamError,
    VaultAdapterError,
    VaultConfigError,
    VaultNotInitialized,
    VaultSealed,
    VaultServerError,
    VaultTimeout,
    VaultUnavailable,
)
from buttress.vault._classify import (
    Operation,
    VaultClassifier,
    parse_retry_after,
    redact_path,
    translate,
)
from buttress.vault._transport import NoTimeLeft, ResponseFailure, UnexpectedBody

SECRET_PATH = "team/app/db-password"
SERVER = "http://127.0.0.1:8200"


def operation(*, replay_safe: bool = True, path: str = SECRET_PATH) -> Operation:
    return Operation("read_secret", "secret", path, replay_safe, SERVER)


def failure(
    status: int, *errors: str, body: dict[str, Any] | None = None
) -> ResponseFailure:
    if body is None and errors:
        body = {"errors": list(errors)}
    return ResponseFailure(status, errors=errors, body=body)


def translated(exc: BaseException, *, replay_safe: bool = True) -> VaultAdapterError:
    error = translate(exc, operation(replay_safe=replay_safe))
    assert error is not None
    return error


def test_redact_path() -> None:
    assert redact_path("team/app/db") == "team/…"
    assert redact_path("/team/app/") == "team/…"
    assert redact_path("single") == "…"
    assert redact_path("") == ""


def test_operation_repr_redacts_path() -> None:
    text = repr(operation())

    assert SECRET_PATH not in text
    assert "'team/…'" in text


# Each case: the response, the error type, its outcome, whether it is
# retried for a replay-safe and for an unsafe operation, and the breaker
# verdict (True failure, False success, None ignored).
STATUS_TABLE: list[
    tuple[ResponseFailure, type[VaultAdapterError], str, bool, bool, bool | None]
] = [
    (failure(400, "invalid request"), InvalidRequest, "failed", False, False, False),
    (
        failure(400, "check-and-set parameter did not match the current version"),
        CasConflict,
        "failed",
        False,
        False,
        False,
    ),
    (
        failure(400, "check-and-set parameter required for this call"),
        InvalidRequest,
        "failed",
        False,
        False,
        False,
    ),
    (failure(401), AuthenticationFailed, "failed", False, False, None),
    (
        failure(403, "permission denied"),
        PermissionDenied,
        "failed",
        False,
        False,
        False,
    ),
    (failure(404, body={"errors": []}), NotFound, "failed", False, False, False),
    (
        failure(405, "unsupported operation"),
        InvalidRequest,
        "failed",
        False,
        False,
        False,
    ),
    (failure(413, "request too large"), InvalidRequest, "failed", False, False, False),
    (
        failure(415, "unsupported media type"),
        InvalidRequest,
        "failed",
        False,
        False,
        False,
    ),
    (
        failure(429, "rate limit quota exceeded"),
        RateLimited,
        "not_executed",
        True,
        True,
        None,
    ),
    (
        failure(412, "required index state not present"),
        ConsistencyLag,
        "not_executed",
        True,
        True,
        None,
    ),
    (
        failure(412, "missing 'X-Vault-Request' header"),
        VaultConfigError,
        "not_executed",
        False,
        False,
        None,
    ),
    (failure(500, "internal error"), VaultServerError, "unknown", True, False, True),
    (
        failure(501, "Vault is not initialized"),
        VaultNotInitialized,
        "not_executed",
        False,
        False,
        True,
    ),
    (failure(502, "upstream failed"), UpstreamError, "unknown", True, False, True),
    (failure(502), VaultUnavailable, "unknown", True, False, True),
    (failure(503, "Vault is sealed"), VaultSealed, "not_executed", True, True, True),
    (failure(503), VaultUnavailable, "not_executed", True, True, True),
    (failure(504), VaultUnavailable, "unknown", True, False, True),
    (
        failure(507, "insufficient storage"),
        VaultServerError,
        "unknown",
        True,
        False,
        True,
    ),
    (failure(200), VaultUnavailable, "unknown", True, False, True),
]


@pytest.mark.parametrize(
    ("response", "error_type", "outcome", "safe_retry", "unsafe_retry", "breaker"),
    STATUS_TABLE,
    ids=[f"{case[0].status}-{case[1].__name__}" for case in STATUS_TABLE],
)
def test_status_classification(
    response: ResponseFailure,
    error_type: type[VaultAdapterError],
    outcome: str,
    safe_retry: bool,
    unsafe_retry: bool,
    breaker: bool | None,
) -> None:
    safe = translated(response, replay_safe=True)
    unsafe = translated(response, replay_safe=False)
    verdict = VaultClassifier().classify(safe)

    assert type(safe) is error_type
    assert safe.status == response.status
    assert safe.errors == response.errors
    assert safe.outcome == outcome
    assert safe.retryable is safe_retry
    assert unsafe.retryable is unsafe_retry
    assert verdict.retryable is safe_retry
    assert verdict.breaker_failure is breaker
    assert verdict.outcome_known is (outcome != "unknown")


def test_error_fields_and_message() -> None:
    error = translated(failure(403, "permission denied"))
    message = str(error)

    assert error.operation == "read_secret"
    assert error.mount == "secret"
    assert error.path == "team/…"
    assert message.startswith(
        "read_secret on mount 'secret' at path 'team/…' failed with HTTP 403: "
        "permission denied. "
    )
    assert SECRET_PATH not in message


def test_vault_errors_redact_route() -> None:
    route_error = (
        f'no handler for route "secret/data/{SECRET_PATH}". route entry not found.'
    )
    error = translated(failure(404, route_error))

    assert SECRET_PATH not in str(error)
    assert 'no handler for route "team/…"' in str(error)
    assert "No secrets engine is mounted at 'secret'" in str(error)


def test_deleted_version_is_secret_deleted() -> None:
    body = {
        "data": {
            "data": None,
            "metadata": {
                "version": 4,
                "deletion_time": "2026-01-01T00:00:00Z",
                "destroyed": False,
            },
        }
    }
    error = translated(failure(404, body=body))

    assert isinstance(error, SecretDeleted)
    assert isinstance(error, NotFound)
    assert error.version == 4
    assert error.deletion_time == "2026-01-01T00:00:00Z"
    assert error.destroyed is False
    assert "version 4 of the secret is deleted" in str(error)


def test_rate_limited_carries_retry_after() -> None:
    response = ResponseFailure(
        429, errors=("rate limit quota exceeded",), retry_after="7"
    )
    error = translated(response)
    verdict = VaultClassifier().classify(error)

    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0
    assert verdict.retry_after == 7.0
    assert "retry after 7 s" in str(error)


def test_no_time_left_not_breaker_failure() -> None:
    error = translated(NoTimeLeft())
    verdict = VaultClassifier().classify(error)

    assert isinstance(error, VaultTimeout)
    assert isinstance(error, TimeoutError)
    assert error.outcome == "not_executed"
    assert verdict.breaker_failure is None


def test_unexpected_body_is_not_retried() -> None:
    error = translated(UnexpectedBody("body.data.version"))
    verdict = VaultClassifier().classify(error)

    assert type(error) is VaultAdapterError
    assert "body.data.version" in str(error)
    assert "KV version 2" in str(error)
    assert verdict.retryable is False
    assert verdict.breaker_failure is None


@pytest.mark.parametrize(
    ("exc", "error_type", "status"),
    [
        (
            hvac.exceptions.Forbidden("denied", errors=["permission denied"]),
            PermissionDenied,
            403,
        ),
        (
            hvac.exceptions.VaultDown("sealed", errors=["Vault is sealed"]),
            VaultSealed,
            503,
        ),
        (
            hvac.exceptions.InternalServerError("boom", errors=["boom"]),
            VaultServerError,
            500,
        ),
        (hvac.exceptions.ParamValidationError("bad parameter"), InvalidRequest, None),
        (hvac.exceptions.UnexpectedError("odd"), VaultAdapterError, None),
    ],
    ids=lambda value: (
        type(value).__name__ if isinstance(value, Exception) else str(value)
    ),
)
def test_hvac_exception_translated(
    exc: hvac.exceptions.VaultError,
    error_type: type[VaultAdapterError],
    status: int | None,
) -> None:
    error = translated(exc)

    assert type(error) is error_type
    assert error.status == status


def test_other_exceptions_pass_through() -> None:
    bug = KeyError("missing")
    verdict = VaultClassifier().classify(bug)

    assert translate(bug, operation()) is None
    assert verdict.retryable is False
    assert verdict.breaker_failure is None
    assert VaultClassifier().classify(DeadlineExceeded("late")).retryable is False


# -- transport errors from real sockets -------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """
    A listening socket whose connections the kernel accepts but that never
    responds, like a hung server.
    """
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def secret_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1/secret/data/{SECRET_PATH}"


def request_error(url: str, timeout: float = 2.0) -> requests.RequestException:
    with requests.Session() as session:
        session.trust_env = False
        try:
            session.get(url, timeout=timeout)
        except requests.RequestException as exc:
            return exc
    pytest.fail("the request was expected to fail")


def test_connection_refused_translated() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exc = request_error(secret_url(port))
    error = translated(exc, replay_safe=False)

    assert SECRET_PATH in str(exc)
    assert isinstance(error, VaultUnavailable)
    assert error.outcome == "not_executed"
    assert error.retryable is True
    assert "ConnectionRefusedError" in str(error)
    assert SECRET_PATH not in str(error)


def test_read_timeout_translated(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    exc = request_error(secret_url(port), timeout=0.2)
    safe = translated(exc, replay_safe=True)
    unsafe = translated(exc, replay_safe=False)

    assert isinstance(safe, VaultTimeout)
    assert safe.outcome == "unknown"
    assert safe.retryable is True
    assert unsafe.retryable is False
    assert VaultClassifier().classify(safe).breaker_failure is True
    assert SECRET_PATH not in str(safe)


def test_reset_after_request_translated(listener: socket.socket) -> None:
    def reset_after_request() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            # SO_LINGER with a zero timeout makes close() send a reset.
            connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )

    server = threading.Thread(target=reset_after_request)
    server.start()
    exc = request_error(secret_url(listener.getsockname()[1]))
    server.join()
    error = translated(exc, replay_safe=False)

    assert isinstance(error, VaultUnavailable)
    assert error.outcome == "unknown"
    assert error.retryable is False
    assert "after the request was sent" in str(error)
    assert SECRET_PATH not in str(error)


def test_tls_handshake_failure_translated() -> None:
    # A TLS client against a plain-HTTP listener fails in the handshake,
    # before anything is sent.
    with socket.create_server(("127.0.0.1", 0)) as plain:
        port = plain.getsockname()[1]

        def answer_plain_http() -> None:
            connection, _ = plain.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
                )

        server = threading.Thread(target=answer_plain_http)
        server.start()
        exc = request_error(f"https://127.0.0.1:{port}/v1/secret/data/{SECRET_PATH}")
        server.join()
    error = translated(exc)

    assert isinstance(exc, requests.exceptions.SSLError)
    assert isinstance(error, VaultUnavailable)
    assert error.outcome == "not_executed"
    assert SECRET_PATH not in str(error)


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """
    A certificate and key for 127.0.0.1 that no CA signed.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_untrusted_certificate_is_config_error(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]

        def handshake() -> None:
            connection, _ = listening.accept()
            with connection, contextlib.suppress(ssl.SSLError, OSError):
                context.wrap_socket(connection, server_side=True).close()

        server = threading.Thread(target=handshake)
        server.start()
        exc = request_error(f"https://127.0.0.1:{port}/v1/secret/data/{SECRET_PATH}")
        server.join()
    error = translated(exc)
    verdict = VaultClassifier().classify(error)

    assert isinstance(error, VaultConfigError)
    assert error.outcome == "not_executed"
    assert error.retryable is False
    assert verdict.breaker_failure is None
    assert "Set verify to the CA bundle" in str(error)
    assert SECRET_PATH not in str(error)


# -- Retry-After --------------------------------------------------------------

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("2", 2.0),
        ("0", 0.0),
        (" 15 ", 15.0),
        ("1.5", 1.5),
        ("-1", None),
        ("soon", None),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


# -- the public surface ---------------------------------------------------------


def test_vault_all_sorted_and_public() -> None:
    names = buttress.vault.__all__

    assert names == sorted(names)
    for name in names:
        value = getattr(buttress.vault, name)
        if isinstance(value, type):
            assert value.__module__ == "buttress.vault"


def test_error_tree() -> None:
    for name in buttress.vault.__all__:
        value = getattr(buttress.vault, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, VaultAdapterError)
    assert issubclass(VaultAdapterError, buttress.ButtressError)
    assert issubclass(VaultTimeout, TimeoutError)
