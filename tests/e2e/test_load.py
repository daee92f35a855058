"""Load with faults, nothing lost: 32 Okta-like clients against two gateway replicas for a bounded time,
while the API server is stopped and restarted and one replica is killed mid-request. At the end the
cluster must equal a model of every acknowledged request."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from kubescim.constants import GROUP_LABEL_PREFIX, SCIM_USERS
from kubescim.kube import NAMESPACES, Kube, KubeConfig
from kubescim.scim.resources import fold
from kubescim_dev.controlplane import ControlPlane
from kubescim_dev.processes import GatewayProcess, start_gateway
from kubescim_dev.stack import create_provider, install_crds

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CLIENTS = 32
DURATION = 24.0
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class Tally:
    sent: int = 0
    acknowledged: int = 0
    retries: int = 0
    status: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    bad_5xx: list[str] = field(default_factory=list)


@dataclass
class UserModel:
    scim_id: str
    active: bool = True
    title: str = ""


@dataclass
class Replicas:
    gateways: list[GatewayProcess]

    def urls(self) -> list[str]:
        return [g.scim_url for g in self.gateways if g.alive]


async def call(replicas: Replicas, token: str, tally: Tally, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One logical request, retried (like Okta) on 503, connection errors and dead replicas."""
    deadline = time.monotonic() + 90
    while True:
        urls = replicas.urls()
        url = random.choice(urls) if urls else replicas.gateways[0].scim_url
        tally.sent += 1
        try:
            async with httpx.AsyncClient(
                base_url=url, timeout=20, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                response = await client.request(method, path, **kwargs)
        except httpx.TransportError:
            tally.connection_errors += 1
        else:
            tally.status[response.status_code] += 1
            if response.status_code == 503:
                assert response.headers.get("retry-after", "").isdigit()
            elif response.status_code >= 500:
                tally.bad_5xx.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
                return response
            else:
                tally.acknowledged += 1
                return response
        tally.retries += 1
        assert time.monotonic() < deadline, f"{method} {path} never succeeded"
        await asyncio.sleep(random.uniform(0.1, 0.4))


async def worker(
    index: int,
    replicas: Replicas,
    token: str,
    tally: Tally,
    stop: float,
    users: dict[str, UserModel],
    members: dict[str, set[str]],
) -> None:
    group = (await call(replicas, token, tally, "POST", "/Groups", json={"displayName": f"load-{index}"})).json()["id"]
    members[group] = set()
    count = 0
    mine: list[str] = []
    while time.monotonic() < stop:
        action = random.random()
        if action < 0.35 or not mine:
            user_name = f"w{index}-u{count}@load.example.com"
            count += 1
            response = await call(
                replicas, token, tally, "POST", "/Users", json={"userName": user_name, "active": True}
            )
            if response.status_code == 409:
                # A retried POST whose first attempt was stored: Okta then finds the user by userName.
                found = await call(
                    replicas, token, tally, "GET", "/Users", params={"filter": f'userName eq "{user_name}"'}
                )
                scim_id = found.json()["Resources"][0]["id"]
            else:
                assert response.status_code == 201, response.text
                scim_id = response.json()["id"]
            users[user_name] = UserModel(scim_id)
            mine.append(user_name)
        elif action < 0.5:
            user_name = random.choice(mine)
            model = users[user_name]
            title = f"title-{random.randrange(1000)}"
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "active": model.active,
                "title": title,
            }
            response = await call(replicas, token, tally, "PUT", f"/Users/{model.scim_id}", json=body)
            assert response.status_code == 200, response.text
            model.title = title
        elif action < 0.65:
            user_name = random.choice(mine)
            model = users[user_name]
            response = await call(
                replicas,
                token,
                tally,
                "PATCH",
                f"/Users/{model.scim_id}",
                json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": not model.active}}]},
            )
            assert response.status_code == 200, response.text
            model.active = not model.active
        elif action < 0.85:
            user_name = random.choice(mine)
            scim_id = users[user_name].scim_id
            add = scim_id not in members[group] or random.random() < 0.3
            operation = (
                {"op": "add", "path": "members", "value": [{"value": scim_id}]}
                if add
                else {"op": "remove", "path": f'members[value eq "{scim_id}"]'}
            )
            response = await call(
                replicas,
                token,
                tally,
                "PATCH",
                f"/Groups/{group}",
                json={
                    "schemas": [PATCH],
                    "Operations": [
                        {"op": "replace", "value": {"id": group, "displayName": f"load-{index}"}},
                        operation,
                    ],
                },
            )
            assert response.status_code == 200, response.text
            (members[group].add if add else members[group].discard)(scim_id)
        else:
            user_name = random.choice(mine)
            response = await call(
                replicas, token, tally, "GET", "/Users", params={"filter": f'userName eq "{user_name}"'}
            )
            assert response.status_code == 200


