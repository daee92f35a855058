"""SCIM User bodies to ScimUser specs: Entra's and Microsoft's validation shapes of the enterprise extension."""

from __future__ import annotations

from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.resources import user_spec_from_scim


def test_enterprise_attributes_take_their_declared_names_and_custom_ones_stay_exact() -> None:
    spec = user_spec_from_scim(
        {
            "userName": "a@example.com",
            ENTERPRISE_USER_URN: {"Department": "bob", "Manager": {"Value": "SuzzyQ"}, "employeeID": "E-7"},
        },
        "okta",
    )
    assert spec.extensions == {
        ENTERPRISE_USER_URN: {"department": "bob", "manager": {"value": "SuzzyQ"}, "employeeID": "E-7"}
    }


def test_a_manager_sent_as_a_bare_id_is_a_reference_and_an_empty_one_is_none() -> None:
    given = user_spec_from_scim({"userName": "a@example.com", ENTERPRISE_USER_URN: {"manager": "m-1"}}, "okta")
    assert given.extensions == {ENTERPRISE_USER_URN: {"manager": {"value": "m-1"}}}
    for empty in ("", {"value": ""}):
        cleared = user_spec_from_scim({"userName": "a@example.com", ENTERPRISE_USER_URN: {"manager": empty}}, "okta")
        assert cleared.extensions == {ENTERPRISE_USER_URN: {}}
