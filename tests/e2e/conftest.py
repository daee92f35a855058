"""End-to-end fixtures: a namespace with an IdentityProvider, a gateway and an operator per test."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from kubescim.constants import API_VERSION, BUSINESS_UNIT_MAPPINGS, TEAM_MAPPINGS
from kubescim.kube import NAMESPACES, ApiError, Kube, Resource
from kubescim_dev.controlplane import REPO_ROOT
from kubescim_dev.processes import GatewayProcess, ManagedProcess, start_gateway, start_operator
from tests.conftest import Cluster, make_provider

T = TypeVar("T")
KOPF_PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings")
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 20.0, interval: float = 0.1) -> T:
    """Poll until check() returns without AssertionError; re-raise the last one on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


@dataclass
class Stack:
    namespace: str
    kube: Kube
    cluster: Cluster
    token: str
    gateway: GatewayProcess
    operators: list[ManagedProcess] = field(default_factory=list)

    def scim(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.gateway.scim_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def start_operator(self, priority: int = 100, **kwargs: Any) -> ManagedProcess:
        operator = start_operator(self.cluster.kubeconfig, self.namespace, priority=priority, **kwargs)
        self.operators.append(operator)
        return operator

    async def create_user(self, client: httpx.AsyncClient, user_name: str, **attrs: Any) -> dict[str, Any]:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "active": True,
            "externalId": f"00u{uuid.uuid4().hex[:12]}",
            **attrs,
        }
        response = await client.post("/Users", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def create_group(self, client: httpx.AsyncClient, name: str, member_ids: list[str]) -> str:
        response = await client.post("/Groups", json={"displayName": name, "members": []})
        assert response.status_code == 201, response.text
        gid = str(response.json()["id"])
        if member_ids:
            patch = await client.patch(
                f"/Groups/{gid}",
                json={
                    "schemas": [PATCH_URN],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": m} for m in member_ids]}],
                },
            )
            assert patch.status_code == 200, patch.text
        return gid

    async def apply_mapping(self, kind: str, name: str, spec: dict[str, Any]) -> None:
        resource = TEAM_MAPPINGS if kind == "Team" else BUSINESS_UNIT_MAPPINGS
        body = {"apiVersion": API_VERSION, "kind": f"{kind}Mapping", "metadata": {"name": name}, "spec": spec}
        try:
            await self.kube.create(resource, body, self.namespace)
        except ApiError as error:
            if not error.conflict:
                raise
            current = await self.kube.get(resource, name, self.namespace)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.kube.replace(resource, name, body, self.namespace)


@pytest.fixture
async def stack(crds: Cluster, kube: Kube, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    await kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    await kube.create(
        KOPF_PEERINGS, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "kubescim"}}, namespace
    )
    token = await make_provider(kube, namespace, "okta")
    gateway = await asyncio.to_thread(start_gateway, crds.kubeconfig, namespace)
    env = Stack(namespace, kube, crds, token, gateway)
    try:
        yield env
    finally:
        failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else True
        keep = REPO_ROOT / ".local" / "test-logs" / request.node.name
        for process in [*env.operators, gateway]:
            process.stop()
            if failed:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{process.name.replace(':', '-')}.log").write_text(process.read_log())
                print(f"\n--- {process.name} log (whole log in {keep}) ---\n{process.log(40)}")
        await kube.delete(NAMESPACES, namespace)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
