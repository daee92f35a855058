"""Role resolution: pure functions from (user, RoleMappings, the provider's declared roles) to the one
role the user holds.

RoleMappings use the TeamMapping grammar (kubescim.matching). A user holds at most one role, chosen by
the provider's `access.roleResolution`:
- HighestPermission (default): of the roles whose rules match, the highest `rank`; a tie goes to the
  role whose best rule has the higher priority, then to the alphabetically first role name.
- Order: the role of the first matching rule, by priority (higher first), then rule name.
A rule naming a role its user's provider does not declare assigns nothing (RoleMapping status says
so): an undeclared role has no rank, so resolving it would be a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from identity_operator.mapping import provenance_of
from kubescim.api.models import Access, MappingSource, Provenance, ProvenanceKind, RoleMappingSpec, RoleResolution
from kubescim.matching import Matcher, UserFacts, applies_to, compile_attribute, matches
from kubescim.scim.filter import PatchPath


@dataclass(frozen=True)
class RoleRule:
    """A RoleMapping, compiled once per generation."""

    name: str
    spec: RoleMappingSpec
    matcher: Matcher | None
    attribute: PatchPath | None
    problem: str | None = None

    @classmethod
    def compile(cls, name: str, spec: RoleMappingSpec) -> RoleRule:
        try:
            attribute = None
            if spec.source == MappingSource.ATTRIBUTE:
                if not spec.attribute:
                    raise ValueError("source Attribute needs an attribute path")
                attribute = compile_attribute(spec.attribute)
            return cls(name, spec, Matcher(spec.match), attribute)
        except ValueError as error:
            return cls(name, spec, None, None, str(error))

    @property
    def sort_key(self) -> tuple[int, str]:
        return (-self.spec.priority, self.name)


@dataclass(frozen=True)
class Catalog:
    """One provider's declared roles (name -> rank) and resolution."""

    ranks: Mapping[str, int]
    resolution: RoleResolution = RoleResolution.HIGHEST_PERMISSION

    @classmethod
    def of(cls, access: Access) -> Catalog:
        return cls({role.name: role.rank for role in access.roles}, access.role_resolution)


EMPTY_CATALOG = Catalog({})


@dataclass(frozen=True)
class RoleVerdict:
    """The role a user holds, the rules behind it, and every role that matched."""

    role: str
    rank: int
    resolution: RoleResolution
    sources: tuple[Provenance, ...]
    rules: tuple[str, ...]  # every rule that matched the user (for RoleMapping.status.matchedUsers)
    candidates: tuple[str, ...]


def _provenance(rule: RoleRule, value: str, kind: ProvenanceKind) -> Provenance:
    return provenance_of(
        kind,
        rule=rule.name,
        attribute=rule.spec.attribute if kind == ProvenanceKind.ATTRIBUTE else None,
        group=value if kind == ProvenanceKind.GROUP else None,
        value=value[:1024] if kind == ProvenanceKind.ATTRIBUTE else None,
    )


def resolve_role(user: UserFacts, rules: Iterable[RoleRule], catalog: Catalog) -> RoleVerdict | None:
    """The one role this user holds, or None. Independent of the order rules are given in."""
    matched: list[tuple[RoleRule, Provenance]] = []
    for rule in sorted(rules, key=lambda r: r.sort_key):
        if rule.problem is not None or rule.matcher is None or rule.spec.role not in catalog.ranks:
            continue
        if not applies_to(rule.spec, user):
            continue
        found = matches(rule.spec, rule.matcher, rule.attribute, user)
        if found:
            value, kind, _ = found[0]
            matched.append((rule, _provenance(rule, value, kind)))
    if not matched:
        return None
    candidates = sorted({rule.spec.role for rule, _ in matched})
    if catalog.resolution == RoleResolution.ORDER:
        chosen = matched[0][0].spec.role  # rules are sorted by priority, then name
    else:
        # Highest rank; then the role whose best rule comes first; then the name.
        first_rule: dict[str, int] = {}
        for index, (rule, _) in enumerate(matched):
            first_rule.setdefault(rule.spec.role, index)
        chosen = min(candidates, key=lambda role: (-catalog.ranks[role], first_rule[role], role))
    sources = tuple(p for rule, p in matched if rule.spec.role == chosen)
    return RoleVerdict(
        role=chosen,
        rank=catalog.ranks[chosen],
        resolution=catalog.resolution,
        sources=sources,
        rules=tuple(rule.name for rule, _ in matched),
        candidates=tuple(candidates),
    )


def undeclared(rule: RoleRule, catalogs: Mapping[str, Catalog]) -> list[str]:
    """The providers (of those the rule applies to) that do not declare the rule's role."""
    providers = rule.spec.providers or sorted(catalogs)
    return [p for p in providers if rule.spec.role not in catalogs.get(p, EMPTY_CATALOG).ranks]
