"""kubescim's Kubernetes API (group identity.kubescim.dev, v1alpha1) as pydantic models.

These models are the source of truth: `crds/*.yaml` is generated from them by
`python -m kubescim.api.crdgen` (`make crds`), and a test fails when the checked-in YAML is stale.
Field descriptions become the CRD's descriptions (what `kubectl explain` prints); CEL rules sit
next to the fields they check, in `json_schema_extra`.

Specs are frozen: they are inputs. Statuses are written only by kubescim's own processes.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
ShortText = Annotated[str, Field(max_length=256)]


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    """One x-kubernetes-validations entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields from newer versions are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    def dump(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, no nulls."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(ApiModel):
    model_config = ConfigDict(frozen=False)


# --- shared pieces ------------------------------------------------------------------------------


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """The Kubernetes condition shape (metav1.Condition)."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of condition in CamelCase, e.g. Ready.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        min_length=1,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the condition's last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details of the transition.")
    last_transition_time: dt.datetime = Field(description="When the condition last changed status.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was computed from."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        description="Current state of the object. `Ready` summarises; other types give details.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class SecretKeyRef(ApiModel):
    """A key in a Secret in the object's own namespace."""

    name: Name = Field(description="Name of the Secret, in the same namespace.")
    key: str = Field(max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key within the Secret's data.")


# --- IdentityProvider ---------------------------------------------------------------------------


class OktaAuthType(StrEnum):
    API_TOKEN = "ApiToken"
    OAUTH = "OAuth"


class OktaOAuth(ApiModel):
    """An Okta OAuth 2.0 service app authenticating with private_key_jwt (Okta's recommendation)."""

    client_id: str = Field(min_length=1, max_length=128, description="The service app's client ID.")
    private_key_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the PEM private key (RSA or EC) registered with the service app."
    )
    key_id: str | None = Field(
        default=None, max_length=256, description="Key ID (kid) of the public key registered in Okta, if any."
    )
    scopes: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: ["okta.users.read", "okta.groups.read", "okta.apps.read", "okta.logs.read"],
        max_length=16,
        description="Scopes to request. The reconciler needs okta.users.read, okta.groups.read, okta.apps.read; "
        "delta runs also need okta.logs.read (without it every run is a full run, and lastSync says why).",
    )


class OktaAuth(ApiModel):
    """How the reconciler authenticates to the Okta Management API."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.type != 'ApiToken' || has(self.apiTokenSecretRef)",
                    "type ApiToken needs apiTokenSecretRef: the Secret key holding the SSWS API token",
                ),
                cel(
                    "self.type != 'OAuth' || has(self.oauth)",
                    "type OAuth needs oauth: the service app's clientId and privateKeySecretRef",
                ),
            ]
        }
    )

    type: OktaAuthType = Field(
        default=OktaAuthType.OAUTH,
        description="ApiToken (an SSWS token) or OAuth (a service app with private_key_jwt; recommended).",
    )
    api_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the SSWS API token (type ApiToken)."
    )
    oauth: OktaOAuth | None = Field(default=None, description="Service-app credentials (type OAuth).")


class Okta(ApiModel):
    """The Okta org and app this provider reconciles against."""

    org_url: str = Field(
        max_length=253,
        pattern=r"^https?://[a-zA-Z0-9.-]+(:[0-9]+)?/?$",
        description="The Okta org's base URL, e.g. https://example.okta.com.",
    )
    app_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9]+$",
        description="ID of the SCIM 2.0 Test App (Header Auth) instance in Okta (e.g. 0oa1b2c3d4...).",
    )
    auth: OktaAuth = Field(description="Credentials for the Management API.")


class DeactivationPolicy(StrEnum):
    SUSPEND = "Suspend"
    DELETE = "Delete"


class UnbackedPolicy(StrEnum):
    REMOVE = "Remove"
    KEEP = "Keep"


class Reconcile(ApiModel):
    """Periodic reconciliation against the Okta Management API."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "duration(self.interval) >= duration('5m') && duration(self.interval) <= duration('168h')",
                    "interval must be between 5m and 168h (7 days)",
                    ".interval",
                ),
                cel(
                    "!has(self.deltaInterval) || duration(self.deltaInterval) == duration('0s') || "
                    "(duration(self.deltaInterval) >= duration('1m') && duration(self.deltaInterval) <= duration('24h'))",
                    "deltaInterval must be 0s (off) or between 1m and 24h",
                    ".deltaInterval",
                ),
            ]
        }
    )

    enabled: bool = Field(default=True, description="Run the periodic reconciliation at all.")
    interval: str = Field(
        default="24h",
        max_length=32,
        pattern=GO_DURATION,
        description="Time between full runs (Go duration, 5m to 168h). A jitter of up to 5% is added.",
    )
    deactivation_policy: DeactivationPolicy = Field(
        default=DeactivationPolicy.SUSPEND,
        description="What happens to a user who is deactivated, suspended, deprovisioned or unassigned in "
        "Okta: Suspend sets active=false (keeps the object); Delete removes the ScimUser.",
    )
    unbacked: UnbackedPolicy = Field(
        default=UnbackedPolicy.REMOVE,
        description="Okta is the source of truth for its provider. Remove (the default): a user this provider "
        "holds that Okta does not back (no Okta id, an Okta id Okta does not have, or not assigned to the app) is "
        "handled like an unassigned one (deactivationPolicy), and a group Okta does not push is removed, within "
        "the breaker's limits. Keep: leave them alone, for a provider that other SCIM clients also write to.",
    )
    mass_deactivation_threshold_percent: int = Field(
        default=25,
        ge=0,
        le=100,
        description="Refuse a run that would deactivate or delete more than this share of the provider's "
        "users. Override once with the annotation identity.kubescim.dev/allow-mass-deactivation=true.",
    )
    max_rate_limit_share_percent: int = Field(
        default=50,
        ge=1,
        le=100,
        description="Use at most this share of the Okta org's remaining rate-limit budget.",
    )
    delta_interval: str = Field(
        default="5m",
        max_length=32,
        pattern=GO_DURATION,
        description="Time between delta runs, which read only what changed in Okta since the last successful run "
        "(the System Log and lastUpdated filters: a handful of calls) and repair what a missed push left. "
        "Go duration, 1m to 24h; 0s turns delta runs off (full runs only).",
    )


