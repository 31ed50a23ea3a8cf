"""
What each Vault failure means: its error type, whether it is retried, and
whether it counts against the circuit breaker.

`translate` turns every hvac, requests and urllib3 exception into a
`VaultAdapterError` inside the worker thread. `VaultClassifier` then gives
the Guard one verdict per error, which drives both the retry policy and
the breaker:

=====================  ================  =============  ======================
Error                  Outcome           Retried        Breaker
=====================  ================  =============  ======================
VaultUnavailable       not_executed      yes            failure
                       (connect failed)
VaultUnavailable       unknown (reset,   replay-safe    failure
                       proxy 502/504)    ops only
VaultTimeout           unknown           replay-safe    failure
                                         ops only
VaultSealed            not_executed      yes            failure
VaultServerError       unknown           replay-safe    failure
                                         ops only
VaultNotInitialized    not_executed      no             failure
ConsistencyLag         not_executed      yes            ignored
RateLimited            not_executed      yes, waiting   ignored
                                         Retry-After
QuotaExceeded          not_executed      no             ignored
PermissionDenied       failed            no             success
AuthenticationFailed   failed            no             ignored
NotFound               failed            no             success
InvalidRequest         failed            no             success
VaultConfigError       not_executed      no             ignored
=====================  ================  =============  ======================

Whether an error with an unknown outcome is retried depends on the
operation's replay class (`Replay`); `REPLAY_CLASSES` gives the class of
every operation. HTTP 400 errors about leases become `LeaseNotRenewable`
or `LeaseExpired`, a 404 for a destroyed KV version `VersionDestroyed`, a
404 for an unknown mount `MountNotFound`, and a 502 with a Vault JSON body
`UpstreamError`, a `VaultServerError`. Every error built from a response
carries its ``warnings``, ``request_id`` and node headers, and
``from_intermediary`` when the body was not Vault's JSON.

"Success" means the server responded, so the error resets the breaker's
count of consecutive failures. An attempt that the Guard's deadline cuts
short (`buttress.DeadlineExceeded`) is a breaker failure too, counted by
the Guard itself.
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import math
import re
import ssl
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeAlias

import attrs
import hvac.exceptions
import requests.exceptions
import urllib3.exceptions

from .._classify import Verdict
from ._errors import (
    AuthenticationFailed,
    CasConflict,
    ConsistencyLag,
    InvalidRequest,
    LeaseExpired,
    LeaseNotRenewable,
    MountNotFound,
    NotFound,
    Outcome,
    PermissionDenied,
    QuotaExceeded,
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
    VersionDestroyed,
)
from ._transport import MIN_SOCKET_TIMEOUT, NoTimeLeft, ResponseFailure, UnexpectedBody

__all__ = [
    "REPLAY_CLASSES",
    "Operation",
    "Replay",
    "VaultClassifier",
    "build_error",
    "parse_retry_after",
    "redact_path",
    "redact_server_text",
    "replay_class",
    "translate",
    "warnings_of",
]

# Maximum length of Vault's error text quoted in a message.
_MAX_ERROR_TEXT = 200


def redact_path(path: str) -> str:
    """
    Return *path* cut to its first segment, such as ``"app/…"`` for
    ``"app/db/password"``; a path of one segment becomes ``"…"``.
    """
    path = path.strip("/")
    if not path:
        return ""
    head, separator, _ = path.partition("/")
    return f"{head}/…" if separator else "…"


def _path_repr(path: str) -> str:
    return repr(redact_path(path))


Replay: TypeAlias = Literal[
    "safe", "idempotent", "idempotent_with_cas", "non_idempotent", "never_retry"
]
"""
What sending a request a second time does, which decides whether a retry
may follow an attempt whose outcome is unknown (a timeout or a broken
connection after the request was sent):

- ``"safe"``: a read that changes nothing, so it is retried.
- ``"idempotent"``: a change whose second run leaves the same state, such
  as a revocation or an explicit version delete, so it is retried.
- ``"idempotent_with_cas"``: a check-and-set write. A replay of a write
  that succeeded fails with a check-and-set conflict, which the adapter
  recognizes by reading the secret back, so it is retried.
- ``"non_idempotent"``: every run creates something new (a version, a
  database user, a certificate), so it is retried only when the request
  was never processed (connect failure, HTTP 503 or 429).
