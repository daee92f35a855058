"""Access benchmark: how fast offboarding reaches the authorizer, and what a rule edit costs in RBAC writes.

Setup (default sizes): 10,000 users in 1,000 groups, 200 team rules (198 from groups, 2 from attributes),
two RoleMappings, 100 AccessBindings over 50 namespaces (teams per namespace, role holders over a
namespace selector, and one binding of every employee, split into many objects).

1. Deactivation: a SCIM PATCH active=false through the gateway, from its 2xx until the API server's
   authorizer (a SubjectAccessReview, what `kubectl auth can-i --as` asks) denies that user in a
   namespace a binding had granted; p50 and p99, for users whose revocation changes 6 RBAC objects
   and for leads, also in ten bindings over every namespace (506 objects).
2. Rule edit: a RoleMapping every user matches stops matching and matches again; RBAC object writes
   counted from a watch (updates, creations and deletions), per changed object (target: one).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import random
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    Sizes,
    bulk_backlog,
    environment,
    percentile,
    propagation_org,
)
from identity_operator.access.plan import subject_hash
from kubescim.constants import (
    ACCESS_BINDINGS,
    API_VERSION,
    IDENTITY_PROVIDERS,
    LABEL_ACCESS_BINDING,
    LABEL_ACCESS_BINDING_NAMESPACE,
    LABEL_SHARD,
    ROLE_BINDINGS,
    ROLE_MAPPINGS,
    SCIM_USERS,
)
from kubescim.kube import NAMESPACES, ApiError, Kube, Resource
from kubescim_dev.controlplane import ControlPlane
from kubescim_dev.processes import start_operator

CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False)
ACCESS_REVIEWS = Resource("authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False)
ROLE = "bench-edit"


async def allowed(kube: Kube, user: str, namespace: str) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "resourceAttributes": {"namespace": namespace, "verb": "create", "resource": "configmaps"},
        },
    }
    answer = await kube.create(ACCESS_REVIEWS, review)
    return bool(answer.get("status", {}).get("allowed"))


async def _settled(kube: Kube, namespace: str, bindings: int, timeout: float = 1800) -> None:
    """Every AccessBinding applied for its generation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items, _ = await kube.list(ACCESS_BINDINGS, namespace)
        ready = 0
        for item in items:
            for condition in (item.get("status") or {}).get("conditions") or []:
                if (
                    condition.get("type") == "Ready"
                    and condition.get("reason") == "Applied"
                    and condition.get("observedGeneration") == item["metadata"]["generation"]
                ):
                    ready += 1
        if ready >= bindings:
            return
        await asyncio.sleep(1)
    raise TimeoutError("access bindings never all applied")


async def _count_subjects(kube: Kube, namespace: str, target: str, binding: str = "bind-000") -> int:
    """Subjects of one binding's RoleBindings in one namespace."""
    selector = f"{LABEL_ACCESS_BINDING_NAMESPACE}={namespace},{LABEL_ACCESS_BINDING}={binding}"
    items, _ = await kube.list(ROLE_BINDINGS, target, label_selector=selector)
    return sum(len(i.get("subjects") or []) for i in items)