class CustomAttributeType(StrEnum):
    STRING = "string"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATETIME = "dateTime"


class CustomAttribute(ApiModel):
    """A custom user attribute Okta sends (declared in Okta's Profile Editor), shown in /Schemas."""

    schema_urn: str = Field(
        alias="schema",
        max_length=256,
        pattern=r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+$",
        description="Extension URN the attribute is sent under, e.g. "
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.",
    )
    name: str = Field(
        max_length=128,
        pattern=r"^[A-Za-z][A-Za-z0-9_$-]*$",
        description="Attribute name, exactly as Okta sends it (case matters), e.g. employeeID.",
    )
    type: CustomAttributeType = Field(default=CustomAttributeType.STRING, description="SCIM attribute type.")
    multi_valued: bool = Field(default=False, description="Whether the attribute holds a list.")
    description: str | None = Field(default=None, max_length=1024, description="Shown in /Schemas.")


class Scim(ApiModel):
    """The SCIM endpoint Okta pushes to."""

    enabled: bool = Field(default=True, description="Accept SCIM requests for this provider.")
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the SHA-256 hash of the provisioning token (never the token). "
        "Defaults to Secret '<provider>-scim-token', key 'tokenHash'. `kubescim token rotate` writes it.",
    )
    custom_attributes: list[CustomAttribute] = Field(
        default_factory=list,
        max_length=256,
        description="Custom attributes to declare in /Schemas. Undeclared ones are accepted and stored too.",
    )
    rate_limit_per_second: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Optional per-provider request rate limit; excess requests get 429 with Retry-After.",
    )


class UsernameAttribute(StrEnum):
    USER_NAME = "userName"
    EMAIL = "email"
    EXTERNAL_ID = "externalId"


class KubernetesUsername(ApiModel):
    """How a ScimUser's Kubernetes username is built: it must equal what the cluster's authenticator
    makes of the same person's token (docs/access.md, Connect cluster login to Okta)."""

    attribute: UsernameAttribute = Field(
        default=UsernameAttribute.USER_NAME,
        description="userName (the Okta login; the ID token's preferred_username), email (the primary email; "
        "the email claim) or externalId (Okta's user id; the sub claim).",
    )
    prefix: Annotated[str, Field(max_length=64, pattern=r"^[^\s]*$")] = Field(
        default="",
        description="Prepended to the attribute, exactly like the authenticator's claimMappings prefix, "
        "e.g. okta: (keeps Okta users apart from certificate and service-account users).",
    )


class RoleDeclaration(ApiModel):
    """A role RoleMappings may assign to this provider's users."""

    name: Name = Field(description="The role's name, as RoleMappings and AccessBindings name it.")
    rank: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Resolution HighestPermission: when several roles match a user, the highest rank wins.",
    )
    description: Annotated[str, Field(max_length=1024)] | None = Field(default=None, description="What it is for.")


class RoleResolution(StrEnum):
    HIGHEST_PERMISSION = "HighestPermission"
    ORDER = "Order"


