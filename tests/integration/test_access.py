"""Teams and roles become Kubernetes access, decided by the real API server's authorizer.

The operator runs as the chart's ServiceAccount with the chart's RBAC (a token the API server issued),
so what it may grant is what Kubernetes lets it grant. Its own allow-list is deliberately wider than the
chart's (cluster-admin is in it, not in the chart): the escalation guard is proven at both lines.
Access is checked the way the cluster checks it: `kubectl auth can-i --as <username>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kubescim.constants import ACCESS_BINDINGS, CLUSTER_ROLE_BINDINGS, LABEL_ACCESS_BINDING, ROLE_BINDINGS, SCIM_USERS
from kubescim.explain import explain_user
from kubescim.kube import EVENTS, NAMESPACES, ApiError, Kube, KubeConfig, Resource
from kubescim_dev.credentials import service_account_kubeconfig
from kubescim_dev.processes import ManagedProcess, start_gateway, start_operator
from tests.conftest import EXAMPLES, KOPF_PEERINGS, Cluster, make_provider
from tests.integration.test_chart import render

pytestmark = pytest.mark.timeout(300)
# The built-in view and edit are aggregated ClusterRoles, filled by kube-controller-manager, which this
# control plane does not run: the test brings two plain ClusterRoles of its own.
EDIT, VIEW = "kubescim-test-edit", "kubescim-test-view"
TEST_ROLES = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": EDIT},
        "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": VIEW},
        "rules": [{"apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["get", "list"]}],
    },
]
CHART_ALLOWED = [f"ClusterRole/{VIEW}", f"ClusterRole/{EDIT}"]
# Wider than the chart's RBAC on purpose: Kubernetes must refuse what the operator would allow.
OPERATOR_ALLOWED = [*CHART_ALLOWED, "ClusterRole/cluster-admin"]
PROVIDER_ACCESS = {
    "username": {"attribute": "userName", "prefix": "okta:"},
    "roles": [{"name": "developer", "rank": 50}, {"name": "lead", "rank": 80}],
}
USERS = [
    ("eng1", "Engineering", "Manager"),
    ("eng2", "Engineering", "Engineer"),
    ("eng3", "Engineering", "Engineer"),
    ("eng4", "Engineering", "Engineer"),
    ("eng5", "Engineering", "Engineer"),
    ("eng6", "Engineering", "SRE"),
    ("sales1", "Sales", "Manager"),
    ("sales2", "Sales", "Analyst"),
]


@dataclass
class AccessEnv:
    namespace: str
    eng: str  # a namespace for the engineering team
    apps: str  # a namespace labelled tier=apps
    scim: httpx.AsyncClient
    kube: Kube
    cluster: Cluster
    ids: dict[str, str]
    operator_kubeconfig: Path
    operators: list[ManagedProcess]

    def can(self, user: str, verb: str, resource: str, namespace: str | None = None) -> bool:
        args = ["auth", "can-i", verb, resource, "--as", f"okta:{user}@example.com"]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        result = self.cluster.kubectl(*args, check=False)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.stdout.strip() == "yes"

    async def apply_binding(self, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": "identity.kubescim.dev/v1alpha1", "kind": "AccessBinding", "metadata": {"name": name}}
        await self.kube.create(ACCESS_BINDINGS, {**body, "spec": spec}, self.namespace)

    async def binding_objects(self, name: str) -> list[dict[str, Any]]:
        selector = f"{LABEL_ACCESS_BINDING}={name}"
        role_bindings, _ = await self.kube.list(ROLE_BINDINGS, None, label_selector=selector)
        cluster_bindings, _ = await self.kube.list(CLUSTER_ROLE_BINDINGS, None, label_selector=selector)
        return [
            o
            for o in [*role_bindings, *cluster_bindings]
            if o["metadata"]["labels"].get("identity.kubescim.dev/access-binding-namespace") == self.namespace
        ]


async def eventually(check: Callable[[], Any], timeout: float = 20, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {check.__name__}")
        await asyncio.sleep(interval)


def start_access_operator(kubeconfig: Path, namespace: str) -> ManagedProcess:
    """The operator as the chart's ServiceAccount, its allow-list wider than the chart's, 2 subjects per object."""
    return start_operator(
        kubeconfig,
        namespace,
        standalone=True,
        extra_env={
            "KUBESCIM_ACCESS_ALLOWED_ROLES": json.dumps(OPERATOR_ALLOWED),
            "KUBESCIM_ACCESS_SUBJECTS_PER_OBJECT": "2",
        },
    )


def chart_rbac(namespace: str) -> str:
    """The operator's ServiceAccount, Roles and bindings exactly as the chart renders them."""
    values = ["--set", "access.allowedRoles[0].kind=ClusterRole", "--set", f"access.allowedRoles[0].name={VIEW}"]
    values += ["--set", "access.allowedRoles[1].kind=ClusterRole", "--set", f"access.allowedRoles[1].name={EDIT}"]
    documents = render(namespace, *values)
    wanted = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    chosen = [d for d in documents if d["kind"] in wanted and d["metadata"]["name"].endswith(("-operator", "-access"))]
    for document in chosen:
        if document["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            document["metadata"]["namespace"] = namespace
    return yaml.safe_dump_all(chosen)


@pytest.fixture(scope="module")
async def access_env(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AccessEnv]:
    kube = Kube(KubeConfig.from_file(crds.kubeconfig))
    namespace = f"acc-{uuid.uuid4().hex[:8]}"
    eng, apps = f"{namespace}-eng", f"{namespace}-apps"
    await kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    await kube.create(NAMESPACES, {"metadata": {"name": eng}})
    await kube.create(NAMESPACES, {"metadata": {"name": apps, "labels": {"kubescim.dev/tier": f"apps-{namespace}"}}})
    await kube.create(
        KOPF_PEERINGS, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "kubescim"}}, namespace
    )
    crds.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(TEST_ROLES))
    crds.kubectl("apply", "-f", "-", input=chart_rbac(namespace))
    operator_kubeconfig = await service_account_kubeconfig(
        crds.kubeconfig, namespace, "kubescim-operator", tmp_path_factory.mktemp("sa") / "kubeconfig"
    )
    token = await make_provider(kube, namespace, "okta", {"access": PROVIDER_ACCESS})
    crds.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "teammapping-department.yaml"))
    for name, spec in (
        ("leads", {"attribute": "title", "match": {"value": "Manager"}, "role": "lead"}),
        ("engineers", {"attribute": "department", "match": {"value": "Engineering"}, "role": "developer"}),
    ):
        crds.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "identity.kubescim.dev/v1alpha1",
                    "kind": "RoleMapping",
                    "metadata": {"name": name},
                    "spec": spec,
                }
            ),
        )
    gateway = await asyncio.to_thread(start_gateway, crds.kubeconfig, namespace)
    operators = [await asyncio.to_thread(start_access_operator, operator_kubeconfig, namespace)]
    scim = httpx.AsyncClient(
        base_url=gateway.url + "/scim/v2",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        timeout=30,
    )
    ids: dict[str, str] = {}
    try:
        for user, department, title in USERS:
            response = await scim.post(
                "/Users",
                json={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"{user}@example.com",
                    "active": True,
                    "title": title,
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": department},
                },
            )
            assert response.status_code == 201, response.text
            ids[user] = response.json()["id"]
        yield AccessEnv(namespace, eng, apps, scim, kube, crds, ids, operator_kubeconfig, operators)
    finally:
        await scim.aclose()
        for process in (gateway, *operators):
            process.stop()
            print(f"\n--- {process.name} log ---\n{process.log(30)}")
        for name in (namespace, eng, apps):
            with contextlib.suppress(ApiError):
                await kube.delete(NAMESPACES, name)
        for name in (f"kubescim-{namespace}-access", f"kubescim-{namespace}-operator"):
            crds.kubectl("delete", "clusterrole,clusterrolebinding", name, check=False)
        crds.kubectl(
            "delete", "clusterrolebinding", "-l", f"identity.kubescim.dev/access-binding-namespace={namespace}"
        )
        await kube.close()


