"""RFC 7644 §3.5.2 PATCH, applied to a SCIM resource dict. Pure: returns a new dict, never mutates input.

Lenient with real clients: op names in any case (Entra's "Replace"), string booleans ("False"),
path-less values keyed by dotted paths ("name.givenName") or full URN paths, Okta's path-less group
rename that carries the read-only `id` (ignored), and Entra's `remove` of members with a value list.
Group membership is not applied here: see `split_member_operations` and `member_delta`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from kubescim.scim.errors import ScimError, ScimType, bad_request
from kubescim.scim.filter import (
    AttrPath,
    Filter,
    PatchPath,
    ResourceSchema,
    evaluate,
    parse_attr_path,
    parse_patch_path,
)
from kubescim.scim.schema import PATCH_OP_URN, Attribute

MAX_OPERATIONS = 1000
IGNORED_IN_VALUES = frozenset({"id", "meta", "schemas", "groups", "password"})
READ_ONLY = frozenset({"id", "meta", "groups"})


@dataclass(frozen=True)
class Operation:
    op: str  # "add" | "remove" | "replace"
    path: PatchPath | None
    value: Any
    raw_path: str | None = None


def parse_patch_request(body: Any) -> list[Operation]:
    if not isinstance(body, dict):
        raise bad_request("PATCH body must be a JSON object", ScimType.INVALID_SYNTAX)
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or PATCH_OP_URN not in schemas):
        raise bad_request(f"PATCH body must declare schema {PATCH_OP_URN}", ScimType.INVALID_SYNTAX)
    raw_operations = body.get("Operations", body.get("operations"))
    if not isinstance(raw_operations, list) or not raw_operations:
        raise bad_request("PATCH body needs a non-empty 'Operations' list", ScimType.INVALID_SYNTAX)
    if len(raw_operations) > MAX_OPERATIONS:
        raise ScimError(413, f"more than {MAX_OPERATIONS} operations in one PATCH", ScimType.TOO_MANY)
    operations = []
    for index, raw in enumerate(raw_operations):
        if not isinstance(raw, dict):
            raise bad_request(f"Operations[{index}] must be an object", ScimType.INVALID_SYNTAX)
        op = raw.get("op")
        if not isinstance(op, str) or op.lower() not in ("add", "remove", "replace"):
            raise bad_request(f"Operations[{index}].op must be add, remove or replace", ScimType.INVALID_SYNTAX)
        raw_path = raw.get("path")
        if raw_path is not None and not isinstance(raw_path, str):
            raise bad_request(f"Operations[{index}].path must be a string", ScimType.INVALID_PATH)
        path = parse_patch_path(raw_path) if raw_path else None
        if op.lower() != "remove" and "value" not in raw:
            raise bad_request(f"Operations[{index}] ({op}) needs a value", ScimType.INVALID_SYNTAX)
        if op.lower() == "remove" and path is None:
            raise ScimError(400, f"Operations[{index}]: remove needs a path", ScimType.NO_TARGET)
        if path is None and not isinstance(raw.get("value"), dict):
            raise bad_request(f"Operations[{index}]: without a path, value must be an object", ScimType.INVALID_SYNTAX)
        operations.append(Operation(op.lower(), path, raw.get("value"), raw_path))
    return operations


# --- applying -----------------------------------------------------------------------------------


def apply_operations(resource: dict[str, Any], operations: list[Operation], schema: ResourceSchema) -> dict[str, Any]:
    result = copy.deepcopy(resource)
    for operation in operations:
        if operation.path is None:
            for key, value in operation.value.items():
                if not isinstance(key, str) or key.lower() in IGNORED_IN_VALUES:
                    continue
                if key.lower().startswith("urn:") and _is_schema_urn(key, schema):
                    # A whole extension object: {"urn:...:User": {"department": "x"}}.
                    if not isinstance(value, dict):
                        raise bad_request(f"{key} must be an object")
                    for sub_key, sub_value in value.items():
                        _apply_path(
                            result,
                            operation.op,
                            _attr_path(f"{key}:{sub_key}"),
                            None,
                            None,
                            sub_value,
                            schema,
                        )
                    continue
                _apply_path(result, operation.op, _attr_path(key), None, None, value, schema)
        elif (whole := _whole_extension(result, operation.path, schema, operation.value)) is not None:
            _apply_extension(result, operation.op, whole, operation.value)
        else:
            urn = operation.path.attr.urn
            if operation.op == "remove" and urn is not None and not _known_or_present(result, urn, schema):
                raise ScimError(400, f"no extension {urn} on this resource", ScimType.NO_TARGET)
            _check_declared(operation.path, schema, operation.raw_path)
            _apply_path(
                result,
                operation.op,
                operation.path.attr,
                operation.path.value_filter,
                operation.path.sub,
                operation.value,
                schema,
            )
    return result


def _check_declared(path: PatchPath, schema: ResourceSchema, raw: str | None) -> None:
    """RFC 7644 §3.12: a path naming an attribute the resource type does not have is invalidPath,
    not a 200 that stores nothing. Extension attributes are open (Okta's custom attributes arrive
    undeclared), so only core attributes and declared complex attributes' sub-attributes are checked."""
    attr = path.attr
    core = attr.urn is None or attr.urn.lower() == schema.core.id.lower()
    attribute = schema.attribute(attr)
    shown = (raw or str(attr))[:80]
    if core and attribute is None:
        raise ScimError(400, f"no attribute {attr.attr!r} in {schema.core.id}: {shown!r}", ScimType.INVALID_PATH)
    sub = attr.sub or path.sub
    if attribute is not None and sub and attribute.sub_attributes and attribute.sub(sub) is None:
        raise ScimError(400, f"{attribute.name} has no sub-attribute {sub!r}: {shown!r}", ScimType.INVALID_PATH)


