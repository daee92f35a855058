"""Access bindings as pure functions: from an AccessBinding, who holds what, and the cluster's namespaces,
to the RBAC objects that should exist, and from those and what exists, to the writes.

Like rbac-manager: the desired RoleBindings / ClusterRoleBindings are computed from the binding's spec
alone, then applied as a diff, so an unchanged binding costs no request and a change writes only
the objects it touches.

Big bindings are split into shards of at most `limit` subjects (an RBAC object must stay well under
etcd's 1.5 MiB). A subject's shard is a hash of its name, so adding or removing one subject rewrites
one object; the shard count is a power of two chosen from the subject count and changes only when
the count doubles or halves past it.

A few users' changes (a leaver, a joiner) need not recompute a binding of everyone: `user_subject`
says whether one user is a subject now, and `reshard` moves those subjects in the shards last
computed, giving exactly what `shard` would give the whole changed list, or None when the shard
count would change (then the binding is recomputed).
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any, Literal

from kubescim.api.models import (
    Access,
    AccessBindingSpec,
    LabelSelector,
    RoleRefKind,
    SelectorOperator,
    SubjectKind,
    SubjectRequirement,
    UsernameAttribute,
)
from kubescim.constants import (
    GROUP,
    LABEL_ACCESS_BINDING,
    LABEL_ACCESS_BINDING_NAMESPACE,
    LABEL_SHARD,
    MANAGED_BY_OPERATOR,
    PART_OF,
)

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
ANNOTATION_BINDING_UID = f"{GROUP}/access-binding-uid"
DEFAULT_SUBJECTS_PER_OBJECT = 500  # ~50 KiB per object; a write costs in proportion to its size
ObjectKind = Literal["RoleBinding", "ClusterRoleBinding"]
# (kind, namespace or "" for cluster-scoped, name)
ObjectKey = tuple[ObjectKind, str, str]
Body = dict[str, Any]
Subject = tuple[str, str]  # (kind, name)
Shards = tuple[tuple[Subject, ...], ...]


# --- selection --------------------------------------------------------------------------------


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every matchLabels pair and every expression holds. An empty
    selector matches everything."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.match_expressions or []:
        present = expression.key in labels
        values = set(expression.values or [])
        operator = expression.operator
        if operator == SelectorOperator.IN and not (present and labels[expression.key] in values):
            return False
        if operator == SelectorOperator.NOT_IN and present and labels[expression.key] in values:
            return False
        if operator == SelectorOperator.EXISTS and not present:
            return False
        if operator == SelectorOperator.DOES_NOT_EXIST and present:
            return False
    return True


def selected_teams(spec: AccessBindingSpec, team_labels: Mapping[str, Mapping[str, str]]) -> set[str]:
    """The teams a binding names, and the existing teams its teamSelector matches."""
    teams = set(spec.subjects.teams or [])
    selector = spec.subjects.team_selector
    if selector is not None:
        teams.update(name for name, labels in team_labels.items() if selector_matches(selector, labels))
    return teams


def scope_namespaces(spec: AccessBindingSpec, namespaces: Mapping[str, Mapping[str, str]]) -> list[str] | None:
    """The existing namespaces the binding applies in now, sorted; None for cluster-wide. A listed
    namespace that does not exist yet is left out, and joins when it is created."""
    scope = spec.scope
    if scope.cluster:
        return None
    chosen = {name for name in scope.namespaces or [] if name in namespaces}
    if scope.namespace_selector is not None:
        chosen.update(n for n, labels in namespaces.items() if selector_matches(scope.namespace_selector, labels))
    return sorted(chosen)


def kubernetes_username(resource: Mapping[str, Any], access: Access) -> str | None:
    """The username the cluster's authenticator gives this user (prefix + the chosen attribute), or
    None when the user lacks that attribute (then it can be no subject)."""
    attribute = access.username.attribute
    value: Any = None
    if attribute == UsernameAttribute.USER_NAME:
        value = resource.get("userName")
    elif attribute == UsernameAttribute.EXTERNAL_ID:
        value = resource.get("externalId")
    else:
        emails = [e for e in resource.get("emails") or [] if isinstance(e, dict) and e.get("value")]
        primary = [e for e in emails if e.get("primary") is True]
        value = (primary or emails or [{}])[0].get("value")
    if not isinstance(value, str) or not value:
        return None
    return access.username.prefix + value


@dataclass(frozen=True)
class Principal:
    """An active ScimUser as a Kubernetes subject."""

    user: str  # the ScimUser's object name
    username: str  # its Kubernetes username
    provider: str


@dataclass(frozen=True)
class Directory:
    """Who is where, as the operator's engine computed it: object names of active users."""

    principals: Mapping[str, Principal]
    team_members: Mapping[str, Iterable[str]]
    unit_members: Mapping[str, Iterable[str]]
    role_holders: Mapping[str, Iterable[str]]
    team_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    group_prefixes: tuple[str, ...] = ("",)
    # A Kubernetes username -> the active users holding it (two users can share one). None: not
    # kept, so a user's change cannot be applied on its own and bindings are recomputed whole.
    holders: Callable[[str], Iterable[str]] | None = None


