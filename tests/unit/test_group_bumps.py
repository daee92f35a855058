"""Coalesced group bumps: concurrent member changes of one group write it a few times, and every
caller returns only after a write that recorded (at least) its own membership revision."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest

from kubescim.api.models import ScimGroupSpec
from kubescim.kube import Kube, KubeConfig
from scim_gateway.index import Entry, Index
from scim_gateway.store import KubeStore


class RecordingStore(KubeStore):
    def __init__(self, fail_first: bool = False) -> None:
        super().__init__(Kube(KubeConfig(server="http://unused.invalid")), "ns", Index("x"))
        self.writes: list[int] = []
        self.fail_first = fail_first
        self.in_flight = 0
        self.most_in_flight = 0

    async def update_group(self, current: Entry, spec: ScimGroupSpec | None, members_revision: int = 0) -> Entry:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)  # one etcd write of the group
        finally:
            self.in_flight -= 1
        if self.fail_first and not self.writes:
            self.writes.append(-1)
            raise RuntimeError("the API server refused")
        self.writes.append(members_revision)
        return dataclasses.replace(current, resource_version=members_revision)


@pytest.fixture
def entry() -> Entry:
    fields = {f.name: None for f in dataclasses.fields(Entry)}
    return Entry(**{**fields, "object_name": "g1", "scim_id": "g1", "resource_version": 0})  # type: ignore[arg-type]


async def test_concurrent_bumps_coalesce_and_each_covers_its_own_revision(entry: Entry) -> None:
    store = RecordingStore()
    revisions = list(range(100, 132))
    results = await asyncio.gather(*(store.bump_group(entry, r) for r in revisions))
    assert len(store.writes) <= 3, store.writes  # 32 callers, a write in flight at a time
    for revision, result in zip(revisions, results, strict=True):
        assert result.resource_version >= revision  # the write it waited for recorded its revision
    assert max(store.writes) == 131
    assert store._bumps == {}  # nothing left behind


@pytest.mark.parametrize("seed", range(4))
async def test_callers_arriving_while_a_bump_ends_never_start_a_second_write(entry: Entry, seed: int) -> None:
    # Arrivals spread over many writes: some land between one write ending and its waiters waking,
    # when the finished bump is dropped and the next one starts. Its waiters must not drop the next.
    store = RecordingStore()
    rng = random.Random(seed)

    async def arrive(revision: int) -> Entry:
        await asyncio.sleep(rng.uniform(0, 0.2))
        return await store.bump_group(entry, revision)

    revisions = list(range(1, 301))
    results = await asyncio.gather(*(arrive(r) for r in revisions))
    assert store.most_in_flight == 1, store.most_in_flight
    for revision, result in zip(revisions, results, strict=True):
        assert result.resource_version >= revision
    assert store._bumps == {}


async def test_a_failed_write_fails_its_waiters_and_the_next_caller_writes_again(entry: Entry) -> None:
    store = RecordingStore(fail_first=True)
    with pytest.raises(RuntimeError):
        await asyncio.gather(*(store.bump_group(entry, r) for r in (5, 6)))
    assert (await store.bump_group(entry, 7)).resource_version == 7


async def test_nothing_written_means_a_plain_bump(entry: Entry) -> None:
    store = RecordingStore()
    await store.bump_group(entry, 0)
    assert store.writes == [0]
