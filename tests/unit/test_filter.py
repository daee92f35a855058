"""RFC 7644 filters: parsing, evaluation, case rules, bounds; no input yields anything but a result or a SCIM error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.errors import ScimError
from kubescim.scim.filter import (
    And,
    AttrPath,
    Compare,
    Not,
    Or,
    ResourceSchema,
    ValuePath,
    equality_lookup,
    evaluate,
    parse_filter,
    parse_patch_path,
)
from kubescim.scim.schema import ENTERPRISE_SCHEMA, USER_SCHEMA

USERS = ResourceSchema(USER_SCHEMA, (ENTERPRISE_SCHEMA,))
ALICE: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_URN],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "00u1abcd",
    "userName": "Alice@Example.com",
    "displayName": "Alice Liddell",
    "title": "Staff Engineer",
    "active": True,
    "name": {"givenName": "Alice", "familyName": "Liddell"},
    "emails": [
        {"value": "alice@example.com", "type": "work", "primary": True},
        {"value": "alice@home.example", "type": "home"},
    ],
    ENTERPRISE_USER_URN: {"department": "Engineering", "employeeID": "E-42", "manager": {"value": "bob"}},
    "meta": {"created": "2026-01-02T03:04:05Z", "lastModified": "2026-06-01T00:00:00Z"},
}


def matches(text: str, resource: dict[str, Any] = ALICE) -> bool:
    return evaluate(parse_filter(text), resource, USERS)


def test_okta_precreate_check_is_case_insensitive() -> None:
    assert matches('userName eq "alice@example.com"')
    assert matches('USERNAME EQ "ALICE@EXAMPLE.COM"')
    assert not matches('userName eq "bob@example.com"')


def test_case_exact_attributes_compare_exactly() -> None:
    assert matches('externalId eq "00u1abcd"')
    assert not matches('externalId eq "00U1ABCD"')
    assert matches('id eq "2819c223-7f76-453a-919d-413861904646"')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('title co "engineer"', True),
        ('title sw "staff"', True),
        ('title ew "ENGINEER"', True),
        ('title ew "manager"', False),
        ("title pr", True),
        ("nickName pr", False),
        ('displayName ne "Bob"', True),
        ("active eq true", True),
        ("active eq false", False),
        ('active eq "True"', True),
        ('name.givenName eq "alice"', True),
        ('emails co "home.example"', True),
        ('emails[type eq "work" and value co "example.com"]', True),
        ('emails[type eq "mobile"]', False),
        ('emails.type eq "home"', True),
        (f'{ENTERPRISE_USER_URN}:department eq "engineering"', True),
        (f'{ENTERPRISE_USER_URN}:employeeID eq "E-42"', True),
        (f'{ENTERPRISE_USER_URN}:manager.value eq "bob"', True),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName sw "alice"', True),
        ('meta.lastModified gt "2026-01-01T00:00:00Z"', True),
        ('meta.lastModified lt "2026-01-01T00:00:00+00:00"', False),
        ('meta.created ge "2026-01-02T03:04:05Z"', True),
        ('title eq "x" or userName sw "ali"', True),
        ('title eq "x" or userName sw "ali" and active eq false', False),
        ('(title eq "x" or userName sw "ali") and active eq true', True),
        ('not (title eq "x")', True),
        ("not(userName pr)", False),
        ("nickName eq null", True),
        ("title ne null", True),
        ('userName gt "aaa"', True),
    ],
)
def test_evaluation(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_precedence_and_binds_tighter_than_or() -> None:
    tree = parse_filter('a eq "1" or b eq "2" and c eq "3"')
    assert isinstance(tree, Or)
    assert isinstance(tree.right, And)
    assert isinstance(parse_filter("not (a pr) and b pr"), And)
    assert isinstance(parse_filter("not (a pr)"), Not)


def test_value_path_and_extension_parse() -> None:
    tree = parse_filter('emails[type eq "work"]')
    assert isinstance(tree, ValuePath)
    assert tree.path == AttrPath("emails")
    tree2 = parse_filter(f"{ENTERPRISE_USER_URN}:employeeNumber eq 7")
    assert isinstance(tree2, Compare)
    assert tree2.path.urn == ENTERPRISE_USER_URN
    assert tree2.value == 7


@pytest.mark.parametrize(
    "text",
    [
        "",
        "userName",
        "userName eq",
        'userName xx "a"',
        'userName eq "unterminated',
        "userName eq unquoted",
        '(userName eq "a"',
        'userName eq "a")',
        'emails[type eq "work"',
        'emails[type[x eq "y"]]',
        "active gt true",
        "title co true",
        "1abc eq 1",
        'userName eq "a" and',
        'userName eq "a\x00"',
        "(" * 40 + "a pr" + ")" * 40,
        " or ".join(['a eq "1"'] * 300),
        "a pr " + "x" * 5000,
    ],
)
def test_invalid_filters_are_scim_400_invalid_filter(text: str) -> None:
    with pytest.raises(ScimError) as info:
        matches(text)
    assert info.value.status == 400
    assert info.value.scim_type == "invalidFilter"


def test_equality_lookup_for_indexes() -> None:
    assert equality_lookup(parse_filter('userName eq "A@b"'), "userName") == "A@b"
    assert (
        equality_lookup(parse_filter('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"'), "userName") == "x"
    )
    assert equality_lookup(parse_filter(f'{ENTERPRISE_USER_URN}:userName eq "x"'), "userName") is None
    assert equality_lookup(parse_filter('userName co "A"'), "userName") is None
    assert equality_lookup(parse_filter('userName eq "a" and active eq true'), "userName") is None


def test_patch_paths() -> None:
    path = parse_patch_path('members[value eq "2819c223"]')
    assert path.attr == AttrPath("members")
    assert path.value_filter is not None
    path = parse_patch_path('emails[type eq "work"].value')
    assert path.sub == "value"
    assert parse_patch_path(f"{ENTERPRISE_USER_URN}:department").attr.urn == ENTERPRISE_USER_URN
    for bad in ["members[value eq", 'emails[type eq "work"]x', "", "a..b", "members[]"]:
        with pytest.raises(ScimError) as info:
            parse_patch_path(bad)
        assert info.value.scim_type == "invalidPath"


filter_alphabet = st.sampled_from(
    [
        "userName",
        "title",
        "emails",
        "emails.value",
        "name.givenName",
        "active",
        " eq ",
        " ne ",
        " co ",
        " sw ",
        " gt ",
        " pr",
        " and ",
        " or ",
        "not ",
        "(",
        ")",
        "[",
        "]",
        '"x"',
        '"Alice@Example.com"',
        "true",
        "null",
        "42",
        " ",
        '"',
        "\\",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:",
        "department",
        ".",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(filter_alphabet, max_size=25).map("".join))
def test_fuzz_grammar_fragments_give_result_or_scim_error(text: str) -> None:
    try:
        result = matches(text)
    except ScimError as error:
        assert error.status == 400
        return
    assert isinstance(result, bool)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_gives_result_or_scim_error(text: str) -> None:
    try:
        assert isinstance(matches(text), bool)
    except ScimError as error:
        assert error.status == 400


def test_a_filter_says_which_attributes_it_reads() -> None:
    from kubescim.scim.filter import attributes_named

    parsed = parse_filter('displayName sw "A" and (members[value eq "x"] or not (externalId pr))')
    assert attributes_named(parsed) == {"displayname", "members", "externalid"}
    assert attributes_named(parse_filter('displayName eq "members"')) == {"displayname"}  # a value, not a path
