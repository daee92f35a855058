"""`kubescim explain`: why a user is in its teams and business units, and whom a rule matches.

What a user *has* is read from what the operator recorded (ScimUser status provenance, mapping
status), so it is exactly what the cluster holds. What a user lacks — a role no RoleMapping gave, no
team at all — is explained by matching the rules against the user here (kubescim.matching, the same
code the operator runs): "RoleMapping admins reads department: user has 'Eng', rule wants
'Engineering'".
"""

from __future__ import annotations

from typing import Any

from kubescim.api.models import MappingSpec, RoleMappingSpec, RuleSelector
from kubescim.constants import (
    ACCESS_BINDINGS,
    BUSINESS_UNIT_MAPPINGS,
    CLUSTER_ROLE_BINDINGS,
    IDENTITY_PROVIDERS,
    LABEL_ACCESS_BINDING,
    LABEL_ACCESS_BINDING_NAMESPACE,
    ROLE_BINDINGS,
    ROLE_MAPPINGS,
    SCIM_USERS,
    TEAM_MAPPINGS,
)
from kubescim.kube import JSON, ApiError, Kube
from kubescim.matching import Matcher, UserFacts, compile_attribute, why_not
from kubescim.scim.filter import PatchPath
from kubescim.scim.resources import fold as _fold
from kubescim.scim.resources import user_to_scim


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
    role_rules = await _list_optional(kube, ROLE_MAPPINGS, namespace)
    team_rules = await _list_optional(kube, TEAM_MAPPINGS, namespace)
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
        facts = _facts(user)
        lines += _memberships("teams", status.get("teams") or [])
        if not status.get("teams"):
            lines += _misses("TeamMapping", team_rules, facts, MappingSpec)
        lines += _memberships("business units", status.get("businessUnits") or [])
        lines += _role(status.get("role"))
        if not status.get("role"):
            declared = await _declared_roles(kube, namespace, str(spec.get("provider", "")))
            lines += _role_misses(role_rules, facts, declared)
        lines += await _access(kube, namespace, status)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


async def _list_optional(kube: Kube, resource: Any, namespace: str) -> list[JSON]:
    """A kind's objects, or none when its CRD is not installed (an older kubescim-crds)."""
    try:
        return (await kube.list(resource, namespace))[0]
    except ApiError as error:
        if error.not_found:
            return []
        raise


def _facts(user: JSON) -> UserFacts:
    """The user as the operator's rules see it: its SCIM attributes and its groups' displayNames."""
    spec, status = user.get("spec") or {}, user.get("status") or {}
    resource = user_to_scim(spec, scim_id="", created="", last_modified="", version="", location="", groups=[])
    return UserFacts(
        key=str(user["metadata"]["name"]),
        provider=str(spec.get("provider", "")),
        user_name=str(spec.get("userName", "")),
        active=spec.get("active") is not False,
        resource=resource,
        groups=tuple(str(g) for g in status.get("groups") or []),
    )


def _compiled(selector: RuleSelector) -> tuple[Matcher | None, PatchPath | None]:
    try:
        attribute = compile_attribute(selector.attribute) if selector.attribute else None
        return Matcher(selector.match), attribute
    except ValueError:
        return None, None


def _why_not(rule: JSON, model: type[RuleSelector], facts: UserFacts) -> str | None:
    try:
        selector = model.model_validate(rule.get("spec") or {})
    except ValueError:
        return "the rule's spec is invalid"
    matcher, attribute = _compiled(selector)
    return why_not(selector, matcher, attribute, facts)


def _misses(kind: str, rules: list[JSON], facts: UserFacts, model: type[RuleSelector]) -> list[str]:
    """Why each rule of this kind leaves the user out (the user is in none of its targets)."""
    if not rules:
        return [f"  (no {kind} exists)"]
    lines = [f"  why no {kind} matches:"]
    for rule in sorted(rules, key=lambda r: str(r["metadata"]["name"])):
        reason = _why_not(rule, model, facts) or "matches, but the operator has not recorded it yet"
        lines.append(f"    - {kind} {rule['metadata']['name']} {reason}")
    return lines


async def _declared_roles(kube: Kube, namespace: str, provider: str) -> set[str] | None:
    try:
        found = await kube.get(IDENTITY_PROVIDERS, provider, namespace)
    except ApiError:
        return None
    access = (found.get("spec") or {}).get("access") or {}
    return {str(r.get("name")) for r in access.get("roles") or []}


def _role_misses(rules: list[JSON], facts: UserFacts, declared: set[str] | None) -> list[str]:
    """The Okta guide's "users are pushed but have no role": every RoleMapping, and why it gave none."""
    if not rules:
        return ["  (no RoleMapping exists)"]
    lines = ["  why no RoleMapping assigns a role:"]
    for rule in sorted(rules, key=lambda r: str(r["metadata"]["name"])):
        name = rule["metadata"]["name"]
        role = str((rule.get("spec") or {}).get("role", ""))
        reason = _why_not(rule, RoleMappingSpec, facts)
        if reason is None and declared is not None and role not in declared:
            reason = (
                f"matches, but role {role!r} is not declared by provider {facts.provider} (spec.access.roles), "
                "so it is never assigned"
            )
        lines.append(
            f"    - RoleMapping {name} (role {role}) {reason or 'matches; the operator has not recorded it yet'}"
        )
    return lines


def _role(role: dict[str, Any] | None) -> list[str]:
    if not role:
        return ["role: (none)"]
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
