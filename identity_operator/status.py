"""Statuses the operator writes, built purely from records and the engine's results (no I/O): a
ScimUser's derived memberships and role, a Team's or BusinessUnit's members, rules and conditions,
and a mapping's or RoleMapping's matches and conditions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from identity_operator.census import AttributeCheck
from identity_operator.mapping import Desired, Rule
from identity_operator.records import RoleRuleRecord, RuleRecord, TargetRecord, UserRecord
from identity_operator.roles import RoleVerdict
from kubescim.api.models import (
    AssignedRole,
    BusinessUnitStatus,
    DerivedMembership,
    MappingStatus,
    Member,
    Provenance,
    RoleMappingStatus,
    ScimUserStatus,
    TeamStatus,
)
from kubescim.conditions import condition
from kubescim.constants import BUSINESS_UNIT_LABEL_PREFIX, TEAM_LABEL_PREFIX

LABEL_PREFIX = {"Team": TEAM_LABEL_PREFIX, "BusinessUnit": BUSINESS_UNIT_LABEL_PREFIX}


def user_status(
    user: UserRecord,
    desired: Desired,
    group_names: tuple[str, ...],
    current: Mapping[str, Any],
    role: RoleVerdict | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    previous = current.get("conditions") or []
    assigned = (
        AssignedRole(
            name=role.role,
            rank=role.rank,
            resolution=role.resolution,
            sources=list(role.sources),
            candidates=list(role.candidates),
        )
        if role is not None
        else None
    )
    status = ScimUserStatus(
        id=user.scim_id,
        groups=list(group_names),
        teams=[DerivedMembership(name=n, sources=list(p)) for n, p in desired.teams.items()],
        team_count=len(desired.teams),
        business_units=[DerivedMembership(name=n, sources=list(p)) for n, p in desired.business_units.items()],
        role=assigned,
        kubernetes_username=username,
        observed_generation=user.generation,
    ).dump()
    message = (
        f"in {len(desired.teams)} team(s) and {len(desired.business_units)} business unit(s)"
        if user.active
        else "inactive: removed from every team and business unit"
    )
    status["conditions"] = [
        condition("Ready", True, "Reconciled" if user.active else "Inactive", message, previous, user.generation)
    ]
    return status


def target_status(
    record: TargetRecord,
    members: Mapping[str, tuple[Provenance, ...]],
    user_names: Mapping[str, str],
    rule_names: list[str],
    rules: list[Rule],
    unit_teams: list[str],
    limit: int,
    current: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """members: user object name -> provenances; user_names: their userNames (a missing one shows
    the object name); rule_names: the rules producing this target, and rules: the rules of those
    names (of either kind); unit_teams: a unit's teams; current: the stored status, when the caller
    has unpacked it already (record.status otherwise)."""
    # Sort cheap tuples, then build models only for the members the status lists (a unit of 10,000
    # lists 500).
    names = sorted((user_names.get(key, key).casefold(), key, user_names.get(key, key)) for key in members)
    listed = [Member(user_name=shown, user=key, sources=list(members[key])) for _, key, shown in names[: limit + 1]]
    displays = {r.spec.target.display_name_template or "" for r in rules if r.kind == record.kind}
    units = {r.spec.target.business_unit for r in rules if r.kind == "Team"}
    conflicts = []
    if len(displays) > 1:
        conflicts.append(f"rules {', '.join(rule_names)} set different display names")
    if len(units - {None}) > 1:
        conflicts.append(f"rules {', '.join(rule_names)} name different business units")
    previous = (record.status if current is None else current).get("conditions") or []
    common: dict[str, Any] = {
        "origin": record.origin,
        "member_count": len(members),
        "members": listed[:limit],
        "members_truncated": len(members) > limit,
        "selector": f"{LABEL_PREFIX[record.kind]}{record.name}",
        "rules": rule_names,
        "observed_generation": record.generation,
    }
    status_model: TeamStatus | BusinessUnitStatus
    if record.kind == "BusinessUnit":
        status_model = BusinessUnitStatus(**common, teams=unit_teams)
    else:
        status_model = TeamStatus(**common)
    status = status_model.dump()
    status["conditions"] = [
        condition("Ready", True, "Reconciled", f"{len(members)} member(s)", previous, record.generation),
        condition(
            "RulesConsistent",
            not conflicts,
            "Conflict" if conflicts else "Consistent",
            "; ".join(conflicts) or "rules that produce this name agree",
            previous,
            record.generation,
        ),
    ]
    return status


def role_rule_status(
    record: RoleRuleRecord,
    matched: int,
    assigned: int,
    undeclared_on: list[str],
    attribute_check: AttributeCheck | None = None,
) -> dict[str, Any]:
    """A RoleMapping's status: whom it matches, whom it gives the role, and whether it can work
    (Ready; AttributeFound for an attribute rule, as on TeamMappings)."""
    rule = record.rule
    previous = record.status.get("conditions") or []
    status = RoleMappingStatus(
        matched_users=matched, assigned_users=assigned, observed_generation=record.generation
    ).dump()
    if rule.problem is not None:
        ready, reason, message = False, "InvalidRule", rule.problem
    elif undeclared_on:
        ready, reason = False, "RoleNotDeclared"
        message = (
            f"role {rule.spec.role!r} is not declared in spec.access.roles of IdentityProvider(s) "
            f"{', '.join(undeclared_on)}: it is assigned to none of their users"
        )
    else:
        ready, reason = True, "Valid"
        message = f"matches {matched} user(s); {assigned} hold role {rule.spec.role!r} through it"
    status["conditions"] = [condition("Ready", ready, reason, message, previous, record.generation)]
    if attribute_check is not None:
        status["conditions"].append(_attribute_condition(attribute_check, previous, record.generation))
    return status


def _attribute_condition(check: AttributeCheck, previous: list[dict[str, Any]], generation: int) -> dict[str, Any]:
    return condition("AttributeFound", check.ok, check.verdict, check.message, previous, generation)


def mapping_rule_status(
    record: RuleRecord,
    matched: int,
    targets: list[str],
    issues: list[str],
    attribute_check: AttributeCheck | None,
    pushed_groups_matched: int | None,
) -> dict[str, Any]:
    """A TeamMapping's or BusinessUnitMapping's status: whom it matches, what it produces, and whether
    it works: Ready (valid), Degraded (render problems), AttributeFound (an attribute rule: does any
    user carry it), GroupsMatched (a group rule: does any pushed group match)."""
    previous = record.status.get("conditions") or []
    problem = record.rule.problem
    status = MappingStatus(matched_users=matched, targets=targets[:1000], observed_generation=record.generation).dump()
    status["conditions"] = [
        condition(
            "Ready",
            problem is None,
            "InvalidRule" if problem else "Valid",
            problem or f"matches {matched} user(s)",
            previous,
            record.generation,
        ),
        condition(
            "Degraded",
            bool(issues),
            "RenderProblems" if issues else "NoProblems",
            "; ".join(issues[:5]) or "every match renders a valid name",
            previous,
            record.generation,
        ),
    ]
    if attribute_check is not None:
        status["conditions"].append(_attribute_condition(attribute_check, previous, record.generation))
    if pushed_groups_matched is not None:
        found = pushed_groups_matched
        status["conditions"].append(
            condition(
                "GroupsMatched",
                found > 0,
                "PushedGroupsMatch" if found else "NoPushedGroupMatches",
                f"matches {found} pushed group(s)"
                if found
                else "no pushed group's displayName matches: push the group in Okta (Push Groups) or fix the "
                "rule's match (kubescim doctor lists groups assigned but not pushed)",
                previous,
                record.generation,
            )
        )
    return status


CUSTOM_ATTRIBUTES_CONDITION = "CustomAttributesArriving"
_WORST_FIRST = ("CaseMismatch", "NearMiss", "NotCarried")


def custom_attributes_condition(
    declared: Sequence[tuple[str, str]], checks: Sequence[AttributeCheck], users: int, previous: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Okta guide's "custom attribute is not arriving", on the IdentityProvider: does each custom
    attribute it declares arrive under exactly that name and URN? A near miss (another case, another
    URN) names what users carry instead."""
    if not declared:
        ok, reason, message = True, "NoneDeclared", "no custom attributes declared in spec.scim.customAttributes"
    elif users == 0:
        ok, reason, message = True, "NoUsersYet", f"{len(declared)} declared; no user pushed yet"
    else:
        missed = [c for c in checks if c.verdict != "Found"]
        if not missed:
            ok, reason = True, "Arriving"
            message = f"users carry each of the {len(declared)} declared custom attribute(s)"
        else:
            ok = False
            reason = next(v for v in _WORST_FIRST if any(c.verdict == v for c in missed))
            message = "; ".join(c.message for c in missed[:5]) + (
                f" (and {len(missed) - 5} more)" if len(missed) > 5 else ""
            )
    return condition(CUSTOM_ATTRIBUTES_CONDITION, ok, reason, message, previous)
