"""Okta's SCIM client, replayed: the request sequences and bodies the "SCIM 2.0 Test App (Header Auth)"
sends (OKTA.md §1). It updates the Org like Okta does (the app user's externalId is the SCIM id we
return; a push mapping's target is the SCIM group id), so a push and a later reconcile agree.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from kubescim_dev.oktasim.org import ACTIVE_USER_STATUSES, Org

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
HEADERS = {
    "User-Agent": "Okta SCIM Client 1.0.0",
    "Accept": "application/scim+json",
    "Content-Type": "application/scim+json; charset=utf-8",
}
MEMBER_BATCH = 100


class PushError(Exception):
    pass


class OktaPusher:
    def __init__(self, org: Org, scim_url: str, token: str, *, bearer_prefix: bool = True) -> None:
        self.org = org
        auth = f"Bearer {token}" if bearer_prefix else token  # Header Auth sends what the admin typed
        # Okta appends "/Users" to the base URL exactly as the admin typed it: a trailing slash gives
        # "//Users" (the Okta guide's first troubleshooting symptom), so the URL is not normalised here.
        self.base_url = scim_url
        self.client = httpx.AsyncClient(headers={**HEADERS, "Authorization": auth}, timeout=60)
        self.requests = 0

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.requests += 1
        response = await self.client.request(method, self.base_url + path, **kwargs)
        if response.status_code >= 400 and response.status_code != 404:
            raise PushError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    # --- "Test API Credentials" -----------------------------------------------------------------

    async def test_credentials(self) -> None:
        await self._call("GET", "/Users", params={"startIndex": 1, "count": 2})
        await self._call("GET", "/Groups", params={"startIndex": 1, "count": 100})

    # --- users ----------------------------------------------------------------------------------

    def user_body(self, user_id: str) -> dict[str, Any]:
        user = self.org.users[user_id]
        profile = user.profile
        enterprise = {
            key: profile[key]
            for key in ("department", "costCenter", "employeeNumber", "organization", "division", "employeeID")
            if profile.get(key)
        }
        body: dict[str, Any] = {
            "schemas": [USER_URN],  # Okta leaves the extension URN out of `schemas`
            "userName": profile["login"],
            "name": {"givenName": profile.get("firstName"), "familyName": profile.get("lastName")},
            "emails": [{"primary": True, "value": profile.get("email"), "type": "work"}],
            "displayName": profile.get("displayName"),
            "locale": "en-US",
            "externalId": user.id,
            "groups": [],
            "password": uuid.uuid4().hex[:10],
            "active": user.status in ACTIVE_USER_STATUSES,
        }
        if profile.get("title"):
            body["title"] = profile["title"]
        if enterprise:
            body[ENTERPRISE_URN] = enterprise
        return body

    async def assign_user(self, user_id: str) -> str:
        """Assign (create or link): filter by userName first, POST only if absent."""
        login = self.org.users[user_id].profile["login"]
        found = await self._call("GET", f'/Users?filter=userName%20eq%20"{login}"&startIndex=1&count=100')
        resources = found.json().get("Resources") or []
        if resources:
            scim_id = str(resources[0]["id"])
        else:
            created = await self._call("POST", "/Users", json=self.user_body(user_id))
            scim_id = str(created.json()["id"])
        self.org.assign(user_id).external_id = scim_id
        return scim_id

    async def update_user(self, user_id: str) -> None:
        """Profile push: GET, then PUT the whole object (with id, meta, groups and a password)."""
        scim_id = self._scim_id(user_id)
        current = (await self._call("GET", f"/Users/{scim_id}")).json()
        body = {**current, **self.user_body(user_id), "id": scim_id, "meta": current.get("meta")}
        await self._call("PUT", f"/Users/{scim_id}", json=body)

    async def set_active(self, user_id: str, active: bool) -> None:
        scim_id = self._scim_id(user_id)
        await self._call(
            "PATCH",
            f"/Users/{scim_id}",
            json={"schemas": [PATCH_URN], "Operations": [{"op": "replace", "value": {"active": active}}]},
        )

    async def deactivate_user(self, user_id: str) -> None:
        self.org.deactivate_user(user_id)
        await self.set_active(user_id, False)

    async def unassign_user(self, user_id: str) -> None:
        await self.set_active(user_id, False)
        self.org.unassign(user_id)

    def _scim_id(self, user_id: str) -> str:
        assignment = self.org.assignments.get(user_id)
        if assignment is None or assignment.external_id is None:
            raise PushError(f"user {user_id} is not provisioned")
        return assignment.external_id

    # --- groups ---------------------------------------------------------------------------------

    async def push_group(self, group_id: str) -> str:
        group = self.org.groups[group_id]
        mapping = self.org.push(group_id)
        found = await self._call("GET", "/Groups", params={"filter": f'displayName eq "{group.name}"'})
        resources = found.json().get("Resources") or []
        if resources:
            target = str(resources[0]["id"])
        else:
            created = await self._call(
                "POST", "/Groups", json={"schemas": [GROUP_URN], "displayName": group.name, "members": []}
            )
            target = str(created.json()["id"])
        mapping.target_group_id = target
        await self.push_members(group_id, replace=True)
        return target

    def _target(self, group_id: str) -> str:
        mapping = next((m for m in self.org.push_mappings.values() if m.source_group_id == group_id), None)
        if mapping is None or mapping.target_group_id is None:
            raise PushError(f"group {group_id} is not pushed")
        return mapping.target_group_id

    def _member_refs(self, user_ids: list[str]) -> list[dict[str, str]]:
        refs = []
        for uid in user_ids:
            assignment = self.org.assignments.get(uid)
            if assignment is not None and assignment.external_id:
                refs.append({"value": assignment.external_id, "display": self.org.users[uid].profile["login"]})
        return refs

    async def push_members(self, group_id: str, *, replace: bool = False) -> None:
        """A full push: `replace members` with the first batch, then batches of `add`."""
        group = self.org.groups[group_id]
        target = self._target(group_id)
        refs = self._member_refs(sorted(group.members))
        batches = [refs[i : i + MEMBER_BATCH] for i in range(0, len(refs), MEMBER_BATCH)] or [[]]
        for index, batch in enumerate(batches):
            operations: list[dict[str, Any]] = [
                {"op": "replace", "value": {"id": target, "displayName": group.name}},
            ]
            if index == 0 and replace:
                operations.append({"op": "replace", "path": "members", "value": batch})
            else:
                operations.append({"op": "add", "path": "members", "value": batch})
            await self._call("PATCH", f"/Groups/{target}", json={"schemas": [PATCH_URN], "Operations": operations})

    async def change_members(self, group_id: str, add: list[str], remove: list[str]) -> None:
        """Okta's incremental membership PATCH: rename (with the id) + removes + adds, in one request."""
        group = self.org.groups[group_id]
        group.members = (group.members | set(add)) - set(remove)
        target = self._target(group_id)
        operations: list[dict[str, Any]] = [{"op": "replace", "value": {"id": target, "displayName": group.name}}]
        for ref in self._member_refs(remove):
            operations.append({"op": "remove", "path": f'members[value eq "{ref["value"]}"]'})
        if add:
            operations.append({"op": "add", "path": "members", "value": self._member_refs(add)})
        await self._call("PATCH", f"/Groups/{target}", json={"schemas": [PATCH_URN], "Operations": operations})

    async def rename_group(self, group_id: str, name: str) -> None:
        self.org.rename_group(group_id, name)
        target = self._target(group_id)
        await self._call(
            "PATCH",
            f"/Groups/{target}",
            json={
                "schemas": [PATCH_URN],
                "Operations": [{"op": "replace", "value": {"id": target, "displayName": name}}],
            },
        )

    async def delete_group(self, group_id: str) -> None:
        """Unlink a pushed group choosing to delete it in the app."""
        target = self._target(group_id)
        await self._call("DELETE", f"/Groups/{target}")
        self.org.unpush(group_id)

    # --- whole org ------------------------------------------------------------------------------

    async def push_everything(self, concurrency: int = 8) -> None:
        """What an admin's first "Push Now" does: provision assigned users, then push every group."""
        import asyncio

        await self.test_credentials()
        semaphore = asyncio.Semaphore(concurrency)

        async def one(coroutine: Any) -> None:
            async with semaphore:
                await coroutine

        await asyncio.gather(*(one(self.assign_user(uid)) for uid in self.org.provisioned_user_ids()))
        group_ids = [m.source_group_id for m in self.org.push_mappings.values()]
        await asyncio.gather(*(one(self.push_group(gid)) for gid in group_ids))
