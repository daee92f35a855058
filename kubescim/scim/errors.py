"""SCIM errors (RFC 7644 §3.12): every failure a client can cause is one of these, never a 500."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimType(StrEnum):
    INVALID_FILTER = "invalidFilter"
    TOO_MANY = "tooMany"
    UNIQUENESS = "uniqueness"
    MUTABILITY = "mutability"
    INVALID_SYNTAX = "invalidSyntax"
    INVALID_PATH = "invalidPath"
    NO_TARGET = "noTarget"
    INVALID_VALUE = "invalidValue"
    INVALID_VERS = "invalidVers"
    SENSITIVE = "sensitive"


class ScimError(Exception):
    """An error answered to the client as a SCIM Error body."""

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: ScimType | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type is not None:
            body["scimType"] = str(self.scim_type)
        return body


def bad_request(detail: str, scim_type: ScimType = ScimType.INVALID_VALUE) -> ScimError:
    return ScimError(400, detail, scim_type)


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, ScimType.INVALID_FILTER)


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, ScimType.INVALID_PATH)


def not_found(detail: str) -> ScimError:
    return ScimError(404, detail)


def conflict(detail: str) -> ScimError:
    return ScimError(409, detail, ScimType.UNIQUENESS)


def unavailable(detail: str = "The backing store is unavailable; retry later.", retry_after: int = 5) -> ScimError:
    return ScimError(503, detail, headers={"Retry-After": str(retry_after)})
