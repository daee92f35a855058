"""SCIM schemas (RFC 7643 §4, §8.7.1): attribute metadata used by filters, PATCH, projection and /Schemas.

Only what kubescim stores is declared. Attribute names are matched case-insensitively (RFC 7643
§2.1); extension attributes that are not declared are still accepted and stored (Okta custom
attributes), and are treated as case-insensitive strings in filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from kubescim.constants import ENTERPRISE_USER_URN

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_RESPONSE_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST_URN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"

AttrType = Literal["string", "boolean", "decimal", "integer", "dateTime", "reference", "complex", "binary"]
Mutability = Literal["readOnly", "readWrite", "immutable", "writeOnly"]
Returned = Literal["always", "never", "default", "request"]


@dataclass(frozen=True)
class Attribute:
    name: str
    type: AttrType = "string"
    multi_valued: bool = False
    case_exact: bool = False
    mutability: Mutability = "readWrite"
    returned: Returned = "default"
    uniqueness: Literal["none", "server", "global"] = "none"
    required: bool = False
    description: str = ""
    sub_attributes: tuple[Attribute, ...] = ()
    reference_types: tuple[str, ...] = ()
    canonical_values: tuple[str, ...] = ()

    def sub(self, name: str) -> Attribute | None:
        lowered = name.lower()
        for attribute in self.sub_attributes:
            if attribute.name.lower() == lowered:
                return attribute
        return None

    def to_scim(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.sub_attributes:
            body["subAttributes"] = [a.to_scim() for a in self.sub_attributes]
        if self.reference_types:
            body["referenceTypes"] = list(self.reference_types)
        if self.canonical_values:
            body["canonicalValues"] = list(self.canonical_values)
        return body


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...] = field(default_factory=tuple)

    def attribute(self, name: str) -> Attribute | None:
        lowered = name.lower()
        for attribute in self.attributes:
            if attribute.name.lower() == lowered:
                return attribute
        return None

    def to_scim(self, base_url: str) -> dict[str, Any]:
        return {
            "schemas": [SCHEMA_URN],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_scim() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.id}"},
        }


def _multi(name: str, description: str, types: tuple[str, ...] = ("work", "home", "other")) -> Attribute:
    return Attribute(
        name,
        "complex",
        multi_valued=True,
        description=description,
        sub_attributes=(
            Attribute("value", description=f"The {name} value."),
            Attribute("display", description="A human-readable name."),
            Attribute("type", description="A label, e.g. work.", canonical_values=types),
            Attribute("primary", "boolean", description="The primary value."),
        ),
    )


ID = Attribute(
    "id",
    case_exact=True,
    mutability="readOnly",
    returned="always",
    uniqueness="server",
    description="Unique identifier for the resource, assigned by the service provider.",
)
EXTERNAL_ID = Attribute("externalId", case_exact=True, description="The provisioning client's identifier.")
META = Attribute(
    "meta",
    "complex",
    mutability="readOnly",
    description="Resource metadata.",
    sub_attributes=(
        Attribute("resourceType", case_exact=True, mutability="readOnly"),
        Attribute("created", "dateTime", mutability="readOnly"),
        Attribute("lastModified", "dateTime", mutability="readOnly"),
        Attribute("location", "reference", case_exact=True, mutability="readOnly", reference_types=("uri",)),
        Attribute("version", case_exact=True, mutability="readOnly"),
    ),
)

USER_SCHEMA = Schema(
    USER_URN,
    "User",
    "User Account",
    (
        Attribute(
            "userName",
            required=True,
            uniqueness="server",
            description="Unique identifier for the User, compared case-insensitively.",
        ),
        Attribute(
            "name",
            "complex",
            description="The components of the user's real name.",
            sub_attributes=tuple(
                Attribute(n)
                for n in (
                    "formatted",
                    "familyName",
                    "givenName",
                    "middleName",
                    "honorificPrefix",
                    "honorificSuffix",
                )
            ),
        ),
        Attribute("displayName", description="The name of the User, suitable for display."),
        Attribute("nickName", description="The casual way to address the user."),
        Attribute("profileUrl", "reference", reference_types=("external",), description="Profile URL."),
        Attribute("title", description="The user's title, such as Vice President."),
        Attribute("userType", description="Relationship between the organization and the user, e.g. Employee."),
        Attribute("preferredLanguage", description="Preferred written or spoken language."),
        Attribute("locale", description="Default location, e.g. en-US."),
        Attribute("timezone", description="Time zone, e.g. America/Los_Angeles."),
        Attribute("active", "boolean", description="The user's administrative status."),
        Attribute(
            "password",
            mutability="writeOnly",
            returned="never",
            description="Accepted and discarded: kubescim never stores passwords.",
        ),
        _multi("emails", "Email addresses for the user."),
        _multi("phoneNumbers", "Phone numbers for the user.", ("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", "Instant messaging addresses."),
        _multi("photos", "URLs of photos of the user.", ("photo", "thumbnail")),
        Attribute(
            "addresses",
            "complex",
            multi_valued=True,
            description="Physical mailing addresses.",
            sub_attributes=(
                *(
                    Attribute(n)
                    for n in (
                        "formatted",
                        "streetAddress",
                        "locality",
                        "region",
                        "postalCode",
                        "country",
                        "type",
                    )
                ),
                Attribute("primary", "boolean"),
            ),
        ),
        Attribute(
            "groups",
            "complex",
            multi_valued=True,
            mutability="readOnly",
            description="Groups the user belongs to (read-only; change membership through /Groups).",
            sub_attributes=(
                Attribute("value", mutability="readOnly", case_exact=True),
                Attribute("$ref", "reference", mutability="readOnly", reference_types=("Group",)),
                Attribute("display", mutability="readOnly"),
                Attribute("type", mutability="readOnly", canonical_values=("direct", "indirect")),
            ),
        ),
        _multi("entitlements", "Entitlements of the user."),
        _multi("roles", "Roles of the user."),
    ),
)

ENTERPRISE_SCHEMA = Schema(
    ENTERPRISE_USER_URN,
    "EnterpriseUser",
    "Enterprise User",
    (
        Attribute("employeeNumber", description="Organization-assigned employee number."),
        Attribute("costCenter", description="Name of a cost center."),
        Attribute("organization", description="Name of an organization."),
        Attribute("division", description="Name of a division."),
        Attribute("department", description="Name of a department."),
        Attribute(
            "manager",
            "complex",
            description="The user's manager.",
            sub_attributes=(
                Attribute("value", description="The manager's id."),
                Attribute("$ref", "reference", reference_types=("User",)),
                Attribute("displayName", mutability="readOnly"),
            ),
        ),
    ),
)

GROUP_SCHEMA = Schema(
    GROUP_URN,
    "Group",
    "Group",
    (
        Attribute("displayName", required=True, description="A human-readable name for the Group."),
        Attribute(
            "members",
            "complex",
            multi_valued=True,
            description="Members of the Group (users).",
            sub_attributes=(
                Attribute("value", mutability="immutable", case_exact=True),
                Attribute("$ref", "reference", mutability="immutable", reference_types=("User",)),
                Attribute("type", mutability="immutable", canonical_values=("User",)),
            ),
        ),
    ),
)

COMMON_ATTRIBUTES = (ID, EXTERNAL_ID, META)


def find_attribute(schema: Schema, name: str) -> Attribute | None:
    """A core or common attribute of a resource schema, by case-insensitive name."""
    lowered = name.lower()
    for attribute in COMMON_ATTRIBUTES:
        if attribute.name.lower() == lowered:
            return attribute
    return schema.attribute(name)