- ``"never_retry"``: never retried, whatever the failure.
"""

_REPLAY_SAFE: frozenset[str] = frozenset({"safe", "idempotent", "idempotent_with_cas"})

REPLAY_CLASSES: Mapping[str, Replay] = {
    # KV version 2. A name ending in "(cas)" is the form called with cas.
    "read_secret": "safe",
    "write_secret": "non_idempotent",
    "write_secret(cas)": "idempotent_with_cas",
    "list_secrets": "safe",
    "delete_secret": "non_idempotent",
    "kv.read": "safe",
    "kv.write": "non_idempotent",
    "kv.write(cas)": "idempotent_with_cas",
    "kv.patch": "non_idempotent",
    "kv.patch(cas)": "idempotent_with_cas",
    "kv.list": "safe",
    "kv.read_metadata": "safe",
    "kv.write_metadata": "idempotent",
    "kv.read_subkeys": "safe",
    # The latest version may change between two runs, so a replay could
    # delete a newer version that another writer added.
    "kv.delete": "non_idempotent",
    "kv.delete_versions": "idempotent",
    "kv.undelete_versions": "idempotent",
    "kv.destroy_versions": "idempotent",
    "kv.delete_metadata": "idempotent",
    # KV version 1: a write replaces the whole secret.
    "kv1.read": "safe",
    "kv1.write": "idempotent",
    "kv1.list": "safe",
    "kv1.delete": "idempotent",
    # Transit keeps no state per request. Ciphertexts differ between runs,
    # and every one of them decrypts.
    "transit.read_key": "safe",
    "transit.encrypt": "idempotent",
    "transit.decrypt": "safe",
    "transit.rewrap": "idempotent",
    "transit.encrypt_batch": "idempotent",
    "transit.decrypt_batch": "safe",
    "transit.rewrap_batch": "idempotent",
    # Each call creates a database user and a lease.
    "database.generate_credentials": "non_idempotent",
    "database.read_static_credentials": "safe",
    # Each call creates a certificate with a new serial number.
    "pki.issue": "non_idempotent",
    "pki.revoke": "idempotent",
    "token.lookup_self": "safe",
    "token.renew_self": "idempotent",
    "token.revoke_self": "idempotent",
    "lease.lookup": "safe",
    "lease.renew": "idempotent",
    "lease.revoke": "idempotent",
}
"""
The replay class of every operation of the adapter, by the name that its
errors carry. The generic ``read``, ``write``, ``list`` and ``delete``
operations take theirs from the caller.
"""


def replay_class(name: str, *, cas: bool = False) -> Replay:
    """
    Return the replay class of operation *name*, in its check-and-set form
    when *cas* is true and the operation has one.
    """
    if cas:
        with_cas = REPLAY_CLASSES.get(f"{name}(cas)")
        if with_cas is not None:
            return with_cas
    return REPLAY_CLASSES[name]


def _default_replay(operation: Operation) -> Replay:
    return "idempotent" if operation.replay_safe else "non_idempotent"


def _check_replay(
    instance: Operation, attribute: attrs.Attribute[Replay], value: Replay
) -> None:
    if (value in _REPLAY_SAFE) != instance.replay_safe:
        msg = (
            f"Operation {instance.name!r}: replay={value!r} contradicts "
            f"replay_safe={instance.replay_safe!r}. Build it with "
            f"Operation.create to derive one from the other."
        )
        raise ValueError(msg)


@attrs.frozen
class Operation:
    """
    One adapter operation, as errors and the classifier see it.

    Attributes:
        name: The adapter method, such as ``"read_secret"``.
        mount: The secrets engine mount.
        path: The secret path; its repr is redacted.
        replay_safe: Whether sending the request twice leaves the same
            state as sending it once, so an unknown outcome may be retried.
        server: The server's URL, for messages about the connection.
        replay: The operation's replay class; by default ``"idempotent"``
            or ``"non_idempotent"``, from *replay_safe*.
        namespace: The namespace sent with this operation's requests in
            place of the configured one, ``""`` for the root namespace, or
            None to keep the configured one.
    """

    name: str
    mount: str
    path: str = attrs.field(repr=_path_repr)
    replay_safe: bool
    server: str
    replay: Replay = attrs.field(
        default=attrs.Factory(_default_replay, takes_self=True),
        validator=_check_replay,
    )
    namespace: str | None = None

    @classmethod
    def create(
        cls,
        name: str,
        mount: str,
        path: str,
        replay: Replay,
        server: str,
        namespace: str | None = None,
    ) -> Operation:
        """
        Build an operation of replay class *replay*.
        """
        return cls(
            name,
            mount,
            path,
            replay in _REPLAY_SAFE,
            server,
            replay=replay,
            namespace=namespace,
        )

    @property
    def retries_allowed(self) -> bool:
        """
        Whether any failure of this operation may be retried.
        """
        return self.replay != "never_retry"

    def where(self) -> str:
        """
        Return the operation, mount and redacted path, for messages.
        """
        text = f"{self.name} on mount {self.mount!r}"
        if self.path:
            text += f" at path {redact_path(self.path)!r}"
        return text


@attrs.frozen
class _Rule:
    # transient: retried when the outcome allows it for the operation.
    # breaker_failure: True counts a failure, False a success, None neither.
    transient: bool
    breaker_failure: bool | None


_RULES: dict[type[VaultAdapterError], _Rule] = {
    VaultUnavailable: _Rule(transient=True, breaker_failure=True),
    VaultTimeout: _Rule(transient=True, breaker_failure=True),
    VaultSealed: _Rule(transient=True, breaker_failure=True),
    VaultServerError: _Rule(transient=True, breaker_failure=True),
    VaultNotInitialized: _Rule(transient=False, breaker_failure=True),
    # The node is behind, not down.
    ConsistencyLag: _Rule(transient=True, breaker_failure=None),
    RateLimited: _Rule(transient=True, breaker_failure=None),
    # The quota frees up only when leases expire, so a retry cannot help.
    QuotaExceeded: _Rule(transient=False, breaker_failure=None),
    PermissionDenied: _Rule(transient=False, breaker_failure=False),
    # A proxy's 401 is no evidence about Vault's health.
    AuthenticationFailed: _Rule(transient=False, breaker_failure=None),
    NotFound: _Rule(transient=False, breaker_failure=False),
    InvalidRequest: _Rule(transient=False, breaker_failure=False),
    VaultConfigError: _Rule(transient=False, breaker_failure=None),
}
_NO_RULE = _Rule(transient=False, breaker_failure=None)


def _rule(error_type: type[VaultAdapterError]) -> _Rule:
    for klass in error_type.__mro__:
        rule = _RULES.get(klass)
        if rule is not None:
            return rule
    return _NO_RULE


def is_retryable(
    error_type: type[VaultAdapterError], outcome: Outcome, *, replay_safe: bool
) -> bool:
    """
    Return whether an error of *error_type* with *outcome* is retried for an
    operation that is, or is not, safe to replay.
    """
    if not _rule(error_type).transient:
        return False
    return outcome != "unknown" or replay_safe


@attrs.frozen
class VaultClassifier:
    """
    The `buttress.Classifier` of the Vault adapter: it reads the verdict
    from the `VaultAdapterError` that `translate` built.

    Any other exception (a bug, not a Vault failure) is not retried and
    does not count for the breaker.
    """

    def classify(self, exc: BaseException) -> Verdict:
        if not isinstance(exc, VaultAdapterError):
            return Verdict(retryable=False, breaker_failure=None)
        breaker_failure = _rule(type(exc)).breaker_failure
        if isinstance(exc, VaultTimeout) and exc.outcome == "not_executed":
            # The deadline passed before the request was sent, so the error
            # is no evidence about the server's health.
            breaker_failure = None
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        return Verdict(
            retryable=exc.retryable,
            breaker_failure=breaker_failure,
            outcome_known=exc.outcome != "unknown",
            retry_after=retry_after,
        )


def parse_retry_after(
    value: str | None, *, now: datetime.datetime | None = None
) -> float | None:
    """
    Return the seconds of delay a ``Retry-After`` header requests, or None.

    Accepts delta-seconds (``"2"``) and an HTTP-date; a date in the past
    gives 0.0. An absent or unparseable header gives None.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (when - now).total_seconds())


