"""
Fixtures shared by the whole suite: the async backends and one OpenBao dev
server for the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import buttress
from buttress.testing import OpenBaoDevServer


def pytest_report_header() -> str:
    # nox installs buttress into site-packages, and the tests must exercise
    # that copy. This header line shows which copy was imported.
    location = Path(buttress.__file__).parent
    return f"buttress {buttress.__version__} imported from {location}"


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ],
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """
    Run each `pytest.mark.anyio` test once on asyncio and once on trio.

    Module scope matches the fixture that anyio's plugin defines, so async
    fixtures of module scope can depend on it.
    """
    backend: str = request.param
    return backend


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoDevServer]:
    """
    A running OpenBao dev server shared by every test in the session.

    A test that seals or freezes it must unseal or thaw it in a ``finally``
    block, so the next test finds it healthy.
    """
    with OpenBaoDevServer() as server:
        yield server
