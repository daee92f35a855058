"""The gateway's in-memory index: paging straight off the ordered keys agrees with a full ordered
scan under any sequence of upserts, updates and deletions (including stale events)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kubescim.constants import LABEL_PROVIDER, LABEL_SCIM_ID
from kubescim.objects import GROUP_MEMBER_LABEL_VALUE, group_label
from scim_gateway.index import Collection, Index

ANNOTATION = "identity.kubescim.dev/last-modified"


def user(number: int, version: int, provider: str = "okta", second: int = 0) -> dict[str, object]:
    return {
        "metadata": {
            "name": f"u{number}",
            "resourceVersion": str(version),
            "creationTimestamp": f"2026-11-29T00:00:{second:02d}Z",
            "labels": {LABEL_SCIM_ID: f"id-{number:03d}", LABEL_PROVIDER: provider},
        },
        "spec": {"provider": provider, "userName": f"user{number}@example.com"},
    }


operations = st.lists(
    st.tuples(
        st.sampled_from(["upsert", "delete"]),
        st.integers(0, 30),  # which user
        st.integers(0, 59),  # creation second
        st.sampled_from(["okta", "other"]),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(1, 40), st.integers(1, 12))
def test_page_matches_an_ordered_scan(ops: list[tuple[str, int, int, str]], start: int, count: int) -> None:
    collection = Collection(ANNOTATION, "userName")
    for version, (op, number, second, provider) in enumerate(ops, start=1):
        if op == "upsert":
            collection.upsert(user(number, version, provider, second))
        else:
            collection.remove(user(number, version, provider, second))
    for provider in ("okta", "other"):
        ordered = collection.in_order(provider)
        assert [e.sort_key for e in ordered] == sorted(e.sort_key for e in ordered)
        assert collection.count(provider) == len(ordered)
        assert collection.page(provider, start - 1, count) == ordered[start - 1 : start - 1 + count]
        assert all(e.provider == provider for e in ordered)
        for entry in ordered:  # the userName index finds every cached user, case-insensitively
            assert entry.unique_value is not None
            assert collection.find_unique(provider, entry.unique_value.upper()) == [entry]
    total = len(collection.by_id)
    assert total == collection.count("okta") + collection.count("other")


def test_a_stale_event_never_replaces_a_newer_object() -> None:
    collection = Collection(ANNOTATION, "userName")
    collection.upsert(user(1, 10))
    collection.upsert(user(1, 5, second=30))
    assert collection.page("okta", 0, 10)[0].resource_version == 10
    collection.remove(user(1, 11))
    collection.upsert(user(1, 9))  # a late event from before the deletion does not resurrect it
    assert collection.page("okta", 0, 10) == []
    assert collection.count("okta") == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3), st.booleans()), max_size=80))
def test_a_groups_members_come_in_creation_then_id_order(ops: list[tuple[int, int, bool]]) -> None:
    """Members sort by (created, SCIM id), ties in creation time included (seconds collide often)."""
    index = Index(ANNOTATION)
    members: set[str] = set()
    for version, (number, second, joined) in enumerate(ops, start=1):
        obj = user(number, version, second=second)
        if joined:
            obj["metadata"]["labels"][group_label("g1")] = GROUP_MEMBER_LABEL_VALUE  # type: ignore[index]
        index.users.upsert(obj)
        (members.add if joined else members.discard)(f"id-{number:03d}")
    listed = index.group_members("g1")
    assert {e.scim_id for e in listed} == members
    assert [e.sort_key for e in listed] == sorted(e.sort_key for e in listed)
