"""
PKI secrets engine operations: issuing a certificate with a new private
key, and revoking a certificate by serial number.

Each issue request creates a new certificate with a new serial number, so
it is never retried once the request may have reached the server. A
revocation is safe to replay: revoking a revoked certificate succeeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .._secret import Secret
from ._checks import check_duration, check_namespace, check_text
from ._classify import replay_class
from ._request import Exchange, optional_int, optional_str, require, warnings_of
from ._runtime import Call
from ._transport import UnexpectedBody

__all__ = ["CertificateRevocation", "IssuedCertificate"]

T = TypeVar("T")

DEFAULT_MOUNT = "pki"


@attrs.frozen
class IssuedCertificate:
    """
    A certificate issued with a new private key.

    Attributes:
        certificate: The certificate, in the requested format (PEM by
            default).
        issuing_ca: The certificate of the CA that signed it.
        ca_chain: The chain from the issuing CA up, one certificate each.
        private_key: The private key; its repr is redacted.
        private_key_type: The key type, such as ``"rsa"`` or ``"ec"``.
        serial_number: The serial number, as colon-separated hex pairs;
            pass it to ``pki.revoke``.
        expiration: When the certificate expires, in seconds since the
            Unix epoch, or None.
        lease_id: The lease's ID when the role has ``generate_lease``, else
            None.
        lease_duration: The lease's duration in seconds, or 0.
        renewable: Whether the lease can be renewed.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    certificate: str
    issuing_ca: str | None
    ca_chain: tuple[str, ...]
    private_key: Secret[str] = attrs.field(hash=False)
    private_key_type: str | None
    serial_number: str
    expiration: int | None
    lease_id: str | None = None
    lease_duration: int = 0
    renewable: bool = False
    warnings: tuple[str, ...] = ()


@attrs.frozen
class CertificateRevocation:
    """
    The outcome of a certificate revocation.

    Attributes:
        serial_number: The serial number revoked.
        revocation_time: When the certificate was revoked, in seconds since
            the Unix epoch, or None. Revoking it again returns the first
            revocation's time.
        state: The certificate's state, such as ``"revoked"``, or None.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    serial_number: str
    revocation_time: int | None
    state: str | None
    warnings: tuple[str, ...] = ()


def _call(
    name: str, mount: str, target: str, namespace: object, work: Callable[[Exchange], T]
) -> Call[T]:
    return Call(
        name, mount, target, replay_class(name), work, check_namespace(name, namespace)
    )


def _names(name: str, argument: str, values: object) -> str | None:
    """
    Return a sequence of names as the comma-separated list the API takes.
    """
    if values is None:
        return None
    if isinstance(values, str):
        return values
    if not isinstance(values, Sequence) or not all(
        isinstance(value, str) for value in values
    ):
        msg = (
            f"{name}: {argument}={values!r} is invalid. It must be None or a "
            f"sequence of str, such as ['a.example.com']."
        )
        raise TypeError(msg)
    return ",".join(values)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = require(data, key, "body.data")
    if not isinstance(value, str) or not value:
        raise UnexpectedBody(f"body.data.{key}")
    return value


def _chain(data: Mapping[str, Any]) -> tuple[str, ...]:
    chain = data.get("ca_chain")
    if isinstance(chain, list):
        return tuple(str(item) for item in chain)
    if isinstance(chain, str) and chain:
        return (chain,)
    return ()


def issue_call(
    name: str,
    role: object,
    common_name: object,
    *,
    alt_names: object,
    ip_sans: object,
    uri_sans: object,
    ttl: object,
    extra: object,
    mount_point: object,
    namespace: object,
) -> Call[IssuedCertificate]:
    """
    Describe the issue of a certificate for *common_name* under *role*.
    """
    role_name = check_text(name, "role", role, allow_empty=False)
    mount = check_text(name, "mount_point", mount_point, allow_empty=False)
    if not isinstance(common_name, str) or not common_name.strip():
        msg = f"{name}: common_name={common_name!r} is invalid. Pass a host name such as 'app.example.com'."
        raise ValueError(msg)
    payload: dict[str, Any] = {}
    if extra is not None:
        if not isinstance(extra, Mapping):
            msg = f"{name}: extra must be None or a mapping of API parameters (got {type(extra).__name__})."
            raise TypeError(msg)
        payload.update(extra)
    payload["common_name"] = common_name.strip()
    for argument, values in (
        ("alt_names", alt_names),
        ("ip_sans", ip_sans),
        ("uri_sans", uri_sans),
    ):
        joined = _names(name, argument, values)
        if joined is not None:
            payload[argument] = joined
    lifetime = check_duration(name, "ttl", ttl)
    if lifetime is not None:
        payload["ttl"] = lifetime

    def work(exchange: Exchange) -> IssuedCertificate:
        body = exchange.call("POST", f"{mount}/issue/{role_name}", json=payload)
        data = require(body, "data", "body")
        if not isinstance(data, dict):
            raise UnexpectedBody("body.data")
        lease_id = body.get("lease_id")
        return IssuedCertificate(
            certificate=_text(data, "certificate"),
            issuing_ca=optional_str(data, "issuing_ca"),
            ca_chain=_chain(data),
            private_key=Secret(_text(data, "private_key")),
            private_key_type=optional_str(data, "private_key_type"),
            serial_number=_text(data, "serial_number"),
            expiration=optional_int(data, "expiration"),
            lease_id=lease_id if isinstance(lease_id, str) and lease_id else None,
            lease_duration=optional_int(body, "lease_duration") or 0,
            renewable=bool(body.get("renewable")),
            warnings=warnings_of(body),
        )

    return _call(name, mount, role_name, namespace, work)


def revoke_call(
    name: str, serial_number: object, mount_point: object, namespace: object
) -> Call[CertificateRevocation]:
    """
    Describe the revocation of the certificate with *serial_number*.
    """
    mount = check_text(name, "mount_point", mount_point, allow_empty=False)
    if not isinstance(serial_number, str) or not serial_number.strip():
        msg = f"{name}: serial_number={serial_number!r} is invalid. Pass the serial number of an issued certificate, such as '39:dd:2e:...'."
        raise ValueError(msg)
    serial = serial_number.strip()

    def work(exchange: Exchange) -> CertificateRevocation:
        body = exchange.call("POST", f"{mount}/revoke", json={"serial_number": serial})
        data = body.get("data")
        data = data if isinstance(data, dict) else {}
        return CertificateRevocation(
            serial_number=serial,
            revocation_time=optional_int(data, "revocation_time"),
            state=optional_str(data, "state"),
            warnings=warnings_of(body),
        )

    return _call(name, mount, "revoke", namespace, work)
