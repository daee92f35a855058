"""The gateway's watch-fed, in-memory view of ScimUsers and ScimGroups.

Answers GET by id, `userName eq` / `externalId eq` / `displayName eq` filters, paging in a stable
order, group members and user groups without touching the API server. Fed by the informers and by
the gateway's own writes (write-through, so a replica reads its own writes at once). Every object
carries its resourceVersion; an older version never replaces a newer one, and tombstones stop a
late watch event from resurrecting something this replica just deleted.
"""

from __future__ import annotations

import bisect
import hashlib
import operator
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubescim import jsonio
from kubescim.constants import ANNOTATION_MEMBERS_REVISION, ANNOTATION_RENAMED_FROM, LABEL_PROVIDER, LABEL_SCIM_ID
from kubescim.informer import resource_version_int
from kubescim.kube import JSON
from kubescim.multimap import CompactMultiMap
from kubescim.objects import group_ids_from_labels
from kubescim.scim.learned import LearnedAttributes
from kubescim.scim.resources import fold

# Late events of a deleted object arrive within milliseconds; a relist forgets all tombstones anyway.
MAX_TOMBSTONES = 10_000
SortKey = tuple[str, str]  # (creationTimestamp, id): new objects sort last, so paging is stable
_BY_SCIM_ID = operator.attrgetter("scim_id")
_BY_CREATED = operator.attrgetter("created")


@dataclass(slots=True)
class Entry:
    """One cached ScimUser or ScimGroup, kept compact: a replica holds every user of every provider.

    The spec is kept as its JSON text (a third of the size of the parsed dicts) and parsed when a
    request needs it; the fields the indexes need are kept parsed."""

    object_name: str
    scim_id: str
    provider: str
    uid: str
    resource_version: int
    created: str
    last_modified: str
    spec_json: bytes
    groups: tuple[str, ...]  # SCIM ids of the groups a user is in (from its labels); () for groups
    unique_value: str | None  # userName of a user, displayName of a group
    external_id: str | None
    generation: int = 0
    members_revision: int = 0  # a group's latest membership write (ANNOTATION_MEMBERS_REVISION)

    @property
    def spec(self) -> dict[str, Any]:
        """A fresh copy of the spec: callers may change it freely."""
        spec: dict[str, Any] = jsonio.loads(self.spec_json)
        return spec

    @property
    def sort_key(self) -> SortKey:
        return (self.created, self.scim_id)

    @property
    def version(self) -> str:
        """meta.version: a digest of what the SCIM representation is made of (attributes, group
        memberships, lastModified; a group's member changes bump its lastModified). Not the
        resourceVersion: the operator's status and label writes must not change a client's ETag."""
        digest = hashlib.blake2b(self.spec_json, digest_size=8)
        digest.update(("\0" + "\0".join(self.groups) + "\0" + self.last_modified).encode())
        return f'W/"{digest.hexdigest()}"'

    def group_ids(self) -> set[str]:
        return set(self.groups)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def entry_from_object(obj: JSON, last_modified_annotation: str) -> Entry | None:
    meta = obj.get("metadata", {})
    labels = dict(meta.get("labels") or {})
    scim_id = labels.get(LABEL_SCIM_ID)
    provider = labels.get(LABEL_PROVIDER) or (obj.get("spec") or {}).get("provider")
    if not scim_id or not provider:
        return None  # not made by a gateway (or mid-edit by hand): invisible to SCIM
    created = str(meta.get("creationTimestamp", ""))
    annotations = meta.get("annotations") or {}
    spec = obj.get("spec") or {}
    unique = spec.get("userName", spec.get("displayName"))
    external_id = spec.get("externalId")
    return Entry(
        object_name=str(meta.get("name", "")),
        scim_id=scim_id,
        provider=sys.intern(str(provider)),
        uid=str(meta.get("uid", "")),
        resource_version=resource_version_int(obj),
        created=sys.intern(created),  # many objects share a creation second
        last_modified=sys.intern(str(annotations.get(last_modified_annotation) or created)),
        spec_json=jsonio.dumps(spec),
        # Group ids repeat across thousands of users: one string object each.
        groups=tuple(sys.intern(group_id) for group_id in group_ids_from_labels(labels)),
        unique_value=unique if isinstance(unique, str) else None,
        external_id=external_id if isinstance(external_id, str) else None,
        members_revision=_int(annotations.get(ANNOTATION_MEMBERS_REVISION)),
        generation=int(meta.get("generation") or 0),
    )


@dataclass
class _Ordered:
    """Ids of one provider's users or groups in stable (created, id) order."""

    keys: list[SortKey] = field(default_factory=list)

    def add(self, key: SortKey) -> None:
        position = bisect.bisect_left(self.keys, key)
        if position >= len(self.keys) or self.keys[position] != key:
            self.keys.insert(position, key)

    def remove(self, key: SortKey) -> None:
        position = bisect.bisect_left(self.keys, key)
        if position < len(self.keys) and self.keys[position] == key:
            del self.keys[position]


