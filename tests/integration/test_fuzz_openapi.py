"""schemathesis against the gateway's own OpenAPI document: whatever it sends, never a 5xx.

Bounded for CI (KUBESCIM_FUZZ_EXAMPLES, default 15 per operation); set it higher for a deeper run.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from kubescim.kube import Kube
from tests.conftest import ScimEnv


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_schemathesis_finds_no_server_error(kube: Kube, scim_env: ScimEnv, tmp_path: Path) -> None:
    # The default provider's token: /scim/v2 is what gets fuzzed. The /providers/{provider} routes run the
    # same handlers; fuzzing their provider name would only ever meet 401.
    token = scim_env.token
    gateway = scim_env.gateways[0]
    examples = os.environ.get("KUBESCIM_FUZZ_EXAMPLES", "15")
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{gateway.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        examples,
        "--workers",
        "2",
        "--seed",
        "1815",
        "--header",
        f"Authorization: Bearer {token}",
        "--request-timeout",
        "30",
        "--exclude-path-regex",
        "^/providers/",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )
    out, _ = await asyncio.wait_for(process.communicate(), 900)
    output = out.decode(errors="replace")
    tail = output[-4000:]
    assert process.returncode == 0, tail
    operations = re.search(r"(\d+) passed", output)
    assert operations is not None, tail
    print(f"\nschemathesis: {operations.group(0)} with up to {examples} examples each")
    assert "Server error" not in output
