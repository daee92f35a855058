"""A replay of Microsoft's published SCIM validation requests (the Postman collection of the
AzureAD/SCIMReferenceCode repository: endpoint, user, group, complex-attribute and "garbage" tests),
against the deployed provider — operator running, the org pushed — three runs in a row.

The requests are the collection's shapes (capitalised `Primary`, `Department` and `Manager.Value`,
the string "True", addresses full of nulls, meta with seven fractional digits, `/Users/?filter=`,
members as bare strings, `name` on an operation), written here in our own words and with names
unique per run, so the populated provider's own users do not disturb the counts. Where the
collection expects pre-RFC behaviour, what kubescim does instead is asserted and says why:
- a PATCH answers 200 with the resource (RFC 7644 §3.5.2 allows 200 or 204; Entra accepts both);
- a filter with an unquoted value (`userName sw O`) is 400 invalidFilter (RFC 7644 §3.4.2.2:
  a compValue is a JSON string, number, boolean or null); the quoted form is replayed;
- a member's `display` sent by the client is not stored (it is read-only, RFC 7643 §4.2), so the
  check for "new User" in the group is a check for the member's id.
Requests go to both replicas. A request addressed to one resource reads the API server, so it sees
a write made through the other replica at once; a list or filter is served from the replica's
watch-fed cache, so the replay lists on the replica that wrote (read-your-writes there is exact; on
another replica a list trails the write by the watch's delay, milliseconds).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from kubescim.constants import ENTERPRISE_USER_URN
from tests.conftest import ScimEnv

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def person(user_name: str, family: str = "Leenay", **extra: Any) -> dict[str, Any]:
    return {
        "userName": user_name,
        "active": True,
        "displayName": f"{user_name} display",
        "schemas": [USER_URN],
        "externalId": str(uuid.uuid4()),
        "name": {"formatted": f"Ryan {family}", "familyName": family, "givenName": "Ryan"},
        "emails": [
            {"Primary": True, "type": "work", "value": f"{user_name}@work.example.com"},
            {"Primary": False, "type": "home", "value": f"{user_name}@home.example.org"},
        ],
        **extra,
    }


def messy(user_name: str, family: str = "Employee", *, country: str = "Bermuda", **extra: Any) -> dict[str, Any]:
    """The collection's 'garbage' user: nulls in addresses, meta sent by the client, empty roles."""
    return {
        "userName": user_name,
        "active": True,
        "addresses": [
            {
                "country": country,
                "formatted": "1 Main Street\nSpringfield",
                "locality": "Springfield",
                "postalCode": "99265",
                "region": "Montana",
                "streetAddress": "1 Main Street",
                "type": "work",
                "primary": False,
            },
            {"country": None, "formatted": "2 Side Road", "locality": None, "postalCode": None, "type": "other"},
        ],
        "displayName": "Kim Baker",
        "emails": [
            {"type": "work", "primary": True, "value": f"{user_name}@example.com"},
            {"type": "other", "primary": False, "value": f"{user_name}@example.org"},
        ],
        "meta": {
            "created": "2019-09-18T18:15:26.5788954+00:00",
            "lastModified": "2019-09-18T18:15:26.5788976+00:00",
            "resourceType": "User",
        },
        "name": {"formatted": "Dan M", "familyName": family, "givenName": "Darl", "honorificPrefix": None},
        "phoneNumbers": [
            {"type": "fax", "primary": False, "value": "312-320-0500"},
            {"type": "work", "primary": True, "value": "312-320-0932"},
        ],
        "preferredLanguage": "xh",
        "roles": [],
        "title": "Site engineer",
        "externalId": str(uuid.uuid4()),
        "schemas": [USER_URN],
        **extra,
    }


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_URN], "Operations": list(operations)}


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return dict(response.json()) if response.content else {}


