"""The operator's in-memory view of the cluster: seeded by one LIST per kind, kept current by watch events.

Why not Kopf indexes: Kopf holds every handler until all indexes are filled from the initial listing,
and it does so with one toggle per listed object, each of which wakes every waiting object worker.
That is quadratic in the number of objects: with 10,000 ScimUsers the operator had processed none
after four minutes, 70% of its CPU in ToggleSet.make_toggle -> Condition.notify_all (py-spy).
This store gives the same guarantee — nothing is computed from a partial view — with one paged
LIST per kind before the first computation, then O(1) updates per event. Older events never
overwrite newer state (resourceVersion check), and deletions leave a tombstone for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from identity_operator.census import AttributeCensus
from identity_operator.mapping import TargetKind
from identity_operator.records import (
    AccessBindingRecord,
    GroupRecord,
    ProviderRecord,
    RoleRuleRecord,
    RuleRecord,
    TargetKey,
    TargetRecord,
    UserRecord,
    View,
)
from kubescim.constants import (
    ACCESS_BINDINGS,
    BUSINESS_UNIT_MAPPINGS,
    BUSINESS_UNITS,
    IDENTITY_PROVIDERS,
    ROLE_MAPPINGS,
    SCIM_GROUPS,
    TEAM_MAPPINGS,
    TEAMS,
)
from kubescim.informer import resource_version_int
from kubescim.kube import ApiError, Kube
from kubescim.multimap import CompactMultiMap

log = logging.getLogger("kubescim.operator")
# Kinds newer than the first release: an operator upgraded ahead of its CRDs still starts.
OPTIONAL_KINDS = (ROLE_MAPPINGS, ACCESS_BINDINGS)


@dataclass
class Store:
    users: dict[str, UserRecord] = field(default_factory=dict)
    users_by_group: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    users_by_user_name: CompactMultiMap = field(default_factory=CompactMultiMap)  # folded userName -> names
    groups: dict[str, GroupRecord] = field(default_factory=dict)
    rules: dict[tuple[str, str], RuleRecord] = field(default_factory=dict)
    targets: dict[TargetKey, TargetRecord] = field(default_factory=dict)
    # kind -> name -> the newest resourceVersion seen (deleted ones too): per kind, no key tuple per user.
    versions: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    census: AttributeCensus = field(default_factory=AttributeCensus)
    role_rules: dict[str, RoleRuleRecord] = field(default_factory=dict)
    providers: dict[str, ProviderRecord] = field(default_factory=dict)
    access_bindings: dict[str, AccessBindingRecord] = field(default_factory=dict)
    seeded: asyncio.Event = field(default_factory=asyncio.Event)
    _seeding: asyncio.Lock = field(default_factory=asyncio.Lock)

    def view(self) -> View:
        return View(
            self.users,
            self.users_by_group,
            self.users_by_user_name,
            self.groups,
            self.rules,
            self.targets,
            self.census,
            self.role_rules,
            self.providers,
            self.access_bindings,
        )

    def _fresh(self, kind: str, body: dict[str, Any], deleted: bool = False) -> bool:
        """True if this event is not older than what the store holds (and record its version)."""
        name = str((body.get("metadata") or {}).get("name"))
        version = resource_version_int(body)
        versions = self.versions[kind]
        if version and version <= versions.get(name, 0) and not (deleted and version == 0):
            return False  # older than, or the same as, what the store holds
        versions[name] = version if not deleted else max(version, versions.get(name, 0))
        return True

    # --- updates (return the record now stored, or None if deleted / stale) ----------------------

    def put_user(self, body: dict[str, Any], deleted: bool = False) -> UserRecord | None:
        if not self._fresh("ScimUser", body, deleted):
            return None
        name = str(body["metadata"]["name"])
        old = self.users.pop(name, None)
        record = None if deleted else UserRecord.from_body(body)
        renamed = old is None or record is None or old.user_name != record.user_name
        if old is not None:
            for group_id in old.group_ids:
                self.users_by_group[group_id].discard(name)
            if renamed:  # most events change labels or status, not the userName: nothing to re-fold
                self.users_by_user_name.discard(old.folded_user_name, name)
            self.census.add(old.provider, old.attribute_keys, -1)
        if record is None:
            return None
        self.census.add(record.provider, record.attribute_keys, 1)
        self.users[name] = record
        for group_id in record.group_ids:
            self.users_by_group[group_id].add(name)
        if renamed:
            self.users_by_user_name.add(record.folded_user_name, name)
        return record

    def put_group(self, body: dict[str, Any], deleted: bool = False) -> GroupRecord | None:
        record = GroupRecord.from_body(body)
        if record is None or not self._fresh("ScimGroup", body, deleted):
            return None
        if deleted:
            self.groups.pop(record.scim_id, None)
            return None
        self.groups[record.scim_id] = record
        return record

    def put_rule(self, kind: TargetKind, body: dict[str, Any], deleted: bool = False) -> RuleRecord | None:
        if not self._fresh(f"{kind}Mapping", body, deleted):
            return None
        key = (kind, str(body["metadata"]["name"]))
        if deleted:
            self.rules.pop(key, None)
            return None
        record = RuleRecord.from_body(body, kind)
        self.rules[key] = record
        return record

    def put_target(self, kind: TargetKind, body: dict[str, Any], deleted: bool = False) -> TargetRecord | None:
        if not self._fresh(kind, body, deleted):
            return None
        record = TargetRecord.from_body(body, kind)
        if deleted:
            self.targets.pop(record.key, None)
            return None
        self.targets[record.key] = record
        return record

    def put_role_rule(self, body: dict[str, Any], deleted: bool = False) -> RoleRuleRecord | None:
        if not self._fresh("RoleMapping", body, deleted):
            return None
        name = str(body["metadata"]["name"])
        if deleted:
            self.role_rules.pop(name, None)
            return None
        record = RoleRuleRecord.from_body(body)
        self.role_rules[name] = record
        return record

    def put_provider(self, body: dict[str, Any], deleted: bool = False) -> ProviderRecord | None:
        if not self._fresh("IdentityProvider", body, deleted):
            return None
        name = str(body["metadata"]["name"])
        if deleted:
            self.providers.pop(name, None)
            return None
        record = ProviderRecord.from_body(body)
        self.providers[name] = record
        return record

    def put_access_binding(self, body: dict[str, Any], deleted: bool = False) -> AccessBindingRecord | None:
        if not self._fresh("AccessBinding", body, deleted):
            return None
        name = str(body["metadata"]["name"])
        if deleted:
            self.access_bindings.pop(name, None)
            return None
        record = AccessBindingRecord.from_body(body)
        self.access_bindings[name] = record
        return record

    # --- seeding ----------------------------------------------------------------------------------

    async def seed(
        self, kube: Kube, namespace: str, on_seeded: Callable[[], None], users_listed: asyncio.Event
    ) -> None:
        """One LIST per kind, once; every caller waits until the view is complete. Users come from the
        user feed's informer (identity_operator.user_feed): its first list completes the view."""
        async with self._seeding:
            if self.seeded.is_set():
                return
            kinds: list[tuple[Any, Callable[[dict[str, Any]], Any]]] = [
                (IDENTITY_PROVIDERS, self.put_provider),
                (ROLE_MAPPINGS, self.put_role_rule),
                (ACCESS_BINDINGS, self.put_access_binding),
                (TEAM_MAPPINGS, lambda b: self.put_rule("Team", b)),
                (BUSINESS_UNIT_MAPPINGS, lambda b: self.put_rule("BusinessUnit", b)),
                (TEAMS, lambda b: self.put_target("Team", b)),
                (BUSINESS_UNITS, lambda b: self.put_target("BusinessUnit", b)),
                (SCIM_GROUPS, self.put_group),
            ]
            for resource, put in kinds:
                try:
                    async for items, _ in kube.list_pages(resource, namespace):
                        for item in items:
                            put(item)
                except ApiError as error:
                    if not (error.not_found and resource in OPTIONAL_KINDS):
                        raise
                    # The operator was upgraded before the CRDs: run without this kind until they are.
                    log.warning("kind not installed; upgrade the CRDs", extra={"resource": resource.plural})
            await users_listed.wait()
            self.seeded.set()
            on_seeded()
