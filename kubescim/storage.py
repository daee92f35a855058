"""The one writer of ScimUser and ScimGroup objects, used by the gateway and the Okta reconciler alike.

Every write carries the precondition that makes it safe, and every method either completes in the
API server or raises:

- creates rely on the API server's name uniqueness (a user's name derives from its folded userName);
- a spec replacement can be guarded by the generation it was computed from (a JSON-patch `test`);
- a rename creates the new object first (annotated with the old object's name and uid, so every
  cache can bury the old one however late its events arrive), then deletes the old object;
- a delete names the uid it means, and returns only once the object is gone from the API server
  (a custom resource's DELETE answers with a bare Status, no resourceVersion: callers must not
  infer ordering from it, and an object held by a finalizer is waited for).

Domain errors, not HTTP: callers map them to SCIM errors (the gateway) or run results (reconciler).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubescim.api.models import ScimGroupSpec, ScimUserSpec
from kubescim.constants import (
    ANNOTATION_LAST_MODIFIED,
    ANNOTATION_MEMBERS_REVISION,
    ANNOTATION_RENAMED_FROM,
    LABEL_PROVIDER,
    LABEL_SCIM_ID,
    SCIM_GROUPS,
    SCIM_USERS,
)
from kubescim.kube import JSON, ApiError, Kube, Resource
from kubescim.objects import (
    GROUP_MEMBER_LABEL_VALUE,
    escape_pointer,
    group_label,
    membership_labels,
    now_iso,
    replace_user_spec_patch,
    scim_group_object,
    scim_user_object,
)
from kubescim.scim.resources import user_object_name

DELETE_WAIT_SECONDS = 30.0  # an object held by someone else's finalizer: Okta's request timeout is 60 s


class StorageError(Exception):
    """A write the API server refused for a reason the caller must handle."""


class NameTaken(StorageError):
    """Create: an object of that name exists (the userName, or the group id, is taken)."""


class InvalidObject(StorageError):
    """The API server's schema refused the object: its message is precise, and safe to show."""


class ObjectGone(StorageError):
    """The object to change no longer exists."""


class ConcurrentChange(StorageError):
    """The object changed since the caller read it (the generation guard failed)."""


@dataclass(frozen=True)
class GroupVersion:
    """What a compare-and-set of a group's recorded members revision compares with."""

    resource_version: int
    members_revision: int


class DeletionPending(StorageError):
    """Deleted, but a finalizer still holds the object after the wait."""


@dataclass(frozen=True)
class ObjectRef:
    """Which object a write means: its name, and its uid so a re-created namesake is never hit."""

    name: str
    uid: str


def ref_of(obj: JSON) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(str(meta.get("name", "")), str(meta.get("uid", "")))


def _invalid(error: ApiError) -> InvalidObject:
    return InvalidObject(error.message[:500] or error.reason)


