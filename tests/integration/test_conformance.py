"""Third-party SCIM conformance suites against the gateway as deployed (two replicas, operator running, a
populated provider with custom attributes), three runs in a row: scim2-tester (via scim2-cli) and scim-sanity."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ScimEnv

BIN = Path(sys.executable).parent


def _deployed_provider(scim_env: ScimEnv) -> tuple[str, str]:
    """The populated provider (operator running, the simulator's org pushed, custom attributes): the
    suites must pass the way the gateway is deployed, not only against an empty provider."""
    return f"{scim_env.gateways[0].url}/providers/{scim_env.provider}/scim/v2", scim_env.token


async def _run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.parametrize("run", [1, 2, 3])
async def test_scim2_tester_reports_no_failed_check(scim_env: ScimEnv, run: int) -> None:
    url, token = _deployed_provider(scim_env)
    # The token goes through the environment, not argv (other users can read argv).
    _, output = await _run(
        str(BIN / "scim"), "--url", url, "test", env={"SCIM_CLI_HEADERS": f"Authorization: Bearer {token}"}
    )
    successes = len(re.findall(r"^SUCCESS ", output, re.M))
    failures = re.findall(r"^(?:ERROR|CRITICAL) .*\n.*", output, re.M)
    print(f"scim2-tester run {run} on the deployed provider: {successes} passed, {len(failures)} failed")
    assert not failures, "\n".join(failures)
    assert successes >= 100, output[-2000:]


@pytest.mark.parametrize("run", [1, 2, 3])
async def test_scim_sanity_probe_reports_zero_failed(scim_env: ScimEnv, run: int) -> None:
    url, token = _deployed_provider(scim_env)
    code, output = await _run(str(BIN / "scim-sanity"), "probe", url, "--token", token, "--i-accept-side-effects")
    summary = re.search(r"(\d+) passed(?:, (\d+) failed)?", output)
    assert summary is not None, output[-2000:]
    print(f"scim-sanity run {run} on the deployed provider: {summary.group(0)}")
    assert code == 0, output[-3000:]
    assert int(summary.group(2) or 0) == 0
    assert int(summary.group(1)) >= 25
