"""The documentation's commands, run: the quickstart's kubectl block against a live gateway + operator."""

from __future__ import annotations

import re
import shlex

from kubescim_dev.controlplane import REPO_ROOT
from tests.e2e.conftest import Stack, eventually

QUICKSTART = REPO_ROOT / "docs" / "quickstart.md"


def quickstart_commands() -> list[str]:
    text = QUICKSTART.read_text()
    block = re.search(r"<!-- test: local-stack -->\s*```sh\n(.*?)```", text, re.S)
    assert block is not None, "quickstart lost its tested block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


async def test_quickstart_kubectl_commands_work_against_the_local_stack(stack: Stack) -> None:
    stack.start_operator()
    async with stack.scim() as client:
        alice = await stack.create_user(
            client,
            "alice@example.com",
            **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "CC-7"}},
        )
        await stack.create_group(client, "Bifrost Playground: Alpha Team", [alice["id"]])
    outputs = []
    for command in quickstart_commands():
        argv = shlex.split(command)
        assert argv[0] == "kubectl"
        result = stack.cluster.kubectl("-n", stack.namespace, *argv[1:], check=False)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        outputs.append(result.stdout)

    async def teams_built() -> None:
        listed = stack.cluster.kubectl("-n", stack.namespace, "get", "teams,businessunits").stdout
        assert "alpha" in listed
        assert "cc-7" in listed
        members = stack.cluster.kubectl(
            "-n", stack.namespace, "get", "scimusers", "-l", "team.identity.kubescim.dev/alpha"
        ).stdout
        assert "alice@example.com" in members

    await eventually(teams_built)
