"""The engine's reverse indexes: what one user's recomputation changes, and nothing else."""

from __future__ import annotations

from identity_operator.mapping import Desired, Grant, provenance_of
from identity_operator.memberships import Memberships
from kubescim.api.models import ProvenanceKind

BY_DEPT = provenance_of(ProvenanceKind.ATTRIBUTE, rule="dept", attribute="department", value="Eng")
BY_GROUP = provenance_of(ProvenanceKind.GROUP, rule="squads", group="Red squad")


def desired(**teams: tuple[object, ...]) -> Desired:
    return Desired(teams=dict(teams), business_units={})  # type: ignore[arg-type]


def test_joining_and_leaving_report_exactly_the_targets_that_changed() -> None:
    index = Memberships()
    grant = Grant("Team", "eng", "Engineering", BY_DEPT, 200)
    changed, rules = index.update("ada", desired(eng=(BY_DEPT,)), [grant])
    assert changed == {("Team", "eng")}
    assert rules == {("Team", "dept")}
    assert index.members[("Team", "eng")] == {"ada": (BY_DEPT,)}
    assert index.suggestions[("Team", "eng")].display_name == "Engineering"

    # Recomputed to the same result: no target changed (the rule is rechecked, it is cheap).
    changed, _ = index.update("ada", desired(eng=(BY_DEPT,)), [grant])
    assert changed == set()

    # Same team, another reason: the team's provenance changed.
    changed, _ = index.update("ada", desired(eng=(BY_GROUP,)), [Grant("Team", "eng", None, BY_GROUP, 100)])
    assert changed == {("Team", "eng")}
    assert index.rule_users[("Team", "dept")] == set()

    changed, rules = index.update("ada", None, [])
    assert changed == {("Team", "eng")}
    assert rules == {("Team", "squads")}
    assert index.members[("Team", "eng")] == {}
    assert "ada" not in index.desired


def test_the_highest_priority_rule_names_a_new_target() -> None:
    index = Memberships()
    index.update("a", desired(eng=(BY_GROUP,)), [Grant("Team", "eng", "from squads", BY_GROUP, 100)])
    index.update("b", desired(eng=(BY_DEPT,)), [Grant("Team", "eng", "Engineering", BY_DEPT, 200, "rnd")])
    suggestion = index.suggestions[("Team", "eng")]
    assert (suggestion.rule, suggestion.display_name, suggestion.business_unit) == ("dept", "Engineering", "rnd")
