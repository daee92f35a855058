"""A group's member list has its own JSON encoder (the 200 answer to a member PATCH carries every
member): it must produce exactly what the generic encoder does, for any content."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubescim.scim.resources import MemberList
from scim_gateway.responses import render_json


def generic(content: Any) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


ids = st.one_of(st.uuids().map(str), st.text(max_size=12))
base_urls = st.one_of(st.just("https://scim.example.com/scim/v2"), st.text(max_size=20))
rows = st.tuples(ids, base_urls).map(lambda t: {"value": t[0], "$ref": f"{t[1]}/Users/{t[0]}", "type": "User"})
odd_rows = st.dictionaries(st.sampled_from(["value", "$ref", "type", "display"]), st.one_of(st.text(), st.integers()))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(rows, odd_rows), max_size=8), st.text(max_size=10))
def test_a_group_renders_as_the_generic_encoder_would(members: list[dict[str, Any]], name: str) -> None:
    resource = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "displayName": name,
        "members": MemberList(members),
        "meta": {"resourceType": "Group", "location": "https://x/Groups/g1"},
    }
    assert render_json(resource) == generic(resource)
    assert json.loads(render_json(resource))["members"] == members


def test_rows_built_directly_encode_as_the_generic_encoder_would() -> None:
    members = MemberList({"value": f"u{i}", "$ref": f"https://x/Users/u{i}", "type": "User"} for i in range(3))
    assert members.to_json() == generic(members)
    assert render_json({"members": members, "id": "g"}) == '{"members":' + generic(members) + ',"id":"g"}'


def test_a_quote_in_the_base_url_is_escaped() -> None:
    members = MemberList([{"value": "u1", "$ref": 'https://ex"ample/Users/u1', "type": "User"}])
    assert json.loads(members.to_json())[0]["$ref"] == 'https://ex"ample/Users/u1'


@settings(max_examples=400, deadline=None)
@given(st.lists(ids, max_size=8), base_urls)
def test_users_rows_render_as_the_generic_encoder_would(user_ids: list[str], base_url: str) -> None:
    members = MemberList.of_users(user_ids, base_url)
    rows = [{"value": i, "$ref": f"{base_url}/Users/{i}", "type": "User"} for i in user_ids]
    assert members == rows
    assert members.to_json() == generic(rows)
    assert render_json({"id": "g", "members": members}) == generic({"id": "g", "members": rows})
