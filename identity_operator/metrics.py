"""The operator's Prometheus metrics, served on their own port (`KUBESCIM_METRICS_PORT`, 8082; 0 turns
them off): Okta reconciliation runs, their cost and the drift they repaired, and the recomputation
engine's queues and writes, and the access controller's bindings and RBAC writes. Labels are provider names, kinds and results: never a user, a token or
anything an identity provider sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from identity_operator.access.controller import AccessController
    from identity_operator.engine import Engine
    from identity_operator.okta.reconciler import RunResult
    from kubescim.informer import Informer

DRIFT_KINDS = ("created", "updated", "reactivated", "deactivated", "groups_fixed", "groups_removed")


class _EngineCollector(Collector):
    """Read at scrape time: the engine's queues and write counters (plain ints, safe to read)."""

    def __init__(self, engine: Callable[[], Engine | None]) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        engine = self.engine()
        queue = GaugeMetricFamily(
            "kubescim_operator_recompute_queue_depth",
            "Users waiting for recomputation: fast (a user's own change) and bulk (rule edits, startup)",
            labels=["queue"],
        )
        writes = CounterMetricFamily(
            "kubescim_operator_writes", "API writes by the recomputation engine, by kind", labels=["kind"]
        )
        indexed = GaugeMetricFamily(
            "kubescim_operator_users_indexed",
            "1 once this operator holds every user and has evaluated each since it started (its view is "
            "complete; writes may still be queued), else 0",
        )
        indexed.add_metric([], 1 if engine is not None and engine.indexed.is_set() else 0)
        if engine is not None:
            fast, bulk = engine.queue_depths()
            queue.add_metric(["fast"], fast)
            queue.add_metric(["bulk"], bulk)
            writes.add_metric(["user_labels"], engine.stats.user_writes)
            writes.add_metric(["user_status"], engine.stats.status_writes)
            writes.add_metric(["target"], engine.stats.target_writes)
        yield queue
        yield writes
        yield indexed


class _AccessCollector(Collector):
    """Read at scrape time: the access controller's bindings by verdict, its backlog and writes."""

    def __init__(self, access: Callable[[], AccessController | None]) -> None:
        self.access = access

    def collect(self) -> Iterator[Any]:
        access = self.access()
        bindings = GaugeMetricFamily(
            "kubescim_operator_access_bindings",
            "AccessBindings by their Ready reason (Applied, RoleNotAllowed, Forbidden, InvalidSpec)",
            labels=["reason"],
        )
        pending = GaugeMetricFamily(
            "kubescim_operator_access_pending_bindings",
            "AccessBindings waiting for recomputation: now (urgent) and after bulk work (deferred)",
            labels=["queue"],
        )
        writes = CounterMetricFamily(
            "kubescim_operator_access_rbac_writes", "RoleBinding / ClusterRoleBinding writes and deletions"
        )
        if access is not None:
            counts: dict[str, int] = {}
            for reason in access.verdicts.values():
                counts[reason] = counts.get(reason, 0) + 1
            for reason in ("Applied", "RoleNotAllowed", "Forbidden", "InvalidSpec"):
                bindings.add_metric([reason], counts.get(reason, 0))
            pending.add_metric(["urgent"], len(access.dirty))
            pending.add_metric(["deferred"], len(access.deferred))
            writes.add_metric([], access.writes)
        yield bindings
        yield pending
        yield writes


class _InformerCollector(Collector):
    def __init__(self, informers: Callable[[], list[Informer]]) -> None:
        self._informers = informers

    def collect(self) -> Iterator[Any]:
        restarts = CounterMetricFamily(
            "kubescim_operator_watch_restarts",
            "Watches of kubescim's own informers restarted after an error or an expired resourceVersion (410)",
            labels=["resource"],
        )
        for informer in self._informers():
            restarts.add_metric([informer.resource.plural], informer.restarts)
        yield restarts


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "kubescim_operator_reconcile_runs_total",
            "Okta reconciliation runs by provider, kind (Full, Delta) and result (Succeeded, Failed, Blocked)",
            ["provider", "kind", "result"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "kubescim_operator_reconcile_duration_seconds",
            "Duration of Okta reconciliation runs, by kind (Full, Delta)",
            ["provider", "kind"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.okta_calls = Counter(
            "kubescim_operator_okta_calls_total", "Okta Management API calls", ["provider"], registry=self.registry
        )
        self.okta_throttled = Counter(
            "kubescim_operator_okta_throttled_total",
            "Okta answers 429 (rate limited)",
            ["provider"],
            registry=self.registry,
        )
        self.rate_limit_waits = Counter(
            "kubescim_operator_okta_rate_limit_waits_total",
            "Pauses to leave the org's other integrations their share of the rate limit",
            ["provider"],
            registry=self.registry,
        )
        self.drift = Counter(
            "kubescim_operator_drift_repaired_total",
            "What reconciliation runs repaired, by kind",
            ["provider", "kind"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "kubescim_operator_reconcile_last_success_timestamp_seconds",
            "When the provider's last reconciliation succeeded (Unix time)",
            ["provider"],
            registry=self.registry,
        )
        self.last_result = Gauge(
            "kubescim_operator_reconcile_last_result",
            "1 for the result of the provider's latest run, 0 for the others",
            ["provider", "result"],
            registry=self.registry,
        )
        self.recompute_latency = Histogram(
            "kubescim_operator_recompute_latency_seconds",
            "From a user's own change (its watch event) to its labels and status written",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self._engine: Engine | None = None
        self._access: AccessController | None = None
        self.registry.register(_EngineCollector(lambda: self._engine))
        self.registry.register(_AccessCollector(lambda: self._access))

    def watch_engine(self, engine: Engine) -> None:
        self._engine = engine
        engine.on_recomputed = self.recompute_latency.observe

    def watch_access(self, access: AccessController) -> None:
        self._access = access

    def watch_informers(self, informers: Callable[[], list[Informer]]) -> None:
        """kubescim's own watches (namespaces, RoleBindings, ClusterRoleBindings): their restarts."""
        self.registry.register(_InformerCollector(informers))

    def observe_run(self, provider: str, result: RunResult) -> None:
        outcome = str(result.result)
        self.runs.labels(provider, str(result.kind), outcome).inc()
        self.duration.labels(provider, str(result.kind)).observe(result.duration)
        self.okta_calls.labels(provider).inc(result.okta_calls)
        self.okta_throttled.labels(provider).inc(result.throttled)
        self.rate_limit_waits.labels(provider).inc(result.rate_limit_waits)
        counts = result.counts
        for drift_kind in DRIFT_KINDS:
            value = getattr(counts, drift_kind, 0) or 0
            if value:
                self.drift.labels(provider, drift_kind).inc(value)
        for known in ("Succeeded", "Failed", "Blocked"):
            self.last_result.labels(provider, known).set(1 if known == outcome else 0)
        if outcome == "Succeeded":
            self.last_success.labels(provider).set(time.time())

    def serve(self, port: int) -> Any:
        """Start the /metrics server in a thread; returns the server (None when disabled)."""
        if port <= 0:
            return None
        server, _thread = start_http_server(port, registry=self.registry)
        return server
