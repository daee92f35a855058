"""The reconciliation plan: repairs by id, the breaker, policy, and convergence (plan, apply, plan = nothing)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from identity_operator.okta.plan import (
    ClusterGroup,
    ClusterUser,
    DeltaScope,
    OktaGroup,
    OktaUser,
    Plan,
    delta_reads_each_user,
    desired_spec,
    make_plan,
)
from kubescim.api.models import DeactivationPolicy
from kubescim.constants import ENTERPRISE_USER_URN


def okta_user(i: int, active: bool = True, **profile: Any) -> OktaUser:
    base = {"givenName": f"U{i}", "familyName": "Test", "email": f"u{i}@x.com", "department": "Eng"}
    return OktaUser(f"00u{i:017d}", None, active, f"u{i}@x.com", {**base, **profile})


def cluster_from(
    plan: Plan, users: list[ClusterUser], groups: list[ClusterGroup]
) -> tuple[list[ClusterUser], list[ClusterGroup]]:
    """What the cluster holds after the plan is applied (the Applier's effect, modelled)."""
    by_id = {u.scim_id: u for u in users}
    for scim_id, spec in plan.create_users:
        by_id[scim_id] = ClusterUser(f"obj-{scim_id}", scim_id, spec.dump())
    for user, spec in plan.update_users:
        by_id[user.scim_id] = ClusterUser(user.object_name, user.scim_id, spec.dump(), user.group_ids)
    if plan.blocked is None:
        for user in plan.deactivate_users:
            by_id[user.scim_id] = ClusterUser(
                user.object_name, user.scim_id, {**user.spec, "active": False}, user.group_ids
            )
        for user in plan.delete_users:
            del by_id[user.scim_id]
    group_by_id = {g.scim_id: g for g in groups}
    for scim_id, group in plan.create_groups:
        group_by_id[scim_id] = ClusterGroup(scim_id, scim_id, group.name, group.okta_id)
    for group, name, okta_id in plan.rename_groups:
        group_by_id[group.scim_id] = ClusterGroup(group.object_name, group.scim_id, name, okta_id)
    if plan.blocked is None:
        for group in plan.remove_groups:
            del group_by_id[group.scim_id]
    memberships = {u: set(by_id[u].group_ids) for u in by_id}
    # As the applier writes them: one label patch per user with all its joins and leaves.
    for u, groups_changed in plan.membership_changes().items():
        if u in memberships:
            memberships[u] |= {g for g, joined in groups_changed.items() if joined}
            memberships[u] -= {g for g, joined in groups_changed.items() if not joined}
    new_users = [
        ClusterUser(u.object_name, u.scim_id, u.spec, frozenset(memberships[u.scim_id])) for u in by_id.values()
    ]
    return new_users, list(group_by_id.values())


def test_missing_users_and_groups_are_created_with_members() -> None:
    users = [okta_user(1), okta_user(2)]
    group = OktaGroup("00g1", None, "Eng", frozenset({users[0].okta_id}))
    plan = make_plan("okta", users, [group], [], [])
    assert len(plan.create_users) == 2
    assert plan.create_users[0][1].extensions == {ENTERPRISE_USER_URN: {"department": "Eng"}}
    created_ids = {scim_id for scim_id, _ in plan.create_users}
    ((group_id, created_group),) = plan.create_groups
    assert created_group.name == "Eng"
    assert plan.add_members[group_id] <= created_ids
    assert len(plan.add_members[group_id]) == 1


def test_drift_is_corrected_and_unmanaged_attributes_kept() -> None:
    user = okta_user(1, title="Boss")
    current = ClusterUser(
        "o1",
        "s1",
        {
            "provider": "okta",
            "userName": "u1@x.com",
            "externalId": user.okta_id,
            "locale": "de-DE",
            "title": "Intern",
            "active": True,
        },
    )
    plan = make_plan("okta", [user], [], [current], [])
    ((_, spec),) = plan.update_users
    assert spec.title == "Boss"
    assert spec.locale == "de-DE"  # not managed by Okta: kept


def test_deactivated_suspended_and_unassigned_users_are_deactivated() -> None:
    users = [okta_user(i) for i in range(40)]
    cluster = [
        ClusterUser(
            f"o{i}",
            f"s{i}",
            {"provider": "okta", "userName": f"u{i}@x.com", "externalId": users[i].okta_id, "active": True},
        )
        for i in range(40)
    ]
    okta_now = [okta_user(0, active=False), *users[2:]]  # user 0 deactivated, user 1 unassigned
    plan = make_plan("okta", okta_now, [], cluster, [])
    assert {u.scim_id for u in plan.deactivate_users} == {"s0", "s1"}
    assert plan.blocked is None
    delete = make_plan("okta", okta_now, [], cluster, [], policy=DeactivationPolicy.DELETE)
    assert {u.scim_id for u in delete.delete_users} == {"s0", "s1"}


def test_breaker_trips_above_threshold_and_override_allows_once() -> None:
    users = [okta_user(i) for i in range(100)]
    cluster = [
        ClusterUser(
            f"o{i}",
            f"s{i}",
            {"provider": "okta", "userName": f"u{i}@x.com", "externalId": users[i].okta_id, "active": True},
        )
        for i in range(100)
    ]
    plan = make_plan("okta", users[:70], [], cluster, [])  # 30 unassigned: 30% > 25%
    assert plan.blocked is not None
    assert "30 of 100" in plan.blocked
    assert make_plan("okta", users[:76], [], cluster, []).blocked is None  # 24%
    assert make_plan("okta", users[:70], [], cluster, [], allow_mass_deactivation=True).blocked is None


def test_groups_are_matched_by_id_not_name() -> None:
    user = okta_user(1)
    current_user = ClusterUser(
        "o1",
        "s1",
        {"provider": "okta", "userName": "u1@x.com", "externalId": user.okta_id, "active": True},
        frozenset({"g-scim"}),
    )
    group = ClusterGroup("g-scim", "g-scim", "Old name", None)
    renamed = OktaGroup("00gA", "g-scim", "New name", frozenset())
    plan = make_plan("okta", [user], [renamed], [current_user], [group])
    assert plan.rename_groups == [(group, "New name", "00gA")]
    assert plan.remove_members == {"g-scim": {"s1"}}
    assert plan.create_groups == []
    unpushed = make_plan("okta", [user], [], [current_user], [group])
    assert unpushed.remove_groups == [group]


names = st.integers(0, 30)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[OktaUser], list[OktaGroup], list[ClusterUser], list[ClusterGroup]]:
    ids = sorted(draw(st.sets(names, max_size=25)))
    okta_users = [okta_user(i, active=draw(st.booleans()), title=draw(st.sampled_from(["A", "B", ""]))) for i in ids]
    cluster_ids = sorted(draw(st.sets(names, max_size=25)))
    cluster = [
        ClusterUser(
            f"o{i}",
            f"s{i}",
            {
                "provider": "okta",
                "userName": f"u{i}@x.com",
                "externalId": f"00u{i:017d}",
                "active": draw(st.booleans()),
                "title": draw(st.sampled_from(["A", "C"])),
            },
            frozenset(draw(st.sets(st.sampled_from(["g1", "g2", "g3"]), max_size=2))),
        )
        for i in cluster_ids
    ]
    groups = [
        OktaGroup(
            f"00g{j}",
            draw(st.sampled_from([None, f"g{j}"])),
            f"G{j}",
            frozenset(u.okta_id for u in okta_users if draw(st.booleans())),
        )
        for j in range(draw(st.integers(0, 3)))
    ]
    cluster_groups = [
        ClusterGroup(f"g{j}", f"g{j}", draw(st.sampled_from([f"G{j}", "other"])), None)
        for j in sorted(draw(st.sets(st.integers(1, 3), max_size=3)))
    ]
    return okta_users, groups, cluster, cluster_groups


