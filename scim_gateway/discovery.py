"""/ServiceProviderConfig, /ResourceTypes and /Schemas (RFC 7644 §4, RFC 7643 §5-7)."""

from __future__ import annotations

from typing import Any

from kubescim.api.models import IdentityProviderSpec
from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.scim.errors import not_found
from kubescim.scim.learned import extension_schemas as merged_extension_schemas
from kubescim.scim.schema import (
    GROUP_SCHEMA,
    GROUP_URN,
    LIST_RESPONSE_URN,
    RESOURCE_TYPE_URN,
    SPC_URN,
    USER_SCHEMA,
    USER_URN,
    Attribute,
    Schema,
)
from scim_gateway.settings import GatewaySettings

DOCS_URL = "https://github.com/kubescim/kubescim/blob/main/docs/okta-setup.md"


def service_provider_config(base_url: str, settings: GatewaySettings) -> dict[str, Any]:
    return {
        "schemas": [SPC_URN],
        "documentationUri": DOCS_URL,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": settings.max_page_size},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The provisioning token from `kubescim token rotate`, as `Authorization: Bearer <token>`.",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
                "documentationUri": DOCS_URL,
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base_url}/ServiceProviderConfig"},
    }


def resource_types(base_url: str, extensions: list[str] | None = None) -> list[dict[str, Any]]:
    """The User type lists every extension its users can carry: the enterprise one, and those the
    provider declares or its users were seen with."""
    user_extensions = [ENTERPRISE_USER_URN, *sorted(set(extensions or ()) - {ENTERPRISE_USER_URN})]
    return [
        {
            "schemas": [RESOURCE_TYPE_URN],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_URN,
            "schemaExtensions": [{"schema": urn, "required": False} for urn in user_extensions],
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/User"},
        },
        {
            "schemas": [RESOURCE_TYPE_URN],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP_URN,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/Group"},
        },
    ]


def extension_schemas(
    provider: IdentityProviderSpec, learned: dict[str, tuple[Attribute, ...]] | None = None
) -> tuple[Schema, ...]:
    """Every extension schema the provider's users can carry: standard attributes, then the
    provider's declared custom attributes, then those learned from stored users."""
    extra: dict[str, list[Attribute]] = {}
    for custom in provider.scim.custom_attributes:
        extra.setdefault(custom.schema_urn, []).append(
            Attribute(
                custom.name,
                custom.type.value,
                multi_valued=custom.multi_valued,
                description=custom.description or f"Custom attribute {custom.name}",
            )
        )
    for urn, found in (learned or {}).items():
        extra.setdefault(urn, []).extend(found)
    return merged_extension_schemas(extra)


def schemas(
    base_url: str, provider: IdentityProviderSpec, learned: dict[str, tuple[Attribute, ...]] | None = None
) -> list[dict[str, Any]]:
    """Core schemas and every extension schema the provider's users can carry."""
    return [s.to_scim(base_url) for s in (USER_SCHEMA, GROUP_SCHEMA, *extension_schemas(provider, learned))]


def list_response(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": len(resources),
        "itemsPerPage": len(resources),
        "startIndex": 1,
        "Resources": resources,
    }


def find(resources: list[dict[str, Any]], key: str, what: str) -> dict[str, Any]:
    for resource in resources:
        if resource["id"] == key:
            return resource
    raise not_found(f"{what} {key} not found")
