"""kubescim benchmarks: the numbers an adopter asks about, each next to the baseline it is compared with,
measured in the same run on the same machine (`make bench`; `--smoke` for a tiny run, `--full` for
the 100,000-user sizes). Writes bench/results/latest.json and latest.md. Never fails on a missed target.

Machines here are small and noisy: every figure is a median of repeated runs, ratios matter more than
absolute numbers, and the machine's core count and load are recorded with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.access import bench_access
from bench.common import (
    DEFAULT,
    FULL,
    RESULTS,
    SMOKE,
    ScimClient,
    Sizes,
    bounded,
    cpu_seconds,
    environment,
    load_users,
    median_of,
    new_namespace,
    parse_metrics,
    percentile,
    propagation_org,
    rss_kib,
    summary,
    wait_cached,
)
from identity_operator.okta.client import MAX_LIMIT, OktaClient, OktaCredentials
from identity_operator.okta.reconciler import reconcile
from kubescim.api.models import IdentityProviderSpec, ScimUserSpec
from kubescim.constants import (
    API_VERSION,
    BUSINESS_UNIT_LABEL_PREFIX,
    BUSINESS_UNIT_MAPPINGS,
    BUSINESS_UNITS,
    ENTERPRISE_USER_URN,
    GROUP_LABEL_PREFIX,
    LABEL_ROLE,
    LABEL_SCIM_ID,
    SCIM_GROUPS,
    SCIM_USERS,
    TEAM_LABEL_PREFIX,
    TEAMS,
)
from kubescim.kube import NAMESPACES, ApiError, Kube, KubeConfig, Resource
from kubescim.objects import scim_user_object
from kubescim.scim.resources import new_id
from kubescim_dev.controlplane import REPO_ROOT, ControlPlane, free_port
from kubescim_dev.oktasim.api import SimulatorConfig
from kubescim_dev.oktasim.org import generate
from kubescim_dev.oktasim.server import SimulatorServer
from kubescim_dev.processes import ManagedProcess, start_gateway, start_operator
from kubescim_dev.stack import create_provider, install_crds

# --- 1. write path ------------------------------------------------------------------------------


async def bench_write_path(plane: ControlPlane, kube: Kube, sizes: Sizes) -> dict[str, Any]:
    env = await environment(plane, kube, "write")
    out: dict[str, Any] = {"levels": {}}
    all_ids: dict[int, list[list[str]]] = {1: [], 8: [], 32: []}
    try:
        for concurrency in (1, 8, 32):
            direct_runs, gateway_runs, patch_runs, label_runs = [], [], [], []
            # CPU per request of each process: on two shared cores the throughput ratio is bounded by
            # how the gateway's CPU compares with the API server's, which this shows directly.
            cpu: dict[str, float] = {
                "direct_apiserver": 0.0,
                "gateway": 0.0,
                "gateway_apiserver": 0.0,
                "member_patch_gateway": 0.0,
                "member_patch_apiserver": 0.0,
                "label_patch_apiserver": 0.0,
            }
            apiserver_pid = plane.pid("kube-apiserver")
            gateway_pid = env.gateway.process.pid if env.gateway.process else None
            # Which phase runs first alternates by repeat: what one phase leaves behind (etcd's
            # compaction, the API server's garbage, the gateway's watch events) is charged to each
            # side alike, and the ratio of each order shows whether it matters.
            ratios: dict[str, list[float]] = {"direct_first": [], "gateway_first": []}
            for repeat in range(sizes.write_repeats):
                n = sizes.write_requests
                tag = uuid.uuid4().hex[:6]
                direct_first = repeat % 2 == 0

                if direct_first:
                    run, seconds = await _direct_creates(kube, env.namespace, concurrency, n, tag, apiserver_pid)
                    direct_runs.append(run)
                    cpu["direct_apiserver"] += seconds
                async with env.scim(concurrency) as client:
                    ids: list[str] = []

                    def post_job(i: int, client: ScimClient = client, tag: str = tag, ids: list[str] = ids) -> Any:
                        async def post() -> None:
                            response = await client.post(
                                "/Users",
                                json={
                                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                    "userName": f"g{tag}-{i}@bench.example.com",
                                    "active": True,
                                },
                            )
                            assert response.status_code == 201, response.text
                            ids.append(response.json()["id"])

                        return post

                    start = time.perf_counter()
                    before_api, before_gateway = cpu_seconds(apiserver_pid), cpu_seconds(gateway_pid)
                    latencies = await bounded(concurrency, [post_job(i) for i in range(n)])
                    gateway_runs.append(summary(latencies, time.perf_counter() - start))
                    cpu["gateway_apiserver"] += cpu_seconds(apiserver_pid) - before_api
                    cpu["gateway"] += cpu_seconds(gateway_pid) - before_gateway

                    before_api, before_gateway = cpu_seconds(apiserver_pid), cpu_seconds(gateway_pid)
                    patch_runs.append(await _member_patches(client, ids, concurrency, 200))
                    cpu["member_patch_apiserver"] += cpu_seconds(apiserver_pid) - before_api
                    cpu["member_patch_gateway"] += cpu_seconds(gateway_pid) - before_gateway
                    all_ids[concurrency].append(ids)
                if not direct_first:
                    run, seconds = await _direct_creates(kube, env.namespace, concurrency, n, tag, apiserver_pid)
                    direct_runs.append(run)
                    cpu["direct_apiserver"] += seconds
                order = "direct_first" if direct_first else "gateway_first"
                ratios[order].append(gateway_runs[-1]["throughput_per_s"] / direct_runs[-1]["throughput_per_s"])
                # The baseline labels the same users, as many patches as the member PATCHes above.
                users = []
                for chunk in range(0, len(ids), 100):
                    found, _ = await kube.list(
                        SCIM_USERS,
                        env.namespace,
                        label_selector=f"identity.kubescim.dev/scim-id in ({','.join(ids[chunk : chunk + 100])})",
                    )
                    users += found

                def label_job(name: str, tag: str = tag) -> Any:
                    async def label() -> None:
                        await kube.patch(
                            SCIM_USERS,
                            name,
                            {"metadata": {"labels": {f"{GROUP_LABEL_PREFIX}x{tag}": "member"}}},
                            env.namespace,
                        )

                    return label

                names = [u["metadata"]["name"] for u in users]
                start = time.perf_counter()
                before_api = cpu_seconds(apiserver_pid)
                latencies = await bounded(concurrency, [label_job(n) for n in names])
                label_runs.append(summary(latencies, time.perf_counter() - start))
                cpu["label_patch_apiserver"] += cpu_seconds(apiserver_pid) - before_api
            direct, gateway = median_of(direct_runs), median_of(gateway_runs)
            out["levels"][str(concurrency)] = {
                "direct_create": direct,
                "gateway_post_users": gateway,
                "throughput_ratio": round(gateway["throughput_per_s"] / direct["throughput_per_s"], 3),
                "p50_overhead_ms": round(gateway["p50_ms"] - direct["p50_ms"], 2),
                "ratio_by_order": {k: round(statistics.median(v), 3) for k, v in ratios.items() if v},
                "direct_label_patch": median_of(label_runs),
                "gateway_member_patch": median_of(patch_runs),
                "cpu_ms_per_request": {
                    k: round(v * 1000 / (sizes.write_requests * sizes.write_repeats), 2) for k, v in cpu.items()
                },
            }
    finally:
        env.gateway.stop()
    # The same PATCHes answered 204 (gateway.groupPatchNoContent), on a gateway started alone so
    # that no idle replica shares the cores while the figures above are taken.
    quiet = await asyncio.to_thread(
        start_gateway,
        plane.kubeconfig,
        env.namespace,
        extra_env={"KUBESCIM_LOG_LEVEL": "WARNING", "KUBESCIM_GROUP_PATCH_NO_CONTENT": "true"},
    )
    try:
        for concurrency, batches in all_ids.items():
            async with ScimClient(quiet.scim_url, env.token, concurrency) as client:
                runs = [await _member_patches(client, ids, concurrency, 204) for ids in batches]
            level = out["levels"][str(concurrency)]
            level["gateway_member_patch_no_content"] = median_of(runs)
    finally:
        quiet.stop()
    return out


async def _direct_creates(
    kube: Kube, namespace: str, concurrency: int, n: int, tag: str, apiserver_pid: int | None
) -> tuple[dict[str, Any], float]:
    """The baseline: the same ScimUsers created straight on the API server; its summary and the API
    server's CPU seconds."""

    def direct_job(i: int) -> Any:
        async def create() -> None:
            spec = ScimUserSpec(provider="okta", user_name=f"d{tag}-{i}@bench.example.com", active=True)
            await kube.create(SCIM_USERS, scim_user_object(spec, new_id()), namespace)

        return create

    start = time.perf_counter()
    before = cpu_seconds(apiserver_pid)
    latencies = await bounded(concurrency, [direct_job(i) for i in range(n)])
    return summary(latencies, time.perf_counter() - start), cpu_seconds(apiserver_pid) - before