async def test_roles_are_resolved_labelled_and_explained(access_env: AccessEnv) -> None:
    env = access_env

    async def leads_labelled() -> bool:
        users, _ = await env.kube.list(SCIM_USERS, env.namespace, label_selector="identity.kubescim.dev/role=lead")
        return sorted(u["spec"]["userName"] for u in users) == ["eng1@example.com", "sales1@example.com"]

    await eventually(leads_labelled)
    # eng1 matches both rules: HighestPermission gives the higher rank, and says what else matched.
    users, _ = await env.kube.list(SCIM_USERS, env.namespace, label_selector="identity.kubescim.dev/role=developer")
    assert sorted(u["spec"]["userName"] for u in users) == [f"eng{i}@example.com" for i in range(2, 7)]
    eng1 = next(
        u for u in (await env.kube.list(SCIM_USERS, env.namespace))[0] if u["spec"]["userName"] == "eng1@example.com"
    )
    role = eng1["status"]["role"]
    assert role["name"] == "lead"
    assert role["rank"] == 80
    assert role["resolution"] == "HighestPermission"
    assert role["candidates"] == ["developer", "lead"]
    assert role["sources"] == [{"kind": "Attribute", "rule": "leads", "attribute": "title", "value": "Manager"}]
    assert eng1["status"]["kubernetesUsername"] == "okta:eng1@example.com"


