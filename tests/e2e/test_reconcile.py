"""Okta reconciliation end to end: simulator (Management API + Okta's SCIM pushes) -> gateway -> API server,
and the operator's reconciler repairing what a push missed, safely."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubescim.cli import rotate_event_hook_secret
from kubescim.constants import (
    ANNOTATION_ALLOW_MASS_DEACTIVATION,
    ANNOTATION_FULL_SYNC_REQUESTED,
    ANNOTATION_SYNC_REQUESTED,
    IDENTITY_PROVIDERS,
    SCIM_GROUPS,
    SCIM_USERS,
    TEAM_MAPPINGS,
)
from kubescim.kube import EVENTS, SECRETS
from kubescim_dev.controlplane import free_port
from kubescim_dev.oktasim.api import Fault, SimulatorConfig
from kubescim_dev.oktasim.org import generate
from kubescim_dev.oktasim.pusher import OktaPusher
from kubescim_dev.oktasim.server import SimulatorServer
from tests.e2e.conftest import Stack, eventually

pytestmark = pytest.mark.slow


class OktaWorld:
    def __init__(self, stack: Stack, server: SimulatorServer, pusher: OktaPusher) -> None:
        self.stack, self.server, self.pusher = stack, server, pusher

    @property
    def org(self) -> Any:
        return self.server.org

    async def configure_provider(self, oauth_key: str | None = None, **reconcile: Any) -> None:
        if oauth_key is None:
            await self.stack.kube.create(
                SECRETS,
                {
                    "metadata": {"name": "okta-api"},
                    "data": {"token": base64.b64encode(self.server.simulator.config.api_token.encode()).decode()},
                },
                self.stack.namespace,
            )
            auth: dict[str, Any] = {"type": "ApiToken", "apiTokenSecretRef": {"name": "okta-api", "key": "token"}}
        else:
            await self.stack.kube.create(
                SECRETS,
                {"metadata": {"name": "okta-app"}, "data": {"key.pem": base64.b64encode(oauth_key.encode()).decode()}},
                self.stack.namespace,
            )
            auth = {
                "type": "OAuth",
                "oauth": {
                    "clientId": self.server.simulator.config.oauth_client_id,
                    "privateKeySecretRef": {"name": "okta-app", "key": "key.pem"},
                },
            }
        await self.stack.kube.patch(
            IDENTITY_PROVIDERS,
            "okta",
            {
                "spec": {
                    "okta": {"orgUrl": self.server.url, "appId": self.org.app_id, "auth": auth},
                    "reconcile": {"interval": "24h", **reconcile},
                }
            },
            self.stack.namespace,
        )

    async def last_sync(self) -> dict[str, Any]:
        provider = await self.stack.kube.get(IDENTITY_PROVIDERS, "okta", self.stack.namespace)
        return dict((provider.get("status") or {}).get("lastSync") or {})

    async def sync(self, *, timeout: float = 60, full: bool = True) -> dict[str, Any]:
        """Request a run (like `kubescim sync --full`, or `kubescim sync` with full=False: a delta
        when one can run) and wait for its result."""
        before = (await self.last_sync()).get("completionTime")
        stamp = dt.datetime.now(dt.UTC).isoformat()
        annotation = ANNOTATION_FULL_SYNC_REQUESTED if full else ANNOTATION_SYNC_REQUESTED
        await self.stack.kube.patch(
            IDENTITY_PROVIDERS,
            "okta",
            {"metadata": {"annotations": {annotation: stamp}}},
            self.stack.namespace,
        )

        async def finished() -> dict[str, Any]:
            last = await self.last_sync()
            assert last.get("completionTime"), last
            assert last.get("completionTime") != before, last
            assert last.get("result") != "Running"
            return last

        return await eventually(finished, timeout=timeout)

    async def first_run(self) -> dict[str, Any]:
        async def done() -> dict[str, Any]:
            last = await self.last_sync()
            assert last.get("completionTime"), last
            return last

        return await eventually(done, timeout=60)

    async def users(self) -> dict[str, dict[str, Any]]:
        items, _ = await self.stack.kube.list(SCIM_USERS, self.stack.namespace)
        return {i["spec"]["externalId"]: i for i in items}

    async def owned_state(self) -> dict[str, str]:
        """What the reconciler may write: ScimUser/ScimGroup specs and group-membership labels."""
        users, _ = await self.stack.kube.list(SCIM_USERS, self.stack.namespace)
        groups, _ = await self.stack.kube.list(SCIM_GROUPS, self.stack.namespace)
        state = {}
        for obj in users + groups:
            labels = sorted(k for k in (obj["metadata"].get("labels") or {}) if k.startswith("group."))
            state[obj["metadata"]["name"]] = json.dumps([obj["spec"], labels], sort_keys=True)
        return state

    async def settled_versions(self) -> dict[str, str]:
        """resourceVersions once the operator has finished writing statuses (stable for a second)."""
        previous = await self.versions()
        while True:
            await asyncio.sleep(1.0)
            current = await self.versions()
            if current == previous:
                return current
            previous = current

    async def versions(self) -> dict[str, str]:
        users, _ = await self.stack.kube.list(SCIM_USERS, self.stack.namespace)
        groups, _ = await self.stack.kube.list(SCIM_GROUPS, self.stack.namespace)
        return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in users + groups}


@pytest.fixture
async def okta(stack: Stack, request: pytest.FixtureRequest) -> AsyncIterator[OktaWorld]:
    marker = request.node.get_closest_marker("org")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    org = generate(options.pop("users", 30), options.pop("groups", 6), seed=11)
    config = SimulatorConfig(**options)
    server = SimulatorServer(org, config)
    await server.start()
    pusher = OktaPusher(org, stack.gateway.scim_url, stack.token)
    try:
        yield OktaWorld(stack, server, pusher)
    finally:
        await pusher.close()
        await server.stop()


def start_operator(stack: Stack) -> None:
    stack.start_operator(
        extra_env={"KUBESCIM_RECONCILE_FIRST_DELAY_SECONDS": "0.2", "KUBESCIM_SCIM_PUBLIC_URL": stack.gateway.url}
    )


async def test_missed_pushes_are_repaired_by_one_run(okta: OktaWorld) -> None:
    await okta.pusher.push_everything()
    org = okta.org
    users = list(org.users)
    # Changes made in Okta while the app was paused: never pushed.
    org.update_profile(users[0], title="Chief Scientist", department="Research")
    org.deactivate_user(users[1])
    org.unassign(users[2])
    newcomer = org.add_user(
        login="new.hire@example.com", email="new.hire@example.com", firstName="New", lastName="Hire", department="Sales"
    )
    org.assign(newcomer.id)
    group_ids = [m.source_group_id for m in org.push_mappings.values()]
    target = {m.source_group_id: m.target_group_id for m in org.push_mappings.values()}  # our SCIM ids
    org.rename_group(group_ids[0], "Renamed In Okta")
    org.set_members(group_ids[1], {users[3], users[4], newcomer.id})
    org.unpush(group_ids[2])
    await okta.configure_provider()
    start_operator(okta.stack)
    last = await okta.first_run()
    assert last["result"] == "Succeeded", last
    counts = last["counts"]
    assert counts["created"] == 1
    assert counts["updated"] >= 1
    assert counts["deactivated"] == 2
    assert counts["groupsFixed"] >= 2
    assert counts["groupsRemoved"] == 1

    cluster = await okta.users()
    assert cluster[users[0]]["spec"]["title"] == "Chief Scientist"
    enterprise = cluster[users[0]]["spec"]["extensions"]["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
    assert enterprise["department"] == "Research"
    assert cluster[users[1]]["spec"]["active"] is False
    assert cluster[users[2]]["spec"]["active"] is False
    assert cluster[newcomer.id]["spec"]["userName"] == "new.hire@example.com"
    groups, _ = await okta.stack.kube.list(SCIM_GROUPS, okta.stack.namespace)
    by_name = {g["metadata"]["name"]: g for g in groups}
    assert by_name[target[group_ids[0]]]["spec"]["displayName"] == "Renamed In Okta"
    assert target[group_ids[2]] not in by_name  # no longer pushed: removed
    members_label = f"group.identity.kubescim.dev/{target[group_ids[1]]}"
    members, _ = await okta.stack.kube.list(SCIM_USERS, okta.stack.namespace, label_selector=members_label)
    assert {m["spec"]["externalId"] for m in members} == {users[3], users[4], newcomer.id}

    # The second run finds no drift and writes nothing to ScimUsers/ScimGroups.
    before = await okta.settled_versions()
    again = await okta.sync()
    assert again["result"] == "Succeeded"
    assert again["message"] == "no drift"
    assert await okta.versions() == before
    provider = await okta.stack.kube.get(IDENTITY_PROVIDERS, "okta", okta.stack.namespace)
    assert provider["status"]["scimEndpoint"].endswith("/providers/okta/scim/v2")
    conditions = {c["type"]: c["status"] for c in provider["status"]["conditions"]}
    assert conditions == {"Synced": "True", "Ready": "True"}


@pytest.mark.org(page_max=10)
async def test_fetch_failure_on_page_three_deactivates_nobody(okta: OktaWorld) -> None:
    await okta.pusher.push_everything()
    for user_id in list(okta.org.users)[:8]:
        okta.org.unassign(user_id)  # a complete fetch would deactivate these
    okta.server.simulator.faults.append(Fault(path=r"/apps/.*/users$", kind="500", skip=2, count=-1))
    await okta.configure_provider()
    before = await okta.owned_state()
    start_operator(okta.stack)
    last = await okta.first_run()
    assert last["result"] == "Failed"
    assert "nothing changed" in last["message"]
    assert await okta.owned_state() == before
    assert okta.server.simulator.stats.faults >= 1


@pytest.mark.org(page_max=10, link_next_first=True)
async def test_every_page_is_read_whatever_the_link_header_order(okta: OktaWorld) -> None:
    await okta.pusher.push_everything()
    await okta.configure_provider()
    start_operator(okta.stack)
    last = await okta.first_run()
    assert last["result"] == "Succeeded", last
    assert last["counts"]["usersSeen"] == 30
    assert last["message"] == "no drift"
    calls = okta.server.simulator.stats.calls
    assert calls["/api/v1/apps/{id}/users"] == 3  # 30 users, 10 a page: every page, once


async def test_breaker_trips_and_the_override_allows_one_run(okta: OktaWorld) -> None:
    await okta.pusher.push_everything()
    for user_id in list(okta.org.users)[:12]:
        okta.org.unassign(user_id)  # 40% of 30
    await okta.configure_provider()
    start_operator(okta.stack)
    last = await okta.first_run()
    assert last["result"] == "Blocked", last
    assert "12 of 30" in last["message"]
    assert all(u["spec"].get("active") is not False for u in (await okta.users()).values())
    events, _ = await okta.stack.kube.list(EVENTS, okta.stack.namespace)
    assert any(e.get("reason") == "MassDeactivationBlocked" for e in events)

    await okta.stack.kube.patch(
        IDENTITY_PROVIDERS,
        "okta",
        {"metadata": {"annotations": {ANNOTATION_ALLOW_MASS_DEACTIVATION: "true"}}},
        okta.stack.namespace,
    )

    async def allowed() -> None:
        assert (await okta.last_sync())["result"] == "Succeeded"

    await eventually(allowed, timeout=60)
    assert sum(1 for u in (await okta.users()).values() if u["spec"].get("active") is False) == 12
    provider = await okta.stack.kube.get(IDENTITY_PROVIDERS, "okta", okta.stack.namespace)
    assert ANNOTATION_ALLOW_MASS_DEACTIVATION not in (provider["metadata"].get("annotations") or {})


@pytest.mark.org(page_max=5, rate_limit=8, rate_window_seconds=2.0)
async def test_rate_limits_slow_the_run_but_it_completes_within_the_budget_share(okta: OktaWorld) -> None:
    await okta.pusher.push_everything()
    okta.server.simulator.faults.append(Fault(path=r"/groups/.*/users", kind="429", count=3))
    okta.server.simulator.reset_stats()
    await okta.configure_provider()
    start_operator(okta.stack)
    last = await okta.first_run()
    assert last["result"] == "Succeeded", last
    assert last["rateLimitWaits"] >= 1
    # The client kept half of every bucket for the org's other integrations (the injected 429s aside).
    stats = okta.server.simulator.stats
    assert min(stats.min_remaining.values()) >= 8 * 0.5 - 4  # concurrency 4 may overlap the last check


async def test_oauth_service_app_with_private_key_jwt(okta: OktaWorld) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    okta.server.simulator.config.oauth_public_key_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    await okta.configure_provider(oauth_key=pem)
    start_operator(okta.stack)
    last = await okta.first_run()
    assert last["result"] == "Succeeded", last
    assert last["counts"]["created"] == 30  # nothing was pushed: the reconciler provisioned everyone
    assert len(okta.server.simulator.access_tokens) == 1


async def test_a_delta_run_repairs_missed_pushes_with_a_handful_of_calls(okta: OktaWorld) -> None:
    """Between full runs, a delta run reads only what changed in Okta since the last run (the System
    Log for assignments, lastUpdated / lastMembershipUpdated for the rest) and repairs it. One that
    cannot be sure (here: the System Log refused) runs as a full run and says why."""
    await okta.pusher.push_everything()
    await okta.configure_provider()
    start_operator(okta.stack)
    assert (await okta.first_run())["kind"] == "Full"

    before = await okta.settled_versions()
    quiet = await okta.sync(full=False)
    assert (quiet["kind"], quiet["result"]) == ("Delta", "Succeeded"), quiet
    assert quiet["message"].endswith("no drift"), quiet
    assert quiet["oktaApiCalls"] <= 10, quiet
    assert await okta.versions() == before  # no drift, no write

    org = okta.org
    users = list(org.users)
    # Changes made in Okta while the app was paused: never pushed.
    org.update_profile(users[0], title="Chief Scientist")
    org.deactivate_user(users[1])
    org.unassign(users[2])
    newcomer = org.add_user(login="late@example.com", email="late@example.com", firstName="La", lastName="Te")
    org.assign(newcomer.id)
    group_ids = [m.source_group_id for m in org.push_mappings.values()]
    target = {m.source_group_id: m.target_group_id for m in org.push_mappings.values()}
    org.rename_group(group_ids[0], "Renamed In Okta")
    org.set_members(group_ids[1], {users[3], newcomer.id})
    org.unpush(group_ids[2])
    repaired = await okta.sync(full=False)
    assert (repaired["kind"], repaired["result"]) == ("Delta", "Succeeded"), repaired
    counts = repaired["counts"]
    assert (counts["created"], counts["deactivated"], counts["groupsRemoved"]) == (1, 2, 1), counts
    assert counts["groupsFixed"] >= 2, counts
    assert repaired["oktaApiCalls"] <= 20, repaired  # a full run of this org makes ~15; of 10,000 users, 5,026
    cluster = await okta.users()
    assert cluster[users[0]]["spec"]["title"] == "Chief Scientist"
    assert cluster[users[1]]["spec"]["active"] is False
    assert cluster[users[2]]["spec"]["active"] is False
    assert cluster[newcomer.id]["spec"]["userName"] == "late@example.com"
    groups, _ = await okta.stack.kube.list(SCIM_GROUPS, okta.stack.namespace)
    by_name = {g["metadata"]["name"]: g for g in groups}
    assert by_name[target[group_ids[0]]]["spec"]["displayName"] == "Renamed In Okta"
    assert target[group_ids[2]] not in by_name
    label = f"group.identity.kubescim.dev/{target[group_ids[1]]}"
    members, _ = await okta.stack.kube.list(SCIM_USERS, okta.stack.namespace, label_selector=label)
    assert {m["spec"]["externalId"] for m in members} == {users[3], newcomer.id}

    # The System Log refused (a token without okta.logs.read): a full run instead, and why.
    okta.server.simulator.faults.append(Fault(path=r"/api/v1/logs", kind="403", count=-1))
    fallback = await okta.sync(full=False)
    assert (fallback["kind"], fallback["result"]) == ("Full", "Succeeded"), fallback
    assert "okta.logs.read" in fallback["fallbackReason"], fallback
    assert "full run instead of a delta" in fallback["message"], fallback
    # A refusal that lasts stops deltas (no full run every delta interval) until the spec changes.
    logs_calls = okta.server.simulator.stats.calls["/api/v1/logs"]
    after = await okta.sync(full=False)
    assert after["kind"] == "Full", after
    assert "delta runs are off until the IdentityProvider's spec changes" in after["fallbackReason"], after
    assert okta.server.simulator.stats.calls["/api/v1/logs"] == logs_calls
    print(
        f"Okta calls: no-drift delta {quiet['oktaApiCalls']}, delta repairing 7 changes "
        f"{repaired['oktaApiCalls']}, full (fallback) {fallback['oktaApiCalls']}"
    )


async def test_an_okta_event_hook_delivery_triggers_a_delta_run(okta: OktaWorld) -> None:
    """Okta calls the gateway's event hook when something changes: the operator runs a delta at once
    (no sync request, no waiting for the interval) and repairs what the missed push left."""
    await okta.pusher.push_everything()
    await okta.configure_provider()
    start_operator(okta.stack)
    first = await okta.first_run()
    secret, _ = await rotate_event_hook_secret(okta.stack.kube, okta.stack.namespace, "okta")
    user_id = next(iter(okta.org.users))
    okta.org.deactivate_user(user_id)  # never pushed
    delivery = {"eventType": "com.okta.event_hook", "data": {"events": [{"eventType": "user.lifecycle.deactivate"}]}}
    async with httpx.AsyncClient() as client:

        async def accepted() -> None:  # the gateway learns the hook's secret from its Secret watch
            response = await client.post(
                f"{okta.stack.gateway.url}/providers/okta/okta/event-hook",
                headers={"Authorization": secret},
                json=delivery,
            )
            assert response.status_code == 200, response.text

        await eventually(accepted, timeout=10)

    async def repaired() -> dict[str, Any]:
        last = await okta.last_sync()
        assert last.get("completionTime") != first["completionTime"], last
        assert (last.get("kind"), last.get("result")) == ("Delta", "Succeeded"), last
        return last

    last = await eventually(repaired, timeout=30)
    assert last["counts"]["deactivated"] == 1, last
    assert (await okta.users())[user_id]["spec"]["active"] is False


@pytest.mark.org(page_max=10, timeout_seconds=3.0)
async def test_okta_faults_never_deactivate_from_partial_data_and_the_run_is_retried(okta: OktaWorld) -> None:
    await okta.pusher.push_everything()
    for user_id in list(okta.org.users)[:5]:
        okta.org.unassign(user_id)  # what a complete run will deactivate
    faults = okta.server.simulator.faults
    # A truncated page (invalid JSON) fails the first run outright; timeouts and a 5xx storm are
    # absorbed by the client's retries in the next one.
    faults.append(Fault(path=r"/groups/.*/users", kind="truncate", count=1))
    faults.append(Fault(path=r"/apps/.*/users$", kind="timeout", skip=3, count=1))
    faults.append(Fault(path=r"/group-push/mappings", kind="500", skip=1, count=3))
    await okta.configure_provider()
    before = await okta.owned_state()
    okta.stack.start_operator(
        extra_env={
            "KUBESCIM_RECONCILE_FIRST_DELAY_SECONDS": "0.2",
            "KUBESCIM_RECONCILE_RETRY_SECONDS": "1",
            "KUBESCIM_OKTA_TIMEOUT_SECONDS": "1",
        }
    )
    first = await okta.first_run()
    assert first["result"] == "Failed"
    assert "truncated" in first["message"]
    assert await okta.owned_state() == before  # nothing deactivated from partial data

    async def retried() -> dict[str, Any]:
        last = await okta.last_sync()
        assert last["result"] == "Succeeded", last
        return last

    last = await eventually(retried, timeout=60)
    assert last["counts"]["deactivated"] == 5
    assert okta.server.simulator.stats.faults >= 5
    events, _ = await okta.stack.kube.list(EVENTS, okta.stack.namespace)
    reasons = [e.get("reason") for e in events]
    assert "ReconcileFailed" in reasons
    assert "Reconciled" in reasons


async def test_okta_is_the_source_of_truth_unless_the_provider_keeps_strays(okta: OktaWorld) -> None:
    """Users and groups the provider holds that Okta does not back (no Okta id, an Okta id Okta does
    not have, a group Okta does not push) are deactivated / removed, and the Event names them."""
    await okta.pusher.push_everything()
    async with okta.stack.scim() as scim:
        no_id = await scim.post("/Users", json={"userName": "stray.noid@example.com", "active": True})
        unknown = await scim.post(
            "/Users", json={"userName": "stray.gone@example.com", "externalId": "00u0000notinokta", "active": True}
        )
        group = await scim.post("/Groups", json={"displayName": "Made By Another Client", "members": []})
        assert {no_id.status_code, unknown.status_code, group.status_code} == {201}
        stray_ids = {no_id.json()["id"], unknown.json()["id"]}
        member = await scim.patch(
            f"/Groups/{group.json()['id']}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": no_id.json()["id"]}]}],
            },
        )
        assert member.status_code == 200, member.text
    await okta.configure_provider(unbacked="Keep")
    start_operator(okta.stack)
    kept = await okta.first_run()
    assert kept["message"] == "no drift", kept  # Keep: strays are someone else's

    await okta.stack.kube.patch(
        IDENTITY_PROVIDERS, "okta", {"spec": {"reconcile": {"unbacked": "Remove"}}}, okta.stack.namespace
    )
    last = await okta.sync()
    assert last["result"] == "Succeeded", last
    assert last["counts"]["deactivated"] == 2
    assert last["counts"]["groupsRemoved"] == 1
    assert "not backed by Okta: stray.gone@example.com, stray.noid@example.com" in last["message"]
    assert "Made By Another Client" in last["message"]
    users, _ = await okta.stack.kube.list(SCIM_USERS, okta.stack.namespace)
    by_id = {u["metadata"]["labels"]["identity.kubescim.dev/scim-id"]: u for u in users}
    assert all(by_id[i]["spec"]["active"] is False for i in stray_ids)
    assert not any(k.startswith("group.") for k in by_id[no_id.json()["id"]]["metadata"]["labels"])
    groups, _ = await okta.stack.kube.list(SCIM_GROUPS, okta.stack.namespace)
    assert group.json()["id"] not in {g["metadata"]["name"] for g in groups}
    events, _ = await okta.stack.kube.list(EVENTS, okta.stack.namespace)
    assert any("stray.noid@example.com" in (e.get("message") or e.get("note") or "") for e in events)
    assert (await okta.sync())["message"] == "no drift"


async def test_a_group_assigned_but_not_pushed_is_named_everywhere_an_admin_looks(okta: OktaWorld) -> None:
    """The Okta guide's "group membership is not syncing": the group is assigned to the app (its
    users arrive) but not pushed, so no ScimGroup exists and a rule waiting for it matches nothing."""
    await okta.pusher.push_everything()
    org = okta.org
    members = set(list(org.users)[:3])
    admins = org.add_group("Bifrost-Admin")
    org.set_members(admins.id, members)
    org.assign_group(admins.id)  # assigned, never pushed
    await okta.stack.apply_mapping(
        "Team",
        "admins",
        {"source": "Group", "match": {"value": "Bifrost-Admin"}, "target": {"name": "admins"}},
    )
    await okta.configure_provider()
    start_operator(okta.stack)
    last = await okta.first_run()
    assert last["result"] == "Succeeded", last

    provider = await okta.stack.kube.get(IDENTITY_PROVIDERS, "okta", okta.stack.namespace)
    assert provider["status"]["unpushedGroups"] == [{"oktaId": admins.id, "name": "Bifrost-Admin"}]
    events, _ = await okta.stack.kube.list(EVENTS, okta.stack.namespace)
    notes = [e.get("note", "") for e in events if e.get("reason") == "GroupNotPushed"]
    assert any("assigned to the app but not pushed: Bifrost-Admin" in n for n in notes), notes

    async def rule_condition(status: str) -> None:
        rule = await okta.stack.kube.get(TEAM_MAPPINGS, "admins", okta.stack.namespace)
        conditions = {c["type"]: c for c in (rule.get("status") or {}).get("conditions") or []}
        assert conditions.get("GroupsMatched", {}).get("status") == status, conditions

    await eventually(lambda: rule_condition("False"), timeout=30)
    doctor = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "kubescim"),
            "--kubeconfig",
            str(okta.stack.cluster.kubeconfig),
            "-n",
            okta.stack.namespace,
            "doctor",
            "--provider",
            "okta",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert doctor.returncode == 1, doctor.stdout
    assert "assigned to the app but not pushed: Bifrost-Admin" in doctor.stdout
    assert "TeamMapping admins matches no pushed group" in doctor.stdout

    await okta.pusher.push_group(admins.id)  # the fix: push it
    await eventually(lambda: rule_condition("True"), timeout=30)
    again = await okta.sync()
    assert again["result"] == "Succeeded", again
    provider = await okta.stack.kube.get(IDENTITY_PROVIDERS, "okta", okta.stack.namespace)
    assert provider["status"].get("unpushedGroups") in (None, [])


async def test_okta_pushes_through_a_base_url_typed_with_a_trailing_slash(okta: OktaWorld) -> None:
    """The Okta guide's first symptom: the admin typed `…/scim/v2/`, so Okta requests `//Users`."""
    slashed = OktaPusher(okta.org, okta.stack.gateway.scim_url + "/", okta.stack.token)
    try:
        await slashed.test_credentials()
        await slashed.push_everything()
    finally:
        await slashed.close()
    users, _ = await okta.stack.kube.list(SCIM_USERS, okta.stack.namespace)
    assert len(users) == len(okta.org.provisioned_user_ids())
    groups, _ = await okta.stack.kube.list(SCIM_GROUPS, okta.stack.namespace)
    assert len(groups) == len(okta.org.push_mappings)


