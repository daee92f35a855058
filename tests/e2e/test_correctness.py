"""Correctness the way kubescim is deployed: two gateway replicas, the operator writing team labels and
statuses on every user, mapping rules that match — deletes that stick, versions that change only with
the SCIM representation, and Entra's manager."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kubescim.constants import ENTERPRISE_USER_URN, LABEL_SCIM_ID, SCIM_USERS, TEAM_LABEL_PREFIX
from kubescim_dev.processes import GatewayProcess, start_gateway
from tests.e2e.conftest import PATCH_URN, Stack, eventually

pytestmark = pytest.mark.slow
CYCLES = 1000


@pytest.fixture
async def deployed(stack: Stack) -> AsyncIterator[tuple[Stack, GatewayProcess]]:
    """The stack with a second gateway replica, the operator, and a rule that matches every test user
    (so the operator writes a team label and a status on each, racing the gateway's own writes)."""
    second = await asyncio.to_thread(start_gateway, stack.cluster.kubeconfig, stack.namespace)
    await stack.apply_mapping(
        "Team",
        "everyone-in-qa",
        {"attribute": "department", "match": {"value": "QA"}, "target": {"name": "qa"}},
    )
    stack.start_operator()
    try:
        yield stack, second
    finally:
        second.stop()


def client(gateway: GatewayProcess, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.scim_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def qa_user(user_name: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "externalId": f"00u{uuid.uuid4().hex[:12]}",
        "active": True,
        ENTERPRISE_USER_URN: {"department": "QA"},
    }


async def _cycles(stack: Stack, writer: httpx.AsyncClient, reader: httpx.AsyncClient, *, rename: bool) -> list[str]:
    """create -> (rename) -> DELETE (204) -> GET; what went wrong, one line per bad cycle."""
    problems = []
    for i in range(CYCLES // 2):
        name = f"c{i}-{uuid.uuid4().hex[:6]}@example.com"
        created = await writer.post("/Users", json=qa_user(name))
        assert created.status_code == 201, created.text
        scim_id = created.json()["id"]
        if rename:
            renamed = await writer.patch(
                f"/Users/{scim_id}",
                json={
                    "schemas": [PATCH_URN],
                    "Operations": [{"op": "replace", "path": "userName", "value": "x" + name}],
                },
            )
            assert renamed.status_code == 200, renamed.text
        deleted = await writer.delete(f"/Users/{scim_id}")
        assert deleted.status_code == 204, deleted.text
        read = await reader.get(f"/Users/{scim_id}")
        if read.status_code != 404:
            problems.append(f"GET after 204 answered {read.status_code} for {scim_id}")
        left, _ = await stack.kube.list(SCIM_USERS, stack.namespace, label_selector=f"{LABEL_SCIM_ID}={scim_id}")
        if left:
            problems.append(f"{scim_id} still in the API server after 204: {[o['metadata']['name'] for o in left]}")
    return problems


async def test_a_204_means_gone_on_the_same_replica_and_across_replicas(
    deployed: tuple[Stack, GatewayProcess],
) -> None:
    stack, second = deployed
    async with client(stack.gateway, stack.token) as first, client(second, stack.token) as other:
        same = await _cycles(stack, first, first, rename=False) + await _cycles(stack, first, first, rename=True)
        across = await _cycles(stack, first, other, rename=False) + await _cycles(stack, first, other, rename=True)
    print(f"{CYCLES} cycles on one replica: {len(same)} problems; {CYCLES} across two replicas: {len(across)} problems")
    assert same == []
    assert across == []


async def test_version_changes_only_with_the_scim_representation(deployed: tuple[Stack, GatewayProcess]) -> None:
    stack, second = deployed
    async with client(stack.gateway, stack.token) as scim, client(second, stack.token) as other:
        created = await scim.post("/Users", json=qa_user(f"v-{uuid.uuid4().hex[:6]}@example.com"))
        assert created.status_code == 201, created.text
        user = created.json()
        etag = created.headers["etag"]
        assert etag == user["meta"]["version"]

        async def operator_has_written() -> dict[str, Any]:
            obj = (await stack.kube.list(SCIM_USERS, stack.namespace, label_selector=f"{LABEL_SCIM_ID}={user['id']}"))[
                0
            ][0]
            assert f"{TEAM_LABEL_PREFIX}qa" in obj["metadata"]["labels"]
            assert (obj.get("status") or {}).get("teams")
            return dict(obj)

        written = await eventually(operator_has_written)
        assert int(written["metadata"]["resourceVersion"]) > 0
        for reader in (scim, other):  # the operator's label and status writes leave the version alone
            read = await reader.get(f"/Users/{user['id']}")
            assert read.json()["meta"]["version"] == etag, read.json()["meta"]
            assert read.json()["meta"]["lastModified"] == user["meta"]["lastModified"]
        body = {**qa_user(user["userName"]), "title": "Tester"}
        replaced = await other.put(f"/Users/{user['id']}", json=body, headers={"If-Match": etag})
        assert replaced.status_code == 200, replaced.text  # the ETag the client read still matches
        new_etag = replaced.json()["meta"]["version"]
        assert new_etag != etag  # the representation changed
        stale = await scim.put(f"/Users/{user['id']}", json={**body, "title": "Other"}, headers={"If-Match": etag})
        assert stale.status_code == 412, stale.text
        group = await scim.post("/Groups", json={"displayName": f"g-{uuid.uuid4().hex[:6]}", "members": []})
        group_etag = group.json()["meta"]["version"]
        joined = await scim.patch(
            f"/Groups/{group.json()['id']}",
            json={
                "schemas": [PATCH_URN],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": user["id"]}]}],
            },
        )
        assert joined.status_code == 200, joined.text
        assert joined.json()["meta"]["version"] != group_etag  # the group's members changed
        member = await scim.get(f"/Users/{user['id']}")
        assert member.json()["meta"]["version"] not in (etag, new_etag)  # so did the user's groups


async def test_entra_manager_as_a_bare_id_through_the_gateway(deployed: tuple[Stack, GatewayProcess]) -> None:
    stack, _ = deployed
    manager_path = f"{ENTERPRISE_USER_URN}:manager"
    async with client(stack.gateway, stack.token) as scim:
        boss = (await scim.post("/Users", json=qa_user(f"boss-{uuid.uuid4().hex[:6]}@example.com"))).json()
        user = (await scim.post("/Users", json=qa_user(f"emp-{uuid.uuid4().hex[:6]}@example.com"))).json()
        for op, value in (("Add", boss["id"]), ("Replace", boss["id"])):
            set_ = await scim.patch(
                f"/Users/{user['id']}",
                json={"schemas": [PATCH_URN], "Operations": [{"op": op, "path": manager_path, "value": value}]},
            )
            assert set_.status_code == 200, set_.text
            assert set_.json()[ENTERPRISE_USER_URN]["manager"] == {"value": boss["id"]}
        cleared = await scim.patch(
            f"/Users/{user['id']}",
            json={"schemas": [PATCH_URN], "Operations": [{"op": "Replace", "path": manager_path, "value": ""}]},
        )
        assert cleared.status_code == 200, cleared.text
        assert "manager" not in cleared.json()[ENTERPRISE_USER_URN]
        bogus = await scim.patch(
            f"/Users/{user['id']}",
            json={"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "favoriteColour", "value": "x"}]},
        )
        assert bogus.status_code == 400, bogus.text
        assert bogus.json()["scimType"] == "invalidPath"
