"""The operator end to end: Okta-style pushes through the gateway, rules applied like kubectl does, and
Teams / BusinessUnits / user labels observed in the real API server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubescim.constants import (
    API_VERSION,
    BUSINESS_UNIT_LABEL_PREFIX,
    BUSINESS_UNITS,
    IDENTITY_PROVIDERS,
    LABEL_CREATED_BY,
    SCIM_USERS,
    TEAM_LABEL_PREFIX,
    TEAM_MAPPINGS,
    TEAMS,
)
from kubescim.kube import EVENTS, ApiError
from tests.e2e.conftest import ENTERPRISE, PATCH_URN, Stack, eventually


async def users_with_label(stack: Stack, label: str) -> set[str]:
    items, _ = await stack.kube.list(SCIM_USERS, stack.namespace, label_selector=label)
    return {i["spec"]["userName"] for i in items}


async def status_members(stack: Stack, kind: str, name: str) -> set[str]:
    resource = TEAMS if kind == "Team" else BUSINESS_UNITS
    try:
        obj = await stack.kube.get(resource, name, stack.namespace)
    except ApiError as error:
        if error.not_found:
            raise AssertionError(f"{kind} {name} does not exist") from None
        raise
    status = obj.get("status") or {}
    assert status.get("memberCount") == len(status.get("members") or []), status
    return {m["userName"] for m in status.get("members") or []}


async def test_pushed_group_and_rule_make_a_team(stack: Stack) -> None:
    stack.start_operator()
    async with stack.scim() as client:
        alice = await stack.create_user(client, "alice@example.com")
        bob = await stack.create_user(client, "bob@example.com")
        await stack.create_user(client, "carol@example.com")
        await stack.create_group(client, "Bifrost Playground: Alpha Team", [alice["id"], bob["id"]])
    await stack.apply_mapping(
        "Team",
        "playground",
        {
            "source": "Group",
            "match": {"value": "Bifrost Playground: ${*} Team"},
            "target": {"nameTemplate": "${*}"},
        },
    )

    async def converged() -> None:
        assert await status_members(stack, "Team", "alpha") == {"alice@example.com", "bob@example.com"}
        assert await users_with_label(stack, f"{TEAM_LABEL_PREFIX}alpha") == {"alice@example.com", "bob@example.com"}

    await eventually(converged)
    team = await stack.kube.get(TEAMS, "alpha", stack.namespace)
    assert team["spec"]["displayName"] == "Alpha"
    assert team["metadata"]["labels"][LABEL_CREATED_BY] == "kubescim-operator"
    assert team["status"]["origin"] == "Mapping"
    assert team["status"]["selector"] == f"{TEAM_LABEL_PREFIX}alpha"
    member = next(m for m in team["status"]["members"] if m["userName"] == "alice@example.com")
    assert member["sources"] == [{"kind": "Group", "rule": "playground", "group": "Bifrost Playground: Alpha Team"}]
    user = (await stack.kube.list(SCIM_USERS, stack.namespace, label_selector=f"{TEAM_LABEL_PREFIX}alpha"))[0][0]
    assert user["status"]["teams"][0]["name"] == "alpha"
    assert user["status"]["groups"] == ["Bifrost Playground: Alpha Team"]


async def test_department_change_moves_user_between_business_units(stack: Stack) -> None:
    stack.start_operator()
    await stack.apply_mapping(
        "BusinessUnit",
        "by-department",
        {
            "attribute": "department",
            "match": {"value": "*"},
            "target": {"nameTemplate": "${*}"},
        },
    )
    async with stack.scim() as client:
        user = await stack.create_user(client, "dana@example.com", **{ENTERPRISE: {"department": "Engineering"}})
        await eventually(lambda: _expect(status_members(stack, "BusinessUnit", "engineering"), {"dana@example.com"}))
        put = dict(user)
        put[ENTERPRISE] = {"department": "Sales"}
        response = await client.put(f"/Users/{user['id']}", json=put)
        assert response.status_code == 200

    async def moved() -> None:
        assert await users_with_label(stack, f"{BUSINESS_UNIT_LABEL_PREFIX}sales") == {"dana@example.com"}
        assert await users_with_label(stack, f"{BUSINESS_UNIT_LABEL_PREFIX}engineering") == set()
        assert await status_members(stack, "BusinessUnit", "sales") == {"dana@example.com"}

    await eventually(moved)
    # The emptied operator-created unit is removed (no rule produces "engineering" any more).
    await eventually(lambda: _expect_absent(stack, BUSINESS_UNITS, "engineering"))


async def test_deactivation_removes_from_everything_and_reactivation_restores(stack: Stack) -> None:
    stack.start_operator()
    await stack.apply_mapping(
        "Team",
        "everyone",
        {
            "attribute": "userName",
            "match": {"operator": "Any"},
            "target": {"name": "everyone"},
        },
    )
    async with stack.scim() as client:
        user = await stack.create_user(client, "erin@example.com")
        await eventually(lambda: _expect(status_members(stack, "Team", "everyone"), {"erin@example.com"}))
        for active, expected in ((False, set()), (True, {"erin@example.com"})):
            response = await client.patch(
                f"/Users/{user['id']}",
                json={"schemas": [PATCH_URN], "Operations": [{"op": "replace", "value": {"active": active}}]},
            )
            assert response.status_code == 200
            await eventually(lambda e=expected: _expect(users_with_label(stack, f"{TEAM_LABEL_PREFIX}everyone"), e))
            await eventually(lambda e=expected: _expect(status_members(stack, "Team", "everyone"), e))


async def test_deleting_a_rule_removes_its_empty_operator_created_team(stack: Stack) -> None:
    stack.start_operator()
    await stack.apply_mapping(
        "Team",
        "titled",
        {
            "attribute": "title",
            "match": {"value": "Engineer"},
            "target": {"name": "engineers"},
        },
    )
    async with stack.scim() as client:
        await stack.create_user(client, "finn@example.com", title="engineer")
    await eventually(lambda: _expect(status_members(stack, "Team", "engineers"), {"finn@example.com"}))
    await stack.kube.delete(TEAM_MAPPINGS, "titled", stack.namespace)
    await eventually(lambda: _expect_absent(stack, TEAMS, "engineers"))
    assert await users_with_label(stack, f"{TEAM_LABEL_PREFIX}engineers") == set()


async def test_hand_made_team_keeps_manual_members_and_rolls_up(stack: Stack) -> None:
    stack.start_operator()
    async with stack.scim() as client:
        await stack.create_user(client, "gina@example.com")
        await stack.create_user(client, "hank@example.com", title="SRE")
    await stack.kube.create(
        BUSINESS_UNITS,
        {
            "apiVersion": API_VERSION,
            "kind": "BusinessUnit",
            "metadata": {"name": "platform"},
            "spec": {"displayName": "Platform"},
        },
        stack.namespace,
    )
    await stack.kube.create(
        TEAMS,
        {
            "apiVersion": API_VERSION,
            "kind": "Team",
            "metadata": {"name": "oncall"},
            "spec": {
                "displayName": "On-call",
                "businessUnit": "platform",
                "members": [{"userName": "GINA@example.com"}],
            },
        },
        stack.namespace,
    )
    await stack.apply_mapping(
        "Team", "sre", {"attribute": "title", "match": {"value": "sre"}, "target": {"name": "oncall"}}
    )

    async def converged() -> None:
        assert await status_members(stack, "Team", "oncall") == {"gina@example.com", "hank@example.com"}
        assert await status_members(stack, "BusinessUnit", "platform") == {"gina@example.com", "hank@example.com"}

    await eventually(converged)
    team = await stack.kube.get(TEAMS, "oncall", stack.namespace)
    assert team["spec"]["members"] == [{"userName": "GINA@example.com"}]  # never edited by the operator
    assert team["status"]["origin"] == "Manual"
    unit = await stack.kube.get(BUSINESS_UNITS, "platform", stack.namespace)
    assert unit["status"]["teams"] == ["oncall"]
    # Removing the rule keeps the hand-made team and its manual member.
    await stack.kube.delete(TEAM_MAPPINGS, "sre", stack.namespace)
    await eventually(lambda: _expect(status_members(stack, "Team", "oncall"), {"gina@example.com"}))


async def test_regex_capture_creates_one_team_per_distinct_value(stack: Stack) -> None:
    stack.start_operator()
    await stack.apply_mapping(
        "Team",
        "squads",
        {
            "attribute": "title",
            "match": {"operator": "Regex", "value": r"^(\w+) squad$"},
            "target": {"nameTemplate": "squad-${1}"},
        },
    )
    async with stack.scim() as client:
        for i, title in enumerate(["Red squad", "Blue squad", "red SQUAD", "Lead"]):
            await stack.create_user(client, f"user{i}@example.com", title=title)

    async def converged() -> None:
        items, _ = await stack.kube.list(TEAMS, stack.namespace)
        assert sorted(t["metadata"]["name"] for t in items) == ["squad-blue", "squad-red"]
        assert await status_members(stack, "Team", "squad-red") == {"user0@example.com", "user2@example.com"}

    await eventually(converged)


async def test_killed_operator_restarts_and_converges_without_duplicates(stack: Stack) -> None:
    await stack.apply_mapping(
        "Team",
        "by-title",
        {
            "attribute": "title",
            "match": {"operator": "Any"},
            "target": {"nameTemplate": "t-${*}"},
        },
    )
    async with stack.scim() as client:
        await asyncio.gather(*(stack.create_user(client, f"u{i}@example.com", title=f"T{i % 7}") for i in range(120)))
    operator = stack.start_operator()
    await asyncio.sleep(1.0)  # mid-way through the initial recomputation
    operator.kill()
    stack.start_operator()

    async def converged() -> None:
        items, _ = await stack.kube.list(TEAMS, stack.namespace)
        names = [t["metadata"]["name"] for t in items]
        assert sorted(names) == [f"t-t{i}" for i in range(7)]
        counts = [(t.get("status") or {}).get("memberCount") for t in items]
        assert sum(c or 0 for c in counts) == 120

    await eventually(converged, timeout=60)


async def _expect(awaitable: Any, expected: set[str]) -> None:
    assert await awaitable == expected


async def _expect_absent(stack: Stack, resource: Any, name: str) -> None:
    try:
        await stack.kube.get(resource, name, stack.namespace)
    except ApiError as error:
        assert error.not_found
        return
    raise AssertionError(f"{name} still exists")


@pytest.mark.slow
async def test_standby_takes_over_when_the_active_operator_is_killed(stack: Stack) -> None:
    await stack.apply_mapping(
        "Team",
        "by-title",
        {
            "attribute": "title",
            "match": {"operator": "Any"},
            "target": {"nameTemplate": "t-${*}"},
        },
    )
    async with stack.scim() as client:
        semaphore = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with semaphore:
                await stack.create_user(client, f"s{i}@example.com", title=f"T{i % 9}")

        await asyncio.gather(*(create(i) for i in range(300)))
    active = stack.start_operator(priority=100)
    standby = stack.start_operator(priority=50)  # pauses while a higher-priority peer is alive

    async def started() -> None:
        assert await users_with_label(stack, f"{TEAM_LABEL_PREFIX}t-t0")

    await eventually(started, timeout=30, interval=0.05)  # the initial recomputation is under way
    active.kill()
    async with stack.scim() as client:  # only the standby can give these their teams
        await asyncio.gather(*(stack.create_user(client, f"late{i}@example.com", title=f"T{i % 9}") for i in range(27)))

    async def converged() -> None:
        items, _ = await stack.kube.list(TEAMS, stack.namespace)
        assert sorted(t["metadata"]["name"] for t in items) == [f"t-t{i}" for i in range(9)]
        assert sum((t.get("status") or {}).get("memberCount") or 0 for t in items) == 327
        for i in range(9):
            assert len(await users_with_label(stack, f"{TEAM_LABEL_PREFIX}t-t{i}")) in (36, 37)

    await eventually(converged, timeout=90)  # the standby resumes once the dead peer's record expires
    assert "operator active" in standby.log()  # its own gate (users, writers) follows Kopf's rule
    stack.start_operator(priority=100)  # the active comes back; the standby pauses again
    await asyncio.sleep(3)
    await converged()
    assert "operator paused in favour of a peer" in standby.log()


async def test_a_rule_reading_an_attribute_no_user_carries_says_so(stack: Stack) -> None:
    """The Okta guide's "custom attribute is not arriving": Okta's External name is case-sensitive, so
    `employeeId` arrives where a rule reads `employeeID`; or it arrives under another namespace; or
    not at all. Each shows on the rule's AttributeFound condition, in an Event, and in doctor."""
    acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    stack.start_operator()
    async with stack.scim() as client:
        for i in range(3):
            await stack.create_user(client, f"emp{i}@example.com", **{ENTERPRISE: {"employeeId": f"E-{i}"}})
    rules = {
        "by-employee-id": {
            "attribute": "employeeID",
            "match": {"operator": "Any"},
            "target": {"nameTemplate": "e-${*}"},
        },
        "acme-badge": {"attribute": f"{acme}:employeeId", "match": {"operator": "Any"}, "target": {"name": "badges"}},
        "colours": {"attribute": "favouriteColour", "match": {"operator": "Any"}, "target": {"name": "colours"}},
        "titles": {"attribute": "userName", "match": {"operator": "Any"}, "target": {"name": "everyone"}},
    }
    for name, spec in rules.items():
        await stack.apply_mapping("Team", name, spec)
    # The provider declares the attribute for /Schemas as employeeID too: its own condition says so.
    await stack.kube.patch(
        IDENTITY_PROVIDERS,
        "okta",
        {"spec": {"scim": {"customAttributes": [{"schema": ENTERPRISE, "name": "employeeID"}]}}},
        stack.namespace,
    )

    async def declared() -> dict[str, Any]:
        provider = await stack.kube.get(IDENTITY_PROVIDERS, "okta", stack.namespace)
        conditions = {c["type"]: c for c in (provider.get("status") or {}).get("conditions") or []}
        assert conditions.get("CustomAttributesArriving", {}).get("reason") == "CaseMismatch", conditions
        return conditions["CustomAttributesArriving"]

    arriving = await eventually(declared, timeout=30)
    assert arriving["status"] == "False"
    assert "provider okta declares custom attribute employeeID; 3 user(s) carry employeeId" in arriving["message"]

    async def found() -> dict[str, tuple[str, str, str]]:
        result = {}
        for name in rules:
            rule = await stack.kube.get(TEAM_MAPPINGS, name, stack.namespace)
            conditions = {c["type"]: c for c in (rule.get("status") or {}).get("conditions") or []}
            assert "AttributeFound" in conditions, (name, conditions)
            c = conditions["AttributeFound"]
            result[name] = (c["status"], c["reason"], c["message"])
        return result

    conditions = await eventually(found, timeout=30)
    assert conditions["titles"][:2] == ("True", "Found")
    assert conditions["by-employee-id"][:2] == ("True", "CaseMismatch")  # matched, but named differently
    assert "reads employeeID; 3 user(s) carry employeeId" in conditions["by-employee-id"][2]
    assert conditions["acme-badge"][:2] == ("False", "NearMiss")
    assert f"carry employeeId under {ENTERPRISE}" in conditions["acme-badge"][2]
    assert conditions["colours"][:2] == ("False", "NotCarried")

    async def events() -> set[str]:
        items, _ = await stack.kube.list(EVENTS, stack.namespace)
        reasons = {e.get("reason") for e in items}
        expected = {"AttributeCaseMismatch", "AttributeNearMiss", "AttributeNotCarried", "CustomAttributeCaseMismatch"}
        assert expected <= reasons, reasons
        return reasons

    await eventually(events, timeout=20)
    doctor = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "kubescim"),
            "--kubeconfig",
            str(stack.cluster.kubeconfig),
            "-n",
            stack.namespace,
            "doctor",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert doctor.returncode == 1, doctor.stdout
    for name in ("by-employee-id", "acme-badge", "colours"):
        assert f"TeamMapping {name}: " in doctor.stdout, doctor.stdout
    assert "TeamMapping titles" not in doctor.stdout
    assert (
        "declared custom attributes do not arrive as declared: provider okta declares custom attribute employeeID"
        in (doctor.stdout)
    )
