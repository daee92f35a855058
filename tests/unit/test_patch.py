"""PATCH engine: RFC 7644 semantics plus Okta's and Entra's real request shapes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.errors import ScimError
from kubescim.scim.filter import ResourceSchema
from kubescim.scim.patch import (
    apply_operations,
    member_delta,
    parse_patch_request,
    split_member_operations,
)
from kubescim.scim.schema import ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_OP_URN, USER_SCHEMA

USERS = ResourceSchema(USER_SCHEMA, (ENTERPRISE_SCHEMA,))
GROUPS = ResourceSchema(GROUP_SCHEMA)
USER: dict[str, Any] = {
    "userName": "alice@example.com",
    "active": True,
    "name": {"givenName": "Alice", "familyName": "Liddell"},
    "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
    ENTERPRISE_USER_URN: {"department": "Engineering"},
}


def patch(resource: dict[str, Any], *operations: dict[str, Any], schema: ResourceSchema = USERS) -> dict[str, Any]:
    before = copy.deepcopy(resource)
    result = apply_operations(
        resource, parse_patch_request({"schemas": [PATCH_OP_URN], "Operations": list(operations)}), schema
    )
    assert resource == before, "apply_operations must not mutate its input"
    return result


def test_okta_deactivate_is_pathless_replace() -> None:
    assert patch(USER, {"op": "replace", "value": {"active": False}})["active"] is False


def test_entra_capitalised_op_and_string_boolean() -> None:
    assert patch(USER, {"op": "Replace", "path": "active", "value": "False"})["active"] is False
    assert patch(USER, {"op": "REPLACE", "value": {"active": "True"}})["active"] is True


def test_pathless_dotted_keys_and_urn_keys() -> None:
    result = patch(
        USER,
        {
            "op": "replace",
            "value": {
                "name.givenName": "Alicia",
                f"{ENTERPRISE_USER_URN}:department": "Research",
                "urn:example:custom:1.0:User": {"badge": "7"},
            },
        },
    )
    assert result["name"] == {"givenName": "Alicia", "familyName": "Liddell"}
    assert result[ENTERPRISE_USER_URN]["department"] == "Research"
    assert result["urn:example:custom:1.0:User"] == {"badge": "7"}


def test_extension_path_add_custom_attribute_keeps_case() -> None:
    result = patch(USER, {"op": "add", "path": f"{ENTERPRISE_USER_URN}:employeeID", "value": "E-1"})
    assert result[ENTERPRISE_USER_URN] == {"department": "Engineering", "employeeID": "E-1"}


def test_value_filter_paths() -> None:
    result = patch(USER, {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@new.example"})
    assert result["emails"][0]["value"] == "a@new.example"
    result = patch(USER, {"op": "remove", "path": 'emails[type eq "work"]'})
    assert result["emails"] == []
    with pytest.raises(ScimError) as info:
        patch(USER, {"op": "replace", "path": 'emails[type eq "home"].value', "value": "x"})
    assert info.value.scim_type == "noTarget"


def test_multivalued_add_appends_and_keeps_one_primary() -> None:
    result = patch(USER, {"op": "add", "path": "emails", "value": [{"value": "b@x", "type": "home", "primary": True}]})
    assert [e["value"] for e in result["emails"]] == ["alice@example.com", "b@x"]
    assert [e.get("primary") for e in result["emails"]] == [False, True]


def test_entra_remove_with_value_list() -> None:
    result = patch(USER, {"op": "Remove", "path": "emails", "value": [{"value": "alice@example.com"}]})
    assert result["emails"] == []


def test_remove_attribute_and_subattribute() -> None:
    assert "name" not in patch(USER, {"op": "remove", "path": "name"})
    assert patch(USER, {"op": "remove", "path": "name.givenName"})["name"] == {"familyName": "Liddell"}


def test_read_only_attributes() -> None:
    # Okta's group rename carries the group's own id: ignored.
    assert patch({"displayName": "A"}, {"op": "replace", "value": {"id": "x", "displayName": "B"}}, schema=GROUPS) == {
        "displayName": "B"
    }
    with pytest.raises(ScimError) as info:
        patch(USER, {"op": "remove", "path": "id"})
    assert info.value.scim_type == "mutability"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"Operations": []},
        {"schemas": ["wrong"], "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"Operations": [{"op": "move", "path": "title", "value": "x"}]},
        {"Operations": [{"op": "add", "path": "title"}]},
        {"Operations": [{"op": "remove"}]},
        {"Operations": [{"op": "replace", "value": "not-an-object"}]},
        {"Operations": [{"op": "add", "path": 7, "value": "x"}]},
        {"Operations": ["x"]},
        {"Operations": [{"op": "add", "path": "emails[type eq", "value": "x"}]},
    ],
)
def test_malformed_requests_are_scim_400(body: Any) -> None:
    with pytest.raises(ScimError) as info:
        parse_patch_request(body)
    assert info.value.status == 400
    assert info.value.scim_type in {"invalidSyntax", "invalidPath", "noTarget", "invalidValue"}


def test_wrong_types_are_invalid_value() -> None:
    for operation in [
        {"op": "replace", "path": "active", "value": "maybe"},
        {"op": "replace", "path": "title", "value": 7},
        {"op": "replace", "path": "name", "value": "x"},
    ]:
        with pytest.raises(ScimError) as info:
            patch(USER, operation)
        assert info.value.scim_type == "invalidValue"


def ops(*operations: dict[str, Any]) -> list[Any]:
    return parse_patch_request({"schemas": [PATCH_OP_URN], "Operations": list(operations)})


def test_okta_mixed_membership_patch() -> None:
    members, others = split_member_operations(
        ops(
            {"op": "replace", "value": {"id": "g1", "displayName": "Engineering"}},
            {"op": "remove", "path": 'members[value eq "u1"]'},
            {"op": "add", "path": "members", "value": [{"value": "u3", "display": "c@x"}]},
        )
    )
    assert len(others) == 1
    assert member_delta(members, {"u1", "u2"}) == ({"u3"}, {"u1"})


def test_replace_members_and_entra_remove_list_and_pathless_members() -> None:
    members, _ = split_member_operations(ops({"op": "replace", "path": "members", "value": [{"value": "u9"}]}))
    assert member_delta(members, {"u1", "u9"}) == (set(), {"u1"})
    members, _ = split_member_operations(ops({"op": "Remove", "path": "members", "value": [{"value": "u1"}]}))
    assert member_delta(members, {"u1", "u2"}) == (set(), {"u1"})
    members, _ = split_member_operations(ops({"op": "add", "value": {"members": [{"value": "u5"}]}}))
    assert member_delta(members, set()) == ({"u5"}, set())
    members, _ = split_member_operations(ops({"op": "remove", "path": "members"}))
    assert member_delta(members, {"u1", "u2"}) == (set(), {"u1", "u2"})
    members, _ = split_member_operations(ops({"op": "remove", "path": 'members[value eq "u1" or value eq "u2"]'}))
    assert member_delta(members, {"u1", "u2", "u3"}) == (set(), {"u1", "u2"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
paths = st.sampled_from(
    [
        None,
        "title",
        "active",
        "name.givenName",
        "emails",
        'emails[type eq "work"].value',
        'emails[type eq "work"]',
        f"{ENTERPRISE_USER_URN}:department",
        "members",
        "id",
        "x.y.z",
        'members[value eq "u1"]',
        "urn:bad",
        "[",
        "",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["add", "remove", "replace", "Replace", "bogus"]),
                "path": paths,
                "value": json_values,
            }
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_patch_gives_result_or_scim_error(operations: list[dict[str, Any]]) -> None:
    for operation in operations:
        if operation["path"] is None:
            del operation["path"]
    try:
        result = patch(USER, *operations)
    except ScimError as error:
        assert 400 <= error.status < 500
        return
    assert isinstance(result, dict)


def test_whole_extension_paths() -> None:
    added = patch(
        USER,
        {
            "op": "add",
            "path": ENTERPRISE_USER_URN,
            "value": {"schemas": [ENTERPRISE_USER_URN], "costCenter": "CC-1"},
        },
    )
    assert added[ENTERPRISE_USER_URN] == {"department": "Engineering", "costCenter": "CC-1"}
    replaced = patch(USER, {"op": "replace", "path": ENTERPRISE_USER_URN, "value": {"division": "R&D"}})
    assert replaced[ENTERPRISE_USER_URN] == {"division": "R&D"}
    assert ENTERPRISE_USER_URN not in patch(USER, {"op": "remove", "path": ENTERPRISE_USER_URN})


def test_remove_active() -> None:
    assert "active" not in patch(USER, {"op": "remove", "path": "active"})


MANAGER = f"{ENTERPRISE_USER_URN}:manager"


def test_entra_sets_replaces_and_clears_the_manager_as_a_bare_id() -> None:
    added = patch(USER, {"op": "Add", "path": MANAGER, "value": "2819c223-7f76-453a"})
    assert added[ENTERPRISE_USER_URN] == {"department": "Engineering", "manager": {"value": "2819c223-7f76-453a"}}
    replaced = patch(added, {"op": "Replace", "path": MANAGER, "value": "another-manager"})
    assert replaced[ENTERPRISE_USER_URN]["manager"] == {"value": "another-manager"}
    for clear in ("", None, {"value": ""}):
        assert "manager" not in patch(replaced, {"op": "Replace", "path": MANAGER, "value": clear})[ENTERPRISE_USER_URN]
    assert "manager" not in patch(replaced, {"op": "Remove", "path": MANAGER})[ENTERPRISE_USER_URN]
    pathless = patch(USER, {"op": "add", "value": {MANAGER: "m-1"}})
    assert pathless[ENTERPRISE_USER_URN]["manager"] == {"value": "m-1"}


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("nickNameTypo", USERS),
        ("urn:ietf:params:scim:schemas:core:2.0:User:bogus", USERS),
        ("name.middleNameTypo", USERS),
        ('emails[type eq "work"].valu', USERS),
        ("descripton", GROUPS),
    ],
)
def test_a_path_naming_an_attribute_the_schema_lacks_is_invalid_path(path: str, schema: ResourceSchema) -> None:
    for op in ("add", "replace", "remove"):
        operation: dict[str, Any] = {"op": op, "path": path}
        if op != "remove":
            operation["value"] = "x"
        with pytest.raises(ScimError) as error:
            patch(USER, operation, schema=schema)
        assert error.value.status == 400
        assert error.value.scim_type == "invalidPath"


def test_undeclared_extension_attributes_stay_open() -> None:
    # Okta's custom attribute arrives undeclared in the enterprise namespace, with its exact name.
    patched = patch(USER, {"op": "replace", "path": f"{ENTERPRISE_USER_URN}:employeeID", "value": "E-1"})
    assert patched[ENTERPRISE_USER_URN]["employeeID"] == "E-1"


def test_a_path_naming_a_whole_unknown_extension_sets_that_extension() -> None:
    urn = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    patched = patch(USER, {"op": "add", "path": urn, "value": {"schemas": [urn], "badgeNumber": "B-1"}})
    assert patched[urn] == {"badgeNumber": "B-1"}
    assert "urn:ietf:params:scim:schemas:extension:acme:2.0" not in patched
