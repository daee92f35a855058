"""Which attributes users carry, per provider — so a rule reading an attribute no user has (the Okta
guide's "custom attribute is not arriving": the External name must match exactly, case included)
says so on its conditions instead of silently matching nobody. Pure.

The census counts (provider, container, name) over the stored users: container "" is the core
User, otherwise the extension URN as stored. It keeps counts only, never values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.filter import AttrPath
from kubescim.scim.schema import USER_SCHEMA, find_attribute

AttributeKeys = tuple[tuple[str, str], ...]  # (container, name) pairs one user carries
_SHAPES: dict[AttributeKeys, AttributeKeys] = {}  # users share a handful of shapes: one tuple each


def attribute_keys(spec: dict[str, object]) -> AttributeKeys:
    keys = [("", k) for k in spec if k not in ("provider", "extensions")]
    extensions = spec.get("extensions")
    if isinstance(extensions, dict):
        for urn, attributes in extensions.items():
            if isinstance(attributes, dict):
                keys += [(str(urn), str(k)) for k in attributes]
    shape = tuple(sorted(keys))
    return _SHAPES.setdefault(shape, shape)


Verdict = Literal["Found", "CaseMismatch", "NearMiss", "NotCarried"]


@dataclass(frozen=True)
class AttributeCheck:
    verdict: Verdict
    message: str

    @property
    def ok(self) -> bool:
        return self.verdict in ("Found", "CaseMismatch")


class AttributeCensus:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.version = 0  # bumped when an attribute appears or disappears (not on count changes)

    def add(self, provider: str, keys: AttributeKeys, delta: int) -> None:
        for container, name in keys:
            key = (provider, container, name)
            if key not in self.counts:
                self.version += 1
            self.counts[key] += delta
            if self.counts[key] <= 0:
                del self.counts[key]
                self.version += 1

    def users(self, provider: str) -> int:
        """The provider's users (every stored user carries userName)."""
        return self.counts.get((provider, "", "userName"), 0)

    def check(
        self, rule: str, providers: Iterable[str] | None, path: AttrPath, *, subject: str | None = None
    ) -> AttributeCheck:
        """Does any user of these providers (all, when None) carry what the rule reads? `subject` says
        who names the attribute in messages (default "rule <rule> reads")."""
        who = subject or f"rule {rule} reads"
        agree = "rule" if subject is None else "declaration"
        wanted = set(providers) if providers else None
        name, shown = path.attr, (f"{path.urn}:{path.attr}" if path.urn else path.attr)
        core = path.urn is None and find_attribute(USER_SCHEMA, name) is not None
        core = core or (path.urn is not None and path.urn.lower() == USER_SCHEMA.id.lower())
        exact: Counter[str] = Counter()  # carried under the exact name where the rule reads, by name
        elsewhere: Counter[str] = Counter()  # same name (any case) in another extension, by URN
        for (provider, container, carried), count in self.counts.items():
            if (wanted is not None and provider not in wanted) or carried.lower() != name.lower():
                continue
            if core:
                where = container == ""
            elif path.urn is None:
                where = container != ""  # a bare custom name: any extension (enterprise first)
            else:
                where = container.lower() == path.urn.lower()
            if where:
                exact[carried] += count
            elif container:
                elsewhere[container] += count
        if exact.get(name):
            return AttributeCheck("Found", f"{exact[name]} user(s) carry {shown}")
        if exact:
            variant, count = exact.most_common(1)[0]
            return AttributeCheck(
                "CaseMismatch",
                f"{who} {name}; {count} user(s) carry {variant} ("
                + ("matched regardless of case; " if subject is None else "")
                + f"Okta's External name is case-sensitive — make the mapping and the {agree} agree)",
            )
        if elsewhere:
            urn, count = elsewhere.most_common(1)[0]
            hint = " (the enterprise extension)" if urn == ENTERPRISE_USER_URN else ""
            return AttributeCheck(
                "NearMiss",
                f"{who} {shown}; {count} user(s) carry {name} under {urn}{hint}: "
                "name that URN, or fix the attribute's namespace in Okta",
            )
        scope = f"provider(s) {', '.join(sorted(wanted))}" if wanted else "any provider"
        return AttributeCheck(
            "NotCarried",
            f"no user of {scope} carries {shown}: check the attribute is mapped in Okta (Profile Editor "
            "External name and namespace) and pushed",
        )
