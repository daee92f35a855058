"""The operator's settings, from KUBESCIM_* environment variables (one class, on the Kopf memo)."""

from __future__ import annotations

from pydantic import Field

from kubescim.settings import KubescimSettings


class OperatorSettings(KubescimSettings):
    peering: str = Field(default="kubescim", description="KopfPeering name shared by the active operator and standbys.")
    priority: int = Field(default=100, description="Peering priority; a standby runs with a lower one.")
    standalone: bool = Field(default=False, description="Run without peering (a single operator, no standby).")
    peering_lifetime_seconds: int = Field(default=30, ge=5, description="How long a silent peer is considered alive.")
    delete_orphaned_targets: bool = Field(
        default=True, description="Remove operator-created Teams/BusinessUnits that no rule produces and are empty."
    )
    member_status_limit: int = Field(default=500, ge=0, le=500, description="Members listed in a Team's status.")
    flush_interval_seconds: float = Field(default=0.1, ge=0.0, description="Batching window for status writes.")
    write_concurrency: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Concurrent API writes of each lane: users' own changes, and bulk work with status writes.",
    )
    health_port: int = Field(default=8081, description="Port of /healthz (Kopf liveness).")
    metrics_port: int = Field(default=8082, ge=0, description="Port of the Prometheus /metrics (0: off).")
    scim_public_url: str | None = Field(
        default=None, description="The gateway's external URL, published in each IdentityProvider's status."
    )
    reconcile_first_delay_seconds: float = Field(default=2.0, ge=0, description="Delay of the first Okta run.")
    reconcile_retry_seconds: float = Field(
        default=30.0, gt=0, description="First retry delay after a failed run (doubling, capped at the interval)."
    )
    okta_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of one Okta API request.")
    access_enabled: bool = Field(
        default=True,
        description="Materialise AccessBindings as RoleBindings / ClusterRoleBindings (needs the chart's "
        "cluster-wide RBAC: list/watch namespaces and role bindings, bind on the allowed roles).",
    )
    access_allowed_roles: list[str] = Field(
        default_factory=list,
        description='Roles AccessBindings may grant, as "ClusterRole/<name>" or "Role/<name>" (JSON list). '
        "Empty: none. The chart renders the same list into the operator's `bind` permission.",
    )
    access_subjects_per_object: int = Field(
        default=500, ge=1, le=5000, description="Subjects per RoleBinding before a binding is split."
    )