@dataclass(frozen=True)
class BoundNames:
    """The teams, units and roles a binding's subjects were computed from: a change to their
    members is a change the binding may need."""

    teams: frozenset[str]
    units: frozenset[str]
    roles: frozenset[str]


def bound_names(spec: AccessBindingSpec, directory: Directory) -> BoundNames:
    return BoundNames(
        frozenset(selected_teams(spec, directory.team_labels)),
        frozenset(spec.subjects.business_units or []),
        frozenset(spec.subjects.roles or []),
    )


def _members(names: Iterable[str], index: Mapping[str, Iterable[str]]) -> set[str]:
    found: set[str] = set()
    for name in names:
        found.update(index.get(name, ()))
    return found


def subject_names(spec: AccessBindingSpec, directory: Directory) -> list[tuple[str, str]]:
    """(kind, name) of every subject, sorted and unique. Users: the active members' usernames
    (require Any: of any list given; All: of every list given). Groups: one per team and unit."""
    subjects = spec.subjects
    teams = selected_teams(spec, directory.team_labels)
    if spec.subject_kind == SubjectKind.GROUP:
        names = sorted(teams | set(subjects.business_units or []))
        return sorted({("Group", prefix + name) for name in names for prefix in directory.group_prefixes})
    sets: list[set[str]] = []
    if subjects.teams is not None or subjects.team_selector is not None:
        sets.append(_members(teams, directory.team_members))
    if subjects.business_units is not None:
        sets.append(_members(subjects.business_units, directory.unit_members))
    if subjects.roles is not None:
        sets.append(_members(subjects.roles, directory.role_holders))
    if not sets:
        return []
    users = set.intersection(*sets) if subjects.require == SubjectRequirement.ALL else set.union(*sets)
    # Built-in loops (map, filter, zip): a binding of everyone walks 100,000 users on every change.
    principals = filter(None, map(directory.principals.get, users))
    usernames = set(map(attrgetter("username"), principals))
    usernames.discard("")
    return list(zip(repeat("User"), sorted(usernames)))


def _in_any(user: str, names: Iterable[str], index: Mapping[str, Iterable[str]]) -> bool:
    return any(user in index.get(name, ()) for name in names)


def user_subject(spec: AccessBindingSpec, bound: BoundNames, directory: Directory, user: str) -> str | None:
    """The username one user (a ScimUser's object name) makes a subject of this User binding now,
    or None: subject_names for one user, with the teams the binding was computed from."""
    principal = directory.principals.get(user)
    if spec.subject_kind == SubjectKind.GROUP or principal is None or not principal.username:
        return None
    subjects = spec.subjects
    held: list[bool] = []
    if subjects.teams is not None or subjects.team_selector is not None:
        held.append(_in_any(user, bound.teams, directory.team_members))
    if subjects.business_units is not None:
        held.append(_in_any(user, bound.units, directory.unit_members))
    if subjects.roles is not None:
        held.append(_in_any(user, bound.roles, directory.role_holders))
    if not held:
        return None
    chosen = all(held) if subjects.require == SubjectRequirement.ALL else any(held)
    return principal.username if chosen else None


def subjects_now(
    spec: AccessBindingSpec,
    bound: BoundNames,
    directory: Directory,
    holders: Callable[[str], Iterable[str]],
    usernames: Iterable[str],
) -> dict[Subject, bool]:
    """For each username, whether it is one of the binding's subjects now: whether any active user
    holding it is one (of two users sharing a username, one leaving keeps the other's access)."""
    return {
        ("User", username): any(user_subject(spec, bound, directory, user) == username for user in holders(username))
        for username in usernames
        if username
    }


# --- objects ----------------------------------------------------------------------------------


def shard_count(subjects: int, limit: int) -> int:
    """A power of two giving each shard about half the limit: room for growth and hash unevenness."""
    if subjects <= limit:
        return 1
    return 1 << math.ceil(math.log2(subjects / (limit / 2)))


