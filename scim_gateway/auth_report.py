"""Refused credentials, reported where an administrator looks: the IdentityProvider's
`status.rejectedRequests` (the counts of every gateway replica add up) and a Warning Event, so
`kubectl describe identityprovider okta` says "the identity provider still has the old token".

Counts only — never a token, a hash or a header. Each replica adds what it refused since its last
report with a read-modify-write guarded by the resourceVersion (a conflict re-reads), a few seconds
apart; the counts start again at every rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time

from kubescim.constants import API_VERSION, IDENTITY_PROVIDERS
from kubescim.events import GATEWAY, post_event
from kubescim.kube import JSON, ApiError, ApiUnavailable, Kube
from scim_gateway.providers import Provider, ProviderRegistry, Rejections

log = logging.getLogger(__name__)
WRITE_ATTEMPTS = 5


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def added(current: JSON | None, counts: Rejections, rotated_at: str | None) -> JSON:
    """status.rejectedRequests with this report's counts added (pure). Counts of an earlier
    rotation are dropped, not added to."""
    base = dict(current or {})
    if base.get("tokenRotatedAt") != rotated_at:
        base = {}
    last = base.get("lastRejectedAt")
    mine = _iso(counts.last_at) if counts.last_at else None
    return {
        "tokenRotatedAt": rotated_at,
        "previousToken": int(base.get("previousToken") or 0) + counts.previous_token,
        "unknownToken": int(base.get("unknownToken") or 0) + counts.unknown_token,
        "missingCredentials": int(base.get("missingCredentials") or 0) + counts.missing_credentials,
        "lastRejectedAt": max(x for x in (last, mine) if x) if (last or mine) else None,
    }


def event_note(provider: Provider, counts: Rejections) -> tuple[str, str]:
    if counts.previous_token:
        return (
            "PreviousTokenInUse",
            f"{counts.previous_token} request(s) to provider {provider.name} used the token replaced at "
            f"{counts.replaced_at}: the identity provider still has the old token; enter the new one "
            "(printed once by `kubescim token rotate`)",
        )
    if counts.unknown_token:
        return ("UnknownToken", f"{counts.unknown_token} request(s) with a token provider {provider.name} never issued")
    return (
        "MissingCredentials",
        f"{counts.missing_credentials} request(s) to provider {provider.name} without a token",
    )


class RejectionReporter:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        registry: ProviderRegistry,
        *,
        interval: float = 5.0,
        event_interval: float = 300.0,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.registry = registry
        self.interval = interval
        self.event_interval = event_interval
        self._last_event: dict[tuple[str, str | None], float] = {}  # (provider, rotation) -> when
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rejection-reporter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # reporting must never take the gateway down
                log.exception("rejection report failed")

    async def flush(self) -> None:
        for provider in list(self.registry.providers.values()):
            counts = provider.rejections
            if counts.total == 0:
                continue
            provider.rejections = Rejections()  # new refusals accumulate while this one is written
            try:
                await self._add(provider, counts)
            except (ApiError, ApiUnavailable) as error:
                log.warning(
                    "cannot report rejected requests", extra={"provider": provider.name, "error": str(error)[:200]}
                )
                self._merge_back(provider, counts)
                continue
            await self._event(provider, counts)

    @staticmethod
    def _merge_back(provider: Provider, counts: Rejections) -> None:
        pending = provider.rejections
        pending.previous_token += counts.previous_token
        pending.unknown_token += counts.unknown_token
        pending.missing_credentials += counts.missing_credentials
        pending.last_at = max(pending.last_at, counts.last_at)
        pending.replaced_at = pending.replaced_at or counts.replaced_at

    async def _add(self, provider: Provider, counts: Rejections) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            current = await self.kube.get(IDENTITY_PROVIDERS, provider.name, self.namespace)
            status = current.get("status") or {}
            body = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": {"rejectedRequests": added(status.get("rejectedRequests"), counts, provider.rotated_at)},
            }
            try:
                await self.kube.patch(IDENTITY_PROVIDERS, provider.name, body, self.namespace, subresource="status")
                return
            except ApiError as error:
                if not error.conflict or attempt == WRITE_ATTEMPTS - 1:
                    raise

    async def _event(self, provider: Provider, counts: Rejections) -> None:
        key = (provider.name, provider.rotated_at)
        now = time.monotonic()
        if now - self._last_event.get(key, -self.event_interval) < self.event_interval:
            return
        self._last_event[key] = now
        reason, note = event_note(provider, counts)
        regarding = {"apiVersion": API_VERSION, "kind": "IdentityProvider", "name": provider.name, "uid": provider.uid}
        await post_event(self.kube, self.namespace, regarding, "Warning", reason, note, "Authenticate", GATEWAY)