@settings(max_examples=300, deadline=None)
@given(worlds(), st.sampled_from(list(DeactivationPolicy)))
def test_plan_then_apply_then_plan_finds_no_drift(
    world: tuple[list[OktaUser], list[OktaGroup], list[ClusterUser], list[ClusterGroup]], policy: DeactivationPolicy
) -> None:
    okta_users, okta_groups, cluster_users, cluster_groups = world
    plan = make_plan(
        "okta", okta_users, okta_groups, cluster_users, cluster_groups, policy=policy, allow_mass_deactivation=True
    )
    assert plan.blocked is None
    after_users, after_groups = cluster_from(plan, cluster_users, cluster_groups)
    # Pushed groups now carry their target id, as Okta would after the reconciler created them.
    ids = {g.external_id: g.scim_id for g in after_groups if g.external_id}
    pushed = [OktaGroup(g.okta_id, g.scim_id or ids.get(g.okta_id), g.name, g.members) for g in okta_groups]
    again = make_plan(
        "okta", okta_users, pushed, after_users, after_groups, policy=policy, allow_mass_deactivation=True
    )
    assert again.empty, again


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_a_blocked_plan_never_includes_its_destructive_part(
    world: tuple[list[OktaUser], list[OktaGroup], list[ClusterUser], list[ClusterGroup]],
) -> None:
    okta_users, okta_groups, cluster_users, cluster_groups = world
    plan = make_plan("okta", okta_users, okta_groups, cluster_users, cluster_groups, threshold_percent=0)
    after_users, _ = cluster_from(plan, cluster_users, cluster_groups)
    if plan.blocked is not None:
        before_active = {u.scim_id for u in cluster_users if u.active}
        after_active = {u.scim_id for u in after_users if u.active}
        assert before_active <= after_active


