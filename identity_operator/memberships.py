"""The engine's reverse indexes, kept from each user's computed memberships and the grants behind them:
who is in which Team / BusinessUnit (with provenance), which users and targets each rule produces,
and what display name and business unit a target gets when the operator creates it. In memory, no I/O:
`update` returns what changed, and the engine decides what to write."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from identity_operator.mapping import Desired, Grant, TargetKind
from kubescim.api.models import Provenance

TargetKey = tuple[TargetKind, str]
RuleKey = tuple[str, str]  # (target kind, rule name)


@dataclass(frozen=True)
class Suggestion:
    """What the highest-priority rule naming a target says it should look like."""

    priority: int
    rule: str
    display_name: str | None
    business_unit: str | None


@dataclass
class Memberships:
    desired: dict[str, Desired] = field(default_factory=dict)
    members: dict[TargetKey, dict[str, tuple[Provenance, ...]]] = field(default_factory=lambda: defaultdict(dict))
    rule_users: dict[RuleKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    rule_targets: dict[RuleKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    suggestions: dict[TargetKey, Suggestion] = field(default_factory=dict)

    def update(
        self, name: str, desired: Desired | None, grants: Iterable[Grant]
    ) -> tuple[set[TargetKey], set[RuleKey]]:
        """Replace one user's memberships (None: the user is gone). Returns the targets whose members
        or provenance changed, and the rules whose matches may have."""
        old = self.desired.pop(name, None)
        changed: set[TargetKey] = set()
        rules: set[RuleKey] = set()
        for kind, mapping in _kinds(old):
            for target in mapping:
                self.members[(kind, target)].pop(name, None)
                changed.add((kind, target))
        for rule_key, users in self.rule_users.items():
            if name in users:
                users.discard(name)
                rules.add(rule_key)
        if desired is None:
            return changed, rules
        self.desired[name] = desired
        for kind, mapping in _kinds(desired):
            old_mapping = dict(_kinds(old)).get(kind, {}) if old is not None else {}
            for target, provenance in mapping.items():
                self.members[(kind, target)][name] = provenance
                key: TargetKey = (kind, target)
                if key in changed and old_mapping.get(target) == provenance:
                    changed.discard(key)  # still a member, for the same reasons
                else:
                    changed.add(key)
        for grant in grants:
            rule = grant.provenance.rule or ""
            self.rule_users[(grant.kind, rule)].add(name)
            rules.add((grant.kind, rule))
            self.rule_targets[(grant.kind, rule)].add(grant.target)
            current = self.suggestions.get((grant.kind, grant.target))
            if current is None or (-grant.priority, rule) < (-current.priority, current.rule):
                self.suggestions[(grant.kind, grant.target)] = Suggestion(
                    grant.priority, rule, grant.display_name, grant.business_unit
                )
        return changed, rules


def _kinds(desired: Desired | None) -> list[tuple[TargetKind, dict[str, tuple[Provenance, ...]]]]:
    if desired is None:
        return []
    return [("Team", desired.teams), ("BusinessUnit", desired.business_units)]
