"""A coordination.k8s.io Lease as a mutex between operator processes (active, standby, a restarted pod).

Kopf's peering pauses event handling on the standby, but tasks a standby started while it was active
keep running; a run therefore holds the provider's Lease, so two reconciliations of one provider never
overlap, whichever processes are alive.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from typing import Any

from kubescim.kube import ApiError, Kube, Resource

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