async def test_the_operator_serves_prometheus_metrics_of_runs_and_recomputation(okta: OktaWorld) -> None:
    await okta.pusher.push_everything()
    org = okta.org
    org.update_profile(next(iter(org.users)), title="Metrics Drift")  # one repair for the run to count
    await okta.configure_provider()
    port = free_port()
    okta.stack.start_operator(
        extra_env={
            "KUBESCIM_RECONCILE_FIRST_DELAY_SECONDS": "0.2",
            "KUBESCIM_SCIM_PUBLIC_URL": okta.stack.gateway.url,
            "KUBESCIM_METRICS_PORT": str(port),
        }
    )
    last = await okta.first_run()
    assert last["result"] == "Succeeded", last

    async def scraped() -> dict[str, float]:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        assert (
            samples.get('kubescim_operator_reconcile_runs_total{kind="Full",provider="okta",result="Succeeded"}') == 1
        )
        return samples

    samples = await eventually(scraped, timeout=20)
    assert samples['kubescim_operator_okta_calls_total{provider="okta"}'] == last["oktaApiCalls"]
    assert samples['kubescim_operator_drift_repaired_total{kind="updated",provider="okta"}'] >= 1
    assert samples['kubescim_operator_reconcile_last_result{provider="okta",result="Succeeded"}'] == 1
    assert samples['kubescim_operator_reconcile_last_success_timestamp_seconds{provider="okta"}'] > 1.7e9
    assert samples['kubescim_operator_recompute_queue_depth{queue="fast"}'] >= 0
    assert samples["kubescim_operator_users_indexed"] == 1
    assert samples['kubescim_operator_writes_total{kind="user_status"}'] >= 1  # the operator wrote user statuses
    assert 'kubescim_operator_reconcile_duration_seconds_count{kind="Full",provider="okta"}' in samples
    assert "kubescim_operator_recompute_latency_seconds_count" in samples
    assert okta.stack.token not in str(samples)
