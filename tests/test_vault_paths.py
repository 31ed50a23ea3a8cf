"""
Paths, mounts and namespaces with "." or ".." segments are refused before
anything is sent, because the server resolves them to a path outside the
one the operation names (``secret/data/../../sys/mounts`` is
``sys/mounts``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from buttress.vault import VaultAdapter
from buttress.vault._request import _quote

pytestmark = pytest.mark.anyio

# Nothing listens here; a request that was sent would fail with
# VaultUnavailable instead of the ValueError the checks raise.
CONFIG = {"url": "http://127.0.0.1:9", "token": "path-test-token"}

Operation = Callable[[VaultAdapter], Awaitable[Any]]

OPERATIONS: dict[str, Operation] = {
    "read_secret": lambda v: v.read_secret("../../sys/mounts"),
    "delete_secret": lambda v: v.delete_secret("../../sys/mounts/victim"),
    "write_secret": lambda v: v.write_secret("app/../../../sys/policy/x", {"k": 1}),
    "list_secrets": lambda v: v.list_secrets("../.."),
    "kv.read_metadata": lambda v: v.kv.read_metadata("a/./b"),
    "kv.destroy_versions": lambda v: v.kv.destroy_versions("..", [1]),
    "mount_point": lambda v: v.read_secret("app", mount_point="secret/.."),
    "namespace": lambda v: v.read_secret("app", namespace="team/.."),
    "kv1.write": lambda v: v.kv1.write("../sys/mounts/x", {"type": "kv"}),
    "transit.encrypt": lambda v: v.transit.encrypt("../../sys/x", b"plain"),
    "database": lambda v: v.database.generate_credentials("../../sys/mounts"),
    "pki.issue": lambda v: v.pki.issue("../root/generate", "example.test"),
    "generic read": lambda v: v.read("secret/../sys/mounts"),
    "generic delete": lambda v: v.delete("secret/../sys/mounts/x", replay="idempotent"),
}


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
async def test_dot_segments_refused(operation: Operation) -> None:
    async with VaultAdapter(CONFIG) as vault:
        with pytest.raises(ValueError, match=r"'\.' or '\.\.' segment") as refused:
            await operation(vault)
        statistics = vault.executor.statistics()

    assert statistics.completed == statistics.failed == 0
    assert "sys" not in str(refused.value)


@pytest.mark.parametrize("path", ["app.d/db", "app/.hidden", "app/..x", "a/b..c"])
def test_dots_inside_a_segment_allowed(path: str) -> None:
    assert _quote(f"secret/data/{path}") == f"secret/data/{path}"


@pytest.mark.parametrize("path", ["secret/data/../x", "./secret", "secret/data/."])
def test_request_path_with_dot_segment_not_sent(path: str) -> None:
    with pytest.raises(ValueError, match="was not sent"):
        _quote(path)
