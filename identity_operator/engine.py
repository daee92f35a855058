"""The operator's engine: recompute exactly the affected users, write only what changed.

Kopf handlers only mark things dirty (users, targets, rules, groups); two workers do the rest:
the user worker evaluates each dirty user against the rules (pure functions in `mapping`) and
patches its labels and status when they differ; the flush worker, a few times a second, writes
Team / BusinessUnit / mapping / group statuses, creates targets that rules name, removes empty
operator-created ones, and posts one aggregated Event per changed target.

State read from the cluster lives in the operator's store (`store.py`: seeded by one paged LIST per
kind before the engine starts, so nothing is ever computed from a partial view), which the engine
reads through a `View`; the engine keeps only derived reverse indexes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any, Protocol

from identity_operator.access.plan import Directory, Principal, kubernetes_username
from identity_operator.gate import always_active
from identity_operator.mapping import (
    Desired,
    Grant,
    OrderedRules,
    Rule,
    TargetKind,
    compose,
    evaluate_user,
    order_rules,
)
from identity_operator.memberships import Memberships
from identity_operator.priority import UrgentWork
from identity_operator.records import (
    GroupRecord,
    RoleRuleRecord,
    RuleRecord,
    TargetKey,
    TargetRecord,
    UserRecord,
    View,
)
from identity_operator.roles import EMPTY_CATALOG, Catalog, RoleRule, RoleVerdict, resolve_role, undeclared
from identity_operator.settings import OperatorSettings
from identity_operator.status import (
    CUSTOM_ATTRIBUTES_CONDITION,
    custom_attributes_condition,
    mapping_rule_status,
    role_rule_status,
    target_status,
    user_status,
)
from identity_operator.writer import KubeWriter, Writer
from kubescim import jsonio
from kubescim.api.models import (
    Access,
    MappingSource,
    Provenance,
)
from kubescim.conditions import status_equal
from kubescim.constants import (
    API_VERSION,
    BUSINESS_UNIT_LABEL_PREFIX,
    BUSINESS_UNIT_MAPPINGS,
    BUSINESS_UNITS,
    CREATED_BY_OPERATOR,
    IDENTITY_PROVIDERS,
    LABEL_CREATED_BY,
    LABEL_ROLE,
    MANAGED_BY_OPERATOR,
    PART_OF,
    ROLE_MAPPINGS,
    SCIM_GROUPS,
    SCIM_USERS,
    TEAM_LABEL_PREFIX,
    TEAM_MAPPINGS,
    TEAMS,
)
from kubescim.kube import ApiError, ApiUnavailable, Kube, Resource
from kubescim.matching import UserFacts, applies_to, matches
from kubescim.multimap import CompactMultiMap
from kubescim.scim.filter import AttrPath
from kubescim.scim.resources import fold

log = logging.getLogger("kubescim.operator")
MEMBER_LABEL_VALUE = "member"
# How often one Team / BusinessUnit / mapping status may be rewritten: twice a second normally, so a
# change shows within a second; every 5 s while thousands of users wait for recomputation (startup,
# a rule edit moving everyone), when intermediate member lists are stale at once and rewriting big
# statuses would take the API server's CPU from the user writes that matter.
STATUS_WRITE_INTERVAL = 0.5
BULK_STATUS_WRITE_INTERVAL = 5.0
BULK_BACKLOG = 200
EVALUATE_CHUNK = 50  # users evaluated between yields to the event loop (~25 ms)
URGENT_LANE = 2  # workers that take only users' own changes
TARGET_RESOURCES: dict[TargetKind, Resource] = {"Team": TEAMS, "BusinessUnit": BUSINESS_UNITS}
RULE_RESOURCES: dict[TargetKind, Resource] = {"Team": TEAM_MAPPINGS, "BusinessUnit": BUSINESS_UNIT_MAPPINGS}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class AccessSink(Protocol):
    """Who reacts to membership changes with Kubernetes access (access.controller)."""

    def mark(
        self,
        teams: Iterable[str] = (),
        units: Iterable[str] = (),
        roles: Iterable[str] = (),
        *,
        urgent: bool = True,
        users: Mapping[str, str | None] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class KindMembers(Mapping[str, Iterable[str]]):
    """The engine's members of one kind's targets, read in place (no copy per recomputation)."""

    members: Mapping[TargetKey, Mapping[str, tuple[Provenance, ...]]]
    kind: TargetKind

    def __getitem__(self, name: str) -> Iterable[str]:
        found = self.members.get((self.kind, name))
        if found is None:
            raise KeyError(name)
        return found.keys()

    def __iter__(self) -> Iterator[str]:
        return (name for kind, name in self.members if kind == self.kind)

    def __len__(self) -> int:
        return sum(1 for kind, _ in self.members if kind == self.kind)


@dataclass(frozen=True)
class Written:
    """A user's last write not yet seen through the watch: what the labels and status are now."""

    resource_version: int
    teams: frozenset[str]
    units: frozenset[str]
    role: str | None
    status_json: bytes


@dataclass
class Stats:
    user_writes: int = 0
    status_writes: int = 0
    target_writes: int = 0
    evaluations: int = 0


