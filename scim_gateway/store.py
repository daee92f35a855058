"""Storage adapter: ScimUser / ScimGroup objects in the Kubernetes API. The only module that writes them.

Every method either completes its write in the API server or raises: ScimError for what the client
must fix (409 uniqueness, 412 precondition), ApiUnavailable when the API server cannot be reached
(answered 503 + Retry-After). Successful writes are applied to the index at once (write-through).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from kubescim.api.models import ScimGroupSpec, ScimUserSpec
from kubescim.constants import (
    ANNOTATION_LAST_MODIFIED,
    GROUP_LABEL_PREFIX,
    LABEL_PROVIDER,
    LABEL_SCIM_ID,
    SCIM_GROUPS,
    SCIM_USERS,
)
from kubescim.kube import JSON, ApiError, Kube
from kubescim.objects import (
    GROUP_MEMBER_LABEL_VALUE,
    escape_pointer,
    now_iso,
    replace_user_spec_patch,
    scim_group_object,
    scim_user_object,
)
from kubescim.scim.errors import ScimError, ScimType, conflict, not_found
from kubescim.scim.resources import user_object_name
from scim_gateway.index import Entry, Index

MEMBER_LABEL_VALUE = GROUP_MEMBER_LABEL_VALUE
FIELD_MANAGER = "kubescim-gateway"


def _invalid(error: ApiError, what: str) -> ScimError:
    # The API server's schema is stricter than anything we forgot to check: its message is precise.
    return ScimError(400, f"invalid {what}: {error.message[:500]}", ScimType.INVALID_VALUE)


class KubeStore:
    def __init__(self, kube: Kube, namespace: str, index: Index, *, write_concurrency: int = 32) -> None:
        self.kube = kube
        self.namespace = namespace
        self.index = index
        self._writes = asyncio.Semaphore(write_concurrency)

    # --- users ----------------------------------------------------------------------------------

    async def create_user(self, spec: ScimUserSpec, scim_id: str, labels: dict[str, str] | None = None) -> Entry:
        try:
            created = await self.kube.create(SCIM_USERS, scim_user_object(spec, scim_id, labels), self.namespace)
        except ApiError as error:
            if error.status == 409:
                raise conflict(f"userName {spec.user_name!r} is already in use") from None
            if error.status in (400, 422):
                raise _invalid(error, "User") from None
            raise
        return self._cached_user(created)

    def _cached_user(self, obj: JSON) -> Entry:
        entry = self.index.users.upsert(obj)
        assert entry is not None
        return entry

    async def fetch_user_by_name(self, object_name: str) -> Entry | None:
        """Read-your-writes fallback: the object a userName maps to, straight from the API server."""
        try:
            obj = await self.kube.get(SCIM_USERS, object_name, self.namespace)
        except ApiError as error:
            if error.not_found:
                return None
            raise
        return self.index.users.upsert(obj)

    async def fetch_by_id(self, scim_id: str, provider: str, *, groups: bool = False) -> Entry | None:
        """Read-your-writes fallback for a cache miss on an id written by another replica."""
        if groups:
            if not _name_ok(scim_id):
                return None  # not an id we could have issued (and not safe in a URL path)
            try:
                obj = await self.kube.get(SCIM_GROUPS, scim_id, self.namespace)
            except ApiError as error:
                if error.not_found or error.status == 400:
                    return None
                raise
            entry = self.index.groups.upsert(obj)
        else:
            if not _label_value_ok(scim_id):
                return None
            items, _ = await self.kube.list(
                SCIM_USERS,
                self.namespace,
                label_selector=f"{LABEL_SCIM_ID}={scim_id},{LABEL_PROVIDER}={provider}",
            )
            entry = None
            for item in sorted(items, key=lambda o: int(o["metadata"].get("resourceVersion", "0"))):
                entry = self.index.users.upsert(item)
        return entry if entry is not None and entry.provider == provider else None

    async def update_user(self, current: Entry, spec: ScimUserSpec, generation_guard: int | None = None) -> Entry:
        """Replace the user's attributes. A changed (case-folded) userName moves the object to its new name."""
        if user_object_name(spec.provider, spec.user_name) != current.object_name:
            return await self._rename_user(current, spec)
        operations = replace_user_spec_patch(spec, generation_guard)
        try:
            updated = await self.kube.patch(
                SCIM_USERS, current.object_name, operations, self.namespace, patch_type="json"
            )
        except ApiError as error:
            if error.not_found:
                raise not_found(f"User {current.scim_id} not found") from None
            if error.status in (409, 422) and generation_guard is not None and "test" in error.message.lower():
                raise ScimError(409, "the user changed concurrently; retry", ScimType.INVALID_VALUE) from None
            if error.status in (400, 422):
                raise _invalid(error, "User") from None
            raise
        return self._cached_user(updated)

    async def _rename_user(self, current: Entry, spec: ScimUserSpec) -> Entry:
        # Create under the new name first (409 if that userName is taken), then delete the old object:
        # at no point is the user absent, and a retry after a crash in between finds the new object.
        labels = current.group_labels()
        try:
            created = await self.kube.create(
                SCIM_USERS, scim_user_object(spec, current.scim_id, labels), self.namespace
            )
        except ApiError as error:
            if error.status == 409:
                raise conflict(f"userName {spec.user_name!r} is already in use") from None
            if error.status in (400, 422):
                raise _invalid(error, "User") from None
            raise
        entry = self._cached_user(created)
        await self._delete(SCIM_USERS, current.object_name, current.uid, self.index.users)
        return entry

    async def delete_user(self, entry: Entry) -> None:
        await self._delete(SCIM_USERS, entry.object_name, entry.uid, self.index.users)

    async def _delete(self, resource: Any, name: str, uid: str, collection: Any) -> None:
        try:
            status = await self.kube.delete(resource, name, self.namespace, preconditions={"uid": uid})
        except ApiError as error:
            if not (error.not_found or error.conflict):
                raise
            status = {}
        version = (status.get("metadata") or {}).get("resourceVersion") or "0"
        collection.remove({"metadata": {"name": name, "resourceVersion": version}})

    async def set_memberships(self, group_id: str, add: Iterable[Entry], remove: Iterable[Entry]) -> None:
        """Label (or unlabel) users as members of a group: one small merge patch per user, concurrently.
        Idempotent, so a client's retry after a partial failure converges."""
        key = f"{GROUP_LABEL_PREFIX}{group_id}"

        async def one(entry: Entry, value: str | None) -> None:
            async with self._writes:
                try:
                    obj = await self.kube.patch(
                        SCIM_USERS, entry.object_name, {"metadata": {"labels": {key: value}}}, self.namespace
                    )
                except ApiError as error:
                    if error.not_found and value is None:
                        return
                    if error.not_found:
                        raise ScimError(
                            400, f"member {entry.scim_id} no longer exists", ScimType.INVALID_VALUE
                        ) from None
                    raise
                self.index.users.upsert(obj)

        tasks = [one(e, MEMBER_LABEL_VALUE) for e in add] + [one(e, None) for e in remove]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # --- groups ---------------------------------------------------------------------------------

    async def create_group(self, spec: ScimGroupSpec, scim_id: str) -> Entry:
        obj = scim_group_object(spec, scim_id)
        try:
            created = await self.kube.create(SCIM_GROUPS, obj, self.namespace)
        except ApiError as error:
            if error.status == 409:
                raise conflict(f"group id {scim_id} exists") from None
            if error.status in (400, 422):
                raise _invalid(error, "Group") from None
            raise
        entry = self.index.groups.upsert(created)
        assert entry is not None
        return entry

    async def update_group(self, current: Entry, spec: ScimGroupSpec | None) -> Entry:
        """Replace the group's attributes (or, with spec None, only bump lastModified)."""
        operations: list[JSON] = []
        if spec is not None:
            operations.append({"op": "add", "path": "/spec", "value": spec.dump()})
        operations.append(
            {
                "op": "add",
                "path": f"/metadata/annotations/{escape_pointer(ANNOTATION_LAST_MODIFIED)}",
                "value": now_iso(),
            }
        )
        try:
            updated = await self.kube.patch(
                SCIM_GROUPS, current.object_name, operations, self.namespace, patch_type="json"
            )
        except ApiError as error:
            if error.not_found:
                raise not_found(f"Group {current.scim_id} not found") from None
            if error.status in (400, 422):
                raise _invalid(error, "Group") from None
            raise
        entry = self.index.groups.upsert(updated)
        assert entry is not None
        return entry

    async def delete_group(self, entry: Entry) -> None:
        members = self.index.group_members(entry.scim_id)
        await self._delete(SCIM_GROUPS, entry.object_name, entry.uid, self.index.groups)
        # Deleting a group never deletes users: it only drops their membership label.
        await self.set_memberships(entry.scim_id, [], members)


def _label_value_ok(value: str) -> bool:
    return (
        0 < len(value) <= 63
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in value)
        and value[0].isalnum()
        and value[-1].isalnum()
    )


def _name_ok(value: str) -> bool:
    """A valid object name (DNS subdomain): group ids are their ScimGroup's name."""
    return (
        0 < len(value) <= 253
        and all(c.isascii() and (c.islower() or c.isdigit() or c in "-.") for c in value)
        and value[0].isalnum()
        and value[-1].isalnum()
    )