async def _member_patches(client: ScimClient, user_ids: list[str], concurrency: int, status: int) -> dict[str, Any]:
    """Okta's Push Groups: one PATCH adding one member per user, all to one new group."""
    group = (await client.post("/Groups", json={"displayName": f"bench-{uuid.uuid4().hex[:6]}"})).json()["id"]

    def patch_job(user_id: str) -> Any:
        async def patch() -> None:
            response = await client.patch(
                f"/Groups/{group}",
                json={
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}],
                },
            )
            assert response.status_code == status, response.text

        return patch

    start = time.perf_counter()
    latencies = await bounded(concurrency, [patch_job(u) for u in user_ids])
    return summary(latencies, time.perf_counter() - start)


# --- 2. read path -------------------------------------------------------------------------------


async def bench_read_path(plane: ControlPlane, kube: Kube, sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}}
    for size in sizes.read_sizes:
        env = await environment(plane, kube, f"read{size}")
        try:
            await load_users(kube, env.namespace, size)
            await wait_cached(env, size)
            async with env.scim(8) as client:
                filter_runs, page_runs = [], []
                for _ in range(sizes.repeats):
                    picks = [random.randrange(size) for _ in range(200)]

                    def filter_job(i: int, client: ScimClient = client) -> Any:
                        async def get() -> None:
                            response = await client.get(
                                "/Users", params={"filter": f'userName eq "user{i}@bench.example.com"'}
                            )
                            assert response.json()["totalResults"] == 1

                        return get

                    start = time.perf_counter()
                    latencies = await bounded(1, [filter_job(i) for i in picks])
                    filter_runs.append(summary(latencies, time.perf_counter() - start))

                    def page_job(start_index: int, client: ScimClient = client) -> Any:
                        async def get() -> None:
                            response = await client.get("/Users", params={"startIndex": start_index, "count": 100})
                            assert response.status_code == 200

                        return get

                    pages = [random.randrange(1, max(2, size - 100)) for _ in range(30)]
                    start = time.perf_counter()
                    latencies = await bounded(1, [page_job(p) for p in pages])
                    page_runs.append(summary(latencies, time.perf_counter() - start))
            out["sizes"][str(size)] = {
                "filter_userName_eq": median_of(filter_runs),
                "page_of_100": median_of(page_runs),
            }
        finally:
            env.gateway.stop()
            await kube.delete(NAMESPACES, env.namespace)
    small, large = (out["sizes"][str(s)] for s in sizes.read_sizes)
    out["growth"] = {
        "users": f"{sizes.read_sizes[0]} -> {sizes.read_sizes[1]}",
        "filter_p50_ratio": round(large["filter_userName_eq"]["p50_ms"] / small["filter_userName_eq"]["p50_ms"], 2),
        "page_p50_ratio": round(large["page_of_100"]["p50_ms"] / small["page_of_100"]["p50_ms"], 2),
    }
    return out


# --- 3 + 4. propagation and mass change -----------------------------------------------------------


async def _count(kube: Kube, resource: Resource, namespace: str, selector: str) -> int:
    """How many objects match, reading metadata only (cheap for the API server we are measuring)."""
    count = 0
    params: dict[str, str | int] = {"labelSelector": selector, "limit": 5000}
    while True:
        page = await kube.request(
            "GET",
            resource.path(namespace),
            params=params,
            accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        count += len(page.get("items") or [])
        if not (page.get("metadata") or {}).get("continue"):
            return count
        params["continue"] = page["metadata"]["continue"]


async def _until_indexed(metrics_port: int, timeout: float = 3600) -> int:
    """Until the operator's view is complete and its queues are empty; returns the user writes it made."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as client:
        while time.monotonic() < deadline:
            samples = parse_metrics((await client.get("/metrics")).text)
            queued = sum(v for k, v in samples.items() if k.startswith("kubescim_operator_recompute_queue_depth"))
            if samples.get("kubescim_operator_users_indexed") == 1 and queued == 0:
                return round(
                    samples.get('kubescim_operator_writes_total{kind="user_labels"}', 0)
                    + samples.get('kubescim_operator_writes_total{kind="user_status"}', 0)
                )
            await asyncio.sleep(0.5)
    raise TimeoutError("the restarted operator never completed its view")


async def _all_have_status(kube: Kube, namespace: str, count: int, timeout: float = 3600) -> None:
    """Until every one of `count` ScimUsers carries the operator's status (its id): one list, then
    the watch (repeated lists of 100,000 users would load the API server the operator needs)."""
    items, version = await kube.list(SCIM_USERS, namespace)
    done = {str(i["metadata"]["name"]) for i in items if (i.get("status") or {}).get("id")}
    del items

    async def watch() -> None:
        async for event in kube.watch(SCIM_USERS, namespace, resource_version=version, timeout_seconds=1800):
            obj = event.get("object") or {}
            if (obj.get("status") or {}).get("id"):
                done.add(str((obj.get("metadata") or {}).get("name")))

    watcher = asyncio.create_task(watch())
    deadline = time.monotonic() + timeout
    try:
        while len(done) < count:
            if watcher.done():
                watcher.result()  # a failed watch says why
                watcher = asyncio.create_task(watch())
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(done)} of {count} users have the operator's status after {timeout} s")
            await asyncio.sleep(0.5)
    finally:
        watcher.cancel()


async def _direct_start_writes(kube: Kube, namespace: str, concurrency: int = 16) -> None:
    """A first start's writes without the operator: per user, a label patch adding two labels (a
    user's teams) and a merge patch of its whole status (rewritten: the condition's message
    changes). The objects already carry the operator's labels and status, so each write handles a
    larger object than the first start's writes did: an upper bound on their cost."""
    items, _ = await kube.list(SCIM_USERS, namespace)
    users = [(str(i["metadata"]["name"]), dict(i.get("status") or {})) for i in items]
    del items

    def job(name: str, status: dict[str, Any]) -> Any:
        async def write() -> None:
            labels = {"floor.bench.kubescim.dev/team-a": "member", "floor.bench.kubescim.dev/team-b": "member"}
            await kube.patch(SCIM_USERS, name, {"metadata": {"labels": labels}}, namespace)
            conditions = [{**c, "message": f"{c.get('message', '')} (floor)"} for c in status.get("conditions") or []]
            await kube.patch(
                SCIM_USERS, name, {"status": {**status, "conditions": conditions}}, namespace, subresource="status"
            )

        return write

    await bounded(concurrency, [job(name, status) for name, status in users])


