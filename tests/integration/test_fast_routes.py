"""The fast write routes (scim_gateway.fast_routes) answer exactly as FastAPI's routes do.

The same requests, hostile ones included, go to one of scim_env's replicas (fast routes on, the
default) and to a gateway started with them off, against the same API server, operator running.
Status, body and the SCIM headers must match, once ids, times, versions and each run's own names
are masked."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx

from tests.conftest import ScimEnv

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TIMES = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z")
UUIDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VERSIONS = re.compile(r'W/"[^"]*"')
OBJECT_NAMES = re.compile(r"-[0-9a-f]{12}\b")  # a ScimUser's name ends with a hash of its userName
Answer = tuple[int, Any, dict[str, str]]


def _mask(value: Any, tag: str, base: str) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, tag, base) for k, v in value.items() if k not in ("created", "lastModified", "version")}
    if isinstance(value, list):
        return [_mask(v, tag, base) for v in value]
    if isinstance(value, str):
        value = value.replace(base, "BASE").replace(tag, "TAG")
        value = VERSIONS.sub("VERSION", TIMES.sub("TIME", value))
        return OBJECT_NAMES.sub("-HASH", UUIDS.sub("ID", value))
    return value


async def _sequence(base: str, token: str, provider: str, tag: str) -> list[Answer]:
    """Okta's writes and their failure modes, in order; every answer masked."""
    answers: list[Answer] = []
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def send(method: str, path: str, body: Any = None, **options: Any) -> httpx.Response:
            headers = {**auth, **options.pop("headers", {})}
            content = options.pop("content", None)
            if content is None and body is not None:
                content = json.dumps(body)
            response = await client.request(method, path, content=content, headers=headers, **options)
            try:
                payload = response.json() if response.content else None
            except ValueError:
                payload = response.text
            kept = {
                k: _mask(response.headers[k], tag, base)
                for k in ("content-type", "location", "www-authenticate", "retry-after")
                if k in response.headers
            }
            kept["etag"] = "present" if "etag" in response.headers else "absent"
            answers.append((response.status_code, _mask(payload, tag, base), kept))
            return response

        user = {
            "schemas": [USER, ENTERPRISE],
            "userName": f"{tag}-ada@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": f"{tag}-ada@example.com", "primary": True, "type": "work"}],
            "title": "Engineer",
            ENTERPRISE: {"department": "Research", "costCenter": "CC-1"},
            "active": True,
        }
        created = await send("POST", "/scim/v2/Users", user)
        user_id = created.json()["id"]
        await send("POST", "/scim/v2/Users", user)  # 409 uniqueness
        await send("POST", "/scim/v2/Users", user, headers={"Authorization": ""})
        await send("POST", "/scim/v2/Users", user, headers={"Authorization": "Bearer not-the-token"})
        await send("POST", "/scim/v2/Users", content='{"userName": ')
        await send("POST", "/scim/v2/Users", content="{", headers={"Authorization": ""})  # 401 before 400
        await send("POST", "/scim/v2/Users", content=json.dumps(user), headers={"Content-Type": "text/plain"})
        await send("POST", "/scim/v2/Users", content='{"userName": "a", "userName": "b"}')
        await send("POST", "/scim/v2/Users", [user])
        await send("POST", "/scim/v2/Users", {"schemas": [USER], "active": True})
        await send("POST", "/scim/v2/Users", {"schemas": [USER], "userName": "x" * (2 * 1024 * 1024)})
        await send("POST", f"/providers/{provider}/scim/v2/Users", {**user, "userName": f"{tag}-bo@example.com"})
        await send("POST", f"/providers/{'p' * 64}/scim/v2/Users", user)
        await send("POST", "/providers/nobody/scim/v2/Users", user)
        await send("PUT", f"/scim/v2/Users/{user_id}", {**user, "title": "Lead"})
        await send("PUT", f"/scim/v2/Users/{user_id}", user, headers={"If-Match": 'W/"1"'})
        await send("PUT", "/scim/v2/Users/no-such-id", user)
        replace = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
        await send("PATCH", f"/scim/v2//Users/{user_id}/", replace)
        await send("PATCH", f"/scim/v2/Users/{user_id}", {"schemas": [PATCH], "Operations": [{"op": "bogus"}]})
        await send("PATCH", f"/scim/v2/Users/{user_id}", {"Operations": [{"op": "replace", "value": {}}]})
        await send("PATCH", "/scim/v2/Users/no-such-id", replace)
        rename = {"op": "replace", "path": "userName", "value": f"{tag}-ada.l@example.com"}
        renamed = await send("PATCH", f"/scim/v2/Users/{user_id}", {"schemas": [PATCH], "Operations": [rename]})
        assert renamed.status_code == 200, renamed.text
        group = await send("POST", "/scim/v2/Groups", {"schemas": [GROUP], "displayName": f"{tag}-eng"})
        group_id = group.json()["id"]
        add = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}]}
        await send("PATCH", f"/scim/v2/Groups/{group_id}", add)
        remove = {"op": "remove", "path": f'members[value eq "{user_id}"]'}
        await send("PATCH", f"/scim/v2/Groups/{group_id}", {"schemas": [PATCH], "Operations": [remove]})
        await send("PATCH", f"/scim/v2/Groups/{group_id}?excludedAttributes=members", add)
        await send("PATCH", f"/scim/v2/Groups/{group_id}?count=abc", add)
        await send("PATCH", f"/scim/v2/Groups/{group_id}", {"schemas": [PATCH], "Operations": [{"op": "add"}]})
        await send("PATCH", f"/scim/v2/Groups/{group_id}", add, headers={"If-Match": 'W/"0"'})
        await send("PATCH", "/scim/v2/Groups/no-such-id", add)
    return answers


async def test_fast_routes_answer_as_fastapi_does(scim_env: ScimEnv) -> None:
    async with scim_env.extra_gateway(KUBESCIM_FAST_WRITE_ROUTES="false") as plain:
        fast = await _sequence(scim_env.gateways[0].url, scim_env.token, scim_env.provider, f"f{uuid.uuid4().hex[:6]}")
        slow = await _sequence(plain.url, scim_env.token, scim_env.provider, f"s{uuid.uuid4().hex[:6]}")
    assert [a[0] for a in fast] == [a[0] for a in slow]
    for number, (got, expected) in enumerate(zip(fast, slow, strict=True)):
        assert got == expected, f"request {number}: fast {got} != FastAPI {expected}"
    statuses = {a[0] for a in fast}
    assert {200, 201, 400, 401, 404, 409, 412, 413, 415} <= statuses  # the sequence reaches every outcome
