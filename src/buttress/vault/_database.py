"""
Database secrets engine operations: dynamic credentials, which the server
creates for each request, and static credentials of an account it rotates.

A request for dynamic credentials creates a database user and a lease
every time, so it is never retried once the request may have reached the
server: a blind retry would leave an extra user behind until its lease
expires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs

from .._secret import Secret
from ._checks import check_namespace, check_text
from ._classify import replay_class
from ._request import Exchange, optional_int, optional_str, require, warnings_of
from ._runtime import Call
from ._transport import UnexpectedBody

__all__ = ["DatabaseCredentials", "StaticCredentials"]

T = TypeVar("T")

DEFAULT_MOUNT = "database"


@attrs.frozen
class DatabaseCredentials:
    """
    Dynamic database credentials and the lease that bounds their life.

    When the lease ends, the server drops the database user. Renew the
    lease with ``lease.renew`` or revoke it early with ``lease.revoke``.

    Attributes:
        lease_id: The lease's ID, for renewal and revocation.
        lease_duration: Seconds the credentials are valid from issue.
        renewable: Whether the lease can be renewed.
        username: The database user name.
        password: The database password.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    lease_id: str
    lease_duration: int
    renewable: bool
    username: Secret[str] = attrs.field(hash=False)
    password: Secret[str] = attrs.field(hash=False)
    warnings: tuple[str, ...] = ()


@attrs.frozen
class StaticCredentials:
    """
    The current credentials of a database account that the server rotates.

    Attributes:
        username: The database user name.
        password: The current password.
        ttl: Seconds until the next rotation, or None.
        rotation_period: Seconds between rotations, or None.
        last_vault_rotation: When the server last rotated the password, as
            RFC 3339 text, or None.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    username: Secret[str] = attrs.field(hash=False)
    password: Secret[str] = attrs.field(hash=False)
    ttl: int | None
    rotation_period: int | None
    last_vault_rotation: str | None
    warnings: tuple[str, ...] = ()


def _credential(data: dict[str, object], key: str) -> Secret[str]:
    value = require(data, key, "body.data")
    if not isinstance(value, str):
        raise UnexpectedBody(f"body.data.{key}")
    return Secret(value)


def _call(
    name: str, mount: str, role: str, namespace: object, work: Callable[[Exchange], T]
) -> Call[T]:
    return Call(
        name, mount, role, replay_class(name), work, check_namespace(name, namespace)
    )


def generate_credentials_call(
    name: str, role: object, mount_point: object, namespace: object
) -> Call[DatabaseCredentials]:
    """
    Describe a request for new dynamic credentials of *role*.
    """
    role_name = check_text(name, "role", role, allow_empty=False)
    mount = check_text(name, "mount_point", mount_point, allow_empty=False)

    def work(exchange: Exchange) -> DatabaseCredentials:
        body = exchange.call("GET", f"{mount}/creds/{role_name}")
        data = require(body, "data", "body")
        lease_id = require(body, "lease_id", "body")
        if not isinstance(data, dict):
            raise UnexpectedBody("body.data")
        if not isinstance(lease_id, str) or not lease_id:
            raise UnexpectedBody("body.lease_id")
        return DatabaseCredentials(
            lease_id=lease_id,
            lease_duration=optional_int(body, "lease_duration") or 0,
            renewable=bool(body.get("renewable")),
            username=_credential(data, "username"),
            password=_credential(data, "password"),
            warnings=warnings_of(body),
        )

    return _call(name, mount, role_name, namespace, work)


def read_static_credentials_call(
    name: str, role: object, mount_point: object, namespace: object
) -> Call[StaticCredentials]:
    """
    Describe a read of the current credentials of static role *role*.
    """
    role_name = check_text(name, "role", role, allow_empty=False)
    mount = check_text(name, "mount_point", mount_point, allow_empty=False)

    def work(exchange: Exchange) -> StaticCredentials:
        data, warnings = exchange.data("GET", f"{mount}/static-creds/{role_name}")
        return StaticCredentials(
            username=_credential(data, "username"),
            password=_credential(data, "password"),
            ttl=optional_int(data, "ttl"),
            rotation_period=optional_int(data, "rotation_period"),
            last_vault_rotation=optional_str(data, "last_vault_rotation"),
            warnings=warnings,
        )

    return _call(name, mount, role_name, namespace, work)