@dataclass
class Engine:
    kube: Kube
    settings: OperatorSettings
    write_to: InitVar[Writer | None] = None  # tests give a MemoryWriter; else the shared client
    writer: Writer = field(init=False)
    _view: View | None = None  # the store's view, given to start()
    memberships: Memberships = field(default_factory=Memberships)
    issues: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    written: dict[str, Written] = field(default_factory=dict)
    # Roles (RoleMapping): each user's verdict, the holders of each role, the users each role rule matches.
    roles: dict[str, RoleVerdict] = field(default_factory=dict)
    role_holders: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    role_rule_users: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    dirty_role_rules: set[str] = field(default_factory=set)
    dirty_providers: set[str] = field(default_factory=set)  # their CustomAttributesArriving condition
    # A user's own change: when it was queued, and who is told how long its recomputation took.
    _queued_at: dict[str, float] = field(default_factory=dict)
    on_recomputed: Callable[[float], None] | None = None
    # Active users as Kubernetes subjects, and who is told when they change (None: access is off).
    principals: dict[str, Principal] = field(default_factory=dict)
    holders: CompactMultiMap = field(default_factory=CompactMultiMap)  # username -> its principals
    access: AccessSink | None = None
    # Shared with the access controller: while urgent writes are in flight, bulk ones give way.
    urgent_work: UrgentWork = field(default_factory=UrgentWork)
    # Set once every user has been evaluated after start (their writes may still be running): access
    # is never computed from half the memberships, which would revoke bindings after a restart.
    indexed: asyncio.Event = field(default_factory=asyncio.Event)
    flushed_members: dict[TargetKey, frozenset[str]] = field(default_factory=dict)
    dirty_users: set[str] = field(default_factory=set)
    dirty_targets: set[TargetKey] = field(default_factory=set)
    dirty_rules: set[tuple[str, str]] = field(default_factory=set)
    dirty_groups: set[str] = field(default_factory=set)
    stats: Stats = field(default_factory=Stats)
    # Cleared while a peer outranks this operator (identity_operator.gate): the writers wait.
    active: asyncio.Event = field(default_factory=always_active)
    _rules_cache: list[Rule] | None = None
    _ordered_rules: OrderedRules | None = None
    _role_rules_cache: list[RoleRule] | None = None
    _users_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _fast: deque[str] = field(default_factory=deque)
    # Bulk work is evaluated first (pure, in chunks: memberships, roles and access are current within
    # seconds of a rule edit), then written by the workers from _bulk_writes at the API's pace.
    _bulk_writes: deque[str] = field(default_factory=deque)
    _bulk_writes_queued: set[str] = field(default_factory=set)
    _evaluated: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # name -> (rv, username)
    _evaluate_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _evaluating: bool = False
    _last_status_write: dict[tuple[str, str], float] = field(default_factory=dict)
    _bulk: deque[str] = field(default_factory=deque)
    _flush_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _writes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    # A user's own change (a deactivation) has workers and write slots of its own: behind an
    # operator's start or a rule edit, the shared slots are queued for by hundreds of bulk and
    # status writes (at 10,000 users a leaver's label write waited 150-400 ms for one).
    _urgent_writes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    # A group-source rule's pushed-group count, per rule: (rule generation, groups version, count).
    _groups_version: int = 0
    _census_seen: int = -1
    _group_matches: dict[tuple[str, str], tuple[int, int, int]] = field(default_factory=dict)

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def view(self) -> View:
        """The store's complete view: there is none before start() (handlers wait for the seed)."""
        if self._view is None:
            raise RuntimeError("the engine is not started: the store is not seeded yet")
        return self._view

    def __post_init__(self, write_to: Writer | None) -> None:
        self.writer = write_to if write_to is not None else KubeWriter(self.kube, self.settings.namespace)

    def use(self, view: View) -> None:
        """Compute from this view (the store's, complete). start() does this and starts the workers;
        unit tests call it alone and drive process_user and flush themselves."""
        self._view = view

    def start(self, indexes: View) -> None:
        """Begin with a complete view: start the workers and recompute everything once."""
        if self._view is not None:
            return
        self.use(indexes)
        self._writes = asyncio.Semaphore(self.settings.write_concurrency)
        self._urgent_writes = asyncio.Semaphore(self.settings.write_concurrency)
        self._tasks = [
            *(
                asyncio.create_task(self._user_worker(), name=f"kubescim-users-{i}")
                for i in range(self.settings.write_concurrency)
            ),
            *(
                asyncio.create_task(self._user_worker(urgent_only=True), name=f"kubescim-users-urgent-{i}")
                for i in range(URGENT_LANE)
            ),
            asyncio.create_task(self._flush_worker(), name="kubescim-flush"),
            asyncio.create_task(self._bulk_evaluator(), name="kubescim-evaluate"),
        ]
        self.dirty_rules.update((kind, name) for kind, name in indexes.rules)
        self.dirty_role_rules.update(indexes.role_rules)
        self.dirty_providers.update(indexes.providers)
        self.dirty_groups.update(indexes.groups)
        self.mark_targets(list(indexes.targets))
        self.mark_users(list(indexes.users))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _status_write_due(self, key: tuple[str, str]) -> bool:
        """Whether a target's or rule's status may be written now (see STATUS_WRITE_INTERVAL)."""
        pending = len(self._bulk) + len(self._bulk_writes)
        interval = BULK_STATUS_WRITE_INTERVAL if pending > BULK_BACKLOG else STATUS_WRITE_INTERVAL
        return time.monotonic() - self._last_status_write.get(key, 0.0) >= interval

    @property
    def idle(self) -> bool:
        return not (
            self.dirty_users
            or self.dirty_targets
            or self.dirty_rules
            or self.dirty_groups
            or self.dirty_role_rules
            or self.dirty_providers
        )

    # --- marking (called by handlers) -----------------------------------------------------------

    def mark_users(self, names: Iterable[str], *, bulk: bool = True) -> None:
        """Queue users for recomputation. A user's own change (bulk=False) goes ahead of bulk work such
        as a rule edit moving thousands, so it still shows within a second."""
        queue = self._bulk if bulk else self._fast
        now = time.monotonic()
        for name in names:
            if name not in self.dirty_users:
                self.dirty_users.add(name)
                queue.append(name)
                if not bulk:
                    self._queued_at.setdefault(name, now)
        if self._fast:
            self._users_wakeup.set()
        if self._bulk:
            self._evaluate_wakeup.set()

    def mark_targets(self, keys: Iterable[TargetKey]) -> None:
        self.dirty_targets.update(keys)
        self._flush_wakeup.set()

    def groups_resized(self, group_ids: Iterable[str]) -> None:
        """Users joined or left these groups: their memberCount must be written again."""
        self.dirty_groups.update(group_ids)
        self._flush_wakeup.set()

    def queue_depths(self) -> tuple[int, int]:
        """Users waiting for recomputation: (a user's own change, bulk work)."""
        return len(self._fast), len(self._bulk) + len(self._bulk_writes)

    def user_changed(self, name: str) -> None:
        self.mark_users([name], bulk=False)
        if self._view is not None and self.view.census.version != self._census_seen:
            # An attribute appeared or disappeared: attribute rules re-check what users carry.
            self._census_seen = self.view.census.version
            self.dirty_rules.update(key for key, r in self.view.rules.items() if r.rule.attribute is not None)
            self.dirty_role_rules.update(n for n, r in self.view.role_rules.items() if r.rule.attribute is not None)
            self.dirty_providers.update(n for n, p in self.view.providers.items() if p.custom_attributes)

    def group_changed(self, scim_id: str, renamed: bool) -> None:
        self.dirty_groups.add(scim_id)
        if renamed:  # (also: created or deleted)
            self.mark_users(self.view.users_by_group.get(scim_id, ()))
            self._groups_version += 1
            self.dirty_rules.update(key for key, r in self.view.rules.items() if _group_source(r))
        self._flush_wakeup.set()

    def groups_matched(self, key: tuple[str, str], record: RuleRecord) -> int:
        """How many pushed groups (of the rule's providers) a group-source rule matches."""
        cached = self._group_matches.get(key)
        if cached is not None and cached[:2] == (record.generation, self._groups_version):
            return cached[2]
        rule = record.rule
        providers = set(rule.spec.providers or ())
        count = 0
        if rule.matcher is not None:
            for group in self.view.groups.values():
                if (not providers or group.provider in providers) and rule.matcher.match(group.display_name):
                    count += 1
        self._group_matches[key] = (record.generation, self._groups_version, count)
        return count

    def rules_changed(self, kind: TargetKind, name: str) -> None:
        """A rule appeared, changed or went: recompute who had it and who matches it now."""
        self._rules_cache = None
        self._ordered_rules = None
        key = (kind, name)
        affected = set(self.memberships.rule_users.get(key, ()))
        record: RuleRecord | None = self.view.rules.get(key)
        if record is not None and record.rule.problem is None:
            for user in self.view.users.values():
                grants, _ = evaluate_user(user.facts(self._group_names(user)), [record.rule])
                if grants:
                    affected.add(user.name)
            if record.rule.spec.target.name:
                self.mark_targets([(kind, record.rule.spec.target.name)])
            if kind == "Team" and record.rule.spec.target.business_unit:
                self.mark_targets([("BusinessUnit", record.rule.spec.target.business_unit)])
            if record.rule.spec.final or self._has_final_rules():
                # `final` changes which other rules apply: everyone the kind's rules touch may move.
                affected.update(u for (k, _), users in self.memberships.rule_users.items() if k == kind for u in users)
        self.dirty_rules.add(key)
        self.mark_targets([(kind, target) for target in self.memberships.rule_targets.get(key, set())])
        self.mark_users(affected)

    def role_rules_changed(self, name: str) -> None:
        """A RoleMapping appeared, changed or went: recompute who matched it and who matches it now."""
        self._role_rules_cache = None
        affected = set(self.role_rule_users.get(name, ()))
        record: RoleRuleRecord | None = self.view.role_rules.get(name)
        if record is not None and record.rule.matcher is not None:
            rule = record.rule
            assert rule.matcher is not None
            for user in self.view.users.values():
                facts = user.facts(self._group_names(user))
                if applies_to(rule.spec, facts) and matches(rule.spec, rule.matcher, rule.attribute, facts):
                    affected.add(user.name)
        self.dirty_role_rules.add(name)
        self._flush_wakeup.set()
        self.mark_users(affected)

    def provider_changed(self, name: str) -> None:
        """A provider's access settings changed (roles, ranks, usernames): its users are recomputed."""
        self._role_rules_cache = None
        self.dirty_role_rules.update(self.view.role_rules)
        self._flush_wakeup.set()
        self.mark_users(u.name for u in self.view.users.values() if u.provider == name)

    def provider_attributes_changed(self, name: str) -> None:
        """The custom attributes a provider declares changed: check them against what users carry."""
        self.dirty_providers.add(name)
        self._flush_wakeup.set()

    def target_changed(self, kind: TargetKind, name: str, old: TargetRecord | None, new: TargetRecord | None) -> None:
        """Manual members or a team's business unit changed: recompute those users."""
        affected: set[str] = set()
        for record in (old, new):
            if record is None:
                continue
            for member in record.manual_members:
                affected.update(self._users_named(member.user_name, member.provider))
        old_unit = old.business_unit if old else None
        new_unit = new.business_unit if new else None
        if kind == "Team" and old_unit != new_unit:
            affected.update(self.memberships.members.get((kind, name), {}))
            self.mark_targets([("BusinessUnit", u) for u in (old_unit, new_unit) if u])
        self.mark_targets([(kind, name)])
        self.mark_users(affected)

    def _has_final_rules(self) -> bool:
        return any(r.spec.final for r in self.all_rules())

    def _users_named(self, user_name: str, provider: str | None) -> set[str]:
        names = set(self.view.users_by_user_name.values_of(fold(user_name)))
        if provider is None:
            return names
        return {n for n in names if (u := self.view.users.get(n)) is not None and u.provider == provider}

    # --- evaluation -----------------------------------------------------------------------------

    def all_rules(self) -> list[Rule]:
        if self._rules_cache is None:
            self._rules_cache = [r.rule for r in self.view.rules.values()]
        return self._rules_cache

    def ordered_rules(self) -> OrderedRules:
        """The rules in evaluation order, put in it once per rule change (not once per user)."""
        if self._ordered_rules is None:
            self._ordered_rules = order_rules(self.all_rules())
        return self._ordered_rules

    def _group_names(self, user: UserRecord) -> tuple[str, ...]:
        names = []
        for group_id in user.group_ids:
            group: GroupRecord | None = self.view.groups.get(group_id)
            if group is not None and group.provider == user.provider:
                names.append(group.display_name)
        return tuple(sorted(names))

    def _manual(self, user: UserRecord) -> tuple[list[str], list[str]]:
        teams: list[str] = []
        units: list[str] = []
        folded = user.folded_user_name
        for target in self.view.targets.values():
            for member in target.manual_members:
                if fold(member.user_name) == folded and member.provider in (None, user.provider):
                    (teams if target.kind == "Team" else units).append(target.name)
        return teams, units

    def _team_units(self, teams: Iterable[str], grants: list[Grant]) -> dict[str, str]:
        units: dict[str, str] = {}
        for team in teams:
            record: TargetRecord | None = self.view.targets.get(("Team", team))
            if record is not None:
                if record.business_unit:
                    units[team] = record.business_unit
                continue
            # Not created yet: the rule's target.businessUnit is what the new Team will say.
            best = max(
                (g for g in grants if g.kind == "Team" and g.target == team), key=lambda g: g.priority, default=None
            )
            if best is not None and best.business_unit:
                units[team] = best.business_unit
        return units

    def role_rules(self) -> list[RoleRule]:
        if self._role_rules_cache is None:
            self._role_rules_cache = [r.rule for r in self.view.role_rules.values()]
        return self._role_rules_cache

    def _access(self, provider: str) -> Access:
        record = self.view.providers.get(provider)
        return record.access if record is not None else Access()

    def catalogs(self) -> dict[str, Catalog]:
        return {name: record.catalog for name, record in self.view.providers.items()}

    def compute_access(self, user: UserRecord, facts: UserFacts) -> tuple[RoleVerdict | None, str | None]:
        """The user's role and Kubernetes username."""
        record = self.view.providers.get(user.provider)
        catalog = record.catalog if record is not None else EMPTY_CATALOG
        verdict = resolve_role(facts, self.role_rules(), catalog)
        return verdict, kubernetes_username(facts.resource, self._access(user.provider))

    def _update_access(
        self,
        name: str,
        user: UserRecord | None,
        verdict: RoleVerdict | None,
        username: str | None,
        urgent: bool = True,
    ) -> None:
        """Role indexes and the user as a subject; tell access what moved (synchronously, before this
        user's own writes: a deactivation reaches the RBAC objects without waiting for them)."""
        old = self.roles.pop(name, None)
        if verdict is not None:
            self.roles[name] = verdict
        if old != verdict:
            if old is not None:
                self.role_holders[old.role].discard(name)
            if verdict is not None:
                self.role_holders[verdict.role].add(name)
            for rule in old.rules if old else ():
                self.role_rule_users[rule].discard(name)
            for rule in verdict.rules if verdict else ():
                self.role_rule_users[rule].add(name)
            self.dirty_role_rules.update({*(old.rules if old else ()), *(verdict.rules if verdict else ())})
            self._flush_wakeup.set()
        principal = Principal(name, username, user.provider) if user is not None and user.active and username else None
        before = self.principals.get(name)
        if principal is None:
            self.principals.pop(name, None)
        else:
            self.principals[name] = principal
        if before != principal:
            if before is not None:
                self.holders.discard(before.username, name)
            if principal is not None:
                self.holders.add(principal.username, name)
        if self.access is not None and (before != principal or old != verdict):
            desired = self.memberships.desired.get(name)
            self.access.mark(
                teams=desired.teams if desired else (),
                units=desired.business_units if desired else (),
                roles={v.role for v in (old, verdict) if v is not None},
                urgent=urgent,
                users={name: before.username if before is not None else None},
            )

    def directory(self) -> Directory:
        """Who is where, for the access controller: active users, members, role holders."""
        prefixes = sorted({p.access.group_prefix for p in self.view.providers.values()}) or [""]
        return Directory(
            principals=self.principals,
            team_members=KindMembers(self.memberships.members, "Team"),
            unit_members=KindMembers(self.memberships.members, "BusinessUnit"),
            role_holders=self.role_holders,
            team_labels={t.name: t.labels for t in self.view.targets.values() if t.kind == "Team"},
            group_prefixes=tuple(prefixes),
            holders=self.holders.values_of,
        )

    def compute(self, user: UserRecord, facts: UserFacts) -> tuple[Desired, list[Grant]]:
        self.stats.evaluations += 1
        grants, issues = evaluate_user(facts, (), self.ordered_rules())
        for issue in issues:
            kind = next((r.kind for r in self.all_rules() if r.name == issue.rule), "Team")
            if issue.message not in self.issues[(kind, issue.rule)] and len(self.issues[(kind, issue.rule)]) < 20:
                self.issues[(kind, issue.rule)].add(issue.message)
                self.dirty_rules.add((kind, issue.rule))
        manual_teams, manual_units = self._manual(user)
        candidate_teams = {g.target for g in grants if g.kind == "Team"} | set(manual_teams)
        desired = compose(facts, grants, manual_teams, manual_units, self._team_units(candidate_teams, grants))
        return desired, grants

    def _update_reverse(self, name: str, desired: Desired | None, grants: list[Grant], urgent: bool = True) -> None:
        changed, rules = self.memberships.update(name, desired, grants)
        self.dirty_rules.update(rules)
        self.mark_targets(changed)
        if self.access is not None and changed:
            principal = self.principals.get(name)  # not yet updated: the username it had
            self.access.mark(
                teams=[t for k, t in changed if k == "Team"],
                units=[t for k, t in changed if k == "BusinessUnit"],
                urgent=urgent,
                users={name: principal.username if principal is not None else None},
            )

    # --- user worker ----------------------------------------------------------------------------

    async def _user_worker(self, urgent_only: bool = False) -> None:
        """One of `write_concurrency` workers: fast queue first, then bulk; or one of the URGENT_LANE
        workers, which take only the fast queue (a user's own change never waits for a bulk write)."""
        while True:
            await self.active.wait()
            queue = self._fast if urgent_only else (self._fast or self._bulk_writes)
            self._check_indexed()
            if not queue:
                self._users_wakeup.clear()
                await self._users_wakeup.wait()
                continue
            urgent = queue is self._fast
            name = queue.popleft()
            if urgent:
                self.dirty_users.discard(name)  # marked again while in flight: it is queued again
            else:
                self._bulk_writes_queued.discard(name)
            queued_at = self._queued_at.pop(name, None) if urgent else None
            if urgent:
                async with self.urgent_work.urgent():  # bulk writes give way to its two
                    await self._process_user_safely(name, urgent)
            else:
                await self._process_user_safely(name, urgent)
            if queued_at is not None and self.on_recomputed is not None:
                self.on_recomputed(time.monotonic() - queued_at)

    def _check_indexed(self) -> None:
        if not (self._bulk or self._evaluating or self._fast) and not self.indexed.is_set():
            self.indexed.set()

    async def _bulk_evaluator(self) -> None:
        """Evaluate bulk work ahead of its writes, a chunk at a time (yielding between chunks so a
        user's own change is never held up): the indexes, and so access, are current long before the
        last user's labels are written."""
        while True:
            if not self._bulk:
                self._evaluate_wakeup.clear()
                await self._evaluate_wakeup.wait()
                continue
            self._evaluating = True
            try:
                for _ in range(min(EVALUATE_CHUNK, len(self._bulk))):
                    name = self._bulk.popleft()
                    self.dirty_users.discard(name)
                    try:
                        self.evaluate(name)
                    except Exception:
                        log.exception("unexpected error evaluating user", extra={"user": name})
                    if name not in self._bulk_writes_queued:
                        self._bulk_writes_queued.add(name)
                        self._bulk_writes.append(name)
            finally:
                self._evaluating = bool(self._bulk)
            self._check_indexed()
            self._users_wakeup.set()
            await asyncio.sleep(0)

    def evaluate(
        self, name: str, urgent: bool = False
    ) -> tuple[Desired, list[Grant], RoleVerdict | None, str | None] | None:
        """Compute one user and update every index (members, roles, access), without writing."""
        user: UserRecord | None = self.view.users.get(name)
        if user is None:
            self._update_reverse(name, None, [], urgent)
            self._update_access(name, None, None, None, urgent)
            self._evaluated.pop(name, None)
            return None
        facts = user.facts(self._group_names(user))  # parses the user's spec: once per evaluation
        desired, grants = self.compute(user, facts)
        verdict, username = self.compute_access(user, facts)
        self._update_reverse(name, desired, grants, urgent)
        self._update_access(name, user, verdict, username, urgent)
        self._evaluated[name] = (user.resource_version, username)
        return desired, grants, verdict, username

    def bulk_backlog(self) -> int:
        """Users of bulk work (a rule edit, a restart) not yet evaluated: access waits for them, to
        write each RBAC object once rather than once per user."""
        return len(self._bulk) + (1 if self._evaluating else 0)

    async def _process_user_safely(self, name: str, urgent: bool = True) -> None:
        try:
            await self.process_user(name, urgent)
        except ApiUnavailable as error:
            log.warning("API server unavailable; will retry user", extra={"user": name, "error": str(error)[:200]})
            await asyncio.sleep(1)
            self.mark_users([name])
        except ApiError as error:
            if error.not_found:
                return  # deleted meanwhile: its DELETED event cleans up
            log.error("cannot update user", extra={"user": name, "error": str(error)[:300]})
        except Exception:
            log.exception("unexpected error updating user", extra={"user": name})

    async def process_user(self, name: str, urgent: bool = True) -> None:
        user: UserRecord | None = self.view.users.get(name)
        evaluated = self._evaluated.pop(name, None)
        if user is None:
            self.evaluate(name, urgent)
            self.written.pop(name, None)
            return
        if evaluated is not None and evaluated[0] == user.resource_version and name in self.memberships.desired:
            # Evaluated ahead (bulk work) and unchanged since: only the writes are left.
            desired, verdict, username = self.memberships.desired[name], self.roles.get(name), evaluated[1]
        else:
            computed = self.evaluate(name, urgent)
            assert computed is not None
            desired, _grants, verdict, username = computed
            self._evaluated.pop(name, None)

        written = self.written.get(name)
        stored_status = user.status
        current_status = stored_status
        current_teams, current_units = frozenset(user.team_labels), frozenset(user.unit_labels)
        current_role = user.role_label
        if written is not None and written.resource_version > user.resource_version:
            # Our last write has not come back through the watch yet: compare with what we wrote.
            current_teams, current_units, current_role = written.teams, written.units, written.role
            current_status = jsonio.loads(written.status_json)
        wanted_teams, wanted_units = frozenset(desired.teams), frozenset(desired.business_units)
        wanted_role = verdict.role if verdict is not None else None
        status = user_status(user, desired, self._group_names(user), stored_status, verdict, username)
        latest_rv = user.resource_version
        if wanted_teams != current_teams or wanted_units != current_units or wanted_role != current_role:
            labels: dict[str, str | None] = {}
            for prefix, wanted, current in (
                (TEAM_LABEL_PREFIX, wanted_teams, current_teams),
                (BUSINESS_UNIT_LABEL_PREFIX, wanted_units, current_units),
            ):
                labels.update({prefix + t: MEMBER_LABEL_VALUE for t in wanted - current})
                labels.update({prefix + t: None for t in current - wanted})
            if wanted_role != current_role:
                labels[LABEL_ROLE] = wanted_role
            async with self._slot(urgent):
                latest_rv = await self.writer.patch_labels(SCIM_USERS, name, labels)
            self.stats.user_writes += 1
        if not status_equal(current_status, status):
            async with self._slot(urgent):
                latest_rv = await self.writer.patch_status(SCIM_USERS, name, status)
            self.stats.status_writes += 1
            current_status = status
        # What we wrote is kept until the watch brings it back. The event can beat the response: if
        # the store has it already, keeping it would hold the user's status twice until its next change.
        stored = self.view.users.get(name)
        if stored is not None and latest_rv > stored.resource_version:
            compact = jsonio.dumps(current_status)
            self.written[name] = Written(latest_rv, wanted_teams, wanted_units, wanted_role, compact)
        elif stored is None or (
            name in self.written and self.written[name].resource_version <= stored.resource_version
        ):
            self.written.pop(name, None)

    @contextlib.asynccontextmanager
    async def _shared_slot(self) -> AsyncIterator[None]:
        """A write slot of bulk work and status writes, once urgent writes in flight are answered."""
        await self.urgent_work.give_way()
        async with self._writes:
            yield

    @contextlib.asynccontextmanager
    async def _slot(self, urgent: bool) -> AsyncIterator[None]:
        if not urgent:
            async with self._shared_slot():
                yield
            return
        async with self._urgent_writes:
            yield

    def observed(self, name: str, resource_version: int) -> None:
        """A user's event came back: once it is at least as new as our last write, forget that write."""
        written = self.written.get(name)
        if written is not None and written.resource_version <= resource_version:
            del self.written[name]

    # --- flush worker: targets, rules, groups ---------------------------------------------------

    async def _flush_worker(self) -> None:
        while True:
            await self._flush_wakeup.wait()
            await asyncio.sleep(self.settings.flush_interval_seconds)
            await self.active.wait()
            self._flush_wakeup.clear()
            try:
                await self.flush()
            except ApiUnavailable as error:
                log.warning("API server unavailable; will retry flush", extra={"error": str(error)[:200]})
                await asyncio.sleep(1)
                self._flush_wakeup.set()
            except Exception:
                log.exception("flush failed")
                await asyncio.sleep(1)
                self._flush_wakeup.set()

    def produced_targets(self) -> set[TargetKey]:
        """Names some valid rule produces now: fixed names always, templated ones while they have members."""
        produced: set[TargetKey] = set()
        for rule in self.all_rules():
            if rule.problem is None and rule.spec.target.name:
                produced.add((rule.kind, rule.spec.target.name))
            if rule.problem is None and rule.kind == "Team" and rule.spec.target.business_unit:
                produced.add(("BusinessUnit", rule.spec.target.business_unit))
        for (kind, _rule), targets in self.memberships.rule_targets.items():
            for target in targets:
                if self.memberships.members.get((kind, target)):  # type: ignore[arg-type]
                    produced.add((kind, target))  # type: ignore[arg-type]
        return produced

    async def flush(self) -> None:
        targets, self.dirty_targets = self.dirty_targets, set()
        rules, self.dirty_rules = self.dirty_rules, set()
        groups, self.dirty_groups = self.dirty_groups, set()
        role_rules, self.dirty_role_rules = self.dirty_role_rules, set()
        providers, self.dirty_providers = self.dirty_providers, set()
        produced = self.produced_targets()
        # A team's business unit changed its member list: the unit's status lists the team.
        for kind, name in list(targets):
            record = self.view.targets.get((kind, name))
            if kind == "Team" and record is not None and record.business_unit:
                targets.add(("BusinessUnit", record.business_unit))
        target_keys, rule_keys, group_keys = sorted(targets), sorted(rules), sorted(groups)
        role_keys, provider_keys = sorted(role_rules), sorted(providers)
        results = await asyncio.gather(
            *(self._flush_target(key, produced) for key in target_keys),
            *(self._flush_rule(key) for key in rule_keys),
            *(self._flush_group(scim_id) for scim_id in group_keys),
            *(self._flush_role_rule(name) for name in role_keys),
            *(self._flush_provider(name) for name in provider_keys),
            return_exceptions=True,
        )
        # Whatever failed is retried on a later flush; one bad object never drops the others' work.
        # A 404 is an object deleted since it was queued: its DELETED event follows, nothing to retry.
        failed = [
            (key, r)
            for key, r in zip([*target_keys, *rule_keys, *group_keys, *role_keys, *provider_keys], results, strict=True)
            if isinstance(r, BaseException) and not (isinstance(r, ApiError) and r.not_found)
        ]
        for key, error in failed:
            if isinstance(error, ApiUnavailable):
                log.warning("API server unavailable during flush", extra={"object": str(key)})
            else:
                log.error("status write failed", extra={"object": str(key), "error": str(error)[:300]})
        self.dirty_targets.update(k for k, _ in failed if k in targets)
        self.dirty_rules.update(k for k, _ in failed if k in rules)
        self.dirty_groups.update(k for k, _ in failed if k in groups)
        self.dirty_role_rules.update(str(k) for k, _ in failed if k in role_rules)
        self.dirty_providers.update(str(k) for k, _ in failed if k in providers)
        if failed:
            await asyncio.sleep(1)
            self._flush_wakeup.set()

    def _rules_for(self, key: TargetKey) -> list[str]:
        names = {
            rule
            for (kind, rule), targets in self.memberships.rule_targets.items()
            if kind == key[0] and key[1] in targets and self.memberships.members.get(key)
        }
        names.update(r.name for r in self.all_rules() if r.kind == key[0] and r.spec.target.name == key[1])
        return sorted(names)

    async def _flush_target(self, key: TargetKey, produced: set[TargetKey]) -> None:
        kind, name = key
        if not self._status_write_due(key):
            self.dirty_targets.add(key)
            self._flush_wakeup.set()
            return
        resource = TARGET_RESOURCES[kind]
        record: TargetRecord | None = self.view.targets.get(key)
        members = self.memberships.members.get(key, {})
        if record is None:
            if key in produced:
                await self._create_target(key)
            return
        if (
            record.created_by_operator
            and key not in produced
            and not members
            and not record.manual_members
            and self.settings.delete_orphaned_targets
        ):
            try:
                async with self._shared_slot():
                    await self.writer.delete(resource, name, record.uid)
                self.stats.target_writes += 1
                await self._event(kind, record, "Normal", "Removed", "no rule produces this name and it has no members")
            except ApiError as error:
                if not (error.not_found or error.conflict):
                    raise
            return
        stored = record.status  # unpacked once: a Team's status lists up to 500 members
        status = self._target_status(record, members, stored)
        if not status_equal(stored, status):
            async with self._shared_slot():
                await self.writer.patch_status(resource, name, status)
            self.stats.target_writes += 1
            self._last_status_write[key] = time.monotonic()
        current = frozenset(members)
        previous = self.flushed_members.get(key)
        self.flushed_members[key] = current
        if previous is not None and previous != current:
            await self._membership_event(record, previous, current)

    async def _create_target(self, key: TargetKey) -> None:
        kind, name = key
        suggestion = self.memberships.suggestions.get(key)
        rule = next((r for r in self.all_rules() if r.kind == kind and r.spec.target.name == name), None)
        display = (suggestion.display_name if suggestion else None) or name
        spec: dict[str, Any] = {"displayName": display[:256]}
        unit = (suggestion.business_unit if suggestion else None) or (rule.spec.target.business_unit if rule else None)
        if kind == "Team" and unit:
            spec["businessUnit"] = unit
        body = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {
                "name": name,
                "labels": {**PART_OF, **MANAGED_BY_OPERATOR, LABEL_CREATED_BY: CREATED_BY_OPERATOR},
            },
            "spec": spec,
        }
        try:
            async with self._shared_slot():
                await self.writer.create(TARGET_RESOURCES[kind], body)
            self.stats.target_writes += 1
            log.info("created target", extra={"kind": kind, "target": name})
        except ApiError as error:
            if not error.conflict:
                raise

    def _target_status(
        self, record: TargetRecord, members: Mapping[str, tuple[Provenance, ...]], stored: Mapping[str, Any]
    ) -> dict[str, Any]:
        users = self.view.users
        names = {key: user.user_name for key in members if (user := users.get(key)) is not None}
        rule_names = self._rules_for(record.key)
        rules = [r for r in self.all_rules() if r.name in set(rule_names)]
        teams = sorted(
            t.name for t in self.view.targets.values() if t.kind == "Team" and t.business_unit == record.name
        )
        return target_status(
            record, members, names, rule_names, rules, teams, self.settings.member_status_limit, stored
        )

    async def _flush_rule(self, key: tuple[str, str]) -> None:
        kind, name = key
        record: RuleRecord | None = self.view.rules.get(key)
        if record is None:
            self.memberships.rule_users.pop(key, None)
            self.memberships.rule_targets.pop(key, None)
            self.issues.pop(key, None)
            return
        status_key = (f"{kind}Mapping", name)  # not to share a slot with a target of the same name
        if not self._status_write_due(status_key):
            self.dirty_rules.add(key)
            self._flush_wakeup.set()
            return
        previous = record.status.get("conditions") or []
        users = self.memberships.rule_users.get(key, set())
        targets = sorted(
            t
            for t in self.memberships.rule_targets.get(key, set())
            if self.memberships.members.get((kind, t), {}).keys() & users  # type: ignore[arg-type]
        )
        problem = record.rule.problem
        attribute_check = None
        if record.rule.attribute is not None and problem is None:
            attribute_check = self.view.census.check(
                name, record.rule.spec.providers or None, record.rule.attribute.attr
            )
        # The Okta guide's "group membership is not syncing": a group assigned but never pushed has
        # no ScimGroup, so a rule waiting for it matches nothing.
        groups = self.groups_matched(key, record) if _group_source(record) and problem is None else None
        issues = sorted(self.issues.get(key, set()))
        status = mapping_rule_status(record, len(users), targets, issues, attribute_check, groups)
        if not status_equal(record.status, status):
            async with self._shared_slot():
                await self.writer.patch_status(RULE_RESOURCES[kind], name, status)  # type: ignore[index]
            self._last_status_write[status_key] = time.monotonic()
            old_ready: dict[str, Any] = next((c for c in previous if c.get("type") == "Ready"), {})
            if problem and old_ready.get("status") != "False":
                await self._rule_event(kind, name, record, problem)
            old_found: dict[str, Any] = next((c for c in previous if c.get("type") == "AttributeFound"), {})
            changed = old_found.get("reason") != (attribute_check.verdict if attribute_check else None)
            if attribute_check is not None and attribute_check.verdict != "Found" and changed:
                reason = f"Attribute{attribute_check.verdict}"
                await self._rule_event(kind, name, record, attribute_check.message, reason)

    async def _flush_role_rule(self, name: str) -> None:
        record: RoleRuleRecord | None = self.view.role_rules.get(name)
        if record is None:
            self.role_rule_users.pop(name, None)
            return
        status_key = ("RoleMapping", name)
        if not self._status_write_due(status_key):
            self.dirty_role_rules.add(name)
            self._flush_wakeup.set()
            return
        matched = self.role_rule_users.get(name, set())
        assigned = sum(1 for user in matched if any(p.rule == name for p in self.roles[user].sources))
        missing = undeclared(record.rule, self.catalogs()) if record.rule.problem is None else []
        attribute_check = None
        if record.rule.attribute is not None and record.rule.problem is None:
            attribute_check = self.view.census.check(
                name, record.rule.spec.providers or None, record.rule.attribute.attr
            )
        status = role_rule_status(record, len(matched), assigned, missing, attribute_check)
        if not status_equal(record.status, status):
            async with self._shared_slot():
                await self.writer.patch_status(ROLE_MAPPINGS, name, status)
            self._last_status_write[status_key] = time.monotonic()
            previous = record.status.get("conditions") or []
            old_ready: dict[str, Any] = next((c for c in previous if c.get("type") == "Ready"), {})
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            if ready["status"] == "False" and old_ready.get("reason") != ready["reason"]:
                await self._post_event(
                    self._regarding("RoleMapping", name), "Warning", ready["reason"], ready["message"]
                )
            old_found: dict[str, Any] = next((c for c in previous if c.get("type") == "AttributeFound"), {})
            if (
                attribute_check is not None
                and not attribute_check.ok
                and old_found.get("reason") != attribute_check.verdict
            ):
                await self._post_event(
                    self._regarding("RoleMapping", name),
                    "Warning",
                    f"Attribute{attribute_check.verdict}",
                    attribute_check.message,
                )

    async def _flush_provider(self, name: str) -> None:
        """The provider's CustomAttributesArriving condition, applied server-side as this one condition
        (the reconciler owns the others): a declared custom attribute users carry under another case
        or URN, or not at all, is named."""
        record = self.view.providers.get(name)
        if record is None:
            return
        census = self.view.census
        checks = [
            census.check(name, [name], AttrPath(attr, urn=urn), subject=f"provider {name} declares custom attribute")
            for urn, attr in record.custom_attributes
        ]
        previous = list(record.conditions)
        built = custom_attributes_condition(record.custom_attributes, checks, census.users(name), previous)
        old: dict[str, Any] = next((c for c in previous if c.get("type") == CUSTOM_ATTRIBUTES_CONDITION), {})
        if not record.custom_attributes and not old:
            return  # nothing declared, nothing said: no condition on most providers
        if all(old.get(k) == built[k] for k in ("status", "reason", "message")):
            return
        body = {
            "apiVersion": API_VERSION,
            "kind": "IdentityProvider",
            "metadata": {"name": name},
            "status": {"conditions": [built]},
        }
        async with self._shared_slot():
            await self.writer.apply_status(IDENTITY_PROVIDERS, body)
        if built["status"] == "False" and old.get("reason") != built["reason"]:
            await self._post_event(
                self._regarding("IdentityProvider", name),
                "Warning",
                f"CustomAttribute{built['reason']}",
                built["message"],
            )

    async def _flush_group(self, scim_id: str) -> None:
        group: GroupRecord | None = self.view.groups.get(scim_id)
        if group is None:
            return
        count = len(list(self.view.users_by_group.get(scim_id, ())))
        status = {"id": scim_id, "memberCount": count}
        if group.status.get("id") != scim_id or group.status.get("memberCount") != count:
            async with self._shared_slot():
                await self.writer.patch_status(SCIM_GROUPS, group.name, status)

    # --- events ---------------------------------------------------------------------------------

    async def _membership_event(self, record: TargetRecord, before: frozenset[str], after: frozenset[str]) -> None:

        def names(keys: Iterable[str]) -> str:
            users = self.view.users
            shown = sorted((u.user_name if (u := users.get(k)) is not None else k) for k in keys)
            return ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")

        added, removed = after - before, before - after
        parts = []
        if added:
            parts.append(f"added {len(added)}: {names(added)}")
        if removed:
            parts.append(f"removed {len(removed)}: {names(removed)}")
        await self._event(record.kind, record, "Normal", "MembersChanged", "; ".join(parts) + f" (now {len(after)})")

    def _regarding(self, kind: str, name: str) -> dict[str, Any]:
        """An Event's object reference to one of this namespace's kubescim objects."""
        return {"apiVersion": API_VERSION, "kind": kind, "name": name, "namespace": self.settings.namespace}

    async def _rule_event(
        self, kind: str, name: str, record: RuleRecord, problem: str, reason: str = "InvalidRule"
    ) -> None:
        regarding = {
            "apiVersion": API_VERSION,
            "kind": f"{kind}Mapping",
            "name": name,
            "namespace": self.settings.namespace,
        }
        await self._post_event(regarding, "Warning", reason, problem)

    async def _event(self, kind: str, record: TargetRecord, type_: str, reason: str, note: str) -> None:
        regarding = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "name": record.name,
            "namespace": self.settings.namespace,
            "uid": record.uid,
        }
        await self._post_event(regarding, type_, reason, note)

    async def _post_event(self, regarding: dict[str, Any], type_: str, reason: str, note: str) -> None:
        await self.writer.event(regarding, type_, reason, note)


def _group_source(record: RuleRecord) -> bool:
    # (An invalid rule's placeholder spec may lack a source.)
    return getattr(record.rule.spec, "source", None) == MappingSource.GROUP
