"""Shared fixtures: a real Kubernetes API server for the whole session.

By default the session starts its own etcd + kube-apiserver (kubescim_dev.controlplane). With
KUBESCIM_TEST_CLUSTER=existing, the tests run unchanged against the cluster that KUBECONFIG names
(kind, a real cluster): the tests only create namespaced objects in namespaces they make.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kubescim.kube import NAMESPACES, ApiError, Kube, KubeConfig, Resource
from kubescim_dev.controlplane import REPO_ROOT, ControlPlane, tool_path
from kubescim_dev.oktasim.org import generate
from kubescim_dev.oktasim.pusher import OktaPusher
from kubescim_dev.processes import STARTED, GatewayProcess, start_gateway, start_operator
from kubescim_dev.stack import create_provider, install_crds

KOPF_PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings")
EXAMPLES = REPO_ROOT / "crds" / "examples"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    control_plane: ControlPlane | None  # None when testing an existing cluster

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tool_path("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            text=True,
            capture_output=True,
            input=input,
        )


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if os.environ.get("KUBESCIM_TEST_CLUSTER") == "existing":
        yield Cluster(Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config")), None)
        return
    control_plane = ControlPlane()
    control_plane.start()
    try:
        yield Cluster(control_plane.kubeconfig, control_plane)
    finally:
        failed = request.session.testsfailed > 0
        if failed and control_plane.workdir is not None:
            for name in ("kube-apiserver", "etcd"):
                print(f"\n--- {name} log (last lines) ---\n{control_plane.tail_log(name)}")
        control_plane.stop()


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    install_crds(cluster.kubeconfig)
    return cluster


@pytest.fixture(scope="session")
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    client = Kube(KubeConfig.from_file(cluster.kubeconfig))
    yield client
    await client.close()


@pytest.fixture
async def namespace(kube: Kube) -> AsyncIterator[str]:
    """A fresh namespace per test, deleted afterwards (no cross-test leakage)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await kube.create(NAMESPACES, {"metadata": {"name": name, "labels": {"kubescim.dev/test": "true"}}})
    yield name
    try:
        await kube.delete(NAMESPACES, name)
    except ApiError as error:
        if not error.not_found:
            raise


# --- the SCIM gateway: two real processes against the real API server --------------------------


@dataclass
class ScimEnv:
    namespace: str
    provider: str
    token: str
    other_provider: str
    other_token: str
    gateways: list[GatewayProcess]
    cluster: Cluster

    @contextlib.asynccontextmanager
    async def extra_gateway(self, **env: str) -> AsyncIterator[GatewayProcess]:
        """One more gateway in this namespace (default provider okta), with extra settings; stopped after."""
        gateway = await asyncio.to_thread(
            start_gateway,
            self.cluster.kubeconfig,
            self.namespace,
            extra_env={"KUBESCIM_DEFAULT_PROVIDER": "okta", **env},
        )
        try:
            yield gateway
        finally:
            gateway.stop()

    def client(self, replica: int = 0, *, token: str | None = None, provider: str | None = None) -> httpx.AsyncClient:
        base = self.gateways[replica].url
        prefix = f"/providers/{provider}/scim/v2" if provider else "/scim/v2"
        return httpx.AsyncClient(
            base_url=base + prefix,
            headers={
                "Authorization": f"Bearer {token or self.token}",
                "Content-Type": "application/scim+json",
            },
            timeout=30,
        )


ISSUED_TOKENS: set[str] = set()  # every provisioning token this run created: no log may contain one


async def make_provider(kube: Kube, namespace: str, name: str, spec: dict[str, object] | None = None) -> str:
    token = await create_provider(kube, namespace, name, spec)
    ISSUED_TOKENS.add(token)
    return token


@pytest.fixture(scope="session", autouse=True)
def no_token_in_any_log() -> Iterator[None]:
    """After the whole run: no token in any log of any gateway or operator process, error paths included."""
    yield
    leaks = [
        f"{process.name} ({process.log_path})"
        for process in STARTED
        for token in ISSUED_TOKENS
        if token in process.read_log()
    ]
    assert not leaks, f"provisioning tokens found in logs: {leaks}"


# Custom attributes as Okta sends them undeclared: the seed's employeeID in the enterprise namespace
# (the simulator's org carries it), and one under an extension URN of the org's own.
CUSTOM_URN = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
DEPLOYED_RULES = (
    "teammapping-playground.yaml",
    "teammapping-department.yaml",
    "teammapping-squads.yaml",
    "businessunitmapping-costcenter.yaml",
    "businessunitmapping-contractors.yaml",
)


@pytest.fixture(scope="session")
async def scim_env(crds: Cluster, kube: Kube, request: pytest.FixtureRequest) -> AsyncIterator[ScimEnv]:
    """The gateway as it is deployed: two replicas, the operator running and writing labels and
    statuses, the mapping rules applied, and the provider populated with the simulator's org (custom
    attributes included) pushed the way Okta pushes it. A second provider stays empty."""
    namespace = f"scim-{uuid.uuid4().hex[:8]}"
    await kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    await kube.create(
        KOPF_PEERINGS, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "kubescim"}}, namespace
    )
    token = await make_provider(kube, namespace, "okta")
    other_token = await make_provider(kube, namespace, "fresh")
    gateways: list[GatewayProcess] = []
    operator = None
    try:
        for _ in range(2):
            gateways.append(
                await asyncio.to_thread(
                    start_gateway, crds.kubeconfig, namespace, extra_env={"KUBESCIM_DEFAULT_PROVIDER": "okta"}
                )
            )
        for rule in DEPLOYED_RULES:
            crds.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / rule))
        operator = await asyncio.to_thread(start_operator, crds.kubeconfig, namespace)
        await _push_org(gateways[0].url + "/providers/okta/scim/v2", token)
        yield ScimEnv(namespace, "okta", token, "fresh", other_token, gateways, crds)
    finally:
        for process in [*gateways, *([operator] if operator else [])]:
            process.stop()
            if request.session.testsfailed:
                print(f"\n--- {process.name} log ---\n{process.log(40)}")


async def _push_org(scim_url: str, token: str) -> None:
    org = generate(40, 8, seed=5)
    pusher = OktaPusher(org, scim_url, token)
    try:
        await pusher.push_everything()
        # One user with an attribute of an extension no one declared.
        async with httpx.AsyncClient(base_url=scim_url, headers={"Authorization": f"Bearer {token}"}) as client:
            response = await client.post(
                "/Users",
                json={
                    "userName": "custom.attributes@example.com",
                    "externalId": "00ucustomattributes",
                    "active": True,
                    CUSTOM_URN: {"badgeNumber": "B-17", "clearanceLevel": 3, "onCall": True},
                },
            )
            assert response.status_code == 201, response.text
    finally:
        await pusher.close()
