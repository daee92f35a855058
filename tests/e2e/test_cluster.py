"""kubescim installed on a real single-node cluster (`make cluster`: kubelet, containerd, scheduler,
controller-manager, kube-proxy) exactly as docs/quickstart.md says: the pods start from the image,
become Ready, and run with their own ServiceAccounts; Okta pushes through the gateway's Service build
Teams; a deleted operator pod is replaced and the new one takes over; `helm upgrade` rolls out a
changed value; `helm uninstall` leaves the CRDs and the data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubescim_dev.cluster import NodeCluster
from kubescim_dev.containers import IMAGE
from kubescim_dev.controlplane import REPO_ROOT, tool_path
from kubescim_dev.oktasim.org import generate
from kubescim_dev.oktasim.pusher import OktaPusher
from tests.conftest import ISSUED_TOKENS

# The image build in setup may take up to its own 20-minute limit on a cold cache (it took
# longer than pytest's default 300 s on a slow CI machine): the test's limit must cover it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
NAMESPACE = "identity"
QUICKSTART = REPO_ROOT / "docs" / "quickstart.md"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    cluster = NodeCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


def run(node: NodeCluster, *argv: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(node.kubeconfig), "HELM_CACHE_HOME": str(node.workdir / "helm")}
    env["PATH"] = f"{tool_path('helm').parent}:{tool_path('kubectl').parent}:{env.get('PATH', '')}"
    result = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def quickstart_commands() -> list[str]:
    """The shell commands of docs/quickstart.md's step 1, joined across line continuations."""
    text = QUICKSTART.read_text()
    block = text[text.index("## 1. Install") :].split("```sh", 1)[1].split("```", 1)[0]
    commands, current = [], ""
    for line in block.splitlines():
        line = line.split("  #", 1)[0].rstrip()
        if not line:
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def kubectl_json(node: NodeCluster, *args: str) -> Any:
    return yaml.safe_load(run(node, "kubectl", *args, "-o", "json").stdout)


def wait_for(check: Any, timeout: float = 180, interval: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def pods_ready(node: NodeCluster, component: str, expected: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]]:
        pods = kubectl_json(node, "-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/component={component}")
        items = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        ok = [
            p
            for p in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        ]
        assert len(ok) == expected == len(items), [
            (p["metadata"]["name"], p["status"].get("phase"), p["status"].get("containerStatuses")) for p in items
        ]
        return ok

    return wait_for(ready)  # type: ignore[no-any-return]


async def push(url: str, token: str, users: int, seed: int) -> Any:
    org = generate(users, 3, seed=seed)
    pusher = OktaPusher(org, url, token)
    try:
        await pusher.push_everything()
    finally:
        await pusher.close()
    return org


def test_the_quickstart_on_a_real_node(node: NodeCluster) -> None:
    repository, _, tag = IMAGE.rpartition(":")
    image_values = ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]
    commands = quickstart_commands()
    assert [c.split()[:3] for c in commands] == [["helm", "install", "kubescim-crds"], ["helm", "install", "kubescim"]]
    for command in commands:
        extra = image_values if " kubescim charts/kubescim " in f" {command} " else []
        run(node, *command.split(), *extra)
    gateways = pods_ready(node, "gateway", 2)
    pods_ready(node, "operator", 1)
    for pod in gateways:  # each pod runs as its chart ServiceAccount, with a projected token
        assert pod["spec"]["serviceAccountName"] == "kubescim-gateway"

    # The provisioning token, as NOTES.txt and the quickstart create it: a pod of the image, run as
    # the token-rotator ServiceAccount.
    overrides = '{"spec":{"serviceAccountName":"kubescim-token-rotator","securityContext":{"runAsNonRoot":true,"runAsUser":10001}}}'
    rotated = run(
        node,
        "kubectl", "-n", NAMESPACE, "run", "kubescim-token-okta", "--rm", "-i", "--restart=Never",
        f"--image={IMAGE}", "--image-pull-policy=Never", f"--overrides={overrides}",
        "--", "kubescim", "token", "rotate", "--provider", "okta",
    )  # fmt: skip
    token = rotated.stdout.strip().splitlines()[0]
    ISSUED_TOKENS.add(token)
    service = kubectl_json(node, "-n", NAMESPACE, "get", "service", "kubescim-gateway")
    url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/scim/v2"
    mapping = {
        "apiVersion": "identity.kubescim.dev/v1alpha1",
        "kind": "TeamMapping",
        "metadata": {"name": "departments", "namespace": NAMESPACE},
        "spec": {"attribute": "department", "match": {"operator": "Any"}, "target": {"nameTemplate": "dept-${*}"}},
    }
    (node.workdir / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    run(node, "kubectl", "apply", "-f", str(node.workdir / "mapping.yaml"))
    org = wait_for(lambda: asyncio.run(push(url, token, 20, seed=21)), timeout=60)  # through the Service

    def teams(expected: set[str]) -> None:
        names = set(run(node, "kubectl", "-n", NAMESPACE, "get", "teams", "-o", "name").stdout.split())
        assert {f"team.identity.kubescim.dev/{t}" for t in expected} <= names, names

    departments = {f"dept-{u.profile['department'].lower()}" for u in org.users.values()}
    wait_for(lambda: teams(departments), timeout=120)

    # The active operator pod is deleted: its replacement takes over and keeps building teams.
    (operator,) = pods_ready(node, "operator", 1)
    run(node, "kubectl", "-n", NAMESPACE, "delete", "pod", operator["metadata"]["name"], "--wait=true")
    (replacement,) = pods_ready(node, "operator", 1)
    assert replacement["metadata"]["name"] != operator["metadata"]["name"]
    more = asyncio.run(push(url, token, 30, seed=22))
    departments |= {f"dept-{u.profile['department'].lower()}" for u in more.users.values()}
    wait_for(lambda: teams(departments), timeout=120)

    # helm upgrade with a changed value rolls the gateway out.
    before = {p["metadata"]["name"] for p in pods_ready(node, "gateway", 2)}
    run(
        node,
        "helm",
        "upgrade",
        "kubescim",
        "charts/kubescim",
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "gateway.logLevel=DEBUG",
    )

    def rolled() -> None:
        after = pods_ready(node, "gateway", 2)
        assert not before & {p["metadata"]["name"] for p in after}
        env = {e["name"]: e.get("value") for e in after[0]["spec"]["containers"][0]["env"]}
        assert env["KUBESCIM_LOG_LEVEL"] == "DEBUG"

    wait_for(rolled, timeout=180)

    # helm uninstall: the workloads go, the CRDs and the data stay.
    run(node, "helm", "uninstall", "kubescim", "-n", NAMESPACE, "--wait")
    wait_for(lambda: pods_gone(node), timeout=120)
    assert run(node, "kubectl", "get", "crd", "scimusers.identity.kubescim.dev").returncode == 0
    users = run(node, "kubectl", "-n", NAMESPACE, "get", "scimusers", "-o", "name").stdout.split()
    assert len(users) == 50
    teams(departments)


def pods_gone(node: NodeCluster) -> None:
    pods = kubectl_json(node, "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/name=kubescim")
    assert not pods["items"], [p["metadata"]["name"] for p in pods["items"]]


def test_quickstart_commands_are_parsed_whole() -> None:
    commands = quickstart_commands()
    assert commands[1].startswith("helm install kubescim charts/kubescim -n identity --create-namespace")
    assert "--set gateway.ingress.tls.secretName=scim-tls" in commands[1]
    assert Path(QUICKSTART).exists()
