"""A group with 100,000 members: pushed the way Okta does (PATCH batches of adds), read with and
without members, and no Kubernetes object anywhere near etcd's object size limit."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import httpx
import pytest

from kubescim.api.models import ScimUserSpec
from kubescim.constants import GROUP_LABEL_PREFIX, SCIM_GROUPS, SCIM_USERS
from kubescim.kube import NAMESPACES, Kube
from kubescim.objects import scim_user_object
from kubescim.scim.resources import new_id
from kubescim_dev.processes import start_gateway
from tests.conftest import Cluster, make_provider

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
MEMBERS = int(os.environ.get("KUBESCIM_BIG_GROUP_MEMBERS", "100000"))
BATCH = 1000
LIMIT = 1024 * 1024


async def test_a_group_of_100000_members(crds: Cluster, kube: Kube) -> None:
    namespace = f"big-{uuid.uuid4().hex[:6]}"
    await kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    token = await make_provider(kube, namespace, "okta")
    ids = [new_id() for _ in range(MEMBERS)]
    semaphore = asyncio.Semaphore(48)

    async def create(i: int) -> None:
        spec = ScimUserSpec(provider="okta", user_name=f"m{i}@big.example.com", active=True)
        async with semaphore:
            await kube.create(SCIM_USERS, scim_user_object(spec, ids[i]), namespace)

    started = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(MEMBERS)))
    preload = time.perf_counter() - started
    gateway = await asyncio.to_thread(
        start_gateway, crds.kubeconfig, namespace, extra_env={"KUBESCIM_LOG_LEVEL": "WARNING"}
    )
    try:
        async with httpx.AsyncClient(
            base_url=gateway.scim_url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as client:
            group = (await client.post("/Groups", json={"displayName": "Everyone", "members": []})).json()["id"]
            started = time.perf_counter()
            for batch in range(0, MEMBERS, BATCH):
                members = [{"value": i} for i in ids[batch : batch + BATCH]]
                response = await client.patch(
                    f"/Groups/{group}",
                    params={"excludedAttributes": "members"},
                    json={
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [
                            {"op": "replace", "value": {"id": group, "displayName": "Everyone"}},
                            {"op": "add", "path": "members", "value": members},
                        ],
                    },
                )
                assert response.status_code == 200, response.text
            push = time.perf_counter() - started

            without = await client.get(f"/Groups/{group}", params={"excludedAttributes": "members"})
            assert "members" not in without.json()
            assert len(without.content) < 2048
            started = time.perf_counter()
            full = await client.get(f"/Groups/{group}")
            read_full = time.perf_counter() - started
            assert {m["value"] for m in full.json()["members"]} == set(ids)
            listed = await client.get("/Groups", params={"excludedAttributes": "members"})
            assert listed.json()["totalResults"] == 1
        labelled, _ = await kube.list(SCIM_USERS, namespace, label_selector=f"{GROUP_LABEL_PREFIX}{group}")
        assert len(labelled) == MEMBERS
        largest_user = max(len(json.dumps(u)) for u in labelled)
        group_object = await kube.get(SCIM_GROUPS, group, namespace)
        assert largest_user < LIMIT / 100
        assert len(json.dumps(group_object)) < LIMIT / 100
        print(
            f"\nbig group: {MEMBERS} members; preload {preload:.0f} s; pushed in {MEMBERS // BATCH} PATCHes "
            f"in {push:.0f} s; full read {read_full:.2f} s ({len(full.content) / 1e6:.1f} MB); largest user "
            f"object {largest_user} B, group object {len(json.dumps(group_object))} B"
        )
    finally:
        gateway.stop()
        await kube.delete(NAMESPACES, namespace)
