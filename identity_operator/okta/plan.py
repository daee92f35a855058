"""Reconciliation as a pure function: (what Okta says, what the cluster holds) -> the repairs to make.

No I/O here, so it is unit- and fuzz-tested. Matching uses ids, never names: a ScimUser's externalId
is the Okta user id (Okta sends it on create), and an app user's externalId is the SCIM id we
returned; a pushed group is found by its push mapping's target (our SCIM id) or by externalId.
Only attributes Okta manages are compared, so fields another client set are not clobbered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kubescim.api.models import DeactivationPolicy, ScimUserSpec
from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.resources import fold, new_id

# Okta user statuses in which the app keeps the user active (everything else: suspended, deprovisioned).
ACTIVE_STATUSES = frozenset({"PROVISIONED", "ACTIVE", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT"})
ACTIVE_ASSIGNMENT = frozenset({"PROVISIONED", "ACTIVE", "STAGED"})
ENTERPRISE_KEYS = ("department", "costCenter", "employeeNumber", "organization", "division", "employeeID")
# The smallest number of deactivations the breaker ever questions: turning off 1 of 3 users is routine.
BREAKER_FLOOR = 10


@dataclass(frozen=True)
class OktaUser:
    """A user assigned to the app, as the Management API reports it."""

    okta_id: str
    scim_id: str | None
    active: bool
    user_name: str
    profile: dict[str, Any]


@dataclass(frozen=True)
class OktaGroup:
    okta_id: str
    scim_id: str | None
    name: str
    members: frozenset[str]  # Okta user ids


@dataclass(frozen=True)
class ClusterUser:
    object_name: str
    scim_id: str
    spec: dict[str, Any]
    group_ids: frozenset[str] = frozenset()
    uid: str = ""  # so a write means exactly this object, never a re-created namesake

    @property
    def external_id(self) -> str | None:
        value = self.spec.get("externalId")
        return str(value) if value else None

    @property
    def active(self) -> bool:
        return self.spec.get("active") is not False


@dataclass(frozen=True)
class ClusterGroup:
    object_name: str
    scim_id: str
    display_name: str
    external_id: str | None
    uid: str = ""


@dataclass(frozen=True)
class DeltaScope:
    """What a delta run knows: the state of these Okta users only (those in okta_users, and those
    it found unassigned), the member lists of the groups given, and which groups Okta pushes at all.
    Everything else in the cluster is left as it is."""

    users: frozenset[str]  # Okta user ids read: present in okta_users, or no longer assigned
    pushed: frozenset[str]  # every pushed group's Okta id, and the SCIM ids its mapping targets


@dataclass
class Plan:
    create_users: list[tuple[str, ScimUserSpec]] = field(default_factory=list)  # (new SCIM id, spec)
    update_users: list[tuple[ClusterUser, ScimUserSpec]] = field(default_factory=list)
    deactivate_users: list[ClusterUser] = field(default_factory=list)
    delete_users: list[ClusterUser] = field(default_factory=list)
    reactivated: int = 0
    unchanged: int = 0
    create_groups: list[tuple[str, OktaGroup]] = field(default_factory=list)  # (new SCIM id, group)
    rename_groups: list[tuple[ClusterGroup, str, str]] = field(default_factory=list)  # (group, name, okta id)
    add_members: dict[str, set[str]] = field(default_factory=dict)  # group SCIM id -> user SCIM ids
    remove_members: dict[str, set[str]] = field(default_factory=dict)
    remove_groups: list[ClusterGroup] = field(default_factory=list)
    unbacked_users: list[ClusterUser] = field(default_factory=list)  # held here, unknown to Okta (subset of the above)
    invalid: list[str] = field(default_factory=list)  # Okta users whose attributes we cannot store
    blocked: str | None = None

    def membership_changes(self) -> dict[str, dict[str, bool]]:
        """Per user SCIM id: the groups to join (True) or leave (False), so each user is written once."""
        changes: dict[str, dict[str, bool]] = {}
        for members, joined in ((self.add_members, True), (self.remove_members, False)):
            for group_id, users in members.items():
                for user_id in users:
                    changes.setdefault(user_id, {})[group_id] = joined
        return changes

    @property
    def destructive(self) -> int:
        return len(self.deactivate_users) + len(self.delete_users)

    @property
    def groups_fixed(self) -> int:
        changed = set(self.add_members) | set(self.remove_members)
        return len(self.create_groups) + len({g.scim_id for g, _, _ in self.rename_groups} | changed)

    @property
    def empty(self) -> bool:
        return not (
            self.create_users
            or self.update_users
            or self.deactivate_users
            or self.delete_users
            or self.create_groups
            or self.rename_groups
            or self.add_members
            or self.remove_members
            or self.remove_groups
        )


def delta_reads_each_user(touched: int, assigned: int, page_size: int) -> bool:
    """Whether a delta run reads the users it found touched one GET each, rather than listing the
    app's users: whichever takes fewer calls. The listing is ⌈assigned / page_size⌉ pages, so at
    100,000 users up to 200 GETs are cheaper, and at 1,000 users more than 2 are not."""
    return touched <= max(1, math.ceil(assigned / page_size))


def desired_spec(provider: str, user: OktaUser, current: dict[str, Any] | None) -> ScimUserSpec:
    """The user's spec with every Okta-managed attribute set from Okta, everything else kept."""
    profile = user.profile
    spec: dict[str, Any] = dict(current or {})
    spec["provider"] = provider
    spec["userName"] = user.user_name
    spec["externalId"] = user.okta_id
    spec["active"] = user.active
    name = dict(spec.get("name") or {})
    for okta_key, scim_key in (("givenName", "givenName"), ("familyName", "familyName")):
        if profile.get(okta_key):
            name[scim_key] = profile[okta_key]
    if name:
        spec["name"] = name
    if profile.get("email"):
        others = [e for e in spec.get("emails") or [] if not e.get("primary") and e.get("value") != profile["email"]]
        spec["emails"] = [{"value": profile["email"], "type": "work", "primary": True}, *others]
    for key in ("displayName", "title"):
        if profile.get(key):
            spec[key] = profile[key]
    enterprise = {k: profile[k] for k in ENTERPRISE_KEYS if profile.get(k)}
    if enterprise:
        extensions = dict(spec.get("extensions") or {})
        extensions[ENTERPRISE_USER_URN] = {**(extensions.get(ENTERPRISE_USER_URN) or {}), **enterprise}
        spec["extensions"] = extensions
    return ScimUserSpec.model_validate(spec)


