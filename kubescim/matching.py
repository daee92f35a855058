"""The rule grammar's matching, shared by the operator (which evaluates rules) and the CLI (which
explains why a rule does not match a user). Pure: values in, verdicts out.

A rule selects users (`providers`, `users`), reads one value list — an attribute path's values, or
the displayNames of the user's groups — and accepts the values its `match` block accepts. Values
compare case-insensitively unless the match says otherwise; Equals `*` matches any non-empty value;
an Equals value with `${*}` matches that shape and captures the wildcard. In, Prefix, Glob, Regex
(RE2: linear time, so no pattern can stall the operator) and Any are the richer operators; `negate`
inverts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import re2

from kubescim.api.models import MappingSource, Match, MatchOperator, ProvenanceKind, RuleSelector, UserSelection
from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.errors import ScimError
from kubescim.scim.filter import PatchPath, ResourceSchema, evaluate, get_key, parse_patch_path
from kubescim.scim.schema import USER_SCHEMA, Schema, find_attribute

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


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
        # The one (folded) value a plain Equals accepts: callers holding many such rules skip those
        # whose value a user does not have, without matching each (1,000 group rules per user).
        plain = self.operator == MatchOperator.EQUALS and value != "*" and self.regex is None and not self.negate
        self.exact: str | None = self.value if plain else None

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
class UserFacts:
    """What rules look at: the user's SCIM attributes, state and group displayNames."""

    key: str
    provider: str
    user_name: str
    active: bool
    resource: dict[str, Any]
    groups: tuple[str, ...] = ()


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


# --- why a rule does not match ----------------------------------------------------------------


def _wanted(match: Match) -> str:
    """What the match block asks for, in words."""
    value = match.value or ""
    op = match.operator
    if op == MatchOperator.ANY or (op == MatchOperator.EQUALS and value == "*"):
        text = "any non-empty value"
    elif op == MatchOperator.IN:
        text = "one of " + ", ".join(repr(v) for v in match.values or [])
    elif op == MatchOperator.PREFIX:
        text = f"a value starting with {value!r}"
    elif op == MatchOperator.GLOB:
        text = f"a value matching the glob {value!r}"
    elif op == MatchOperator.REGEX:
        text = f"a value matching the regex {value!r}"
    elif "${*}" in value:
        text = f"a value shaped {value!r}"
    else:
        text = repr(value)
    if match.negate:
        text = f"anything but {text}"
    return text + (" (case-sensitive)" if match.case_sensitive else "")


def _shown(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(v[:80]) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def why_not(
    selector: RuleSelector, matcher: Matcher | None, attribute: PatchPath | None, user: UserFacts
) -> str | None:
    """Why this rule does not match this user, in one sentence ("reads department: user has 'Eng',
    rule wants 'Engineering'"); None when it matches. A rule that cannot be compiled never matches."""
    if matcher is None:
        return "the rule is invalid (see its Ready condition)"
    if selector.providers and user.provider not in selector.providers:
        return f"applies to provider(s) {', '.join(selector.providers)}, not {user.provider}"
    if selector.users == UserSelection.ACTIVE and not user.active:
        return "selects active users only, and this user is deactivated"
    if matches(selector, matcher, attribute, user):
        return None
    wanted = _wanted(selector.match)
    if selector.source == MappingSource.GROUP:
        groups = sorted(user.groups)
        if not groups:
            return f"reads group displayNames: user is in no pushed group, rule wants {wanted}"
        return f"reads group displayNames: user is in {_shown(groups)}, rule wants {wanted}"
    values = attribute_values(user.resource, attribute) if attribute is not None else []
    name = selector.attribute
    if not values:
        return f"reads {name}: user has no {name}, rule wants {wanted}"
    return f"reads {name}: user has {_shown(values)}, rule wants {wanted}"