class Access(ApiModel):
    """How this provider's users become Kubernetes subjects, and the roles they can hold."""

    username: KubernetesUsername = Field(
        default_factory=KubernetesUsername, description="How a user's Kubernetes username is built."
    )
    group_prefix: Annotated[str, Field(max_length=64, pattern=r"^[^\s]*$")] = Field(
        default="",
        description="AccessBindings with subjectKind Group name a team or business unit as the Group "
        "<groupPrefix><name>: the authenticator's groups claim (with its prefix) must carry that name.",
    )
    roles: Annotated[list[RoleDeclaration], Field(max_length=64)] = Field(
        default_factory=list,
        description="The roles RoleMappings may assign. A user holds at most one (roleResolution).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    role_resolution: RoleResolution = Field(
        default=RoleResolution.HIGHEST_PERMISSION,
        description="HighestPermission (default): of the roles a user's RoleMappings match, the one with the "
        "highest rank. Order: the role of the first matching RoleMapping, by priority (then name).",
    )


class IdentityProviderSpec(ApiModel):
    """An identity provider (an Okta org + app) that provisions users and groups into this namespace."""

    display_name: str | None = Field(default=None, max_length=256, description="Human-readable name.")
    scim: Scim = Field(default_factory=Scim, description="The SCIM endpoint settings.")
    okta: Okta | None = Field(
        default=None,
        description="The Okta org to reconcile against. Without it, the provider is push-only (any SCIM IdP).",
    )
    reconcile: Reconcile = Field(default_factory=Reconcile, description="Periodic reconciliation settings.")
    access: Access = Field(
        default_factory=Access, description="Kubernetes access: usernames, group subjects and the roles users hold."
    )


class SyncResult(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    BLOCKED = "Blocked"
    RUNNING = "Running"


class SyncKind(StrEnum):
    FULL = "Full"
    DELTA = "Delta"


class SyncCounts(StatusModel):
    """What one reconciliation run changed."""

    users_seen: int = Field(default=0, ge=0, description="Users assigned to the app in Okta.")
    created: int = Field(default=0, ge=0, description="Users created in the cluster.")
    updated: int = Field(default=0, ge=0, description="Users whose attributes drifted and were corrected.")
    deactivated: int = Field(default=0, ge=0, description="Users deactivated (or deleted, per policy).")
    reactivated: int = Field(default=0, ge=0, description="Users reactivated.")
    unchanged: int = Field(default=0, ge=0, description="Users already correct.")
    groups_seen: int = Field(default=0, ge=0, description="Groups pushed or assigned in Okta.")
    groups_fixed: int = Field(default=0, ge=0, description="Groups created, renamed or with memberships fixed.")
    groups_removed: int = Field(default=0, ge=0, description="Groups no longer pushed, removed.")


class LastSync(StatusModel):
    """The latest reconciliation run."""

    start_time: dt.datetime | None = Field(default=None, description="When the run started.")
    completion_time: dt.datetime | None = Field(default=None, description="When the run ended.")
    duration_seconds: float | None = Field(default=None, ge=0, description="Wall time of the run.")
    result: SyncResult | None = Field(default=None, description="Succeeded, Failed, Blocked or Running.")
    kind: SyncKind | None = Field(
        default=None, description="Full (every user and group compared) or Delta (only what changed since the cursor)."
    )
    cursor: dt.datetime | None = Field(
        default=None,
        description="Okta's time at the start of this run: the next delta run reads what changed since then "
        "(less a small overlap, as Okta's System Log is eventually consistent).",
    )
    fallback_reason: str | None = Field(
        default=None, max_length=1024, description="Why a delta run was due but a full run ran instead."
    )
    message: str | None = Field(default=None, max_length=4096, description="What happened, for humans.")
    counts: SyncCounts | None = Field(default=None, description="What the run changed.")
    okta_api_calls: int | None = Field(default=None, ge=0, description="Okta Management API requests made.")
    rate_limit_waits: int | None = Field(default=None, ge=0, description="Times the run waited for rate limits.")


class RejectedRequests(StatusModel):
    """SCIM requests the gateways refused for their credentials since the token's last rotation."""

    token_rotated_at: dt.datetime | None = Field(default=None, description="The rotation these counts start at.")
    previous_token: int = Field(
        default=0, ge=0, description="Requests with a token a rotation replaced: the client still has the old one."
    )
    unknown_token: int = Field(default=0, ge=0, description="Requests with a token this provider never issued.")
    missing_credentials: int = Field(default=0, ge=0, description="Requests without an Authorization header.")
    last_rejected_at: dt.datetime | None = Field(default=None, description="When the latest one came.")


class UnpushedGroupStatus(StatusModel):
    """A group assigned to the app in Okta that Push Groups does not push."""

    okta_id: Annotated[str, Field(max_length=64)] = Field(description="The group's Okta id.")
    name: ShortText = Field(description="The group's name in Okta.")


class EventHookStatus(StatusModel):
    """Okta Event Hook deliveries to the gateway: each one asks for a delta run (coalesced)."""

    last_delivery_time: dt.datetime | None = Field(default=None, description="When the latest delivery came.")
    last_verification_time: dt.datetime | None = Field(
        default=None, description="When Okta last verified the endpoint (the one-time challenge)."
    )


class IdentityProviderStatus(StatusModel):
    scim_endpoint: str | None = Field(default=None, max_length=2048, description="The SCIM base URL for Okta.")
    token_rotated_at: dt.datetime | None = Field(default=None, description="When the provisioning token last changed.")
    rejected_requests: RejectedRequests | None = Field(
        default=None, description="Requests refused for their credentials since the last rotation (all gateways)."
    )
    last_sync: LastSync | None = Field(default=None, description="The latest reconciliation run.")
    last_full_sync_time: dt.datetime | None = Field(
        default=None, description="When the latest successful full run started (the next is due an interval later)."
    )
    unpushed_groups: Annotated[list[UnpushedGroupStatus], Field(max_length=100)] | None = Field(
        default=None,
        description="Groups assigned to the app but not pushed (Push Groups), as the last run found them "
        "(at most 100): their membership does not sync until they are pushed.",
    )
    next_sync_time: dt.datetime | None = Field(default=None, description="When the next run is due.")
    event_hook: EventHookStatus | None = Field(
        default=None, description="Okta Event Hook deliveries (kubescim eventhook rotate sets one up)."
    )
    user_count: int | None = Field(default=None, ge=0, description="ScimUsers of this provider.")
    group_count: int | None = Field(default=None, ge=0, description="ScimGroups of this provider.")
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last acted on.")
    conditions: Conditions = Field(default_factory=list)


# --- ScimUser / ScimGroup -----------------------------------------------------------------------


class UserName(ApiModel):
    """The components of the user's name (SCIM core `name`)."""

    formatted: ShortText | None = Field(default=None, description="The full name, formatted for display.")
    family_name: ShortText | None = Field(default=None, description="Family (last) name.")
    given_name: ShortText | None = Field(default=None, description="Given (first) name.")
    middle_name: ShortText | None = Field(default=None, description="Middle name(s).")
    honorific_prefix: ShortText | None = Field(default=None, description="Title prefix, e.g. Ms.")
    honorific_suffix: ShortText | None = Field(default=None, description="Suffix, e.g. III.")


class MultiValue(ApiModel):
    """One value of a multi-valued attribute (emails, phoneNumbers, ...)."""

    value: Annotated[str, Field(max_length=2048)] | None = Field(default=None, description="The value.")
    display: ShortText | None = Field(default=None, description="A human-readable label.")
    type: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="e.g. work, home.")
    primary: bool | None = Field(default=None, description="Whether this is the primary value.")


