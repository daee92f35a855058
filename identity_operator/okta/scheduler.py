"""When each IdentityProvider is reconciled, and how: a full run at operator start (unless the status
records a full run within the interval and a cursor to go on from) and every `interval` (+ up to 5%
jitter); a delta run every `deltaInterval` in between, from the last successful run's cursor; and on
demand — annotation identity.kubescim.dev/sync-requested (`kubescim sync`: a delta when one can run)
or identity.kubescim.dev/full-sync-requested (`kubescim sync --full`). One task per provider, so runs
never overlap. A failed run is retried with backoff, well before the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import re
from dataclasses import dataclass, field
from typing import Any

from identity_operator.metrics import OperatorMetrics
from identity_operator.okta.reconciler import RunResult, UnpushedGroup, reconcile
from kubescim import lease
from kubescim.api.models import IdentityProviderSpec, LastSync, SyncKind, SyncResult
from kubescim.conditions import condition
from kubescim.constants import (
    ANNOTATION_ALLOW_MASS_DEACTIVATION,
    ANNOTATION_FULL_SYNC_REQUESTED,
    ANNOTATION_SYNC_REQUESTED,
    API_VERSION,
    IDENTITY_PROVIDERS,
    LABEL_PROVIDER,
    SCIM_GROUPS,
    SCIM_USERS,
)
from kubescim.events import post_event
from kubescim.kube import ApiError, ApiUnavailable, Kube

log = logging.getLogger("kubescim.reconciler")
# Renewed every quarter of this while a run lasts; a crashed operator's lease expires this soon.
RUN_LEASE_SECONDS = 60
RECONCILER_FIELD_MANAGER = "kubescim-reconciler"
_DURATION = re.compile(r"([0-9.]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    return sum(float(value) * _UNITS[unit] for value, unit in _DURATION.findall(text))


def _ms(moment: dt.datetime) -> dt.datetime:
    """Millisecond precision: two quick runs must not report the same completion time."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _iso(moment: dt.datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class ProviderState:
    name: str
    spec: IdentityProviderSpec
    uid: str
    sync_requested: str | None = None
    allow_mass_deactivation: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    last: RunResult | None = None
    runs: int = 0
    conditions: list[dict[str, Any]] = field(default_factory=list)  # as last seen or written
    unpushed: frozenset[UnpushedGroup] = frozenset()  # as the last run found them (Event on change)
    full_sync_requested: str | None = None
    want_full: bool = False  # `kubescim sync --full` asked for one
    cursor: dt.datetime | None = None  # where the next delta run reads from (Okta's clock)
    hook_delivery: str | None = None  # status.eventHook.lastDeliveryTime as last seen
    deltas_unavailable: str | None = None  # set by a lasting fallback; cleared when the spec changes

    @property
    def deltas_on(self) -> bool:
        return parse_duration(self.spec.reconcile.delta_interval) > 0 and self.deltas_unavailable is None

    last_full: dt.datetime | None = None  # when the latest successful full run started

    def next_since(self, now: dt.datetime) -> dt.datetime | None:
        """The cursor a run now should start from, or None for a full run."""
        interval = dt.timedelta(seconds=parse_duration(self.spec.reconcile.interval))
        full_due = self.last_full is None or now >= self.last_full + interval
        if self.want_full or full_due or not self.deltas_on or self.cursor is None:
            return None
        return self.cursor