class Collection:
    """Users or groups: by id, by object name, by a folded unique key, in order, per provider."""

    def __init__(self, last_modified_annotation: str, unique_attribute: str) -> None:
        self.annotation = last_modified_annotation
        self.unique_attribute = unique_attribute
        self.by_id: dict[str, Entry] = {}
        self.by_object_name: dict[str, str] = {}
        self.by_unique = CompactMultiMap()  # "provider\0folded userName/displayName" -> ids
        self.by_external_id = CompactMultiMap()  # "provider\0externalId" -> ids
        self.ordered: dict[str, _Ordered] = defaultdict(_Ordered)
        # object name -> uid of the deleted object that had it: its late events must not resurrect it.
        # (A custom resource's DELETE answers with a bare Status: there is no deletion revision to
        # compare with, and the uid is exact anyway.) Forgotten at the next relist, or oldest first.
        self.tombstones: dict[str, str] = {}
        self.listeners: list[Any] = []
        self.spec_observers: list[Callable[[str, JSON], None]] = []  # (provider, spec) of every object seen

    def _unique_key(self, entry: Entry) -> str | None:
        value = entry.unique_value
        return f"{entry.provider}\0{fold(value)}" if value is not None else None

    def _external_key(self, entry: Entry) -> str | None:
        value = entry.external_id
        return f"{entry.provider}\0{value}" if value is not None else None

    def _unlink(self, entry: Entry) -> None:
        self.by_id.pop(entry.scim_id, None)
        if self.by_object_name.get(entry.object_name) == entry.scim_id:
            del self.by_object_name[entry.object_name]
        for index, key in (
            (self.by_unique, self._unique_key(entry)),
            (self.by_external_id, self._external_key(entry)),
        ):
            if key is not None:
                index.discard(key, entry.scim_id)
        self.ordered[entry.provider].remove(entry.sort_key)

    def _link(self, entry: Entry) -> None:
        self.by_id[entry.scim_id] = entry
        self.by_object_name[entry.object_name] = entry.scim_id
        for index, key in (
            (self.by_unique, self._unique_key(entry)),
            (self.by_external_id, self._external_key(entry)),
        ):
            if key is not None:
                index.add(key, entry.scim_id)
        self.ordered[entry.provider].add(entry.sort_key)

    def upsert(self, obj: JSON) -> Entry | None:
        """Apply an object (watch event or our own write). Returns the entry now cached for it."""
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            # Being deleted (a finalizer holds it): already gone for SCIM.
            self.bury(str(meta.get("name", "")), str(meta.get("uid", "")))
            return None
        entry = entry_from_object(obj, self.annotation)
        if entry is None:
            return None
        for observe in self.spec_observers:
            observe(entry.provider, obj.get("spec") or {})
        dead = self.tombstones.get(entry.object_name)
        if dead is not None:
            if dead == entry.uid:
                return None  # a late event of an object deleted since
            del self.tombstones[entry.object_name]  # the name holds a new object now
        current = self.by_id.get(entry.scim_id)
        predecessor = (meta.get("annotations") or {}).get(ANNOTATION_RENAMED_FROM)
        first_sight = current is None or current.object_name != entry.object_name
        if first_sight and isinstance(predecessor, str) and "/" in predecessor:
            # A rename's new object: the old one is deleted, or about to be, whatever we see of it later.
            old_name, _, old_uid = predecessor.partition("/")
            self.bury(old_name, old_uid)
            current = self.by_id.get(entry.scim_id)
        if current is not None:
            if current.object_name == entry.object_name and current.resource_version > entry.resource_version:
                return current
            if current.object_name != entry.object_name and _newer_object(current, entry):
                return current  # the older object of an interrupted rename
            self._unlink(current)
        previous = self.by_object_name.get(entry.object_name)
        if previous is not None and previous != entry.scim_id and previous in self.by_id:
            self._unlink(self.by_id[previous])
        self._link(entry)
        for listener in self.listeners:
            listener(current, entry)
        return entry

    def bury(self, name: str, uid: str) -> None:
        """This object is deleted (or about to be): drop it, and ignore its events from now on."""
        self.tombstones.pop(name, None)
        self.tombstones[name] = uid  # (re)inserted last: the oldest tombstones go first
        if len(self.tombstones) > MAX_TOMBSTONES:
            del self.tombstones[next(iter(self.tombstones))]
        scim_id = self.by_object_name.get(name)
        entry = self.by_id.get(scim_id) if scim_id is not None else None
        if entry is not None and entry.object_name == name and entry.uid == uid:
            self._unlink(entry)
            for listener in self.listeners:
                listener(entry, None)

    def unbury(self, name: str, uid: str) -> None:
        """A delete we announced failed: the object's next event may show it again."""
        if self.tombstones.get(name) == uid:
            del self.tombstones[name]

    def remove(self, obj: JSON) -> None:
        """A DELETED event. The tombstone stays: a write's response from before the delete may
        still be on its way to the write-through."""
        meta = obj.get("metadata", {})
        self.bury(str(meta.get("name", "")), str(meta.get("uid", "")))

    def replace_all(self, objects: list[JSON], list_version: str) -> None:
        """A fresh list: apply it, drop what is gone."""
        self.apply_page(objects)
        self.drop_unseen({str(o.get("metadata", {}).get("name", "")) for o in objects}, list_version)

    def apply_page(self, objects: list[JSON]) -> None:
        """One page of a (re)list: upserts, never older than what is cached."""
        for obj in objects:
            self.upsert(obj)

    def drop_unseen(self, seen: set[str], list_version: str) -> None:
        """The (re)list is complete: what it did not hold, and we have no newer version of, is gone."""
        version = int(list_version) if list_version.isdigit() else 0
        for name, scim_id in list(self.by_object_name.items()):
            entry = self.by_id.get(scim_id)
            if name not in seen and entry is not None and entry.resource_version <= version:
                self._unlink(entry)
                for listener in self.listeners:
                    listener(entry, None)
        # A name the complete list no longer holds cannot send another event of its dead object.
        self.tombstones = {n: u for n, u in self.tombstones.items() if n in seen}

    def on_event(self, kind: str, obj: JSON) -> None:
        if kind == "DELETED":
            self.remove(obj)
        else:
            self.upsert(obj)

    def find_unique(self, provider: str, value: str) -> list[Entry]:
        return [self.by_id[i] for i in self.by_unique.values_of(f"{provider}\0{fold(value)}") if i in self.by_id]

    def find_external(self, provider: str, value: str) -> list[Entry]:
        return [self.by_id[i] for i in self.by_external_id.values_of(f"{provider}\0{value}") if i in self.by_id]

    def in_order(self, provider: str) -> list[Entry]:
        return [self.by_id[key[1]] for key in self.ordered[provider].keys if key[1] in self.by_id]

    def page(self, provider: str, offset: int, count: int) -> list[Entry]:
        """Entries offset..offset+count in order: O(page), not O(collection)."""
        keys = self.ordered[provider].keys[offset : offset + count]
        return [self.by_id[key[1]] for key in keys if key[1] in self.by_id]

    def count(self, provider: str) -> int:
        return len(self.ordered[provider].keys)


