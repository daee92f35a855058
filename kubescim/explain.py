"""`kubescim explain`: why a user is in its teams and business units, and whom a rule matches.

Reads what the operator recorded (ScimUser status provenance, mapping status); computes nothing itself,
so what it prints is exactly what the cluster holds.
"""

from __future__ import annotations

from typing import Any

from kubescim.constants import (
    ACCESS_BINDINGS,
    BUSINESS_UNIT_MAPPINGS,
    CLUSTER_ROLE_BINDINGS,
    LABEL_ACCESS_BINDING,
    LABEL_ACCESS_BINDING_NAMESPACE,
    ROLE_BINDINGS,
    SCIM_USERS,
    TEAM_MAPPINGS,
)
from kubescim.kube import JSON, ApiError, Kube
from kubescim.scim.resources import fold as _fold


def _source(source: dict[str, Any]) -> str:
    kind = source.get("kind", "?")
    if kind == "Group":
        return f"rule {source.get('rule')}: member of group {source.get('group')!r}"
    if kind == "Attribute":
        return f"rule {source.get('rule')}: {source.get('attribute')} = {source.get('value')!r}"
    if kind == "Team":
        return f"member of team {source.get('team')}, which belongs to this business unit"
    return "listed in spec.members (manual)"


def _memberships(title: str, items: list[dict[str, Any]]) -> list[str]:
    lines = [f"{title}:"]
    if not items:
        lines.append("  (none)")
    for item in items:
        lines.append(f"  {item.get('name')}")
        lines.extend(f"    - {_source(s)}" for s in item.get("sources") or [])
    return lines


async def explain_user(kube: Kube, namespace: str, user_name: str) -> str:
    users, _ = await kube.list(SCIM_USERS, namespace)
    wanted = _fold(user_name)
    matches = [u for u in users if _fold(str((u.get("spec") or {}).get("userName", ""))) == wanted]
    if not matches:
        raise SystemExit(f"error: no ScimUser with userName {user_name!r} in namespace {namespace!r}")
    blocks = []
    for user in matches:
        spec, status = user.get("spec") or {}, user.get("status") or {}
        lines = [
            f"ScimUser {user['metadata']['name']} (provider {spec.get('provider')})",
            f"  userName: {spec.get('userName')}",
            f"  active:   {spec.get('active', True)}",
            f"  groups:   {', '.join(status.get('groups') or []) or '(none)'}",
        ]
        if spec.get("active") is False:
            lines.append("  (inactive users are in no team or business unit unless a rule selects users: All)")
        lines += _memberships("teams", status.get("teams") or [])
        lines += _memberships("business units", status.get("businessUnits") or [])
        lines += _role(status.get("role"))
        lines += await _access(kube, namespace, status)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _role(role: dict[str, Any] | None) -> list[str]:
    if not role:
        return ["role: (none: no RoleMapping assigns this user a declared role)"]
    lines = [f"role: {role.get('name')} (rank {role.get('rank')}, {role.get('resolution')})"]
    lines.extend(f"    - {_source(s)}" for s in role.get("sources") or [])
    others = [c for c in role.get("candidates") or [] if c != role.get("name")]
    if others:
        lines.append(f"    (also matched: {', '.join(others)})")
    return lines