async def bench_access(plane: ControlPlane, kube: Kube, sizes: Sizes) -> dict[str, Any]:
    env = await environment(plane, kube, "access")
    users, groups, rules = sizes.propagation_users, sizes.propagation_groups, sizes.propagation_rules
    spaces, binding_count = sizes.access_namespaces, sizes.access_bindings
    namespaces = [f"{env.namespace}-n{i:02d}" for i in range(spaces)]
    out: dict[str, Any] = {
        "users": users,
        "groups": groups,
        "rules": rules,
        "bindings": binding_count,
        "namespaces": spaces,
    }
    try:
        await kube.patch(
            IDENTITY_PROVIDERS,
            "okta",
            {
                "spec": {
                    "access": {
                        "username": {"prefix": "okta:"},
                        "roles": [{"name": "member", "rank": 10}, {"name": "lead", "rank": 50}],
                    }
                }
            },
            env.namespace,
        )
        if not await _exists(kube, CLUSTER_ROLES, ROLE):
            role = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": ROLE},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
            }
            await kube.create(CLUSTER_ROLES, role)
        for name in namespaces:
            await kube.create(NAMESPACES, {"metadata": {"name": name, "labels": {"bench": env.namespace}}})
        await propagation_org(kube, env.namespace, users, groups, rules)
        await _create(
            kube,
            ROLE_MAPPINGS,
            "RoleMapping",
            "everyone",
            {"attribute": "userType", "match": {"value": "Employee"}, "role": "member"},
            env.namespace,
        )
        await _create(
            kube,
            ROLE_MAPPINGS,
            "RoleMapping",
            "leads",
            {"attribute": "title", "match": {"value": "T0"}, "role": "lead"},
            env.namespace,
        )
        leads = sum(1 for i in range(users) if i % 17 == 0)  # load_users' titles: T0 .. T16
        # Bindings: most grant a team one namespace; every tenth grants the leads every namespace
        # (a selector); one grants every employee (role member, or lead for T0) five namespaces.
        selector: dict[str, Any] = {"namespaceSelector": {"matchLabels": {"bench": env.namespace}}}
        for b in range(binding_count):
            body: dict[str, Any]
            if b == 0:
                body = {"subjects": {"roles": ["member", "lead"]}, "scope": {"namespaces": namespaces[:5]}}
            elif b % 10 == 0:
                body = {"subjects": {"roles": ["lead"]}, "scope": selector}
            else:
                body = {
                    "subjects": {"teams": [f"team-{b % (rules - 2):05d}"]},
                    "scope": {"namespaces": [namespaces[b % spaces]]},
                }
            await _create(
                kube,
                ACCESS_BINDINGS,
                "AccessBinding",
                f"bind-{b:03d}",
                {**body, "roleRef": {"name": ROLE}},
                env.namespace,
            )
        started = time.perf_counter()
        operator = await asyncio.to_thread(
            start_operator,
            plane.kubeconfig,
            env.namespace,
            extra_env={
                "KUBESCIM_LOG_LEVEL": "WARNING",
                "KUBESCIM_ACCESS_ALLOWED_ROLES": json.dumps([f"ClusterRole/{ROLE}"]),
            },
        )
        env.processes.append(operator)
        await _settled(kube, env.namespace, binding_count)
        while await _count_subjects(kube, env.namespace, namespaces[0]) < users:
            await asyncio.sleep(1)
        out["initial_convergence_s"] = round(time.perf_counter() - started, 1)
        objects, _ = await kube.list(
            ROLE_BINDINGS, None, label_selector=f"{LABEL_ACCESS_BINDING_NAMESPACE}={env.namespace}"
        )
        out["rbac_objects"] = len(objects)
        out["largest_object_subjects"] = max(len(o.get("subjects") or []) for o in objects)

        # 1. Deactivation -> denied. Every user holds member or lead, granted in namespaces[0].
        # Two kinds of user: most hold `member` (granted by 5 objects in namespaces[0..4] plus their
        # team's), a lead (title T0) is also in the ten selector bindings: 500 more objects to change.
        user_objects, _ = await kube.list(SCIM_USERS, env.namespace)
        leaders = [u for u in user_objects if u["spec"].get("title") == "T0"]
        members = [u for u in user_objects if u["spec"].get("title") != "T0"]
        lead_samples = max(1, sizes.access_samples // 10)
        chosen = [(u, "member") for u in random.sample(members, min(sizes.access_samples - lead_samples, len(members)))]
        chosen += [(u, "lead") for u in random.sample(leaders, min(lead_samples, len(leaders)))]
        latencies: dict[str, list[float]] = {"member": [], "lead": []}
        # Where the time goes, from the same 2xx: the operator's status write for the user (its
        # engine has acted), and the rewrite of the shard of the everyone-binding that held the user
        # in namespaces[0] (the access controller has acted). Both from watches, which cost nothing
        # while nothing changes.
        steps: dict[str, dict[str, list[float]]] = {k: {"status": [], "rbac": []} for k in latencies}
        first = await kube.get(ROLE_BINDINGS, "kubescim-bind-000-0", namespaces[0])
        shards = int(first["metadata"]["labels"][LABEL_SHARD].split("-of-")[1])
        # The samples start once every binding is applied; the operator may still be writing users'
        # labels and status from its start (at 100,000 users, for many minutes): the samples say so.
        metrics_port = int(operator.env["KUBESCIM_METRICS_PORT"])
        out["bulk_backlog_users"] = {"first_sample": await bulk_backlog(metrics_port)}
        async with env.scim(4) as client:
            for user, kind in chosen:
                username = f"okta:{user['spec']['userName']}"
                scim_id = user["metadata"]["labels"]["identity.kubescim.dev/scim-id"]
                assert await allowed(kube, username, namespaces[0]), username
                since = await kube.current_version(ROLE_BINDINGS)
                shard_name = f"kubescim-bind-000-{subject_hash(username) % shards}"
                status_seen = asyncio.create_task(
                    _first_event(kube, SCIM_USERS, env.namespace, since, user["metadata"]["name"], _acted_on)
                )
                rbac_seen = asyncio.create_task(
                    _first_event(
                        kube,
                        ROLE_BINDINGS,
                        namespaces[0],
                        since,
                        shard_name,
                        functools.partial(_lacks, username),
                    )
                )
                await asyncio.sleep(0.05)  # both watches open
                response = await client.patch(f"/Users/{scim_id}", json=_active(False))
                assert response.status_code == 200, response.text
                acknowledged = time.perf_counter()
                while await allowed(kube, username, namespaces[0]):
                    await asyncio.sleep(0.005)
                latencies[kind].append(time.perf_counter() - acknowledged)
                for step, task in (("status", status_seen), ("rbac", rbac_seen)):
                    with contextlib.suppress(TimeoutError):
                        steps[kind][step].append(await asyncio.wait_for(task, 30) - acknowledged)
                    task.cancel()
                response = await client.patch(f"/Users/{scim_id}", json=_active(True))
                assert response.status_code == 200, response.text
                while not await allowed(kube, username, namespaces[0]):
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.5)  # the reactivation's writes done: samples do not overlap
        out["bulk_backlog_users"]["last_sample"] = await bulk_backlog(metrics_port)
        out["deactivation_to_denied"] = {
            kind: {
                "objects_to_change": 5 + 1 if kind == "member" else 5 + 1 + 10 * spaces,
                "p50_ms": round(percentile(values, 50) * 1000, 1),
                "p99_ms": round(percentile(values, 99) * 1000, 1),
                "max_ms": round(max(values) * 1000, 1),
                "samples": len(values),
                **{
                    f"{step}_{q}_ms": round(percentile(seen, q) * 1000, 1)
                    for step, seen in steps[kind].items()
                    if seen
                    for q in (50, 99)
                },
            }
            for kind, values in latencies.items()
            if values
        }

        # 2. A rule edit moving every user out of `member` and back: RBAC writes per changed object.
        out["rule_edit"] = {}
        for label, value in (("revoke_all", "Nobody"), ("grant_all", "Employee")):
            version = await kube.current_version(ROLE_BINDINGS)
            writes: dict[str, int] = {}

            async def watch_writes(since: str = version, seen: dict[str, int] = writes) -> None:
                async for event in kube.watch(
                    ROLE_BINDINGS,
                    None,
                    resource_version=since,
                    timeout_seconds=600,
                    label_selector=f"{LABEL_ACCESS_BINDING_NAMESPACE}={env.namespace}",
                ):
                    if event["type"] in ("MODIFIED", "ADDED", "DELETED"):
                        meta = event["object"]["metadata"]
                        key = f"{meta['namespace']}/{meta['name']}"
                        seen[key] = seen.get(key, 0) + 1

            watcher = asyncio.create_task(watch_writes())
            await asyncio.sleep(0.5)
            started = time.perf_counter()
            await kube.patch(ROLE_MAPPINGS, "everyone", {"spec": {"match": {"value": value}}}, env.namespace)
            expected = leads if value == "Nobody" else users
            while await _count_subjects(kube, env.namespace, namespaces[0]) != expected:
                await asyncio.sleep(0.25)
            elapsed = time.perf_counter() - started
            await asyncio.sleep(3)  # late or repeated writes would show here
            watcher.cancel()
            total = sum(writes.values())
            out["rule_edit"][label] = {
                "users_moved": users,
                "converge_s": round(elapsed, 1),
                "rbac_writes": total,
                "objects_changed": len(writes),
                "writes_per_changed_object": round(total / max(len(writes), 1), 2),
            }
    finally:
        for process in env.processes:
            process.stop()
        for name in [env.namespace, *namespaces]:
            with contextlib.suppress(ApiError):
                await kube.delete(NAMESPACES, name)
    return out


