"""
Operations on the adapter's own token (``auth/token/*-self``) and on
leases (``sys/leases/*``).

Looking up, renewing and revoking are all safe to replay: a renewal
counts the new TTL from the time it runs, and revoking twice has the same
effect as once. A replayed ``revoke_self`` whose first run succeeded
fails with HTTP 403, because the token no longer exists; the adapter
counts that as the success it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from ._checks import check_duration, check_namespace
from ._classify import replay_class, translate
from ._errors import PermissionDenied
from ._request import Exchange, optional_int, optional_str, require, warnings_of
from ._runtime import Call
from ._transport import UnexpectedBody

__all__ = ["LeaseInfo", "LeaseRenewal", "TokenInfo", "TokenRenewal"]

T = TypeVar("T")

TOKEN_MOUNT = "auth/token"
LEASE_MOUNT = "sys/leases"


@attrs.frozen
class TokenInfo:
    """
    The server's record of the adapter's token, without the token itself.

    Attributes:
        accessor: The token's accessor, which names it in audit logs and
            lets an operator revoke it without knowing it.
        display_name: The token's display name.
        policies: The token's policies.
        ttl: Seconds the token has left; 0 for a token that never expires,
            such as a root token.
        creation_ttl: The TTL the token was created with, in seconds.
        renewable: Whether the token can be renewed.
        token_type: ``"service"`` or ``"batch"``, or None.
        num_uses: Uses left for a use-limited token, 0 for no limit.
        orphan: Whether the token has no parent.
        expire_time: When the token expires, as RFC 3339 text, or None.
        explicit_max_ttl: The cap on the token's life in seconds, 0 for
            none.
        period: The renewal period of a periodic token in seconds, or None.
        path: The login path that created the token.
        entity_id: The identity entity the token belongs to, or None.
        metadata: The token's metadata, or None.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    accessor: str | None
    display_name: str | None
    policies: tuple[str, ...]
    ttl: int
    creation_ttl: int | None
    renewable: bool
    token_type: str | None
    num_uses: int
    orphan: bool
    expire_time: str | None
    explicit_max_ttl: int
    period: int | None
    path: str | None
    entity_id: str | None
    metadata: dict[str, str] | None
    warnings: tuple[str, ...] = ()


@attrs.frozen
class TokenRenewal:
    """
    The outcome of a renewal of the adapter's token, without the token.

    Attributes:
        accessor: The token's accessor.
        policies: The token's policies.
        lease_duration: Seconds the token now has left. It may be less than
            the increment requested, when a maximum TTL caps it.
        renewable: Whether the token can be renewed again.
        token_type: ``"service"`` or ``"batch"``, or None.
        warnings: The server's warnings, such as a note that the TTL was
            capped.

    .. versionadded:: 0.1.0
    """

    accessor: str | None
    policies: tuple[str, ...]
    lease_duration: int
    renewable: bool
    token_type: str | None
    warnings: tuple[str, ...] = ()


