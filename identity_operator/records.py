"""Immutable records built from watched objects: the values the operator's store keeps, one per object.

Each record holds what evaluation needs and what the operator last wrote (labels, status), so a
recomputation can tell whether anything must be written at all.
"""

from __future__ import annotations

import functools
import sys
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from identity_operator.census import AttributeCensus, AttributeKeys, attribute_keys
from identity_operator.mapping import Rule, TargetKind
from identity_operator.roles import Catalog, RoleRule
from kubescim import jsonio
from kubescim.api.models import (
    Access,
    AccessBindingSpec,
    BusinessUnitSpec,
    IdentityProviderSpec,
    MappingSpec,
    MappingTarget,
    Match,
    RoleMappingSpec,
    TeamSpec,
)
from kubescim.constants import (
    BUSINESS_UNIT_LABEL_PREFIX,
    CREATED_BY_OPERATOR,
    GROUP_LABEL_PREFIX,
    LABEL_CREATED_BY,
    LABEL_ROLE,
    LABEL_SCIM_ID,
    TEAM_LABEL_PREFIX,
)
from kubescim.matching import UserFacts
from kubescim.multimap import CompactMultiMap
from kubescim.scim.resources import fold, user_to_scim

Body = dict[str, Any]
TargetKey = tuple[TargetKind, str]


def _plain(body: Any) -> Body:
    """Kopf bodies are mappings with extra behaviour; evaluation wants plain dicts."""
    if isinstance(body, dict):
        return {k: _plain(v) for k, v in body.items()}
    if hasattr(body, "items") and hasattr(body, "keys"):
        return {k: _plain(v) for k, v in body.items()}
    if isinstance(body, list | tuple):
        return [_plain(v) for v in body]  # type: ignore[return-value]
    return body  # type: ignore[no-any-return]


# What users' specs and statuses repeat (keys, URNs, the operator's own phrases), as a preset
# dictionary for deflate: a typical user's spec then keeps 59 B of its 226 B of JSON, its status 137 B
# of 535 B. Only a hint for compression: any value round-trips, and it is never stored outside memory.
_PRESET = (
    b'"name":{"givenName":"","familyName":"","formatted":""},"displayName":"","nickName":"",'
    b'"emails":[{"value":"","type":"work","primary":true}],"phoneNumbers":[{"value":"","type":"mobile"}],'
    b'"locale":"en-US","timezone":"","preferredLanguage":"","externalId":"",'
    b'{"provider":"okta","userName":"","active":true,"title":"","userType":"Employee",'
    b'"extensions":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"",'
    b'"division":"","organization":"","manager":{"value":""},"department":"","costCenter":""}}}'
    b'{"kind":"Group","rule":"","group":"","displayName":""},{"kind":"Manual"},{"kind":"Team","team":""}'
    b'"businessUnits":[{"name":"","sources":[{"kind":"Attribute","rule":"","attribute":"","value":""}]}],'
    b'{"id":"","groups":[{"id":"","displayName":""}],"teams":[{"name":"","sources":[{"kind":"Attribute",'
    b'"rule":"","attribute":"","value":""}]}],"teamCount":,"role":"","kubernetesUsername":"","observedGeneration":1,'
    b'"conditions":[{"type":"Ready","status":"True","reason":"Reconciled","message":"in 1 team(s) and 0 business'
    b' unit(s)","lastTransitionTime":"2026-12-01T00:00:00Z","observedGeneration":1}]}'
)
_WBITS = -12  # raw deflate, a 4 KiB window (the preset fits); with memLevel 1 packing takes ~6 us


def _pack(value: Any) -> bytes:
    """JSON text, deflated: what is kept for every user is kept small."""
    packer = zlib.compressobj(1, zlib.DEFLATED, _WBITS, 1, zdict=_PRESET)
    return packer.compress(jsonio.dumps(value)) + packer.flush()


def _unpack(data: bytes) -> Any:
    unpacker = zlib.decompressobj(_WBITS, zdict=_PRESET)
    return jsonio.loads(unpacker.decompress(data) + unpacker.flush())


def _names(labels: dict[str, str], prefix: str) -> tuple[str, ...]:
    # Kept per user, so a sorted tuple (48 B for one name; a frozenset is 216 B). Group, team and unit
    # names repeat across thousands of users: one string object each.
    return tuple(sorted(sys.intern(k[len(prefix) :]) for k in labels if k.startswith(prefix)))


