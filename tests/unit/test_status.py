"""The statuses the operator writes, built purely from records."""

from __future__ import annotations

from identity_operator.mapping import Desired, Rule
from identity_operator.records import TargetRecord, UserRecord
from identity_operator.status import target_status, user_status
from kubescim.api.models import MappingSpec, Provenance, ProvenanceKind


def rule(name: str, kind: str, display: str | None = None, unit: str | None = None) -> Rule:
    target = {"name": "platform", **({"displayNameTemplate": display} if display else {})}
    if unit:
        target["businessUnit"] = unit
    spec = MappingSpec.model_validate({"attribute": "department", "match": {"value": "x"}, "target": target})
    return Rule.compile(name, kind, spec)  # type: ignore[arg-type]


def team(status: dict[str, object] | None = None) -> TargetRecord:
    return TargetRecord.from_body(
        {"metadata": {"name": "platform", "generation": 2}, "spec": {}, "status": status or {}}, "Team"
    )


def test_a_user_status_lists_memberships_with_provenance() -> None:
    record = UserRecord.from_body(
        {
            "metadata": {"name": "ada", "generation": 3},
            "spec": {"provider": "okta", "userName": "ada@x", "active": True},
        }
    )
    why = Provenance(kind=ProvenanceKind.ATTRIBUTE, rule="r", attribute="department", value="Eng")
    status = user_status(record, Desired({"platform": (why,)}, {}), ("Engineers",), {})
    assert status["teamCount"] == 1
    assert status["teams"][0]["sources"][0]["rule"] == "r"
    assert status["groups"] == ["Engineers"]
    assert status["conditions"][0]["message"] == "in 1 team(s) and 0 business unit(s)"


def test_a_target_status_lists_members_sorted_and_bounded_and_flags_disagreeing_rules() -> None:
    why = (Provenance(kind=ProvenanceKind.MANUAL),)
    members = {f"u{i}": why for i in range(5)}
    names = {f"u{i}": f"User{4 - i}@x" for i in range(5)}
    rules = [rule("a", "Team", "Platform"), rule("b", "Team", "Platform Team", unit="eng")]
    status = target_status(team(), members, names, ["a", "b"], rules, [], limit=3)
    assert [m["userName"] for m in status["members"]] == ["User0@x", "User1@x", "User2@x"]
    assert (status["memberCount"], status["membersTruncated"]) == (5, True)
    assert status["selector"] == "team.identity.kubescim.dev/platform"
    consistent = next(c for c in status["conditions"] if c["type"] == "RulesConsistent")
    assert consistent["status"] == "False"
    assert "rules a, b set different display names" in consistent["message"]
    agreeing = target_status(team(), members, names, ["a"], rules[:1], [], limit=10)
    assert next(c for c in agreeing["conditions"] if c["type"] == "RulesConsistent")["status"] == "True"


def test_a_mapping_status_carries_its_checks_and_keeps_transition_times() -> None:
    from identity_operator.census import AttributeCheck
    from identity_operator.records import RuleRecord
    from identity_operator.status import mapping_rule_status

    body = {
        "metadata": {"name": "dept", "generation": 4},
        "spec": {"attribute": "department", "match": {"value": "x"}, "target": {"name": "platform"}},
    }
    record = RuleRecord.from_body(body, "Team")
    check = AttributeCheck("NotCarried", "no user of any provider carries department")
    status = mapping_rule_status(record, 0, [], ["value 'x' renders no valid name"], check, None)
    reasons = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert reasons == {
        "Ready": ("True", "Valid"),
        "Degraded": ("True", "RenderProblems"),
        "AttributeFound": ("False", "NotCarried"),
    }
    assert status["matchedUsers"] == 0
    assert status["observedGeneration"] == 4
    # Written again with the same verdicts: the transition times stay (API conventions).
    again = mapping_rule_status(
        RuleRecord.from_body({**body, "status": status}, "Team"),
        0,
        [],
        ["value 'x' renders no valid name"],
        check,
        None,
    )
    assert again["conditions"] == status["conditions"]
    groups = mapping_rule_status(record, 3, ["platform"], [], None, 0)
    assert next(c for c in groups["conditions"] if c["type"] == "GroupsMatched")["reason"] == "NoPushedGroupMatches"
