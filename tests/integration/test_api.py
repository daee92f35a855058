"""kubescim's CRDs against the real API server: install, examples, CEL rules and bounds, explain, printer
columns, and the status subresource."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubescim.api.crdgen import KINDS
from kubescim.constants import API_VERSION, GROUP, TEAMS
from kubescim.kube import CRDS, NAMESPACES, ApiError, Kube
from tests.conftest import Cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "crds" / "examples"


@pytest.fixture
async def api_namespace(crds: Cluster, kube: Kube) -> Any:
    name = f"api-{uuid.uuid4().hex[:8]}"
    await kube.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    await kube.delete(NAMESPACES, name)


async def test_every_crd_is_established(crds: Cluster, kube: Kube) -> None:
    for kind in KINDS:
        crd = await kube.get(CRDS, f"{kind.plural}.{GROUP}")
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"
        assert "kubescim" in crd["spec"]["names"]["categories"]


def test_every_example_applies_and_lists_with_printer_columns(crds: Cluster, api_namespace: str) -> None:
    applied = crds.kubectl("apply", "-n", api_namespace, "-f", str(EXAMPLES))
    assert applied.stdout.count("created") == len(list(EXAMPLES.glob("*.yaml")))
    listed = crds.kubectl("get", "kubescim", "-n", api_namespace).stdout
    for header in ("USERNAME", "ACTIVE", "DISPLAYNAME", "SOURCE", "ATTRIBUTE", "OPERATOR", "ENDPOINT", "MEMBERS"):
        assert header in listed, listed
    for name in ("alice@example.com", "playground-groups", "squads", "cost-centers", "oncall", "platform", "okta"):
        assert name in listed
    wide = crds.kubectl("get", "scimusers", "-n", api_namespace, "-o", "wide").stdout
    assert "PROVIDER" in wide


def test_kubectl_explain_teaches_the_api(crds: Cluster) -> None:
    explained = crds.kubectl("explain", "scimuser.spec").stdout
    assert "SCIM userName: unique per provider, compared case-insensitively." in " ".join(explained.split())
    rule = " ".join(crds.kubectl("explain", "teammapping.spec.match.operator").stdout.split())
    assert "Bifrost semantics" in rule
    assert "RE2" in rule


INVALID: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "IdentityProvider",
        "api-token-no-ref",
        {"okta": {"orgUrl": "https://x.okta.com", "appId": "0oa1", "auth": {"type": "ApiToken"}}},
        "type ApiToken needs apiTokenSecretRef",
    ),
    (
        "IdentityProvider",
        "oauth-no-app",
        {"okta": {"orgUrl": "https://x.okta.com", "appId": "0oa1", "auth": {"type": "OAuth"}}},
        "type OAuth needs oauth",
    ),
    ("IdentityProvider", "fast", {"reconcile": {"interval": "1m"}}, "interval must be between 5m and 168h"),
    ("IdentityProvider", "slow", {"reconcile": {"interval": "200h"}}, "interval must be between 5m and 168h"),
    ("IdentityProvider", "not-duration", {"reconcile": {"interval": "daily"}}, "should match"),
    (
        "IdentityProvider",
        "threshold",
        {"reconcile": {"massDeactivationThresholdPercent": 101}},
        "should be less than or equal to 100",
    ),
    (
        "IdentityProvider",
        "bad-url",
        {"okta": {"orgUrl": "ftp://x", "appId": "0oa1", "auth": {"type": "OAuth"}}},
        "should match",
    ),
    (
        "TeamMapping",
        "no-value",
        {"attribute": "title", "match": {"operator": "Equals"}, "target": {"name": "x"}},
        "operator Equals, Prefix, Glob and Regex need a value",
    ),
    (
        "TeamMapping",
        "no-values",
        {"attribute": "title", "match": {"operator": "In"}, "target": {"name": "x"}},
        "operator In needs a non-empty values list",
    ),
    (
        "TeamMapping",
        "bad-regex",
        {"attribute": "title", "match": {"operator": "Regex", "value": "a(b"}, "target": {"name": "x"}},
        "value must be a valid RE2 regular expression",
    ),
    (
        "TeamMapping",
        "two-stars",
        {"attribute": "title", "match": {"value": "${*} and ${*}"}, "target": {"nameTemplate": "${*}"}},
        "may contain ${*} at most once",
    ),
    (
        "TeamMapping",
        "both-names",
        {"attribute": "title", "match": {"value": "*"}, "target": {"name": "x", "nameTemplate": "${*}"}},
        "set exactly one of name or nameTemplate",
    ),
    (
        "TeamMapping",
        "no-name",
        {"attribute": "title", "match": {"value": "*"}, "target": {}},
        "set exactly one of name or nameTemplate",
    ),
    (
        "TeamMapping",
        "no-attribute",
        {"match": {"value": "x"}, "target": {"name": "x"}},
        "source Attribute needs attribute",
    ),
    (
        "TeamMapping",
        "group-attribute",
        {"source": "Group", "attribute": "title", "match": {"value": "x"}, "target": {"name": "x"}},
        "remove attribute",
    ),
    (
        "TeamMapping",
        "template-no-wildcard",
        {"attribute": "title", "match": {"value": "Engineer"}, "target": {"nameTemplate": "t-${*}"}},
        "target.nameTemplate with a placeholder needs a wildcard match",
    ),
    (
        "TeamMapping",
        "template-negated",
        {"attribute": "title", "match": {"operator": "Any", "negate": True}, "target": {"nameTemplate": "${*}"}},
        "target.nameTemplate with a placeholder needs a wildcard match",
    ),
    (
        "TeamMapping",
        "priority",
        {"attribute": "title", "match": {"value": "x"}, "target": {"name": "x"}, "priority": 2000},
        "should be less than or equal to 1000",
    ),
    (
        "TeamMapping",
        "many-providers",
        {
            "attribute": "title",
            "match": {"value": "x"},
            "target": {"name": "x"},
            "providers": [f"p{i}" for i in range(33)],
        },
        "must have at most 32 items",
    ),
    (
        "TeamMapping",
        "bad-target",
        {"attribute": "title", "match": {"value": "x"}, "target": {"name": "Not_A_Name"}},
        "should match",
    ),
    (
        "BusinessUnitMapping",
        "unit-no-value",
        {"attribute": "title", "match": {"operator": "Prefix"}, "target": {"name": "x"}},
        "need a value",
    ),
    ("Team", "x" * 64, {"displayName": "Too long a name"}, "metadata.name must be a DNS label"),
    ("Team", "long-display", {"displayName": "x" * 300}, "may not be more than 256"),
    ("Team", "bad-member", {"members": [{"userName": ""}]}, "should be at least 1"),
    ("BusinessUnit", "under_score", {}, "metadata.name must be a DNS label"),
    ("ScimUser", "long-user", {"provider": "okta", "userName": "x" * 600}, "may not be more than 512"),
    ("ScimUser", "no-provider", {"userName": "a@b"}, "Required value"),
    ("ScimGroup", "no-display", {"provider": "okta"}, "Required value"),
]


@pytest.mark.parametrize(("kind", "name", "spec", "message"), INVALID, ids=[f"{i[0]}-{i[1][:20]}" for i in INVALID])
def test_invalid_objects_are_rejected_with_the_intended_message(
    crds: Cluster, api_namespace: str, kind: str, name: str, spec: dict[str, Any], message: str
) -> None:
    document = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    result = crds.kubectl("create", "-n", api_namespace, "-f", "-", input=json.dumps(document), check=False)
    assert result.returncode != 0, f"{kind} {name} was accepted"
    assert "is invalid" in result.stderr
    assert message in result.stderr, result.stderr


async def test_status_is_written_only_through_the_status_subresource(
    crds: Cluster, kube: Kube, api_namespace: str
) -> None:
    created = await kube.create(
        TEAMS,
        {
            "apiVersion": API_VERSION,
            "kind": "Team",
            "metadata": {"name": "t1"},
            "spec": {},
            "status": {"memberCount": 99},
        },
        api_namespace,
    )
    assert "status" not in created or created["status"].get("memberCount") is None
    await kube.patch(TEAMS, "t1", {"status": {"memberCount": 5}}, api_namespace)
    assert ((await kube.get(TEAMS, "t1", api_namespace)).get("status") or {}).get("memberCount") is None
    await kube.patch(TEAMS, "t1", {"status": {"memberCount": 5}}, api_namespace, subresource="status")
    assert (await kube.get(TEAMS, "t1", api_namespace))["status"]["memberCount"] == 5
    with pytest.raises(ApiError) as info:
        await kube.patch(TEAMS, "t1", {"status": {"memberCount": -1}}, api_namespace, subresource="status")
    assert info.value.status == 422


def test_examples_parse_as_yaml_documents() -> None:
    for path in EXAMPLES.glob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        assert document["apiVersion"] == API_VERSION
