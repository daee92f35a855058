"""Mapping-rule evaluation: pure functions from (user, rules) to team / business-unit grants.

The matching itself (kubescim.matching) is shared with the CLI. Here: all matching rules apply,
highest priority first; a matching `final` rule stops lower-priority rules of the same kind for that
user; a target name rendered from a template is normalised to a Kubernetes name. The result does not
depend on the order rules are given in.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kubescim.api.models import MappingSource, MappingSpec, Provenance, ProvenanceKind
from kubescim.matching import (
    Matcher,
    UserFacts,
    applies_to,
    compile_attribute,
    matches,
    render,
)
from kubescim.scim.filter import PatchPath

TargetKind = Literal["Team", "BusinessUnit"]
MAX_NAME = 63
_NOT_NAME = re.compile(r"[^a-z0-9]+")


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


OrderedRules = tuple[tuple["Rule", ...], tuple["Rule", ...]]  # (BusinessUnit rules, Team rules), in order


def order_rules(rules: Iterable[Rule]) -> OrderedRules:
    """The valid rules of each kind in evaluation order: computed once per rule change, not per user
    (sorting 1,000 rules for each of 100,000 users was most of a restart's evaluation)."""
    ordered = sorted((r for r in rules if r.problem is None), key=lambda r: (r.kind, *r.sort_key))
    return tuple(r for r in ordered if r.kind == "BusinessUnit"), tuple(r for r in ordered if r.kind == "Team")


def evaluate_user(
    user: UserFacts, rules: Iterable[Rule], ordered: OrderedRules | None = None
) -> tuple[list[Grant], list[RuleIssue]]:
    """Every grant the rules make for this user, in a deterministic order, and any rule problems met.
    `ordered` is order_rules(rules), when the caller keeps it."""
    grants: list[Grant] = []
    issues: list[RuleIssue] = []
    groups = frozenset(user.groups)
    folded_groups = frozenset(g.casefold() for g in groups)
    for of_kind in ordered if ordered is not None else order_rules(rules):
        stop_below: int | None = None
        for rule in of_kind:
            if stop_below is not None and rule.spec.priority < stop_below:
                break
            matcher = rule.matcher
            if (
                matcher is not None
                and matcher.exact is not None
                and rule.spec.source == MappingSource.GROUP
                and matcher.exact not in (groups if matcher.case_sensitive else folded_groups)
            ):
                continue  # a group rule naming a group this user is not in: it cannot match
            if not applies_to(rule.spec, user):
                continue
            matched = _apply_rule(rule, user, issues)
            grants.extend(matched)
            if matched and rule.spec.final:
                stop_below = rule.spec.priority
    return grants, issues


@dataclass(frozen=True, slots=True)
class Desired:
    """A user's complete derived memberships: name -> provenance, for teams and business units.
    Kept for every user, and never mutated: users in nothing share NO_MEMBERSHIPS."""

    teams: dict[str, tuple[Provenance, ...]]
    business_units: dict[str, tuple[Provenance, ...]]


NO_MEMBERSHIPS = Desired(teams={}, business_units={})


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
    if not teams and not units:
        return NO_MEMBERSHIPS
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