# -- translation ----------------------------------------------------------


def _make(
    error_type: type[VaultAdapterError],
    op: Operation,
    message: str,
    *,
    outcome: Outcome,
    status: int | None = None,
    errors: tuple[str, ...] = (),
    **extra: Any,
) -> VaultAdapterError:
    # *extra* contains the fields of a subclass, such as RateLimited.retry_after.
    retryable = op.retries_allowed and is_retryable(
        error_type, outcome, replay_safe=op.replay_safe
    )
    return error_type(
        message,
        operation=op.name,
        mount=op.mount,
        path=redact_path(op.path) or None,
        status=status,
        errors=errors,
        outcome=outcome,
        retryable=retryable,
        **extra,
    )


def build_error(
    error_type: type[VaultAdapterError],
    op: Operation,
    message: str,
    *,
    outcome: Outcome,
    status: int | None = None,
    errors: tuple[str, ...] = (),
) -> VaultAdapterError:
    """
    Build an error of *error_type* for *op*, with its retry verdict.

    *message* must not contain the token, secret values or the full path.
    """
    return _make(error_type, op, message, outcome=outcome, status=status, errors=errors)


def redact_server_text(texts: tuple[str, ...], op: Operation) -> str:
    """
    Return Vault's error or warning texts joined for a message or a log
    line, with the secret path redacted and the length capped.
    """
    return _vault_errors_text(texts, op)