class Address(ApiModel):
    """A postal address (SCIM core `addresses`)."""

    formatted: ShortText | None = Field(default=None, description="The full address, formatted for display.")
    street_address: ShortText | None = Field(default=None, description="Street and number.")
    locality: ShortText | None = Field(default=None, description="City.")
    region: ShortText | None = Field(default=None, description="State or region.")
    postal_code: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="Postal code.")
    country: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="ISO 3166-1 country.")
    type: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="e.g. work, home.")
    primary: bool | None = Field(default=None, description="Whether this is the primary address.")


MultiValues = Annotated[list[MultiValue], Field(max_length=64)]


class ScimUserSpec(ApiModel):
    """A user provisioned over SCIM (RFC 7643 core User + extensions). Written by the gateway and the
    Okta reconciler; not meant to be edited by hand."""

    provider: Name = Field(description="The IdentityProvider this user belongs to.")
    user_name: str = Field(
        min_length=1,
        max_length=512,
        description="SCIM userName: unique per provider, compared case-insensitively.",
    )
    external_id: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="The identity provider's id for the user (Okta's user id)."
    )
    active: bool | None = Field(
        default=None,
        description="False when the user is deactivated in the identity provider; unset counts as active.",
    )
    display_name: ShortText | None = Field(default=None, description="Name for display.")
    nick_name: ShortText | None = Field(default=None, description="Casual name.")
    profile_url: Annotated[str, Field(max_length=2048)] | None = Field(default=None, description="Profile URL.")
    title: ShortText | None = Field(default=None, description="Job title.")
    user_type: ShortText | None = Field(default=None, description="Organisation-specific type, e.g. Employee.")
    preferred_language: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="e.g. en-US.")
    locale: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="e.g. en-US.")
    timezone: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="e.g. Europe/Berlin.")
    name: UserName | None = Field(default=None, description="The user's name components.")
    emails: MultiValues | None = Field(default=None, description="Email addresses.")
    phone_numbers: MultiValues | None = Field(default=None, description="Phone numbers.")
    ims: MultiValues | None = Field(default=None, description="Instant-messaging addresses.")
    photos: MultiValues | None = Field(default=None, description="Photo URLs.")
    entitlements: MultiValues | None = Field(default=None, description="Entitlements.")
    roles: MultiValues | None = Field(default=None, description="Roles.")
    addresses: Annotated[list[Address], Field(max_length=16)] | None = Field(
        default=None, description="Postal addresses."
    )
    extensions: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="Schema extensions by URN, exactly as sent: the enterprise extension "
        "(urn:ietf:params:scim:schemas:extension:enterprise:2.0:User: department, costCenter, "
        "employeeNumber, organization, division, manager) and any custom attribute such as employeeID.",
        json_schema_extra={"additionalProperties": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    )


