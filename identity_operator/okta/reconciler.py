"""One reconciliation run for one IdentityProvider: fetch Okta and the cluster, plan, apply, report.

Safety by construction: both snapshots are fetched completely before anything is written, and any
failed or partial fetch ends the run with no write at all; a plan that would deactivate too many
users is applied without its destructive part and reported as Blocked; a run with no drift writes
nothing but the provider's status.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from identity_operator.okta.client import MAX_LIMIT, OktaClient, OktaCredentials, OktaFetchError
from identity_operator.okta.plan import (
    ACTIVE_ASSIGNMENT,
    ACTIVE_STATUSES,
    ClusterGroup,
    ClusterUser,
    DeltaScope,
    OktaGroup,
    OktaUser,
    Plan,
    delta_reads_each_user,
    make_plan,
)
from kubescim.api.models import (
    IdentityProviderSpec,
    OktaAuthType,
    ScimGroupSpec,
    ScimUserSpec,
    SyncCounts,
    SyncKind,
    SyncResult,
    UnbackedPolicy,
)
from kubescim.constants import LABEL_PROVIDER, LABEL_SCIM_ID, SCIM_GROUPS, SCIM_USERS
from kubescim.kube import SECRETS, ApiError, Kube
from kubescim.objects import group_ids_from_labels
from kubescim.scim.resources import user_object_name
from kubescim.storage import ObjectRef, ScimStorage, StorageError

log = logging.getLogger("kubescim.reconciler")


class SecretMissing(Exception):
    pass


@dataclass
class RunResult:
    result: SyncResult
    message: str
    counts: SyncCounts = field(default_factory=SyncCounts)
    okta_calls: int = 0
    rate_limit_waits: int = 0
    throttled: int = 0  # Okta's 429 answers
    duration: float = 0.0
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    writes: int = 0
    errors: list[str] = field(default_factory=list)
    drift: bool = True  # the run found something to repair or to report (False: "no drift", stay quiet)
    unpushed: list[UnpushedGroup] | None = field(default_factory=list)  # None: not read (a delta run)
    kind: SyncKind = SyncKind.FULL
    cursor: dt.datetime | None = None  # set by a successful run: where the next delta starts
    fallback_reason: str | None = None  # a delta was asked for, a full run ran: why
    deltas_unavailable: str | None = None  # why no delta can run until the spec changes

    @classmethod
    def failed(cls, message: str, **details: Any) -> RunResult:
        return cls(SyncResult.FAILED, message, **details)


async def read_secret_key(kube: Kube, namespace: str, name: str, key: str) -> str:
    try:
        secret = await kube.get(SECRETS, name, namespace)
    except ApiError as error:
        if error.not_found:
            raise SecretMissing(f"Secret {name} not found") from None
        raise
    value = (secret.get("data") or {}).get(key)
    if value is None:
        raise SecretMissing(f"Secret {name} has no key {key}")
    return base64.b64decode(value).decode().strip()


async def credentials_for(kube: Kube, namespace: str, spec: IdentityProviderSpec) -> OktaCredentials:
    assert spec.okta is not None
    auth = spec.okta.auth
    if auth.type == OktaAuthType.API_TOKEN:
        assert auth.api_token_secret_ref is not None
        token = await read_secret_key(kube, namespace, auth.api_token_secret_ref.name, auth.api_token_secret_ref.key)
        return OktaCredentials(spec.okta.org_url, api_token=token)
    assert auth.oauth is not None
    ref = auth.oauth.private_key_secret_ref
    key = await read_secret_key(kube, namespace, ref.name, ref.key)
    return OktaCredentials(
        spec.okta.org_url,
        client_id=auth.oauth.client_id,
        private_key_pem=key,
        key_id=auth.oauth.key_id,
        scopes=tuple(auth.oauth.scopes),
    )


# --- snapshots ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnpushedGroup:
    """A group assigned to the app (its members get the app) that Push Groups does not push: its
    membership never reaches the cluster (the Okta guide's "group membership is not syncing")."""

    okta_id: str
    name: str


@dataclass
class OktaSnapshot:
    users: list[OktaUser]
    groups: list[OktaGroup]  # pushed groups, with their members
    unpushed: list[UnpushedGroup]


def okta_user(app_user: dict[str, Any]) -> OktaUser:
    """An app user (expanded with its Okta user) as the plan compares it."""
    embedded = (app_user.get("_embedded") or {}).get("user") or {}
    status = embedded.get("status", "ACTIVE")
    credentials = app_user.get("credentials") or {}
    user_name = credentials.get("userName") or (embedded.get("profile") or {}).get("login")
    if not user_name:
        raise OktaFetchError(f"app user {app_user.get('id')} has no userName")
    return OktaUser(
        okta_id=str(app_user["id"]),
        scim_id=app_user.get("externalId"),
        active=status in ACTIVE_STATUSES and app_user.get("status") in ACTIVE_ASSIGNMENT,
        user_name=str(user_name),
        profile=dict(app_user.get("profile") or {}),
    )


async def fetch_okta(client: OktaClient, app_id: str, group_concurrency: int = 4) -> OktaSnapshot:
    users = [okta_user(a) for a in await client.app_users(app_id)]
    mappings = [m for m in await client.push_mappings(app_id) if m.get("status", "ACTIVE") == "ACTIVE"]
    pushed = {str(m["sourceGroupId"]) for m in mappings}
    unpushed_ids = sorted({str(g["id"]) for g in await client.app_groups(app_id)} - pushed)
    names = (
        {
            str(g["id"]): str((g.get("profile") or {}).get("name", ""))
            for g in await client.list_all("/api/v1/groups", "groups")
        }
        if mappings or unpushed_ids
        else {}
    )
    semaphore = asyncio.Semaphore(group_concurrency)

    async def one(mapping: dict[str, Any]) -> OktaGroup:
        source = str(mapping["sourceGroupId"])
        async with semaphore:
            member_ids = await client.group_member_ids(source)
        if source not in names:
            raise OktaFetchError(f"pushed group {source} not found among the org's groups")
        return OktaGroup(source, mapping.get("targetGroupId"), names[source], frozenset(member_ids))

    groups = await asyncio.gather(*(one(m) for m in mappings))
    unpushed = [UnpushedGroup(g, names.get(g, g)) for g in unpushed_ids]
    return OktaSnapshot(users, list(groups), sorted(unpushed, key=lambda g: (g.name, g.okta_id)))


# --- delta reads --------------------------------------------------------------------------------

# Okta's System Log and its users/groups search are eventually consistent (an event can appear a few
# seconds after its `published` time): each delta re-reads this much before its cursor. Re-reading a
# change already applied finds no drift and writes nothing.
DELTA_OVERLAP = dt.timedelta(minutes=2)
# Our clock may differ from Okta's by this much before a delta run no longer trusts its cursor.
MAX_CLOCK_SKEW = dt.timedelta(seconds=60)
# How far back Okta's System Log goes (90 days); an older cursor cannot be caught up on.
LOG_RETENTION = dt.timedelta(days=90)


def okta_time(moment: dt.datetime) -> str:
    """Okta's timestamp format, which its filters compare: UTC, milliseconds, Z."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class DeltaUnsure(Exception):
    """A delta run cannot be sure it sees every change: a full run is needed (the message says why).
    `lasting`: it will not get better by itself (the System Log refuses these credentials), so the
    scheduler stops trying deltas until the provider's spec changes, instead of a full run every
    delta interval."""

    def __init__(self, message: str, *, lasting: bool = False) -> None:
        super().__init__(message)
        self.lasting = lasting


@dataclass
class DeltaSnapshot:
    users: list[OktaUser]  # the touched users still assigned
    groups: list[OktaGroup]  # pushed groups renamed, with changed members, or newly pushed
    scope: DeltaScope
    touched_users: int
    events: int


async def fetch_okta_delta(
    client: OktaClient,
    app_id: str,
    since: dt.datetime,
    until: dt.datetime,
    cluster_users: list[ClusterUser],
    cluster_groups: list[ClusterGroup],
    group_concurrency: int = 4,
) -> DeltaSnapshot:
    """What changed in Okta in [since, until): users through `lastUpdated` (profile and status,
    DEPROVISIONED included) and the System Log (assignments to and from the app, which do not move a
    user's lastUpdated); groups through `lastUpdated` / `lastMembershipUpdated`, and the push mappings
    (read whole: a few calls, and they say which groups are pushed at all)."""
    if until - since > LOG_RETENTION:
        raise DeltaUnsure(f"the cursor ({okta_time(since)}) is older than Okta's System Log keeps (90 days)")
    try:
        events = await client.assignment_events(app_id, okta_time(since), okta_time(until))
    except OktaFetchError as error:
        if error.status in (401, 403):
            raise DeltaUnsure(
                f"the System Log cannot be read (HTTP {error.status}): grant the okta.logs.read scope "
                "(OAuth) or use an API token of an admin who may read it",
                lasting=True,
            ) from None
        raise
    stats = client.stats
    if stats.server_time is not None and stats.local_time is not None:
        skew = abs(stats.server_time - stats.local_time)
        if skew > MAX_CLOCK_SKEW:
            raise DeltaUnsure(f"this node's clock differs from Okta's by {skew.total_seconds():.0f} s")
    touched = {
        str(t.get("id"))
        for event in events
        for t in event.get("target") or []
        if t.get("type") == "User" and t.get("id")
    }
    known = {u.external_id for u in cluster_users if u.external_id}
    touched |= {str(u["id"]) for u in await client.users_changed_since(okta_time(since)) if str(u.get("id")) in known}
    users: list[OktaUser] = []
    if not delta_reads_each_user(len(touched), len(known), MAX_LIMIT["app_users"]):
        listed = [okta_user(a) for a in await client.app_users(app_id)]
        users = listed
        read = frozenset(known | {u.okta_id for u in listed})
    else:
        semaphore = asyncio.Semaphore(group_concurrency)

        async def one(okta_id: str) -> OktaUser | None:
            async with semaphore:
                found = await client.app_user(app_id, okta_id)
            return okta_user(found) if found is not None else None

        users = [u for u in await asyncio.gather(*(one(i) for i in sorted(touched))) if u is not None]
        read = frozenset(touched)

    mappings = [m for m in await client.push_mappings(app_id) if m.get("status", "ACTIVE") == "ACTIVE"]
    pushed = {str(m["sourceGroupId"]): m for m in mappings}
    targets = {str(m["targetGroupId"]) for m in mappings if m.get("targetGroupId")}
    have = {g.external_id for g in cluster_groups if g.external_id} | {g.scim_id for g in cluster_groups}
    changed = {str(g["id"]): g for g in await client.groups_changed_since(okta_time(since)) if str(g["id"]) in pushed}
    new = [okta_id for okta_id, m in pushed.items() if okta_id not in have and m.get("targetGroupId") not in have]
    semaphore = asyncio.Semaphore(group_concurrency)

    async def group(okta_id: str) -> OktaGroup:
        async with semaphore:
            body = changed.get(okta_id) or await client.group(okta_id)
            member_ids = await client.group_member_ids(okta_id)
        name = str((body.get("profile") or {}).get("name", ""))
        return OktaGroup(okta_id, pushed[okta_id].get("targetGroupId"), name, frozenset(member_ids))

    groups = await asyncio.gather(*(group(i) for i in sorted(set(changed) | set(new))))
    scope = DeltaScope(users=read, pushed=frozenset(set(pushed) | targets))
    return DeltaSnapshot(users, list(groups), scope, len(touched), len(events))


async def fetch_cluster(kube: Kube, namespace: str, provider: str) -> tuple[list[ClusterUser], list[ClusterGroup]]:
    selector = f"{LABEL_PROVIDER}={provider}"
    user_objects, _ = await kube.list(SCIM_USERS, namespace, label_selector=selector)
    group_objects, _ = await kube.list(SCIM_GROUPS, namespace, label_selector=selector)
    users = []
    for obj in user_objects:
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        if LABEL_SCIM_ID not in labels or meta.get("deletionTimestamp"):
            continue
        users.append(
            ClusterUser(
                meta["name"],
                labels[LABEL_SCIM_ID],
                dict(obj.get("spec") or {}),
                frozenset(group_ids_from_labels(labels)),
                uid=str(meta.get("uid", "")),
            )
        )
    groups_out = [
        ClusterGroup(
            o["metadata"]["name"],
            (o["metadata"].get("labels") or {}).get(LABEL_SCIM_ID, o["metadata"]["name"]),
            str((o.get("spec") or {}).get("displayName", "")),
            (o.get("spec") or {}).get("externalId"),
            uid=str(o["metadata"].get("uid", "")),
        )
        for o in group_objects
        if not o["metadata"].get("deletionTimestamp")
    ]
    return users, groups_out


# --- applying -----------------------------------------------------------------------------------


@dataclass
class Applier:
    """Applies a plan through the shared ScimStorage (the same writer, and preconditions, as the
    gateway's), counting writes and collecting the errors of the ones that failed."""

    storage: ScimStorage
    provider: str
    concurrency: int = 16
    writes: int = 0
    errors: list[str] = field(default_factory=list)
    _names: dict[str, str] = field(default_factory=dict)  # user SCIM id -> object name
    _members_of: dict[str, set[str]] = field(default_factory=dict)  # group SCIM id -> user SCIM ids

    def know(self, users: list[ClusterUser]) -> None:
        for user in users:
            self._names[user.scim_id] = user.object_name
            for group_id in user.group_ids:
                self._members_of.setdefault(group_id, set()).add(user.scim_id)

    async def _each(self, items: list[Any], work: Any) -> None:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(item: Any) -> None:
            async with semaphore:
                try:
                    await work(item)
                except (ApiError, StorageError) as error:
                    self.errors.append(f"{type(error).__name__}: {error}"[:300])

        await asyncio.gather(*(one(i) for i in items))

    async def apply(self, plan: Plan, *, destructive: bool) -> None:
        # Groups first, so new users are created with their memberships (one write each, and the
        # operator computes their teams once); every other user gets one patch for all its changes.
        changes = plan.membership_changes()
        await self._each(plan.create_groups, self._create_group)
        await self._each(plan.rename_groups, self._rename_group)
        await self._each(
            [(scim_id, spec, changes.pop(scim_id, {})) for scim_id, spec in plan.create_users], self._create_user
        )
        await self._each(plan.update_users, self._update_user)
        if destructive:
            await self._each(plan.deactivate_users, self._deactivate_user)
            await self._each(plan.delete_users, self._delete_user)
        await self._each(sorted(changes.items()), self._memberships)
        # A group's members changed: its lastModified (and so its SCIM version) moves, as when the
        # gateway changes them. New groups were just written anyway.
        created = {scim_id for scim_id, _ in plan.create_groups}
        changed = (set(plan.add_members) | set(plan.remove_members)) - created
        await self._each(sorted(changed), self._touch_group)
        if destructive:
            await self._each(plan.remove_groups, self._remove_group)

    async def _create_user(self, item: tuple[str, ScimUserSpec, dict[str, bool]]) -> None:
        scim_id, spec, groups = item
        created = await self.storage.create_user(spec, scim_id, [g for g, joined in groups.items() if joined])
        self.writes += 1
        self._names[scim_id] = created["metadata"]["name"]

    async def _update_user(self, item: tuple[ClusterUser, ScimUserSpec]) -> None:
        user, spec = item
        ref = ObjectRef(user.object_name, user.uid)
        if user_object_name(spec.provider, spec.user_name) == user.object_name:
            await self.storage.replace_user(ref, spec)
            self.writes += 1
            return
        renamed = await self.storage.rename_user(ref, spec, user.scim_id, user.group_ids)
        self.writes += 2
        self._names[user.scim_id] = renamed["metadata"]["name"]

    async def _deactivate_user(self, user: ClusterUser) -> None:
        spec = ScimUserSpec.model_validate({**user.spec, "active": False})
        await self.storage.replace_user(ObjectRef(user.object_name, user.uid), spec)
        self.writes += 1

    async def _delete_user(self, user: ClusterUser) -> None:
        if await self.storage.delete(SCIM_USERS, ObjectRef(user.object_name, user.uid)):
            self.writes += 1

    async def _create_group(self, item: tuple[str, OktaGroup]) -> None:
        scim_id, group = item
        spec = ScimGroupSpec(provider=self.provider, display_name=group.name, external_id=group.okta_id)
        await self.storage.create_group(spec, scim_id)
        self.writes += 1

    async def _rename_group(self, item: tuple[ClusterGroup, str, str]) -> None:
        group, name, okta_id = item
        spec = ScimGroupSpec(provider=self.provider, display_name=name, external_id=okta_id)
        await self.storage.update_group(group.object_name, spec)
        self.writes += 1

    async def _touch_group(self, scim_id: str) -> None:
        await self.storage.update_group(scim_id, None)
        self.writes += 1

    async def _memberships(self, item: tuple[str, dict[str, bool]]) -> None:
        user_scim_id, groups = item
        name = self._names.get(user_scim_id)
        if name is None:
            return
        if await self.storage.set_user_groups(name, groups) is not None:
            self.writes += 1

    async def _remove_group(self, group: ClusterGroup) -> None:
        if await self.storage.delete(SCIM_GROUPS, ObjectRef(group.object_name, group.uid)):
            self.writes += 1
        members = [n for scim_id, n in self._names.items() if scim_id in self._members_of.get(group.scim_id, set())]
        for name in members:
            if await self.storage.set_user_groups(name, {group.scim_id: False}) is not None:
                self.writes += 1


# --- a run --------------------------------------------------------------------------------------


async def reconcile(
    kube: Kube,
    namespace: str,
    provider: str,
    spec: IdentityProviderSpec,
    *,
    allow_mass_deactivation: bool = False,
    client: OktaClient | None = None,
    okta_timeout: float = 30.0,
    since: dt.datetime | None = None,
) -> RunResult:
    """A full run, or with `since` a delta run reading only what changed in Okta since then; a delta
    that cannot be sure it sees every change runs as a full run instead (fallback_reason says why)."""
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    counts = SyncCounts()
    assert spec.okta is not None
    own_client = client is None
    try:
        if client is None:
            client = OktaClient(
                await credentials_for(kube, namespace, spec),
                budget_share=spec.reconcile.max_rate_limit_share_percent / 100,
                timeout=okta_timeout,
            )
        delta: DeltaSnapshot | None = None
        fallback: str | None = None
        deltas_unavailable: str | None = None
        unpushed: list[UnpushedGroup] | None = None
        if since is not None:
            # The cluster first: the delta reads only users it holds (or the Log names).
            cluster_users, cluster_groups = await fetch_cluster(kube, namespace, provider)
            try:
                delta = await fetch_okta_delta(
                    client, spec.okta.app_id, since - DELTA_OVERLAP, started, cluster_users, cluster_groups
                )
            except DeltaUnsure as error:
                fallback = str(error)
                deltas_unavailable = fallback if error.lasting else None
                log.info("delta run falls back to a full run", extra={"provider": provider, "detail": fallback})
        if delta is not None:
            okta_users, okta_groups = delta.users, delta.groups
        else:
            okta = await fetch_okta(client, spec.okta.app_id)
            okta_users, okta_groups, unpushed = okta.users, okta.groups, okta.unpushed
            cluster_users, cluster_groups = await fetch_cluster(kube, namespace, provider)
        # Okta's clock at the start, not ours: the next delta reads from there.
        cursor = started
        if client.stats.server_time is not None and client.stats.local_time is not None:
            cursor = started + (client.stats.server_time - client.stats.local_time)
    except (OktaFetchError, SecretMissing) as error:
        calls = client.stats.calls if client else 0
        waits = client.stats.rate_limit_waits if client else 0
        throttled = client.stats.throttled if client else 0
        if own_client and client is not None:
            await client.close()
        return RunResult.failed(
            f"fetch failed, nothing changed: {error}",
            okta_calls=calls,
            rate_limit_waits=waits,
            throttled=throttled,
            duration=time.monotonic() - clock,
            started=started,
            kind=SyncKind.DELTA if since is not None else SyncKind.FULL,
        )
    plan = make_plan(
        provider,
        okta_users,
        okta_groups,
        cluster_users,
        cluster_groups,
        policy=spec.reconcile.deactivation_policy,
        threshold_percent=spec.reconcile.mass_deactivation_threshold_percent,
        allow_mass_deactivation=allow_mass_deactivation,
        remove_unbacked=spec.reconcile.unbacked == UnbackedPolicy.REMOVE,
        scope=delta.scope if delta is not None else None,
    )
    applier = Applier(ScimStorage(kube, namespace), provider)
    applier.know(cluster_users)
    await applier.apply(plan, destructive=plan.blocked is None)
    counts = SyncCounts(
        users_seen=len(okta_users),
        created=len(plan.create_users),
        updated=len(plan.update_users) - plan.reactivated,
        reactivated=plan.reactivated,
        deactivated=0 if plan.blocked else plan.destructive,
        unchanged=plan.unchanged,
        groups_seen=len(okta_groups),
        groups_fixed=plan.groups_fixed,
        groups_removed=0 if plan.blocked else len(plan.remove_groups),
    )
    if own_client:
        await client.close()
    duration = time.monotonic() - clock
    result: SyncResult
    if applier.errors:
        result, message = SyncResult.FAILED, f"{len(applier.errors)} write(s) failed; first: {applier.errors[0]}"
    elif plan.blocked:
        result, message = SyncResult.BLOCKED, plan.blocked
    elif plan.empty:
        result, message = SyncResult.SUCCEEDED, "no drift"
    else:
        result, message = SyncResult.SUCCEEDED, _summary(counts)
    if plan.unbacked_users and not plan.blocked:
        message += f"; not backed by Okta: {_names(u.spec.get('userName', u.scim_id) for u in plan.unbacked_users)}"
    if plan.remove_groups and not plan.blocked:
        message += f"; groups Okta does not push, removed: {_names(g.display_name for g in plan.remove_groups)}"
    if plan.invalid:
        message += f"; {len(plan.invalid)} Okta user(s) skipped (invalid or conflicting attributes)"
    if delta is not None:
        message = f"delta: {delta.touched_users} user(s) and {len(delta.groups)} group(s) changed in Okta; {message}"
    elif fallback is not None:
        message = f"full run instead of a delta ({fallback}); {message}"
    return RunResult(
        result,
        message,
        counts=counts,
        okta_calls=client.stats.calls,
        rate_limit_waits=client.stats.rate_limit_waits,
        throttled=client.stats.throttled,
        duration=duration,
        started=started,
        writes=applier.writes,
        errors=applier.errors,
        drift=not plan.empty or bool(plan.invalid) or result != SyncResult.SUCCEEDED,
        unpushed=unpushed,
        kind=SyncKind.DELTA if delta is not None else SyncKind.FULL,
        cursor=cursor if result == SyncResult.SUCCEEDED else None,
        fallback_reason=fallback,
        deltas_unavailable=deltas_unavailable,
    )


def _names(names: Iterable[str], shown: int = 5) -> str:
    listed = sorted(names)
    rest = f" and {len(listed) - shown} more" if len(listed) > shown else ""
    return ", ".join(listed[:shown]) + rest


def _summary(counts: SyncCounts) -> str:
    parts = [
        f"{value} {label}"
        for value, label in (
            (counts.created, "created"),
            (counts.updated, "updated"),
            (counts.reactivated, "reactivated"),
            (counts.deactivated, "deactivated"),
            (counts.groups_fixed, "groups fixed"),
            (counts.groups_removed, "groups removed"),
        )
        if value
    ]
    return "repaired drift: " + ", ".join(parts)