async def _quiet(kube: Kube, resource: Resource, namespace: str, seconds: float = 3.0) -> None:
    """Wait until no object of this kind has changed for `seconds` (a watch, not repeated lists)."""
    version = await kube.current_version(resource, namespace)
    last = time.monotonic()

    async def watch() -> None:
        nonlocal last
        async for _event in kube.watch(resource, namespace, resource_version=version, timeout_seconds=1800):
            last = time.monotonic()

    watcher = asyncio.create_task(watch())
    try:
        while time.monotonic() - last < seconds:
            await asyncio.sleep(0.5)
    finally:
        watcher.cancel()


async def bench_operator(plane: ControlPlane, kube: Kube, sizes: Sizes) -> dict[str, Any]:
    env = await environment(plane, kube, "operator")
    users, groups, rules = sizes.propagation_users, sizes.propagation_groups, sizes.propagation_rules
    out: dict[str, Any] = {"users": users, "groups": groups, "rules": rules}
    try:
        await propagation_org(kube, env.namespace, users, groups, rules)
        await kube.create(
            BUSINESS_UNIT_MAPPINGS,
            {
                "apiVersion": API_VERSION,
                "kind": "BusinessUnitMapping",
                "metadata": {"name": "mass"},
                "spec": {"attribute": "userType", "match": {"value": "Employee"}, "target": {"name": "unit-a"}},
            },
            env.namespace,
        )
        started = time.perf_counter()
        operator = await asyncio.to_thread(
            start_operator, plane.kubeconfig, env.namespace, extra_env={"KUBESCIM_LOG_LEVEL": "WARNING"}
        )
        env.processes.append(operator)
        # Converged: every user labelled, then no ScimUser write for 3 s (statuses written too).
        # Counting 100,000 users' metadata each second would load the API server being measured.
        poll = 1.0 if users <= 20000 else 5.0
        while await _count(kube, SCIM_USERS, env.namespace, "businessunit.identity.kubescim.dev/unit-a") < users:
            await asyncio.sleep(poll)
        await _quiet(kube, SCIM_USERS, env.namespace)
        out["initial_convergence_s"] = round(time.perf_counter() - started - 3.0, 1)

        # 3. Real-time: a membership PATCH through the gateway until label + Team status show it.
        latencies_label, latencies_status = [], []
        user_objects, _ = await kube.list(SCIM_USERS, env.namespace, limit=500)
        async with env.scim(4) as client:
            for sample in range(sizes.propagation_samples):
                user = random.choice(user_objects)
                scim_id = user["metadata"]["labels"]["identity.kubescim.dev/scim-id"]
                target = random.randrange(rules - 2)
                response = await client.patch(
                    f"/Groups/g-{target:05d}",
                    json={
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": scim_id}]}],
                    },
                )
                assert response.status_code == 200, response.text
                acknowledged = time.perf_counter()
                team = f"team-{target:05d}"
                seen_label = seen_status = None
                while seen_label is None or seen_status is None:
                    if seen_label is None:
                        current = await kube.get(SCIM_USERS, user["metadata"]["name"], env.namespace)
                        if f"team.identity.kubescim.dev/{team}" in (current["metadata"].get("labels") or {}):
                            seen_label = time.perf_counter() - acknowledged
                    if seen_status is None:
                        status = await _status_of(kube, TEAMS, team, env.namespace)
                        if any(m.get("user") == user["metadata"]["name"] for m in status.get("members") or []):
                            seen_status = time.perf_counter() - acknowledged
                    await asyncio.sleep(0.005)
                latencies_label.append(seen_label)
                latencies_status.append(seen_status)
                del sample
        out["propagation"] = {
            "user_label": {
                "p50_ms": round(percentile(latencies_label, 50) * 1000, 1),
                "p99_ms": round(percentile(latencies_label, 99) * 1000, 1),
            },
            "team_status": {
                "p50_ms": round(percentile(latencies_status, 50) * 1000, 1),
                "p99_ms": round(percentile(latencies_status, 99) * 1000, 1),
            },
            "samples": len(latencies_label),
        }

        # 4. Mass change: retarget the rule every user matches, count writes with a watch.
        version = await kube.current_version(SCIM_USERS, env.namespace)
        writes: dict[str, int] = {}

        async def watch_writes() -> None:
            # Re-opened where it ended: at 100,000 users the change outlasts one watch's timeout, and
            # a closed watch undercounted (48,470 of 100,000 users seen changing).
            since = version
            while True:
                async for event in kube.watch(SCIM_USERS, env.namespace, resource_version=since, timeout_seconds=600):
                    since = event["object"]["metadata"].get("resourceVersion") or since
                    if event["type"] == "MODIFIED":
                        name = event["object"]["metadata"]["name"]
                        writes[name] = writes.get(name, 0) + 1

        watcher = asyncio.create_task(watch_writes())
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        await kube.patch(BUSINESS_UNIT_MAPPINGS, "mass", {"spec": {"target": {"name": "unit-b"}}}, env.namespace)
        while True:
            moved = await _count(kube, SCIM_USERS, env.namespace, "businessunit.identity.kubescim.dev/unit-b")
            unit = await _status_of(kube, BUSINESS_UNITS, "unit-b", env.namespace) if moved >= users else {}
            if moved >= users and unit.get("memberCount") == users:
                break
            await asyncio.sleep(0.5 if users <= 20000 else 5.0)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(2)  # late writes would show here
        watcher.cancel()
        total = sum(writes.values())
        out["mass_change"] = {
            "users_moved": users,
            "converge_s": round(elapsed, 1),
            "user_writes": total,
            "writes_per_changed_user": round(total / max(len(writes), 1), 2),
            "unchanged_users_written": users - len(writes) if len(writes) <= users else 0,
        }
    finally:
        for process in env.processes:
            process.stop()
        await kube.delete(NAMESPACES, env.namespace)
    return out