def subject_hash(name: str) -> int:
    """A subject's place among the shards, whatever their count (stored objects depend on it: keep)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def shard(subjects: list[tuple[str, str]], limit: int, hash_of: Callable[[str], int] = subject_hash) -> Shards:
    """Split sorted subjects into shards of at most `limit` each, stable under single changes.
    `hash_of`: subject_hash, or a cache of it (the controller's: hashing 100,000 names is most of
    recomputing a binding of everyone)."""
    shards = shard_count(len(subjects), limit)
    if shards == 1:
        return (tuple(subjects),)
    hashes = [hash_of(name) for _, name in subjects]
    while True:
        buckets: list[list[tuple[str, str]]] = [[] for _ in range(shards)]
        for subject, value in zip(subjects, hashes, strict=True):
            buckets[value % shards].append(subject)
        if max(len(b) for b in buckets) <= limit:
            return tuple(map(tuple, buckets))
        shards *= 2  # an unlucky hash spread: more shards (deterministic, so stable too)


def reshard(
    shards: Sequence[tuple[Subject, ...]],
    limit: int,
    wanted: Mapping[Subject, bool],
    hash_of: Callable[[str], int] = subject_hash,
) -> tuple[Shards, frozenset[int]] | None:
    """Put each subject in (True) or out of (False) shards that `shard` made, and say which shards
    changed. The result is exactly `shard` of the changed list; None when that would have another
    shard count (the list crossed a power of two, or a shard outgrew the limit): shard it whole."""
    count = len(shards)
    result = list(shards)
    size = sum(map(len, shards))
    touched: set[int] = set()
    for subject, present in wanted.items():
        index = 0 if count == 1 else hash_of(subject[1]) % count
        bucket = result[index]
        at = bisect_left(bucket, subject)
        there = at < len(bucket) and bucket[at] == subject
        if present == there:
            continue
        result[index] = (*bucket[:at], subject, *bucket[at:]) if present else bucket[:at] + bucket[at + 1 :]
        size += 1 if present else -1
        touched.add(index)
    if touched and (shard_count(size, limit) != count or any(len(result[i]) > limit for i in touched)):
        return None
    return tuple(result), frozenset(touched)


def object_name(binding_namespace: str, binding: str, index: int, cluster: bool) -> str:
    # A ClusterRoleBinding is cluster-scoped: the AccessBinding's namespace keeps two installs apart.
    return f"kubescim-{binding_namespace}-{binding}-{index}" if cluster else f"kubescim-{binding}-{index}"


def owner_labels(binding_namespace: str, binding: str) -> dict[str, str]:
    return {
        **PART_OF,
        **MANAGED_BY_OPERATOR,
        LABEL_ACCESS_BINDING: binding,
        LABEL_ACCESS_BINDING_NAMESPACE: binding_namespace,
    }


@dataclass(frozen=True)
class DesiredObject:
    """One RBAC object a binding is made of. Its body is built only when it must be written: a
    binding of 100,000 users is 100,000 subject entries, and a change rewrites one shard of them."""

    kind: ObjectKind
    namespace: str  # "" for cluster-scoped
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    role_ref: Mapping[str, str]
    subjects: tuple[tuple[str, str], ...]

    def body(self) -> Body:
        metadata: Body = {"name": self.name, "labels": dict(self.labels), "annotations": dict(self.annotations)}
        if self.namespace:
            metadata["namespace"] = self.namespace
        return {
            "apiVersion": RBAC_API_VERSION,
            "kind": self.kind,
            "metadata": metadata,
            "roleRef": dict(self.role_ref),
            "subjects": [{"kind": k, "apiGroup": RBAC_GROUP, "name": n} for k, n in self.subjects],
        }


def desired_objects(
    binding_namespace: str,
    binding: str,
    uid: str,
    spec: AccessBindingSpec,
    subjects: list[tuple[str, str]],
    namespaces: list[str] | None,
    limit: int = DEFAULT_SUBJECTS_PER_OBJECT,
    hash_of: Callable[[str], int] = subject_hash,
) -> dict[ObjectKey, DesiredObject]:
    """Every RBAC object the binding is made of. An empty binding keeps one object with no subjects,
    so its last member leaving is one update, and a member joining is one too."""
    return shard_objects(binding_namespace, binding, uid, spec, shard(subjects, limit, hash_of), namespaces)


def shard_objects(
    binding_namespace: str,
    binding: str,
    uid: str,
    spec: AccessBindingSpec,
    shards: Shards,
    namespaces: list[str] | None,
    only: Iterable[int] | None = None,
) -> dict[ObjectKey, DesiredObject]:
    """The RBAC objects of these shards (`only`: of those shard indexes), in every namespace of the
    scope. A shard's subjects are one tuple, shared by its object in every namespace."""
    cluster = namespaces is None
    kind: ObjectKind = "ClusterRoleBinding" if cluster else "RoleBinding"
    role_ref = {"apiGroup": RBAC_GROUP, "kind": spec.role_ref.kind.value, "name": spec.role_ref.name}
    owner = owner_labels(binding_namespace, binding)
    annotations = {ANNOTATION_BINDING_UID: uid}
    indexes = sorted(only) if only is not None else range(len(shards))
    labels = {index: {**owner, LABEL_SHARD: f"{index}-of-{len(shards)}"} for index in indexes}
    objects: dict[ObjectKey, DesiredObject] = {}
    for target_namespace in [""] if namespaces is None else namespaces:
        for index in indexes:
            name = object_name(binding_namespace, binding, index, cluster)
            objects[(kind, target_namespace, name)] = DesiredObject(
                kind, target_namespace, name, labels[index], annotations, role_ref, shards[index]
            )
    return objects


