"""Shared fresh reads of a group: concurrent requests for one group cost one GET per batch, and no
request ever gets a state older than the moment it arrived (the read it joins is sent after it)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from kubescim.constants import LABEL_PROVIDER, LABEL_SCIM_ID
from kubescim.kube import Kube, KubeConfig, Resource
from scim_gateway.index import Index
from scim_gateway.store import KubeStore


class FakeGroups:
    """The API server's view of one group: every write bumps its resourceVersion; a GET answers the
    state at the moment it is sent, after a round trip."""

    def __init__(self, fail_first: bool = False) -> None:
        self.revision = 1
        self.deleted = False
        self.gets = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_first = fail_first

    def write(self) -> None:
        self.revision += 1

    async def get(self, resource: Resource, name: str) -> dict[str, Any] | None:
        self.gets += 1
        revision, deleted = self.revision, self.deleted  # what etcd holds when the request is sent
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.005)
        finally:
            self.in_flight -= 1
        if self.fail_first and self.gets == 1:
            raise RuntimeError("the API server refused")
        if deleted:
            return None
        return {
            "metadata": {
                "name": name,
                "uid": "u-1",
                "resourceVersion": str(revision),
                "creationTimestamp": "2026-12-01T00:00:00Z",
                "labels": {LABEL_SCIM_ID: name, LABEL_PROVIDER: "okta"},
            },
            "spec": {"provider": "okta", "displayName": "Engineering"},
        }


def store_over(groups: FakeGroups) -> KubeStore:
    store = KubeStore(Kube(KubeConfig(server="http://unused.invalid")), "ns", Index("x"))
    store.storage.get = groups.get  # type: ignore[method-assign]
    return store


async def test_concurrent_reads_of_one_group_share_a_get() -> None:
    groups = FakeGroups()
    store = store_over(groups)
    entries = await asyncio.gather(*(store.fetch_group("okta", "g1") for _ in range(32)))
    assert all(e is not None and e.scim_id == "g1" for e in entries)
    assert groups.gets == 1
    assert store._group_reads == {}
    await store.fetch_group("okta", "g1")  # a later request reads again
    assert groups.gets == 2


@pytest.mark.parametrize("seed", range(4))
async def test_no_request_gets_a_state_older_than_its_arrival(seed: int) -> None:
    # Writes land between arrivals: each request must see at least the revision there was when it
    # arrived, which a read sent before it arrived may not have.
    groups = FakeGroups()
    store = store_over(groups)
    rng = random.Random(seed)

    async def arrive() -> None:
        await asyncio.sleep(rng.uniform(0, 0.1))
        if rng.random() < 0.3:
            groups.write()
        seen_at_arrival = groups.revision
        entry = await store.fetch_group("okta", "g1")
        assert entry is not None
        assert entry.resource_version >= seen_at_arrival

    await asyncio.gather(*(arrive() for _ in range(300)))
    assert groups.most_in_flight == 1
    assert groups.gets < 150  # shared: 300 requests, far fewer reads
    assert store._group_reads == {}


async def test_a_group_deleted_before_a_request_arrived_is_gone_for_it() -> None:
    groups = FakeGroups()
    store = store_over(groups)
    first = asyncio.create_task(store.fetch_group("okta", "g1"))
    await asyncio.sleep(0.001)  # its GET is on the wire
    groups.deleted = True
    assert await store.fetch_group("okta", "g1") is None
    assert await first is not None  # sent before the delete


async def test_a_failed_read_fails_its_joiners_and_the_next_request_reads_again() -> None:
    groups = FakeGroups(fail_first=True)
    store = store_over(groups)
    results = await asyncio.gather(*(store.fetch_group("okta", "g1") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await store.fetch_group("okta", "g1") is not None


async def test_a_cancelled_request_leaves_the_shared_read_to_the_others() -> None:
    groups = FakeGroups()
    store = store_over(groups)
    leaving = asyncio.create_task(store.fetch_group("okta", "g1"))
    staying = asyncio.create_task(store.fetch_group("okta", "g1"))
    await asyncio.sleep(0)
    leaving.cancel()
    entry = await staying
    assert entry is not None
    assert groups.gets == 1
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_another_providers_request_gets_nothing() -> None:
    store = store_over(FakeGroups())
    assert await store.fetch_group("entra", "g1") is None