async def test_team_binding_grants_exactly_the_active_members_and_a_deactivation_revokes(
    access_env: AccessEnv,
) -> None:
    env = access_env
    await env.apply_binding(
        "eng-edit",
        {"subjects": {"teams": ["engineering"]}, "roleRef": {"name": EDIT}, "scope": {"namespaces": [env.eng]}},
    )
    status = await eventually(lambda: _condition(env, "eng-edit", "Applied"))
    assert status["subjectCount"] == 6
    assert status["namespaces"] == [env.eng]
    objects = await env.binding_objects("eng-edit")
    # 6 subjects at 2 per object: split, every object within the limit, together exactly the team.
    assert len(objects) >= 3
    assert all(len(o.get("subjects", [])) <= 2 for o in objects)
    subjects = sorted(s["name"] for o in objects for s in o.get("subjects", []))
    assert subjects == [f"okta:eng{i}@example.com" for i in range(1, 7)]
    assert env.can("eng2", "create", "deployments", env.eng)
    assert not env.can("eng2", "create", "deployments", env.apps)
    assert not env.can("sales2", "get", "pods", env.eng)

    before = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in objects}
    started = time.monotonic()
    response = await env.scim.patch(
        f"/Users/{env.ids['eng2']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    assert response.status_code == 200, response.text

    async def revoked() -> bool:
        return not await asyncio.to_thread(env.can, "eng2", "create", "deployments", env.eng)

    await eventually(revoked, timeout=10, interval=0.05)
    print(f"\nSCIM deactivation -> authorizer denies: {time.monotonic() - started:.2f} s")
    after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in await env.binding_objects("eng-edit")}
    assert sum(1 for name in after if after[name] != before.get(name)) == 1, (before, after)
    assert env.can("eng3", "create", "deployments", env.eng)

    # Reactivated: access again. The AccessBinding deleted: its RoleBindings go.
    await env.scim.patch(
        f"/Users/{env.ids['eng2']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": True}],
        },
    )
    await eventually(lambda: asyncio.to_thread(env.can, "eng2", "create", "deployments", env.eng))
    await env.kube.delete(ACCESS_BINDINGS, "eng-edit", env.namespace)

    async def gone() -> bool:
        return not await env.binding_objects("eng-edit")

    await eventually(gone)
    assert not env.can("eng3", "create", "deployments", env.eng)


async def test_role_holders_by_namespace_selector_include_namespaces_created_later(access_env: AccessEnv) -> None:
    env = access_env
    selector = {"matchLabels": {"kubescim.dev/tier": f"apps-{env.namespace}"}}
    await env.apply_binding(
        "leads-view",
        {"subjects": {"roles": ["lead"]}, "roleRef": {"name": VIEW}, "scope": {"namespaceSelector": selector}},
    )
    await eventually(lambda: _condition(env, "leads-view", "Applied"))
    await eventually(lambda: asyncio.to_thread(env.can, "sales1", "list", "pods", env.apps))
    assert not env.can("sales2", "list", "pods", env.apps)
    later = f"{env.namespace}-later"
    await env.kube.create(NAMESPACES, {"metadata": {"name": later, "labels": selector["matchLabels"]}})
    try:
        await eventually(lambda: asyncio.to_thread(env.can, "eng1", "list", "pods", later))
        status = await eventually(lambda: _condition(env, "leads-view", "Applied", namespaces=2))
        assert sorted(status["namespaces"]) == sorted([env.apps, later])
    finally:
        await env.kube.delete(NAMESPACES, later)