def _vault_errors_text(errors: tuple[str, ...], op: Operation) -> str:
    """
    Return Vault's error texts for a message, with the secret path redacted.
    """
    cleaned = (" ".join(error.split()).rstrip(".") for error in errors)
    text = "; ".join(error for error in cleaned if error)
    path = op.path.strip("/")
    if path:
        # Vault quotes routes such as "secret/data/app/db" in its errors.
        route = re.compile(
            r"(?:^|(?<=[\s\"'(]))(?:[^\s\"']*/)?"
            + re.escape(path)
            + r"(?=$|[\s\"'),.;:])"
        )
        text = route.sub(redact_path(path), text)
    if len(text) > _MAX_ERROR_TEXT:
        text = text[: _MAX_ERROR_TEXT - 1] + "…"
    return text


def _deleted_version(body: dict[str, object] | None) -> dict[str, object] | None:
    """
    Return the version metadata of a 404 body that reports a deleted or
    destroyed KV version 2 secret, or None.
    """
    if body is None:
        return None
    data = body.get("data")
    if not isinstance(data, dict):
        return None
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return None
    if metadata.get("deletion_time") or metadata.get("destroyed"):
        return metadata
    return None


def _not_found(
    failure: ResponseFailure, op: Operation, prefix: str
) -> VaultAdapterError:
    metadata = _deleted_version(failure.body)
    if metadata is None:
        error_type: type[NotFound] = NotFound
        if any("no handler for route" in error for error in failure.errors):
            error_type = MountNotFound
            advice = (
                f"No secrets engine is mounted at {op.mount!r}, so check mount_point."
            )
        else:
            advice = "Nothing exists at this path, or the version does not exist."
        return _make(
            error_type,
            op,
            f"{prefix} {advice}",
            outcome="failed",
            status=failure.status,
            errors=failure.errors,
        )
    version = metadata.get("version")
    deletion_time = metadata.get("deletion_time")
    destroyed = bool(metadata.get("destroyed"))
    if destroyed:
        deleted_type: type[SecretDeleted] = VersionDestroyed
        advice = "It cannot be recovered, so read another version."
    else:
        deleted_type = SecretDeleted
        advice = "Undelete it, or read another version."
    state = "destroyed" if destroyed else "deleted"
    return _make(
        deleted_type,
        op,
        f"{op.where()} failed with HTTP 404: version {version} of the secret "
        f"is {state}. {advice}",
        outcome="failed",
        status=failure.status,
        errors=failure.errors,
        version=version if isinstance(version, int) else None,
        deletion_time=deletion_time if isinstance(deletion_time, str) else None,
        destroyed=destroyed,
    )


def _rate_limited(
    failure: ResponseFailure, op: Operation, prefix: str
) -> VaultAdapterError:
    if any("lease count quota exceeded" in error.lower() for error in failure.errors):
        # HashiCorp Vault Enterprise sends this text. OpenBao 2.7 has no
        # lease-count quotas.
        return _make(
            QuotaExceeded,
            op,
            f"{prefix} A lease-count quota rejected the request before it ran. "
            f"Revoke leases that are no longer used, or ask the operator to "
            f"raise the quota.",
            outcome="not_executed",
            status=failure.status,
            errors=failure.errors,
        )
    retry_after = parse_retry_after(failure.retry_after)
    if retry_after is None:
        wait = "The server sent no Retry-After header."
    else:
        wait = f"The server asked to retry after {retry_after:g} s."
    return _make(
        RateLimited,
        op,
        f"{prefix} A rate-limit quota rejected the request before it ran. {wait}",
        outcome="not_executed",
        status=failure.status,
        errors=failure.errors,
        retry_after=retry_after,
    )