@attrs.frozen
class LeaseInfo:
    """
    The state of a lease.

    Attributes:
        lease_id: The lease's ID.
        issue_time: When the lease was created, as RFC 3339 text.
        expire_time: When it expires, as RFC 3339 text, or None.
        last_renewal: When it was last renewed, or None.
        renewable: Whether it can be renewed.
        ttl: Seconds it has left.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    lease_id: str
    issue_time: str | None
    expire_time: str | None
    last_renewal: str | None
    renewable: bool
    ttl: int
    warnings: tuple[str, ...] = ()


@attrs.frozen
class LeaseRenewal:
    """
    The outcome of a lease renewal.

    Attributes:
        lease_id: The lease's ID.
        lease_duration: Seconds the lease now has left, counted from the
            renewal. It may be less than the increment requested, when the
            lease's maximum TTL caps it.
        renewable: Whether it can be renewed again.
        warnings: The server's warnings about the request.

    .. versionadded:: 0.1.0
    """

    lease_id: str
    lease_duration: int
    renewable: bool
    warnings: tuple[str, ...] = ()


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _call(
    name: str, mount: str, path: str, namespace: object, work: Callable[[Exchange], T]
) -> Call[T]:
    return Call(
        name, mount, path, replay_class(name), work, check_namespace(name, namespace)
    )


def _increment(name: str, increment: object) -> dict[str, Any]:
    lifetime = check_duration(name, "increment", increment)
    return {} if lifetime is None else {"increment": lifetime}


# -- the adapter's token --------------------------------------------------


def _token_info(data: Mapping[str, Any], warnings: tuple[str, ...]) -> TokenInfo:
    metadata = data.get("meta")
    # The body's "id" is the token itself, so it is never read.
    return TokenInfo(
        accessor=optional_str(data, "accessor"),
        display_name=optional_str(data, "display_name"),
        policies=_strings(data.get("policies")),
        ttl=optional_int(data, "ttl") or 0,
        creation_ttl=optional_int(data, "creation_ttl"),
        renewable=bool(data.get("renewable")),
        token_type=optional_str(data, "type"),
        num_uses=optional_int(data, "num_uses") or 0,
        orphan=bool(data.get("orphan")),
        expire_time=optional_str(data, "expire_time"),
        explicit_max_ttl=optional_int(data, "explicit_max_ttl") or 0,
        period=optional_int(data, "period"),
        path=optional_str(data, "path"),
        entity_id=optional_str(data, "entity_id"),
        metadata=metadata if isinstance(metadata, dict) else None,
        warnings=warnings,
    )


def lookup_self_call(name: str, namespace: object) -> Call[TokenInfo]:
    """
    Describe a lookup of the adapter's token.
    """

    def work(exchange: Exchange) -> TokenInfo:
        data, warnings = exchange.data("GET", f"{TOKEN_MOUNT}/lookup-self")
        return _token_info(data, warnings)

    return _call(name, TOKEN_MOUNT, "lookup-self", namespace, work)


def renew_self_call(
    name: str, increment: object, namespace: object
) -> Call[TokenRenewal]:
    """
    Describe a renewal of the adapter's token.
    """
    payload = _increment(name, increment)

    def work(exchange: Exchange) -> TokenRenewal:
        body = exchange.call("POST", f"{TOKEN_MOUNT}/renew-self", json=payload)
        auth = require(body, "auth", "body")
        if not isinstance(auth, dict):
            raise UnexpectedBody("body.auth")
        # auth.client_token is the token itself, so it is never read.
        return TokenRenewal(
            accessor=optional_str(auth, "accessor"),
            policies=_strings(auth.get("policies")),
            lease_duration=optional_int(auth, "lease_duration") or 0,
            renewable=bool(auth.get("renewable")),
            token_type=optional_str(auth, "token_type"),
            warnings=warnings_of(body),
        )

    return _call(name, TOKEN_MOUNT, "renew-self", namespace, work)


class _RevokeSelf:
    """
    Revokes the adapter's token, and counts a 403 on a retry after an
    unknown outcome as the earlier attempt's success.
    """

    def __init__(self) -> None:
        # Set by an attempt whose outcome was unknown and read by the next.
        # The retry policy runs attempts one after another, so no lock is
        # needed.
        self.maybe_applied = False

    def __call__(self, exchange: Exchange) -> None:
        try:
            exchange.call("POST", f"{TOKEN_MOUNT}/revoke-self")
        except Exception as exc:
            error = translate(exc, exchange.op)
            if error is None:
                raise
        else:
            return
        if isinstance(error, PermissionDenied) and self.maybe_applied:
            return
        if error.outcome == "unknown":
            self.maybe_applied = True
        raise error


def revoke_self_call(name: str, namespace: object) -> Call[None]:
    """
    Describe a revocation of the adapter's token.
    """
    return _call(name, TOKEN_MOUNT, "revoke-self", namespace, _RevokeSelf())


# -- leases -------------------------------------------------------------


def _lease_id(name: str, lease_id: object) -> str:
    if not isinstance(lease_id, str) or not lease_id.strip("/ "):
        msg = (
            f"{name}: lease_id must be a non-empty str, such as the lease_id "
            f"of dynamic credentials (got {type(lease_id).__name__})."
        )
        raise ValueError(msg)
    return lease_id.strip()


def lookup_lease_call(
    name: str, lease_id: object, namespace: object
) -> Call[LeaseInfo]:
    """
    Describe a lookup of a lease.
    """
    lease = _lease_id(name, lease_id)

    def work(exchange: Exchange) -> LeaseInfo:
        data, warnings = exchange.data(
            "PUT", f"{LEASE_MOUNT}/lookup", json={"lease_id": lease}
        )
        return LeaseInfo(
            lease_id=optional_str(data, "id") or lease,
            issue_time=optional_str(data, "issue_time"),
            expire_time=optional_str(data, "expire_time"),
            last_renewal=optional_str(data, "last_renewal"),
            renewable=bool(data.get("renewable")),
            ttl=optional_int(data, "ttl") or 0,
            warnings=warnings,
        )

    return _call(name, LEASE_MOUNT, lease, namespace, work)


def renew_lease_call(
    name: str, lease_id: object, increment: object, namespace: object
) -> Call[LeaseRenewal]:
    """
    Describe a renewal of a lease.
    """
    lease = _lease_id(name, lease_id)
    payload = {"lease_id": lease, **_increment(name, increment)}

    def work(exchange: Exchange) -> LeaseRenewal:
        body = exchange.call("PUT", f"{LEASE_MOUNT}/renew", json=payload)
        returned = body.get("lease_id")
        return LeaseRenewal(
            lease_id=returned if isinstance(returned, str) and returned else lease,
            lease_duration=optional_int(body, "lease_duration") or 0,
            renewable=bool(body.get("renewable")),
            warnings=warnings_of(body),
        )

    return _call(name, LEASE_MOUNT, lease, namespace, work)


def revoke_lease_call(name: str, lease_id: object, namespace: object) -> Call[None]:
    """
    Describe a revocation of a lease; revoking a lease that is already
    revoked succeeds.
    """
    lease = _lease_id(name, lease_id)

    def work(exchange: Exchange) -> None:
        exchange.call("PUT", f"{LEASE_MOUNT}/revoke", json={"lease_id": lease})

    return _call(name, LEASE_MOUNT, lease, namespace, work)
