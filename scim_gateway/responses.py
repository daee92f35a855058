"""SCIM responses: application/scim+json bodies, Error bodies, and a resource's Location and ETag."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from kubescim.scim.errors import ScimError
from kubescim.scim.projection import parse_attribute_list, project
from kubescim.scim.resources import MemberList
from scim_gateway.service import Query as ListQuery

SCIM_JSON = "application/scim+json"


class ScimResponse(JSONResponse):
    media_type = SCIM_JSON

    def render(self, content: Any) -> bytes:
        return render_json(content).encode()


def render_json(content: Any) -> str:
    """Compact JSON, a group's top-level member list encoded by its own fast path."""
    if isinstance(content, dict) and isinstance(content.get("members"), MemberList):
        return (
            "{"
            + ",".join(
                f"{_dumps(key)}:{value.to_json() if isinstance(value, MemberList) else _dumps(value)}"
                for key, value in content.items()
            )
            + "}"
        )
    return _dumps(content)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def scim_error_response(error: ScimError) -> ScimResponse:
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="kubescim"')
    return ScimResponse(error.body(), status_code=error.status, headers=headers)


def resource_headers(resource: dict[str, Any]) -> dict[str, str]:
    meta = resource.get("meta") or {}
    headers = {}
    if meta.get("location"):
        headers["Location"] = str(meta["location"])
    if meta.get("version"):
        headers["ETag"] = str(meta["version"])
    return headers


def projected(resource: dict[str, Any], query: ListQuery, core_urn: str) -> ScimResponse:
    projected = project(
        resource,
        parse_attribute_list(query.attributes),
        parse_attribute_list(query.excluded_attributes),
        core_urn,
    )
    return ScimResponse(projected, headers=resource_headers(resource))