@dataclass(frozen=True, slots=True)
class UserRecord:
    """Kept for every user, so compact: the spec and status as deflated JSON text (a tenth of the
    parsed size), unpacked when this user is recomputed."""

    name: str
    scim_id: str | None
    provider: str
    user_name: str
    active: bool
    spec_packed: bytes
    group_ids: tuple[str, ...]
    team_labels: tuple[str, ...]
    unit_labels: tuple[str, ...]
    status_packed: bytes
    generation: int
    resource_version: int
    attribute_keys: AttributeKeys = ()  # which attributes it carries (for the census), shared shapes
    role_label: str | None = None

    @property
    def resource(self) -> Body:
        """The user as SCIM attributes: what rules match."""
        spec = _unpack(self.spec_packed)
        return user_to_scim(spec, scim_id="", created="", last_modified="", version="", location="", groups=[])

    @property
    def status(self) -> Body:
        status: Body = _unpack(self.status_packed)
        return status

    @classmethod
    def from_body(cls, body: Any) -> UserRecord:
        # Users come from kubescim's informer as plain dicts already: no copy (a tenth of a restart).
        body = body if type(body) is dict else _plain(body)
        meta = body.get("metadata") or {}
        labels: dict[str, str] = meta.get("labels") or {}
        spec = body.get("spec") or {}
        return cls(
            name=str(meta.get("name")),
            scim_id=labels.get(LABEL_SCIM_ID),
            provider=sys.intern(str(spec.get("provider", ""))),
            user_name=str(spec.get("userName", "")),
            active=spec.get("active") is not False,
            spec_packed=_pack(spec),
            group_ids=_names(labels, GROUP_LABEL_PREFIX),
            team_labels=_names(labels, TEAM_LABEL_PREFIX),
            unit_labels=_names(labels, BUSINESS_UNIT_LABEL_PREFIX),
            status_packed=_pack(body.get("status") or {}),
            generation=int(meta.get("generation") or 0),
            resource_version=int(meta.get("resourceVersion") or 0),
            attribute_keys=attribute_keys(spec),
            role_label=labels.get(LABEL_ROLE),
        )

    def facts(self, group_names: tuple[str, ...]) -> UserFacts:
        return UserFacts(self.name, self.provider, self.user_name, self.active, self.resource, group_names)

    @property
    def folded_user_name(self) -> str:
        return fold(self.user_name)


@dataclass(frozen=True)
class GroupRecord:
    name: str
    scim_id: str
    provider: str
    display_name: str
    status: Body

    @classmethod
    def from_body(cls, body: Any) -> GroupRecord | None:
        body = _plain(body)
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        spec = body.get("spec") or {}
        scim_id = labels.get(LABEL_SCIM_ID) or meta.get("name")
        if not scim_id:
            return None
        return cls(
            str(meta.get("name")),
            str(scim_id),
            str(spec.get("provider", "")),
            str(spec.get("displayName", "")),
            body.get("status") or {},
        )


@dataclass(frozen=True)
class RuleRecord:
    rule: Rule
    generation: int
    status: Body

    @classmethod
    def from_body(cls, body: Any, kind: TargetKind) -> RuleRecord:
        body = _plain(body)
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        try:
            rule = Rule.compile(name, kind, MappingSpec.model_validate(body.get("spec") or {}))
        except ValidationError as error:
            placeholder = MappingSpec.model_construct(
                match=Match.model_construct(), target=MappingTarget.model_construct()
            )
            rule = Rule(name, kind, placeholder, None, None, f"invalid spec: {error.errors()[0]['msg']}")
        return cls(rule, int(meta.get("generation") or 0), body.get("status") or {})


@dataclass(frozen=True)
class ManualMemberRef:
    user_name: str
    provider: str | None