async def _endpoints(scim: httpx.AsyncClient) -> None:
    ok(await scim.get("/Users"))
    ok(await scim.get("/Groups"))
    assert ok(await scim.get("/ResourceTypes"))["Resources"][0]["endpoint"] == "/Users"
    assert ok(await scim.get("/ServiceProviderConfig"))["patch"]["supported"] is True
    schemas = await scim.get("/Schemas")
    ok(schemas)
    assert "User Account" in schemas.text


async def _users(scim: httpx.AsyncClient, other: httpx.AsyncClient, tag: str) -> None:
    first = ok(await scim.post("/Users", json=person(f"{tag}name123")), 201)
    enterprise_body = person(f"{tag}name222")
    enterprise_body["schemas"] = [ENTERPRISE_USER_URN, USER_URN]
    enterprise_body[ENTERPRISE_USER_URN] = {"Department": "bob", "Manager": {"Value": "SuzzyQ"}}
    second = ok(await scim.post("/Users", json=enterprise_body), 201)
    assert second[ENTERPRISE_USER_URN] == {"department": "bob", "manager": {"value": "SuzzyQ"}}
    assert ok(await other.get(f"/Users/{first['id']}"))["id"] == first["id"]
    assert ok(await other.get(f"/Users/{second['id']}"))["id"] == second["id"]
    listed = await scim.get("/Users", params={"attributes": "userName,emails", "count": 1000})
    ok(listed)
    assert first["id"] in listed.text
    # The collection's trailing slash, and its capitalised attribute name.
    filtered = await scim.get("/Users/", params={"filter": f'DisplayName eq "{tag}name123 display"'})
    assert [r["id"] for r in ok(filtered)["Resources"]] == [first["id"]]
    ok(
        await scim.patch(
            f"/Users/{first['id']}", json=patch_op({"op": "replace", "path": "userName", "value": f"{tag}ryan3"})
        )
    )
    assert ok(await other.get(f"/Users/{first['id']}"))["userName"] == f"{tag}ryan3"
    replacement = person(f"{tag}namereplace2", id=second["id"])
    replacement["name"]["formatted"] = "NewName"
    ok(await other.put(f"/Users/{second['id']}", json=replacement))
    assert ok(await scim.get(f"/Users/{second['id']}"))["name"]["formatted"] == "NewName"
    for user in (first, second):
        ok(await scim.delete(f"/Users/{user['id']}"), 204)
        assert (await other.get(f"/Users/{user['id']}")).status_code == 404


async def _groups(scim: httpx.AsyncClient, other: httpx.AsyncClient, tag: str) -> None:
    group1 = ok(await scim.post("/Groups", json={"externalId": str(uuid.uuid4()), "schemas": [GROUP_URN], "displayName": f"{tag}Group1", "members": []}), 201)  # fmt: skip
    user3 = ok(await scim.post("/Users", json=person(f"{tag}name333")), 201)
    user4 = ok(await scim.post("/Users", json=person(f"{tag}name444")), 201)
    group2 = ok(
        await scim.post(
            "/Groups",
            json={
                "schemas": [GROUP_URN],
                "displayName": f"{tag}Group2",
                "members": [{"value": user3["id"], "display": "VP"}],
            },
        ),
        201,
    )
    ok(await other.get("/Groups"))
    group3 = ok(
        await scim.post("/Groups", json={"schemas": [GROUP_URN], "displayName": f"{tag}Group3", "members": []}), 201
    )
    members = [{"value": user3["id"], "display": "VP"}, {"value": user4["id"], "display": "SenorVP"}]
    put = {"schemas": [GROUP_URN], "id": group3["id"], "displayName": f"{tag}putName", "members": members}
    ok(await other.put(f"/Groups/{group3['id']}", json=put))
    validated = await scim.get(f"/Groups/{group3['id']}")
    assert ok(validated)["id"] == group3["id"]
    assert {m["value"] for m in validated.json()["members"]} == {user3["id"], user4["id"]}
    add = patch_op({"name": "addMember", "op": "add", "path": "members", "value": [{"displayName": "new User", "value": user4["id"]}]})  # fmt: skip
    ok(await scim.patch(f"/Groups/{group1['id']}", json=add))
    ok(
        await scim.patch(
            f"/Groups/{group1['id']}", json=patch_op({"op": "remove", "path": f'members[value eq "{user4["id"]}"]'})
        )
    )
    ok(await other.patch(f"/Groups/{group1['id']}", json=add))
    assert [m["value"] for m in ok(await scim.get(f"/Groups/{group1['id']}"))["members"]] == [user4["id"]]
    ok(await scim.patch(f"/Groups/{group1['id']}", json=patch_op({"op": "remove", "path": "members"})))
    assert ok(await other.get(f"/Groups/{group1['id']}"))["members"] == []
    for path in (
        f"/Users/{user3['id']}",
        f"/Users/{user4['id']}",
        *(f"/Groups/{g['id']}" for g in (group1, group2, group3)),
    ):
        ok(await scim.delete(path), 204)
        assert (await other.get(path)).status_code == 404


