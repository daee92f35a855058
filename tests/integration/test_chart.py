"""The Helm chart: lint, render (defaults and every option), server-side dry-run against the real API
server, RBAC proven least-privilege by impersonation, and the Dockerfile checked without a Docker engine."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml

from kubescim_dev.controlplane import REPO_ROOT, read_versions, tool_path
from tests.conftest import Cluster

CHART = REPO_ROOT / "charts" / "kubescim"
CRD_CHART = REPO_ROOT / "charts" / "kubescim-crds"
ALL_OPTIONS = REPO_ROOT / "tests" / "fixtures" / "chart-values-all.yaml"
KUBE_VERSION = read_versions()["KUBERNETES_VERSION"].lstrip("v")
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool_path("helm")), *args], capture_output=True, text=True, check=check)


def render(namespace: str, *extra: str) -> list[dict[str, Any]]:
    out = helm("template", "kubescim", str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION, *extra).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


@pytest.fixture
def service_monitor_crd(cluster: Cluster) -> None:
    """Prometheus Operator's ServiceMonitor and PodMonitor kinds, so manifests using them can be dry-run."""
    pod_monitor = json.loads(json.dumps(SERVICE_MONITOR_CRD))
    pod_monitor["metadata"]["name"] = "podmonitors.monitoring.coreos.com"
    pod_monitor["spec"]["names"] = {"kind": "PodMonitor", "plural": "podmonitors", "singular": "podmonitor"}
    for crd in (SERVICE_MONITOR_CRD, pod_monitor):
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(crd))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}")


@pytest.fixture
def chart_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"chart-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize("chart", [CHART, CRD_CHART], ids=["kubescim", "kubescim-crds"])
def test_helm_lint_passes(chart: Path) -> None:
    result = helm("lint", str(chart), "--strict", "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in result.stdout


def test_crd_chart_renders_every_crd_with_a_keep_policy() -> None:
    out = helm("template", "kubescim-crds", str(CRD_CHART), "--kube-version", KUBE_VERSION).stdout
    crds = [d for d in yaml.safe_load_all(out) if d]
    assert len(crds) == len(list((REPO_ROOT / "crds").glob("*.yaml")))
    for crd in crds:
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_chart_crds_are_the_generated_ones() -> None:
    for crd in (REPO_ROOT / "crds").glob("*.yaml"):
        assert (CRD_CHART / "files" / "crds" / crd.name).read_text() == crd.read_text(), f"run `make crds` ({crd.name})"


def test_default_render() -> None:
    documents = render("identity")
    kinds = {d["kind"] for d in documents}
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "IdentityProvider",
        "KopfPeering",
    } <= kinds
    assert "CustomResourceDefinition" not in kinds  # they ship in the kubescim-crds chart
    assert not kinds & {"Ingress", "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor", "PodMonitor"}
    deployments = {d["metadata"]["name"]: d for d in by_kind(documents, "Deployment")}
    gateway, operator = deployments["kubescim-gateway"], deployments["kubescim-operator"]
    assert gateway["spec"]["replicas"] == 2
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    for deployment in (gateway, operator):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["image"] == "kubescim/kubescim:0.1.0"
        assert container["resources"]["requests"]