class ProvenanceKind(StrEnum):
    GROUP = "Group"
    ATTRIBUTE = "Attribute"
    MANUAL = "Manual"
    TEAM = "Team"


class Provenance(StatusModel):
    """Why a membership exists: which rule, from which group or attribute value."""

    model_config = ConfigDict(frozen=True)

    kind: ProvenanceKind = Field(
        description="Group (a group's displayName), Attribute, Manual (spec.members), or Team (a business unit's "
        "member through a Team whose spec.businessUnit names it)."
    )
    rule: Annotated[str, Field(max_length=253)] | None = Field(default=None, description="The mapping that granted it.")
    attribute: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="The user attribute path."
    )
    group: Annotated[str, Field(max_length=256)] | None = Field(default=None, description="The group's displayName.")
    value: Annotated[str, Field(max_length=1024)] | None = Field(default=None, description="The matched value.")
    team: Name | None = Field(default=None, description="Kind Team: the team that rolls up into the business unit.")


class DerivedMembership(StatusModel):
    """A team or business unit the user belongs to, with the reasons."""

    name: Name = Field(description="The Team or BusinessUnit name.")
    sources: Annotated[list[Provenance], Field(max_length=32)] = Field(
        default_factory=list, description="Every rule that grants it."
    )


class AssignedRole(StatusModel):
    """The one role a user holds, and why."""

    name: Name = Field(description="The role (label identity.kubescim.dev/role).")
    rank: int | None = Field(default=None, ge=0, description="Its rank on the provider.")
    resolution: RoleResolution = Field(description="How it was chosen among the roles that matched.")
    sources: Annotated[list[Provenance], Field(max_length=32)] = Field(
        default_factory=list, description="The RoleMappings that assign it (kind Attribute or Group)."
    )
    candidates: Annotated[list[Name], Field(max_length=64)] = Field(
        default_factory=list, description="Every role some RoleMapping matched, the chosen one included."
    )


class ScimUserStatus(StatusModel):
    id: str | None = Field(
        default=None, max_length=64, description="The SCIM id (also label identity.kubescim.dev/scim-id)."
    )
    groups: Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=1024)] = Field(
        default_factory=list, description="displayNames of the SCIM groups the user is a member of."
    )
    teams: Annotated[list[DerivedMembership], Field(max_length=1024)] = Field(
        default_factory=list, description="Derived team memberships with provenance."
    )
    team_count: int | None = Field(default=None, ge=0, description="Number of derived teams.")
    business_units: Annotated[list[DerivedMembership], Field(max_length=256)] = Field(
        default_factory=list, description="Derived business-unit memberships with provenance."
    )
    role: AssignedRole | None = Field(default=None, description="The role RoleMappings assign, if any.")
    kubernetes_username: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="The user's Kubernetes username (the provider's access.username)."
    )
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last acted on.")
    conditions: Conditions = Field(default_factory=list)


class ScimGroupSpec(ApiModel):
    """A group pushed over SCIM. Its members are labels on the ScimUsers
    (group.identity.kubescim.dev/<scim-id>), so a group of any size stays a small object."""

    provider: Name = Field(description="The IdentityProvider this group belongs to.")
    display_name: str = Field(min_length=1, max_length=256, description="The group's name in the identity provider.")
    external_id: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="The identity provider's id for the group."
    )


class ScimGroupStatus(StatusModel):
    id: str | None = Field(
        default=None, max_length=64, description="The SCIM id (also label identity.kubescim.dev/scim-id)."
    )
    member_count: int | None = Field(default=None, ge=0, description="Number of member users.")
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last acted on.")
    conditions: Conditions = Field(default_factory=list)


# --- TeamMapping / BusinessUnitMapping ----------------------------------------------------------


class MappingSource(StrEnum):
    ATTRIBUTE = "Attribute"
    GROUP = "Group"


class MatchOperator(StrEnum):
    EQUALS = "Equals"
    IN = "In"
    PREFIX = "Prefix"
    GLOB = "Glob"
    REGEX = "Regex"
    ANY = "Any"