# Vault's texts for a lease or token that cannot be renewed or does not
# exist any more, as OpenBao 2.7 sends them with HTTP 400.
_NOT_RENEWABLE_TEXTS = ("lease is not renewable", "batch tokens cannot be renewed")
_LEASE_GONE_TEXTS = ("lease not found", "invalid lease")


def _lease_error(
    errors: tuple[str, ...],
) -> tuple[type[VaultAdapterError], str] | None:
    text = " ".join(errors).lower()
    if any(known in text for known in _NOT_RENEWABLE_TEXTS):
        return (
            LeaseNotRenewable,
            "The lease or token cannot be renewed, so request a new secret or "
            "log in again before it expires.",
        )
    if any(known in text for known in _LEASE_GONE_TEXTS):
        return (
            LeaseExpired,
            "The lease does not exist any more: it expired, was revoked, or "
            "the lease_id is wrong. Request a new secret.",
        )
    return None


def _from_status(failure: ResponseFailure, op: Operation) -> VaultAdapterError:
    error = _status_error(failure, op)
    body = failure.body
    if body is None:
        error.from_intermediary = True
    else:
        error.warnings = warnings_of(body)
        request_id = body.get("request_id")
        if isinstance(request_id, str) and request_id:
            error.request_id = request_id
    error.hostname = failure.hostname
    error.raft_node_id = failure.raft_node_id
    return error


def warnings_of(body: Mapping[str, Any]) -> tuple[str, ...]:
    """
    Return the ``warnings`` list of a response body as a tuple of str.
    """
    warnings = body.get("warnings")
    if not isinstance(warnings, list):
        return ()
    return tuple(str(warning) for warning in warnings)


