"""The reconcile Lease: one holder at a time, released or expired leases are taken over, races lose cleanly."""

from __future__ import annotations

import asyncio

from kubescim import lease
from kubescim.kube import Kube


async def test_one_holder_at_a_time(kube: Kube, namespace: str) -> None:
    assert await lease.acquire(kube, namespace, "l1", 60, holder="a")
    assert not await lease.acquire(kube, namespace, "l1", 60, holder="b")
    assert await lease.acquire(kube, namespace, "l1", 60, holder="a")  # renewal by the holder
    await lease.release(kube, namespace, "l1", holder="b")  # not the holder: no effect
    assert not await lease.acquire(kube, namespace, "l1", 60, holder="b")
    await lease.release(kube, namespace, "l1", holder="a")
    assert await lease.acquire(kube, namespace, "l1", 60, holder="b")


async def test_an_expired_lease_is_taken_over(kube: Kube, namespace: str) -> None:
    assert await lease.acquire(kube, namespace, "l2", 1, holder="dead")
    assert not await lease.acquire(kube, namespace, "l2", 60, holder="alive")
    await asyncio.sleep(1.2)
    assert await lease.acquire(kube, namespace, "l2", 60, holder="alive")


async def test_racing_acquirers_get_exactly_one_winner(kube: Kube, namespace: str) -> None:
    results = await asyncio.gather(*(lease.acquire(kube, namespace, "l3", 60, holder=f"h{i}") for i in range(8)))
    assert sum(results) == 1
