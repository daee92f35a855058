"""Pure conversions between SCIM JSON and the ScimUser / ScimGroup specs, and object naming.

A ScimUser's object name is derived from its provider and its case-folded userName: the API server
refuses a second object with the same name, which makes userName uniqueness atomic across gateway
replicas and client retries (docs/design.md, Storage). SCIM ids are random UUIDs kept in a label, so
they survive renames and backup/restore.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from typing import Any

from pydantic import ValidationError

from kubescim.api.models import ScimGroupSpec, ScimUserSpec
from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.errors import ScimError, ScimType, bad_request
from kubescim.scim.schema import ENTERPRISE_SCHEMA, GROUP_URN, USER_URN

_USER_FIELDS = {field.alias or name: name for name, field in ScimUserSpec.model_fields.items()}
_USER_CORE_KEYS = {alias.lower(): alias for alias in _USER_FIELDS if alias not in ("provider", "extensions")}
_SLUG = re.compile(r"[^a-z0-9]+")


def member_rows(user_ids: list[str], base_url: str) -> list[dict[str, str]]:
    """A group's `members` as rendered: {value, $ref, type} for each user id, in the order given."""
    users_url = f"{base_url}/Users/"
    return [{"value": i, "$ref": users_url + i, "type": "User"} for i in user_ids]