async def test_require_all_grants_only_who_is_in_every_list(access_env: AccessEnv) -> None:
    env = access_env
    await env.apply_binding(
        "eng-leads",
        {
            "subjects": {"teams": ["engineering"], "roles": ["lead"], "require": "All"},
            "roleRef": {"name": EDIT},
            "scope": {"namespaces": [env.apps]},
        },
    )
    status = await eventually(lambda: _condition(env, "eng-leads", "Applied"))
    assert status["subjectCount"] == 1
    assert env.can("eng1", "create", "deployments", env.apps)
    assert not env.can("sales1", "create", "deployments", env.apps)  # a lead, not in the team
    assert not env.can("eng3", "create", "deployments", env.apps)  # in the team, not a lead


async def test_escalation_guard_the_operator_refuses_a_role_not_allowed(access_env: AccessEnv) -> None:
    env = access_env
    await env.apply_binding(
        "eng-admin",
        {"subjects": {"teams": ["engineering"]}, "roleRef": {"name": "admin"}, "scope": {"namespaces": [env.eng]}},
    )
    status = await eventually(lambda: _condition(env, "eng-admin", "RoleNotAllowed"))
    assert "not in the operator's allowed roles" in status["conditions"][0]["message"]
    assert await env.binding_objects("eng-admin") == []
    events, _ = await env.kube.list(EVENTS, env.namespace)
    assert any(e["reason"] == "RoleNotAllowed" and e["regarding"]["name"] == "eng-admin" for e in events)


async def test_escalation_guard_kubernetes_refuses_what_the_chart_did_not_allow(access_env: AccessEnv) -> None:
    """cluster-admin is in this operator's allow-list (as if its check were bypassed), not in the chart's:
    the API server's authorizer refuses the binding, and the AccessBinding says so."""
    env = access_env
    await env.apply_binding(
        "leads-cluster-admin",
        {"subjects": {"roles": ["lead"]}, "roleRef": {"name": "cluster-admin"}, "scope": {"cluster": True}},
    )
    status = await eventually(lambda: _condition(env, "leads-cluster-admin", "Forbidden"))
    message = status["conditions"][0]["message"]
    assert "refused to bind ClusterRole 'cluster-admin'" in message
    assert "forbidden" in message.lower()
    assert await env.binding_objects("leads-cluster-admin") == []
    assert not env.can("eng1", "delete", "nodes")

    # The same, asked directly with the operator's own credentials: what a compromised operator could do.
    operator = Kube(KubeConfig.from_file(env.operator_kubeconfig))
    try:
        crb: dict[str, Any] = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"escalate-{env.namespace}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "okta:eng1@example.com"}],
        }
        with pytest.raises(ApiError) as refused:
            await operator.create(CLUSTER_ROLE_BINDINGS, crb)
        assert refused.value.status == 403
        # Nor can it widen its own grant.
        role = f"kubescim-{env.namespace}-access"
        with pytest.raises(ApiError) as widened:
            await operator.patch(
                Resource("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False),
                role,
                {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
            )
        assert widened.value.status == 403
        # An allowed role it may bind.
        crb["roleRef"]["name"] = VIEW
        await operator.create(CLUSTER_ROLE_BINDINGS, crb)
        await operator.delete(CLUSTER_ROLE_BINDINGS, crb["metadata"]["name"])
    finally:
        await operator.close()


async def _condition(env: AccessEnv, name: str, reason: str, namespaces: int | None = None) -> dict[str, Any] | None:
    body = await env.kube.get(ACCESS_BINDINGS, name, env.namespace)
    status = body.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
    if ready is None or ready["reason"] != reason or ready.get("observedGeneration") != body["metadata"]["generation"]:
        return None
    if namespaces is not None and status.get("namespaceCount") != namespaces:
        return None
    return status


async def test_explain_user_lists_what_the_user_may_do_and_why(access_env: AccessEnv) -> None:
    env = access_env
    await eventually(lambda: _condition(env, "eng-leads", "Applied"))
    text = await explain_user(env.kube, env.namespace, "eng1@example.com")
    assert "role: lead (rank 80, HighestPermission)" in text
    assert "rule leads: title = 'Manager'" in text
    assert "(also matched: developer)" in text
    assert "access (as Kubernetes user okta:eng1@example.com):" in text
    assert (
        f"ClusterRole {EDIT} in {env.apps}  (AccessBinding eng-leads, through team engineering and role lead)" in text
    )
    outsider = await explain_user(env.kube, env.namespace, "sales2@example.com")
    assert "role: (none)" in outsider
    # The Okta guide's "users are pushed but have no role": each RoleMapping says why it gave none.
    assert "RoleMapping engineers (role developer) reads department: user has 'Sales', rule wants 'Engineering'" in (
        outsider
    )
    assert "RoleMapping leads (role lead) reads title: user has 'Analyst', rule wants 'Manager'" in outsider
    assert "access (as Kubernetes user okta:sales2@example.com):\n  (none)" in outsider


async def test_a_restarted_operator_rewrites_nothing_and_revokes_nothing(access_env: AccessEnv) -> None:
    """After a restart the engine recomputes every user before access looks: the RBAC objects keep
    their resourceVersions and nobody loses access in between."""
    env = access_env
    await env.apply_binding(
        "restart-view",
        {"subjects": {"teams": ["engineering"]}, "roleRef": {"name": VIEW}, "scope": {"namespaces": [env.eng]}},
    )
    await env.apply_binding(
        "restart-leads",
        {"subjects": {"roles": ["lead"]}, "roleRef": {"name": VIEW}, "scope": {"namespaces": [env.apps]}},
    )
    await eventually(lambda: _condition(env, "restart-view", "Applied"))
    await eventually(lambda: _condition(env, "restart-leads", "Applied"))
    before = {
        o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in await env.binding_objects("restart-view")
    }
    env.operators[-1].stop()
    version = await env.kube.current_version(ROLE_BINDINGS, env.eng)
    writes: list[str] = []

    async def watch() -> None:
        async for event in env.kube.watch(ROLE_BINDINGS, env.eng, resource_version=version, timeout_seconds=60):
            if event["type"] != "BOOKMARK":
                writes.append(f"{event['type']} {event['object']['metadata']['name']}")

    watcher = asyncio.create_task(watch())
    env.operators.append(await asyncio.to_thread(start_access_operator, env.operator_kubeconfig, env.namespace))
    # The new operator has settled once it answers a change: a new member shows up.
    started = time.monotonic()
    await env.scim.patch(
        f"/Users/{env.ids['sales2']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "Manager"}],
        },
    )
    await eventually(lambda: asyncio.to_thread(env.can, "sales2", "list", "pods", env.apps), timeout=30)
    await asyncio.sleep(1)
    watcher.cancel()
    print(f"\nrestart -> settled and serving changes in {time.monotonic() - started:.1f} s; writes: {writes}")
    after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in await env.binding_objects("restart-view")}
    assert after == before
    assert not [w for w in writes if "restart-view" in w]
    await env.scim.patch(
        f"/Users/{env.ids['sales2']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "Analyst"}],
        },
    )