async def test_mixed_load_with_outage_and_a_killed_replica_loses_nothing() -> None:
    plane = ControlPlane()
    await asyncio.to_thread(plane.start)
    replicas = Replicas([])
    try:
        await asyncio.to_thread(install_crds, plane.kubeconfig)
        async with Kube(KubeConfig.from_file(plane.kubeconfig)) as kube:
            await kube.create(NAMESPACES, {"metadata": {"name": "load"}})
            token = await create_provider(kube, "load", "okta")
            for _ in range(2):
                replicas.gateways.append(
                    await asyncio.to_thread(
                        start_gateway, plane.kubeconfig, "load", extra_env={"KUBESCIM_LOG_LEVEL": "WARNING"}
                    )
                )
            tally = Tally()
            users: dict[str, UserModel] = {}
            members: dict[str, set[str]] = {}
            stop = time.monotonic() + DURATION
            workers = [
                asyncio.create_task(worker(i, replicas, token, tally, stop, users, members)) for i in range(CLIENTS)
            ]

            await asyncio.sleep(DURATION * 0.25)
            await asyncio.to_thread(plane.stop_process, "kube-apiserver")  # outage: 4 seconds
            await asyncio.sleep(4)
            await asyncio.to_thread(plane.restart_apiserver)
            await asyncio.sleep(DURATION * 0.2)
            victim = replicas.gateways[1]
            victim.kill()  # mid-request: clients retry on the other replica
            await asyncio.sleep(2)
            replicas.gateways[1] = await asyncio.to_thread(
                start_gateway, plane.kubeconfig, "load", extra_env={"KUBESCIM_LOG_LEVEL": "WARNING"}
            )
            await asyncio.gather(*workers)

            objects, _ = await kube.list(SCIM_USERS, "load")
            by_name: dict[str, list[dict[str, Any]]] = {}
            for obj in objects:
                by_name.setdefault(fold(obj["spec"]["userName"]), []).append(obj)
            lost = [u for u in users if len(by_name.get(fold(u), [])) != 1]
            duplicated = [u for u, objs in by_name.items() if len(objs) > 1]
            extra = [u for u in by_name if u not in {fold(n) for n in users}]
            wrong_state = []
            for user_name, model in users.items():
                obj = by_name[fold(user_name)][0]
                labels = obj["metadata"].get("labels") or {}
                groups = {k[len(GROUP_LABEL_PREFIX) :] for k in labels if k.startswith(GROUP_LABEL_PREFIX)}
                expected_groups = {g for g, m in members.items() if model.scim_id in m}
                if (
                    obj["spec"].get("active", True) != model.active
                    or obj["spec"].get("title", "") != model.title
                    or groups != expected_groups
                    or labels["identity.kubescim.dev/scim-id"] != model.scim_id
                ):
                    wrong_state.append(user_name)
            figures = {
                "requests_sent": tally.sent,
                "acknowledged": tally.acknowledged,
                "retries": tally.retries,
                "503_with_retry_after": tally.status[503],
                "connection_errors": tally.connection_errors,
                "other_5xx": len(tally.bad_5xx),
                "users": len(users),
                "memberships": sum(len(m) for m in members.values()),
                "lost": len(lost),
                "duplicated": len(duplicated),
                "unexpected": len(extra),
                "wrong_state": len(wrong_state),
            }
            print(f"\nload figures: {figures}")
            assert not tally.bad_5xx, tally.bad_5xx[:5]
            assert tally.status[503] > 0, "the outage was not observed"
            assert not lost, lost[:5]
            assert not duplicated, duplicated[:5]
            assert not extra, extra[:5]
            assert not wrong_state, wrong_state[:5]
    finally:
        for gateway in replicas.gateways:
            gateway.stop()
        await asyncio.to_thread(plane.stop)
