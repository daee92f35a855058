"""Bulk writes give way to urgent ones in flight, for a bounded time."""

from __future__ import annotations

import asyncio
import time

from identity_operator.priority import UrgentWork


async def test_a_bulk_write_goes_at_once_when_nothing_urgent_is_in_flight() -> None:
    work = UrgentWork(yield_seconds=5)
    started = time.monotonic()
    await work.give_way()
    assert time.monotonic() - started < 0.1


async def test_a_bulk_write_waits_for_the_urgent_ones_to_be_answered() -> None:
    work = UrgentWork(yield_seconds=5)
    order: list[str] = []

    async def urgent() -> None:
        async with work.urgent(), work.urgent():  # two in flight: both must end
            await asyncio.sleep(0.05)
            order.append("urgent")

    async def bulk() -> None:
        await work.give_way()
        order.append("bulk")

    task = asyncio.create_task(urgent())
    await asyncio.sleep(0)
    assert work.in_flight == 2
    await asyncio.gather(bulk(), task)
    assert order == ["urgent", "bulk"]
    assert work.in_flight == 0


async def test_a_stream_of_urgent_work_slows_bulk_work_but_never_stops_it() -> None:
    work = UrgentWork(yield_seconds=0.05)
    async with work.urgent():
        started = time.monotonic()
        await work.give_way()
        waited = time.monotonic() - started
    assert 0.04 <= waited < 1


async def test_an_urgent_write_that_fails_still_lets_bulk_work_go() -> None:
    work = UrgentWork(yield_seconds=5)
    try:
        async with work.urgent():
            raise RuntimeError("the API server refused it")
    except RuntimeError:
        pass
    started = time.monotonic()
    await work.give_way()
    assert time.monotonic() - started < 0.1
