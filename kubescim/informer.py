"""List-then-watch loop feeding an in-memory cache: the gateway's read path never lists the API server.

On start it lists (paged), hands the full set to `on_replace` (or each page to `on_page`, then the
names seen to `on_relisted`), marks itself synced, then watches from
the list's resourceVersion, passing each event to `on_event`. A 410 Gone (or an ERROR event) triggers
a fresh list; an unreachable API server is retried with capped exponential backoff. Bookmarks keep
the resourceVersion current so a restarted watch rarely needs a relist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from kubescim.kube import JSON, ApiError, ApiUnavailable, Kube, Resource

log = logging.getLogger(__name__)
EventHandler = Callable[[str, JSON], None]
ReplaceHandler = Callable[[list[JSON], str], None]
PageHandler = Callable[[list[JSON]], None]
RelistedHandler = Callable[[set[str], str], None]


def resource_version_int(obj: JSON) -> int:
    """resourceVersions are etcd revisions: comparable integers in every real API server."""
    try:
        return int(obj.get("metadata", {}).get("resourceVersion", "0"))
    except (TypeError, ValueError):
        return 0


class Informer:
    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        namespace: str | None,
        *,
        on_replace: ReplaceHandler | None = None,
        on_event: EventHandler,
        on_page: PageHandler | None = None,
        on_relisted: RelistedHandler | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        on_error: Callable[[Exception], Awaitable[None] | None] | None = None,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        if on_replace is None and (on_page is None or on_relisted is None):
            raise ValueError("give on_replace, or on_page and on_relisted")
        self.on_replace = on_replace
        self.on_page = on_page
        self.on_relisted = on_relisted
        self.on_event = on_event
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.on_error = on_error
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.healthy = False
        self.restarts = 0  # watches restarted after an error or a 410 (for metrics)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer-{self.resource.plural}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _params(self) -> dict[str, str | int]:
        params: dict[str, str | int] = {"limit": 500}
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        return params

    async def _list(self) -> None:
        """Paged. With on_page, each page is applied as it arrives and then on_relisted says which
        names the list held: a large collection never sits in memory twice (raw and cached)."""
        items: list[JSON] = []
        seen: set[str] = set()
        params = self._params()
        while True:
            page = await self.kube.request("GET", self.resource.path(self.namespace), params=params)
            page_items = page.get("items") or []
            if self.on_page is not None:
                seen.update(str(i.get("metadata", {}).get("name", "")) for i in page_items)
                self.on_page(page_items)
            else:
                items.extend(page_items)
            meta = page.get("metadata", {})
            if not meta.get("continue"):
                break
            params["continue"] = meta["continue"]
        self.resource_version = str(meta.get("resourceVersion", ""))
        if self.on_relisted is not None:
            self.on_relisted(seen, self.resource_version)
        else:
            assert self.on_replace is not None
            self.on_replace(items, self.resource_version)
        self.synced.set()

    async def _watch(self) -> None:
        params: dict[str, str | int] = {
            "watch": "true",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": random.randint(240, 300),
        }
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        async for event in self._stream(params):
            kind = event.get("type")
            obj: Any = event.get("object") or {}
            if kind == "ERROR":
                code = obj.get("code")
                raise ApiError(int(code) if isinstance(code, int) else 500, obj, "WATCH", self.resource.plural)
            version = obj.get("metadata", {}).get("resourceVersion")
            if version:
                self.resource_version = str(version)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.on_event(str(kind), obj)

    def _stream(self, params: dict[str, str | int]) -> Any:
        return self.kube.watch(
            self.resource,
            self.namespace,
            resource_version=str(params["resourceVersion"]),
            timeout_seconds=int(params["timeoutSeconds"]),
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )

    async def _run(self) -> None:
        backoff = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                self.healthy = True
                await self._watch()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                self.restarts += 1
                if error.status == 410:
                    log.info("watch expired, relisting", extra={"resource": self.resource.plural})
                    need_list = True
                    continue
                self.healthy = False
                log.warning("watch failed", extra={"resource": self.resource.plural, "error": str(error)})
                need_list = True
            except (ApiUnavailable, OSError) as error:
                self.restarts += 1
                self.healthy = False
                log.warning("API server unavailable", extra={"resource": self.resource.plural, "error": str(error)})
                if self.on_error is not None:
                    result = self.on_error(error)
                    if result is not None:
                        await result
            await asyncio.sleep(backoff + random.uniform(0, backoff / 2))
            backoff = min(backoff * 2, 5.0)
