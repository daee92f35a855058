"""Everything the recomputation engine writes, behind one small protocol: the Kubernetes writer in
production, an in-memory one in the engine's unit tests (so they check what would be written
without an API server). The engine owns these fields only: team / business-unit labels and the
status of ScimUsers, ScimGroups, Teams, BusinessUnits and mappings, operator-created targets,
the RoleBindings / ClusterRoleBindings of AccessBindings (access.controller), and Events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from kubescim.events import post_event
from kubescim.kube import JSON, ApiError, Kube, Resource


class Writer(Protocol):
    async def patch_labels(self, resource: Resource, name: str, labels: dict[str, str | None]) -> int:
        """Merge-patch labels (None removes one); returns the new resourceVersion."""
        ...

    async def patch_status(self, resource: Resource, name: str, status: JSON) -> int:
        """Merge-patch the status subresource; returns the new resourceVersion."""
        ...

    async def create(self, resource: Resource, body: JSON) -> None:
        """Create; ApiError 409 when it exists."""
        ...

    async def delete(self, resource: Resource, name: str, uid: str, namespace: str | None = None) -> None:
        """Delete exactly this object (uid precondition); ApiError 404 / 409 when it is not there.
        `namespace`: another namespace than the operator's (RBAC objects)."""
        ...

    async def apply(self, resource: Resource, body: JSON, namespace: str | None = None) -> JSON:
        """Server-side apply as the operator's field manager (creates, or updates the fields it owns);
        returns the object as stored."""
        ...

    async def apply_status(self, resource: Resource, body: JSON) -> None:
        """Server-side apply to the status subresource: the fields in `body` only (a condition among
        those another writer owns)."""
        ...

    async def event(self, regarding: JSON, type_: str, reason: str, note: str) -> None: ...


FIELD_MANAGER = "kubescim-operator"


@dataclass
class KubeWriter:
    kube: Kube
    namespace: str

    async def patch_labels(self, resource: Resource, name: str, labels: dict[str, str | None]) -> int:
        result = await self.kube.patch(resource, name, {"metadata": {"labels": labels}}, self.namespace)
        return int(result["metadata"]["resourceVersion"])

    async def patch_status(self, resource: Resource, name: str, status: JSON) -> int:
        result = await self.kube.patch(resource, name, {"status": status}, self.namespace, subresource="status")
        return int(result["metadata"]["resourceVersion"])

    async def create(self, resource: Resource, body: JSON) -> None:
        await self.kube.create(resource, body, self.namespace)

    async def delete(self, resource: Resource, name: str, uid: str, namespace: str | None = None) -> None:
        await self.kube.delete(resource, name, namespace or self.namespace, preconditions={"uid": uid})

    async def apply(self, resource: Resource, body: JSON, namespace: str | None = None) -> JSON:
        name = str(body["metadata"]["name"])
        return await self.kube.patch(
            resource,
            name,
            body,
            namespace or self.namespace,
            patch_type="apply",
            field_manager=FIELD_MANAGER,
            force=True,
        )

    async def apply_status(self, resource: Resource, body: JSON) -> None:
        await self.kube.patch(
            resource,
            str(body["metadata"]["name"]),
            body,
            self.namespace,
            patch_type="apply",
            subresource="status",
            field_manager=FIELD_MANAGER,
            force=True,
        )

    async def event(self, regarding: JSON, type_: str, reason: str, note: str) -> None:
        await post_event(self.kube, self.namespace, regarding, type_, reason, note)


@dataclass
class MemoryWriter:
    """Records every write in order; objects named in `missing` answer 404 like a deleted object."""

    calls: list[tuple[str, str, str, Any]] = field(default_factory=list)  # (verb, plural, name, payload)
    missing: set[str] = field(default_factory=set)
    version: int = 1000

    def _next(self, verb: str, resource: Resource, name: str, payload: Any) -> int:
        if name in self.missing:
            raise ApiError(404, {"reason": "NotFound", "message": f"{name} not found"}, verb, resource.plural)
        self.calls.append((verb, resource.plural, name, payload))
        self.version += 1
        return self.version

    async def patch_labels(self, resource: Resource, name: str, labels: dict[str, str | None]) -> int:
        return self._next("labels", resource, name, labels)

    async def patch_status(self, resource: Resource, name: str, status: JSON) -> int:
        return self._next("status", resource, name, status)

    async def create(self, resource: Resource, body: JSON) -> None:
        self._next("create", resource, str(body["metadata"]["name"]), body)

    async def delete(self, resource: Resource, name: str, uid: str, namespace: str | None = None) -> None:
        self._next("delete", resource, name, uid)

    async def apply(self, resource: Resource, body: JSON, namespace: str | None = None) -> JSON:
        version = self._next("apply", resource, str(body["metadata"]["name"]), body)
        metadata = {**body["metadata"], "uid": f"uid-{version}", "resourceVersion": str(version)}
        return {**body, "metadata": metadata}

    async def apply_status(self, resource: Resource, body: JSON) -> None:
        self._next("apply_status", resource, str(body["metadata"]["name"]), body)

    async def event(self, regarding: JSON, type_: str, reason: str, note: str) -> None:
        self.calls.append(("event", str(regarding.get("kind")), str(regarding.get("name")), (type_, reason, note)))

    def of(self, verb: str) -> list[tuple[str, str, Any]]:
        return [(plural, name, payload) for v, plural, name, payload in self.calls if v == verb]
