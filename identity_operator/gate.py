"""The operator's active/paused state, for the work Kopf does not pause itself.

Kopf freezes its own watches while a peer outranks this operator. The engine's workers and the
ScimUser informer are the operator's own, so they wait on this gate, which reads the KopfPeering
object through a watch and applies Kopf's rule (identity_operator.peering). Peers expire without an
event, so the rule is re-applied every second as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

from identity_operator.peering import blocking_peers
from kubescim.informer import Informer
from kubescim.kube import JSON, Kube, Resource

log = logging.getLogger("kubescim.operator")
KOPF_PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings")
RECHECK_SECONDS = 1.0


def always_active() -> asyncio.Event:
    """The gate of a component run without one (unit tests): set, never cleared."""
    event = asyncio.Event()
    event.set()
    return event


class PeeringGate:
    def __init__(
        self, kube: Kube, namespace: str, *, peering: str, identity: str, priority: int, standalone: bool
    ) -> None:
        self.identity = identity
        self.priority = priority
        self.standalone = standalone
        self.active = asyncio.Event()
        self.on_change: list[Callable[[bool], None]] = []
        self._peers: JSON = {}
        self._listed_once = False
        self._tasks: list[asyncio.Task[None]] = []
        self.informer = Informer(
            kube,
            KOPF_PEERINGS,
            namespace,
            field_selector=f"metadata.name={peering}",
            on_replace=self._listed,
            on_event=self._event,
        )

    def start(self) -> None:
        if self.standalone:
            self._set(True)
            return
        self.informer.start()
        self._tasks.append(asyncio.create_task(self._recheck(), name="kubescim-peering-gate"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self.standalone:
            await self.informer.stop()

    def _listed(self, items: list[JSON], _version: str) -> None:
        self._peers = dict((items[0].get("status") or {}) if items else {})
        self._listed_once = True
        self._evaluate()

    def _event(self, event_type: str, body: JSON) -> None:
        self._peers = dict(body.get("status") or {}) if event_type != "DELETED" else {}
        self._evaluate()

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            self._evaluate()

    def _evaluate(self) -> None:
        if not self._listed_once:
            return  # not known yet; a missing peering object (no peers) makes Kopf active, and so this
        blocking = blocking_peers(self._peers, self.identity, self.priority, dt.datetime.now(dt.UTC))
        self._set(not blocking, blocking)

    def _set(self, active: bool, blocking: list[str] | None = None) -> None:
        if active == self.active.is_set():
            return
        if active:
            log.info("operator active", extra={"identity": self.identity})
            self.active.set()
        else:
            log.info("operator paused in favour of a peer", extra={"identity": self.identity, "peers": blocking})
            self.active.clear()
        for callback in self.on_change:
            callback(active)
