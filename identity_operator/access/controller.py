"""The access controller: keeps every AccessBinding's RoleBindings / ClusterRoleBindings equal to its plan.

Inputs: AccessBindings (the operator's store), who is in which team / unit / role (the engine, as a
`plan.Directory`), the cluster's namespaces and the RBAC objects labelled as ours (two informers).
A change marks the bindings it can affect; one worker recomputes them a few milliseconds later
(batching a burst) and writes only the objects whose subjects differ (plan.plan). A user's own change
(a leaver, a joiner) is applied to the shards last computed instead (plan.reshard): offboarding one
user from a binding of 100,000 costs that user, not the 100,000.

Nothing is computed before the engine's first full recomputation and the informers' first lists:
a binding computed from half the memberships would revoke access that is still granted.

Escalation guard, first line: a binding whose role is not in the administrator's allow-list is
refused (condition RoleNotAllowed, a Warning Event) and its objects removed. Second line, enforced by
Kubernetes: the operator's own RBAC has `bind` only on those role names, so a request to bind any
other role is refused by the API server's authorizer (condition Forbidden) even if this check failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from identity_operator.access.plan import (
    DEFAULT_SUBJECTS_PER_OBJECT,
    Action,
    Body,
    BoundNames,
    DesiredObject,
    Directory,
    ObjectKey,
    ObjectKind,
    Shards,
    bound_names,
    own_write,
    plan,
    reshard,
    role_allowed,
    scope_namespaces,
    shard,
    shard_objects,
    subject_hash,
    subject_names,
    subjects_now,
    subjects_of,
)
from identity_operator.gate import always_active
from identity_operator.priority import UrgentWork
from identity_operator.records import AccessBindingRecord
from identity_operator.writer import Writer
from kubescim.api.models import AccessBindingSpec, AccessBindingStatus, SubjectKind
from kubescim.conditions import condition, status_equal
from kubescim.constants import (
    ACCESS_BINDINGS,
    API_VERSION,
    CLUSTER_ROLE_BINDINGS,
    LABEL_ACCESS_BINDING,
    LABEL_ACCESS_BINDING_NAMESPACE,
    ROLE_BINDINGS,
)
from kubescim.informer import resource_version_int
from kubescim.kube import ApiError, ApiUnavailable
from kubescim.resource import Resource

log = logging.getLogger("kubescim.operator.access")
RESOURCES: dict[ObjectKind, Resource] = {"RoleBinding": ROLE_BINDINGS, "ClusterRoleBinding": CLUSTER_ROLE_BINDINGS}
BATCH_SECONDS = 0.02  # a burst of changes (a group push) becomes one recomputation per binding
DEFER_POLL_SECONDS = 0.1
MAX_DEFER_SECONDS = 30.0  # bulk work never holds a binding back longer than this


class SubjectHashes:
    """subject_hash, remembered: recomputing a binding of 100,000 users hashed every name each time.
    Emptied when it outgrows `limit` (users who left do not pile up); about 80 bytes a name."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._known: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        value = self._known.get(name)
        if value is None:
            if len(self._known) >= self.limit:
                self._known.clear()
            value = self._known[name] = subject_hash(name)
        return value

    def __len__(self) -> int:
        return len(self._known)


@dataclass(frozen=True)
class Applied:
    """A binding's shards as last applied: what a few users' changes are applied to."""

    spec: AccessBindingSpec
    uid: str
    generation: int  # a spec edit bumps it, and recomputes; a status write (ours) does not
    bound: BoundNames
    namespaces: list[str] | None
    shards: Shards


def object_key(body: Body) -> ObjectKey | None:
    kind = body.get("kind")
    meta = body.get("metadata") or {}
    if kind not in RESOURCES:
        return None
    return (kind, str(meta.get("namespace") or ""), str(meta.get("name")))