def _lacks(username: str, body: dict[str, Any]) -> bool:
    return all(s.get("name") != username for s in body.get("subjects") or [])


def _acted_on(body: dict[str, Any]) -> bool:
    """The operator has written the status of this generation of a deactivated user."""
    observed = (body.get("status") or {}).get("observedGeneration") or 0
    return body["spec"].get("active") is False and observed >= body["metadata"].get("generation", 0)


async def _first_event(
    kube: Kube, resource: Resource, namespace: str, since: str, name: str, wanted: Callable[[dict[str, Any]], bool]
) -> float:
    """When the named object first changes into what `wanted` accepts (perf_counter time)."""
    async for event in kube.watch(
        resource, namespace, resource_version=since, timeout_seconds=60, field_selector=f"metadata.name={name}"
    ):
        if event["type"] in ("ADDED", "MODIFIED") and wanted(event["object"]):
            return time.perf_counter()
    return math.nan


async def _exists(kube: Kube, resource: Resource, name: str) -> bool:
    try:
        await kube.get(resource, name)
        return True
    except ApiError as error:
        if error.not_found:
            return False
        raise


async def _create(kube: Kube, resource: Resource, kind: str, name: str, spec: dict[str, Any], namespace: str) -> None:
    await kube.create(
        resource, {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}, namespace
    )


def _active(active: bool) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": active}],
    }
