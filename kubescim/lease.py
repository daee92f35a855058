"""A coordination.k8s.io Lease as a mutex between operator processes (active, standby, a restarted pod).

Kopf's peering pauses event handling on the standby, but tasks a standby started while it was active
keep running; a run therefore holds the provider's Lease, so two reconciliations of one provider never
overlap, whichever processes are alive.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from kubescim.kube import ApiError, ApiUnavailable, Kube, Resource

T = TypeVar("T")

LEASES = Resource("coordination.k8s.io", "v1", "leases")
IDENTITY = f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def acquire(kube: Kube, namespace: str, name: str, seconds: int, holder: str = IDENTITY) -> bool:
    """Take (or renew) the Lease; False if another live holder has it. Optimistic concurrency: two
    processes racing for an expired Lease cannot both win."""
    spec: dict[str, Any] = {"holderIdentity": holder, "leaseDurationSeconds": seconds, "renewTime": _micro(_now())}
    try:
        current = await kube.get(LEASES, name, namespace)
    except ApiError as error:
        if not error.not_found:
            raise
        try:
            await kube.create(
                LEASES,
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name},
                    "spec": {**spec, "acquireTime": spec["renewTime"]},
                },
                namespace,
            )
            return True
        except ApiError as create_error:
            if create_error.conflict:
                return False
            raise
    held = current.get("spec") or {}
    renewed = _parse(held.get("renewTime"))
    duration = int(held.get("leaseDurationSeconds") or 0)
    alive = renewed is not None and renewed + dt.timedelta(seconds=duration) > _now()
    if held.get("holderIdentity") not in (None, "", holder) and alive:
        return False
    body = {**current, "spec": {**held, **spec}}
    if held.get("holderIdentity") != holder:
        body["spec"]["acquireTime"] = spec["renewTime"]
    try:
        await kube.replace(LEASES, name, body, namespace)  # carries resourceVersion: a lost race is a 409
    except ApiError as error:
        if error.conflict:
            return False
        raise
    return True


async def release(kube: Kube, namespace: str, name: str, holder: str = IDENTITY) -> None:
    try:
        current = await kube.get(LEASES, name, namespace)
    except ApiError as error:
        if error.not_found:
            return
        raise
    if (current.get("spec") or {}).get("holderIdentity") == holder:
        current["spec"]["holderIdentity"] = None
        try:
            await kube.replace(LEASES, name, current, namespace)
        except ApiError as error:
            if not (error.conflict or error.not_found):
                raise


class LeaseLost(Exception):
    """The Lease was taken by another holder, or could not be renewed before it expired."""


async def hold(
    kube: Kube,
    namespace: str,
    name: str,
    seconds: int,
    work: Awaitable[T],
    *,
    holder: str = IDENTITY,
    renew_every: float | None = None,
) -> T:
    """Run `work` while holding the (already acquired) Lease, renewing it every quarter of its
    duration: a run may take longer than any fixed lease. If the Lease is lost — another holder
    has it, or it could not be renewed before it would expire — the work is cancelled (so it stops
    writing) and LeaseLost is raised."""
    task = asyncio.ensure_future(work)
    interval = renew_every if renew_every is not None else seconds / 4
    lost: list[str] = []
    renewed = time.monotonic()

    async def keep() -> None:
        nonlocal renewed
        while True:
            await asyncio.sleep(interval)
            try:
                if await acquire(kube, namespace, name, seconds, holder):
                    renewed = time.monotonic()
                    continue
                lost.append("another holder has it")
            except (ApiError, ApiUnavailable) as error:
                if time.monotonic() - renewed + interval < seconds:
                    continue  # still ours until it expires: try again
                lost.append(f"not renewed in time: {str(error)[:200]}")
            task.cancel()
            return

    keeper = asyncio.create_task(keep())
    try:
        return await task
    except asyncio.CancelledError:
        if lost:
            raise LeaseLost(lost[0]) from None
        raise
    finally:
        keeper.cancel()
