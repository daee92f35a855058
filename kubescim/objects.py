"""How ScimUser and ScimGroup objects are built, by the gateway and the Okta reconciler alike.

A user's object name derives from (provider, folded userName): the API server's name uniqueness is
what makes userName unique across gateway replicas, client retries and the reconciler.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from kubescim.api.models import ScimGroupSpec, ScimUserSpec
from kubescim.constants import (
    ANNOTATION_LAST_MODIFIED,
    API_VERSION,
    GROUP_LABEL_PREFIX,
    LABEL_ACTIVE,
    LABEL_PROVIDER,
    LABEL_SCIM_ID,
    MANAGED_BY_GATEWAY,
    PART_OF,
)
from kubescim.scim.resources import user_object_name

GROUP_MEMBER_LABEL_VALUE = "member"


# --- the membership label codec: `group.identity.kubescim.dev/<group id>: member` on each member ---


def group_label(group_id: str) -> str:
    return f"{GROUP_LABEL_PREFIX}{group_id}"


def membership_labels(group_ids: Iterable[str]) -> dict[str, str]:
    return {group_label(g): GROUP_MEMBER_LABEL_VALUE for g in group_ids}


def group_ids_from_labels(labels: Mapping[str, str]) -> list[str]:
    """The SCIM ids of the groups a user's labels say it is in, sorted."""
    return sorted(k[len(GROUP_LABEL_PREFIX) :] for k in labels if k.startswith(GROUP_LABEL_PREFIX))


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def active_label(spec: ScimUserSpec) -> str:
    return str(spec.active is not False).lower()


def scim_user_object(spec: ScimUserSpec, scim_id: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ScimUser",
        "metadata": {
            "name": user_object_name(spec.provider, spec.user_name),
            "labels": {
                **PART_OF,
                **MANAGED_BY_GATEWAY,
                **(labels or {}),
                LABEL_PROVIDER: spec.provider,
                LABEL_SCIM_ID: scim_id,
                LABEL_ACTIVE: active_label(spec),
            },
            "annotations": {ANNOTATION_LAST_MODIFIED: now_iso()},
        },
        "spec": spec.dump(),
    }


def scim_group_object(spec: ScimGroupSpec, scim_id: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ScimGroup",
        "metadata": {
            "name": scim_id,
            "labels": {**PART_OF, **MANAGED_BY_GATEWAY, LABEL_PROVIDER: spec.provider, LABEL_SCIM_ID: scim_id},
            "annotations": {ANNOTATION_LAST_MODIFIED: now_iso()},
        },
        "spec": spec.dump(),
    }


def escape_pointer(key: str) -> str:
    """JSON-pointer escaping for a label/annotation key."""
    return key.replace("~", "~0").replace("/", "~1")


def replace_user_spec_patch(spec: ScimUserSpec, generation_guard: int | None = None) -> list[dict[str, Any]]:
    """A JSON patch that replaces a user's attributes without touching its membership labels."""
    operations: list[dict[str, Any]] = []
    if generation_guard is not None:
        operations.append({"op": "test", "path": "/metadata/generation", "value": generation_guard})
    operations += [
        {"op": "add", "path": "/spec", "value": spec.dump()},
        {"op": "add", "path": f"/metadata/labels/{escape_pointer(LABEL_ACTIVE)}", "value": active_label(spec)},
        {"op": "add", "path": f"/metadata/annotations/{escape_pointer(ANNOTATION_LAST_MODIFIED)}", "value": now_iso()},
    ]
    return operations