@dataclass
class AccessController:
    writer: Writer
    namespace: str  # the operator's: where AccessBindings live
    allowed_roles: frozenset[str]
    bindings: Callable[[], dict[str, AccessBindingRecord]]
    directory: Callable[[], Directory]
    subjects_per_object: int = DEFAULT_SUBJECTS_PER_OBJECT
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    observed: dict[ObjectKey, Body] = field(default_factory=dict)
    observed_subjects: dict[ObjectKey, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # Objects of each binding (by the owner label): the plan compares only a binding's own objects.
    by_binding: dict[str, set[ObjectKey]] = field(default_factory=lambda: defaultdict(set))
    dirty: set[str] = field(default_factory=set)  # to recompute whole
    deferred: set[str] = field(default_factory=set)
    # To bring up to date with the users changed since (`_changed_users`, and the usernames they had).
    touched: set[str] = field(default_factory=set)
    _changed_users: set[str] = field(default_factory=set)
    _changed_usernames: set[str] = field(default_factory=set)
    backlog: Callable[[], int] = lambda: 0  # the engine's bulk backlog (users still to recompute)
    _deferred_since: float = 0.0
    writes: int = 0
    verdicts: dict[str, str] = field(default_factory=dict)  # binding -> its Ready reason (for metrics)
    ready_sources: set[str] = field(default_factory=set)  # "engine", "namespaces", "rolebindings", ...
    # Cleared while a peer outranks this operator (identity_operator.gate): the worker waits.
    active: asyncio.Event = field(default_factory=always_active)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _writes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    # What each binding's subjects were last computed as: to mark only bindings a change affects.
    _references: dict[str, BoundNames] = field(default_factory=dict)
    _applied: dict[str, Applied] = field(default_factory=dict)
    _hashes: SubjectHashes = field(default_factory=SubjectHashes)
    # Writes on their way, by object: the watch often brings one back before its response, and
    # taking that echo for someone else's edit recomputed the whole binding (at 100,000 users about
    # 0.5 s of event loop, which held the next user's revocation back).
    _in_flight: dict[ObjectKey, Action] = field(default_factory=dict)
    # The engine's: a user's own change rewrites its shards as urgent work, the rest gives way to it.
    urgent_work: UrgentWork = field(default_factory=UrgentWork)
    REQUIRED = frozenset({"engine", "namespaces", "rolebindings", "clusterrolebindings"})

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._worker(), name="kubescim-access")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def source_ready(self, source: str) -> None:
        """One input has its complete first view; once all have, every binding is reconciled."""
        self.ready_sources.add(source)
        if self.ready:
            self.mark_all()

    @property
    def ready(self) -> bool:
        return self.ready_sources >= self.REQUIRED

    # --- marking ------------------------------------------------------------------------------------

    def mark_all(self) -> None:
        self.dirty.update(self.bindings())
        self.dirty.update(self.by_binding)  # objects of bindings that are gone: to remove them
        self._wakeup.set()

    def binding_changed(self, name: str) -> None:
        self.dirty.add(name)
        self._wakeup.set()

    def mark(
        self,
        teams: Iterable[str] = (),
        units: Iterable[str] = (),
        roles: Iterable[str] = (),
        *,
        urgent: bool = True,
        users: Mapping[str, str | None] | None = None,
    ) -> None:
        """Members of these teams, units or roles changed: recompute the bindings that name them.
        Urgent (a user's own change, such as a deactivation): now. Otherwise (bulk work such as a
        rule edit moving thousands): once the engine's bulk backlog drains, so each RBAC object is
        written once rather than once per recomputed user.
        `users`: the users whose change this is (ScimUser name -> the username they had, if any).
        A binding of users applied before then takes only their change, not a recomputation."""
        teams, units, roles = set(teams), set(units), set(roles)
        if not (teams or units or roles):
            return
        into = self.dirty if urgent else self.deferred
        if not urgent and not self.deferred:
            self._deferred_since = time.monotonic()
        partial = urgent and bool(users)
        for name, record in self.bindings().items():
            references = self._references.get(name)
            if record.spec is None:
                continue
            if references is not None and not (
                teams & references.teams
                or units & references.units
                or roles & references.roles
                or (record.spec.subjects.team_selector is not None and teams)  # a team it may match now
            ):
                continue
            if partial and name in self._applied and record.spec.subject_kind == SubjectKind.USER:
                self.touched.add(name)
            else:
                into.add(name)
        if partial and self.touched and users:
            self._changed_users.update(users)
            self._changed_usernames.update(filter(None, users.values()))
        if self.dirty or self.deferred or self.touched:
            self._wakeup.set()

    def namespace_event(self, event_type: str, body: Body) -> None:
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        before = self.namespaces.get(name)
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = dict(meta.get("labels") or {})
        if before != self.namespaces.get(name):
            for binding, record in self.bindings().items():
                scope = record.spec.scope if record.spec is not None else None
                if scope is not None and (name in (scope.namespaces or []) or scope.namespace_selector is not None):
                    self.dirty.add(binding)
            self._wakeup.set()

    def namespaces_listed(self, items: list[Body], _version: str) -> None:
        self.namespaces = {
            str(item["metadata"]["name"]): dict(item["metadata"].get("labels") or {})
            for item in items
            if not item["metadata"].get("deletionTimestamp")
        }
        self.source_ready("namespaces")

    def rbac_listed(self, kind: ObjectKind, items: list[Body]) -> None:
        for key in [k for k in self.observed if k[0] == kind]:
            self._forget(key)
        for item in items:
            item.setdefault("kind", kind)
            self._remember(item)
        self.source_ready(f"{kind.lower()}s")

    def rbac_event(self, kind: ObjectKind, event_type: str, body: Body) -> None:
        """Our objects as the API server has them. Someone else's edit (or deletion) of one marks its
        binding, whose next plan restores it."""
        body.setdefault("kind", kind)
        key = object_key(body)
        if key is None:
            return
        current = self.observed.get(key)
        stale = current is not None and resource_version_int(current) >= resource_version_int(body) > 0
        if stale and event_type != "DELETED":
            return  # older than what our own write returned
        if event_type == "DELETED":
            if current is None:
                return  # gone from our view already (our own delete): nothing to restore
            if (current.get("metadata") or {}).get("uid") != (body.get("metadata") or {}).get("uid"):
                return  # a previous incarnation
            self._forget(key)
        else:
            self._remember(body)
        if own_write(self._in_flight.get(key), event_type, body):
            return
        owner = ((body.get("metadata") or {}).get("labels") or {}).get(LABEL_ACCESS_BINDING)
        if owner:
            self.dirty.add(owner)
            self._wakeup.set()

    def _remember(self, body: Body) -> None:
        key = object_key(body)
        if key is None:
            return
        labels = (body.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_ACCESS_BINDING_NAMESPACE) != self.namespace:
            return
        self.observed[key] = body
        self.observed_subjects[key] = subjects_of(body)
        owner = labels.get(LABEL_ACCESS_BINDING)
        if owner:
            self.by_binding[owner].add(key)

    def _forget(self, key: ObjectKey) -> None:
        body = self.observed.pop(key, None)
        self.observed_subjects.pop(key, None)
        if body is None:
            return
        owner = ((body.get("metadata") or {}).get("labels") or {}).get(LABEL_ACCESS_BINDING)
        if owner and owner in self.by_binding:
            self.by_binding[owner].discard(key)
            if not self.by_binding[owner]:
                del self.by_binding[owner]

    # --- the worker ---------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(BATCH_SECONDS)
            await self.active.wait()  # a peer outranks this operator: it writes instead
            self._wakeup.clear()
            if not self.ready:
                continue  # source_ready marks everything once the view is complete
            if self.deferred:
                if self.backlog() == 0 or time.monotonic() - self._deferred_since > MAX_DEFER_SECONDS:
                    self.dirty |= self.deferred
                    self.deferred = set()
                else:
                    self._wakeup.set()  # look again shortly
                    await asyncio.sleep(DEFER_POLL_SECONDS)
            if not (self.dirty or self.touched):
                continue
            whole, self.dirty = sorted(self.dirty), set()
            partial, self.touched = sorted(self.touched - set(whole)), set()
            users, self._changed_users = self._changed_users, set()
            usernames, self._changed_usernames = self._changed_usernames, set()
            if partial:
                principals = self.directory().principals
                usernames |= {p.username for p in filter(None, map(principals.get, users))}
            names = whole + partial
            jobs = [self.reconcile(n) for n in whole] + [self.reconcile_users(n, usernames) for n in partial]
            results = await asyncio.gather(*jobs, return_exceptions=True)
            failed = [n for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)]
            for name, result in zip(names, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, ApiUnavailable):
                    log.error("access binding failed", extra={"binding": name, "error": str(result)[:300]})
            if failed:
                await asyncio.sleep(1)
                self.dirty.update(failed)
                self._wakeup.set()

    async def reconcile(self, name: str) -> None:
        """Make the binding's objects match its plan, then write its status."""
        record = self.bindings().get(name)
        observed = {key: self.observed[key] for key in self.by_binding.get(name, set()) if key in self.observed}
        self._applied.pop(name, None)  # until this computation is applied
        if record is None:
            await self._apply(plan({}, observed))  # the AccessBinding is gone: so are its grants
            self._references.pop(name, None)
            self.verdicts.pop(name, None)
            return
        spec = record.spec
        if spec is None:
            await self._apply(plan({}, observed))
            await self._status(record, False, "InvalidSpec", record.problem or "invalid spec", 0, [], 0)
            return
        if not role_allowed(spec.role_ref.kind, spec.role_ref.name, self.allowed_roles):
            removed = await self._apply(plan({}, observed))
            message = (
                f"{spec.role_ref.kind.value} {spec.role_ref.name!r} is not in the operator's allowed roles "
                f"(chart value access.allowedRoles: {', '.join(sorted(self.allowed_roles)) or 'none'}); "
                f"nothing is granted" + (f" and {removed} existing object(s) were removed" if removed else "")
            )
            await self._status(record, False, "RoleNotAllowed", message, 0, [], 0, warn=True)
            return
        directory = self.directory()
        subjects = subject_names(spec, directory)
        namespaces = scope_namespaces(spec, self.namespaces)
        # Room for every user twice over: renames and leavers do not empty it on every recompute.
        self._hashes.limit = max(self._hashes.limit, 2 * len(directory.principals) + 1000)
        shards = shard(subjects, self.subjects_per_object, self._hashes)
        desired = shard_objects(self.namespace, name, record.uid, spec, shards, namespaces)
        bound = self._references[name] = bound_names(spec, directory)
        await asyncio.sleep(0)  # the computation above is CPU: let a user's own change in between
        if await self._apply_and_report(record, spec, desired, observed, len(subjects), namespaces, len(desired)):
            self._applied[name] = Applied(spec, record.uid, record.generation, bound, namespaces, shards)

    async def reconcile_users(self, name: str, usernames: Iterable[str]) -> None:
        """Bring a binding applied before up to date with some users' change: `usernames` are every
        username those users had or have. Only the shards holding them are compared and written."""
        record = self.bindings().get(name)
        applied = self._applied.pop(name, None)
        directory = self.directory()
        moved = None
        holders = directory.holders
        same = (
            record is not None
            and applied is not None
            and (record.uid, record.generation) == (applied.uid, applied.generation)
        )
        if same and applied is not None and holders is not None:
            wanted = subjects_now(applied.spec, applied.bound, directory, holders, usernames)
            moved = reshard(applied.shards, self.subjects_per_object, wanted, self._hashes)
        if record is None or applied is None or moved is None:
            await self.reconcile(name)  # a new spec, or the shard count changes: recompute it whole
            return
        shards, changed = moved
        if changed:
            spec, namespaces = applied.spec, applied.namespaces
            desired = shard_objects(self.namespace, name, record.uid, spec, shards, namespaces, changed)
            observed = {key: self.observed[key] for key in desired if key in self.observed}
            objects = len(shards) * (1 if namespaces is None else len(namespaces))
            subjects = sum(map(len, shards))
            async with self.urgent_work.urgent():
                applied_now = await self._apply_and_report(
                    record, spec, desired, observed, subjects, namespaces, objects, urgent=True
                )
            if not applied_now:
                return
        self._applied[name] = dataclasses.replace(applied, shards=shards)

    async def _apply_and_report(
        self,
        record: AccessBindingRecord,
        spec: AccessBindingSpec,
        desired: Mapping[ObjectKey, DesiredObject],
        observed: Mapping[ObjectKey, Body],
        subjects: int,
        namespaces: list[str] | None,
        objects: int,
        urgent: bool = False,
    ) -> bool:
        """Write what differs of `desired` from `observed`, then the binding's status: whether applied.
        Objects in `observed` but not in `desired` are removed."""
        try:
            await self._apply(plan(desired, observed, self.observed_subjects), urgent)
        except ApiError as error:
            if error.status != 403:
                raise
            message = (
                f"the API server refused to bind {spec.role_ref.kind.value} {spec.role_ref.name!r}: "
                f"{str(error.body.get('message', ''))[:600]}"
            )
            await self._status(record, False, "Forbidden", message, subjects, namespaces, 0, warn=True)
            return False
        where = "cluster-wide" if namespaces is None else f"in {len(namespaces)} namespace(s)"
        message = f"{subjects} subject(s) bound to {spec.role_ref.kind.value} {spec.role_ref.name} {where}"
        await self._status(record, True, "Applied", message, subjects, namespaces, objects)
        return True

    async def _apply(self, actions: list[Action], urgent: bool = False) -> int:
        """Run a plan's actions concurrently; returns how many objects were written or removed.
        Unless `urgent` (a user's own change), each gives way to urgent writes in flight."""

        async def run(action: Action) -> None:
            if not urgent:
                await self.urgent_work.give_way()
            async with self._writes:
                self._in_flight[action.key] = action
                try:
                    await self._write(action)
                finally:
                    if self._in_flight.get(action.key) is action:
                        del self._in_flight[action.key]

        results = await asyncio.gather(*(run(a) for a in actions), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        return len(actions)

    async def _write(self, action: Action) -> None:
        kind, namespace, name = action.key
        resource = RESOURCES[kind]
        if action.verb in ("delete", "recreate") and action.uid:
            try:
                await self.writer.delete(resource, name, action.uid, namespace or None)
            except ApiError as error:
                if not (error.not_found or error.conflict):
                    raise
            self._forget(action.key)
        if action.body is not None:  # every verb but delete
            try:
                stored = await self.writer.apply(resource, action.body, namespace or None)
            except ApiError as error:
                if error.status == 403 and "being terminated" in error.message:
                    return  # the namespace is going away, and its bindings with it
                raise
            stored.setdefault("kind", kind)
            self._remember(stored)
        self.writes += 1

    async def _status(
        self,
        record: AccessBindingRecord,
        ready: bool,
        reason: str,
        message: str,
        subjects: int,
        namespaces: list[str] | None,
        objects: int,
        *,
        warn: bool = False,
    ) -> None:
        self.verdicts[record.name] = reason
        previous = record.status.get("conditions") or []
        status = AccessBindingStatus(
            subject_count=subjects,
            namespace_count=len(namespaces) if namespaces is not None else None,
            namespaces=(namespaces or [])[:100],
            object_count=objects,
            observed_generation=record.generation,
        ).dump()
        status["conditions"] = [condition("Ready", ready, reason, message, previous, record.generation)]
        if status_equal(record.status, status):
            return
        await self.writer.patch_status(ACCESS_BINDINGS, record.name, status)
        old_reason = next((c.get("reason") for c in previous if c.get("type") == "Ready"), None)
        if warn and old_reason != reason:
            regarding = {
                "apiVersion": API_VERSION,
                "kind": "AccessBinding",
                "name": record.name,
                "namespace": self.namespace,
                "uid": record.uid,
            }
            await self.writer.event(regarding, "Warning", reason, message[:1000])