async def _status_of(kube: Kube, resource: Resource, name: str, namespace: str) -> dict[str, Any]:
    try:
        return dict((await kube.get(resource, name, namespace)).get("status") or {})
    except ApiError as error:
        if error.not_found:
            return {}
        raise


# --- 5. Okta reconciliation -----------------------------------------------------------------------


async def bench_okta(plane: ControlPlane, kube: Kube, sizes: Sizes) -> dict[str, Any]:
    namespace = await new_namespace(kube, "okta")
    await create_provider(kube, namespace, "okta")
    org = generate(sizes.okta_users, sizes.okta_groups, seed=3)
    # Okta-like limits (600 requests a minute per bucket), the window compressed to 10 s so the run fits.
    config = SimulatorConfig(rate_limit=600, rate_window_seconds=10.0)
    server = SimulatorServer(org, config)
    await server.start()
    out: dict[str, Any] = {
        "users": sizes.okta_users,
        "groups": sizes.okta_groups,
        "rate_limit": "600 requests per bucket per 10 s window",
    }
    try:
        spec = IdentityProviderSpec.model_validate(
            {
                "okta": {
                    "orgUrl": server.url,
                    "appId": org.app_id,
                    "auth": {"type": "ApiToken", "apiTokenSecretRef": {"name": "x", "key": "y"}},
                }
            }
        )
        minimum = (
            math.ceil(len(org.assignments) / MAX_LIMIT["app_users"])
            + max(1, math.ceil(len(org.group_assignments) / MAX_LIMIT["app_groups"]))
            + math.ceil(len(org.push_mappings) / MAX_LIMIT["push"])
            + math.ceil(len(org.groups) / MAX_LIMIT["groups"])
            + sum(max(1, math.ceil(len(g.members) / MAX_LIMIT["group_users"])) for g in org.groups.values())
        )
        runs = {}
        for label in ("initial", "no_drift"):
            server.simulator.reset_stats()
            client = OktaClient(OktaCredentials(server.url, api_token=config.api_token))
            version = await kube.current_version(SCIM_USERS, namespace)
            result = await reconcile(kube, namespace, "okta", spec, client=client, allow_mass_deactivation=True)
            await client.close()
            users_after, _ = await kube.list(SCIM_USERS, namespace)
            changed = sum(1 for u in users_after if int(u["metadata"]["resourceVersion"]) > int(version or 0))
            stats = server.simulator.stats
            runs[label] = {
                "result": result.result,
                "message": result.message[:200],
                "seconds": round(result.duration, 1),
                "okta_calls": result.okta_calls,
                "minimum_calls": minimum,
                "calls_ratio": round(result.okta_calls / minimum, 3),
                "rate_limit_waits": result.rate_limit_waits,
                "throttled_429": stats.throttled,
                "max_budget_share_used": round(1 - min(stats.min_remaining.values(), default=600) / 600, 2),
                "kubernetes_writes": result.writes,
                "users_changed": changed,
            }
        out.update(runs)
        out.update(await _okta_deltas(kube, namespace, spec, server, config.api_token, result.cursor))
    finally:
        await server.stop()
        await kube.delete(NAMESPACES, namespace)
    return out


async def _okta_deltas(
    kube: Kube, namespace: str, spec: Any, server: SimulatorServer, token: str, cursor: Any
) -> dict[str, Any]:
    """Delta runs after the full ones: one with no drift, then one after 50 changes made in Okta
    without pushes (the drift missed pushes leave), each checked in the cluster."""
    org = server.org
    users = sorted(org.assignments)
    groups = sorted(m.source_group_id for m in org.push_mappings.values())
    out: dict[str, Any] = {}

    async def delta(label: str, since: Any) -> Any:
        server.simulator.reset_stats()
        client = OktaClient(OktaCredentials(server.url, api_token=token))
        version = await kube.current_version(SCIM_USERS, namespace)
        result = await reconcile(
            kube, namespace, "okta", spec, client=client, allow_mass_deactivation=True, since=since
        )
        await client.close()
        users_after, _ = await kube.list(SCIM_USERS, namespace)
        out[label] = {
            "result": result.result,
            "kind": result.kind,
            "message": result.message[:200],
            "seconds": round(result.duration, 2),
            "okta_calls": result.okta_calls,
            "calls": dict(server.simulator.stats.calls),
            "throttled_429": server.simulator.stats.throttled,
            "kubernetes_writes": result.writes,
            "users_changed": sum(1 for u in users_after if int(u["metadata"]["resourceVersion"]) > int(version or 0)),
        }
        return result

    quiet = await delta("delta_no_drift", cursor)
    retitled, deactivated, unassigned = users[:15], users[15:25], users[25:30]
    for i, user_id in enumerate(retitled):
        org.update_profile(user_id, title=f"Delta Title {i}")
    for user_id in deactivated:
        org.deactivate_user(user_id)
    for user_id in unassigned:
        org.unassign(user_id)
    newcomers = []
    for i in range(5):
        login = f"delta.newcomer.{i}@example.com"
        newcomer = org.add_user(login=login, email=login, firstName="Delta", lastName=f"N{i}")
        org.assign(newcomer.id)
        newcomers.append((newcomer.id, login))
    for i, group_id in enumerate(groups[:5]):
        org.rename_group(group_id, f"Delta Renamed {i}")
    joined = list(zip(groups[5:15], users[30:40], strict=True))
    for group_id, user_id in joined:
        org.set_members(group_id, org.groups[group_id].members | {user_id})
    await delta("delta_50_changes", quiet.cursor)

    items, _ = await kube.list(SCIM_USERS, namespace)
    by_okta = {str(u["spec"].get("externalId")): u for u in items}
    group_items, _ = await kube.list(SCIM_GROUPS, namespace)
    # The reconciler created these groups: found by their Okta id (externalId), labelled by SCIM id.
    names = {str(g["spec"].get("externalId")): g["spec"].get("displayName") for g in group_items}
    scim_ids = {
        str(g["spec"].get("externalId")): (g["metadata"].get("labels") or {}).get(LABEL_SCIM_ID, g["metadata"]["name"])
        for g in group_items
    }
    repaired = sum(by_okta[u]["spec"].get("title") == f"Delta Title {i}" for i, u in enumerate(retitled))
    repaired += sum(by_okta[u]["spec"].get("active") is False for u in [*deactivated, *unassigned])
    repaired += sum(
        okta_id in by_okta and by_okta[okta_id]["spec"]["userName"] == login for okta_id, login in newcomers
    )
    repaired += sum(names.get(g) == f"Delta Renamed {i}" for i, g in enumerate(groups[:5]))
    repaired += sum(
        f"{GROUP_LABEL_PREFIX}{scim_ids.get(g)}" in (by_okta[u]["metadata"].get("labels") or {}) for g, u in joined
    )
    out["delta_50_changes"]["changes_repaired"] = repaired
    return out