def _whole_extension(resource: dict[str, Any], path: PatchPath, schema: ResourceSchema, value: Any) -> str | None:
    """The URN when a PATCH path names a whole extension object (`urn:...:enterprise:2.0:User`).
    A path is ambiguous on its face (`urn:x:2.0:User` could be attribute `User` of `urn:x:2.0`):
    a schema this resource type knows decides, then an extension the resource carries, and for an
    unknown URN an object value means the whole extension."""
    if path.value_filter is not None or path.attr.sub or path.attr.urn is None:
        return None
    full = f"{path.attr.urn}:{path.attr.attr}"
    for extension in schema.extensions:
        if extension.id.lower() == full.lower():
            return extension.id
    if any(urn.lower() == path.attr.urn.lower() for urn in (schema.core.id, *(e.id for e in schema.extensions))):
        return None  # an attribute of a known schema
    existing = _existing_key(resource, full)
    if existing is not None or not isinstance(value, dict):
        return existing
    return full


def _known_or_present(resource: dict[str, Any], urn: str, schema: ResourceSchema) -> bool:
    """A schema this resource type knows, or an extension object the resource carries."""
    lowered = urn.lower()
    known = [schema.core.id, *(e.id for e in schema.extensions)]
    return any(k.lower() == lowered for k in known) or _existing_key(resource, urn) is not None


def _apply_extension(resource: dict[str, Any], op: str, urn: str, value: Any) -> None:
    key = _existing_key(resource, urn) or urn
    if op == "remove":
        resource.pop(key, None)
        return
    if not isinstance(value, dict):
        raise bad_request(f"{urn} must be an object")
    value = {k: v for k, v in value.items() if k != "schemas"}
    current = resource.get(key)
    resource[key] = {**current, **value} if op == "add" and isinstance(current, dict) else value


def _attr_path(text: str) -> AttrPath:
    try:
        return parse_attr_path(text)
    except ScimError:
        raise ScimError(400, f"Invalid path {text[:80]!r}", ScimType.INVALID_PATH) from None


def _is_schema_urn(key: str, schema: ResourceSchema) -> bool:
    """A key that names an extension schema itself (not an attribute inside one)."""
    lowered = key.lower()
    if any(ext.id.lower() == lowered for ext in schema.extensions):
        return True
    # Unknown extension URNs (custom schemas): treat `urn:...:Something` with an object value as a schema.
    return lowered.count(":") >= 4 and not any(lowered.startswith(ext.id.lower() + ":") for ext in schema.extensions)


def _container(resource: dict[str, Any], path: AttrPath, schema: ResourceSchema, create: bool) -> dict[str, Any] | None:
    if path.urn is None or path.urn.lower() == schema.core.id.lower():
        return resource
    key = _existing_key(resource, path.urn) or path.urn
    container = resource.get(key)
    if container is None and create:
        container = resource[key] = {}
    if container is not None and not isinstance(container, dict):
        raise bad_request(f"{path.urn} is not an object", ScimType.INVALID_PATH)
    return container


def _existing_key(obj: dict[str, Any], name: str) -> str | None:
    if name in obj:
        return name
    lowered = name.lower()
    return next((key for key in obj if key.lower() == lowered), None)


