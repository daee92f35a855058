"""The image, run the way the chart deploys it: `make image` builds the Dockerfile with podman; the
gateway and operator containers start with exactly what `helm template` renders (command, env, ports,
probes, security context, mounts) against the local API server, authenticated as the chart's own
ServiceAccounts (TokenRequest tokens, mounted where a pod has them); an Okta push through the
containerised gateway builds Teams in the containerised operator; SIGTERM stops each within the
chart's grace period."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kubescim.cli import rotate_token
from kubescim.constants import API_VERSION, TEAM_MAPPINGS, TEAMS
from kubescim.kube import NAMESPACES, Kube, KubeConfig
from kubescim_dev.containers import (
    PodEnvironment,
    build_image,
    container_port,
    podman,
    podman_run_args,
    write_service_account,
)
from kubescim_dev.controlplane import kubectl, tool_path
from kubescim_dev.credentials import service_account_token
from kubescim_dev.oktasim.org import generate
from kubescim_dev.oktasim.pusher import OktaPusher
from tests.conftest import ISSUED_TOKENS, Cluster

# The image build in setup may take up to its own 20-minute limit on a cold cache (it took
# longer than pytest's default 300 s on a slow CI machine): the test's limit must cover it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
CHART = Path(__file__).resolve().parents[2] / "charts" / "kubescim"
WORKLOADS = {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}


def render(namespace: str, image: str) -> list[dict[str, Any]]:
    repository, _, tag = image.rpartition(":")
    out = subprocess.run(
        [
            str(tool_path("helm")),
            "template",
            "kubescim",
            str(CHART),
            "-n",
            namespace,
            "--kube-version",
            "1.36.3",
            "--set",
            f"image.repository={repository}",
            "--set",
            f"image.tag={tag}",
            "--set",
            "image.pullPolicy=Never",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


async def eventually(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


class Pod:
    def __init__(self, deployment: dict[str, Any], name: str, namespace: str) -> None:
        self.deployment = deployment
        self.name = name
        self.namespace = namespace
        spec = deployment["spec"]["template"]["spec"]
        self.grace = int(spec.get("terminationGracePeriodSeconds", 30))
        (self.container,) = spec["containers"]

    def probes(self) -> list[tuple[str, int, str]]:
        out = []
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = self.container.get(kind)
            if probe and "httpGet" in probe:
                get = probe["httpGet"]
                out.append((kind, container_port(self.deployment, get["port"]), get["path"]))
        return out

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-4000:]


@pytest.fixture(scope="module")
def image() -> str:
    return build_image()


@pytest.fixture
async def pods(cluster: Cluster, crds: Cluster, image: str, tmp_path: Path) -> AsyncIterator[dict[str, Pod]]:
    namespace = f"img-{uuid.uuid4().hex[:8]}"
    config = KubeConfig.from_file(cluster.kubeconfig)
    async with Kube(config) as kube:
        await kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    manifests = render(namespace, image)
    others = [m for m in manifests if m["kind"] not in WORKLOADS]
    (tmp_path / "chart.yaml").write_text(yaml.safe_dump_all(others))
    kubectl(cluster.kubeconfig, "apply", "--server-side", "-n", namespace, "-f", str(tmp_path / "chart.yaml"))
    host, _, port = config.server.removeprefix("https://").rpartition(":")
    started: dict[str, Pod] = {}
    try:
        for deployment in (m for m in manifests if m["kind"] == "Deployment"):
            component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
            account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
            token = await service_account_token(cluster.kubeconfig, namespace, account, hours=1)
            ISSUED_TOKENS.add(token)
            assert config.ca_file is not None
            secrets_dir = write_service_account(tmp_path / component, token, Path(config.ca_file), namespace)
            pod = Pod(deployment, f"kubescim-{component}-{namespace}", namespace)
            environment = PodEnvironment(namespace, host, int(port), secrets_dir)
            podman(*podman_run_args(deployment, image, environment, pod.name))
            started[component] = pod
        yield started
    finally:
        for pod in started.values():
            podman("rm", "--force", "--time", "0", pod.name, check=False)
        async with Kube(config) as kube:
            await kube.delete(NAMESPACES, namespace)
        for manifest in others:
            if not manifest["metadata"].get("namespace") and manifest["kind"].startswith("Cluster"):
                kubectl(cluster.kubeconfig, "delete", manifest["kind"], manifest["metadata"]["name"], check=False)


async def test_the_chart_runs_from_the_image(cluster: Cluster, pods: dict[str, Pod], image: str) -> None:
    gateway, operator = pods["gateway"], pods["operator"]
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    user = podman("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    # As root, to see everywhere: no compiler, no pip cache, no wheel of ours left behind (Debian's
    # python3-venv keeps pip's own bootstrap wheels in /usr/share/python-wheels).
    leftovers = (
        "command -v gcc cc c++ || true; find / -xdev -path /usr/share/python-wheels -prune -o "
        "\\( -path '*/.cache/pip' -o -name '*.whl' \\) -print"
    )
    inside = podman("run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", leftovers)
    wheels = podman("run", "--rm", "--entrypoint", "cat", image, "/usr/share/kubescim/wheels.txt").stdout
    print(f"image {image}: {size / 2**20:.0f} MiB, {len(wheels.splitlines())} pinned wheels")
    assert inside.stdout.strip() == "", inside.stdout  # no compiler, no pip cache, no wheels
    assert user == "10001"
    assert "kubescim==0.1.0" in wheels
    assert "aiohttp==" in wheels

    async with httpx.AsyncClient() as client:
        for pod in (gateway, operator):
            for kind, port, path in pod.probes():

                async def answers(port: int = port, path: str = path) -> None:
                    response = await client.get(f"http://127.0.0.1:{port}{path}")
                    assert response.status_code == 200, response.text

                try:
                    await eventually(answers, timeout=90)
                except AssertionError:
                    pytest.fail(f"{pod.name} {kind} {path} never answered 200:\n{pod.logs()}")

    config = KubeConfig.from_file(cluster.kubeconfig)
    namespace = operator.namespace
    async with Kube(config) as kube:
        token = await rotate_token(kube, namespace, "okta")
        ISSUED_TOKENS.add(token)
        await kube.create(
            TEAM_MAPPINGS,
            {
                "apiVersion": API_VERSION,
                "kind": "TeamMapping",
                "metadata": {"name": "departments"},
                "spec": {
                    "attribute": "department",
                    "match": {"operator": "Any"},
                    "target": {"nameTemplate": "dept-${*}"},
                },
            },
            namespace,
        )
        gateway_port = container_port(gateway.deployment, "http")
        org = generate(20, 3, seed=9)
        pusher = OktaPusher(org, f"http://127.0.0.1:{gateway_port}/scim/v2", token)
        try:

            async def pushed() -> None:  # the gateway learns the token from its Secret watch
                await pusher.push_everything()

            await eventually(pushed, timeout=30)
        finally:
            await pusher.close()
        departments = {u.profile["department"].lower() for u in org.users.values()}

        async def teams_built() -> None:
            items, _ = await kube.list(TEAMS, namespace)
            assert {t["metadata"]["name"] for t in items} == {f"dept-{d}" for d in departments}, operator.logs()

        await eventually(teams_built, timeout=60)

    for pod in (gateway, operator):
        started = time.monotonic()
        podman("stop", "--time", str(pod.grace), pod.name, timeout=pod.grace + 30)
        took = time.monotonic() - started
        state = podman("inspect", "--format", "{{.State.ExitCode}}", pod.name).stdout.strip()
        print(f"{pod.name}: SIGTERM -> exit {state} in {took:.1f} s (grace {pod.grace} s)")
        assert took < pod.grace, pod.logs()
        assert state == "0", pod.logs()