async def _access(kube: Kube, namespace: str, status: dict[str, Any]) -> list[str]:
    """What the user may do: the RBAC objects that name them, and the AccessBinding behind each."""
    username = status.get("kubernetesUsername")
    if not username:
        return ["access: (no Kubernetes username: the user lacks the attribute the provider's access.username uses)"]
    selector = f"{LABEL_ACCESS_BINDING_NAMESPACE}={namespace}"
    found: dict[str, list[str]] = {}
    for resource in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
        try:
            objects, _ = await kube.list(resource, None, label_selector=selector)
        except ApiError as error:
            if error.status == 403:
                return [f"access ({username}): cannot list role bindings with these credentials"]
            raise
        for item in objects:
            if any(s.get("kind") == "User" and s.get("name") == username for s in item.get("subjects") or []):
                binding = str(item["metadata"]["labels"].get(LABEL_ACCESS_BINDING))
                where = item["metadata"].get("namespace") or "cluster-wide"
                found.setdefault(binding, []).append(where)
    lines = [f"access (as Kubernetes user {username}):"]
    if not found:
        lines.append("  (none)" + ("" if status.get("teams") or status.get("role") else ": in no team and no role"))
    teams = {t.get("name") for t in status.get("teams") or []}
    units = {u.get("name") for u in status.get("businessUnits") or []}
    role = (status.get("role") or {}).get("name")
    for name in sorted(found):
        try:
            spec = (await kube.get(ACCESS_BINDINGS, name, namespace)).get("spec") or {}
        except ApiError:
            spec = {}
        ref = spec.get("roleRef") or {}
        subjects = spec.get("subjects") or {}
        reasons = [f"team {t}" for t in sorted(teams & set(subjects.get("teams") or []))]
        reasons += [f"business unit {u}" for u in sorted(units & set(subjects.get("businessUnits") or []))]
        reasons += [f"role {role}"] if role and role in (subjects.get("roles") or []) else []
        if subjects.get("teamSelector") and not reasons:
            reasons.append("a team its teamSelector matches")
        places = sorted(set(found[name]))
        lines.append(
            f"  {ref.get('kind', 'ClusterRole')} {ref.get('name')} in {', '.join(places)}"
            f"  (AccessBinding {name}, through {' and '.join(reasons) or 'its subjects'})"
        )
    return lines


async def _get_rule(kube: Kube, namespace: str, name: str) -> tuple[str, JSON]:
    for resource, kind in ((TEAM_MAPPINGS, "TeamMapping"), (BUSINESS_UNIT_MAPPINGS, "BusinessUnitMapping")):
        try:
            return kind, await kube.get(resource, name, namespace)
        except ApiError as error:
            if not error.not_found:
                raise
    raise SystemExit(f"error: no TeamMapping or BusinessUnitMapping {name!r} in namespace {namespace!r}")


async def explain_rule(kube: Kube, namespace: str, name: str) -> str:
    kind, rule = await _get_rule(kube, namespace, name)
    spec, status = rule.get("spec") or {}, rule.get("status") or {}
    match = spec.get("match") or {}
    source = spec.get("attribute") if spec.get("source", "Attribute") == "Attribute" else "group displayName"
    value = match.get("value") if match.get("operator", "Equals") != "In" else match.get("values")
    target = spec.get("target") or {}
    lines = [
        f"{kind} {name}",
        f"  when {source} {'NOT ' if match.get('negate') else ''}{match.get('operator', 'Equals')} {value!r}"
        f" -> {target.get('name') or target.get('nameTemplate')}",
        f"  priority {spec.get('priority', 100)}{', final' if spec.get('final') else ''};"
        f" users: {spec.get('users', 'Active')}; providers: {', '.join(spec.get('providers') or []) or 'all'}",
    ]
    for condition in status.get("conditions") or []:
        lines.append(
            f"  {condition.get('type')}={condition.get('status')} ({condition.get('reason')}): {condition.get('message')}"
        )
    field = "teams" if kind == "TeamMapping" else "businessUnits"
    users, _ = await kube.list(SCIM_USERS, namespace)
    matched = []
    for user in users:
        for membership in (user.get("status") or {}).get(field) or []:
            for source_entry in membership.get("sources") or []:
                if source_entry.get("rule") == name:
                    matched.append(
                        (str((user.get("spec") or {}).get("userName")), membership.get("name"), source_entry)
                    )
    lines.append(f"matches {len(matched)} user(s):")
    for user_name, target_name, source_entry in sorted(matched, key=lambda m: (str(m[1]), m[0])):
        lines.append(f"  {user_name} -> {target_name} ({_source(source_entry)})")
    return "\n".join(lines)
