"""kubescim.jsonio encodes every Kubernetes request, the gateway's index and every SCIM response: it
must write what the standard library's compact form writes (the ETag is a digest of that text, and
the tests and clients compare bodies), read back what it wrote, and never fail where the standard
library encodes."""

from __future__ import annotations

import json
import math
import tracemalloc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubescim import jsonio
from kubescim.scim.resources import group_to_scim, member_rows
from scim_gateway.responses import ScimResponse


def generic(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


# What a SCIM body or a custom resource holds; floats apart (below), since their text may differ.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text())
documents = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(), inner, max_size=5))
)


@settings(max_examples=500, deadline=None)
@given(documents)
def test_a_document_encodes_as_the_standard_library_does_and_reads_back(document: Any) -> None:
    assert jsonio.dumps(document) == generic(document)
    assert jsonio.loads(jsonio.dumps(document)) == document


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_reads_back_as_the_same_number(number: float) -> None:
    # Python writes 2.5e-05 where orjson writes 0.000025: the same number, another text.
    assert jsonio.loads(jsonio.dumps({"x": number}))["x"] == number
    assert math.copysign(1, jsonio.loads(jsonio.dumps(number))) == math.copysign(1, number)


def test_what_orjson_refuses_falls_back_to_the_standard_library() -> None:
    big, lone_surrogate, int_keys = 10**30, "a\ud800b", {1: "one"}
    assert jsonio.loads(jsonio.dumps({"n": big})) == {"n": float(big)}  # as the API server stores it
    assert jsonio.dumps({"n": big}) == b'{"n":' + str(big).encode() + b"}"
    assert jsonio.dumps(lone_surrogate) == b'"a\\ud800b"'  # escaped, where encoding as UTF-8 would raise
    assert jsonio.dumps(int_keys) == b'{"1":"one"}'


def test_malformed_input_is_a_value_error() -> None:
    for text in (b"{", b"\xff", b"NaN", b'{"a":1,}', b""):
        try:
            jsonio.loads(text)
        except ValueError:
            continue
        raise AssertionError(f"{text!r} parsed")


ids = st.one_of(st.uuids().map(str), st.text(max_size=12))
base_urls = st.one_of(st.just("https://scim.example.com/scim/v2"), st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(st.lists(ids, max_size=8), base_urls, st.text(max_size=10))
def test_a_group_response_is_the_generic_encoding_of_its_members(user_ids: list[str], base_url: str, name: str) -> None:
    group = group_to_scim(
        {"displayName": name},
        scim_id="g1",
        created="2026-01-01T00:00:00Z",
        last_modified="2026-01-01T00:00:00Z",
        version='W/"1"',
        location=f"{base_url}/Groups/g1",
        members=member_rows(user_ids, base_url),
    )
    rows = [{"value": i, "$ref": f"{base_url}/Users/{i}", "type": "User"} for i in user_ids]
    assert group["members"] == rows
    assert ScimResponse(group).body == generic(group)


def test_a_kept_document_holds_its_own_size_not_the_encoders_buffer() -> None:
    """The gateway's index keeps every user's spec as JSON: 10,000 specs of about 100 bytes must not
    hold orjson's 4 KiB buffer each (40 MB at 10,000 users, measured before the fix)."""
    spec = {"provider": "okta", "userName": "user1@bench.example.com", "active": True, "title": "T3"}
    tracemalloc.start()
    try:
        kept = [jsonio.dumps(spec) for _ in range(10_000)]
        size, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(kept) == 10_000
    assert size / 10_000 < 300