def role_allowed(kind: RoleRefKind, name: str, allowed: Iterable[str]) -> bool:
    """Whether the administrator's allow-list ("ClusterRole/view", "Role/deployer") has this role."""
    return f"{kind.value}/{name}" in set(allowed)


# --- the diff -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One write. `create`: the object does not exist; `update`: apply ours over it; `recreate`:
    its roleRef differs (immutable in Kubernetes), so delete then create; `delete`: not wanted."""

    verb: Literal["create", "update", "recreate", "delete"]
    key: ObjectKey
    body: Body | None = None
    uid: str | None = None


def subjects_of(body: Body) -> tuple[tuple[str, str], ...]:
    """An RBAC object's subjects as comparable pairs (the controller keeps them per observed object,
    computed once per watch event rather than on every plan)."""
    return tuple((str(s.get("kind")), str(s.get("name"))) for s in body.get("subjects") or [])


def _ours_differ(desired: DesiredObject, observed: Body, seen: tuple[tuple[str, str], ...]) -> bool:
    current = observed.get("metadata") or {}
    labels = current.get("labels") or {}
    annotations = current.get("annotations") or {}
    return (
        any(labels.get(k) != v for k, v in desired.labels.items())
        or any(annotations.get(k) != v for k, v in desired.annotations.items())
        or seen != desired.subjects
    )


def plan(
    desired: Mapping[ObjectKey, DesiredObject],
    observed: Mapping[ObjectKey, Body],
    observed_subjects: Mapping[ObjectKey, tuple[tuple[str, str], ...]] | None = None,
) -> list[Action]:
    """The writes that turn `observed` (the objects labelled as this binding's) into `desired`.
    Fields others add (labels, annotations) are not compared: they are theirs to keep.
    `observed_subjects`: subjects_of() of each observed object, if the caller keeps them."""
    actions: list[Action] = []
    known = observed_subjects or {}
    for key, wanted in sorted(desired.items()):
        current = observed.get(key)
        if current is None:
            actions.append(Action("create", key, wanted.body()))
            continue
        if (current.get("roleRef") or {}) != wanted.role_ref:
            actions.append(Action("recreate", key, wanted.body(), _uid(current)))
            continue
        seen = known.get(key)
        if _ours_differ(wanted, current, seen if seen is not None else subjects_of(current)):
            actions.append(Action("update", key, wanted.body(), _uid(current)))
    actions.extend(Action("delete", key, None, _uid(observed[key])) for key in sorted(observed) if key not in desired)
    return actions


def own_write(write: Action | None, event_type: str, observed: Body) -> bool:
    """Whether a watch event shows what our write in flight makes of the object: the watch can
    deliver it before the write's response does, and our own write is no reason to recompute."""
    if write is None:
        return False
    if event_type == "DELETED":
        return write.verb in ("delete", "recreate") and write.uid is not None and _uid(observed) == write.uid
    if write.body is None:
        return False
    metadata = write.body.get("metadata") or {}
    current = observed.get("metadata") or {}
    labels, annotations = current.get("labels") or {}, current.get("annotations") or {}
    return (
        (observed.get("roleRef") or {}) == write.body.get("roleRef")
        and subjects_of(observed) == subjects_of(write.body)
        and all(labels.get(k) == v for k, v in (metadata.get("labels") or {}).items())
        and all(annotations.get(k) == v for k, v in (metadata.get("annotations") or {}).items())
    )


def _uid(body: Body) -> str | None:
    uid = (body.get("metadata") or {}).get("uid")
    return str(uid) if uid else None