@dataclass(frozen=True)
class TargetRecord:
    """A Team or BusinessUnit as it exists in the cluster."""

    kind: TargetKind
    name: str
    uid: str
    created_by_operator: bool
    display_name: str | None
    business_unit: str | None
    manual_members: tuple[ManualMemberRef, ...]
    # The status packed: it lists up to 500 members, which parsed cost more than the users themselves;
    # only a flush of this target reads it.
    status_packed: bytes
    generation: int
    origin: Literal["Mapping", "Manual"] = "Manual"
    labels: Mapping[str, str] = field(default_factory=dict)  # for AccessBindings' teamSelector

    @property
    def key(self) -> TargetKey:
        return (self.kind, self.name)

    @property
    def status(self) -> Body:
        status: Body = _unpack(self.status_packed)
        return status

    @classmethod
    def from_body(cls, body: Any, kind: TargetKind) -> TargetRecord:
        body = _plain(body)
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        raw_spec = body.get("spec") or {}
        try:
            spec: TeamSpec | BusinessUnitSpec = (
                TeamSpec.model_validate(raw_spec) if kind == "Team" else BusinessUnitSpec.model_validate(raw_spec)
            )
        except ValidationError:
            spec = TeamSpec() if kind == "Team" else BusinessUnitSpec()
        created = labels.get(LABEL_CREATED_BY) == CREATED_BY_OPERATOR
        return cls(
            kind=kind,
            name=str(meta.get("name")),
            uid=str(meta.get("uid", "")),
            created_by_operator=created,
            display_name=spec.display_name,
            business_unit=spec.business_unit if isinstance(spec, TeamSpec) else None,
            manual_members=tuple(ManualMemberRef(m.user_name, m.provider) for m in spec.members),
            status_packed=_pack(body.get("status") or {}),
            generation=int(meta.get("generation") or 0),
            origin="Mapping" if created else "Manual",
            labels=dict(labels),
        )


@dataclass(frozen=True)
class RoleRuleRecord:
    rule: RoleRule
    generation: int
    status: Body

    @classmethod
    def from_body(cls, body: Any) -> RoleRuleRecord:
        body = _plain(body)
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        raw = body.get("spec") or {}
        try:
            rule = RoleRule.compile(name, RoleMappingSpec.model_validate(raw))
        except ValidationError as error:
            placeholder = RoleMappingSpec.model_construct(match=Match.model_construct(), role=str(raw.get("role", "")))
            rule = RoleRule(name, placeholder, None, None, f"invalid spec: {error.errors()[0]['msg']}")
        return cls(rule, int(meta.get("generation") or 0), body.get("status") or {})


@dataclass(frozen=True)
class ProviderRecord:
    """What the operator's engine needs of an IdentityProvider: its access settings, the custom
    attributes it declares (urn, name), and the conditions its status holds."""

    name: str
    access: Access
    custom_attributes: tuple[tuple[str, str], ...] = ()
    conditions: tuple[Body, ...] = ()

    @functools.cached_property
    def catalog(self) -> Catalog:
        return Catalog.of(self.access)

    @classmethod
    def from_body(cls, body: Any) -> ProviderRecord:
        body = _plain(body)
        try:
            spec = IdentityProviderSpec.model_validate(body.get("spec") or {})
            access, declared = spec.access, tuple((a.schema_urn, a.name) for a in spec.scim.custom_attributes)
        except ValidationError:
            access, declared = Access(), ()
        conditions = tuple((body.get("status") or {}).get("conditions") or [])
        return cls(str((body.get("metadata") or {}).get("name")), access, declared, conditions)


@dataclass(frozen=True)
class AccessBindingRecord:
    name: str
    uid: str
    generation: int
    spec: AccessBindingSpec | None  # None: invalid (problem says why)
    status: Body
    problem: str | None = None

    @classmethod
    def from_body(cls, body: Any) -> AccessBindingRecord:
        body = _plain(body)
        meta = body.get("metadata") or {}
        name, uid = str(meta.get("name")), str(meta.get("uid", ""))
        generation, status = int(meta.get("generation") or 0), body.get("status") or {}
        try:
            spec = AccessBindingSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            return cls(name, uid, generation, None, status, f"invalid spec: {error.errors()[0]['msg']}")
        return cls(name, uid, generation, spec, status)


@dataclass
class View:
    """What the engine reads: the store's maps (one record per object), never a partial listing."""

    users: Mapping[str, UserRecord]
    users_by_group: Mapping[str, Iterable[str]]
    users_by_user_name: CompactMultiMap  # folded userName -> user names
    groups: Mapping[str, GroupRecord]
    rules: Mapping[tuple[str, str], RuleRecord]
    targets: Mapping[TargetKey, TargetRecord]
    census: AttributeCensus = field(default_factory=AttributeCensus)
    role_rules: Mapping[str, RoleRuleRecord] = field(default_factory=dict)
    providers: Mapping[str, ProviderRecord] = field(default_factory=dict)
    access_bindings: Mapping[str, AccessBindingRecord] = field(default_factory=dict)