def make_plan(
    provider: str,
    okta_users: list[OktaUser],
    okta_groups: list[OktaGroup],
    cluster_users: list[ClusterUser],
    cluster_groups: list[ClusterGroup],
    *,
    policy: DeactivationPolicy = DeactivationPolicy.SUSPEND,
    threshold_percent: int = 25,
    allow_mass_deactivation: bool = False,
    remove_unbacked: bool = True,
    scope: DeltaScope | None = None,
) -> Plan:
    """The repairs that make the cluster match Okta. With a `scope` (a delta run), Okta's state is
    known only for the users and groups given: only they are compared, the breaker still counts
    against the whole provider, and group members resolve through every user the cluster holds."""
    plan = Plan()
    by_external = {u.external_id: u for u in cluster_users if u.external_id}
    by_scim = {u.scim_id: u for u in cluster_users}
    taken_names = {fold(u.spec.get("userName", "")) for u in cluster_users}
    matched: set[str] = set()
    okta_to_scim: dict[str, str] = {} if scope is None else {k: u.scim_id for k, u in by_external.items() if k}

    for okta_user in sorted(okta_users, key=lambda u: u.okta_id):
        current = by_external.get(okta_user.okta_id) or (by_scim.get(okta_user.scim_id) if okta_user.scim_id else None)
        if current is not None:
            matched.add(current.scim_id)
        if not okta_user.active:
            if current is None:
                continue
            okta_to_scim[okta_user.okta_id] = current.scim_id
            if policy == DeactivationPolicy.DELETE:
                plan.delete_users.append(current)
            elif current.active:
                plan.deactivate_users.append(current)
            else:
                plan.unchanged += 1
            continue
        try:
            spec = desired_spec(provider, okta_user, current.spec if current else None)
        except ValidationError:
            plan.invalid.append(okta_user.okta_id)
            if current is not None:
                okta_to_scim[okta_user.okta_id] = current.scim_id
            continue
        if current is None:
            if fold(spec.user_name) in taken_names:
                plan.invalid.append(okta_user.okta_id)  # another object holds that userName
                continue
            scim_id = new_id()
            taken_names.add(fold(spec.user_name))
            plan.create_users.append((scim_id, spec))
            okta_to_scim[okta_user.okta_id] = scim_id
            continue
        okta_to_scim[okta_user.okta_id] = current.scim_id
        if spec.dump() != current.spec:
            if not current.active:
                plan.reactivated += 1
            plan.update_users.append((current, spec))
        else:
            plan.unchanged += 1

    # Users the cluster holds for this provider that Okta does not back: no longer assigned to the
    # app, an Okta id Okta does not have, or no Okta id at all (written by another client or by hand).
    for user in cluster_users:
        if user.scim_id in matched or not remove_unbacked:
            continue
        if scope is not None and (user.external_id is None or user.external_id not in scope.users):
            continue  # a delta run knows nothing new of this user
        if policy == DeactivationPolicy.DELETE:
            plan.delete_users.append(user)
            plan.unbacked_users.append(user)
        elif user.active:
            plan.deactivate_users.append(user)
            plan.unbacked_users.append(user)

    _plan_groups(plan, okta_groups, cluster_users, cluster_groups, okta_to_scim, scope)
    if not remove_unbacked:
        plan.remove_groups = []

    active_now = sum(1 for u in cluster_users if u.active)
    limit = max(active_now * threshold_percent / 100, BREAKER_FLOOR)
    if plan.destructive > limit and not allow_mass_deactivation:
        plan.blocked = (
            f"would deactivate or delete {plan.destructive} of {active_now} active users "
            f"(more than {threshold_percent}%); annotate the IdentityProvider with "
            "identity.kubescim.dev/allow-mass-deactivation=true to allow it once"
        )
    group_limit = max(len(cluster_groups) * threshold_percent / 100, BREAKER_FLOOR)
    if len(plan.remove_groups) > group_limit and not allow_mass_deactivation and plan.blocked is None:
        plan.blocked = (
            f"would remove {len(plan.remove_groups)} of {len(cluster_groups)} groups (more than {threshold_percent}%)"
        )
    return plan