class UserSelection(StrEnum):
    ACTIVE = "Active"
    ALL = "All"


class Match(ApiModel):
    """How the source value is compared. Bifrost-compatible Equals: a value of `*` matches any non-empty
    value, and a value containing `${*}` (e.g. `Bifrost Playground: ${*} Team`) matches that shape and
    captures the wildcard part."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(self.operator in ['Equals', 'Prefix', 'Glob', 'Regex']) || has(self.value)",
                    "operator Equals, Prefix, Glob and Regex need a value",
                ),
                cel(
                    "self.operator != 'In' || (has(self.values) && size(self.values) > 0)",
                    "operator In needs a non-empty values list",
                ),
                cel(
                    "self.operator != 'Regex' || !has(self.value) || self.value.size() == 0 || "
                    "''.matches(self.value) || !''.matches(self.value)",
                    "value must be a valid RE2 regular expression",
                    ".value",
                ),
                cel(
                    "!has(self.value) || self.operator != 'Equals' || self.value.split('${*}').size() <= 2",
                    "an Equals value may contain ${*} at most once",
                    ".value",
                ),
            ]
        }
    )

    operator: MatchOperator = Field(
        default=MatchOperator.EQUALS,
        description="Equals (Bifrost semantics, see above), In (any of values), Prefix, Glob (* and ?), "
        "Regex (RE2; capture groups usable as ${1}, ${2} or ${name} in templates), Any (any non-empty value).",
    )
    value: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="The value, prefix, glob or regular expression."
    )
    values: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=256)] | None = Field(
        default=None, description="For operator In: the accepted values."
    )
    case_sensitive: bool = Field(default=False, description="Compare case-sensitively (default: no, like Bifrost).")
    negate: bool = Field(
        default=False,
        description="Match when the value does NOT match (target name must then be fixed: nothing is captured).",
    )


class MappingTarget(ApiModel):
    """The Team or BusinessUnit a matching user joins."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.name) != has(self.nameTemplate)", "set exactly one of name or nameTemplate"),
            ]
        }
    )

    name: Name | None = Field(default=None, description="A fixed Team/BusinessUnit name.")
    name_template: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None,
        description="A name built from the match: ${*} (the captured or whole value), ${1}.. / ${name} (regex "
        "groups), ${value} (the whole source value). Normalised to a valid name (lowercase, a-z0-9-, "
        "at most 63 characters).",
    )
    display_name_template: Annotated[str, Field(max_length=256)] | None = Field(
        default=None,
        description="Display name for a Team/BusinessUnit the operator creates; same placeholders. Defaults to "
        "the unnormalised name.",
    )
    business_unit: Name | None = Field(
        default=None,
        description="TeamMapping only: the BusinessUnit that teams created by this rule belong to.",
    )


_TEMPLATE_NEEDS_WILDCARD = (
    "!has(self.target.nameTemplate) || !self.target.nameTemplate.contains('${') || "
    "(self.match.operator in ['Any', 'Glob', 'Regex', 'Prefix', 'In'] && !self.match.negate) || "
    "(self.match.operator == 'Equals' && !self.match.negate && has(self.match.value) && "
    "(self.match.value == '*' || self.match.value.contains('${*}')))"
)


_SOURCE_RULES = [
    cel(
        "self.source != 'Attribute' || has(self.attribute)",
        "source Attribute needs attribute: the user attribute path, e.g. department",
    ),
    cel(
        "self.source != 'Group' || !has(self.attribute)",
        "source Group matches the group's displayName: remove attribute",
    ),
]


class RuleSelector(ApiModel):
    """What every mapping rule has in common: which users it looks at, and how it matches them.
    TeamMapping, BusinessUnitMapping and RoleMapping share this grammar."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": list(_SOURCE_RULES)})

    source: MappingSource = Field(
        default=MappingSource.ATTRIBUTE,
        description="Attribute (a user attribute) or Group (the displayName of each group the user is in).",
    )
    attribute: Annotated[str, Field(min_length=1, max_length=512)] | None = Field(
        default=None,
        description="User attribute path: a core attribute (userName, title, userType, name.givenName, "
        'emails[type eq "work"].value), an enterprise attribute by short name (department, costCenter, '
        "organization, division, employeeNumber, manager.value), or any extension attribute by full URN "
        "path, e.g. urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeID.",
    )
    match: Match = Field(description="How the value is compared.")
    priority: int = Field(
        default=100,
        ge=0,
        le=1000,
        description="Higher first. Decides whose display name wins when rules target the same name, the order "
        "of provenance, which rules `final` stops, and (RoleMapping, resolution Order) which role a user gets.",
    )
    users: UserSelection = Field(
        default=UserSelection.ACTIVE,
        description="Active (default): deactivated users never match. All: they do.",
    )
    providers: Annotated[list[Name], Field(max_length=32)] = Field(
        default_factory=list, description="IdentityProviders this rule applies to; empty means all."
    )


class MappingSpec(RuleSelector):
    """One mapping rule: users whose attribute (or group displayName) matches join the target."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                *_SOURCE_RULES,
                cel(
                    _TEMPLATE_NEEDS_WILDCARD,
                    "target.nameTemplate with a placeholder needs a wildcard match: operator Any, Glob, Regex, "
                    "Prefix or In, or an Equals value of * or containing ${*} (and no negate)",
                    ".target.nameTemplate",
                ),
            ]
        }
    )

    target: MappingTarget = Field(description="The Team/BusinessUnit to join.")
    final: bool = Field(
        default=False,
        description="When this rule matches a user, lower-priority rules of the same kind are not applied to them.",
    )