async def test_metrics_count_bindings_by_verdict_and_rbac_writes(access_env: AccessEnv) -> None:
    env = access_env
    port = env.operators[-1].env["KUBESCIM_METRICS_PORT"]

    async def scraped() -> dict[str, float]:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("kubescim_operator_access")
        }
        return samples if samples.get('kubescim_operator_access_bindings{reason="Forbidden"}') else {}

    samples = await eventually(scraped)
    assert samples['kubescim_operator_access_bindings{reason="RoleNotAllowed"}'] == 1
    assert samples['kubescim_operator_access_bindings{reason="Forbidden"}'] == 1
    assert samples['kubescim_operator_access_bindings{reason="Applied"}'] >= 3
    assert samples["kubescim_operator_access_rbac_writes_total"] >= 1  # sales2's title, changed back


async def test_a_team_selector_follows_team_labels(access_env: AccessEnv) -> None:
    """A hand-made Team that a binding selects by label: relabelled, its members lose the grant."""
    env = access_env
    teams = Resource("identity.kubescim.dev", "v1alpha1", "teams")
    await env.kube.create(
        teams,
        {
            "apiVersion": "identity.kubescim.dev/v1alpha1",
            "kind": "Team",
            "metadata": {"name": "oncall", "labels": {"rota": "primary"}},
            "spec": {"members": [{"userName": "eng3@example.com"}]},
        },
        env.namespace,
    )
    await env.apply_binding(
        "oncall-view",
        {
            "subjects": {"teamSelector": {"matchLabels": {"rota": "primary"}}},
            "roleRef": {"name": VIEW},
            "scope": {"namespaces": [env.apps]},
        },
    )
    await eventually(lambda: asyncio.to_thread(env.can, "eng3", "list", "pods", env.apps))
    await env.kube.patch(teams, "oncall", {"metadata": {"labels": {"rota": "secondary"}}}, env.namespace)

    async def revoked() -> bool:
        return not await asyncio.to_thread(env.can, "eng3", "list", "pods", env.apps)

    await eventually(revoked)
