"""SCIM responses: application/scim+json bodies, Error bodies, and a resource's Location and ETag."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from kubescim import jsonio
from kubescim.scim.errors import ScimError
from kubescim.scim.projection import parse_attribute_list, project
from scim_gateway.service import Query as ListQuery

SCIM_JSON = "application/scim+json"


class ScimResponse(JSONResponse):
    media_type = SCIM_JSON

    def render(self, content: Any) -> bytes:
        return jsonio.dumps(content)


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
