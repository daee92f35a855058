"""ScimUsers into the store and the engine through one shared informer, not Kopf's per-object machinery.

Kopf keeps a memory and a worker per object it handles: at 100,000 users that was about 4 KiB per
user, and its initial listing dispatched 100,000 workers before the first recomputation. Users are
the kind that grows, so they come through a paged list and one watch instead; the other kinds stay
with Kopf. Until the store is seeded, users only fill it (the engine recomputes everyone at start).
"""

from __future__ import annotations

from typing import Any

from identity_operator.engine import Engine
from identity_operator.store import Store
from kubescim.constants import SCIM_USERS
from kubescim.informer import Informer
from kubescim.kube import JSON, Kube


class UserFeed:
    def __init__(self, kube: Kube, namespace: str, store: Store, engine: Engine) -> None:
        self.store = store
        self.engine = engine
        self.informer = Informer(
            kube,
            SCIM_USERS,
            namespace,
            on_page=self._page,
            on_relisted=self._relisted,
            on_event=self._event,
        )

    def start(self) -> None:
        self.informer.start()

    async def stop(self) -> None:
        await self.informer.stop()

    def _page(self, items: list[JSON]) -> None:
        for item in items:
            self.apply(item, deleted=False)

    def _relisted(self, seen: set[str], _version: str) -> None:
        """After a relist (a 410 Gone), users the list no longer holds were deleted meanwhile."""
        for name in [n for n in self.store.users if n not in seen]:
            self.apply({"metadata": {"name": name}}, deleted=True)

    def _event(self, event_type: str, body: JSON) -> None:
        self.apply(body, deleted=event_type == "DELETED")

    def apply(self, body: dict[str, Any], deleted: bool) -> None:
        store, engine = self.store, self.engine
        if not store.seeded.is_set():
            store.put_user(body, deleted)
            return
        name = str((body.get("metadata") or {}).get("name"))
        before = store.users.get(name)
        record = store.put_user(body, deleted)
        if record is None and not deleted:
            return  # an event the store already had
        if record is not None:
            engine.observed(name, record.resource_version)
        groups_changed = frozenset(before.group_ids if before else ()) ^ frozenset(record.group_ids if record else ())
        if groups_changed:
            engine.groups_resized(groups_changed)
        # Only the spec and group membership feed the rules: our own label and status writes come back
        # as events too, and must not trigger a recomputation.
        if record is None or before is None or record.generation != before.generation or groups_changed:
            engine.user_changed(name)
