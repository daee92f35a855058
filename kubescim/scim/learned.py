"""Extension attributes learned from what users carry, so /Schemas describes every stored attribute.

Okta sends custom attributes (the seed's `employeeID` in the enterprise namespace) without any
declaration, and kubescim stores them as sent. A validating client (scim2-tester, an SDK built on
scim2-models) rejects a resource carrying an attribute its /Schemas does not list, so each provider's
/Schemas adds, per extension URN, every attribute its stored users have carried, typed from the
first value seen. Pure: fed by the gateway's index, read by discovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.schema import ENTERPRISE_SCHEMA, Attribute, AttrType, Schema

# An org's extension attributes number in the tens; this bounds what a hostile client can add.
MAX_ATTRIBUTES_PER_PROVIDER = 500


def infer(name: str, value: Any) -> Attribute | None:
    """The attribute a stored value implies, or None for a value that says nothing (null, [], {})."""
    if isinstance(value, list):
        element = next((v for v in value if v is not None), None)
        if element is None:
            return None
        single = infer(name, element)
        if single is None:
            return None
        return Attribute(
            name, single.type, multi_valued=True, description=single.description, sub_attributes=single.sub_attributes
        )
    if isinstance(value, dict):
        subs = tuple(a for k, v in value.items() if isinstance(k, str) and (a := infer(k, v)) is not None)
        if not subs:
            return None
        return Attribute(name, "complex", description=f"{name} (learned from stored data)", sub_attributes=subs)
    kind = _scalar_type(value)
    if kind is None:
        return None
    return Attribute(name, kind, description=f"{name} (learned from stored data)")


def _scalar_type(value: Any) -> AttrType | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, str):
        return "string"
    return None


class LearnedAttributes:
    """provider -> extension URN -> attribute name -> Attribute; only ever grows (a schema that lists
    an attribute no user carries any more is still true)."""

    def __init__(self) -> None:
        self._by_provider: dict[str, dict[str, dict[str, Attribute]]] = {}
        self._counts: dict[str, int] = {}
        self.version = 0  # bumped by every attribute learned: a key for caches of derived schemas

    def observe(self, provider: str, extensions: Any) -> None:
        if not isinstance(extensions, dict) or not extensions:
            return
        known = self._by_provider.setdefault(provider, {})
        for urn, attributes in extensions.items():
            if not isinstance(urn, str) or not isinstance(attributes, dict):
                continue
            names = known.setdefault(urn, {})
            for name, value in attributes.items():
                if not isinstance(name, str) or name in names:
                    continue
                if self._counts.get(provider, 0) >= MAX_ATTRIBUTES_PER_PROVIDER:
                    return
                attribute = infer(name, value)
                if attribute is not None:
                    names[name] = attribute
                    self._counts[provider] = self._counts.get(provider, 0) + 1
                    self.version += 1

    def for_provider(self, provider: str) -> dict[str, tuple[Attribute, ...]]:
        return {urn: tuple(attrs.values()) for urn, attrs in self._by_provider.get(provider, {}).items() if attrs}


def extension_schemas(extra: Mapping[str, Iterable[Attribute]]) -> tuple[Schema, ...]:
    """The enterprise extension and every other extension URN: the standard attributes first, then
    `extra` in order (declared ones before learned ones). A name already listed, compared
    case-insensitively as SCIM compares names, is not repeated."""
    attributes: dict[str, list[Attribute]] = {ENTERPRISE_USER_URN: list(ENTERPRISE_SCHEMA.attributes)}
    for urn, found in extra.items():
        attributes.setdefault(urn, []).extend(found)
    schemas = []
    for urn, listed in attributes.items():
        unique: dict[str, Attribute] = {}
        for attribute in listed:
            unique.setdefault(attribute.name.lower(), attribute)
        if urn == ENTERPRISE_USER_URN:
            schemas.append(Schema(urn, ENTERPRISE_SCHEMA.name, ENTERPRISE_SCHEMA.description, tuple(unique.values())))
        else:
            schemas.append(Schema(urn, urn.rsplit(":", 1)[-1], "Custom attributes", tuple(unique.values())))
    return tuple(schemas)