def fold(text: str) -> str:
    """Caseless form for case-insensitive uniqueness and lookup (Unicode canonical caseless match:
    'Straße' and 'STRASSE' are the same userName; Turkish dotless i, U+0131, stays distinct from 'i')."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def new_id() -> str:
    return str(uuid.uuid4())


def user_object_name(provider: str, user_name: str) -> str:
    """Deterministic, readable, valid object name: `<slug>-<hash of provider + folded userName>`."""
    folded = fold(user_name)
    digest = hashlib.sha256(f"{provider}\x00{folded}".encode()).hexdigest()[:12]
    ascii_text = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    slug = _SLUG.sub("-", ascii_text).strip("-")[:48].strip("-") or "user"
    return f"{slug}-{digest}"


def _validation_error(error: ValidationError, what: str) -> ScimError:
    problems = []
    for item in error.errors()[:5]:
        location = ".".join(str(part) for part in item["loc"])
        problems.append(f"{location}: {item['msg']}")
    return bad_request(f"invalid {what}: " + "; ".join(problems), ScimType.INVALID_VALUE)


def user_spec_from_scim(body: dict[str, Any], provider: str) -> ScimUserSpec:
    """Build a ScimUserSpec from a SCIM User body (POST/PUT, or a patched resource).

    Read-only (id, meta, groups) and write-only (password) attributes are dropped; extension objects
    are kept under their URN exactly as sent, whether or not the URN is listed in `schemas`."""
    data: dict[str, Any] = {"provider": provider}
    extensions: dict[str, dict[str, Any]] = {}
    for key, value in body.items():
        if not isinstance(key, str):
            continue
        lowered = key.lower()
        if lowered.startswith("urn:"):
            if lowered == USER_URN.lower():
                # Core attributes wrapped in the core URN (allowed by RFC 7644 §3.10).
                if isinstance(value, dict):
                    for core_key, core_value in value.items():
                        alias = _USER_CORE_KEYS.get(str(core_key).lower())
                        if alias:
                            data[alias] = core_value
                continue
            if value is None:
                continue
            if not isinstance(value, dict):
                raise bad_request(f"extension {key} must be an object")
            canonical = ENTERPRISE_USER_URN if lowered == ENTERPRISE_USER_URN.lower() else key
            attributes = {k: v for k, v in value.items() if k != "schemas"}
            extensions[canonical] = {**extensions.get(canonical, {}), **attributes}
        elif lowered in _USER_CORE_KEYS and value is not None:
            data[_USER_CORE_KEYS[lowered]] = value
    if ENTERPRISE_USER_URN in extensions:
        extensions[ENTERPRISE_USER_URN] = _canonical_enterprise(extensions[ENTERPRISE_USER_URN])
    if extensions:
        data["extensions"] = {
            urn: {k: v for k, v in attrs.items() if v is not None} for urn, attrs in extensions.items()
        }
    if not isinstance(data.get("userName"), str) or not data["userName"].strip():
        raise bad_request("userName is required and must be a non-empty string", ScimType.INVALID_VALUE)
    if "\x00" in data["userName"]:
        raise bad_request("userName must not contain NUL characters", ScimType.INVALID_VALUE)
    active = data.get("active")
    if isinstance(active, str) and active.lower() in ("true", "false"):
        data["active"] = active.lower() == "true"
    elif active is not None and not isinstance(active, bool):
        raise bad_request("active must be a boolean", ScimType.INVALID_VALUE)
    try:
        return ScimUserSpec.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error, "User") from None


def _canonical_enterprise(attributes: dict[str, Any]) -> dict[str, Any]:
    """Declared enterprise attributes under their declared names (SCIM names are case-insensitive:
    Entra's validation sends "Department" and "Manager": {"Value": …}); a manager given as a bare
    id (Entra) becomes {"value": id}, and "" clears it. Undeclared custom attributes (Okta's
    employeeID) stay exactly as sent: Okta matches those names case-sensitively."""
    result: dict[str, Any] = {}
    for key, value in attributes.items():
        declared = ENTERPRISE_SCHEMA.attribute(key)
        name = declared.name if declared is not None else key
        if declared is not None and declared.type == "complex":
            if isinstance(value, str):
                value = {"value": value} if value else None
            elif isinstance(value, dict):
                value = {(s.name if (s := declared.sub(k)) else k): v for k, v in value.items()}
                if not value.get("value") and set(value) <= {"value"}:
                    value = None
        result[name] = value
    return result


def user_to_scim(
    spec: dict[str, Any],
    *,
    scim_id: str,
    created: str,
    last_modified: str,
    version: str,
    location: str,
    groups: list[dict[str, str]],
) -> dict[str, Any]:
    """The SCIM representation of a stored user (spec as stored: camelCase JSON)."""
    extensions: dict[str, Any] = spec.get("extensions") or {}
    resource: dict[str, Any] = {"schemas": [USER_URN, *sorted(extensions)], "id": scim_id}
    for alias in _USER_FIELDS:
        if alias in ("provider", "extensions"):
            continue
        if alias in spec:
            resource[alias] = spec[alias]
    resource.update(extensions)
    resource["groups"] = groups
    resource["meta"] = {
        "resourceType": "User",
        "created": created,
        "lastModified": last_modified,
        "location": location,
        "version": version,
    }
    return resource


def group_spec_from_scim(body: dict[str, Any], provider: str) -> ScimGroupSpec:
    data: dict[str, Any] = {"provider": provider}
    for key, value in body.items():
        if not isinstance(key, str):
            continue
        lowered = key.lower()
        if lowered == "displayname":
            data["displayName"] = value
        elif lowered == "externalid" and value is not None:
            data["externalId"] = value
    display_name = data.get("displayName")
    if not isinstance(display_name, str) or not display_name.strip():
        raise bad_request("displayName is required and must be a non-empty string", ScimType.INVALID_VALUE)
    try:
        return ScimGroupSpec.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error, "Group") from None


def members_from_scim(body: dict[str, Any]) -> list[str] | None:
    """Member ids from a Group body's `members`, or None when the body has no members key."""
    key = next((k for k in body if isinstance(k, str) and k.lower() == "members"), None)
    if key is None or body[key] is None:
        return None
    members = body[key]
    if not isinstance(members, list):
        raise bad_request("members must be a list")
    ids = []
    for member in members:
        if not isinstance(member, dict) or not isinstance(member.get("value"), str) or not member["value"]:
            raise bad_request("each member must be an object with a non-empty string 'value'")
        ids.append(member["value"])
    return ids


def group_to_scim(
    spec: dict[str, Any],
    *,
    scim_id: str,
    created: str,
    last_modified: str,
    version: str,
    location: str,
    members: list[dict[str, str]] | None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "schemas": [GROUP_URN],
        "id": scim_id,
        "displayName": spec.get("displayName", ""),
    }
    if spec.get("externalId") is not None:
        resource["externalId"] = spec["externalId"]
    if members is not None:
        resource["members"] = members
    resource["meta"] = {
        "resourceType": "Group",
        "created": created,
        "lastModified": last_modified,
        "location": location,
        "version": version,
    }
    return resource
