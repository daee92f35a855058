"""Why a rule does not match a user: the sentence `kubescim explain user` prints for each rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubescim.api.models import RoleMappingSpec
from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.matching import Matcher, UserFacts, compile_attribute, matches, why_not


def facts(department: str | None = "Eng", *, active: bool = True, groups: tuple[str, ...] = ()) -> UserFacts:
    enterprise = {"department": department} if department is not None else {}
    return UserFacts("u", "okta", "u@example.com", active, {ENTERPRISE_USER_URN: enterprise}, groups)


def reason(user: UserFacts, **spec: Any) -> str | None:
    selector = RoleMappingSpec.model_validate({"role": "admin", **spec})
    attribute = compile_attribute(selector.attribute) if selector.attribute else None
    return why_not(selector, Matcher(selector.match), attribute, user)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"attribute": "department", "match": {"value": "Engineering"}},
            "reads department: user has 'Eng', rule wants 'Engineering'",
        ),
        (
            {"attribute": "department", "match": {"operator": "In", "values": ["Sales", "Ops"]}},
            "reads department: user has 'Eng', rule wants one of 'Sales', 'Ops'",
        ),
        (
            {"attribute": "department", "match": {"operator": "Prefix", "value": "Fin"}},
            "reads department: user has 'Eng', rule wants a value starting with 'Fin'",
        ),
        (
            {"attribute": "department", "match": {"value": "eng", "caseSensitive": True}},
            "reads department: user has 'Eng', rule wants 'eng' (case-sensitive)",
        ),
        (
            {"attribute": "department", "match": {"value": "Eng", "negate": True}},
            "reads department: user has 'Eng', rule wants anything but 'Eng'",
        ),
        (
            {"attribute": "costCenter", "match": {"operator": "Any"}},
            "reads costCenter: user has no costCenter, rule wants any non-empty value",
        ),
        (
            {"source": "Group", "match": {"value": "Admins"}},
            "reads group displayNames: user is in no pushed group, rule wants 'Admins'",
        ),
        (
            {"attribute": "department", "match": {"value": "Eng"}, "providers": ["entra"]},
            "applies to provider(s) entra, not okta",
        ),
    ],
)
def test_each_kind_of_miss_is_said_in_words(spec: dict[str, Any], expected: str) -> None:
    assert reason(facts(), **spec) == expected


def test_groups_are_listed_and_a_deactivated_user_is_named_as_such() -> None:
    user = facts(groups=("Everyone", "Eng-All"))
    assert reason(user, source="Group", match={"value": "Admins"}) == (
        "reads group displayNames: user is in 'Eng-All', 'Everyone', rule wants 'Admins'"
    )
    assert reason(facts(active=False), attribute="department", match={"value": "Eng"}) == (
        "selects active users only, and this user is deactivated"
    )
    assert reason(facts(active=False), attribute="department", match={"value": "Eng"}, users="All") is None


def test_an_invalid_rule_never_matches() -> None:
    selector = RoleMappingSpec.model_validate({"role": "a", "attribute": "department", "match": {"value": "x"}})
    assert why_not(selector, None, None, facts()) == "the rule is invalid (see its Ready condition)"


@settings(max_examples=300, deadline=None)
@given(
    value=st.text(max_size=8),
    wanted=st.text(min_size=1, max_size=8),
    operator=st.sampled_from(["Equals", "Prefix", "Glob", "Any"]),
    negate=st.booleans(),
    active=st.booleans(),
)
def test_a_reason_is_given_exactly_when_the_rule_does_not_match(
    value: str, wanted: str, operator: str, negate: bool, active: bool
) -> None:
    """why_not agrees with the operator's own matching: None if and only if the rule selects the user."""
    user = facts(value, active=active)
    selector = RoleMappingSpec.model_validate(
        {"role": "a", "attribute": "department", "match": {"operator": operator, "value": wanted, "negate": negate}}
    )
    matcher, attribute = Matcher(selector.match), compile_attribute("department")
    selected = active and bool(matches(selector, matcher, attribute, user))
    assert (why_not(selector, matcher, attribute, user) is None) == selected