def _fallback(result: RunResult, state: ProviderState) -> str | None:
    """Why this full run is not a delta: this run's fallback, or deltas stopped by an earlier one."""
    if result.fallback_reason:
        return result.fallback_reason[:1000]
    if state.deltas_unavailable and result.kind == "Full":
        return f"delta runs are off until the IdentityProvider's spec changes: {state.deltas_unavailable}"[:1000]
    return None


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Scheduler:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        *,
        scim_base_url: str | None = None,
        first_run_delay: float = 2.0,
        retry_base: float = 30.0,
        okta_timeout: float = 30.0,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.scim_base_url = scim_base_url
        self.first_run_delay = first_run_delay
        self.retry_base = retry_base
        self.okta_timeout = okta_timeout
        self.metrics = metrics
        self.providers: dict[str, ProviderState] = {}

    def upsert(self, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        annotations = meta.get("annotations") or {}
        try:
            spec = IdentityProviderSpec.model_validate(body.get("spec") or {})
        except ValueError:
            log.error("invalid IdentityProvider spec", extra={"provider": name})
            return
        state = self.providers.get(name)
        seen_conditions = list((body.get("status") or {}).get("conditions") or [])
        if state is None:
            status = body.get("status") or {}
            last = status.get("lastSync") or {}
            state = ProviderState(
                name,
                spec,
                str(meta.get("uid", "")),
                sync_requested=annotations.get(ANNOTATION_SYNC_REQUESTED),
                conditions=seen_conditions,
                full_sync_requested=annotations.get(ANNOTATION_FULL_SYNC_REQUESTED),
                # A restarted operator goes on from the recorded cursor: no full run at every restart.
                cursor=_parse_time(last.get("cursor")) if last.get("result") == "Succeeded" else None,
                last_full=_parse_time(status.get("lastFullSyncTime")),
                hook_delivery=(status.get("eventHook") or {}).get("lastDeliveryTime"),
            )
            self.providers[name] = state
            state.task = asyncio.create_task(self._loop(state), name=f"reconcile-{name}")
            return
        interval_changed = (spec.reconcile.interval, spec.reconcile.delta_interval) != (
            state.spec.reconcile.interval,
            state.spec.reconcile.delta_interval,
        )
        if spec != state.spec:
            state.deltas_unavailable = None  # new credentials or scopes: try deltas again
        state.spec = spec
        if seen_conditions:
            state.conditions = seen_conditions
        requested = annotations.get(ANNOTATION_SYNC_REQUESTED)
        if requested and requested != state.sync_requested:
            state.sync_requested = requested
            state.wakeup.set()
        # An Okta Event Hook delivery (recorded by a gateway): a trigger for a delta run, coalesced
        # with any run already due (the wakeup is a flag).
        delivery = ((body.get("status") or {}).get("eventHook") or {}).get("lastDeliveryTime")
        if delivery and delivery != state.hook_delivery:
            state.hook_delivery = delivery
            if state.deltas_on:  # a trigger for a delta; never for a full run
                state.wakeup.set()
        full = annotations.get(ANNOTATION_FULL_SYNC_REQUESTED)
        if full and full != state.full_sync_requested:
            state.full_sync_requested = full
            state.want_full = True
            state.wakeup.set()
        if annotations.get(ANNOTATION_ALLOW_MASS_DEACTIVATION) == "true" and not state.allow_mass_deactivation:
            state.allow_mass_deactivation = True
            state.wakeup.set()
        if interval_changed:
            state.wakeup.set()

    async def remove(self, name: str) -> None:
        state = self.providers.pop(name, None)
        if state is not None and state.task is not None:
            state.task.cancel()

    async def stop(self) -> None:
        for name in list(self.providers):
            await self.remove(name)

    async def _loop(self, state: ProviderState) -> None:
        delay = self.first_run_delay + random.uniform(0, 1)
        failures = 0
        while True:
            await self._publish_endpoint(state)
            if state.spec.okta is None or not state.spec.reconcile.enabled:
                await self._wait(state, None)
                continue
            await self._wait(state, delay)
            if state.spec.okta is None or not state.spec.reconcile.enabled:
                continue
            lease_name = f"kubescim-reconcile-{state.name}"
            try:
                held = await lease.acquire(self.kube, self.namespace, lease_name, RUN_LEASE_SECONDS)
            except (ApiError, ApiUnavailable) as error:
                log.warning(
                    "cannot take the reconcile lease", extra={"provider": state.name, "error": str(error)[:200]}
                )
                held = False
            if not held:  # another operator process is reconciling this provider: try again later
                delay = 60 * random.uniform(0.8, 1.2)
                continue
            try:
                result = await lease.hold(self.kube, self.namespace, lease_name, RUN_LEASE_SECONDS, self.run(state))
            except lease.LeaseLost as error:
                log.warning("lost the reconcile lease mid-run", extra={"provider": state.name, "error": str(error)})
                result = RunResult.failed(f"lost the reconcile lease ({error}): stopped writing mid-run")
                await self._report(state, result)
            except Exception:  # the schedule must outlive any bug in one run
                log.exception("reconcile run crashed", extra={"provider": state.name})
                result = RunResult.failed("internal error")
            finally:
                with contextlib.suppress(ApiError, ApiUnavailable):
                    await lease.release(self.kube, self.namespace, lease_name)
            if self.metrics is not None:
                self.metrics.observe_run(state.name, result)
            interval = parse_duration(state.spec.reconcile.interval)
            delta_interval = parse_duration(state.spec.reconcile.delta_interval)
            if result.result == SyncResult.FAILED:
                failures += 1
                cap = min(interval, delta_interval) if state.deltas_on else interval
                delay = min(cap, self.retry_base * 2 ** min(failures - 1, 6)) * random.uniform(0.8, 1.2)
            else:
                failures = 0
                now = dt.datetime.now(dt.UTC)
                full_at = (state.last_full or now) + dt.timedelta(seconds=interval * (1 + random.uniform(0, 0.05)))
                delay = max((full_at - now).total_seconds(), 1.0)
                if state.deltas_on and state.cursor is not None:
                    delay = min(delay, delta_interval * random.uniform(0.95, 1.05))
            await self._write_next(state, delay)

    async def _wait(self, state: ProviderState, delay: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.wakeup.wait(), delay)
        state.wakeup.clear()

    async def run(self, state: ProviderState) -> RunResult:
        """One run, never concurrent with another for the same provider (only the loop calls this)."""
        override = state.allow_mass_deactivation
        since = state.next_since(dt.datetime.now(dt.UTC))
        kind = SyncKind.FULL if since is None else SyncKind.DELTA
        await self._status(
            state,
            {"lastSync": {"startTime": _iso(dt.datetime.now(dt.UTC)), "result": "Running", "kind": kind.value}},
        )
        try:
            result = await reconcile(
                self.kube,
                self.namespace,
                state.name,
                state.spec,
                allow_mass_deactivation=override,
                okta_timeout=self.okta_timeout,
                since=since,
            )
        except (ApiUnavailable, ApiError) as error:
            result = RunResult.failed(f"Kubernetes API error: {str(error)[:300]}")
        except Exception as error:
            log.exception("reconcile crashed", extra={"provider": state.name})
            result = RunResult.failed(f"internal error: {type(error).__name__}")
        state.last = result
        state.runs += 1
        if result.kind == SyncKind.FULL and result.result != SyncResult.FAILED:
            state.want_full = False
            if result.result == SyncResult.SUCCEEDED:
                state.last_full = result.started
        if result.cursor is not None:
            state.cursor = result.cursor
        if result.deltas_unavailable is not None:
            state.deltas_unavailable = result.deltas_unavailable
            log.warning(
                "delta runs stop until the provider's spec changes",
                extra={"provider": state.name, "detail": result.deltas_unavailable},
            )
        if override and result.result != SyncResult.BLOCKED:
            state.allow_mass_deactivation = False
            await self._clear_override(state)
        await self._report(state, result)
        log.info(
            "reconcile finished",
            extra={
                "provider": state.name,
                "result": result.result,
                "detail": result.message,
                "okta_calls": result.okta_calls,
                "seconds": round(result.duration, 2),
            },
        )
        return result

    # --- reporting ------------------------------------------------------------------------------

    async def _status(self, state: ProviderState, status: dict[str, Any]) -> None:
        try:
            await self.kube.patch(
                IDENTITY_PROVIDERS, state.name, {"status": status}, self.namespace, subresource="status"
            )
        except (ApiError, ApiUnavailable) as error:
            log.warning(
                "cannot write IdentityProvider status", extra={"provider": state.name, "error": str(error)[:200]}
            )

    async def _publish_endpoint(self, state: ProviderState) -> None:
        if self.scim_base_url:
            await self._status(
                state, {"scimEndpoint": f"{self.scim_base_url.rstrip('/')}/providers/{state.name}/scim/v2"}
            )

    async def _write_next(self, state: ProviderState, delay: float) -> None:
        next_time = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
        await self._status(state, {"nextSyncTime": _iso(next_time)})

    async def _report(self, state: ProviderState, result: RunResult) -> None:
        finished = result.started + dt.timedelta(seconds=result.duration)
        last = LastSync(
            start_time=_ms(result.started),
            completion_time=_ms(finished),
            duration_seconds=round(result.duration, 3),
            result=result.result,
            message=result.message[:4000],
            counts=result.counts,
            okta_api_calls=result.okta_calls,
            rate_limit_waits=result.rate_limit_waits,
            kind=result.kind,
            cursor=_ms(result.cursor) if result.cursor else None,
            fallback_reason=_fallback(result, state),
        ).dump()
        # A merge patch keeps keys it does not name: clear those this run leaves unset.
        for key in ("cursor", "fallbackReason"):
            last.setdefault(key, None)
        users = groups = None
        try:
            selector = f"{LABEL_PROVIDER}={state.name}"
            users = len((await self.kube.list(SCIM_USERS, self.namespace, label_selector=selector))[0])
            groups = len((await self.kube.list(SCIM_GROUPS, self.namespace, label_selector=selector))[0])
        except (ApiError, ApiUnavailable):
            pass
        # Conditions keep their lastTransitionTime while their status holds (API conventions): a
        # daily "Synced: True" must not look as if it had just become true.
        previous = state.conditions
        conditions = [
            condition("Synced", result.result == "Succeeded", result.result, result.message[:1000], previous),
            condition(
                "Ready",
                result.result != "Failed",
                "Reconciling" if result.result != "Failed" else "SyncFailing",
                "SCIM endpoint served; last reconciliation " + result.result.lower(),
                previous,
            ),
        ]
        state.conditions = conditions
        status: dict[str, Any] = {"lastSync": last}
        if result.kind == SyncKind.FULL and result.result == SyncResult.SUCCEEDED:
            status["lastFullSyncTime"] = _iso(result.started)
        # A failed fetch knows nothing new; a delta run does not read the app's group assignments.
        if result.unpushed is not None and (result.result != SyncResult.FAILED or result.unpushed):
            status["unpushedGroups"] = [{"oktaId": g.okta_id, "name": g.name[:256]} for g in result.unpushed[:100]]
        if users is not None:
            status["userCount"] = users
            status["groupCount"] = groups
        # The Event first: whoever sees the new status can also see why.
        if result.drift:
            await self._event(
                state,
                "Normal" if result.result == "Succeeded" else "Warning",
                {"Succeeded": "Reconciled", "Blocked": "MassDeactivationBlocked"}.get(result.result, "ReconcileFailed"),
                result.message,
            )
        unpushed = frozenset(result.unpushed or ()) if result.unpushed is not None else state.unpushed
        if result.unpushed and result.result != SyncResult.FAILED and unpushed != state.unpushed:
            shown = [g.name for g in result.unpushed[:5]]
            more = f" and {len(result.unpushed) - 5} more" if len(result.unpushed) > 5 else ""
            await self._event(
                state,
                "Warning",
                "GroupNotPushed",
                f"assigned to the app but not pushed: {', '.join(shown)}{more}. Push them (Okta: the app's "
                "Push Groups tab) for their membership to sync; assigning a group only provisions its users",
            )
        if result.result != SyncResult.FAILED:
            state.unpushed = unpushed
        await self._status(state, status)
        await self._apply_conditions(state, conditions)

    async def _apply_conditions(self, state: ProviderState, conditions: list[dict[str, Any]]) -> None:
        """Server-side apply of the conditions the reconciler owns (Synced, Ready), so that the
        operator's engine can own others (CustomAttributesArriving) on the same list: a merge patch
        would replace the whole list."""
        body = {
            "apiVersion": API_VERSION,
            "kind": "IdentityProvider",
            "metadata": {"name": state.name},
            "status": {"conditions": conditions},
        }
        try:
            await self.kube.patch(
                IDENTITY_PROVIDERS,
                state.name,
                body,
                self.namespace,
                patch_type="apply",
                subresource="status",
                field_manager=RECONCILER_FIELD_MANAGER,
                force=True,
            )
        except (ApiError, ApiUnavailable) as error:
            log.warning(
                "cannot write IdentityProvider conditions", extra={"provider": state.name, "error": str(error)[:200]}
            )

    async def _event(self, state: ProviderState, type_: str, reason: str, note: str) -> None:
        regarding = {"apiVersion": API_VERSION, "kind": "IdentityProvider", "name": state.name, "uid": state.uid}
        await post_event(self.kube, self.namespace, regarding, type_, reason, note)

    async def _clear_override(self, state: ProviderState) -> None:
        try:
            await self.kube.patch(
                IDENTITY_PROVIDERS,
                state.name,
                {"metadata": {"annotations": {ANNOTATION_ALLOW_MASS_DEACTIVATION: None}}},
                self.namespace,
            )
        except (ApiError, ApiUnavailable) as error:
            log.warning("cannot clear the override annotation", extra={"error": str(error)[:200]})