class MappingStatus(StatusModel):
    matched_users: int | None = Field(default=None, ge=0, description="Users the rule currently matches.")
    targets: Annotated[list[Name], Field(max_length=1000)] = Field(
        default_factory=list, description="Names the rule currently produces (up to 1000)."
    )
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last acted on.")
    conditions: Conditions = Field(default_factory=list)


# --- Team / BusinessUnit ------------------------------------------------------------------------


class ManualMember(ApiModel):
    """A member added by hand (GitOps). Never removed by the operator."""

    user_name: str = Field(min_length=1, max_length=512, description="The member's SCIM userName.")
    provider: Name | None = Field(default=None, description="The user's IdentityProvider, if several exist.")


class GroupingSpec(ApiModel):
    display_name: ShortText | None = Field(default=None, description="Human-readable name.")
    description: Annotated[str, Field(max_length=4096)] | None = Field(default=None, description="What it is for.")
    members: Annotated[list[ManualMember], Field(max_length=5000)] = Field(
        default_factory=list, description="Members added by hand, kept regardless of mapping rules."
    )


class TeamSpec(GroupingSpec):
    """A team: created by the operator from a TeamMapping, or by hand (GitOps)."""

    business_unit: Name | None = Field(
        default=None, description="The BusinessUnit this team belongs to; its members roll up into it."
    )


class BusinessUnitSpec(GroupingSpec):
    """A business unit: created by the operator from a BusinessUnitMapping, or by hand (GitOps)."""


class Origin(StrEnum):
    MAPPING = "Mapping"
    MANUAL = "Manual"


class Member(StatusModel):
    """A member with the reasons it is one."""

    user_name: str = Field(max_length=512, description="SCIM userName.")
    user: Annotated[str, Field(max_length=253)] | None = Field(default=None, description="The ScimUser object's name.")
    sources: Annotated[list[Provenance], Field(max_length=32)] = Field(default_factory=list, description="Why.")


class GroupingStatus(StatusModel):
    origin: Origin | None = Field(default=None, description="Mapping (created by the operator) or Manual (by hand).")
    member_count: int | None = Field(default=None, ge=0, description="Number of members.")
    members: Annotated[list[Member], Field(max_length=500)] = Field(
        default_factory=list,
        description="Members with provenance, sorted by userName, at most 500; the label selector is the full list.",
    )
    members_truncated: bool | None = Field(default=None, description="True when members lists only the first 500.")
    selector: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="Label selector listing every member: kubectl get scimusers -l <selector>."
    )
    rules: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=256)] = Field(
        default_factory=list, description="Mappings that currently produce this name."
    )
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last acted on.")
    conditions: Conditions = Field(default_factory=list)


class TeamStatus(GroupingStatus):
    pass


class BusinessUnitStatus(GroupingStatus):
    teams: Annotated[list[Name], Field(max_length=1000)] = Field(
        default_factory=list, description="Teams whose spec.businessUnit names this unit."
    )


# --- RoleMapping --------------------------------------------------------------------------------


class RoleMappingSpec(RuleSelector):
    """A rule that assigns a role to users whose attribute (or group displayName) matches. A user
    holds at most one role: its provider's access.roleResolution picks it."""

    role: Name = Field(description="The role, declared in the IdentityProvider's spec.access.roles.")


class RoleMappingStatus(StatusModel):
    matched_users: int | None = Field(default=None, ge=0, description="Users the rule matches.")
    assigned_users: int | None = Field(
        default=None, ge=0, description="Users who hold the role because of this rule (after resolution)."
    )
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last acted on.")
    conditions: Conditions = Field(default_factory=list)