def coerce(value: Any, attribute: Attribute | None, where: str) -> Any:
    """Lenient typing: "False"/"true" for booleans; everything else checked by type."""
    if attribute is None or value is None:
        return value
    if attribute.multi_valued and isinstance(value, list):
        element = Attribute(attribute.name, attribute.type, sub_attributes=attribute.sub_attributes)
        return [coerce(v, element, where) for v in value]
    if attribute.type == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise bad_request(f"{where} must be a boolean")
    elif attribute.type == "complex":
        if isinstance(value, str) and not attribute.multi_valued and attribute.sub("value") is not None:
            # Entra sends a reference such as the enterprise manager as the bare id.
            return {"value": value} if value else None
        if not isinstance(value, dict):
            raise bad_request(f"{where} must be an object")
        return {k: coerce(v, attribute.sub(k), f"{where}.{k}") for k, v in value.items()}
    elif attribute.type in ("string", "reference", "dateTime", "binary") and not isinstance(value, str):
        raise bad_request(f"{where} must be a string")
    elif attribute.type == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        raise bad_request(f"{where} must be an integer")
    return value


def _apply_path(
    resource: dict[str, Any],
    op: str,
    path: AttrPath,
    value_filter: Filter | None,
    filter_sub: str | None,
    value: Any,
    schema: ResourceSchema,
) -> None:
    attribute = schema.attribute(path)
    name = attribute.name if attribute else path.attr
    if path.urn is None and name.lower() in READ_ONLY:
        if op == "remove" or path.sub:
            raise ScimError(400, f"{name} is read-only", ScimType.MUTABILITY)
        return  # Okta sends read-only attributes back (e.g. `id` in its group rename): ignore them.
    container = _container(resource, path, schema, create=op != "remove")
    if container is None:
        if op == "remove":
            return
        raise ScimError(400, f"no target for {path}", ScimType.NO_TARGET)
    key = _existing_key(container, name) or name

    if value_filter is not None:
        _apply_filtered(container, key, op, value_filter, filter_sub, value, attribute, path)
        return

    if path.sub:
        sub_attribute = attribute.sub(path.sub) if attribute else None
        if attribute is not None and attribute.multi_valued:
            raise ScimError(400, f"{path}: use a value filter to address one {name} element", ScimType.INVALID_PATH)
        parent = container.get(key)
        if op == "remove":
            if isinstance(parent, dict):
                sub_key = _existing_key(parent, path.sub)
                if sub_key:
                    del parent[sub_key]
            return
        if parent is None:
            parent = container[key] = {}
        if not isinstance(parent, dict):
            raise bad_request(f"{name} is not an object", ScimType.INVALID_PATH)
        sub_name = sub_attribute.name if sub_attribute else path.sub
        parent[_existing_key(parent, sub_name) or sub_name] = coerce(value, sub_attribute, str(path))
        return

    if op == "remove":
        if value is not None and attribute is not None and attribute.multi_valued and isinstance(value, list):
            # Entra: {"op": "remove", "path": "emails", "value": [{"value": "a@b"}]} removes those values.
            doomed = {str(v.get("value")) for v in value if isinstance(v, dict)}
            current = container.get(key)
            if isinstance(current, list):
                container[key] = [e for e in current if not (isinstance(e, dict) and str(e.get("value")) in doomed)]
            return
        container.pop(key, None)
        return

    coerced = coerce(value, attribute, str(path))
    if attribute is not None and attribute.type == "complex" and not attribute.multi_valued and _empty_ref(coerced):
        container.pop(key, None)  # Entra clears a manager with "" (or {"value": ""}): a removal
        return
    if attribute is not None and attribute.multi_valued:
        new_items = coerced if isinstance(coerced, list) else [coerced]
        if op == "replace":
            container[key] = _single_primary(new_items)
        else:
            current = container.get(key)
            current = list(current) if isinstance(current, list) else []
            for item in new_items:
                if item not in current:
                    current.append(item)
            container[key] = _single_primary(current, preferred=new_items)
        return
    if op == "add" and isinstance(coerced, dict) and isinstance(container.get(key), dict):
        container[key] = {**container[key], **coerced}  # add merges complex attributes (RFC 7644 §3.5.2.1)
        return
    container[key] = coerced


def _empty_ref(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and set(value) <= {"value"} and not value.get("value"))


def _single_primary(items: list[Any], preferred: list[Any] | None = None) -> list[Any]:
    """At most one element may have primary=true; the newest one wins."""
    primaries = [i for i in items if isinstance(i, dict) and i.get("primary") is True]
    if len(primaries) <= 1:
        return items
    keep = next(
        (i for i in reversed(preferred or []) if isinstance(i, dict) and i.get("primary") is True),
        primaries[-1],
    )
    return [
        ({**i, "primary": False} if isinstance(i, dict) and i.get("primary") is True and i is not keep else i)
        for i in items
    ]