async def _complex_attributes(scim: httpx.AsyncClient, tag: str) -> None:
    one = person(f"{tag}name111")
    one["emails"][0]["value"] = f"{tag}emailName357"
    users = [
        ok(await scim.post("/Users", json=one), 201),
        ok(await scim.post("/Users", json=person(f"{tag}name2x")), 201),
    ]
    for attributes in ('emails[type eq "work"]', f'emails[value eq "{tag}emailName357"]'):
        listed = await scim.get("/Users", params={"attributes": attributes, "count": 1000})
        ok(listed)
        assert f"{tag}emailName357" in listed.text
    for user in users:
        ok(await scim.delete(f"/Users/{user['id']}"), 204)


async def _garbage(scim: httpx.AsyncClient, other: httpx.AsyncClient, tag: str) -> None:
    omalley = ok(await scim.post("/Users", json=messy(f"{tag}OMalley", "OMalley")), 201)
    assert (omalley["userName"], omalley["active"]) == (f"{tag}OMalley", True)
    emp1 = ok(await scim.post("/Users", json=messy(f"{tag}emp1", active="True")), 201)
    assert emp1["active"] is True
    mine = await scim.get("/Users", params={"filter": f'userName sw "{tag}"'})
    assert ok(mine)["totalResults"] == 2
    created = [omalley, emp1]
    created += [ok(await scim.post("/Users", json=messy(f"{tag}{n}")), 201) for n in ("emp2", "emp3")]
    no_name = messy("x")
    del no_name["userName"]
    assert (await scim.post("/Users", json=no_name)).status_code == 400
    junk = b'{"acve": tre, "adadfdresses": [{"coudftry": "Beruda", "locality": null, les": []}'
    assert (await scim.post("/Users", content=junk, headers={"Content-Type": "application/json"})).status_code == 400
    for _ in range(2):
        duplicate = await other.post("/Users", json=messy(f"{tag}emp3"))
        assert duplicate.status_code == 409
        assert "detail" in duplicate.json()
    typo = messy(f"{tag}OMalley", "OMalley", active=False, id=omalley["id"])
    typo["userame"] = typo.pop("userName")
    assert (await scim.put(f"/Users/{omalley['id']}", json=typo)).status_code == 400
    misspelled = messy(f"{tag}OMalley", "OMalley", active=False, id=omalley["id"])
    misspelled["adreses"] = misspelled.pop("addresses")
    replaced = await scim.put(f"/Users/{omalley['id']}", json=misspelled)
    assert "addresses" not in ok(replaced)
    assert "Addresses" not in replaced.text
    enterprise = messy(f"{tag}enterprise")
    enterprise[ENTERPRISE_USER_URN] = {"Department": "some department"}
    enterprise["schemas"] = [USER_URN, ENTERPRISE_USER_URN]
    created.append(ok(await scim.post("/Users", json=enterprise), 201))
    ok(
        await scim.patch(
            f"/Users/{omalley['id']}",
            json=patch_op({"op": "Replace", "path": "userName", "value": f"{tag}newusername"}),
        )
    )
    ok(await other.patch(f"/Users/{omalley['id']}", json=patch_op({"op": "Replace", "path": "active", "value": False})))
    renamed = ok(await scim.get(f"/Users/{omalley['id']}"))
    assert (renamed["userName"], renamed["active"]) == (f"{tag}newusername", False)
    again = await other.put(
        f"/Users/{omalley['id']}",
        json=messy(f"{tag}OMalley", "OMalley", active=False, country="Germany", id=omalley["id"]),
    )
    assert (ok(again)["userName"], again.json()["active"]) == (f"{tag}OMalley", False)
    assert "Germany" in again.text
    page = ok(await scim.get("/Users", params={"startIndex": 1, "count": 2}))
    assert page["itemsPerPage"] == 2
    assert page["totalResults"] >= 5
    projected = ok(await scim.get("/Users", params={"attributes": "userName,emails", "filter": f'userName sw "{tag}"'}))
    assert projected["totalResults"] == 5
    family = (
        f'name.FamilyName eq "Employee" and (emails.Value co "example.com" or emails.Value co "example.org") '
        f'and userName sw "{tag}"'
    )
    assert ok(await scim.get("/Users", params={"filter": family}))["totalResults"] == 4
    assert ok(await scim.get("/Users", params={"filter": f'userName sw "{tag}O"'}))["totalResults"] == 1
    since = f'meta.Created gt "2015-10-10T14:38:21.8617979-07:00" and userName sw "{tag}"'
    assert ok(await scim.get("/Users", params={"filter": since}))["totalResults"] == 5
    unquoted = await scim.get("/Users", params={"filter": "userName sw O"})
    assert unquoted.status_code == 400
    assert unquoted.json()["scimType"] == "invalidFilter"

    group = ok(await scim.post("/Groups", json={"displayName": f"{tag}Group 1", "externalId": str(uuid.uuid4()), "schemas": [GROUP_URN]}), 201)  # fmt: skip
    for bare in ("string id 1", "string id 2"):  # not users: ignored, as any unknown member id
        ok(
            await scim.patch(
                f"/Groups/{group['id']}",
                json={"id": group["id"], **patch_op({"op": "add", "path": "members", "value": bare})},
            )
        )
    ok(await other.get(f"/Groups/{group['id']}"))
    assert "members" not in ok(await scim.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"}))
    put = {
        "id": group["id"],
        "displayName": f"{tag}Tiffany Ortiz",
        "externalId": str(uuid.uuid4()),
        "schemas": [GROUP_URN],
    }
    assert ok(await other.put(f"/Groups/{group['id']}", json=put))["displayName"] == f"{tag}Tiffany Ortiz"

    for path in [*(f"/Users/{u['id']}" for u in created), f"/Groups/{group['id']}"]:
        ok(await scim.delete(path), 204)
    left = ok(await scim.get("/Users", params={"attributes": "userName", "filter": f'userName sw "{tag}"'}))
    assert left["Resources"] == []
    assert ok(await scim.get("/Groups", params={"filter": f'displayName sw "{tag}"'}))["Resources"] == []


@pytest.mark.parametrize("run", [1, 2, 3])
async def test_microsoft_validation_collection_on_the_deployed_provider(scim_env: ScimEnv, run: int) -> None:
    tag = f"ms{run}{uuid.uuid4().hex[:4]}-"
    async with scim_env.client() as scim, scim_env.client(1) as other:
        await _endpoints(scim)
        await _users(scim, other, tag)
        await _groups(scim, other, tag)
        await _complex_attributes(scim, tag)
        await _garbage(scim, other, tag)
