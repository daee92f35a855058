"""The recomputation engine on an in-memory writer: what it would write for a user, a rule and a
target, and that it writes nothing when nothing changed (the watch's echo of its own writes)."""

from __future__ import annotations

from typing import Any

from identity_operator.engine import Engine
from identity_operator.settings import OperatorSettings
from identity_operator.store import Store
from identity_operator.writer import MemoryWriter
from kubescim.constants import ENTERPRISE_USER_URN, LABEL_PROVIDER, LABEL_SCIM_ID, TEAM_LABEL_PREFIX
from kubescim.kube import Kube, KubeConfig

TEAM = f"{TEAM_LABEL_PREFIX}engineering"


def user(name: str, department: str, *, active: bool = True, version: int = 10, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "resourceVersion": str(version),
            "generation": 1,
            "labels": {LABEL_SCIM_ID: f"id-{name}", LABEL_PROVIDER: "okta", **meta.get("labels", {})},
        },
        "spec": {
            "provider": "okta",
            "userName": f"{name}@example.com",
            "active": active,
            "extensions": {ENTERPRISE_USER_URN: {"department": department}},
        },
        "status": meta.get("status", {}),
    }


RULE = {
    "metadata": {"name": "engineering-department", "generation": 1, "resourceVersion": "5"},
    "spec": {"attribute": "department", "match": {"value": "Engineering"}, "target": {"name": "engineering"}},
}


def engine_with(*bodies: dict[str, Any]) -> tuple[Engine, Store, MemoryWriter]:
    store = Store()
    store.put_rule("Team", RULE)
    for body in bodies:
        store.put_user(body)
    writer = MemoryWriter()
    engine = Engine(Kube(KubeConfig(server="http://unused.invalid")), OperatorSettings(namespace="ns"), write_to=writer)
    engine.use(store.view())
    return engine, store, writer


async def test_a_matching_user_gets_the_team_label_and_provenance_once() -> None:
    engine, store, writer = engine_with(user("ada", "Engineering"))
    await engine.process_user("ada")
    ((_, name, labels),) = writer.of("labels")
    assert (name, labels) == ("ada", {TEAM: "member"})
    ((_, _, status),) = writer.of("status")
    (team,) = status["teams"]
    assert team["name"] == "engineering"
    assert team["sources"][0]["rule"] == "engineering-department"

    # The watch brings the written labels and status back: nothing more to write.
    store.put_user(user("ada", "Engineering", version=20, labels={TEAM: "member"}, status=status))
    engine.observed("ada", 20)
    writer.calls.clear()
    await engine.process_user("ada")
    assert writer.calls == []


async def test_a_deactivated_user_leaves_the_team() -> None:
    engine, _, writer = engine_with(user("bob", "Engineering", active=False, labels={TEAM: "member"}))
    await engine.process_user("bob")
    assert writer.of("labels") == [("scimusers", "bob", {TEAM: None})]


async def test_a_flush_creates_the_target_the_rule_names_and_writes_the_rule_status() -> None:
    engine, _, writer = engine_with(user("ada", "Engineering"), user("cy", "Sales"))
    for name in ("ada", "cy"):
        await engine.process_user(name)
    engine.dirty_rules.add(("Team", "engineering-department"))
    engine.mark_targets([("Team", "engineering")])
    await engine.flush()
    created = writer.of("create")
    assert [(plural, name) for plural, name, _ in created] == [("teams", "engineering")]
    rule_status = next(payload for plural, name, payload in writer.of("status") if plural == "teammappings")
    assert rule_status["matchedUsers"] == 1
    conditions = {c["type"]: c["status"] for c in rule_status["conditions"]}
    assert conditions == {"Ready": "True", "Degraded": "False", "AttributeFound": "True"}


async def test_a_user_deleted_meanwhile_is_not_an_error() -> None:
    engine, _, writer = engine_with(user("ada", "Engineering"))
    writer.missing.add("ada")
    await engine._process_user_safely("ada")  # the 404 is absorbed: its DELETED event follows
    assert writer.calls == []