# --- 9. storage: what one user costs etcd ---------------------------------------------------------


def _etcd_in_use_bytes(plane: ControlPlane) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{plane.etcd_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(r"^etcd_mvcc_db_total_size_in_use_in_bytes (\S+)$", text, re.M)
    return float(found.group(1)) if found else float("nan")


async def bench_storage(plane: ControlPlane, kube: Kube, sizes: Sizes) -> dict[str, Any]:
    """A ScimUser as kubescim stores one — the attributes Okta pushes, 3 group labels, team, unit and
    role labels, the operator's status with provenance — created, then its status written (two
    revisions, as in a real push before compaction): JSON bytes as the API returns it (managedFields
    included) and etcd's in-use bytes per user."""
    namespace = await new_namespace(kube, "storage")
    count = sizes.storage_users
    before = _etcd_in_use_bytes(plane)
    sizes_seen: list[int] = []

    def job(i: int) -> Any:
        async def create() -> None:
            spec = ScimUserSpec.model_validate(
                {
                    "provider": "okta",
                    "userName": f"ada.lovelace.{i}@example.com",
                    "externalId": f"00u{i:017d}",
                    "active": True,
                    "displayName": "Ada Lovelace",
                    "title": "Staff Engineer",
                    "userType": "Employee",
                    "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
                    "emails": [{"value": f"ada.lovelace.{i}@example.com", "type": "work", "primary": True}],
                    "extensions": {
                        ENTERPRISE_USER_URN: {
                            "department": "Engineering",
                            "costCenter": "CC-100",
                            "employeeNumber": str(10000 + i),
                            "organization": "Example Corp",
                            "division": "R&D",
                            "employeeID": f"E-{i:06d}",
                        }
                    },
                }
            )
            labels = {f"{GROUP_LABEL_PREFIX}{new_id()}": "member" for _ in range(3)}
            labels |= {
                f"{TEAM_LABEL_PREFIX}team-{i % 7}": "member",
                f"{TEAM_LABEL_PREFIX}platform": "member",
                f"{BUSINESS_UNIT_LABEL_PREFIX}engineering": "member",
                LABEL_ROLE: "developer",
            }
            created = await kube.create(SCIM_USERS, scim_user_object(spec, new_id(), labels), namespace)
            rule = {"kind": "Attribute", "rule": "departments", "attribute": "department", "value": "Engineering"}
            status = {
                "id": created["metadata"]["name"],
                "groups": ["Bifrost Playground: Alpha Team", "Everyone", "Department: Engineering"],
                "teams": [
                    {"name": f"team-{i % 7}", "sources": [rule]},
                    {"name": "platform", "sources": [{"kind": "Group", "rule": "groups", "group": "Everyone"}]},
                ],
                "businessUnits": [{"name": "engineering", "sources": [{"kind": "Team", "team": "platform"}]}],
                "role": {
                    "name": "developer",
                    "rank": 50,
                    "resolution": "HighestPermission",
                    "sources": [{**rule, "rule": "engineers"}],
                    "candidates": ["developer"],
                },
                "kubernetesUsername": f"okta:ada.lovelace.{i}@example.com",
            }
            stored = await kube.patch(
                SCIM_USERS, created["metadata"]["name"], {"status": status}, namespace, subresource="status"
            )
            sizes_seen.append(len(json.dumps(stored, separators=(",", ":"))))

        return create

    try:
        await bounded(32, [job(i) for i in range(count)])
        await asyncio.sleep(2)
        after = _etcd_in_use_bytes(plane)
    finally:
        await kube.delete(NAMESPACES, namespace)
    return {
        "users": count,
        "json_bytes_per_user": round(sum(sizes_seen) / max(len(sizes_seen), 1)),
        "etcd_in_use_bytes_per_user": round((after - before) / count),
    }


# --- 6. memory and startup ------------------------------------------------------------------------


# The direct writes bound the first start's API-server cost from above only (the objects are full-size
# by then), and at 100,000 users they took 17 minutes of a --full run: measured at 10,000 users.
DIRECT_WRITES_MAX_USERS = 10_000


async def bench_memory(plane: ControlPlane, kube: Kube, sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in (0, *sizes.memory_users):
        namespace = await new_namespace(kube, f"mem{size}")
        await create_provider(kube, namespace, "okta")
        # Users in groups of 50, the groups themselves, and the rules (at size 0 too: the per-user
        # figure is what users add): most users get a team from the title rules, some from group rules.
        await propagation_org(kube, namespace, size, size // 50, sizes.memory_rules)
        started = time.perf_counter()
        gateway = await asyncio.to_thread(
            start_gateway, plane.kubeconfig, namespace, extra_env={"KUBESCIM_LOG_LEVEL": "WARNING"}
        )
        gateway_ready = time.perf_counter() - started
        apiserver, etcd = plane.pid("kube-apiserver"), plane.pid("etcd")
        cpu_before = cpu_seconds(apiserver), cpu_seconds(etcd)
        started = time.perf_counter()
        metrics_port = free_port()
        env = {"KUBESCIM_LOG_LEVEL": "WARNING", "KUBESCIM_METRICS_PORT": str(metrics_port)}
        operator = await asyncio.to_thread(start_operator, plane.kubeconfig, namespace, extra_env=env)
        # The operator is settled once every user carries its status (id), and nothing moves for a
        # while: at 100,000 users a quiet spell alone came before the operator's first write.
        if size:
            await _all_have_status(kube, namespace, size)
            await _quiet(kube, SCIM_USERS, namespace)
        operator_settled = time.perf_counter() - started
        assert operator.process is not None
        operator_cpu = cpu_seconds(operator.process.pid)
        apiserver_cpu, etcd_cpu = cpu_seconds(apiserver) - cpu_before[0], cpu_seconds(etcd) - cpu_before[1]
        await asyncio.sleep(1)
        assert gateway.process is not None
        out[str(size)] = {
            "gateway_peak_rss_kib": rss_kib(gateway.process.pid)["VmHWM"],
            "operator_peak_rss_kib": rss_kib(operator.process.pid)["VmHWM"],
            "gateway_ready_s": round(gateway_ready, 2),
            "operator_settled_s": round(operator_settled, 2),
            # Where the first start's time goes: two writes per user (labels, status) cost the API
            # server and etcd more CPU than the operator's own evaluation.
            "operator_start_cpu_s": round(operator_cpu, 1),
            "apiserver_start_cpu_s": round(apiserver_cpu, 1),
            "etcd_start_cpu_s": round(etcd_cpu, 1),
        }
        operator.stop()
        # A restart (an upgrade, a rescheduled pod) finds every user written: it lists, evaluates,
        # and writes nothing.
        started = time.perf_counter()
        operator = await asyncio.to_thread(start_operator, plane.kubeconfig, namespace, extra_env=env)
        writes = await _until_indexed(metrics_port)
        out[str(size)]["operator_restart_s"] = round(time.perf_counter() - started, 2)
        out[str(size)]["operator_restart_user_writes"] = writes
        operator.stop()
        if 0 < size <= DIRECT_WRITES_MAX_USERS:
            # The first start's two writes per user (labels, then status) sent by this client with
            # the operator's 16 in flight, on the same objects, with the gateway still watching: the
            # API server's and etcd's cost of such writes without the operator. The objects are
            # full-size by now, so this bounds the first start's API-server cost from above (at
            # 100,000 users it measured 1.6 times the first start's).
            before = cpu_seconds(apiserver), cpu_seconds(etcd)
            started = time.perf_counter()
            await _direct_start_writes(kube, namespace)
            out[str(size)]["direct_writes_s"] = round(time.perf_counter() - started, 2)
            out[str(size)]["direct_writes_apiserver_cpu_s"] = round(cpu_seconds(apiserver) - before[0], 1)
            out[str(size)]["direct_writes_etcd_cpu_s"] = round(cpu_seconds(etcd) - before[1], 1)
        gateway.stop()
        await kube.delete(NAMESPACES, namespace)
    base = out["0"]
    for size in sizes.memory_users:
        figures = out[str(size)]
        figures["gateway_bytes_per_user"] = round(
            (figures["gateway_peak_rss_kib"] - base["gateway_peak_rss_kib"]) * 1024 / size
        )
        figures["operator_bytes_per_user"] = round(
            (figures["operator_peak_rss_kib"] - base["operator_peak_rss_kib"]) * 1024 / size
        )
    return out


# --- 7. peer: the same Okta request sequence against scim2-server ----------------------------------


async def okta_sequence(client: ScimClient, i: int, tag: str) -> None:
    """Okta's create (filter + POST), profile update (GET + PUT) and deactivation (PATCH)."""
    user_name = f"seq{tag}-{i}@bench.example.com"
    found = await client.get("/Users", params={"filter": f'userName eq "{user_name}"', "startIndex": 1, "count": 100})
    assert found.status_code == 200
    created = await client.post(
        "/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "active": True,
            "name": {"givenName": "A", "familyName": "B"},
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    current = (await client.get(f"/Users/{body['id']}")).json()
    current["title"] = "Engineer"
    assert (await client.put(f"/Users/{body['id']}", json=current)).status_code == 200
    patch = await client.patch(
        f"/Users/{body['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        },
    )
    assert patch.status_code in (200, 204), patch.text  # RFC 7644 allows either


async def bench_peer(plane: ControlPlane, kube: Kube, sizes: Sizes) -> dict[str, Any]:
    env = await environment(plane, kube, "peer")
    port = free_port()
    peer = ManagedProcess(
        "scim2-server",
        [
            str(Path(sys.executable).parent / "scim2-server"),
            "--port",
            str(port),
            "--hostname",
            "127.0.0.1",
            "--bearer-token",
            "peer-token",
        ],
        {},
    )
    peer.start()
    out: dict[str, Any] = {}
    try:
        await asyncio.to_thread(_wait_port, port, peer)
        targets = {
            "kubescim": (env.gateway.scim_url, env.token),
            "scim2-server": (f"http://127.0.0.1:{port}", "peer-token"),
        }
        for name, (url, token) in targets.items():
            runs = []
            for _ in range(sizes.repeats):
                tag = uuid.uuid4().hex[:6]
                async with ScimClient(url, token, 8) as client:
                    start = time.perf_counter()
                    latencies = await bounded(
                        8, [lambda i=i, c=client, t=tag: okta_sequence(c, i, t) for i in range(sizes.peer_sequences)]
                    )
                    runs.append(summary(latencies, time.perf_counter() - start))
            out[name] = median_of(runs)
        out["sequence"] = "GET filter, POST, GET, PUT, PATCH (Okta create + update + deactivate), 8 concurrent"
        out["kubescim_vs_peer_throughput"] = round(
            out["kubescim"]["throughput_per_s"] / out["scim2-server"]["throughput_per_s"], 2
        )
    finally:
        peer.stop()
        env.gateway.stop()
    return out


def _wait_port(port: int, process: ManagedProcess) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/ServiceProviderConfig", timeout=2)
            return
        except httpx.HTTPError:
            if not process.alive:
                raise RuntimeError(process.log()) from None
            time.sleep(0.2)
    raise TimeoutError("scim2-server did not start")


# --- report ----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _commit() -> str:
    """The code measured: the commit, marked dirty when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# kubescim benchmarks ({results['sizes']})",
        "",
        f"Machine: {results['machine_start']['cores']} cores, load {results['machine_start']['load_avg_1m']} at start, "
        f"{results['machine_end']['load_avg_1m']} at end; {results['machine_start']['platform']}. Medians of "
        f"{results['repeats']} runs ({results.get('write_repeats', results['repeats'])} for the write path). Client, "
        "API server, etcd, gateway and operator share the machine.",
        "",
        f"Code: {results.get('commit', 'unknown')}.",
        "",
    ]
    write = results.get("write_path")
    if write:
        lines += [
            "## 1. SCIM write path: `POST /Users` through the gateway vs creating the same ScimUser directly",
            "",
            "| concurrency | direct /s | gateway /s | ratio (target >= 0.70) | direct p50 ms | gateway p50 ms | overhead p50 ms (target < 5) | gateway p99 ms | member PATCH /s | member PATCH, 204 /s | direct label patch /s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for level, f in write["levels"].items():
            lines.append(
                f"| {level} | {f['direct_create']['throughput_per_s']} | {f['gateway_post_users']['throughput_per_s']} | "
                f"{f['throughput_ratio']} ({verdict(f['throughput_ratio'] >= 0.7)}) | {f['direct_create']['p50_ms']} | "
                f"{f['gateway_post_users']['p50_ms']} | {f['p50_overhead_ms']} ({verdict(f['p50_overhead_ms'] < 5)}) | "
                f"{f['gateway_post_users']['p99_ms']} | {f['gateway_member_patch']['throughput_per_s']} | "
                f"{f.get('gateway_member_patch_no_content', {}).get('throughput_per_s', '-')} | "
                f"{f['direct_label_patch']['throughput_per_s']} |"
            )
        lines += [
            "",
            "CPU per request (ms, from /proc; the machine's two cores are shared, so the ratio above is bounded by these):",
            "",
            "| concurrency | API server per direct create | API server per gateway POST | gateway per POST | API server per direct label patch | API server per member PATCH | gateway per member PATCH |",
            "|---|---|---|---|---|---|---|",
        ]
        for level, f in write["levels"].items():
            c = f.get("cpu_ms_per_request")
            if c:
                lines.append(
                    f"| {level} | {c['direct_apiserver']} | {c['gateway_apiserver']} | {c['gateway']} | "
                    f"{c.get('label_patch_apiserver', '-')} | {c.get('member_patch_apiserver', '-')} | "
                    f"{c.get('member_patch_gateway', '-')} |"
                )
        orders = [(level, f["ratio_by_order"]) for level, f in write["levels"].items() if f.get("ratio_by_order")]
        if orders:
            lines += [
                "",
                "Throughput ratio by which phase ran first (repeats alternate; medians):",
                "",
                "| concurrency | direct first | gateway first |",
                "|---|---|---|",
            ]
            lines += [
                f"| {level} | {o.get('direct_first', '-')} | {o.get('gateway_first', '-')} |" for level, o in orders
            ]
        lines.append("")
    read = results.get("read_path")
    if read:
        lines += [
            "## 2. Read path (served from the watch-fed index)",
            "",
            "| users | `userName eq` p50 ms | p99 ms | page of 100 p50 ms | p99 ms |",
            "|---|---|---|---|---|",
        ]
        for size, f in read["sizes"].items():
            lines.append(
                f"| {size} | {f['filter_userName_eq']['p50_ms']} | {f['filter_userName_eq']['p99_ms']} | "
                f"{f['page_of_100']['p50_ms']} | {f['page_of_100']['p99_ms']} |"
            )
        g = read["growth"]
        lines += [
            "",
            f"Growth {g['users']} users: filter p50 x{g['filter_p50_ratio']} (target: flat), "
            f"page p50 x{g['page_p50_ratio']}.",
            "",
        ]
    op = results.get("operator")
    if op:
        p = op["propagation"]
        m = op["mass_change"]
        lines += [
            f"## 3. Real-time propagation ({op['users']} users, {op['groups']} groups, {op['rules']} rules)",
            "",
            "| from the gateway's 2xx to | p50 ms | p99 ms (target < 1000) |",
            "|---|---|---|",
            f"| the user's team label | {p['user_label']['p50_ms']} | {p['user_label']['p99_ms']} ({verdict(p['user_label']['p99_ms'] < 1000)}) |",
            f"| the Team's status | {p['team_status']['p50_ms']} | {p['team_status']['p99_ms']} ({verdict(p['team_status']['p99_ms'] < 1000)}) |",
            "",
            f"Initial convergence of {op['users']} users from scratch: {op['initial_convergence_s']} s.",
            "",
            "## 4. Mass change: one rule edit moves every user",
            "",
            "| users moved | converge s | ScimUser writes | writes per changed user (target 1) | unchanged users written |",
            "|---|---|---|---|---|",
            f"| {m['users_moved']} | {m['converge_s']} | {m['user_writes']} | {m['writes_per_changed_user']} | {m['unchanged_users_written']} |",
            "",
        ]
    okta = results.get("okta")
    if okta:
        lines += [
            f"## 5. Okta reconciliation ({okta['users']} users, {okta['groups']} groups; {okta['rate_limit']})",
            "",
            "| run | result | s | Okta calls | minimum | ratio (target <= 1.05) | 429s | rate-limit waits | max budget share used | Kubernetes writes | users changed |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label in ("initial", "no_drift"):
            r = okta[label]
            lines.append(
                f"| {label} | {r['result']} | {r['seconds']} | {r['okta_calls']} | {r['minimum_calls']} | "
                f"{r['calls_ratio']} ({verdict(r['calls_ratio'] <= 1.05)}) | {r['throttled_429']} | {r['rate_limit_waits']} | "
                f"{r['max_budget_share_used']} | {r['kubernetes_writes']} | {r['users_changed']} |"
            )
        lines += ["", "Target for the no-drift rerun: 0 Kubernetes writes.", ""]
        deltas = [label for label in ("delta_no_drift", "delta_50_changes") if label in okta]
        if deltas:
            lines += [
                "Delta runs (from the last run's cursor): the System Log, lastUpdated filters and the push mappings.",
                "",
                "| run | kind | result | s | Okta calls | 429s | Kubernetes writes | users changed | changes repaired |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for label in deltas:
                r = okta[label]
                lines.append(
                    f"| {label} | {r['kind']} | {r['result']} | {r['seconds']} | {r['okta_calls']} | "
                    f"{r['throttled_429']} | {r['kubernetes_writes']} | {r['users_changed']} | "
                    f"{r.get('changes_repaired', '-')}{' of 50' if 'changes_repaired' in r else ''} |"
                )
            quiet = okta.get("delta_no_drift", {})
            lines += [
                "",
                f"Targets: a no-drift delta makes at most 10 Okta calls ({verdict(quiet.get('okta_calls', 99) <= 10)}) "
                "and 0 Kubernetes writes; a change is repaired within one delta interval (default 5 min) plus the "
                "run's duration.",
                "",
            ]
    memory = results.get("memory")
    if memory:
        lines += [
            "## 6. Memory and startup",
            "",
            f"Each size has {results.get('memory_rules', 0)} TeamMappings; users are in groups of 50. "
            "Settled: every user carries the operator's status, and nothing moved for a while.",
            "",
            "| users | gateway peak RSS MiB | bytes/user (target < 2048) | operator peak RSS MiB | bytes/user (target < 3072) "
            "| gateway ready s | operator first start to settled s (target < 300) | CPU s of that: operator / API server / etcd "
            "| operator restart to complete view s | user writes on restart "
            "| the same writes sent directly s (CPU s: API server / etcd) | first start / direct |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for size, f in memory.items():
            gw, opb = f.get("gateway_bytes_per_user"), f.get("operator_bytes_per_user")
            cpu = " / ".join(
                str(f.get(k, "-")) for k in ("operator_start_cpu_s", "apiserver_start_cpu_s", "etcd_start_cpu_s")
            )
            settled = f["operator_settled_s"]
            lines.append(
                f"| {size} | {round(f['gateway_peak_rss_kib'] / 1024, 1)} | {gw if gw is not None else '-'}"
                f"{'' if gw is None else ' (' + verdict(gw < 2048) + ')'} | {round(f['operator_peak_rss_kib'] / 1024, 1)} | "
                f"{opb if opb is not None else '-'}{'' if opb is None else ' (' + verdict(opb < 3072) + ')'} | "
                f"{f['gateway_ready_s']} | {settled}{' (' + verdict(settled < 300) + ')' if int(size) else ''} | {cpu} | "
                f"{f.get('operator_restart_s', '-')} | {f.get('operator_restart_user_writes', '-')} | "
                f"{_direct_cell(f)} |"
            )
        lines += [
            "",
            "The direct writes are two writes per user like the first start's (labels, then the whole "
            "status) sent by the bench's own client at the operator's concurrency (16), with no operator "
            "running, after the first start and restart: the objects already carry the operator's labels "
            "and status, so each write handles a larger object than the first start's did. It bounds the "
            "first start's API-server cost from above, not below.",
            "",
        ]
    peer = results.get("peer")
    if peer:
        lines += [
            "## 7. Peer: the same Okta request sequence against scim2-server (in-memory reference)",
            "",
            f"Sequence: {peer['sequence']}.",
            "",
            "| server | sequences/s | p50 ms | p99 ms |",
            "|---|---|---|---|",
        ]
        for name in ("kubescim", "scim2-server"):
            f = peer[name]
            lines.append(f"| {name} | {f['throughput_per_s']} | {f['p50_ms']} | {f['p99_ms']} |")
        lines += [
            "",
            f"kubescim keeps {peer['kubescim_vs_peer_throughput']}x the in-memory server's throughput while "
            "persisting every write to etcd through the API server.",
            "",
        ]
    storage = results.get("storage")
    if storage:
        lines += [
            f"## 9. Storage: one user in etcd ({storage['users']} users: spec, 7 labels, the operator's status)",
            "",
            "| JSON bytes per user (as the API returns it, managedFields included) | etcd in-use bytes per user (create + status: two revisions) |",
            "|---|---|",
            f"| {storage['json_bytes_per_user']} | {storage['etcd_in_use_bytes_per_user']} |",
            "",
            "The second figure falls towards the first as the API server compacts old revisions (every 5 min).",
            "",
        ]
    access = results.get("access")
    if access:
        lines += [
            f"## 8. Access: offboarding reaches the authorizer ({access['users']} users, {access['groups']} groups, "
            f"{access['rules']} rules, {access['bindings']} AccessBindings over {access['namespaces']} namespaces)",
            "",
            f"Initial: every binding applied in {access['initial_convergence_s']} s after the operator started; "
            f"{access['rbac_objects']} RoleBindings, the largest with {access['largest_object_subjects']} subjects.",
            "",
            "| SCIM 2xx of a deactivation -> SubjectAccessReview denies | RBAC objects to change | p50 ms | "
            "p99 ms (target < 1000) | max ms | samples |",
            "|---|---|---|---|---|---|",
        ]
        for kind, denied in access["deactivation_to_denied"].items():
            lines.append(
                f"| {kind} | {denied['objects_to_change']} | {denied['p50_ms']} | {denied['p99_ms']} "
                f"({verdict(denied['p99_ms'] < 1000)}) | {denied['max_ms']} | {denied['samples']} |"
            )
        backlog = access.get("bulk_backlog_users")
        if backlog:
            lines += [
                "",
                f"Meanwhile the operator was still writing its start's users: {backlog['first_sample']} queued at "
                f"the first sample, {backlog['last_sample']} at the last (its bulk queue).",
            ]
        if any("rbac_50_ms" in d for d in access["deactivation_to_denied"].values()):
            lines += [
                "",
                "Where that time goes, from the same 2xx (watches): the operator's status write for the user, and "
                "the rewrite of the everyone-binding's shard that held the user in the first namespace.",
                "",
                "| user | status written p50 / p99 ms | shard rewritten p50 / p99 ms |",
                "|---|---|---|",
            ]
            for kind, denied in access["deactivation_to_denied"].items():
                lines.append(
                    f"| {kind} | {denied.get('status_50_ms', '-')} / {denied.get('status_99_ms', '-')} | "
                    f"{denied.get('rbac_50_ms', '-')} / {denied.get('rbac_99_ms', '-')} |"
                )
        lines += [
            "",
            "| rule edit (every user's role) | converge s | RBAC writes | objects changed | writes per changed object (target 1) |",
            "|---|---|---|---|---|",
        ]
        for label, edit in access["rule_edit"].items():
            lines.append(
                f"| {label} | {edit['converge_s']} | {edit['rbac_writes']} | {edit['objects_changed']} | "
                f"{edit['writes_per_changed_object']} ({verdict(edit['writes_per_changed_object'] <= 1.0)}) |"
            )
        lines.append("")
    durations = results.get("durations_s")
    if durations:
        total = sum(durations.values())
        parts = ", ".join(f"{name} {seconds} s" for name, seconds in durations.items())
        lines += [
            "## Run time",
            "",
            f"{round(total / 60, 1)} minutes of scenarios ({parts}); plus the control plane's start.",
            "",
        ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sizes = SMOKE if args.smoke else FULL if args.full else DEFAULT
    results: dict[str, Any] = {
        "sizes": sizes.name,
        "repeats": sizes.repeats,
        "write_repeats": sizes.write_repeats,
        "memory_rules": sizes.memory_rules,
        "commit": _commit(),
        "machine_start": machine(),
    }
    scenarios = {
        "write_path": bench_write_path,
        "read_path": bench_read_path,
        "operator": bench_operator,
        "memory": bench_memory,
        "peer": bench_peer,
        "okta": bench_okta,
        # Storage (about a minute) before access (the longest at --full), so a run cut short keeps it.
        "storage": bench_storage,
        "access": bench_access,
    }
    chosen = [(name, scenario) for name, scenario in scenarios.items() if not args.only or name in args.only]
    # Each scenario gets a control plane of its own (except at smoke size, where figures are not
    # judged): this control plane has no namespace controller, so a deleted namespace keeps its
    # objects, and a scenario run after another would measure an API server (and its Go heap) still
    # holding the previous one's 100,000 users.
    shared = sizes is SMOKE
    plane: ControlPlane | None = None
    try:
        for name, scenario in chosen:
            if plane is None or not shared:
                if plane is not None:
                    await asyncio.to_thread(plane.stop)
                plane = ControlPlane()
                await asyncio.to_thread(plane.start)
                await asyncio.to_thread(install_crds, plane.kubeconfig)
            started = time.perf_counter()
            print(f"bench: {name} ...", flush=True)
            async with Kube(KubeConfig.from_file(plane.kubeconfig), max_connections=64) as kube:
                results[name] = await scenario(plane, kube, sizes)
            elapsed = time.perf_counter() - started
            results.setdefault("durations_s", {})[name] = round(elapsed)
            print(f"bench: {name} done in {elapsed:.0f} s", flush=True)
            write_results(args.out, {**results, "machine_end": machine()})  # keep what is done
    finally:
        if plane is not None:
            await asyncio.to_thread(plane.stop)
    results["machine_end"] = machine()
    return results


def _direct_cell(figures: dict[str, Any]) -> str:
    """The direct-writes columns of §6: seconds (API server / etcd CPU), and the first start's ratio."""
    direct = figures.get("direct_writes_s")
    if not direct:
        return "- | -"
    cpu = f"{figures.get('direct_writes_apiserver_cpu_s', '-')} / {figures.get('direct_writes_etcd_cpu_s', '-')}"
    return f"{direct} ({cpu}) | {round(figures['operator_settled_s'] / direct, 2)}"


def write_results(folder: Path, results: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / "latest.md").write_text(markdown(results))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="tiny sizes (what make test runs)")
    size.add_argument("--full", action="store_true", help="100,000-user sizes")
    parser.add_argument("--only", nargs="*", help="scenarios to run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    write_results(args.out, results)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
