"""`make demo`: the main job on the embedded default, told step by step.

A generated Okta org (users with departments, cost centers, titles and an employeeID custom attribute;
"Bifrost Playground: <X> Team" groups and more) is pushed through the gateway exactly as Okta's SCIM
client would; mapping rules are applied as a platform engineer would with kubectl; the operator builds
Teams and BusinessUnits, roles and the RoleBindings of AccessBindings; the reconciler checks Okta's
Management API; then the result is printed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from kubescim.cli import main as cli
from kubescim_dev.controlplane import REPO_ROOT, kubectl

RULES = [
    "teammapping-playground.yaml",
    "teammapping-department.yaml",
    "teammapping-squads.yaml",
    "businessunitmapping-costcenter.yaml",
    "businessunitmapping-contractors.yaml",
    "businessunit-platform.yaml",
]
ACCESS = [
    "rolemapping-developers.yaml",
    "rolemapping-leads.yaml",
    "rolemapping-platform-admins.yaml",
    "accessbinding-team-namespace.yaml",
    "accessbinding-leads-of-team.yaml",
    "accessbinding-cluster-admin.yaml",
]


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run_demo(kubeconfig: Path, api_url: str, env: dict[str, str], namespace: str) -> int:
    """The story, told against a running stack (kubescim_dev.stack starts it)."""
    ns = ("-n", namespace)
    _step(f"control plane {api_url}, gateway {env['SCIM_URL']}, Okta simulator {env['OKTA_URL']}")
    print("the simulator pushed its org through the gateway like Okta's SCIM client (filter, POST, PUT, PATCH)")
    print(kubectl(kubeconfig, "get", "identityproviders", *ns).stdout)

    _step("apply mapping rules (crds/examples), as a platform engineer would with kubectl")
    for name in RULES:
        print(kubectl(kubeconfig, "apply", *ns, "-f", str(REPO_ROOT / "crds" / "examples" / name)).stdout, end="")

    _step("wait for the operator to build Teams and BusinessUnits")
    deadline = time.monotonic() + 120
    previous = ""
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        current = kubectl(kubeconfig, "get", "teams,businessunits", *ns, "-o", "json").stdout
        summary = json.dumps(
            [(i["metadata"]["name"], (i.get("status") or {}).get("memberCount")) for i in json.loads(current)["items"]]
        )
        if summary != previous:
            previous, stable_since = summary, time.monotonic()
        elif time.monotonic() - stable_since > 3 and "null" not in summary and summary != "[]":
            break
        time.sleep(0.5)

    _step("kubectl get teams,businessunits")
    print(kubectl(kubeconfig, "get", "teams,businessunits", *ns).stdout)

    _step("members of team alpha, straight from the label selector")
    print(kubectl(kubeconfig, "get", "scimusers", *ns, "-l", "team.identity.kubescim.dev/alpha").stdout)

    _step("why is a user in their teams? (kubescim explain)")
    users = json.loads(
        kubectl(kubeconfig, "get", "scimusers", *ns, "-l", "team.identity.kubescim.dev/alpha", "-o", "json").stdout
    )["items"]
    if users:
        cli(["--kubeconfig", str(kubeconfig), "-n", namespace, "explain", "user", users[0]["spec"]["userName"]])

    _step("roles and access: RoleMappings give each user one role; AccessBindings become RoleBindings")
    kubectl(kubeconfig, "create", "namespace", "engineering", check=False)
    for name in ACCESS:
        print(kubectl(kubeconfig, "apply", *ns, "-f", str(REPO_ROOT / "crds" / "examples" / name)).stdout, end="")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        bindings = json.loads(kubectl(kubeconfig, "get", "accessbindings", *ns, "-o", "json").stdout)["items"]
        if len(bindings) == 3 and all(
            any(
                c.get("observedGeneration") == b["metadata"]["generation"]
                for c in (b.get("status") or {}).get("conditions") or []
            )
            for b in bindings
        ):
            break
        time.sleep(0.5)
    print(kubectl(kubeconfig, "get", "rolemappings,accessbindings", *ns).stdout)
    print(kubectl(kubeconfig, "get", "rolebindings", "-n", "engineering", "-l", "app.kubernetes.io/managed-by").stdout)
    refused = kubectl(
        kubeconfig,
        "get",
        "accessbinding",
        "platform-admins",
        *ns,
        "-o",
        "jsonpath={.status.conditions[0].reason}: {.status.conditions[0].message}",
    ).stdout
    print(f"accessbinding platform-admins (cluster-admin): {refused}")
    # A lead of the engineering team shows both bindings; any lead will do otherwise.
    leads = [
        user
        for selector in (
            "identity.kubescim.dev/role=lead,team.identity.kubescim.dev/engineering",
            "identity.kubescim.dev/role=lead",
        )
        for user in json.loads(kubectl(kubeconfig, "get", "scimusers", *ns, "-l", selector, "-o", "json").stdout)[
            "items"
        ]
    ]
    if leads:
        cli(["--kubeconfig", str(kubeconfig), "-n", namespace, "explain", "user", leads[0]["spec"]["userName"]])

    _step("the Okta reconciliation (Management API) found the cluster in sync")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        provider = json.loads(kubectl(kubeconfig, "get", "identityprovider", "okta", *ns, "-o", "json").stdout)
        last = (provider.get("status") or {}).get("lastSync") or {}
        if last.get("result") in ("Succeeded", "Failed", "Blocked"):
            print(
                f"last sync: {last.get('result')} - {last.get('message')} ({last.get('oktaApiCalls')} Okta calls, "
                f"{last.get('durationSeconds')} s)"
            )
            break
        time.sleep(0.5)
    print(kubectl(kubeconfig, "get", "identityproviders", *ns).stdout)
    return 0