def _newer_object(a: Entry, b: Entry) -> bool:
    """Of two objects carrying one SCIM id (a rename in flight), is `a` the newer? A rename creates
    the new object after the old one, so creation order decides; resourceVersions of two different
    objects say nothing (the old one may have been written to since)."""
    return (a.created, a.resource_version) > (b.created, b.resource_version)


class Index:
    """Users, groups, and the membership relation derived from user labels."""

    def __init__(self, last_modified_annotation: str) -> None:
        self.users = Collection(last_modified_annotation, "userName")
        self.groups = Collection(last_modified_annotation, "displayName")
        self.members: dict[str, set[str]] = defaultdict(set)  # group id -> user ids
        self.users.listeners.append(self._on_user_change)
        self.learned = LearnedAttributes()  # extension attributes users carry, for /Schemas
        self.users.spec_observers.append(lambda provider, spec: self.learned.observe(provider, spec.get("extensions")))

    def _on_user_change(self, old: Entry | None, new: Entry | None) -> None:
        old_groups = old.group_ids() if old else set()
        new_groups = new.group_ids() if new else set()
        if old is not None:
            for group_id in old_groups - new_groups if new and new.scim_id == old.scim_id else old_groups:
                self.members[group_id].discard(old.scim_id)
                if not self.members[group_id]:
                    del self.members[group_id]
        if new is not None:
            for group_id in new_groups:
                self.members[group_id].add(new.scim_id)

    def group_members(self, group_id: str) -> list[Entry]:
        users = [u for u in map(self.users.by_id.get, self.members.get(group_id, ())) if u is not None]
        # By Entry.sort_key, (created, scim_id): two stable sorts on one attribute each build no key
        # tuples, and a 200 answer to a member PATCH sorts every member (a third faster, measured).
        users.sort(key=_BY_SCIM_ID)
        users.sort(key=_BY_CREATED)
        return users

    def member_ids(self, group_id: str) -> set[str]:
        return set(self.members.get(group_id, ()))

    def user_groups(self, user: Entry) -> list[Entry]:
        groups = (self.groups.by_id.get(g) for g in user.group_ids())
        return sorted((g for g in groups if g is not None and g.provider == user.provider), key=lambda g: g.sort_key)
