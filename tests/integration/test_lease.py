"""The reconcile Lease: one holder at a time, released or expired leases are taken over, races lose cleanly."""

from __future__ import annotations

import asyncio

import pytest

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


async def test_a_long_run_keeps_its_lease_and_a_lost_lease_stops_the_run(kube: Kube, namespace: str) -> None:
    assert await lease.acquire(kube, namespace, "l4", 2, holder="runner")

    async def long_run() -> str:
        await asyncio.sleep(3)  # longer than the lease itself
        return "done"

    # Renewed every half second, the 2-second lease outlives the 3-second run: nobody can take it.
    rival = asyncio.create_task(_keep_trying(kube, namespace, "l4"))
    assert await lease.hold(kube, namespace, "l4", 2, long_run(), holder="runner", renew_every=0.5) == "done"
    assert not rival.done()
    rival.cancel()

    # Another holder takes the lease (as after a pause longer than the lease): the run is cancelled.
    assert await lease.acquire(kube, namespace, "l5", 60, holder="runner")
    written: list[int] = []

    async def writer() -> None:
        for i in range(100):
            written.append(i)
            await asyncio.sleep(0.05)

    async def steal() -> None:
        await asyncio.sleep(0.3)
        current = await kube.get(lease.LEASES, "l5", namespace)
        current["spec"]["holderIdentity"] = "thief"
        await kube.replace(lease.LEASES, "l5", current, namespace)

    thief = asyncio.create_task(steal())
    with pytest.raises(lease.LeaseLost, match="another holder"):
        await lease.hold(kube, namespace, "l5", 60, writer(), holder="runner", renew_every=0.5)
    await thief
    stopped_at = len(written)
    await asyncio.sleep(0.3)
    assert len(written) == stopped_at < 100  # it stopped writing


async def _keep_trying(kube: Kube, namespace: str, name: str) -> None:
    while True:
        assert not await lease.acquire(kube, namespace, name, 60, holder="rival")
        await asyncio.sleep(0.2)
