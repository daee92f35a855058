"""Generate crds/*.yaml from the pydantic models (`make crds`; a test fails when they are stale).

Pydantic's JSON Schema is close to a Kubernetes structural schema; the differences handled here:
$refs are inlined, `anyOf [X, null]` becomes X (absent means unset), titles go, `Any` becomes
x-kubernetes-preserve-unknown-fields, and nested objects with defaults get `default: {}` so the
API server applies the defaults inside them.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.config import JsonDict

from kubescim.api import models as m
from kubescim.constants import GROUP, VERSION

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
READY = '.status.conditions[?(@.type=="Ready")].status'
KEEP_KEYS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "pattern",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "minimum",
    "maximum",
    "format",
    "default",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "maxProperties",
}


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def dump(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


AGE = Column("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    short_names: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    root_rules: tuple[JsonDict, ...] = field(default_factory=tuple)

    @property
    def singular(self) -> str:
        return self.kind.lower()


DNS_LABEL_NAME = m.cel(
    "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
    "metadata.name must be a DNS label (lowercase a-z, 0-9 and '-', at most 63 characters): it is used in "
    "membership label keys",
)

KINDS: tuple[Kind, ...] = (
    Kind(
        "IdentityProvider",
        "identityproviders",
        m.IdentityProviderSpec,
        m.IdentityProviderStatus,
        "An identity provider (an Okta org and its SCIM app) that provisions users and groups into this namespace.",
        ("idp",),
        (
            Column("Endpoint", ".status.scimEndpoint", description="SCIM base URL"),
            Column("Okta", ".spec.okta.orgUrl", description="Okta org"),
            Column("Users", ".status.userCount", "integer"),
            Column("Last Sync", ".status.lastSync.result"),
            Column("Ready", READY),
            AGE,
        ),
        (DNS_LABEL_NAME,),
    ),
    Kind(
        "ScimUser",
        "scimusers",
        m.ScimUserSpec,
        m.ScimUserStatus,
        "A user provisioned over SCIM by an identity provider. Group, team and business-unit memberships are "
        "labels: group.identity.kubescim.dev/<group-id>, team.identity.kubescim.dev/<team>, "
        "businessunit.identity.kubescim.dev/<unit>.",
        ("su", "scimu"),
        (
            Column("UserName", ".spec.userName"),
            Column("Active", ".spec.active", "boolean"),
            Column("Teams", ".status.teamCount", "integer"),
            Column("Role", ".status.role.name"),
            Column("Provider", ".spec.provider", priority=1),
            Column("Kubernetes User", ".status.kubernetesUsername", priority=1),
            Column("ID", ".status.id", priority=1),
            AGE,
        ),
    ),
    Kind(
        "ScimGroup",
        "scimgroups",
        m.ScimGroupSpec,
        m.ScimGroupStatus,
        "A group pushed over SCIM. Members are the ScimUsers labelled group.identity.kubescim.dev/<id>.",
        ("sg", "scimg"),
        (
            Column("DisplayName", ".spec.displayName"),
            Column("Members", ".status.memberCount", "integer"),
            Column("Provider", ".spec.provider", priority=1),
            Column("ID", ".status.id", priority=1),
            AGE,
        ),
    ),
    Kind(
        "TeamMapping",
        "teammappings",
        m.MappingSpec,
        m.MappingStatus,
        "A rule that puts users whose attribute or group displayName matches into a Team.",
        ("tmap",),
        (
            Column("Source", ".spec.source"),
            Column("Attribute", ".spec.attribute"),
            Column("Operator", ".spec.match.operator"),
            Column("Value", ".spec.match.value"),
            Column("Team", ".spec.target.name"),
            Column("Template", ".spec.target.nameTemplate"),
            Column("Matched", ".status.matchedUsers", "integer"),
            Column("Ready", READY),
            Column("Priority", ".spec.priority", "integer", priority=1),
            AGE,
        ),
    ),
    Kind(
        "BusinessUnitMapping",
        "businessunitmappings",
        m.MappingSpec,
        m.MappingStatus,
        "A rule that puts users whose attribute or group displayName matches into a BusinessUnit.",
        ("bumap",),
        (
            Column("Source", ".spec.source"),
            Column("Attribute", ".spec.attribute"),
            Column("Operator", ".spec.match.operator"),
            Column("Value", ".spec.match.value"),
            Column("Unit", ".spec.target.name"),
            Column("Template", ".spec.target.nameTemplate"),
            Column("Matched", ".status.matchedUsers", "integer"),
            Column("Ready", READY),
            Column("Priority", ".spec.priority", "integer", priority=1),
            AGE,
        ),
    ),
    Kind(
        "RoleMapping",
        "rolemappings",
        m.RoleMappingSpec,
        m.RoleMappingStatus,
        "A rule that assigns a role to users whose attribute or group displayName matches. A user holds at most "
        "one role (the IdentityProvider's access.roleResolution); AccessBindings grant Kubernetes access to roles.",
        ("rmap",),
        (
            Column("Source", ".spec.source"),
            Column("Attribute", ".spec.attribute"),
            Column("Operator", ".spec.match.operator"),
            Column("Value", ".spec.match.value"),
            Column("Role", ".spec.role"),
            Column("Assigned", ".status.assignedUsers", "integer"),
            Column("Ready", READY),
            Column("Priority", ".spec.priority", "integer", priority=1),
            AGE,
        ),
    ),
    Kind(
        "AccessBinding",
        "accessbindings",
        m.AccessBindingSpec,
        m.AccessBindingStatus,
        "Grants a ClusterRole or Role to teams, business units and role holders, in namespaces or cluster-wide: "
        "the operator keeps RoleBindings / ClusterRoleBindings of the active members' Kubernetes usernames.",
        ("ab", "access"),
        (
            Column("Role", ".spec.roleRef.name"),
            Column("Subjects", ".status.subjectCount", "integer"),
            Column("Namespaces", ".status.namespaceCount", "integer"),
            Column("Cluster", ".spec.scope.cluster", "boolean"),
            Column("Ready", READY),
            Column("Objects", ".status.objectCount", "integer", priority=1),
            AGE,
        ),
        (DNS_LABEL_NAME,),
    ),
    Kind(
        "Team",
        "teams",
        m.TeamSpec,
        m.TeamStatus,
        "A team of users: created by the operator from TeamMappings, or by hand. Members: the ScimUsers "
        "labelled team.identity.kubescim.dev/<name> (status.selector).",
        (),
        (
            Column("Display Name", ".spec.displayName"),
            Column("Members", ".status.memberCount", "integer"),
            Column("Source", ".status.origin"),
            Column("Business Unit", ".spec.businessUnit"),
            Column("Ready", READY),
            AGE,
        ),
        (DNS_LABEL_NAME,),
    ),
    Kind(
        "BusinessUnit",
        "businessunits",
        m.BusinessUnitSpec,
        m.BusinessUnitStatus,
        "A business unit: created by the operator from BusinessUnitMappings, or by hand. Members: the ScimUsers "
        "labelled businessunit.identity.kubescim.dev/<name>, plus members of its Teams.",
        ("bu",),
        (
            Column("Display Name", ".spec.displayName"),
            Column("Members", ".status.memberCount", "integer"),
            Column("Source", ".status.origin"),
            Column("Ready", READY),
            AGE,
        ),
        (DNS_LABEL_NAME,),
    ),
)


def _structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    if "$ref" in schema:
        target = defs[schema.pop("$ref").split("/")[-1]]
        schema = {**copy.deepcopy(target), **schema}
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            branches = [b for b in schema.pop(combinator) if b.get("type") != "null"]
            if len(branches) != 1:
                raise ValueError(f"cannot express {combinator} with {len(branches)} branches structurally")
            branch = _structural(branches[0], defs)
            schema = {**branch, **{k: v for k, v in schema.items() if k in ("description", "default")}}
    if "allOf" in schema:
        (only,) = schema.pop("allOf")
        schema = {**_structural(only, defs), **schema}
    if "default" in schema and schema["default"] is None:
        del schema["default"]
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in KEEP_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _structural(value, defs)
        elif key == "additionalProperties" and value is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
        else:
            out[key] = value
    if not out.get("type") and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "object" and "properties" in out:
        required = set(out.get("required", []))
        for name, prop in out["properties"].items():
            # Let the API server default optional nested objects (e.g. reconcile.interval). The default
            # must itself pass the object's CEL rules, so it is spelled out in full, not `{}`.
            nested = {k: sub["default"] for k, sub in prop.get("properties", {}).items() if "default" in sub}
            if name not in required and prop.get("type") == "object" and "default" not in prop and nested:
                prop["default"] = nested
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _structural(raw, defs)
    schema["description"] = _doc(model)
    return schema


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def crd(kind: Kind) -> dict[str, Any]:
    spec_schema = model_schema(kind.spec)
    status_schema = model_schema(kind.status)
    status_schema["description"] = f"Observed state of the {kind.kind}, written by kubescim."
    root: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this representation."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if kind.root_rules:
        root["x-kubernetes-validations"] = list(kind.root_rules)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "kubescim", "app.kubernetes.io/part-of": "kubescim"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["kubescim"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.dump() for c in kind.columns],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    header = "# Generated from kubescim/api/models.py by `make crds`. Do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=120, allow_unicode=True)


def expected_files() -> dict[Path, str]:
    return {CRD_DIR / f"{GROUP}_{kind.plural}.yaml": render(kind) for kind in KINDS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if crds/ differs from the models")
    args = parser.parse_args()
    stale = []
    for path, text in expected_files().items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(CRD_DIR.parent)}")
    if stale:
        print(f"stale CRDs (run `make crds`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