def _apply_filtered(
    container: dict[str, Any],
    key: str,
    op: str,
    value_filter: Filter,
    sub: str | None,
    value: Any,
    attribute: Attribute | None,
    path: AttrPath,
) -> None:
    current = container.get(key)
    elements = list(current) if isinstance(current, list) else []
    element_schema = ResourceSchema(_element_schema(attribute))
    matches = [i for i, e in enumerate(elements) if isinstance(e, dict) and evaluate(value_filter, e, element_schema)]
    if op == "remove":
        if sub:
            for i in matches:
                element = dict(elements[i])
                sub_key = _existing_key(element, sub)
                if sub_key:
                    del element[sub_key]
                elements[i] = element
            container[key] = elements
        else:
            container[key] = [e for i, e in enumerate(elements) if i not in set(matches)]
        return
    if not matches:
        if op == "replace":
            raise ScimError(400, f"no {path} element matches the filter", ScimType.NO_TARGET)
        raise ScimError(400, f"add with a value filter needs a matching {path} element", ScimType.NO_TARGET)
    for i in matches:
        element = dict(elements[i])
        if sub:
            sub_attribute = attribute.sub(sub) if attribute else None
            element[_existing_key(element, sub) or (sub_attribute.name if sub_attribute else sub)] = coerce(
                value, sub_attribute, f"{path}.{sub}"
            )
        else:
            element_attribute = (
                Attribute(path.attr, "complex", sub_attributes=attribute.sub_attributes) if attribute else None
            )
            replacement = coerce(value, element_attribute, str(path))
            if not isinstance(replacement, dict):
                raise bad_request(f"{path} elements are objects")
            element = {**element, **replacement} if op == "add" else replacement
        elements[i] = element
    container[key] = _single_primary(elements)


def _element_schema(attribute: Attribute | None) -> Any:
    from kubescim.scim.schema import Schema

    return Schema("", "", "", attribute.sub_attributes if attribute else ())


# --- group membership ---------------------------------------------------------------------------


@dataclass
class MemberDelta:
    """What a PATCH does to a group's members: replace_all (then add) or add/remove sets."""

    replace_all: bool = False
    add: set[str] | None = None
    remove: set[str] | None = None
    remove_all: bool = False

    def __post_init__(self) -> None:
        self.add = self.add or set()
        self.remove = self.remove or set()


def _is_members(path: AttrPath | None) -> bool:
    return path is not None and path.urn is None and path.attr.lower() == "members"


def split_member_operations(operations: list[Operation]) -> tuple[list[Operation], list[Operation]]:
    """(membership operations, other operations). Path-less values are split key by key."""
    members: list[Operation] = []
    others: list[Operation] = []
    for operation in operations:
        if operation.path is None:
            member_value = {k: v for k, v in operation.value.items() if isinstance(k, str) and k.lower() == "members"}
            rest = {k: v for k, v in operation.value.items() if not (isinstance(k, str) and k.lower() == "members")}
            for value in member_value.values():
                members.append(Operation(operation.op, PatchPath(AttrPath("members")), value, "members"))
            if rest:
                others.append(Operation(operation.op, None, rest))
        elif _is_members(operation.path.attr):
            members.append(operation)
        else:
            others.append(operation)
    return members, others


def _member_ids(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        if isinstance(item, str) and item:
            ids.append(item)  # pre-RFC clients (Microsoft's validation collection) send the bare id
            continue
        if not isinstance(item, dict) or not isinstance(item.get("value"), str) or not item["value"]:
            raise bad_request("each member must be an object with a non-empty string 'value'")
        ids.append(item["value"])
    return ids


def member_delta(operations: list[Operation], current: set[str]) -> tuple[set[str], set[str]]:
    """Apply membership operations to the current member ids: returns (to_add, to_remove)."""
    members = set(current)
    for operation in operations:
        assert operation.path is not None
        if operation.path.sub and operation.op != "remove":
            raise ScimError(400, "members sub-attributes are immutable", ScimType.MUTABILITY)
        if operation.op == "replace" and operation.path.value_filter is None:
            members = set(_member_ids(operation.value))
        elif operation.op == "add" or operation.op == "replace":
            if operation.path.value_filter is not None:
                raise ScimError(400, "members cannot be modified through a value filter", ScimType.MUTABILITY)
            members |= set(_member_ids(operation.value))
        elif operation.path.value_filter is not None:
            if operation.path.sub:
                continue  # removing a sub-attribute of a member reference changes nothing we store
            schema = ResourceSchema(_element_schema(None))
            members = {
                m for m in members if not evaluate(operation.path.value_filter, {"value": m, "type": "User"}, schema)
            }
        elif operation.value is not None:
            members -= set(_member_ids(operation.value))
        else:
            members = set()
    return members - current, current - members
