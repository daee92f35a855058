"""Third-party SCIM conformance suites against a real gateway: scim2-tester (via scim2-cli) and scim-sanity."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from pathlib import Path

from kubescim.kube import Kube
from tests.conftest import ScimEnv, make_provider

BIN = Path(sys.executable).parent


async def _fresh_provider(kube: Kube, scim_env: ScimEnv) -> tuple[str, str]:
    name = f"conf-{uuid.uuid4().hex[:6]}"
    token = await make_provider(kube, scim_env.namespace, name)
    url = f"{scim_env.gateways[0].url}/providers/{name}/scim/v2"
    for _ in range(100):  # the gateway learns of the provider and its token through its watches
        proc = await asyncio.create_subprocess_exec(
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            f"Authorization: Bearer {token}",
            f"{url}/Users",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        if out == b"200":
            break
        await asyncio.sleep(0.05)
    return url, token


async def _run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_scim2_tester_reports_no_failed_check(kube: Kube, scim_env: ScimEnv) -> None:
    url, token = await _fresh_provider(kube, scim_env)
    # The token goes through the environment, not argv (other users can read argv).
    _, output = await _run(
        str(BIN / "scim"), "--url", url, "test", env={"SCIM_CLI_HEADERS": f"Authorization: Bearer {token}"}
    )
    successes = len(re.findall(r"^SUCCESS ", output, re.M))
    failures = re.findall(r"^(?:ERROR|CRITICAL) .*\n.*", output, re.M)
    print(f"scim2-tester: {successes} passed, {len(failures)} failed")
    assert not failures, "\n".join(failures)
    assert successes >= 100, output[-2000:]


async def test_scim_sanity_probe_reports_zero_failed(kube: Kube, scim_env: ScimEnv) -> None:
    url, token = await _fresh_provider(kube, scim_env)
    code, output = await _run(str(BIN / "scim-sanity"), "probe", url, "--token", token, "--i-accept-side-effects")
    summary = re.search(r"(\d+) passed(?:, (\d+) failed)?", output)
    assert summary is not None, output[-2000:]
    print(f"scim-sanity: {summary.group(0)}")
    assert code == 0, output[-3000:]
    assert int(summary.group(2) or 0) == 0
    assert int(summary.group(1)) >= 25