def test_every_option_renders() -> None:
    documents = render("identity", "-f", str(ALL_OPTIONS))
    kinds = [d["kind"] for d in documents]
    for kind in ("Ingress", "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor", "PodMonitor"):
        assert kind in kinds
    pod_monitor = by_kind(documents, "PodMonitor")[0]
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    operator_policy = next(d for d in by_kind(documents, "NetworkPolicy") if d["metadata"]["name"].endswith("operator"))
    assert operator_policy["spec"]["ingress"][0]["ports"] == [{"port": 8082, "protocol": "TCP"}]
    assert len(by_kind(documents, "Deployment")) == 3  # gateway, operator, standby operator
    standby = next(d for d in by_kind(documents, "Deployment") if d["metadata"]["name"].endswith("standby"))
    env = {e["name"]: e.get("value") for e in standby["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBESCIM_PRIORITY"] == "50"
    gateway = next(d for d in by_kind(documents, "Deployment") if d["metadata"]["name"].endswith("gateway"))
    assert "replicas" not in gateway["spec"]  # the HPA owns it
    gateway_env = {e["name"]: e.get("value") for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert gateway_env["KUBESCIM_GROUP_PATCH_NO_CONTENT"] == "true"
    ingress = by_kind(documents, "Ingress")[0]
    assert ingress["spec"]["tls"][0]["secretName"] == "scim-tls"
    assert [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]] == ["/scim/v2", "/providers"]
    providers = {d["metadata"]["name"]: d for d in by_kind(documents, "IdentityProvider")}
    assert providers["okta"]["spec"]["scim"]["tokenSecretRef"] == {"name": "okta-seed-token", "key": "token"}
    assert "okta" not in providers["entra"]["spec"]
    reconcile = next(p["spec"]["reconcile"] for p in providers.values() if "reconcile" in p["spec"])
    assert (reconcile["deltaInterval"], reconcile["unbacked"]) == ("10m", "Keep")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("gateway.replicas=two", "/gateway/replicas"),
        ("providers[0].name=Not_Valid", "/providers/0/name"),
        ("operator.memberStatusLimit=5000", "/operator/memberStatusLimit"),
        ("gateway.logLevel=LOUD", "/gateway/logLevel"),
        ("gateway.groupPatchNoContent=sometimes", "/gateway/groupPatchNoContent"),
        ("providers[0].reconcile.deltaInterval=soon", "/providers/0/reconcile/deltaInterval"),
        ("gateway.typo=1", "additional properties 'typo' not allowed"),
    ],
)
def test_bad_values_fail_with_a_clear_message(setting: str, message: str) -> None:
    result = helm("template", "kubescim", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting, check=False)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.usefixtures("service_monitor_crd")
