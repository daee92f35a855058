"""Okta Event Hooks as a trigger: a delivery says "something changed in Okta", and the operator's next
delta run reads what. Events are never used as data — Okta delivers at least once, unordered, and
retries only once — so correctness never depends on them, and a lost delivery only waits for the
next scheduled delta.

A delivery is recorded in the IdentityProvider's status (`status.eventHook.lastDeliveryTime`, the
status subresource the gateway already writes), which wakes the operator's scheduler. Writes are
coalesced per provider: at most one every `interval` seconds, however many deliveries come.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time

from kubescim.constants import IDENTITY_PROVIDERS
from kubescim.kube import ApiError, ApiUnavailable, Kube

log = logging.getLogger(__name__)


def _now_iso() -> str:
    moment = dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class DeliveryRecorder:
    def __init__(self, kube: Kube, namespace: str, *, interval: float = 5.0) -> None:
        self.kube = kube
        self.namespace = namespace
        self.interval = interval
        self._last_write: dict[str, float] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}

    def delivered(self, provider: str) -> None:
        """A delivery came: record it now, or once the interval since the last write has passed."""
        if provider in self._pending:
            return  # a write is already due: it records this delivery too
        wait = max(0.0, self._last_write.get(provider, 0.0) + self.interval - time.monotonic())
        self._pending[provider] = asyncio.create_task(self._write_after(provider, wait, "lastDeliveryTime"))

    async def verified(self, provider: str) -> None:
        await self._write(provider, "lastVerificationTime")

    async def _write_after(self, provider: str, wait: float, field: str) -> None:
        try:
            await asyncio.sleep(wait)
        finally:
            self._pending.pop(provider, None)
        await self._write(provider, field)

    async def _write(self, provider: str, field: str) -> None:
        self._last_write[provider] = time.monotonic()
        try:
            await self.kube.patch(
                IDENTITY_PROVIDERS,
                provider,
                {"status": {"eventHook": {field: _now_iso()}}},
                self.namespace,
                subresource="status",
            )
        except (ApiError, ApiUnavailable) as error:
            log.warning("cannot record an event hook delivery", extra={"provider": provider, "error": str(error)[:200]})

    async def stop(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
