"""Roles and access bindings as pure functions: role resolution, subjects, sharding and the diff."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from identity_operator.access.plan import (
    Action,
    Directory,
    Principal,
    bound_names,
    desired_objects,
    kubernetes_username,
    own_write,
    plan,
    reshard,
    role_allowed,
    scope_namespaces,
    selector_matches,
    shard,
    shard_count,
    shard_objects,
    subject_names,
    subjects_now,
    user_subject,
)
from identity_operator.roles import Catalog, RoleRule, resolve_role, undeclared
from kubescim.api.models import (
    Access,
    AccessBindingSpec,
    LabelSelector,
    RoleMappingSpec,
    RoleRefKind,
    RoleResolution,
)
from kubescim.matching import UserFacts

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def role_rule(name: str, role: str, spec: dict[str, Any]) -> RoleRule:
    return RoleRule.compile(name, RoleMappingSpec.model_validate({**spec, "role": role}))


def user(title: str = "Engineer", department: str = "Engineering", active: bool = True, **extra: Any) -> UserFacts:
    resource = {"userName": "ada@example.com", "title": title, ENTERPRISE: {"department": department}, **extra}
    return UserFacts("ada", "okta", "ada@example.com", active, resource, ("Platform Admins",))


RULES = [
    role_rule("engineers", "developer", {"attribute": "department", "match": {"value": "Engineering"}}),
    role_rule("managers", "lead", {"attribute": "title", "match": {"value": "Manager"}, "priority": 50}),
    role_rule("admins", "admin", {"source": "Group", "match": {"value": "Platform Admins"}, "priority": 10}),
]
CATALOG = Catalog({"developer": 50, "lead": 80, "admin": 100})


def test_highest_permission_picks_the_highest_rank_whatever_the_priority() -> None:
    verdict = resolve_role(user("Manager"), RULES, CATALOG)
    assert verdict is not None
    assert verdict.role == "admin"  # rank 100, though its rule has the lowest priority
    assert verdict.candidates == ("admin", "developer", "lead")
    assert [p.rule for p in verdict.sources] == ["admins"]
    assert verdict.sources[0].group == "Platform Admins"


def test_order_picks_the_first_matching_rule_by_priority() -> None:
    verdict = resolve_role(user("Manager"), RULES, Catalog(CATALOG.ranks, RoleResolution.ORDER))
    assert verdict is not None
    assert verdict.role == "developer"  # priority 100 beats 50 and 10
    assert verdict.resolution == RoleResolution.ORDER


def test_the_result_does_not_depend_on_rule_order() -> None:
    forward = resolve_role(user("Manager"), RULES, CATALOG)
    backward = resolve_role(user("Manager"), list(reversed(RULES)), CATALOG)
    assert forward == backward


def test_an_undeclared_role_is_never_assigned_and_is_reported() -> None:
    verdict = resolve_role(user("Manager"), RULES, Catalog({"developer": 50}))
    assert verdict is not None
    assert verdict.role == "developer"
    assert verdict.candidates == ("developer",)
    assert undeclared(RULES[1], {"okta": Catalog({"developer": 50}), "entra": CATALOG}) == ["okta"]


def test_inactive_users_hold_no_role_unless_the_rule_selects_all() -> None:
    assert resolve_role(user(active=False), RULES, CATALOG) is None
    every = role_rule("all", "developer", {"attribute": "department", "match": {"operator": "Any"}, "users": "All"})
    verdict = resolve_role(user(active=False), [every], CATALOG)
    assert verdict is not None
    assert verdict.role == "developer"


def test_a_rank_tie_goes_to_the_role_whose_rule_comes_first() -> None:
    rules = [
        role_rule("b", "beta", {"attribute": "title", "match": {"operator": "Any"}, "priority": 200}),
        role_rule("a", "alpha", {"attribute": "title", "match": {"operator": "Any"}, "priority": 100}),
    ]
    verdict = resolve_role(user(), rules, Catalog({"alpha": 5, "beta": 5}))
    assert verdict is not None
    assert verdict.role == "beta"


def test_kubernetes_username_follows_the_provider_setting() -> None:
    resource = {
        "userName": "ada",
        "externalId": "00u1",
        "emails": [{"value": "a@home.example"}, {"value": "ada@example.com", "primary": True}],
    }
    access = Access.model_validate({"username": {"attribute": "email", "prefix": "okta:"}})
    assert kubernetes_username(resource, access) == "okta:ada@example.com"
    assert kubernetes_username(resource, Access()) == "ada"
    external = Access.model_validate({"username": {"attribute": "externalId"}})
    assert kubernetes_username(resource, external) == "00u1"
    assert kubernetes_username({"userName": "x"}, external) is None


def test_label_selectors_follow_kubernetes_semantics() -> None:
    labels = {"tier": "apps", "team": "payments"}
    cases = [
        ({"matchLabels": {"tier": "apps"}}, True),
        ({"matchLabels": {"tier": "db"}}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["payments", "search"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["payments"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
        ({}, True),
    ]
    for selector, expected in cases:
        assert selector_matches(LabelSelector.model_validate(selector), labels) is expected, selector


def binding(**spec: Any) -> AccessBindingSpec:
    return AccessBindingSpec.model_validate(
        {"roleRef": {"name": "edit"}, "scope": {"namespaces": ["apps"]}, "subjects": {"teams": ["eng"]}, **spec}
    )


DIRECTORY = Directory(
    principals={
        "u1": Principal("u1", "okta:ada", "okta"),
        "u2": Principal("u2", "okta:alan", "okta"),
        "u3": Principal("u3", "okta:grace", "okta"),
    },
    team_members={"eng": ["u1", "u2", "u-inactive"], "ops": ["u3"]},
    unit_members={"rnd": ["u1", "u2", "u3"]},
    role_holders={"lead": ["u1", "u3"]},
    team_labels={"eng": {"kind": "product"}, "ops": {"kind": "platform"}},
    group_prefixes=("okta:",),
)


def test_subjects_are_the_active_members_of_any_or_all_lists() -> None:
    assert subject_names(binding(), DIRECTORY) == [("User", "okta:ada"), ("User", "okta:alan")]
    any_of = binding(subjects={"teams": ["ops"], "roles": ["lead"]})
    assert [n for _, n in subject_names(any_of, DIRECTORY)] == ["okta:ada", "okta:grace"]
    all_of = binding(subjects={"businessUnits": ["rnd"], "roles": ["lead"], "teams": ["eng"], "require": "All"})
    assert [n for _, n in subject_names(all_of, DIRECTORY)] == ["okta:ada"]
    selected = binding(subjects={"teamSelector": {"matchLabels": {"kind": "platform"}}})
    assert [n for _, n in subject_names(selected, DIRECTORY)] == ["okta:grace"]
    groups = binding(subjects={"teams": ["eng"], "businessUnits": ["rnd"]}, subjectKind="Group")
    assert subject_names(groups, DIRECTORY) == [("Group", "okta:eng"), ("Group", "okta:rnd")]


def test_scope_lists_existing_namespaces_and_selector_matches() -> None:
    namespaces = {"apps": {}, "payments": {"tier": "apps"}, "db": {"tier": "data"}}
    spec = binding(scope={"namespaces": ["apps", "not-yet"], "namespaceSelector": {"matchLabels": {"tier": "apps"}}})
    assert scope_namespaces(spec, namespaces) == ["apps", "payments"]
    assert scope_namespaces(binding(scope={"cluster": True}), namespaces) is None


def test_objects_are_labelled_and_split_within_the_limit() -> None:
    subjects = [("User", f"okta:user{i:03d}") for i in range(25)]
    objects = desired_objects("kubescim", "eng-edit", "uid-1", binding(), subjects, ["apps", "web"], limit=10)
    assert {key[1] for key in objects} == {"apps", "web"}
    per_namespace = [o.body() for key, o in objects.items() if key[1] == "apps"]
    assert all(len(o["subjects"]) <= 10 for o in per_namespace)
    assert sorted(s["name"] for o in per_namespace for s in o["subjects"]) == [n for _, n in subjects]
    first = per_namespace[0]
    assert first["metadata"]["labels"]["identity.kubescim.dev/access-binding"] == "eng-edit"
    assert first["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
    cluster = desired_objects("kubescim", "eng-edit", "uid-1", binding(), subjects[:3], None)
    assert [key[0] for key in cluster] == ["ClusterRoleBinding"]
    assert next(iter(cluster))[2] == "kubescim-kubescim-eng-edit-0"


@settings(max_examples=200, deadline=None)
@given(
    names=st.sets(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=12), min_size=0, max_size=400),
    limit=st.integers(min_value=1, max_value=50),
    data=st.data(),
)
def test_sharding_one_change_rewrites_at_most_one_object(names: set[str], limit: int, data: st.DataObject) -> None:
    subjects = sorted(("User", n) for n in names)
    before = shard(subjects, limit)
    assert sum(len(b) for b in before) == len(subjects)
    assert all(len(b) <= limit for b in before)
    extra = data.draw(st.text(alphabet="klmnop", min_size=1, max_size=12))
    after = shard(sorted([*subjects, ("User", extra)]), limit)
    if len(after) == len(before):  # the shard count changes only when the count doubles past it
        assert sum(1 for b, a in zip(before, after, strict=True) if b != a) == 1


SPECS = [
    binding(subjects={"teams": ["t0", "t1"]}),
    binding(subjects={"teams": ["t0"], "roles": ["r0"]}),
    binding(subjects={"businessUnits": ["b0"], "teams": ["t1"], "require": "All"}),
    binding(subjects={"teamSelector": {"matchLabels": {"kind": "x"}}}),
    binding(subjects={"teamSelector": {}, "roles": ["r1"], "require": "All"}),
]
USERS = [f"u{i}" for i in range(12)]
# A small pool of usernames: users come to share one, and one of them leaving must keep the other.
USERNAMES = [f"okta:{c}" for c in "abcdefgh"]
CHANGES = st.one_of(
    st.tuples(st.just("team"), st.sampled_from(["t0", "t1", "t2"]), st.booleans()),
    st.tuples(st.just("unit"), st.sampled_from(["b0", "b1"]), st.booleans()),
    st.tuples(st.just("role"), st.sampled_from(["r0", "r1"]), st.booleans()),
    st.tuples(st.just("active"), st.sampled_from([None, *USERNAMES]), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    limit=st.integers(min_value=1, max_value=6),
    steps=st.lists(st.tuples(st.sampled_from(USERS), CHANGES), max_size=40),
    start=st.lists(st.tuples(st.sampled_from(USERS), CHANGES), max_size=40),
)
def test_applying_users_changes_to_the_shards_equals_recomputing_the_binding(
    spec: AccessBindingSpec, limit: int, steps: list[tuple[str, Any]], start: list[tuple[str, Any]]
) -> None:
    principals: dict[str, Principal] = {}
    members: dict[str, dict[str, set[str]]] = {"team": {}, "unit": {}, "role": {}}

    def change(user: str, what: tuple[str, Any, bool]) -> None:
        kind, target, on = what
        if kind == "active":
            if target is None or not on:
                principals.pop(user, None)
            else:
                principals[user] = Principal(user, target, "okta")
        else:
            group = members[kind].setdefault(target, set())
            (group.add if on else group.discard)(user)

    def directory() -> Directory:
        holders: dict[str, list[str]] = {}
        for p in principals.values():
            holders.setdefault(p.username, []).append(p.user)
        return Directory(
            principals=dict(principals),
            team_members=members["team"],
            unit_members=members["unit"],
            role_holders=members["role"],
            team_labels={"t0": {"kind": "x"}, "t1": {}, "t2": {"kind": "x"}},
            holders=lambda name: holders.get(name, ()),
        )

    for user, what in start:
        change(user, what)
    bound = bound_names(spec, directory())
    shards = shard(subject_names(spec, directory()), limit)
    for user, what in steps:
        before = principals.get(user)
        change(user, what)
        now = directory()
        after = principals.get(user)
        usernames = {p.username for p in (before, after) if p is not None}
        assert now.holders is not None
        moved = reshard(shards, limit, subjects_now(spec, bound, now, now.holders, usernames))
        whole = shard(subject_names(spec, now), limit)
        if moved is not None:
            assert moved[0] == whole
            assert moved[1] == {i for i in range(len(whole)) if whole[i] != shards[i]}
        elif len(whole) == len(shards) == shard_count(sum(map(len, whole)), limit):
            raise AssertionError("gave up on a change that keeps the shard count")
        shards = whole


def test_a_user_is_a_subject_by_the_binding_s_own_lists() -> None:
    bound = bound_names(binding(), DIRECTORY)
    assert user_subject(binding(), bound, DIRECTORY, "u1") == "okta:ada"
    assert user_subject(binding(), bound, DIRECTORY, "u3") is None  # in ops, not eng
    assert user_subject(binding(), bound, DIRECTORY, "u-inactive") is None  # a member, but no principal
    groups = binding(subjectKind="Group")
    assert user_subject(groups, bound_names(groups, DIRECTORY), DIRECTORY, "u1") is None


def test_reshard_writes_one_shard_per_change_and_gives_up_when_the_count_changes() -> None:
    subjects = [("User", f"okta:user{i:03d}") for i in range(40)]
    shards = shard(subjects, 10)
    assert len(shards) == 8
    moved = reshard(shards, 10, {("User", "okta:user007"): False, ("User", "okta:new"): True})
    assert moved is not None
    assert moved[0] == shard(sorted({*subjects, ("User", "okta:new")} - {("User", "okta:user007")}), 10)
    assert 1 <= len(moved[1]) <= 2
    assert reshard(shards, 10, {("User", "okta:user007"): True}) == (shards, frozenset())  # already there
    many = {("User", f"okta:more{i}"): True for i in range(40)}
    assert reshard(shards, 10, many) is None  # 80 subjects need 16 shards: recompute whole
    objects = shard_objects("kubescim", "b", "uid", binding(), moved[0], ["apps", "web"], moved[1])
    assert len(objects) == 2 * len(moved[1])  # only the changed shards, in each namespace


def test_shard_count_is_a_power_of_two_with_room_to_grow() -> None:
    assert shard_count(0, 1000) == 1
    assert shard_count(1000, 1000) == 1
    assert shard_count(1001, 1000) == 4
    assert shard_count(10_000, 1000) == 32


def test_plan_writes_only_what_differs_and_recreates_on_a_role_change() -> None:
    subjects = [("User", "okta:ada")]
    desired = desired_objects("ks", "b", "uid", binding(), subjects, ["apps"])
    (key, wanted) = next(iter(desired.items()))
    body = wanted.body()
    assert [(a.verb, a.body) for a in plan(desired, {})] == [("create", body)]
    observed = {
        key: {
            **body,
            "metadata": {**body["metadata"], "uid": "u-1", "labels": {**body["metadata"]["labels"], "extra": "gitops"}},
        }
    }
    assert plan(desired, observed) == []  # labels someone else added are theirs
    changed = desired_objects("ks", "b", "uid", binding(), [("User", "okta:alan")], ["apps"])
    assert [(a.verb, a.uid) for a in plan(changed, observed)] == [("update", "u-1")]
    other_role = desired_objects("ks", "b", "uid", binding(roleRef={"name": "view"}), subjects, ["apps"])
    assert [a.verb for a in plan(other_role, observed)] == ["recreate"]
    assert [(a.verb, a.key) for a in plan({}, observed)] == [("delete", key)]


def test_an_event_is_our_own_write_only_if_it_carries_what_we_wrote() -> None:
    desired = desired_objects("ks", "b", "uid", binding(), [("User", "okta:ada")], ["apps"])
    key, wanted = next(iter(desired.items()))
    write = Action("update", key, wanted.body(), "u-1")
    stored = wanted.body()
    stored["metadata"] = {**stored["metadata"], "uid": "u-1", "labels": {**stored["metadata"]["labels"], "x": "y"}}
    assert own_write(write, "MODIFIED", stored)  # what the API server made of it (labels of others kept)
    assert not own_write(None, "MODIFIED", stored)  # nothing in flight
    assert not own_write(write, "MODIFIED", {**stored, "subjects": []})  # someone else's edit
    assert not own_write(write, "MODIFIED", {**stored, "roleRef": {**stored["roleRef"], "name": "view"}})
    relabelled = {**stored, "metadata": {**stored["metadata"], "labels": {}}}
    assert not own_write(write, "MODIFIED", relabelled)  # our labels taken off
    assert not own_write(write, "DELETED", stored)  # an update deletes nothing
    assert own_write(Action("recreate", key, wanted.body(), "u-1"), "DELETED", stored)
    assert own_write(Action("delete", key, None, "u-1"), "DELETED", stored)
    other = {**stored, "metadata": {**stored["metadata"], "uid": "u-2"}}
    assert not own_write(Action("delete", key, None, "u-1"), "DELETED", other)  # another incarnation


def test_the_allow_list_names_kind_and_role() -> None:
    allowed = ["ClusterRole/view", "Role/deployer"]
    assert role_allowed(RoleRefKind.CLUSTER_ROLE, "view", allowed)
    assert not role_allowed(RoleRefKind.ROLE, "view", allowed)
    assert not role_allowed(RoleRefKind.CLUSTER_ROLE, "cluster-admin", allowed)
    assert role_allowed(RoleRefKind.ROLE, "deployer", allowed)