class ScimStorage:
    def __init__(self, kube: Kube, namespace: str, *, delete_wait: float = DELETE_WAIT_SECONDS) -> None:
        self.kube = kube
        self.namespace = namespace
        self.delete_wait = delete_wait

    # --- reads (fresh from the API server) --------------------------------------------------------

    async def get(self, resource: Resource, name: str) -> JSON | None:
        try:
            return await self.kube.get(resource, name, self.namespace)
        except ApiError as error:
            if error.not_found or error.status == 400:  # 400: not even a valid object name
                return None
            raise

    async def users_with_id(self, provider: str, scim_id: str) -> list[JSON]:
        """Every object carrying this user id (more than one only while a rename is interrupted),
        the current one last."""
        items, _ = await self.kube.list(
            SCIM_USERS, self.namespace, label_selector=f"{LABEL_SCIM_ID}={scim_id},{LABEL_PROVIDER}={provider}"
        )
        live = [i for i in items if not (i.get("metadata") or {}).get("deletionTimestamp")]
        return current_last(live)

    # --- users ------------------------------------------------------------------------------------

    async def create_user(self, spec: ScimUserSpec, scim_id: str, group_ids: Iterable[str] = ()) -> JSON:
        return await self._create(SCIM_USERS, scim_user_object(spec, scim_id, membership_labels(group_ids)))

    async def replace_user(self, ref: ObjectRef, spec: ScimUserSpec, *, generation: int | None = None) -> JSON:
        """New attributes under the same name (membership labels untouched)."""
        if user_object_name(spec.provider, spec.user_name) != ref.name:
            raise ValueError("a changed userName is a rename")
        try:
            return await self.kube.patch(
                SCIM_USERS, ref.name, replace_user_spec_patch(spec, generation), self.namespace, patch_type="json"
            )
        except ApiError as error:
            if error.not_found:
                raise ObjectGone(ref.name) from None
            if generation is not None and _patch_not_applied(error):
                raise ConcurrentChange(ref.name) from None
            if error.status in (400, 422):
                raise _invalid(error) from None
            raise

    async def rename_user(self, ref: ObjectRef, spec: ScimUserSpec, scim_id: str, group_ids: Iterable[str]) -> JSON:
        """Move the user to the object its new userName names: create it (NameTaken if that userName
        is in use), then delete the old one. The user is never absent; the new object names its
        predecessor, so a cache that sees it buries the old object whatever order events come in."""
        obj = scim_user_object(spec, scim_id, membership_labels(group_ids))
        obj["metadata"]["annotations"][ANNOTATION_RENAMED_FROM] = f"{ref.name}/{ref.uid}"
        created = await self._create(SCIM_USERS, obj)
        await self.delete(SCIM_USERS, ref)
        return created

    async def set_user_groups(self, name: str, changes: Mapping[str, bool]) -> JSON | None:
        """Join (True) or leave (False) groups: one merge patch of the user's membership labels.
        None when the user is gone and the change only removed memberships (nothing left to do)."""
        labels = {group_label(g): GROUP_MEMBER_LABEL_VALUE if joined else None for g, joined in changes.items()}
        try:
            return await self.kube.patch(SCIM_USERS, name, {"metadata": {"labels": labels}}, self.namespace)
        except ApiError as error:
            if error.not_found:
                if not any(changes.values()):
                    return None
                raise ObjectGone(name) from None
            raise

    # --- groups -----------------------------------------------------------------------------------

    async def create_group(self, spec: ScimGroupSpec, scim_id: str) -> JSON:
        return await self._create(SCIM_GROUPS, scim_group_object(spec, scim_id))

    async def update_group(
        self,
        name: str,
        spec: ScimGroupSpec | None,
        members_revision: int | None = None,
        seen: GroupVersion | None = None,
    ) -> JSON:
        """Replace the group's attributes, or (spec None) only bump its lastModified: every change of
        its members does that, so the group's version follows its representation. `members_revision`:
        the resourceVersion of the membership label writes just made (ANNOTATION_MEMBERS_REVISION).

        `seen`: the group as the caller read it. The recorded revision then only ever grows: the
        write keeps the higher of the two, and is refused (ConcurrentChange) when another replica
        recorded one since, so a late, lower revision never replaces a higher one and every replica
        keeps waiting for the newest membership write before it answers from its cache."""
        operations: list[JSON] = []
        if spec is not None:
            operations.append({"op": "add", "path": "/spec", "value": spec.dump()})
        if members_revision:
            path = f"/metadata/annotations/{escape_pointer(ANNOTATION_MEMBERS_REVISION)}"
            if seen is not None:
                if seen.members_revision:  # compare-and-set on the recorded revision
                    operations.append({"op": "test", "path": path, "value": str(seen.members_revision)})
                else:  # none recorded yet: the object itself must be as read
                    operations.append(
                        {"op": "test", "path": "/metadata/resourceVersion", "value": str(seen.resource_version)}
                    )
                members_revision = max(members_revision, seen.members_revision)
            operations.append({"op": "add", "path": path, "value": str(members_revision)})
        operations.append(
            {
                "op": "add",
                "path": f"/metadata/annotations/{escape_pointer(ANNOTATION_LAST_MODIFIED)}",
                "value": now_iso(),
            }
        )
        try:
            return await self.kube.patch(SCIM_GROUPS, name, operations, self.namespace, patch_type="json")
        except ApiError as error:
            if error.not_found:
                raise ObjectGone(name) from None
            if seen is not None and _patch_not_applied(error):
                raise ConcurrentChange(name) from None
            if error.status in (400, 422):
                raise _invalid(error) from None
            raise

    # --- both -------------------------------------------------------------------------------------

    async def delete(self, resource: Resource, ref: ObjectRef) -> bool:
        """Delete exactly this object (uid precondition) and return once it is gone from the API
        server. False when it was gone already (404, or its name now holds another object)."""
        try:
            answer = await self.kube.delete(
                resource, ref.name, self.namespace, preconditions={"uid": ref.uid} if ref.uid else None
            )
        except ApiError as error:
            if error.not_found or error.conflict:
                return False
            raise
        if (answer.get("metadata") or {}).get("deletionTimestamp"):
            await self._wait_gone(resource, ref)
        return True

    async def _wait_gone(self, resource: Resource, ref: ObjectRef) -> None:
        deadline = time.monotonic() + self.delete_wait
        pause = 0.02
        while time.monotonic() < deadline:
            current = await self.get(resource, ref.name)
            if current is None or ref_of(current).uid != ref.uid:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
        raise DeletionPending(f"{ref.name} is still held by a finalizer")

    async def _create(self, resource: Resource, obj: JSON) -> JSON:
        try:
            return await self.kube.create(resource, obj, self.namespace)
        except ApiError as error:
            if error.conflict:
                raise NameTaken(obj["metadata"]["name"]) from None
            if error.status in (400, 422):
                raise _invalid(error) from None
            raise


def current_last(objects: list[JSON]) -> list[JSON]:
    """Objects of one user id in rename order: an object another one names as its predecessor comes
    before it. Without that annotation (objects written before it existed) creation order decides
    — creationTimestamp has one-second resolution, so the resourceVersion breaks ties, which a write
    to the old object after the rename could mislead; the annotation is exact."""
    named = {
        str(((o.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_RENAMED_FROM, "")) for o in objects
    }

    def order(obj: JSON) -> tuple[int, str, int]:
        ref = ref_of(obj)
        superseded = f"{ref.name}/{ref.uid}" in named
        return (0 if superseded else 1, *_age_key(obj))

    return sorted(objects, key=order)


def _age_key(obj: JSON) -> tuple[str, int]:
    meta = obj.get("metadata") or {}
    try:
        version = int(meta.get("resourceVersion", "0"))
    except ValueError:
        version = 0
    return (str(meta.get("creationTimestamp", "")), version)


def _patch_not_applied(error: ApiError) -> bool:
    """A JSON patch whose `test` failed: the API server answers 422 with a generic message and no
    causes (a schema refusal names its fields in details.causes). Our patches' other operations
    always apply, so this is the guard failing: the object changed since it was read."""
    return error.status == 422 and not (error.body.get("details") or {}).get("causes")