def _plan_groups(
    plan: Plan,
    okta_groups: list[OktaGroup],
    cluster_users: list[ClusterUser],
    cluster_groups: list[ClusterGroup],
    okta_to_scim: dict[str, str],
    scope: DeltaScope | None = None,
) -> None:
    by_scim = {g.scim_id: g for g in cluster_groups}
    by_external = {g.external_id: g for g in cluster_groups if g.external_id}
    members: dict[str, set[str]] = {}
    for user in cluster_users:
        for group_id in user.group_ids:
            members.setdefault(group_id, set()).add(user.scim_id)
    # Membership follows Okta's member lists, active or not (Okta keeps deactivated users in groups);
    # deleted users are simply gone.
    deleted = {u.scim_id for u in plan.delete_users}
    matched: set[str] = set()
    for okta_group in sorted(okta_groups, key=lambda g: g.okta_id):
        current = (by_scim.get(okta_group.scim_id) if okta_group.scim_id else None) or by_external.get(
            okta_group.okta_id
        )
        wanted = {okta_to_scim[m] for m in okta_group.members if m in okta_to_scim} - deleted
        if current is None:
            scim_id = new_id()
            plan.create_groups.append((scim_id, okta_group))
            if wanted:
                plan.add_members[scim_id] = wanted
            continue
        matched.add(current.scim_id)
        if current.display_name != okta_group.name:  # recording the Okta id alone is not worth a write
            plan.rename_groups.append((current, okta_group.name, okta_group.okta_id))
        have = members.get(current.scim_id, set())
        if wanted - have:
            plan.add_members[current.scim_id] = wanted - have
        if (have - wanted) - deleted:
            plan.remove_members[current.scim_id] = (have - wanted) - deleted
    plan.remove_groups = [
        g
        for g in cluster_groups
        if g.scim_id not in matched
        and (scope is None or not ({g.scim_id, g.external_id} & scope.pushed))  # a delta: only the unpushed
    ]
