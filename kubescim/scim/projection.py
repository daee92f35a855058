"""`attributes` / `excludedAttributes` (RFC 7644 §3.9). `id` and `schemas` are always returned."""

from __future__ import annotations

import re
from typing import Any

from kubescim.scim.errors import ScimError, ScimType
from kubescim.scim.filter import AttrPath, parse_attr_path

ALWAYS = frozenset({"id", "schemas"})
_VALUE_FILTER = re.compile(r"\[[^\]]*\]")


def parse_attribute_list(text: str | None) -> list[AttrPath] | None:
    if text is None or not text.strip():
        return None
    paths = []
    for raw in text.split(","):
        # Not RFC 7644 (attributes are attribute names), but Microsoft's validation collection asks
        # for `emails[type eq "work"]`: the value filter is ignored and the attribute returned whole.
        part = _VALUE_FILTER.sub("", raw).strip()
        if not part:
            continue
        try:
            paths.append(parse_attr_path(part))
        except ScimError:
            raise ScimError(400, f"invalid attribute name {part[:80]!r}", ScimType.INVALID_PATH) from None
    return paths


def _key(obj: dict[str, Any], name: str) -> str | None:
    lowered = name.lower()
    return next((k for k in obj if k.lower() == lowered), None)


def _split(resource: dict[str, Any], path: AttrPath, core_urn: str) -> tuple[dict[str, Any] | None, str | None]:
    """(container, key) where path's attribute lives in resource."""
    container: Any = resource
    if path.urn is not None and path.urn.lower() != core_urn.lower():
        urn_key = _key(resource, path.urn)
        container = resource.get(urn_key) if urn_key else None
        if not isinstance(container, dict):
            return None, None
    return container, _key(container, path.attr)


def project(
    resource: dict[str, Any],
    attributes: list[AttrPath] | None,
    excluded: list[AttrPath] | None,
    core_urn: str,
) -> dict[str, Any]:
    if attributes:
        out: dict[str, Any] = {k: v for k, v in resource.items() if k in ALWAYS}
        for path in attributes:
            # A bare extension URN (parsed as urn="...:2.0", attr="User") asks for the whole extension object.
            whole = _key(resource, f"{path.urn}:{path.attr}") if path.urn and not path.sub else None
            if whole is not None:
                out[whole] = resource[whole]
                continue
            container, key = _split(resource, path, core_urn)
            if container is None or key is None:
                continue
            target = out
            if container is not resource:
                urn_key = _key(resource, path.urn or "")
                assert urn_key is not None
                target = out.setdefault(urn_key, {})
            value = container[key]
            if path.sub and isinstance(value, dict):
                sub_key = _key(value, path.sub)
                if sub_key:
                    target.setdefault(key, {})[sub_key] = value[sub_key]
            elif path.sub and isinstance(value, list):
                picked = [
                    {k: v for k, v in e.items() if k.lower() == path.sub.lower()} for e in value if isinstance(e, dict)
                ]
                target[key] = [p for p in picked if p]
            else:
                target[key] = value
        return out
    if excluded:
        out = dict(resource)
        for path in excluded:
            if path.attr.lower() in ALWAYS and path.urn is None:
                continue
            container, key = _split(out, path, core_urn)
            if container is None or key is None:
                continue
            if container is not out:
                urn_key = _key(out, path.urn or "")
                assert urn_key is not None
                container = out[urn_key] = dict(container)
            if path.sub and isinstance(container[key], dict):
                container[key] = {k: v for k, v in container[key].items() if k.lower() != path.sub.lower()}
            elif path.sub and isinstance(container[key], list):
                container[key] = [
                    {k: v for k, v in e.items() if k.lower() != path.sub.lower()} if isinstance(e, dict) else e
                    for e in container[key]
                ]
            else:
                del container[key]
        return out
    return resource