def _status_error(failure: ResponseFailure, op: Operation) -> VaultAdapterError:
    status = failure.status
    errors = failure.errors
    vault_text = _vault_errors_text(errors, op)
    details = f": {vault_text}" if vault_text else ""
    prefix = f"{op.where()} failed with HTTP {status}{details}."
    is_vault_json = failure.body is not None

    def make(
        error_type: type[VaultAdapterError], advice: str, outcome: Outcome
    ) -> VaultAdapterError:
        return _make(
            error_type,
            op,
            f"{prefix} {advice}",
            outcome=outcome,
            status=status,
            errors=errors,
        )

    if status < 400:
        return _make(
            VaultUnavailable,
            op,
            f"{op.where()} got HTTP {status} without a Vault JSON body, so something "
            f"other than Vault responded at {op.server}. Check the url and any proxy.",
            outcome="unknown",
            status=status,
        )
    if status == 400 and any(
        "check-and-set" in error and "did not match" in error for error in errors
    ):
        return make(
            CasConflict,
            "The secret's current version is not the cas version given, so read "
            "it again and write with its current version.",
            "failed",
        )
    if status == 400:
        lease_error = _lease_error(errors)
        if lease_error is not None:
            error_type, advice = lease_error
            return make(error_type, advice, "failed")
    if status == 412:
        if any("x-vault-request" in error.lower() for error in errors):
            return make(
                VaultConfigError,
                "A Vault Agent or proxy listener requires the X-Vault-Request "
                "header, which the adapter sends but the listener did not "
                "receive. Check for a proxy in between that drops it.",
                "not_executed",
            )
        return make(
            ConsistencyLag,
            "The server has not yet caught up with state this request depends "
            "on and processed nothing, so a retry is safe.",
            "not_executed",
        )
    if status == 401:
        return make(
            AuthenticationFailed,
            f"Vault answers a bad token with 403, so a proxy or gateway in front "
            f"of {op.server} rejected the request's credentials. Check the "
            f"proxy's authentication settings.",
            "failed",
        )
    if status == 403:
        return make(
            PermissionDenied,
            "Check that the token is valid and not expired, and that its policies "
            "allow this operation on this path.",
            "failed",
        )
    if status == 404:
        return _not_found(failure, op, prefix)
    if status == 429:
        return _rate_limited(failure, op, prefix)
    if status < 500:
        return make(
            InvalidRequest,
            "The server rejected the request as invalid, so check the arguments.",
            "failed",
        )
    if status == 501:
        return make(
            VaultNotInitialized,
            "The server is not initialized. Run 'bao operator init' (or 'vault "
            "operator init') on it.",
            "not_executed",
        )
    if status == 503:
        if is_vault_json and any("sealed" in error.lower() for error in errors):
            return make(
                VaultSealed,
                "The server is sealed and processed nothing. Unseal it.",
                "not_executed",
            )
        return make(
            VaultUnavailable,
            "The server or a proxy in front of it is unavailable and processed "
            "nothing.",
            "not_executed",
        )
    if not is_vault_json and status in (502, 504):
        return make(
            VaultUnavailable,
            f"A proxy or load balancer in front of {op.server} responded, so the "
            f"request may or may not have reached Vault.",
            "unknown",
        )
    if status == 502:
        return make(
            UpstreamError,
            "A backend that the secrets engine depends on failed, so the request "
            "may or may not have taken effect.",
            "unknown",
        )
    return make(
        VaultServerError,
        "The server failed while handling the request, so it may or may not have "
        "taken effect.",
        "unknown",
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _reason(exc: BaseException) -> str:
    """
    Return the root cause of a transport error, such as ``"ConnectionRefusedError:
    [Errno 111] Connection refused"``.

    The texts of requests and urllib3 exceptions contain the request URL,
    and so the secret path. Only the standard library's texts are quoted.
    """
    root = list(_chain(exc))[-1]
    module = type(root).__module__
    if module.startswith(("requests", "urllib3", "hvac")):
        return type(root).__name__
    text = str(root)
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def _has(exc: BaseException, *types: type[BaseException]) -> bool:
    return any(isinstance(link, types) for link in _chain(exc))


def _failed_to_connect(
    exc: requests.exceptions.RequestException, op: Operation
) -> VaultAdapterError | None:
    """
    Return the error for a requests exception raised before the request was
    sent (TLS, connect or proxy failures), or None for any other.
    """
    reason = _reason(exc)
    where = op.where()
    server = op.server
    if isinstance(exc, requests.exceptions.SSLError):
        if _has(exc, ssl.SSLCertVerificationError):
            return _make(
                VaultConfigError,
                op,
                f"{where} failed: the TLS certificate of {server} could not be "
                f"verified ({reason}). Set verify to the CA bundle that signed it.",
                outcome="not_executed",
            )
        return _make(
            VaultUnavailable,
            op,
            f"{where} failed: the TLS handshake with {server} failed ({reason}).",
            outcome="not_executed",
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout) or (
        isinstance(exc, requests.exceptions.ConnectionError)
        and _has(exc, urllib3.exceptions.ConnectTimeoutError)
    ):
        # urllib3 raises ConnectTimeoutError and its subclasses
        # NewConnectionError and NameResolutionError before sending.
        return _make(
            VaultUnavailable,
            op,
            f"{where} failed: could not connect to {server} ({reason}). Nothing "
            f"was sent, so a retry is safe.",
            outcome="not_executed",
        )
    if isinstance(exc, requests.exceptions.ProxyError):
        return _make(
            VaultUnavailable,
            op,
            f"{where} failed: could not connect through the proxy to {server} "
            f"({reason}).",
            outcome="not_executed",
        )
    if isinstance(exc, requests.exceptions.Timeout) and _while_connecting(exc):
        return _make(
            VaultUnavailable,
            op,
            f"{where} failed: the connection to {server} was not set up in "
            f"time, in the TLS handshake or the proxy tunnel ({reason}). Nothing "
            f"was sent, so a retry is safe.",
            outcome="not_executed",
        )
    return None


# urllib3 sets up a new connection (TCP connect, proxy tunnel, TLS
# handshake) in these functions, and reports a timeout there as a read
# timeout. Only the frames of the timeout tell the two apart.
_CONNECTING_FRAMES = frozenset({"_validate_conn", "_tunnel", "_connect_tls_proxy"})


def _while_connecting(exc: BaseException) -> bool:
    """
    Return whether a timeout in *exc*'s chain happened while urllib3 set up
    the connection, before any of the request was sent.
    """
    for link in _chain(exc):
        traceback = link.__traceback__
        while traceback is not None:
            if traceback.tb_frame.f_code.co_name in _CONNECTING_FRAMES:
                return True
            traceback = traceback.tb_next
    return False


def _from_requests(
    exc: requests.exceptions.RequestException, op: Operation
) -> VaultAdapterError:
    connect_error = _failed_to_connect(exc, op)
    if connect_error is not None:
        return connect_error
    reason = _reason(exc)
    where = op.where()
    server = op.server
    if isinstance(exc, requests.exceptions.Timeout):
        return _make(
            VaultTimeout,
            op,
            f"{where} timed out: {server} did not answer within the socket timeout "
            f"after the request was sent, so it may or may not have taken effect.",
            outcome="unknown",
        )
    if isinstance(
        exc,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ),
    ):
        return _make(
            VaultUnavailable,
            op,
            f"{where} failed: the connection to {server} broke after the request "
            f"was sent ({reason}), so it may or may not have taken effect.",
            outcome="unknown",
        )
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return _make(
            VaultConfigError,
            op,
            f"{where} failed: {server} redirected too many times. Check the url.",
            outcome="unknown",
        )
    if isinstance(
        exc,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidHeader,
        ),
    ):
        return _make(
            VaultConfigError,
            op,
            f"{where} failed: the request to {server} could not be built "
            f"({reason}). Check the url and namespace.",
            outcome="not_executed",
        )
    if isinstance(exc, requests.exceptions.InvalidJSONError) and not isinstance(
        exc, requests.exceptions.JSONDecodeError
    ):
        return _make(
            InvalidRequest,
            op,
            f"{where} failed: the request data could not be encoded as JSON "
            f"({reason}). Pass only str keys and JSON-compatible values.",
            outcome="not_executed",
        )
    return _make(
        VaultUnavailable,
        op,
        f"{where} failed: the request to {server} failed ({reason}), so it may or "
        f"may not have taken effect.",
        outcome="unknown",
    )


