"""Kopf registrations: thin decorators that keep indexes and tell the engine what became dirty.

No handler here writes anything itself, stores Kopf state on objects, or adds finalizers: the
engine does every write, explicitly, through the shared Kubernetes client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import kopf

from identity_operator.engine import Engine, Indexes
from identity_operator.mapping import TargetKind
from identity_operator.okta.scheduler import Scheduler
from identity_operator.records import GroupRecord, RuleRecord, TargetRecord, UserRecord
from identity_operator.settings import OperatorSettings
from kubescim.constants import GROUP, GROUP_LABEL_PREFIX, VERSION
from kubescim.kube import Kube, KubeConfig
from kubescim.scim.resources import fold

log = logging.getLogger("kubescim.operator")


class MergedIndex(Mapping[Any, Any]):
    """Two Kopf indexes with disjoint keys, read as one (rules and targets come from two kinds each)."""

    def __init__(self, *parts: Mapping[Any, Any]) -> None:
        self.parts = parts

    def __getitem__(self, key: Any) -> Any:
        for part in self.parts:
            if key in part:
                return part[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        for part in self.parts:
            yield from part

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorSettings()
    prefix = GROUP
    settings.persistence.finalizer = f"{prefix}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix, key="last-handled")
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.peering.name = config.peering
    settings.peering.priority = config.priority
    settings.peering.standalone = config.standalone
    settings.peering.lifetime = config.peering_lifetime_seconds
    settings.posting.level = logging.WARNING
    memo.config = config
    kube = Kube(KubeConfig.load(config.kubeconfig))
    memo.engine = Engine(kube, config)
    memo.scheduler = Scheduler(
        kube,
        config.namespace,
        scim_base_url=config.scim_public_url,
        first_run_delay=config.reconcile_first_delay_seconds,
        retry_base=config.reconcile_retry_seconds,
        okta_timeout=config.okta_timeout_seconds,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    engine: Engine = memo.engine
    scheduler: Scheduler = memo.scheduler
    await scheduler.stop()
    await engine.stop()
    await engine.kube.close()


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    config = KubeConfig.load(OperatorSettings().kubeconfig)
    return kopf.ConnectionInfo(
        server=config.server,
        ca_path=config.ca_file,
        ca_data=config.ca_data,
        insecure=config.insecure,
        token=config.bearer_token(),
        certificate_path=config.client_cert[0] if config.client_cert else None,
        private_key_path=config.client_cert[1] if config.client_cert else None,
        default_namespace=config.namespace,
    )


# --- indexes: the operator's view of the cluster ------------------------------------------------


@kopf.index(GROUP, VERSION, "scimusers")
def users_idx(body: kopf.Body, name: str, **_: Any) -> dict[str, UserRecord]:
    return {name: UserRecord.from_body(body)}


@kopf.index(GROUP, VERSION, "scimusers")
def users_by_group_idx(labels: kopf.Labels, name: str, **_: Any) -> dict[str, str]:
    return {key[len(GROUP_LABEL_PREFIX) :]: name for key in labels if key.startswith(GROUP_LABEL_PREFIX)}


@kopf.index(GROUP, VERSION, "scimusers")
def users_by_user_name_idx(spec: kopf.Spec, name: str, **_: Any) -> dict[str, str]:
    return {fold(str(spec.get("userName", ""))): name}


@kopf.index(GROUP, VERSION, "scimgroups")
def groups_idx(body: kopf.Body, **_: Any) -> dict[str, GroupRecord] | None:
    record = GroupRecord.from_body(body)
    return {record.scim_id: record} if record else None


@kopf.index(GROUP, VERSION, "teammappings")
def team_rules_idx(body: kopf.Body, name: str, **_: Any) -> dict[tuple[str, str], RuleRecord]:
    return {("Team", name): RuleRecord.from_body(body, "Team")}


@kopf.index(GROUP, VERSION, "businessunitmappings")
def unit_rules_idx(body: kopf.Body, name: str, **_: Any) -> dict[tuple[str, str], RuleRecord]:
    return {("BusinessUnit", name): RuleRecord.from_body(body, "BusinessUnit")}


@kopf.index(GROUP, VERSION, "teams")
def teams_idx(body: kopf.Body, name: str, **_: Any) -> dict[tuple[str, str], TargetRecord]:
    return {("Team", name): TargetRecord.from_body(body, "Team")}


@kopf.index(GROUP, VERSION, "businessunits")
def units_idx(body: kopf.Body, name: str, **_: Any) -> dict[tuple[str, str], TargetRecord]:
    return {("BusinessUnit", name): TargetRecord.from_body(body, "BusinessUnit")}


def engine_for(memo: kopf.Memo, kwargs: dict[str, Any]) -> Engine:
    engine: Engine = memo.engine
    if engine.indexes is None:
        engine.bind(
            Indexes(
                users=kwargs["users_idx"],
                users_by_group=kwargs["users_by_group_idx"],
                users_by_user_name=kwargs["users_by_user_name_idx"],
                groups=kwargs["groups_idx"],
                rules=MergedIndex(kwargs["team_rules_idx"], kwargs["unit_rules_idx"]),
                targets=MergedIndex(kwargs["teams_idx"], kwargs["units_idx"]),
            )
        )
    return engine


# --- events: mark what changed ------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, "scimusers")
async def on_user(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    engine_for(memo, kwargs).user_changed(name)


@kopf.on.event(GROUP, VERSION, "scimgroups")
async def on_group(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    engine = engine_for(memo, kwargs)
    record = GroupRecord.from_body(body)
    if record is None:
        return
    deleted = event.get("type") == "DELETED"
    previous = engine.known_groups.get(record.scim_id)
    if deleted:
        engine.known_groups.pop(record.scim_id, None)
    else:
        engine.known_groups[record.scim_id] = record.display_name
    engine.group_changed(record.scim_id, renamed=deleted or previous != record.display_name)


async def _on_rule(kind: TargetKind, name: str, memo: kopf.Memo, kwargs: dict[str, Any]) -> None:
    engine_for(memo, kwargs).rules_changed(kind, name)


@kopf.on.event(GROUP, VERSION, "teammappings")
async def on_team_rule(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    await _on_rule("Team", name, memo, kwargs)


@kopf.on.event(GROUP, VERSION, "businessunitmappings")
async def on_unit_rule(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    await _on_rule("BusinessUnit", name, memo, kwargs)


async def _on_target(
    kind: TargetKind, event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, kwargs: dict[str, Any]
) -> None:
    engine = engine_for(memo, kwargs)
    record = TargetRecord.from_body(body, kind)
    previous = engine.known_targets.get(record.key)
    current = None if event.get("type") == "DELETED" else record
    if current is None:
        engine.known_targets.pop(record.key, None)
    else:
        engine.known_targets[record.key] = current
    engine.target_changed(kind, record.name, previous, current)


@kopf.on.event(GROUP, VERSION, "teams")
async def on_team(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _on_target("Team", event, body, memo, kwargs)


@kopf.on.event(GROUP, VERSION, "businessunits")
async def on_unit(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _on_target("BusinessUnit", event, body, memo, kwargs)


# --- Okta reconciliation ------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, "identityproviders")
async def on_provider(event: kopf.RawEvent, body: kopf.Body, name: str, memo: kopf.Memo, **_: Any) -> None:
    scheduler: Scheduler = memo.scheduler
    if event.get("type") == "DELETED":
        await scheduler.remove(name)
    else:
        scheduler.upsert(dict(body))
