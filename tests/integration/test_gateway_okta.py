"""Replays of Okta's SCIM client (OKTA.md §1) and Okta's "SCIM 2.0 SPEC Test" against two real gateway
processes backed by the real API server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from kubescim.constants import ENTERPRISE_USER_URN, SCIM_USERS
from kubescim.kube import Kube
from tests.conftest import ScimEnv

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
OKTA_HEADERS = {
    "User-Agent": "Okta SCIM Client 1.0.0",
    "Accept": "application/scim+json",
    "Content-Type": "application/scim+json; charset=utf-8",
}


def okta_user(user_name: str, okta_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """The body Okta POSTs to create a user."""
    return {
        "schemas": [USER_URN],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Ada Lovelace",
        "locale": "en-US",
        "externalId": okta_id or f"00u{uuid.uuid4().hex[:17]}",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
        **extra,
    }


def unique_user_name() -> str:
    return f"ada.{uuid.uuid4().hex[:8]}@example.com"


def assert_scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR_URN]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type


async def test_test_api_credentials_on_an_empty_provider(scim_env: ScimEnv) -> None:
    async with scim_env.client(provider=scim_env.other_provider, token=scim_env.other_token) as client:
        users = await client.get("/Users", params={"startIndex": 1, "count": 2}, headers=OKTA_HEADERS)
        groups = await client.get("/Groups", params={"startIndex": 1, "count": 100}, headers=OKTA_HEADERS)
    for response in (users, groups):
        assert response.status_code == 200
        assert response.json() == {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 0,
            "itemsPerPage": 0,
            "startIndex": 1,
            "Resources": [],
        }


async def test_create_user_exactly_as_okta_does(scim_env: ScimEnv) -> None:
    user_name = unique_user_name()
    async with scim_env.client() as client:
        # Okta checks first, with spaces encoded as '+' or '%20'.
        check = await client.get(f'/Users?filter=userName+eq+"{user_name}"&startIndex=1&count=100')
        assert check.status_code == 200
        assert check.json()["totalResults"] == 0
        created = await client.post("/Users", json=okta_user(user_name), headers=OKTA_HEADERS)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["userName"] == user_name
        assert body["active"] is True
        assert "password" not in body
        assert body["meta"]["resourceType"] == "User"
        assert created.headers["location"] == body["meta"]["location"]
        assert body["meta"]["location"].endswith(f"/scim/v2/Users/{body['id']}")
        # The pre-create check now finds it, whatever the case.
        found = await client.get("/Users", params={"filter": f'userName eq "{user_name.upper()}"'})
        assert [r["id"] for r in found.json()["Resources"]] == [body["id"]]
        # A duplicate POST is a SCIM 409 uniqueness error.
        duplicate = await client.post("/Users", json=okta_user(user_name.upper()))
        assert_scim_error(duplicate, 409, "uniqueness")


async def test_profile_put_with_enterprise_and_custom_attribute(scim_env: ScimEnv, kube: Kube) -> None:
    user_name = unique_user_name()
    async with scim_env.client() as client:
        created = (await client.post("/Users", json=okta_user(user_name))).json()
        current = (await client.get(f"/Users/{created['id']}")).json()
        # Okta PUTs the whole object back, with id, meta, groups, password, and the extension (its URN
        # not listed in schemas) carrying a custom attribute declared in Okta's Profile Editor.
        put_body = {
            **current,
            "title": "Analyst",
            "password": "s3cret-placeholder",
            ENTERPRISE_USER_URN: {"department": "Engineering", "costCenter": "CC-7", "employeeID": "E-1815"},
        }
        updated = await client.put(f"/Users/{created['id']}", json=put_body)
        assert updated.status_code == 200, updated.text
        body = updated.json()
        assert body["title"] == "Analyst"
        assert body[ENTERPRISE_USER_URN]["employeeID"] == "E-1815"
        assert ENTERPRISE_USER_URN in body["schemas"]
        assert "password" not in body
        assert body["meta"]["version"] != created["meta"]["version"]
    stored, _ = await kube.list(SCIM_USERS, scim_env.namespace)
    mine = next(o for o in stored if o["spec"]["userName"] == user_name)
    assert mine["spec"]["extensions"][ENTERPRISE_USER_URN]["employeeID"] == "E-1815"
    assert "password" not in str(mine)


async def test_deactivate_and_reactivate(scim_env: ScimEnv) -> None:
    async with scim_env.client() as client:
        created = (await client.post("/Users", json=okta_user(unique_user_name()))).json()
        for active in (False, True):
            response = await client.patch(
                f"/Users/{created['id']}",
                json={"schemas": [PATCH_URN], "Operations": [{"op": "replace", "value": {"active": active}}]},
            )
            assert response.status_code == 200, response.text
            assert response.json()["active"] is active
            assert (await client.get(f"/Users/{created['id']}")).json()["active"] is active


async def test_push_group_rename_and_membership(scim_env: ScimEnv) -> None:
    async with scim_env.client() as client:
        users = [(await client.post("/Users", json=okta_user(unique_user_name()))).json() for _ in range(3)]
        name = f"Engineering {uuid.uuid4().hex[:6]}"
        check = await client.get("/Groups", params={"filter": f'displayName eq "{name}"'})
        assert check.json()["totalResults"] == 0
        group = await client.post("/Groups", json={"schemas": [GROUP_URN], "displayName": name, "members": []})
        assert group.status_code == 201, group.text
        gid = group.json()["id"]
        assert group.json()["members"] == []

        # Okta's membership PATCH: rename (with the group's own id) + add, as one request.
        response = await client.patch(
            f"/Groups/{gid}",
            json={
                "schemas": [PATCH_URN],
                "Operations": [
                    {"op": "replace", "value": {"id": gid, "displayName": name + " Team"}},
                    {
                        "op": "add",
                        "path": "members",
                        "value": [
                            {"value": users[0]["id"], "display": users[0]["userName"]},
                            {"value": users[1]["id"], "display": users[1]["userName"]},
                        ],
                    },
                ],
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["displayName"] == name + " Team"
        assert {m["value"] for m in response.json()["members"]} == {users[0]["id"], users[1]["id"]}

        # Mixed remove + add in one PATCH.
        response = await client.patch(
            f"/Groups/{gid}",
            json={
                "schemas": [PATCH_URN],
                "Operations": [
                    {"op": "remove", "path": f'members[value eq "{users[0]["id"]}"]'},
                    {"op": "add", "path": "members", "value": [{"value": users[2]["id"]}]},
                ],
            },
        )
        assert {m["value"] for m in response.json()["members"]} == {users[1]["id"], users[2]["id"]}

        # User groups reflect membership.
        user = (await client.get(f"/Users/{users[2]['id']}")).json()
        assert [g["value"] for g in user["groups"]] == [gid]
        assert user["groups"][0]["display"] == name + " Team"

        # A full push replaces the members.
        response = await client.patch(
            f"/Groups/{gid}",
            json={
                "schemas": [PATCH_URN],
                "Operations": [
                    {"op": "replace", "path": "members", "value": [{"value": users[0]["id"]}]},
                ],
            },
        )
        assert {m["value"] for m in response.json()["members"]} == {users[0]["id"]}

        excluded = await client.get(f"/Groups/{gid}", params={"excludedAttributes": "members"})
        assert "members" not in excluded.json()
        assert excluded.json()["displayName"] == name + " Team"

        # A PATCH's response is projected like a read (RFC 7644 section 3.9); the change is whole.
        response = await client.patch(
            f"/Groups/{gid}",
            params={"excludedAttributes": "members"},
            json={
                "schemas": [PATCH_URN],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": users[1]["id"]}]}],
            },
        )
        assert response.status_code == 200, response.text
        assert "members" not in response.json()
        assert response.json()["displayName"] == name + " Team"
        assert response.headers["ETag"] == response.json()["meta"]["version"]
        members = (await client.get(f"/Groups/{gid}")).json()["members"]
        assert {m["value"] for m in members} == {users[0]["id"], users[1]["id"]}
        response = await client.patch(
            f"/Groups/{gid}",
            params={"attributes": "displayName"},
            json={
                "schemas": [PATCH_URN],
                "Operations": [{"op": "remove", "path": f'members[value eq "{users[1]["id"]}"]'}],
            },
        )
        assert set(response.json()) == {"schemas", "id", "displayName"}
        assert_scim_error(
            await client.patch(
                f"/Groups/{gid}",
                params={"attributes": "1bad"},
                json={
                    "schemas": [PATCH_URN],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": users[2]["id"]}]}],
                },
            ),
            400,
            "invalidPath",
        )
        members = (await client.get(f"/Groups/{gid}")).json()["members"]
        assert {m["value"] for m in members} == {users[0]["id"]}  # the refused PATCH moved nobody

        # Deleting the group never deletes its users.
        assert (await client.delete(f"/Groups/{gid}")).status_code == 204
        assert_scim_error(await client.get(f"/Groups/{gid}"), 404)
        user = await client.get(f"/Users/{users[0]['id']}")
        assert user.status_code == 200
        assert user.json()["groups"] == []


async def test_import_paging_is_stable_with_integer_counts(scim_env: ScimEnv) -> None:
    async with scim_env.client(provider=scim_env.other_provider, token=scim_env.other_token) as client:
        ids = [(await client.post("/Users", json=okta_user(unique_user_name()))).json()["id"] for _ in range(5)]
        pages = []
        for start in (1, 3, 5):
            page = (await client.get("/Users", params={"startIndex": start, "count": 2})).json()
            assert isinstance(page["totalResults"], int)
            assert page["startIndex"] == start
            assert page["itemsPerPage"] == len(page["Resources"])
            pages.extend(r["id"] for r in page["Resources"])
        listed = (await client.get("/Users", params={"count": 100})).json()
        assert listed["totalResults"] >= 5
        assert pages == [r["id"] for r in listed["Resources"]][:5]
        assert set(ids) <= {r["id"] for r in listed["Resources"]}
        for user_id in ids:
            assert (await client.delete(f"/Users/{user_id}")).status_code == 204


async def test_okta_spec_test_errors(scim_env: ScimEnv) -> None:
    async with scim_env.client() as client:
        assert_scim_error(await client.get("/Users/010101001010101011001010101011"), 404)
        assert_scim_error(await client.get("/Groups/010101001010101011001010101011"), 404)
    async with httpx.AsyncClient(base_url=scim_env.gateways[0].scim_url) as anonymous:
        assert_scim_error(await anonymous.get("/Users", headers={"Authorization": "non-token"}), 401)
        assert_scim_error(await anonymous.get("/Users"), 401)
    # Header Auth sends whatever the admin typed: with or without "Bearer ".
    async with httpx.AsyncClient(base_url=scim_env.gateways[0].scim_url) as raw:
        ok = await raw.get("/Users", params={"count": 1}, headers={"Authorization": scim_env.token})
        assert ok.status_code == 200


async def test_bad_input_gets_precise_scim_errors(scim_env: ScimEnv) -> None:
    async with scim_env.client() as client:
        assert_scim_error(await client.get("/Users", params={"filter": "userName eq"}), 400, "invalidFilter")
        malformed = await client.post("/Users", content=b'{"userName": ')
        assert_scim_error(malformed, 400, "invalidSyntax")
        duplicate_keys = await client.post("/Users", content=b'{"userName": "a@b", "userName": "c@d"}')
        assert_scim_error(duplicate_keys, 400, "invalidSyntax")
        assert_scim_error(await client.post("/Users", json={"schemas": [USER_URN]}), 400, "invalidValue")
        assert_scim_error(await client.post("/Users", json={"userName": 7}), 400, "invalidValue")
        too_big = await client.post("/Users", content=b'{"userName": "' + b"x" * (1024 * 1024 + 10) + b'"}')
        assert_scim_error(too_big, 413, "tooMany")
        assert_scim_error(await client.get("/Users", params={"count": "ten"}), 400, "invalidValue")
        created = (await client.post("/Users", json=okta_user(unique_user_name()))).json()
        bad_patch = await client.patch(f"/Users/{created['id']}", json={"Operations": [{"op": "jump"}]})
        assert_scim_error(bad_patch, 400, "invalidSyntax")
        stale = await client.put(f"/Users/{created['id']}", json=created, headers={"If-Match": 'W/"1"'})
        assert_scim_error(stale, 412)


async def test_reads_see_writes_from_the_other_replica(scim_env: ScimEnv) -> None:
    async with scim_env.client(0) as first, scim_env.client(1) as second:
        for _ in range(5):
            user_name = unique_user_name()
            created = (await first.post("/Users", json=okta_user(user_name))).json()
            by_filter = await second.get("/Users", params={"filter": f'userName eq "{user_name}"'})
            assert [r["id"] for r in by_filter.json()["Resources"]] == [created["id"]]
            by_id = await second.get(f"/Users/{created['id']}")
            assert by_id.status_code == 200


async def test_concurrent_posts_of_one_user_name_across_replicas(scim_env: ScimEnv) -> None:
    user_name = unique_user_name()
    clients = [scim_env.client(i % 2) for i in range(12)]
    try:
        responses = await asyncio.gather(
            *(
                c.post("/Users", json=okta_user(user_name if i % 2 else user_name.upper()))
                for i, c in enumerate(clients)
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 11
    for response in responses:
        if response.status_code == 409:
            assert_scim_error(response, 409, "uniqueness")


async def test_concurrent_member_adds_lose_nothing(scim_env: ScimEnv) -> None:
    """Both replicas PATCH one group at once (their group bumps contend for its members revision):
    every PATCH succeeds, and both replicas then read exactly the members that were left."""
    async with scim_env.client(0) as first, scim_env.client(1) as second:
        users = await asyncio.gather(*(first.post("/Users", json=okta_user(unique_user_name())) for _ in range(40)))
        ids = [u.json()["id"] for u in users]
        gid = (await first.post("/Groups", json={"displayName": f"g-{uuid.uuid4().hex[:6]}"})).json()["id"]

        async def change(op: str, user_ids: list[str]) -> None:
            def operation(user_id: str) -> dict[str, Any]:
                if op == "add":
                    return {"op": "add", "path": "members", "value": [{"value": user_id}]}
                return {"op": "remove", "path": f'members[value eq "{user_id}"]'}

            responses = await asyncio.gather(
                *(
                    (first if i % 2 else second).patch(
                        f"/Groups/{gid}", json={"schemas": [PATCH_URN], "Operations": [operation(user_id)]}
                    )
                    for i, user_id in enumerate(user_ids)
                )
            )
            assert [r.status_code for r in responses] == [200] * len(user_ids), [r.text for r in responses]

        await change("add", ids)
        for client in (first, second):
            members = (await client.get(f"/Groups/{gid}")).json()["members"]
            assert {m["value"] for m in members} == set(ids)
        await change("remove", ids[::2])
        for client in (first, second):
            members = (await client.get(f"/Groups/{gid}")).json()["members"]
            assert {m["value"] for m in members} == set(ids[1::2])


async def test_concurrent_patches_of_one_user_across_replicas_lose_nothing(scim_env: ScimEnv) -> None:
    """Eight PATCHes of one user at once, through both replicas, each replacing its own attribute: each
    re-reads and re-applies when another one's write lands first, so none is refused as invalid (a
    failed generation guard once surfaced as a 400) and every change answered 200 is in the user."""
    attributes = ["title", "displayName", "nickName", "profileUrl", "userType", "preferredLanguage", "locale"]
    async with scim_env.client(0) as first, scim_env.client(1) as second:
        user = (await first.post("/Users", json=okta_user(unique_user_name()))).json()["id"]
        values = {a: f"https://example.com/{a}" if a == "profileUrl" else f"v-{a}" for a in attributes}
        values["locale"], values["preferredLanguage"] = "en-US", "en"
        responses = await asyncio.gather(
            *(
                (first if i % 2 else second).patch(
                    f"/Users/{user}",
                    json={"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": a, "value": values[a]}]},
                )
                for i, a in enumerate(attributes)
            )
        )
        for response in responses:
            if response.status_code != 200:  # only a retry-worthy 409 may remain, after 4 rounds
                assert_scim_error(response, 409, "invalidValue")
        applied = [a for a, r in zip(attributes, responses, strict=True) if r.status_code == 200]
        assert len(applied) >= len(attributes) // 2, [r.text for r in responses]
        final = (await second.get(f"/Users/{user}")).json()
        assert {a: final.get(a) for a in applied} == {a: values[a] for a in applied}


async def test_a_base_url_entered_with_a_trailing_slash_works(scim_env: ScimEnv) -> None:
    """Okta appends `/Users` to the base URL as typed: `https://host/scim/v2/` gives `//Users`."""
    async with httpx.AsyncClient(
        base_url=scim_env.gateways[0].url, headers={"Authorization": f"Bearer {scim_env.token}", **OKTA_HEADERS}
    ) as client:
        for prefix in ("/scim/v2/", f"/providers/{scim_env.provider}/scim/v2/"):
            users = await client.get(f"{prefix}/Users", params={"startIndex": 1, "count": 2})
            assert users.status_code == 200, users.text
            assert users.json()["itemsPerPage"] == 2
            groups = await client.get(f"{prefix}/Groups", params={"startIndex": 1, "count": 100})
            assert groups.status_code == 200, groups.text
            config = await client.get(f"{prefix}/ServiceProviderConfig")
            assert config.json()["patch"]["supported"] is True
            created = await client.post(f"{prefix}/Users", json=okta_user(unique_user_name()))
            assert created.status_code == 201, created.text
            assert "//" not in created.json()["meta"]["location"].split("://", 1)[1]


async def test_schemas_describe_the_custom_attributes_users_carry(scim_env: ScimEnv) -> None:
    """Okta sends employeeID (enterprise namespace) and an org's own extension undeclared: /Schemas
    lists them, typed, and the User resource type names the extension, so validating clients accept
    the resources (scim2-tester rejected them with "Extra inputs are not permitted")."""
    from tests.conftest import CUSTOM_URN

    async with scim_env.client(1) as client:
        schemas = {s["id"]: s for s in (await client.get("/Schemas")).json()["Resources"]}
        enterprise = {a["name"]: a["type"] for a in schemas[ENTERPRISE_USER_URN]["attributes"]}
        assert enterprise["employeeID"] == "string"
        assert enterprise["department"] == "string"
        custom = {a["name"]: a["type"] for a in schemas[CUSTOM_URN]["attributes"]}
        assert custom == {"badgeNumber": "string", "clearanceLevel": "integer", "onCall": "boolean"}
        single = (await client.get(f"/Schemas/{CUSTOM_URN}")).json()
        assert single["id"] == CUSTOM_URN
        user_type = (await client.get("/ResourceTypes/User")).json()
        assert {e["schema"] for e in user_type["schemaExtensions"]} == {ENTERPRISE_USER_URN, CUSTOM_URN}
        # Typed filters on a learned attribute.
        found = await client.get("/Users", params={"filter": f"{CUSTOM_URN}:clearanceLevel gt 2"})
        assert [u["userName"] for u in found.json()["Resources"]] == ["custom.attributes@example.com"]
    async with scim_env.client(provider=scim_env.other_provider, token=scim_env.other_token) as empty:
        ids = {s["id"] for s in (await empty.get("/Schemas")).json()["Resources"]}
        assert CUSTOM_URN not in ids  # learned per provider


async def test_member_changes_on_one_replica_are_read_and_built_on_by_the_other(scim_env: ScimEnv) -> None:
    """A 2xx to a member change on one replica: the other replica's very next GET shows it, and its
    very next PATCH computes from it (a stale cache once lost such an add: the member looked present)."""
    problems = []
    async with scim_env.client(0) as first, scim_env.client(1) as second:
        user = (await first.post("/Users", json={"userName": f"m-{uuid.uuid4().hex[:8]}@example.com"})).json()["id"]
        group = (await first.post("/Groups", json={"displayName": f"g-{uuid.uuid4().hex[:8]}"})).json()["id"]
        add = {"schemas": [PATCH_URN], "Operations": [{"op": "add", "path": "members", "value": [{"value": user}]}]}
        remove = {"schemas": [PATCH_URN], "Operations": [{"op": "remove", "path": "members"}]}
        for round_ in range(30):
            writer, reader = (first, second) if round_ % 2 == 0 else (second, first)
            assert (await writer.patch(f"/Groups/{group}", json=add)).status_code == 200
            if [m["value"] for m in (await reader.get(f"/Groups/{group}")).json().get("members", [])] != [user]:
                problems.append(f"round {round_}: add not seen by the other replica")
            assert (await writer.patch(f"/Groups/{group}", json=remove)).status_code == 200
            # The other replica adds right away: it must not think the user is still a member.
            assert (await reader.patch(f"/Groups/{group}", json=add)).status_code == 200
            if [m["value"] for m in (await writer.get(f"/Groups/{group}")).json().get("members", [])] != [user]:
                problems.append(f"round {round_}: the other replica's add was lost")
            assert (await reader.patch(f"/Groups/{group}", json=remove)).status_code == 200
            if (await writer.get(f"/Groups/{group}")).json().get("members", []) != []:
                problems.append(f"round {round_}: remove not seen")
        await first.delete(f"/Groups/{group}")
        await first.delete(f"/Users/{user}")
    assert problems == []


async def test_a_gateway_set_to_answer_group_patches_204_still_writes_them_whole(scim_env: ScimEnv) -> None:
    """KUBESCIM_GROUP_PATCH_NO_CONTENT (the chart's gateway.groupPatchNoContent): a group PATCH is
    answered 204 with the group's ETag and Location, once the change is in etcd; errors stay SCIM
    errors. The other replicas, answering 200, read the change."""
    async with scim_env.extra_gateway(KUBESCIM_GROUP_PATCH_NO_CONTENT="true") as gateway:
        headers = {"Authorization": f"Bearer {scim_env.token}", **OKTA_HEADERS}
        async with (
            httpx.AsyncClient(base_url=gateway.url + "/scim/v2", headers=headers, timeout=30) as quiet,
            scim_env.client() as client,
        ):
            users = [(await client.post("/Users", json=okta_user(unique_user_name()))).json() for _ in range(2)]
            created = await client.post(
                "/Groups", json={"schemas": [GROUP_URN], "displayName": f"g-{uuid.uuid4().hex[:6]}"}
            )
            gid = created.json()["id"]
            response = await quiet.patch(
                f"/Groups/{gid}",
                json={
                    "schemas": [PATCH_URN],
                    "Operations": [
                        {"op": "replace", "value": {"id": gid, "displayName": "Renamed"}},
                        {"op": "add", "path": "members", "value": [{"value": u["id"]} for u in users]},
                    ],
                },
            )
            assert response.status_code == 204, response.text
            assert response.content == b""
            assert response.headers["Location"].endswith(f"/Groups/{gid}")
            group = (await client.get(f"/Groups/{gid}")).json()
            assert response.headers["ETag"] == group["meta"]["version"]
            assert group["displayName"] == "Renamed"
            assert {m["value"] for m in group["members"]} == {u["id"] for u in users}

            rename = [{"op": "replace", "path": "displayName", "value": "x"}]
            bad = await quiet.patch(
                f"/Groups/{gid}", json={"schemas": [PATCH_URN], "Operations": [{"op": "jump", "path": "members"}]}
            )
            assert_scim_error(bad, 400, "invalidSyntax")
            assert_scim_error(
                await quiet.patch(f"/Groups/{uuid.uuid4().hex}", json={"schemas": [PATCH_URN], "Operations": rename}),
                404,
            )
            assert (await quiet.get(f"/Groups/{gid}")).status_code == 200  # reads still answer 200
