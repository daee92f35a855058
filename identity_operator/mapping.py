"""Mapping-rule evaluation: pure functions from (user, rules) to team / business-unit grants.

Semantics (Bifrost-compatible, then more): values compare case-insensitively unless a rule says
otherwise; Equals `*` matches any non-empty value and the value becomes the name; an Equals value
with `${*}` matches that shape and captures the wildcard. In, Prefix, Glob, Regex (RE2: linear
time, so no pattern can stall the operator) and Any are the richer operators; `negate` inverts.
All matching rules apply, highest priority first; a matching `final` rule stops lower-priority
rules of the same kind for that user. The result does not depend on the order rules are given in.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import re2

from kubescim.api.models import (
    MappingSource,
    MappingSpec,
    Match,
    MatchOperator,
    Provenance,
    ProvenanceKind,
    RuleSelector,
    UserSelection,
)
from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.errors import ScimError
from kubescim.scim.filter import PatchPath, ResourceSchema, evaluate, get_key, parse_patch_path
from kubescim.scim.schema import ENTERPRISE_SCHEMA, USER_SCHEMA, Schema, find_attribute

TargetKind = Literal["Team", "BusinessUnit"]
MAX_NAME = 63
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_CORE_USER = ResourceSchema(USER_SCHEMA, (ENTERPRISE_SCHEMA,))


def normalise_name(text: str) -> str | None:
    """A valid Kubernetes name (DNS label, <= 63) for a rendered template; None if nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    name = _NOT_NAME.sub("-", ascii_text).strip("-")
    if not name:
        return None
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = name[: MAX_NAME - 9].rstrip("-") + "-" + digest
    return name


def _re2_options(case_sensitive: bool) -> Any:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False
    options.max_mem = 8 << 20  # bounded memory per compiled rule
    return options


@dataclass(frozen=True)
class Captured:
    """What a match yields for templates: ${*}, ${value}, ${1}.., ${name}."""

    value: str
    star: str
    groups: tuple[str, ...] = ()
    named: dict[str, str] = field(default_factory=dict)


class Matcher:
    """A compiled `match` block. Raises ValueError for a rule that cannot be compiled."""

    def __init__(self, match: Match) -> None:
        self.operator = match.operator
        self.case_sensitive = match.case_sensitive
        self.negate = match.negate
        self.regex: Any = None
        self.values: frozenset[str] = frozenset()
        self.prefix = ""
        value = match.value or ""
        options = _re2_options(self.case_sensitive)
        try:
            if self.operator == MatchOperator.EQUALS and value != "*" and "${*}" in value:
                head, _, tail = value.partition("${*}")
                self.regex = re2.compile(re2.escape(head) + "(.+)" + re2.escape(tail), options)
            elif self.operator == MatchOperator.GLOB:
                pattern = "".join("(.*)" if c == "*" else "(.)" if c == "?" else re2.escape(c) for c in value)
                self.regex = re2.compile(pattern, options)
            elif self.operator == MatchOperator.REGEX:
                self.regex = re2.compile(value, options)
        except re2.error as error:
            raise ValueError(f"invalid pattern {value!r}: {error}") from None
        if self.operator == MatchOperator.IN:
            self.values = frozenset(self._fold(v) for v in match.values or [])
        self.value = self._fold(value)
        self.prefix = self._fold(value)

    def _fold(self, text: str) -> str:
        return text if self.case_sensitive else text.casefold()

    def _positive(self, value: str) -> Captured | None:
        if not value:
            return None
        folded = self._fold(value)
        op = self.operator
        if op == MatchOperator.ANY or (op == MatchOperator.EQUALS and self.value == "*"):
            return Captured(value, value)
        if op == MatchOperator.IN:
            return Captured(value, value) if folded in self.values else None
        if op == MatchOperator.PREFIX:
            if not folded.startswith(self.prefix):
                return None
            return Captured(value, value[len(self.prefix) :] or value)
        if self.regex is not None:
            found = self.regex.search(value) if op == MatchOperator.REGEX else self.regex.fullmatch(value)
            if found is None:
                return None
            groups = tuple(g or "" for g in found.groups())
            named = {k: v or "" for k, v in found.groupdict().items()}
            return Captured(value, groups[0] if groups else found.group(0), groups, named)
        return Captured(value, value) if folded == self.value else None

    def match(self, value: str) -> Captured | None:
        result = self._positive(value)
        if self.negate:
            return None if result is not None else Captured(value, value)
        return result