# --- AccessBinding ------------------------------------------------------------------------------


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class SelectorRequirement(ApiModel):
    """metav1.LabelSelectorRequirement."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                    "In and NotIn need values; Exists and DoesNotExist take none",
                ),
            ]
        }
    )

    key: Annotated[str, Field(min_length=1, max_length=317)] = Field(description="The label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=64)] | None = Field(
        default=None, description="For In and NotIn."
    )


class LabelSelector(ApiModel):
    """metav1.LabelSelector: every matchLabels pair and every expression must hold."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, description="Labels that must be present with these values."
    )
    match_expressions: Annotated[list[SelectorRequirement], Field(max_length=16)] | None = Field(
        default=None, description="Set-based requirements."
    )


class SubjectRequirement(StrEnum):
    ANY = "Any"
    ALL = "All"


class AccessSubjects(ApiModel):
    """Who is granted: members of teams and business units, and holders of roles. Only active users."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.teams) || has(self.teamSelector) || has(self.businessUnits) || has(self.roles)",
                    "name at least one of teams, teamSelector, businessUnits or roles",
                ),
            ]
        }
    )

    teams: Annotated[list[Name], Field(max_length=256)] | None = Field(default=None, description="Teams by name.")
    team_selector: LabelSelector | None = Field(default=None, description="Teams by label.")
    business_units: Annotated[list[Name], Field(max_length=256)] | None = Field(
        default=None, description="BusinessUnits by name (their members include their teams' members)."
    )
    roles: Annotated[list[Name], Field(max_length=64)] | None = Field(
        default=None, description="Roles (RoleMapping) by name."
    )
    require: SubjectRequirement = Field(
        default=SubjectRequirement.ANY,
        description="Any (default): a user matching any of the lists above. All: a user matching every list "
        "given, e.g. teams [payments] and roles [lead] grant only the payments team's leads.",
    )


class RoleRefKind(StrEnum):
    CLUSTER_ROLE = "ClusterRole"
    ROLE = "Role"


class AccessRoleRef(ApiModel):
    """The role granted. The operator binds only roles the cluster administrator allowed (chart value
    access.allowedRoles), and Kubernetes enforces that too: the operator may `bind` only those."""

    kind: RoleRefKind = Field(default=RoleRefKind.CLUSTER_ROLE, description="ClusterRole or Role.")
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[^/%]+$")] = Field(
        description="The role's name (a Role must exist in each namespace of the scope)."
    )


class AccessScope(ApiModel):
    """Where the role applies: listed namespaces and/or namespaces matching a selector (RoleBindings,
    kept current as namespaces come and go), or the whole cluster (ClusterRoleBindings)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.cluster != (has(self.namespaces) || has(self.namespaceSelector))",
                    "set cluster: true, or namespaces and/or namespaceSelector (not both)",
                ),
            ]
        }
    )

    namespaces: Annotated[list[Name], Field(max_length=256)] | None = Field(
        default=None, description="Namespaces by name (a listed namespace created later gets its binding then)."
    )
    namespace_selector: LabelSelector | None = Field(default=None, description="Namespaces by label.")
    cluster: bool = Field(default=False, description="Cluster-wide: a ClusterRoleBinding (roleRef ClusterRole).")


class SubjectKind(StrEnum):
    USER = "User"
    GROUP = "Group"


class AccessBindingSpec(ApiModel):
    """Grant a role to teams, business units and role holders, in namespaces or cluster-wide. The
    operator materialises RoleBindings / ClusterRoleBindings whose subjects are the active members'
    Kubernetes usernames, and keeps them current in real time."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.scope.cluster || self.roleRef.kind == 'ClusterRole'",
                    "a cluster-wide scope needs roleRef kind ClusterRole",
                    ".roleRef.kind",
                ),
                cel(
                    "self.subjectKind != 'Group' || !has(self.subjects.roles)",
                    "subjectKind Group binds teams and business units as groups: roles have no group",
                    ".subjectKind",
                ),
            ]
        }
    )

    subjects: AccessSubjects = Field(description="Who is granted.")
    role_ref: AccessRoleRef = Field(description="What is granted.")
    scope: AccessScope = Field(description="Where.")
    subject_kind: SubjectKind = Field(
        default=SubjectKind.USER,
        description="User (default): one subject per active member. Group: one Group subject per team and "
        "business unit (<provider's groupPrefix><name>), for an authenticator whose groups claim carries them.",
    )
    description: Annotated[str, Field(max_length=1024)] | None = Field(default=None, description="What it is for.")


class AccessBindingStatus(StatusModel):
    subject_count: int | None = Field(default=None, ge=0, description="Subjects granted.")
    namespace_count: int | None = Field(default=None, ge=0, description="Namespaces it applies in now.")
    namespaces: Annotated[list[Name], Field(max_length=100)] = Field(
        default_factory=list, description="The namespaces (at most 100 listed)."
    )
    object_count: int | None = Field(
        default=None, ge=0, description="RoleBindings / ClusterRoleBindings it is made of (large ones are split)."
    )
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last acted on.")
    conditions: Conditions = Field(default_factory=list)
