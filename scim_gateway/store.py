"""The gateway's storage adapter: the shared ScimStorage (the one writer of ScimUser / ScimGroup),
plus what only the gateway needs — SCIM errors for what the client must fix, fresh reads for
requests addressed to one resource, and write-through to this replica's index.

Every method either completes its write in the API server or raises: ScimError for what the client
must fix (409 uniqueness, 412 precondition, 400 invalid), ApiUnavailable when the API server cannot
be reached (answered 503 + Retry-After).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from kubescim.api.models import ScimGroupSpec, ScimUserSpec
from kubescim.constants import SCIM_GROUPS, SCIM_USERS
from kubescim.informer import resource_version_int
from kubescim.kube import JSON, Kube, Resource
from kubescim.scim.errors import ScimError, ScimType, conflict, not_found
from kubescim.scim.resources import user_object_name
from kubescim.storage import (
    ConcurrentChange,
    DeletionPending,
    GroupVersion,
    InvalidObject,
    NameTaken,
    ObjectGone,
    ObjectRef,
    ScimStorage,
)
from scim_gateway.index import Collection, Entry, Index

# A user id that keeps pointing at another object after this many deletes is a bug, not a race.
MAX_DELETE_ROUNDS = 3
# Compare-and-set rounds of a group's members revision before answering 503 (another replica's
# write in between makes one more; several in a row mean a storm of writes to that group).
MAX_REVISION_ROUNDS = 5


def _ref(entry: Entry) -> ObjectRef:
    return ObjectRef(entry.object_name, entry.uid)


def _invalid(error: InvalidObject, what: str) -> ScimError:
    # The API server's schema is stricter than anything we forgot to check: its message is precise.
    return ScimError(400, f"invalid {what}: {error}", ScimType.INVALID_VALUE)


class KubeStore:
    def __init__(self, kube: Kube, namespace: str, index: Index, *, write_concurrency: int = 32) -> None:
        self.kube = kube
        self.namespace = namespace
        self.index = index
        self.storage = ScimStorage(kube, namespace)
        self._writes = asyncio.Semaphore(write_concurrency)
        self._bumps: dict[str, _Bump] = {}
        self._group_reads: dict[str, _Read] = {}

    # --- fresh reads --------------------------------------------------------------------------------

    async def fetch_user_by_name(self, object_name: str) -> Entry | None:
        """The object a userName maps to, straight from the API server (and into the index)."""
        obj = await self.storage.get(SCIM_USERS, object_name)
        if obj is None:
            self._forget(self.index.users, object_name)
            return None
        return self.index.users.upsert(obj)

    async def fetch_user(self, provider: str, scim_id: str, cached: Entry | None) -> Entry | None:
        """The user as the API server has it now. A request addressed to one user must not act on a
        cached copy another replica has deleted, renamed or changed since: one GET by the cached
        name, and a lookup by id label when that name no longer holds the user."""
        if cached is not None:
            obj = await self.storage.get(SCIM_USERS, cached.object_name)
            if obj is None:
                self.index.users.bury(cached.object_name, cached.uid)
            else:
                entry = self.index.users.upsert(obj)
                if entry is not None and entry.scim_id == scim_id and entry.object_name == cached.object_name:
                    return entry if entry.provider == provider else None
        if not _label_value_ok(scim_id):
            return None  # not an id we could have issued
        objects = await self.storage.users_with_id(provider, scim_id)
        if not objects:
            return None
        for stale in objects[:-1]:
            # An interrupted rename left its old object behind: finish it.
            await self._delete(
                SCIM_USERS, ObjectRef(stale["metadata"]["name"], stale["metadata"]["uid"]), self.index.users
            )
        entry = self.index.users.upsert(objects[-1])
        return entry if entry is not None and entry.provider == provider else None

    async def fetch_group(self, provider: str, scim_id: str) -> Entry | None:
        """The group as the API server has it now. Concurrent requests for one group share a read,
        but only one sent after they arrived: a joiner never gets a state older than its own request
        (a group deleted before it arrived is 404), so sharing keeps every answer linearizable.
        Okta pushes a busy group as many concurrent member PATCHes: they then cost one GET per
        batch instead of one each. At most one read of a group is in flight; the next one gathers
        everyone who arrives meanwhile."""
        if not _name_ok(scim_id):
            return None  # not an id we could have issued (and not safe in a URL path)
        read = self._group_reads.get(scim_id)
        if read is None or read.sent or read.task is None:
            read = _Read()
            task = asyncio.create_task(self._read_group(scim_id, read, self._group_reads.get(scim_id)))
            task.add_done_callback(_retrieve)  # every joiner may have been cancelled
            read.task = task
            self._group_reads[scim_id] = read
        else:
            task = read.task
        entry = await asyncio.shield(task)
        return entry if entry is not None and entry.provider == provider else None

    async def _read_group(self, scim_id: str, read: _Read, previous: _Read | None) -> Entry | None:
        try:
            if previous is not None and previous.task is not None:
                await asyncio.wait([previous.task])  # its outcome is its own joiners'
            read.sent = True  # from here on the GET may be on the wire: later arrivals need the next
            obj = await self.storage.get(SCIM_GROUPS, scim_id)
        finally:
            if self._group_reads.get(scim_id) is read:
                del self._group_reads[scim_id]
        if obj is None:
            self._forget(self.index.groups, scim_id)
            return None
        return self.index.groups.upsert(obj)

    @staticmethod
    def _forget(collection: Collection, object_name: str) -> None:
        scim_id = collection.by_object_name.get(object_name)
        entry = collection.by_id.get(scim_id) if scim_id is not None else None
        if entry is not None:
            collection.bury(object_name, entry.uid)

    # --- users --------------------------------------------------------------------------------------

    async def create_user(self, spec: ScimUserSpec, scim_id: str) -> Entry:
        try:
            created = await self.storage.create_user(spec, scim_id)
        except NameTaken:
            raise conflict(f"userName {spec.user_name!r} is already in use") from None
        except InvalidObject as error:
            raise _invalid(error, "User") from None
        return self._cached_user(created)

    def _cached_user(self, obj: JSON) -> Entry:
        entry = self.index.users.upsert(obj)
        assert entry is not None
        return entry

    async def update_user(self, current: Entry, spec: ScimUserSpec, generation_guard: int | None = None) -> Entry:
        """Replace the user's attributes. A changed (case-folded) userName moves the object to its new name."""
        try:
            if user_object_name(spec.provider, spec.user_name) != current.object_name:
                # Bury the old object before its delete goes out: its late events must not bring it back.
                self.index.users.bury(current.object_name, current.uid)
                try:
                    obj = await self.storage.rename_user(_ref(current), spec, current.scim_id, current.groups)
                except BaseException:
                    self.index.users.unbury(current.object_name, current.uid)
                    raise
            else:
                obj = await self.storage.replace_user(_ref(current), spec, generation=generation_guard)
        except NameTaken:
            raise conflict(f"userName {spec.user_name!r} is already in use") from None
        except InvalidObject as error:
            raise _invalid(error, "User") from None
        except ObjectGone:
            raise not_found(f"User {current.scim_id} not found") from None
        except ConcurrentChange:
            raise ScimError(409, "the user changed concurrently; retry", ScimType.INVALID_VALUE) from None
        except DeletionPending as error:
            raise ScimError(503, f"the user's old object is still being deleted ({error}); retry") from None
        return self._cached_user(obj)

    async def delete_user(self, entry: Entry) -> None:
        """Gone from the API server before this returns. The entry was just read fresh; if its object
        was gone by the time the delete arrived, whatever object carries the id now goes too."""
        target: Entry | None = entry
        for _ in range(MAX_DELETE_ROUNDS):
            if target is None:
                return
            if await self._delete(SCIM_USERS, _ref(target), self.index.users):
                return
            target = await self.fetch_user(entry.provider, entry.scim_id, None)
        if target is not None:
            raise ScimError(503, f"User {entry.scim_id} keeps reappearing; retry")

    async def _delete(self, resource: Resource, ref: ObjectRef, collection: Collection | None = None) -> bool:
        if collection is not None:
            collection.bury(ref.name, ref.uid)
        try:
            return await self.storage.delete(resource, ref)
        except DeletionPending as error:
            raise ScimError(503, f"delete pending: {error}; retry") from None
        except BaseException:
            if collection is not None:
                collection.unbury(ref.name, ref.uid)
            raise

    async def set_memberships(self, group_id: str, add: Iterable[Entry], remove: Iterable[Entry]) -> int:
        """Label (or unlabel) users as members of a group: one small merge patch per user, concurrently.
        Idempotent, so a client's retry after a partial failure converges. Returns the highest
        resourceVersion written (0 when nothing changed)."""
        revision = 0

        async def one(entry: Entry, joined: bool) -> None:
            nonlocal revision
            async with self._writes:
                try:
                    obj = await self.storage.set_user_groups(entry.object_name, {group_id: joined})
                except ObjectGone:
                    raise ScimError(400, f"member {entry.scim_id} no longer exists", ScimType.INVALID_VALUE) from None
                if obj is not None:
                    self.index.users.upsert(obj)
                    revision = max(revision, resource_version_int(obj))

        tasks = [one(e, True) for e in add] + [one(e, False) for e in remove]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return revision

    # --- groups -------------------------------------------------------------------------------------

    async def create_group(self, spec: ScimGroupSpec, scim_id: str) -> Entry:
        try:
            created = await self.storage.create_group(spec, scim_id)
        except NameTaken:
            raise conflict(f"group id {scim_id} exists") from None
        except InvalidObject as error:
            raise _invalid(error, "Group") from None
        entry = self.index.groups.upsert(created)
        assert entry is not None
        return entry

    async def update_group(self, current: Entry, spec: ScimGroupSpec | None, members_revision: int = 0) -> Entry:
        """Replace the group's attributes (or, with spec None, only bump lastModified), recording the
        revision of the membership writes just made. That revision is compare-and-set against the
        newest copy of the group this replica has: when another replica recorded one since, the
        group is read again, and the higher of the two is recorded unless it already is."""
        base = self._newest_group(current)
        for _ in range(MAX_REVISION_ROUNDS):
            seen = GroupVersion(base.resource_version, base.members_revision) if members_revision else None
            try:
                updated = await self.storage.update_group(base.object_name, spec, members_revision or None, seen)
            except ConcurrentChange:
                fresh = await self.fetch_group(base.provider, base.scim_id)
                if fresh is None:
                    raise not_found(f"Group {current.scim_id} not found") from None
                if spec is None and fresh.members_revision >= members_revision:
                    # Another replica recorded a later membership write, bumping the group after
                    # ours was in etcd: that covers ours, and writing again would only contend.
                    return fresh
                base = fresh
                continue
            except ObjectGone:
                raise not_found(f"Group {current.scim_id} not found") from None
            except InvalidObject as error:
                raise _invalid(error, "Group") from None
            entry = self.index.groups.upsert(updated)
            assert entry is not None
            return entry
        raise ScimError(503, f"Group {current.scim_id} keeps changing; retry")

    def _newest_group(self, entry: Entry) -> Entry:
        """`entry`, or this replica's cached copy of the group when that is newer (a coalesced bump
        builds on the bump before it, which the cache holds)."""
        cached = self.index.groups.by_id.get(entry.scim_id)
        if cached is None or cached.object_name != entry.object_name:
            return entry
        return cached if cached.resource_version > entry.resource_version else entry

    async def bump_group(self, current: Entry, members_revision: int) -> Entry:
        """Bump the group's lastModified and record `members_revision`, coalescing concurrent bumps of
        one group: while one write is in flight, the requests that arrive wait for the next, which
        records the highest revision among them. Every caller returns after a write that covers its
        own revision, so its membership change is in etcd and visible to every replica; 32 concurrent
        member PATCHes of one group write it a few times instead of 32 (one etcd key, serialised)."""
        if members_revision <= 0:  # nothing was written (already members): a plain bump
            return await self.update_group(current, None, members_revision)
        bump = self._bumps.setdefault(current.scim_id, _Bump())
        bump.wanted = max(bump.wanted, members_revision)
        while bump.done < members_revision:
            if bump.task is None:
                bump.task = asyncio.create_task(self._bump_once(current, bump))
            task = bump.task
            await asyncio.shield(task)
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        entry = bump.entry
        # Drop the bump once nothing is pending, but only this one: a caller that wakes late must
        # not drop a newer bump whose write is in flight (the next caller would start a second).
        if bump.task is None and bump.wanted <= bump.done and self._bumps.get(current.scim_id) is bump:
            del self._bumps[current.scim_id]
        if entry is None:  # covered by a write this replica made before (not expected): write again
            return await self.update_group(current, None, members_revision)
        return entry

    async def _bump_once(self, current: Entry, bump: _Bump) -> None:
        target = bump.wanted
        try:
            bump.entry = await self.update_group(current, None, target)
            bump.done = max(bump.done, target)
        finally:
            bump.task = None

    async def delete_group(self, entry: Entry) -> None:
        members = self.index.group_members(entry.scim_id)
        await self._delete(SCIM_GROUPS, _ref(entry), self.index.groups)
        # Deleting a group never deletes users: it only drops their membership label.
        await self.set_memberships(entry.scim_id, [], members)


@dataclass
class _Bump:
    """One group's coalesced lastModified bump: the highest revision asked for, the highest written."""

    wanted: int = 0
    done: int = 0
    task: asyncio.Task[None] | None = None
    entry: Entry | None = None


@dataclass
class _Read:
    """One shared fresh read of a group: joinable until its GET is sent."""

    sent: bool = False
    task: asyncio.Task[Entry | None] | None = None


def _retrieve(task: asyncio.Task[Entry | None]) -> None:
    if not task.cancelled():
        task.exception()  # its joiners got it; no "exception never retrieved" when they all left


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