# The status behind each hvac exception, for hvac code paths that raise
# their own exceptions rather than returning the response.
_HVAC_STATUS: dict[type[hvac.exceptions.VaultError], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.UnsupportedOperation: 405,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def _from_hvac(exc: hvac.exceptions.VaultError, op: Operation) -> VaultAdapterError:
    if isinstance(exc, hvac.exceptions.ParamValidationError):
        return _make(
            InvalidRequest,
            op,
            f"{op.where()} failed: hvac rejected the arguments before sending "
            f"the request. Check the arguments.",
            outcome="not_executed",
        )
    errors = tuple(str(error) for error in exc.errors or ())
    body = exc.json if isinstance(exc.json, dict) else None
    if body is None and errors:
        # hvac found an errors list, so the body was Vault's JSON.
        body = {"errors": list(errors)}
    status = _HVAC_STATUS.get(type(exc))
    if status is None:
        return _make(
            VaultAdapterError,
            op,
            f"{op.where()} failed with an unexpected response ({type(exc).__name__}).",
            outcome="unknown",
            errors=errors,
        )
    return _from_status(ResponseFailure(status, errors=errors, body=body), op)


def translate(exc: BaseException, op: Operation) -> VaultAdapterError | None:
    """
    Return the `VaultAdapterError` for an exception raised while running
    *op*, or None when *exc* is not a Vault or transport failure.

    The result never contains the token, secret values or the full path.
    """
    if isinstance(exc, VaultAdapterError):
        return exc
    if isinstance(exc, ResponseFailure):
        return _from_status(exc, op)
    if isinstance(exc, UnexpectedBody):
        return _make(
            VaultAdapterError,
            op,
            f"{op.where()} got a response without the field {exc.field}. Check "
            f"that mount {op.mount!r} is the secrets engine this operation "
            f"expects, such as KV version 2 for the KV version 2 operations.",
            outcome="unknown",
        )
    if isinstance(exc, NoTimeLeft):
        return _make(
            VaultTimeout,
            op,
            f"{op.where()} was not sent, because the deadline left less than "
            f"{MIN_SOCKET_TIMEOUT} s. Raise timeout_seconds if this repeats.",
            outcome="not_executed",
        )
    if isinstance(exc, hvac.exceptions.VaultError):
        return _from_hvac(exc, op)
    if isinstance(exc, requests.exceptions.RequestException):
        return _from_requests(exc, op)
    if isinstance(exc, (urllib3.exceptions.HTTPError, http.client.HTTPException)):
        return _make(
            VaultUnavailable,
            op,
            f"{op.where()} failed: the connection to {op.server} failed "
            f"({_reason(exc)}), so the request may or may not have taken effect.",
            outcome="unknown",
        )
    if isinstance(exc, OSError):
        return _make(
            VaultUnavailable,
            op,
            f"{op.where()} failed before the request was sent ({_reason(exc)}).",
            outcome="not_executed",
        )
    return None
