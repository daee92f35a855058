"""The recomputation engine on an in-memory writer: what it would write for a user, a rule and a
target, and that it writes nothing when nothing changed (the watch's echo of its own writes)."""

from __future__ import annotations

import asyncio
from typing import Any

from identity_operator.engine import Engine
from identity_operator.settings import OperatorSettings
from identity_operator.store import Store
from identity_operator.writer import MemoryWriter
from kubescim.constants import ENTERPRISE_USER_URN, LABEL_PROVIDER, LABEL_SCIM_ID, TEAM_LABEL_PREFIX
from kubescim.kube import Kube, KubeConfig, Resource

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


def _provider(*declared: tuple[str, str], conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    attributes = [{"schema": urn, "name": name} for urn, name in declared]
    return {
        "metadata": {"name": "okta", "generation": 1, "resourceVersion": "3"},
        "spec": {"scim": {"customAttributes": attributes}},
        "status": {"conditions": conditions or []},
    }


def _user_with(name: str, attribute: str, value: str) -> dict[str, Any]:
    body = user(name, "Engineering")
    body["spec"]["extensions"][ENTERPRISE_USER_URN][attribute] = value
    return body


async def test_a_declared_custom_attribute_that_arrives_under_another_case_is_named_on_the_provider() -> None:
    """The Okta guide's "custom attribute is not arriving": Okta sends employeeId, the provider
    declares employeeID. The provider's own condition (applied server-side, one condition) and a
    Warning Event say so; once the declaration agrees, the condition turns True without an Event."""
    engine, store, writer = engine_with(*(_user_with(f"u{i}", "employeeId", f"E{i}") for i in range(3)))
    store.put_provider(_provider((ENTERPRISE_USER_URN, "employeeID")))
    engine.provider_attributes_changed("okta")
    await engine.flush()
    ((plural, name, body),) = writer.of("apply_status")
    assert (plural, name, body["kind"]) == ("identityproviders", "okta", "IdentityProvider")
    (built,) = body["status"]["conditions"]
    assert (built["type"], built["status"], built["reason"]) == ("CustomAttributesArriving", "False", "CaseMismatch")
    assert "provider okta declares custom attribute employeeID; 3 user(s) carry employeeId" in built["message"]
    ((kind, _, (type_, reason, _note)),) = [c[1:] for c in writer.calls if c[0] == "event"]
    assert (kind, type_, reason) == ("IdentityProvider", "Warning", "CustomAttributeCaseMismatch")

    # Seen again with that condition stored: nothing to write.
    store.put_provider(
        _provider((ENTERPRISE_USER_URN, "employeeID"), conditions=[built])
        | {"metadata": {"name": "okta", "generation": 1, "resourceVersion": "4"}}
    )
    engine.provider_attributes_changed("okta")
    await engine.flush()
    assert len(writer.of("apply_status")) == 1

    store.put_provider(
        _provider((ENTERPRISE_USER_URN, "employeeId"), conditions=[built])
        | {"metadata": {"name": "okta", "generation": 2, "resourceVersion": "5"}}
    )
    engine.provider_attributes_changed("okta")
    await engine.flush()
    fixed = writer.of("apply_status")[-1][2]["status"]["conditions"][0]
    assert (fixed["status"], fixed["reason"]) == ("True", "Arriving")
    assert len([c for c in writer.calls if c[0] == "event"]) == 1


async def test_a_declared_attribute_under_another_urn_or_missing_is_named() -> None:
    engine, store, writer = engine_with(_user_with("u1", "badge", "Gold"))
    store.put_provider(_provider(("urn:example:acme:1.0:User", "badge"), ("urn:example:acme:1.0:User", "shoeSize")))
    engine.provider_attributes_changed("okta")
    await engine.flush()
    built = writer.of("apply_status")[0][2]["status"]["conditions"][0]
    assert (built["status"], built["reason"]) == ("False", "NearMiss")
    assert f"1 user(s) carry badge under {ENTERPRISE_USER_URN}" in built["message"]
    assert "no user of provider(s) okta carries urn:example:acme:1.0:User:shoeSize" in built["message"]


class GatedWriter(MemoryWriter):
    """Bulk label writes that hang (an API server busy with an operator's start) until opened."""

    def __init__(self, urgent: str) -> None:
        super().__init__()
        self.urgent = urgent
        self.open = asyncio.Event()
        self.held = 0
        self.engine: Engine | None = None
        self.urgent_in_flight = 0

    async def patch_labels(self, resource: Resource, name: str, labels: dict[str, str | None]) -> int:
        if name == self.urgent and self.engine is not None:
            self.urgent_in_flight = self.engine.urgent_work.in_flight
        if name != self.urgent:
            self.held += 1
            await self.open.wait()
        return await super().patch_labels(resource, name, labels)


async def test_a_users_own_change_is_written_while_every_bulk_write_slot_is_taken() -> None:
    store = Store()
    store.put_rule("Team", RULE)
    for i in range(100):
        store.put_user(user(f"u{i:03d}", "Engineering"))
    store.put_user(user("leaver", "Engineering", labels={TEAM: "member"}))
    writer = GatedWriter(urgent="leaver")
    settings = OperatorSettings(namespace="ns", write_concurrency=4)
    engine = writer.engine = Engine(Kube(KubeConfig(server="http://unused.invalid")), settings, write_to=writer)
    engine.start(store.view())  # every user is bulk work: the four shared slots fill and hang
    try:
        while writer.held < 4:
            await asyncio.sleep(0.01)
        store.put_user(user("leaver", "Engineering", active=False, version=11, labels={TEAM: "member"}))
        engine.user_changed("leaver")  # its deactivation: its own lane
        async with asyncio.timeout(5):
            while ("scimusers", "leaver", {TEAM: None}) not in writer.of("labels"):
                await asyncio.sleep(0.01)
        assert writer.held == 4  # no bulk write got through meanwhile
        assert writer.urgent_in_flight == 1  # and the API server's bulk writes gave way to it
        assert engine.urgent_work.in_flight == 0
    finally:
        writer.open.set()
        await engine.stop()
