"""SCIM semantics for Users and Groups, over the index (reads) and the store (writes).

The routes stay thin: they parse HTTP and call one method here. Everything a client can get wrong
raises ScimError before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubescim.api.models import ScimGroupSpec
from kubescim.kube import ApiUnavailable
from kubescim.scim.errors import ScimError, ScimType, bad_request, not_found, unavailable
from kubescim.scim.filter import (
    Filter,
    ResourceSchema,
    attribute_values,
    attributes_named,
    equality_lookup,
    evaluate,
    parse_attr_path,
    parse_filter,
)
from kubescim.scim.learned import extension_schemas
from kubescim.scim.patch import (
    apply_operations,
    member_delta,
    parse_patch_request,
    split_member_operations,
)
from kubescim.scim.projection import parse_attribute_list, project
from kubescim.scim.resources import (
    group_spec_from_scim,
    group_to_scim,
    member_rows,
    members_from_scim,
    new_id,
    user_object_name,
    user_spec_from_scim,
    user_to_scim,
)
from kubescim.scim.schema import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    GROUP_URN,
    LIST_RESPONSE_URN,
    USER_SCHEMA,
    USER_URN,
)
from scim_gateway.index import Collection, Entry, Index
from scim_gateway.store import KubeStore

log = logging.getLogger(__name__)
USERS_SCHEMA = ResourceSchema(USER_SCHEMA, (ENTERPRISE_SCHEMA,))
GROUPS_SCHEMA = ResourceSchema(GROUP_SCHEMA)
MAX_CONFLICT_RETRIES = 4


@dataclass(frozen=True)
class Query:
    """A list request: filter, paging, sorting and projection, already parsed."""

    filter: Filter | None = None
    start_index: int = 1
    count: int = 100
    sort_by: str | None = None
    descending: bool = False
    attributes: str | None = None
    excluded_attributes: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        filter: str | None,
        start_index: Any,
        count: Any,
        sort_by: str | None,
        sort_order: str | None,
        attributes: str | None,
        excluded_attributes: str | None,
        max_count: int,
        default_count: int = 100,
    ) -> Query:
        start = _int_param(start_index, "startIndex", 1)
        size = _int_param(count, "count", default_count)
        if sort_order is not None and sort_order.lower() not in ("ascending", "descending"):
            raise bad_request("sortOrder must be ascending or descending")
        return cls(
            filter=parse_filter(filter) if filter is not None and filter.strip() else None,
            start_index=max(start, 1),
            count=min(max(size, 0), max_count),
            sort_by=sort_by or None,
            descending=(sort_order or "").lower() == "descending",
            attributes=attributes,
            excluded_attributes=excluded_attributes,
        )


def _int_param(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad_request(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be an integer") from None


def _check_if_match(entry: Entry, if_match: str | None) -> None:
    if if_match is None or if_match.strip() == "*":
        return
    wanted = {_opaque_tag(tag) for tag in if_match.split(",")}
    if _opaque_tag(entry.version) not in wanted:
        raise ScimError(412, f"version mismatch: the resource is at {entry.version}")


def _opaque_tag(tag: str) -> str:
    return tag.strip().removeprefix("W/").strip('"')


# How long a request waits for this replica's cache to see a group's latest membership write before
# answering 503 (Retry-After 1): a watch lags milliseconds, so this is for a stalled watch only.
MEMBERS_WAIT_SECONDS = 3.0


@dataclass(frozen=True)
class ResourceKind:
    """One SCIM resource type as the service serves it: its core schema, the attribute that names it
    uniquely (an equality filter on it is a lookup, not a scan), and whether it has members."""

    name: str
    core_urn: str
    unique_attribute: str
    has_members: bool


USERS = ResourceKind("User", USER_URN, "userName", has_members=False)
GROUPS = ResourceKind("Group", GROUP_URN, "displayName", has_members=True)


class ScimService:
    def __init__(
        self,
        index: Index,
        store: KubeStore,
        *,
        patch_response_member_limit: int = 10_000,
        users_revision: Callable[[], int] | None = None,
    ) -> None:
        self.index = index
        self.store = store
        self.patch_response_member_limit = patch_response_member_limit
        # How far the watch of ScimUsers has come (the informer's resourceVersion): memberships in
        # the index are complete up to there. None: the index is the only writer (unit use).
        self.users_revision = users_revision
        self._user_schemas: dict[str, tuple[int, ResourceSchema]] = {}

    def users_schema(self, provider: str) -> ResourceSchema:
        """The User schema with every extension this provider's users carry (learned ones typed as
        first seen), so PATCH paths and filters treat a known custom extension as one."""
        learned = self.index.learned
        cached = self._user_schemas.get(provider)
        if cached is not None and cached[0] == learned.version:
            return cached[1]
        found = learned.for_provider(provider)
        schema = ResourceSchema(USER_SCHEMA, extension_schemas(found)) if found else USERS_SCHEMA
        self._user_schemas[provider] = (learned.version, schema)
        return schema

    # --- representations ------------------------------------------------------------------------

    def user_resource(self, entry: Entry, base_url: str) -> dict[str, Any]:
        groups = [
            {
                "value": g.scim_id,
                "display": str(g.spec.get("displayName", "")),
                "$ref": f"{base_url}/Groups/{g.scim_id}",
                "type": "direct",
            }
            for g in self.index.user_groups(entry)
        ]
        return user_to_scim(
            entry.spec,
            scim_id=entry.scim_id,
            created=entry.created,
            last_modified=entry.last_modified,
            version=entry.version,
            location=f"{base_url}/Users/{entry.scim_id}",
            groups=groups,
        )

    def group_resource(self, entry: Entry, base_url: str, *, with_members: bool = True) -> dict[str, Any]:
        members = None
        if with_members:
            members = member_rows(
                [u.scim_id for u in self.index.group_members(entry.scim_id) if u.provider == entry.provider], base_url
            )
        return group_to_scim(
            entry.spec,
            scim_id=entry.scim_id,
            created=entry.created,
            last_modified=entry.last_modified,
            version=entry.version,
            location=f"{base_url}/Groups/{entry.scim_id}",
            members=members,
        )

    # --- lookups --------------------------------------------------------------------------------

    # A request addressed to one resource reads it from the API server (one GET): the index may lag
    # behind a delete, rename or change made through another replica by a few milliseconds, and a
    # client that was just answered 204 must get 404 everywhere (RFC 7644 §3.6).

    # While the API server is unreachable nothing can change in etcd, so the cache is the best answer
    # for a read (and a write fails with 503 anyway).

    async def get_user_entry(self, provider: str, scim_id: str) -> Entry:
        cached = self.index.users.by_id.get(scim_id)
        cached = cached if cached is not None and cached.provider == provider else None
        try:
            entry = await self.store.fetch_user(provider, scim_id, cached)
        except ApiUnavailable:
            if cached is None:
                raise
            entry = cached
        if entry is None:
            raise not_found(f"User {scim_id} not found")
        return entry

    async def get_group_entry(self, provider: str, scim_id: str) -> Entry:
        cached = self.index.groups.by_id.get(scim_id)
        try:
            entry = await self.store.fetch_group(provider, scim_id)
        except ApiUnavailable:
            if cached is None or cached.provider != provider:
                raise
            entry = cached
        if entry is None:
            raise not_found(f"Group {scim_id} not found")
        return entry

    def _collection(self, kind: ResourceKind) -> Collection:
        return self.index.users if kind is USERS else self.index.groups

    def _schema(self, kind: ResourceKind, provider: str) -> ResourceSchema:
        return self.users_schema(provider) if kind is USERS else GROUPS_SCHEMA

    async def _candidates(self, kind: ResourceKind, provider: str, query: Query) -> list[Entry]:
        """Entries the filter may match, from an index when the filter allows it."""
        collection = self._collection(kind)
        if query.filter is not None:
            unique = equality_lookup(query.filter, kind.unique_attribute)
            if isinstance(unique, str):
                if kind is USERS:
                    # Okta checks before it creates (and links to what it finds), possibly on another
                    # replica than the one that created or deleted: ask the API server (one GET of
                    # the name the userName derives), never the cache alone.
                    fetched = await self.store.fetch_user_by_name(user_object_name(provider, unique))
                    return [fetched] if fetched is not None and fetched.provider == provider else []
                return collection.find_unique(provider, unique)
            external = equality_lookup(query.filter, "externalId")
            if isinstance(external, str):
                return collection.find_external(provider, external)
            by_id = equality_lookup(query.filter, "id")
            if isinstance(by_id, str):
                entry = collection.by_id.get(by_id)
                return [entry] if entry is not None and entry.provider == provider else []
        return collection.in_order(provider)

    async def list_resources(self, provider: str, query: Query, base_url: str, kind: ResourceKind) -> dict[str, Any]:
        collection = self._collection(kind)
        schema = self._schema(kind, provider)
        attributes = parse_attribute_list(query.attributes)
        excluded = parse_attribute_list(query.excluded_attributes)
        wants_members = kind.has_members and _wants(attributes, excluded, "members", query)

        def render(entry: Entry, members: bool) -> dict[str, Any]:
            if kind.has_members:
                return self.group_resource(entry, base_url, with_members=members)
            return self.user_resource(entry, base_url)

        page: list[tuple[Entry, dict[str, Any] | None]]
        if query.filter is None and not query.sort_by:
            # Plain paging (Okta's import, kubectl-like listing): read the page straight off the
            # ordered index, so a page costs the same at 1,000 and 100,000 users.
            total = collection.count(provider)
            page = [(entry, None) for entry in collection.page(provider, query.start_index - 1, query.count)]
        else:
            candidates = await self._candidates(kind, provider, query)
            filter_needs_members = (
                query.filter is not None and kind.has_members and "members" in attributes_named(query.filter)
            )
            matched: list[tuple[Entry, dict[str, Any] | None]] = []
            for entry in candidates:
                if query.filter is None:
                    matched.append((entry, None))
                    continue
                resource = render(entry, filter_needs_members)
                if evaluate(query.filter, resource, schema):
                    reusable = not kind.has_members or filter_needs_members == wants_members
                    matched.append((entry, resource if reusable else None))
            if query.sort_by:
                matched = self._sorted(matched, query, render, schema)
            total = len(matched)
            page = matched[query.start_index - 1 : query.start_index - 1 + query.count]
        core_urn = kind.core_urn
        resources = [
            project(
                resource if resource is not None else render(entry, wants_members),
                attributes,
                excluded,
                core_urn,
            )
            for entry, resource in page
        ]
        return {
            "schemas": [LIST_RESPONSE_URN],
            "totalResults": total,
            "itemsPerPage": len(resources),
            "startIndex": query.start_index,
            "Resources": resources,
        }

    def _sorted(
        self,
        matched: list[tuple[Entry, dict[str, Any] | None]],
        query: Query,
        render: Any,
        schema: ResourceSchema,
    ) -> list[tuple[Entry, dict[str, Any] | None]]:
        try:
            path = parse_attr_path(query.sort_by or "")
        except ScimError:
            raise ScimError(400, f"invalid sortBy {query.sort_by!r}", ScimType.INVALID_PATH) from None
        rendered = [(e, r if r is not None else render(e, False)) for e, r in matched]

        def key(item: tuple[Entry, dict[str, Any]]) -> tuple[int, str]:
            values = [v for v in attribute_values(item[1], path, schema) if v is not None]
            return (0, str(values[0]).casefold()) if values else (1, "")

        # Resources without the attribute sort last in both orders (RFC 7644 §3.4.2.3).
        present = sorted((i for i in rendered if key(i)[0] == 0), key=key, reverse=query.descending)
        absent = [i for i in rendered if key(i)[0] == 1]
        return [(e, r) for e, r in present + absent]

    # --- users ----------------------------------------------------------------------------------

    async def create_user(self, provider: str, body: Any, base_url: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", ScimType.INVALID_SYNTAX)
        spec = user_spec_from_scim(body, provider)
        entry = await self.store.create_user(spec, new_id())
        return self.user_resource(entry, base_url)

    async def get_user(self, provider: str, scim_id: str, base_url: str) -> dict[str, Any]:
        return self.user_resource(await self.get_user_entry(provider, scim_id), base_url)

    async def replace_user(
        self, provider: str, scim_id: str, body: Any, base_url: str, if_match: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", ScimType.INVALID_SYNTAX)
        entry = await self.get_user_entry(provider, scim_id)
        _check_if_match(entry, if_match)
        spec = user_spec_from_scim(body, provider)
        if spec.dump() == entry.spec:
            return self.user_resource(entry, base_url)
        updated = await self.store.update_user(entry, spec)
        return self.user_resource(updated, base_url)

    async def patch_user(
        self, provider: str, scim_id: str, body: Any, base_url: str, if_match: str | None = None
    ) -> dict[str, Any]:
        operations = parse_patch_request(body)
        for attempt in range(MAX_CONFLICT_RETRIES):
            entry = await self.get_user_entry(provider, scim_id)
            _check_if_match(entry, if_match)
            current = user_to_scim(
                entry.spec,
                scim_id=entry.scim_id,
                created="",
                last_modified="",
                version="",
                location="",
                groups=[],
            )
            for read_only in ("id", "meta", "groups", "schemas"):
                current.pop(read_only, None)
            patched = apply_operations(current, operations, self.users_schema(provider))
            spec = user_spec_from_scim(patched, provider)
            if spec.dump() == entry.spec:
                return self.user_resource(entry, base_url)
            try:
                updated = await self.store.update_user(entry, spec, generation_guard=entry.generation)
            except ScimError as error:
                if (
                    error.status == 409
                    and error.scim_type == ScimType.INVALID_VALUE
                    and attempt < MAX_CONFLICT_RETRIES - 1
                ):
                    continue  # re-read (get_user_entry reads the API server) and re-apply
                raise
            return self.user_resource(updated, base_url)
        raise ScimError(409, "the user keeps changing concurrently; retry")  # pragma: no cover

    async def delete_user(self, provider: str, scim_id: str, if_match: str | None = None) -> None:
        entry = await self.get_user_entry(provider, scim_id)
        _check_if_match(entry, if_match)
        await self.store.delete_user(entry)

    # --- groups ---------------------------------------------------------------------------------

    async def _resolve_members(self, provider: str, ids: set[str]) -> list[Entry]:
        """The users to add. An id unknown even to the API server is skipped (and logged): ids are
        server-assigned, so it can never become a user, and RFC 7644 does not require rejecting it."""
        entries = []
        unknown = []
        for scim_id in sorted(ids):
            entry = self.index.users.by_id.get(scim_id)
            if entry is None or entry.provider != provider:
                entry = await self.store.fetch_user(provider, scim_id, None)
            if entry is None:
                unknown.append(scim_id)
            else:
                entries.append(entry)
        if unknown:
            log.warning(
                "ignored unknown member ids", extra={"provider": provider, "count": len(unknown), "ids": unknown[:5]}
            )
        return entries

    async def create_group(self, provider: str, body: Any, base_url: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", ScimType.INVALID_SYNTAX)
        spec = group_spec_from_scim(body, provider)
        members = await self._resolve_members(provider, set(members_from_scim(body) or []))
        entry = await self.store.create_group(spec, new_id())
        if members:
            revision = await self.store.set_memberships(entry.scim_id, members, [])
            entry = await self.store.update_group(entry, None, revision)
        return self.group_resource(entry, base_url)

    async def _members_current(self, entry: Entry) -> None:
        """Wait until this replica's cache has seen the group's latest membership write (its
        revision is on the group, read fresh from the API server): a member change acknowledged by
        another replica then shows here too, and a PATCH here never computes from stale members."""
        if self.users_revision is None or entry.members_revision <= self.users_revision():
            return
        deadline = time.monotonic() + MEMBERS_WAIT_SECONDS
        while entry.members_revision > self.users_revision():
            if time.monotonic() > deadline:
                raise unavailable("this replica's membership cache is catching up", retry_after=1)
            await asyncio.sleep(0.005)

    async def get_group(
        self, provider: str, scim_id: str, base_url: str, attributes: str | None, excluded: str | None
    ) -> dict[str, Any]:
        entry = await self.get_group_entry(provider, scim_id)
        attrs, excl = parse_attribute_list(attributes), parse_attribute_list(excluded)
        with_members = _wants(attrs, excl, "members", None)
        if with_members:
            await self._members_current(entry)
        resource = self.group_resource(entry, base_url, with_members=with_members)
        return project(resource, attrs, excl, GROUP_URN)

    async def replace_group(
        self, provider: str, scim_id: str, body: Any, base_url: str, if_match: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", ScimType.INVALID_SYNTAX)
        entry = await self.get_group_entry(provider, scim_id)
        _check_if_match(entry, if_match)
        spec = group_spec_from_scim(body, provider)
        wanted = set(members_from_scim(body) or [])
        await self._members_current(entry)
        current = self.index.member_ids(entry.scim_id)
        add = await self._resolve_members(provider, wanted - current)
        return await self._write_group(entry, spec, add, current - wanted, base_url, with_members=True)

    async def patch_group(
        self,
        provider: str,
        scim_id: str,
        body: Any,
        base_url: str,
        if_match: str | None = None,
        attributes: str | None = None,
        excluded: str | None = None,
    ) -> dict[str, Any]:
        """Apply the PATCH and return the group, projected by `attributes` / `excludedAttributes`
        (RFC 7644 section 3.9): its members are listed only when wanted and at most
        patch_response_member_limit of them."""
        attrs, excl = parse_attribute_list(attributes), parse_attribute_list(excluded)
        operations = parse_patch_request(body)
        entry = await self.get_group_entry(provider, scim_id)
        _check_if_match(entry, if_match)
        member_ops, other_ops = split_member_operations(operations)
        spec: ScimGroupSpec | None = None
        if other_ops:
            current = {k: v for k, v in entry.spec.items() if k != "provider"}
            spec = group_spec_from_scim(apply_operations(current, other_ops, GROUPS_SCHEMA), provider)
        if member_ops:
            await self._members_current(entry)
        current_members = self.index.member_ids(entry.scim_id)
        to_add, to_remove = member_delta(member_ops, current_members) if member_ops else (set(), set())
        add = await self._resolve_members(provider, to_add)
        count = len(current_members) + len(to_add) - len(to_remove)
        with_members = count <= self.patch_response_member_limit and _wants(attrs, excl, "members", None)
        resource = await self._write_group(entry, spec, add, to_remove, base_url, with_members=with_members)
        return project(resource, attrs, excl, GROUP_URN)

    async def _write_group(
        self,
        entry: Entry,
        spec: ScimGroupSpec | None,
        add: list[Entry],
        remove_ids: set[str],
        base_url: str,
        *,
        with_members: bool,
    ) -> dict[str, Any]:
        remove = [u for u in (self.index.users.by_id.get(i) for i in remove_ids) if u is not None]
        spec_changed = spec is not None and spec.dump() != entry.spec
        if spec_changed:
            # Attributes first: the API server may still refuse them, and then no membership moved.
            entry = await self.store.update_group(entry, spec)
            if add or remove:
                revision = await self.store.set_memberships(entry.scim_id, add, remove)
                entry = await self.store.update_group(entry, None, revision)
        elif add or remove:
            # Membership only (Okta's push): label the users, then bump the group's lastModified and
            # record the labels' revision on it, so every replica can tell when its cache has them.
            # Both are idempotent, so a client's retry after a partial failure converges.
            revision = await self.store.set_memberships(entry.scim_id, add, remove)
            entry = await self.store.bump_group(entry, revision)
        return self.group_resource(entry, base_url, with_members=with_members)

    async def delete_group(self, provider: str, scim_id: str, if_match: str | None = None) -> None:
        entry = await self.get_group_entry(provider, scim_id)
        _check_if_match(entry, if_match)
        await self.store.delete_group(entry)


def _wants(attributes: Any, excluded: Any, name: str, query: Query | None) -> bool:
    if attributes:
        return any(p.attr.lower() == name for p in attributes)
    if excluded:
        return not any(p.attr.lower() == name and p.sub is None for p in excluded)
    return True