def test_users_and_groups_okta_does_not_back_are_removed_unless_kept() -> None:
    users = [okta_user(i) for i in range(30)]
    cluster = [
        ClusterUser(f"o{i}", f"s{i}", {"provider": "okta", "userName": f"u{i}@x.com", "externalId": users[i].okta_id})
        for i in range(30)
    ]
    stray = [
        ClusterUser("o-none", "s-none", {"provider": "okta", "userName": "noid@x.com", "active": True}),
        ClusterUser("o-gone", "s-gone", {"provider": "okta", "userName": "gone@x.com", "externalId": "00unotinokta"}),
    ]
    unpushed = ClusterGroup("g-local", "g-local", "Made by another client", None)
    plan = make_plan("okta", users, [], cluster + stray, [unpushed])
    assert {u.scim_id for u in plan.deactivate_users} == {"s-none", "s-gone"}
    assert plan.unbacked_users == plan.deactivate_users
    assert plan.remove_groups == [unpushed]
    assert plan.blocked is None
    deleted = make_plan("okta", users, [], cluster + stray, [unpushed], policy=DeactivationPolicy.DELETE)
    assert {u.scim_id for u in deleted.delete_users} == {"s-none", "s-gone"}
    kept = make_plan("okta", users, [], cluster + stray, [unpushed], remove_unbacked=False)
    assert kept.destructive == 0
    assert kept.remove_groups == []
    # The breaker counts them like any other deactivation.
    many = [ClusterUser(f"x{i}", f"x{i}", {"provider": "okta", "userName": f"x{i}@x.com"}) for i in range(20)]
    assert make_plan("okta", users, [], cluster + many, []).blocked is not None


def test_a_delta_plan_touches_only_what_it_read_and_agrees_with_the_full_plan() -> None:
    """A delta run knows Okta's state for the users and groups it read: the rest of the cluster is
    left alone (not unbacked, not removed), and what it does repair is what a full run would."""
    okta_users = [
        OktaUser(f"00u{i}", f"s{i}", True, f"u{i}@example.com", {"email": f"u{i}@example.com"}) for i in range(30)
    ]
    specs = {u.okta_id: desired_spec("okta", u, None).dump() for u in okta_users}
    cluster = [ClusterUser(f"n{i}", f"s{i}", specs[f"00u{i}"]) for i in range(30)]
    pushed = [ClusterGroup("g1", "g1", "One", "00g1"), ClusterGroup("g2", "g2", "Two", "00g2")]
    unpushed = ClusterGroup("g3", "g3", "Three", "00g3")
    # In Okta: u1 retitled, u2 unassigned, group Two gains u5; group Three no longer pushed.
    retitled = OktaUser("00u1", "s1", True, "u1@example.com", {"email": "u1@example.com", "title": "Boss"})
    now = [retitled if u.okta_id == "00u1" else u for u in okta_users if u.okta_id != "00u2"]
    two = OktaGroup("00g2", "g2", "Two", frozenset({"00u5"}))
    one = OktaGroup("00g1", "g1", "One", frozenset())
    full = make_plan("okta", now, [one, two], cluster, [*pushed, unpushed])
    scope = DeltaScope(users=frozenset({"00u1", "00u2"}), pushed=frozenset({"00g1", "00g2", "g1", "g2"}))
    delta = make_plan("okta", [retitled], [two], cluster, [*pushed, unpushed], scope=scope)
    for plan in (full, delta):
        assert [(u.scim_id, s.title) for u, s in plan.update_users] == [("s1", "Boss")]
        assert [u.scim_id for u in plan.deactivate_users] == ["s2"]
        assert plan.add_members == {"g2": {"s5"}}
        assert [g.scim_id for g in plan.remove_groups] == ["g3"]
        assert plan.blocked is None
    assert delta.unchanged == 0  # the 27 users it did not read are not even looked at


def test_a_delta_plan_still_counts_the_breaker_against_the_whole_provider() -> None:
    cluster = [ClusterUser(f"n{i}", f"s{i}", {"userName": f"u{i}", "externalId": f"00u{i}"}) for i in range(100)]
    gone = frozenset(f"00u{i}" for i in range(20))  # 20 of 100 unassigned: under 25 %
    plan = make_plan("okta", [], [], cluster, [], scope=DeltaScope(users=gone, pushed=frozenset()))
    assert plan.blocked is None
    assert len(plan.deactivate_users) == 20
    gone = frozenset(f"00u{i}" for i in range(30))
    plan = make_plan("okta", [], [], cluster, [], scope=DeltaScope(users=gone, pushed=frozenset()))
    assert plan.blocked is not None
    assert "30 of 100" in plan.blocked


def test_a_delta_reads_touched_users_one_by_one_while_that_is_fewer_calls_than_listing() -> None:
    assert delta_reads_each_user(35, 100_000, 500)  # 35 GETs, not 200 pages
    assert delta_reads_each_user(200, 100_000, 500)
    assert not delta_reads_each_user(201, 100_000, 500)
    assert not delta_reads_each_user(35, 10_000, 500)  # 20 pages are fewer
    assert delta_reads_each_user(1, 0, 500)  # an empty cluster: one GET, or one page
    assert not delta_reads_each_user(2, 300, 500)
