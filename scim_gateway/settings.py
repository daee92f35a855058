"""The gateway's settings, from KUBESCIM_* environment variables."""

from __future__ import annotations

from pydantic import Field

from kubescim.settings import KubescimSettings


class GatewaySettings(KubescimSettings):
    host: str = "0.0.0.0"  # noqa: S104 - a server in a pod listens on all interfaces
    port: int = 8080
    public_base_url: str | None = Field(
        default=None,
        description="External URL of the gateway (e.g. https://scim.example.com), for meta.location.",
    )
    default_provider: str | None = Field(
        default=None,
        description="Provider served at /scim/v2; defaults to the only IdentityProvider if there is one.",
    )
    max_body_bytes: int = 1024 * 1024
    max_page_size: int = 1000
    default_page_size: int = 100
    patch_response_member_limit: int = 10_000
    group_patch_no_content: bool = Field(
        default=False,
        description="Answer a successful PATCH of a group 204 No Content with its ETag and Location, instead of "
        "200 with the group (RFC 7644 section 3.5.2 allows either; Okta and Entra ID accept 204). Saves rendering "
        "the members of every push.",
    )
    fast_write_routes: bool = Field(
        default=True,
        description="Serve POST /Users, PUT and PATCH /Users/{id} and PATCH /Groups/{id} without FastAPI's routing "
        "and dependency solving (the same route functions; about 200 µs of CPU less per request). Off with "
        "opentelemetry, whose traces need FastAPI's route handling. Turn off to rule it out when diagnosing.",
    )
    api_timeout_seconds: float = 20.0
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry traces, metrics and logs (when a provider is configured). "
        "Off by default: the gateway exports Prometheus metrics, and the per-request check cost ~4% of its CPU.",
    )
    log_json: bool = True
