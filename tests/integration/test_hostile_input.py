"""Hostile and malformed input: each gets a precise 4xx SCIM error, and a rejected request changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from kubescim.constants import ANNOTATION_LAST_MODIFIED, GROUP_LABEL_PREFIX, SCIM_USERS
from kubescim.kube import Kube
from tests.conftest import ScimEnv, make_provider

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def assert_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["status"] == str(status)
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body


async def snapshot(kube: Kube, namespace: str) -> dict[str, str]:
    """What a SCIM client's writes change on every user: attributes, group memberships and
    lastModified. (Not the resourceVersion: the operator running beside the gateway writes team
    labels and statuses of its own.)"""
    items, _ = await kube.list(SCIM_USERS, namespace)
    return {
        i["metadata"]["name"]: json.dumps(
            [
                i["spec"],
                sorted(k for k in i["metadata"].get("labels", {}) if k.startswith(GROUP_LABEL_PREFIX)),
                i["metadata"].get("annotations", {}).get(ANNOTATION_LAST_MODIFIED),
            ],
            sort_keys=True,
        )
        for i in items
    }


async def test_unicode_case_folding_decides_uniqueness(scim_env: ScimEnv) -> None:
    tag = uuid.uuid4().hex[:6]
    async with scim_env.client() as client:
        assert (await client.post("/Users", json={"userName": f"straße-{tag}@example.com"})).status_code == 201
        assert_error(await client.post("/Users", json={"userName": f"STRASSE-{tag}@example.com"}), 409, "uniqueness")
        # Turkish dotless i is a different letter: both accounts can exist.
        assert (await client.post("/Users", json={"userName": f"\u0131ris-{tag}@example.com"})).status_code == 201
        assert (await client.post("/Users", json={"userName": f"iris-{tag}@example.com"})).status_code == 201
        found = await client.get("/Users", params={"filter": f'userName eq "STRASSE-{tag}@EXAMPLE.COM"'})
        assert [r["userName"] for r in found.json()["Resources"]] == [f"straße-{tag}@example.com"]


BAD_BODIES: list[tuple[str, bytes | dict[str, Any], int, str]] = [
    ("nul in userName", {"userName": "a\u0000b@example.com"}, 400, "invalidValue"),
    ("userName number", {"userName": 42}, 400, "invalidValue"),
    ("userName empty", {"userName": "   "}, 400, "invalidValue"),
    ("active not boolean", {"userName": "x@example.com", "active": "maybe"}, 400, "invalidValue"),
    ("emails not a list", {"userName": "x@example.com", "emails": "x@example.com"}, 400, "invalidValue"),
    ("name not an object", {"userName": "x@example.com", "name": "Ada"}, 400, "invalidValue"),
    ("extension not an object", {"userName": "x@example.com", "urn:example:custom:1.0:User": 7}, 400, "invalidValue"),
    ("userName too long", {"userName": "x" * 600}, 400, "invalidValue"),
    ("body is a list", b"[1, 2, 3]", 400, "invalidSyntax"),
    ("body is a string", b'"user"', 400, "invalidSyntax"),
    ("duplicate keys", b'{"userName": "a@example.com", "userName": "b@example.com"}', 400, "invalidSyntax"),
    (
        "deep nesting",
        b'{"userName": "d@example.com", "name": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
        400,
        "invalidSyntax",
    ),
    ("not JSON", b"\xff\xfe not json", 400, "invalidSyntax"),
    # Python's json reads these; they are not JSON, and would be stored as something else (null).
    ("NaN", b'{"userName": "nan@example.com", "urn:example:custom:1.0:User": {"score": NaN}}', 400, "invalidSyntax"),
    (
        "Infinity",
        b'{"userName": "inf@example.com", "urn:example:custom:1.0:User": {"score": -Infinity}}',
        400,
        "invalidSyntax",
    ),
    ("huge body", b'{"userName": "' + b"y" * (2 * 1024 * 1024) + b'"}', 413, "tooMany"),
]


@pytest.mark.parametrize(("name", "body", "status", "scim_type"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_user_bodies_are_precise_4xx_and_change_nothing(
    kube: Kube, scim_env: ScimEnv, name: str, body: bytes | dict[str, Any], status: int, scim_type: str
) -> None:
    before = await snapshot(kube, scim_env.namespace)
    async with scim_env.client() as client:
        if isinstance(body, bytes):
            response = await client.post("/Users", content=body)
        else:
            response = await client.post("/Users", json={"schemas": [USER], **body})
    assert_error(response, status, scim_type)
    assert await snapshot(kube, scim_env.namespace) == before


async def test_bad_patches_are_precise_4xx_and_change_nothing(kube: Kube, scim_env: ScimEnv) -> None:
    async with scim_env.client() as client:
        user = (await client.post("/Users", json={"userName": f"p-{uuid.uuid4().hex[:6]}@example.com"})).json()
        before = await snapshot(kube, scim_env.namespace)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"op": "remove", "path": "urn:example:missing:1.0:User:badge"}, "noTarget"),
            ({"op": "replace", "path": 'emails[type eq "nope"].value', "value": "x"}, "noTarget"),
            ({"op": "replace", "path": "emails[type eq", "value": "x"}, "invalidPath"),
            ({"op": "remove", "path": "id"}, "mutability"),
            ({"op": "replace", "path": "active", "value": [True]}, "invalidValue"),
            ({"op": "teleport", "path": "title", "value": "x"}, "invalidSyntax"),
        ]
        for operation, scim_type in cases:
            response = await client.patch(f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": [operation]})
            assert_error(response, 400, scim_type)
        # A valid operation followed by an invalid one: nothing of the request is applied.
        mixed = await client.patch(
            f"/Users/{user['id']}",
            json={
                "schemas": [PATCH],
                "Operations": [
                    {"op": "replace", "path": "title", "value": "Changed"},
                    {"op": "replace", "path": "active", "value": "perhaps"},
                ],
            },
        )
        assert_error(mixed, 400, "invalidValue")
    assert await snapshot(kube, scim_env.namespace) == before


async def test_filter_limits(scim_env: ScimEnv) -> None:
    async with scim_env.client() as client:
        huge = " or ".join(f'userName eq "u{i}"' for i in range(400))
        assert_error(await client.get("/Users", params={"filter": huge}), 400, "invalidFilter")
        deep = "(" * 100 + "userName pr" + ")" * 100
        assert_error(await client.get("/Users", params={"filter": deep}), 400, "invalidFilter")
        assert_error(await client.get("/Users", params={"filter": 'userName eq "\u0000"'}), 400, "invalidFilter")
        many = await client.get("/Users", params={"count": 100000})
        assert many.status_code == 200
        assert many.json()["itemsPerPage"] <= 1000
        assert_error(await client.get("/Users", params={"startIndex": "x"}), 400, "invalidValue")
        assert_error(await client.get("/Users", params={"sortOrder": "sideways"}), 400, "invalidValue")
        unknown_extension = await client.get("/Users", params={"filter": 'urn:example:missing:1.0:User:x eq "1"'})
        assert unknown_extension.status_code == 200
        assert unknown_extension.json()["totalResults"] == 0


async def test_unknown_routes_and_methods_are_scim_errors(scim_env: ScimEnv) -> None:
    async with scim_env.client() as client:
        assert_error(await client.get("/Widgets"), 404)
        assert_error(await client.delete("/Users"), 405)
        assert_error(await client.post("/Users", content=b"<xml/>", headers={"Content-Type": "application/xml"}), 415)


async def test_per_provider_rate_limit_answers_429_with_retry_after(kube: Kube, scim_env: ScimEnv) -> None:
    name = f"limited-{uuid.uuid4().hex[:6]}"
    token = await make_provider(kube, scim_env.namespace, name, {"scim": {"rateLimitPerSecond": 2}})
    url = f"{scim_env.gateways[0].url}/providers/{name}/scim/v2"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(100):  # wait until the gateway knows the provider
            if (await client.get("/Users")).status_code != 401:
                break
            await asyncio.sleep(0.05)
        responses = [await client.get("/Users") for _ in range(12)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    assert_error(limited[0], 429, "tooMany")
    assert int(limited[0].headers["retry-after"]) >= 1
    assert all(r.status_code in (200, 429) for r in responses)
