"""What every benchmark scenario shares: sizes, statistics, CPU and memory from /proc, a bounded job
runner, the load generator's SCIM client, and a namespace with a provider and a gateway."""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from json import dumps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from kubescim.api.models import ScimGroupSpec, ScimUserSpec
from kubescim.constants import API_VERSION, GROUP_LABEL_PREFIX, SCIM_GROUPS, SCIM_USERS, TEAM_MAPPINGS
from kubescim.http1 import Http1Client
from kubescim.kube import NAMESPACES, Kube, Resource
from kubescim.objects import scim_group_object, scim_user_object
from kubescim.scim.resources import new_id
from kubescim_dev.controlplane import REPO_ROOT, ControlPlane
from kubescim_dev.processes import GatewayProcess, ManagedProcess, start_gateway
from kubescim_dev.stack import create_provider

RESULTS = REPO_ROOT / "bench" / "results"
KOPF_PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings")


@dataclass(frozen=True)
class Sizes:
    name: str
    write_requests: int
    repeats: int
    read_sizes: tuple[int, ...]
    propagation_users: int
    propagation_groups: int
    propagation_rules: int
    propagation_samples: int
    okta_users: int
    okta_groups: int
    memory_users: tuple[int, ...]
    peer_sequences: int
    # The write path is the noisiest figure on a shared 2-core VM (ratios moved 0.60-0.68 between runs
    # at 3 repeats): more, shorter-lived repeats, medians taken.
    write_repeats: int = 5
    # Access: AccessBindings over namespaces (with the propagation users, groups and rules), and how
    # many deactivations are timed.
    access_bindings: int = 100
    access_namespaces: int = 50
    access_samples: int = 50
    # Storage: users written to measure etcd's bytes per user.
    storage_users: int = 5000
    # Memory: TeamMappings present at every size (the baseline too), as in an org that uses them.
    memory_rules: int = 200


SMOKE = Sizes(
    "smoke",
    20,
    1,
    (50, 200),
    200,
    20,
    10,
    5,
    120,
    30,
    (100,),
    5,
    write_repeats=1,
    access_bindings=10,
    access_namespaces=5,
    access_samples=5,
    storage_users=200,
    memory_rules=10,
)
DEFAULT = Sizes("default", 1000, 3, (1000, 10000), 10000, 1000, 200, 50, 10000, 5000, (10000,), 60)
# The full run's propagation org is issue 18's: 100,000 users, 10,000 groups, 1,000 rules.
FULL = Sizes("full", 1000, 3, (10000, 100000), 100000, 10000, 1000, 50, 100000, 5000, (10000, 100000), 60)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    return {
        "count": len(latencies),
        "throughput_per_s": round(len(latencies) / wall, 1) if wall else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU a process has used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def bulk_backlog(metrics_port: int) -> int:
    """Users an operator still has to recompute or write for bulk work (its start, a rule edit)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as client:
        samples = parse_metrics((await client.get("/metrics")).text)
    return round(samples.get('kubescim_operator_recompute_queue_depth{queue="bulk"}', 0))


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


async def bounded(concurrency: int, jobs: list[Any]) -> list[float]:
    """Run coroutine factories with a concurrency bound; return each one's latency."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(job: Any) -> None:
        async with semaphore:
            start = time.perf_counter()
            await job()
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one(j) for j in jobs))
    return latencies


@dataclass(frozen=True)
class Reply:
    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class ScimClient:
    """The load generator's SCIM client: the project's lean HTTP/1.1 client, the one the direct
    baseline's Kubernetes client sends its creates with, so both sides are driven by the same client
    code. On two shared cores the client's CPU is taken from the servers (httpx costs ~1.4 ms per
    request here, aiohttp ~0.45, the lean client ~0.27), and a costlier client on one side would be
    measured as that side's overhead."""

    def __init__(self, base_url: str, token: str, concurrency: int = 32) -> None:
        parts = urlsplit(base_url)
        self._client = Http1Client(f"{parts.scheme}://{parts.netloc}", None, max_connections=concurrency)
        self._base = parts.path.rstrip("/")
        self._headers = [("Authorization", f"Bearer {token}"), ("Accept", "application/scim+json")]

    async def __aenter__(self) -> ScimClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._client.close()

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Reply:
        target = self._base + path + (f"?{urlencode(params)}" if params else "")
        headers = self._headers
        body = None
        if json is not None:
            body = dumps(json, separators=(",", ":")).encode()
            headers = [*headers, ("Content-Type", "application/scim+json")]
        reply = await self._client.request(method, target, headers, body, 120)
        return Reply(reply.status, reply.body.decode())

    async def get(self, path: str, *, params: dict[str, Any] | None = None) -> Reply:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, *, json: Any) -> Reply:
        return await self.request("POST", path, json=json)

    async def put(self, path: str, *, json: Any) -> Reply:
        return await self.request("PUT", path, json=json)

    async def patch(self, path: str, *, json: Any) -> Reply:
        return await self.request("PATCH", path, json=json)