def test_rendered_manifests_pass_a_server_side_dry_run(cluster: Cluster, crds: Cluster, chart_namespace: str) -> None:
    for extra in ((), ("-f", str(ALL_OPTIONS))):
        documents = render(chart_namespace, *extra)
        stream = "\n---\n".join(yaml.safe_dump(d) for d in documents)
        result = cluster.kubectl(
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "-n",
            chart_namespace,
            "-f",
            "-",
            input=stream,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("(server dry run)") == len(documents)


def can_i(cluster: Cluster, namespace: str, account: str, verb: str, resource: str) -> bool:
    """`resource` is kind, kind/name, or kind/status (the status subresource)."""
    args = [verb, resource]
    if resource.endswith("/status"):
        args = [verb, resource.removesuffix("/status"), "--subresource=status"]
    result = cluster.kubectl(
        "auth",
        "can-i",
        *args,
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:kubescim-{account}",
        check=False,
    )
    return result.stdout.strip() == "yes"


def test_rbac_is_least_privilege(cluster: Cluster, crds: Cluster, chart_namespace: str) -> None:
    documents = [
        d
        for d in render(chart_namespace, "-f", str(ALL_OPTIONS))
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    ]
    cluster.kubectl(
        "apply", "-n", chart_namespace, "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in documents)
    )
    allowed = {
        "gateway": [
            "create scimusers",
            "patch scimusers",
            "delete scimgroups",
            "watch identityproviders",
            "get secrets/okta-seed-token",
            "get secrets/entra-scim-token",
            "watch secrets/legacy-scim-token",
            "patch identityproviders/status",
            "create events.events.k8s.io",
        ],
        "operator": [
            "patch scimusers",
            "patch scimusers/status",
            "create teams",
            "delete businessunits",
            "patch teams/status",
            "get teammappings",
            "patch teammappings/status",
            "patch identityproviders/status",
            "create events.events.k8s.io",
            "patch kopfpeerings.kopf.dev",
            "get secrets/okta-service-app",
            "get secrets/legacy-okta-token",
            "update leases.coordination.k8s.io",
        ],
        "token-rotator": [
            "create secrets",
            "update secrets/okta-seed-token",
            "get identityproviders",
            "patch identityproviders/status",
        ],
    }
    denied = {
        "gateway": [
            "create teams",
            "patch teams/status",
            "get teammappings",
            "patch identityproviders",
            "get secrets/okta-service-app",
            "get secrets/some-other-secret",
            "list secrets",
            "create secrets",
            "create pods",
            "list scimusers --all-namespaces",
            "patch events.events.k8s.io",
            "patch identityproviders/finalizers",
        ],
        "operator": [
            "update teams",
            "patch teams",
            "create teammappings",
            "delete teammappings",
            "create identityproviders",
            "get secrets/okta-seed-token",
            "list secrets",
            "create pods",
            "create rolebindings",
        ],
        "token-rotator": [
            "get secrets/okta-service-app",
            "list secrets",
            "patch identityproviders",
            "get scimusers",
            "delete secrets/okta-seed-token",
        ],
    }
    for account, checks in allowed.items():
        for check in checks:
            verb, resource = check.split(" ", 1)
            assert can_i(cluster, chart_namespace, account, verb, resource), f"{account} should be able to {check}"
    for account, checks in denied.items():
        for check in checks:
            verb, resource = check.split(" ", 1)
            if resource.endswith("--all-namespaces"):
                result = cluster.kubectl(
                    "auth",
                    "can-i",
                    verb,
                    resource.split()[0],
                    "--all-namespaces",
                    f"--as=system:serviceaccount:{chart_namespace}:kubescim-{account}",
                    check=False,
                )
                assert result.stdout.strip() == "no"
                continue
            assert not can_i(cluster, chart_namespace, account, verb, resource), f"{account} must not {check}"


@pytest.mark.usefixtures("service_monitor_crd")
def test_notes_print_the_endpoint_and_the_token_command(cluster: Cluster, crds: Cluster, chart_namespace: str) -> None:
    out = helm(
        "install",
        "kubescim",
        str(CHART),
        "--dry-run=server",
        "-n",
        chart_namespace,
        f"--kubeconfig={cluster.kubeconfig}",
        "-f",
        str(ALL_OPTIONS),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:")[-1]
    assert "https://scim.example.com/providers/okta/scim/v2" in notes
    assert "kubescim token rotate --provider okta" in notes
    assert "kubescim-token-rotator" in notes


def test_dockerfile_is_multistage_pinned_non_root_and_lint_clean() -> None:
    path = REPO_ROOT / "Dockerfile"
    commands = dockerfile.parse_file(str(path))
    stages = [c for c in commands if c.cmd.upper() == "FROM"]
    assert len(stages) == 2
    args = {
        c.value[0].split("=")[0]: c.value[0].split("=", 1)[1]
        for c in commands
        if c.cmd.upper() == "ARG" and "=" in c.value[0]
    }
    assert args["PYTHON_IMAGE"].startswith("python:3.11.")
    assert args["PYTHON_IMAGE"].endswith("-slim-bookworm")
    import tomllib

    assert args["KUBESCIM_VERSION"] == tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    final = commands[commands.index(stages[-1]) :]
    users = [c.value[0] for c in final if c.cmd.upper() == "USER"]
    assert users
    assert not users[-1].startswith(("0", "root"))
    assert not any(c.cmd.upper() == "HEALTHCHECK" for c in commands)
    run_lines = " ".join(" ".join(c.value) for c in final if c.cmd.upper() == "RUN")
    for compiler in ("gcc", "build-essential", "apt-get install"):
        assert compiler not in run_lines
    hadolint = Path(sys.executable).parent / "hadolint"
    lint = subprocess.run([str(hadolint), str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def test_the_image_install_step_builds_a_complete_wheel(tmp_path: Path) -> None:
    """What the Dockerfile's build stage runs (pip wheel .), minus the dependencies' wheels."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path), str(REPO_ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("kubescim-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "scim_gateway/app.py",
        "identity_operator/handlers.py",
        "kubescim/cli.py",
        "kubescim/crds/identity.kubescim.dev_scimusers.yaml",
    ):
        assert expected in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for script in ("kubescim-gateway", "kubescim-operator", "kubescim ="):
        assert script in entry_points