def render(template: str, captured: Captured) -> str:
    def replace(found: re.Match[str]) -> str:
        key = found.group(1).strip()
        if key == "*":
            return captured.star
        if key == "value":
            return captured.value
        if key.isdigit():
            index = int(key) - 1
            return captured.groups[index] if 0 <= index < len(captured.groups) else ""
        return captured.named.get(key, "")

    return _PLACEHOLDER.sub(replace, template)


# --- attribute paths ----------------------------------------------------------------------------


def compile_attribute(path: str) -> PatchPath:
    try:
        return parse_patch_path(path)
    except ScimError as error:
        raise ValueError(f"invalid attribute path {path!r}: {error.detail}") from None


def _leaves(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return [str(value).lower()]
    if isinstance(value, int | float | str):
        return [str(value)]
    if isinstance(value, dict):
        return _leaves(get_key(value, "value"))
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return []


def attribute_values(resource: dict[str, Any], path: PatchPath) -> list[str]:
    """The string values at a rule's attribute path. A bare name that is not a core User attribute is
    looked up in the enterprise extension, then in any other extension (custom attributes)."""
    attr = path.attr
    containers: list[dict[str, Any]]
    if attr.urn is not None and attr.urn.lower() != USER_SCHEMA.id.lower():
        found = get_key(resource, attr.urn)
        containers = [found] if isinstance(found, dict) else []
    elif attr.urn is None and find_attribute(USER_SCHEMA, attr.attr) is None:
        extensions = sorted(
            (k for k in resource if k.lower().startswith("urn:") and isinstance(resource[k], dict)),
            key=lambda k: (k != ENTERPRISE_USER_URN, k),
        )
        containers = [resource[k] for k in extensions if get_key(resource[k], attr.attr) is not None][:1]
    else:
        containers = [resource]
    values: list[str] = []
    for container in containers:
        value = get_key(container, attr.attr)
        if path.value_filter is not None:
            elements = value if isinstance(value, list) else []
            element_schema = _element_schema(attr.attr)
            value = [e for e in elements if isinstance(e, dict) and evaluate(path.value_filter, e, element_schema)]
            if path.sub:
                value = [get_key(e, path.sub) for e in value]
        elif attr.sub:
            items = value if isinstance(value, list) else [value]
            value = [get_key(i, attr.sub) for i in items if isinstance(i, dict)]
        values.extend(_leaves(value))
    return values


def _element_schema(name: str) -> ResourceSchema:
    attribute = find_attribute(USER_SCHEMA, name)
    return ResourceSchema(Schema("", "", "", attribute.sub_attributes if attribute else ()))


# --- rules and users ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A TeamMapping or BusinessUnitMapping, compiled once per generation."""

    name: str
    kind: TargetKind
    spec: MappingSpec
    matcher: Matcher | None
    attribute: PatchPath | None
    problem: str | None = None

    @classmethod
    def compile(cls, name: str, kind: TargetKind, spec: MappingSpec) -> Rule:
        try:
            attribute = (
                compile_attribute(spec.attribute) if spec.source == MappingSource.ATTRIBUTE and spec.attribute else None
            )
            if spec.source == MappingSource.ATTRIBUTE and attribute is None:
                raise ValueError("source Attribute needs an attribute path")
            return cls(name, kind, spec, Matcher(spec.match), attribute)
        except ValueError as error:
            return cls(name, kind, spec, None, None, str(error))

    @property
    def sort_key(self) -> tuple[int, str]:
        return (-self.spec.priority, self.name)


@dataclass(frozen=True)
class UserFacts:
    """What rules look at: the user's SCIM attributes, state and group displayNames."""

    key: str
    provider: str
    user_name: str
    active: bool
    resource: dict[str, Any]
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grant:
    """One rule's verdict that a user belongs to a target."""

    kind: TargetKind
    target: str
    display_name: str | None
    provenance: Provenance
    priority: int
    business_unit: str | None = None


@functools.lru_cache(maxsize=65536)
def provenance_of(
    kind: ProvenanceKind,
    *,
    rule: str | None = None,
    attribute: str | None = None,
    group: str | None = None,
    value: str | None = None,
    team: str | None = None,
) -> Provenance:
    """One shared (immutable) Provenance per distinct reason: thousands of users are in a team for the
    same reason, and a pydantic model per user and team cost ~3 KiB per user (tracemalloc)."""
    return Provenance(kind=kind, rule=rule, attribute=attribute, group=group, value=value, team=team)


@dataclass(frozen=True)
class RuleIssue:
    rule: str
    message: str


def applies_to(selector: RuleSelector, user: UserFacts) -> bool:
    """The rule's providers and user selection admit this user."""
    if selector.providers and user.provider not in selector.providers:
        return False
    return selector.users != UserSelection.ACTIVE or user.active


def matches(
    selector: RuleSelector, matcher: Matcher, attribute: PatchPath | None, user: UserFacts
) -> list[tuple[str, ProvenanceKind, Captured]]:
    """Every value of the user's (attribute or group displayNames) that the rule's match accepts."""
    if selector.source == MappingSource.GROUP:
        candidates = [(group, ProvenanceKind.GROUP) for group in sorted(user.groups)]
    else:
        assert attribute is not None
        candidates = [(value, ProvenanceKind.ATTRIBUTE) for value in attribute_values(user.resource, attribute)]
    found = []
    for value, kind in candidates:
        captured = matcher.match(value)
        if captured is not None:
            found.append((value, kind, captured))
    return found


def _apply_rule(rule: Rule, user: UserFacts, issues: list[RuleIssue]) -> list[Grant]:
    assert rule.matcher is not None
    spec = rule.spec
    grants: dict[str, Grant] = {}
    for value, kind, captured in matches(spec, rule.matcher, rule.attribute, user):
        target = spec.target
        if target.name:
            name: str | None = target.name
            display = render(target.display_name_template, captured) if target.display_name_template else None
        else:
            assert target.name_template is not None
            rendered = render(target.name_template, captured)
            name = normalise_name(rendered)
            display = render(target.display_name_template, captured) if target.display_name_template else rendered
            if name is None:
                issues.append(
                    RuleIssue(rule.name, f"value {value!r} renders {target.name_template!r} to no valid name")
                )
                continue
        if name is None or name in grants:
            continue
        provenance = provenance_of(
            kind,
            rule=rule.name,
            attribute=spec.attribute if kind == ProvenanceKind.ATTRIBUTE else None,
            group=value if kind == ProvenanceKind.GROUP else None,
            value=value[:1024] if kind == ProvenanceKind.ATTRIBUTE else None,
        )
        grants[name] = Grant(rule.kind, name, display, provenance, spec.priority, target.business_unit)
    return list(grants.values())


def evaluate_user(user: UserFacts, rules: Iterable[Rule]) -> tuple[list[Grant], list[RuleIssue]]:
    """Every grant the rules make for this user, in a deterministic order, and any rule problems met."""
    grants: list[Grant] = []
    issues: list[RuleIssue] = []
    ordered = sorted((r for r in rules if r.problem is None), key=lambda r: (r.kind, *r.sort_key))
    for kind in ("BusinessUnit", "Team"):
        stop_below: int | None = None
        for rule in (r for r in ordered if r.kind == kind):
            if stop_below is not None and rule.spec.priority < stop_below:
                break
            if not applies_to(rule.spec, user):
                continue
            matched = _apply_rule(rule, user, issues)
            grants.extend(matched)
            if matched and rule.spec.final:
                stop_below = rule.spec.priority
    return grants, issues


@dataclass(frozen=True)
class Desired:
    """A user's complete derived memberships: name -> provenance, for teams and business units."""

    teams: dict[str, tuple[Provenance, ...]]
    business_units: dict[str, tuple[Provenance, ...]]


def compose(
    user: UserFacts,
    grants: Iterable[Grant],
    manual_teams: Iterable[str],
    manual_units: Iterable[str],
    team_units: dict[str, str],
) -> Desired:
    """Rule grants + manual members + team-to-unit roll-up. Inactive users keep only grants from rules
    that select all users: a deactivated user leaves every team at once, hand-made ones included."""
    teams: dict[str, list[Provenance]] = {}
    units: dict[str, list[Provenance]] = {}
    for grant in grants:
        (teams if grant.kind == "Team" else units).setdefault(grant.target, []).append(grant.provenance)
    if user.active:
        for team in manual_teams:
            teams.setdefault(team, []).append(provenance_of(ProvenanceKind.MANUAL))
        for unit in manual_units:
            units.setdefault(unit, []).append(provenance_of(ProvenanceKind.MANUAL))
    for team in sorted(teams):
        rollup = team_units.get(team)
        if rollup:
            units.setdefault(rollup, []).append(provenance_of(ProvenanceKind.TEAM, team=team))
    return Desired(
        teams={name: tuple(_unique(p)) for name, p in sorted(teams.items())},
        business_units={name: tuple(_unique(p)) for name, p in sorted(units.items())},
    )


def _unique(items: list[Provenance]) -> list[Provenance]:
    seen: set[Provenance] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