@dataclass
class Env:
    plane: ControlPlane
    kube: Kube
    namespace: str
    token: str
    gateway: GatewayProcess
    processes: list[ManagedProcess] = field(default_factory=list)

    def scim(self, concurrency: int = 32) -> ScimClient:
        return ScimClient(self.gateway.scim_url, self.token, concurrency)


async def new_namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await kube.create(NAMESPACES, {"metadata": {"name": name}})
    await kube.create(
        KOPF_PEERINGS, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "kubescim"}}, name
    )
    return name


async def environment(plane: ControlPlane, kube: Kube, prefix: str) -> Env:
    namespace = await new_namespace(kube, prefix)
    token = await create_provider(kube, namespace, "okta")
    gateway = await asyncio.to_thread(
        start_gateway, plane.kubeconfig, namespace, extra_env={"KUBESCIM_LOG_LEVEL": "WARNING"}
    )
    return Env(plane, kube, namespace, token, gateway, [gateway])


async def load_users(kube: Kube, namespace: str, count: int, *, groups: int = 0, concurrency: int = 32) -> list[str]:
    """Create ScimUsers straight in the API server (fast preloading); returns their SCIM ids."""
    ids = [new_id() for _ in range(count)]

    def job(i: int) -> Any:
        async def create() -> None:
            spec = ScimUserSpec.model_validate(
                {
                    "provider": "okta",
                    "userName": f"user{i}@bench.example.com",
                    "active": True,
                    "title": f"T{i % 17}",
                    "userType": "Employee",
                    "extensions": {
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                            "department": f"Dept{i % 23}",
                            "costCenter": f"CC-{i % 50}",
                        }
                    },
                }
            )
            labels = {f"{GROUP_LABEL_PREFIX}g-{i % groups:05d}": "member"} if groups else {}
            await kube.create(SCIM_USERS, scim_user_object(spec, ids[i], labels), namespace)

        return create

    await bounded(concurrency, [job(i) for i in range(count)])
    return ids


async def wait_cached(env: Env, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=env.gateway.url) as client:
        while time.monotonic() < deadline:
            metrics = (await client.get("/metrics")).text
            for line in metrics.splitlines():
                if (
                    line.startswith('kubescim_gateway_cached_objects{kind="ScimUser"}')
                    and float(line.split()[-1]) >= count
                ):
                    return
            await asyncio.sleep(0.5)
    raise TimeoutError("gateway cache never reached the loaded size")


def group_job(kube: Kube, namespace: str, gid: str) -> Any:
    """A job creating ScimGroup `gid` ("g-00001") named "Group 00001" straight in the API server."""

    async def create() -> None:
        spec = ScimGroupSpec(provider="okta", display_name=f"Group {gid[2:]}")
        await kube.create(SCIM_GROUPS, scim_group_object(spec, gid), namespace)

    return create


async def propagation_org(kube: Kube, namespace: str, users: int, groups: int, rules: int) -> None:
    """The operator scenarios' org: groups g-00000.., users in them, and `rules` TeamMappings (all but
    two from a group's displayName, the last two from attributes)."""
    await bounded(32, [group_job(kube, namespace, f"g-{j:05d}") for j in range(groups)])
    await load_users(kube, namespace, users, groups=groups)
    for r in range(rules):
        spec: dict[str, Any] = (
            {"source": "Group", "match": {"value": f"Group {r:05d}"}, "target": {"name": f"team-{r:05d}"}}
            if r < rules - 2
            else {"attribute": "title", "match": {"operator": "Any"}, "target": {"nameTemplate": "title-${*}"}}
        )
        body = {"apiVersion": API_VERSION, "kind": "TeamMapping", "metadata": {"name": f"rule-{r:05d}"}, "spec": spec}
        await kube.create(TEAM_MAPPINGS, body, namespace)
