"""Kopf registrations: thin decorators that update the operator's store and tell the engine what changed.

No handler here writes anything itself, stores Kopf state on objects, or adds finalizers: the
engine does every write, explicitly, through the shared Kubernetes client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from identity_operator.access.controller import AccessController
from identity_operator.engine import Engine
from identity_operator.gate import PeeringGate
from identity_operator.mapping import TargetKind
from identity_operator.metrics import OperatorMetrics
from identity_operator.okta.scheduler import Scheduler
from identity_operator.records import GroupRecord
from identity_operator.settings import OperatorSettings
from identity_operator.store import Store
from identity_operator.user_feed import UserFeed
from identity_operator.writer import KubeWriter
from kubescim.constants import CLUSTER_ROLE_BINDINGS, GROUP, LABEL_ACCESS_BINDING_NAMESPACE, ROLE_BINDINGS, VERSION
from kubescim.informer import Informer
from kubescim.kube import NAMESPACES, Kube, KubeConfig

log = logging.getLogger("kubescim.operator")


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
    # List in pages: Kopf otherwise reads all 10,000 users in one response and holds it while it
    # dispatches them.
    settings.watching.chunk_size = 500
    settings.networking.request_timeout = 60
    settings.peering.name = config.peering
    settings.peering.priority = config.priority
    settings.peering.standalone = config.standalone
    settings.peering.lifetime = config.peering_lifetime_seconds
    settings.posting.level = logging.WARNING
    # A Kopf worker per object lingers this long after its last event: short, so the initial listing
    # of every user does not keep 10,000 idle workers around.
    settings.batching.idle_timeout = 1.0
    memo.config = config
    kube = Kube(KubeConfig.load(config.kubeconfig))
    memo.engine = Engine(kube, config)
    memo.store = Store()
    store: Store = memo.store
    memo.access = AccessController(
        KubeWriter(kube, config.namespace),
        config.namespace,
        frozenset(config.access_allowed_roles),
        bindings=lambda: store.access_bindings,
        directory=memo.engine.directory,
        subjects_per_object=config.access_subjects_per_object,
        backlog=memo.engine.bulk_backlog,
        urgent_work=memo.engine.urgent_work,
    )
    memo.informers = []
    if config.access_enabled:
        memo.engine.access = memo.access
    memo.metrics = OperatorMetrics()
    memo.metrics.watch_engine(memo.engine)
    memo.metrics.watch_access(memo.access)
    memo.metrics.watch_informers(lambda: list(getattr(memo, "informers", None) or []))
    memo.metrics_server = memo.metrics.serve(config.metrics_port)
    memo.scheduler = Scheduler(
        kube,
        config.namespace,
        scim_base_url=config.scim_public_url,
        first_run_delay=config.reconcile_first_delay_seconds,
        retry_base=config.reconcile_retry_seconds,
        okta_timeout=config.okta_timeout_seconds,
        metrics=memo.metrics,
    )
    # Kopf pauses its own watches for a higher-priority peer; the user feed and the engine's writers
    # are the operator's own and wait on the same rule. The first activation seeds the store.
    memo.gate = PeeringGate(
        kube,
        config.namespace,
        peering=config.peering,
        identity=memo.identity,
        priority=config.priority,
        standalone=config.standalone,
    )
    memo.engine.active = memo.gate.active
    memo.access.active = memo.gate.active
    memo.feed = UserFeed(kube, config.namespace, store, memo.engine)
    memo.gate.on_change.append(lambda active: _activate(memo) if active else None)
    memo.gate.start()
    if not config.standalone:
        memo.informers.append(memo.gate.informer)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    engine: Engine = memo.engine
    scheduler: Scheduler = memo.scheduler
    await scheduler.stop()
    gate: PeeringGate = memo.gate
    await gate.stop()
    feed: UserFeed = memo.feed
    await feed.stop()
    seeding = getattr(memo, "seeding", None)
    if seeding is not None:
        seeding.cancel()
    access: AccessController = memo.access
    await access.stop()
    for informer in memo.informers:
        await informer.stop()
    await engine.stop()
    await engine.kube.close()
    server = getattr(memo, "metrics_server", None)
    if server is not None:
        server.shutdown()


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


# --- events: update the store, mark what changed ------------------------------------------------


def _begin(memo: kopf.Memo) -> None:
    """The store holds a complete view: start the engine, and access once the engine has settled."""
    engine: Engine = memo.engine
    store: Store = memo.store
    engine.start(store.view())
    config: OperatorSettings = memo.config
    if not config.access_enabled:
        return
    access: AccessController = memo.access
    access.start()
    ours = f"{LABEL_ACCESS_BINDING_NAMESPACE}={config.namespace}"
    access_informers = [
        Informer(engine.kube, NAMESPACES, None, on_replace=access.namespaces_listed, on_event=access.namespace_event),
        *(
            Informer(
                engine.kube,
                resource,
                None,
                label_selector=ours,
                on_replace=lambda items, _v, k=kind: access.rbac_listed(k, items),  # type: ignore[misc]
                on_event=lambda event_type, body, k=kind: access.rbac_event(k, event_type, body),  # type: ignore[misc]
            )
            for kind, resource in (("RoleBinding", ROLE_BINDINGS), ("ClusterRoleBinding", CLUSTER_ROLE_BINDINGS))
        ),
    ]
    for informer in access_informers:
        informer.start()
    memo.informers.extend(access_informers)

    async def settled() -> None:
        await engine.indexed.wait()  # every user evaluated: memberships and roles are complete
        access.source_ready("engine")

    memo.settling = asyncio.create_task(settled())


def _activate(memo: kopf.Memo) -> None:
    """When this operator first becomes active: start the user feed and seed the store (once; again
    after a failed seed)."""
    if getattr(memo, "seeding", None) is not None:
        return
    engine: Engine = memo.engine
    store: Store = memo.store
    feed: UserFeed = memo.feed
    if feed.informer not in memo.informers:
        feed.start()
        memo.informers.append(feed.informer)
    memo.seeding = asyncio.create_task(
        store.seed(engine.kube, engine.settings.namespace, lambda: _begin(memo), feed.informer.synced)
    )
    memo.seeding.add_done_callback(_report_seed_failure(memo))


def _report_seed_failure(memo: kopf.Memo) -> Any:
    def report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("seeding the store failed; retrying", exc_info=task.exception())
            memo.seeding = None
            asyncio.get_running_loop().call_later(1.0, _activate, memo)

    return report


async def _ready(memo: kopf.Memo) -> tuple[Engine, Store]:
    """The engine, once the store holds a complete view. A Kopf event means Kopf found this operator
    active: that starts the seed too, should it arrive before the peering gate says so."""
    engine: Engine = memo.engine
    store: Store = memo.store
    if not store.seeded.is_set():
        _activate(memo)
        await store.seeded.wait()
    return engine, store


def _object(event: kopf.RawEvent) -> dict[str, Any]:
    return dict(event.get("object") or {})


def _deleted(event: kopf.RawEvent) -> bool:
    return event.get("type") == "DELETED"


@kopf.on.event(GROUP, VERSION, "scimgroups")
async def on_group(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    engine, store = await _ready(memo)
    body = _object(event)
    before = GroupRecord.from_body(body)
    if before is None:
        return
    previous = store.groups.get(before.scim_id)
    record = store.put_group(body, _deleted(event))
    if record is None and not _deleted(event):
        return
    renamed = _deleted(event) or previous is None or record is None or previous.display_name != record.display_name
    engine.group_changed(before.scim_id, renamed=renamed)


async def _on_rule(kind: TargetKind, event: kopf.RawEvent, name: str, memo: kopf.Memo) -> None:
    engine, store = await _ready(memo)
    previous = store.rules.get((kind, name))
    record = store.put_rule(kind, _object(event), _deleted(event))
    if record is None and not _deleted(event):
        return
    # A status write (ours) leaves the generation alone: nothing to recompute.
    if record is not None and previous is not None and previous.generation == record.generation:
        return
    engine.rules_changed(kind, name)


@kopf.on.event(GROUP, VERSION, "teammappings")
async def on_team_rule(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    await _on_rule("Team", event, name, memo)


@kopf.on.event(GROUP, VERSION, "businessunitmappings")
async def on_unit_rule(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    await _on_rule("BusinessUnit", event, name, memo)


async def _on_target(kind: TargetKind, event: kopf.RawEvent, name: str, memo: kopf.Memo) -> None:
    engine, store = await _ready(memo)
    previous = store.targets.get((kind, name))
    record = store.put_target(kind, _object(event), _deleted(event))
    if record is None and not _deleted(event):
        return
    labels_changed = (previous.labels if previous else {}) != (record.labels if record else {})
    if kind == "Team" and (labels_changed or (previous is None) != (record is None)):
        access: AccessController = memo.access
        access.mark(teams=[name])  # AccessBindings' teamSelector reads Team labels (an empty one: any)
    if record is not None and previous is not None and previous.generation == record.generation:
        return  # a status or label write: the members and business unit did not change
    engine.target_changed(kind, name, previous, record)


@kopf.on.event(GROUP, VERSION, "teams")
async def on_team(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    await _on_target("Team", event, name, memo)


@kopf.on.event(GROUP, VERSION, "businessunits")
async def on_unit(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    await _on_target("BusinessUnit", event, name, memo)


# --- roles and access ---------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, "rolemappings")
async def on_role_rule(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    engine, store = await _ready(memo)
    previous = store.role_rules.get(name)
    record = store.put_role_rule(_object(event), _deleted(event))
    if record is None and not _deleted(event):
        return
    if record is not None and previous is not None and previous.generation == record.generation:
        return  # a status write
    engine.role_rules_changed(name)


@kopf.on.event(GROUP, VERSION, "accessbindings")
async def on_access_binding(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    store = (await _ready(memo))[1]
    previous = store.access_bindings.get(name)
    record = store.put_access_binding(_object(event), _deleted(event))
    if record is None and not _deleted(event):
        return
    if record is not None and previous is not None and previous.generation == record.generation:
        return  # a status write
    access: AccessController = memo.access
    access.binding_changed(name)


# --- Okta reconciliation (and the provider's access settings) -----------------------------------


@kopf.on.event(GROUP, VERSION, "identityproviders")
async def on_provider(event: kopf.RawEvent, body: kopf.Body, name: str, memo: kopf.Memo, **_: Any) -> None:
    scheduler: Scheduler = memo.scheduler
    if event.get("type") == "DELETED":
        await scheduler.remove(name)
    else:
        scheduler.upsert(dict(body))
    engine, store = await _ready(memo)
    previous = store.providers.get(name)
    record = store.put_provider(_object(event), _deleted(event))
    if record is None and not _deleted(event):
        return
    if record is not None and (previous is None or previous.custom_attributes != record.custom_attributes):
        engine.provider_attributes_changed(name)
    if (previous.access if previous else None) != (record.access if record else None):
        engine.provider_changed(name)
        access: AccessController = memo.access
        access.mark_all()
