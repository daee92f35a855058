"""Operating the gateway: token rotation on every replica, probes, metrics, OpenAPI, secrets kept out of
logs, and 503 + Retry-After while the API server is down."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from kubescim.cli import rotate_event_hook_secret, rotate_token
from kubescim.constants import IDENTITY_PROVIDERS
from kubescim.kube import EVENTS, NAMESPACES, SECRETS, Kube, KubeConfig
from kubescim_dev.controlplane import ControlPlane, tool_path
from kubescim_dev.processes import start_gateway
from kubescim_dev.stack import install_crds
from tests.conftest import ISSUED_TOKENS, ScimEnv, make_provider


async def _status(url: str, token: str) -> int:
    async with httpx.AsyncClient() as client:
        return (
            await client.get(f"{url}/Users", params={"count": 1}, headers={"Authorization": f"Bearer {token}"})
        ).status_code


async def _served_provider(kube: Kube, scim_env: ScimEnv, prefix: str) -> tuple[str, str, list[str]]:
    """A new provider, its first token, and its URL on every replica, once every replica accepts it."""
    provider = f"{prefix}-{uuid.uuid4().hex[:6]}"
    token = await make_provider(kube, scim_env.namespace, provider)
    urls = [f"{g.url}/providers/{provider}/scim/v2" for g in scim_env.gateways]
    deadline = time.monotonic() + 10
    while not all([await _status(u, token) == 200 for u in urls]):
        assert time.monotonic() < deadline, "the gateways never learned the first token"
        await asyncio.sleep(0.05)
    return provider, token, urls


async def test_a_client_still_using_the_old_token_is_told_and_reported(kube: Kube, scim_env: ScimEnv) -> None:
    """The Okta guide's "Test API Credentials fails" after a rotation: the 401 says the token was
    replaced (and when), the IdentityProvider's status counts such requests from every replica,
    and a Warning Event tells `kubectl describe` readers the identity provider has the old token."""
    provider, old, urls = await _served_provider(kube, scim_env, "old")
    new = await rotate_token(kube, scim_env.namespace, provider)
    ISSUED_TOKENS.add(new)
    secret = await kube.get(SECRETS, f"{provider}-scim-token", scim_env.namespace)
    assert old not in str(secret)  # hashes only
    assert new not in str(secret)

    async def refused(url: str, token: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/Users", headers=headers)
        assert response.status_code == 401, response.text
        return dict(response.json())

    replaced = 0  # requests a replica refused as "the previous token"
    for url in urls:
        deadline = time.monotonic() + 10
        while await _status(url, old) != 401:  # the replica has not seen the rotation yet
            assert time.monotonic() < deadline, "the gateway never learned of the rotation"
            await asyncio.sleep(0.05)
        replaced += 1
    for url in urls:
        replaced += 1
        detail = (await refused(url, old))["detail"]
        assert f"not the current token of provider {provider} (rotated at 20" in detail
        assert old not in detail
    assert (await refused(urls[0], "x" * 43))["detail"] == f"unknown token for provider {provider}"
    assert "missing credentials" in (await refused(urls[0], None))["detail"]

    async def reported() -> dict[str, object]:
        status = (await kube.get(IDENTITY_PROVIDERS, provider, scim_env.namespace)).get("status") or {}
        counts = dict(status.get("rejectedRequests") or {})
        assert counts.get("previousToken") == replaced, counts  # both replicas' counts, added up
        assert counts.get("unknownToken") == 1, counts
        assert counts.get("missingCredentials") == 1, counts
        assert counts["tokenRotatedAt"] == status["tokenRotatedAt"]  # the counts of this rotation
        return counts

    deadline = time.monotonic() + 20
    while True:
        try:
            await reported()
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    events, _ = await kube.list(EVENTS, scim_env.namespace)
    notes = [e.get("note", "") for e in events if e.get("reason") == "PreviousTokenInUse"]
    assert any(f"provider {provider} used the token replaced at" in n for n in notes), notes
    assert all(old not in str(e) and new not in str(e) for e in events)

    # `kubescim doctor` names the symptom and its fix, and fails; a healthy provider passes.
    doctor = await _cli(scim_env, "doctor", "--provider", provider)
    assert doctor.returncode == 1, doctor.stdout
    assert "used the previous token" in doctor.stdout
    assert "fix: paste the current token" in doctor.stdout
    # The same as a kubectl plugin (kubectl finds kubectl-kubescim on PATH; it passes the rest).
    plugin = await asyncio.to_thread(
        subprocess.run,
        [str(tool_path("kubectl")), "kubescim", "-n", scim_env.namespace, "doctor", "--provider", provider],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(scim_env.cluster.kubeconfig),
        },
    )
    assert plugin.returncode == 1, plugin.stdout + plugin.stderr
    assert "used the previous token" in plugin.stdout
    healthy = f"ok-{uuid.uuid4().hex[:6]}"
    await make_provider(kube, scim_env.namespace, healthy)
    fine = await _cli(scim_env, "doctor", "--provider", healthy)
    assert fine.returncode == 0, fine.stdout
    assert f"provider {healthy}: no problem found" in fine.stdout


async def _cli(scim_env: ScimEnv, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(Path(sys.executable).parent / "kubescim"), "--kubeconfig", str(scim_env.cluster.kubeconfig)]
    return await asyncio.to_thread(
        subprocess.run, [*argv, "-n", scim_env.namespace, *args], capture_output=True, text=True, timeout=60
    )


async def test_an_okta_event_hook_is_verified_authenticated_and_recorded(kube: Kube, scim_env: ScimEnv) -> None:
    """Okta's Event Hook: the one-time verification is echoed, deliveries need the shared secret
    (the token is not it), every replica records a delivery in the provider's status (coalesced),
    and a token rotation keeps the hook's secret."""
    provider, token, _ = await _served_provider(kube, scim_env, "hook")
    secret, path = await rotate_event_hook_secret(kube, scim_env.namespace, provider)
    ISSUED_TOKENS.add(secret)
    assert path.endswith(f"/providers/{provider}/okta/event-hook")
    hooks = [f"{g.url}/providers/{provider}/okta/event-hook" for g in scim_env.gateways]
    challenge = {"X-Okta-Verification-Challenge": "c" * 43}

    async with httpx.AsyncClient() as client:

        async def verified(url: str) -> None:
            response = await client.get(url, headers={"Authorization": secret, **challenge})
            assert response.status_code == 200, response.text
            assert response.json() == {"verification": "c" * 43}

        for url in hooks:
            await eventually(lambda url=url: verified(url))
        for credential in (token, "wrong", None):
            headers = {"Authorization": credential} if credential else {}
            refused = await client.post(hooks[0], headers=headers, json={"data": {"events": []}})
            assert refused.status_code == 401, refused.text
            assert credential is None or credential not in refused.text
        before = await kube.get(IDENTITY_PROVIDERS, provider, scim_env.namespace)
        assert (before.get("status") or {}).get("eventHook", {}).get("lastVerificationTime")
        events = {"eventType": "com.okta.event_hook", "data": {"events": [{"eventType": "user.lifecycle.deactivate"}]}}
        for url in hooks:
            for _ in range(5):  # a burst: recorded at most once per interval per replica
                delivered = await client.post(url, headers={"Authorization": secret}, json=events)
                assert delivered.status_code == 200, delivered.text
                assert delivered.json() == {"received": 1}

    async def recorded() -> str:
        status = (await kube.get(IDENTITY_PROVIDERS, provider, scim_env.namespace)).get("status") or {}
        delivery = (status.get("eventHook") or {}).get("lastDeliveryTime")
        assert delivery, status
        return str(delivery)

    await eventually(recorded)
    # A new provisioning token leaves the hook's secret as it was.
    ISSUED_TOKENS.add(await rotate_token(kube, scim_env.namespace, provider))
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient() as client:
        again = await client.get(hooks[0], headers={"Authorization": secret, **challenge})
    assert again.status_code == 200, again.text


async def eventually(check: object, timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()  # type: ignore[operator]
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_rotation_takes_effect_on_every_replica_within_a_second(kube: Kube, scim_env: ScimEnv) -> None:
    provider, old, urls = await _served_provider(kube, scim_env, "rot")

    new = await rotate_token(kube, scim_env.namespace, provider)
    ISSUED_TOKENS.add(new)
    rotated = time.monotonic()
    pending = set(urls)
    while pending:
        for url in list(pending):
            if await _status(url, old) == 401 and await _status(url, new) == 200:
                pending.discard(url)
        assert time.monotonic() - rotated < 1.0, f"old token still accepted (or new refused) by {pending}"
        await asyncio.sleep(0.02)
    secret = await kube.get(SECRETS, f"{provider}-scim-token", scim_env.namespace)
    # The current token's hash, and hashes of replaced ones (so a 401 can say "replaced"): no token.
    assert set(secret["data"]) == {"tokenHash", "previousTokenHashes"}
    assert new not in str(secret)
    assert old not in str(secret)


async def test_a_token_for_one_provider_cannot_reach_another(scim_env: ScimEnv) -> None:
    async with scim_env.client(token=scim_env.other_token) as client:
        response = await client.get("/Users")
    assert response.status_code == 401
    async with scim_env.client(provider=scim_env.other_provider, token=scim_env.token) as client:
        assert (await client.get("/Users")).status_code == 401
        assert (await client.get("/Groups")).status_code == 401


async def test_probes_metrics_and_openapi(scim_env: ScimEnv) -> None:
    gateway = scim_env.gateways[0]
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get("/healthz")).text == "ok"
        assert (await client.get("/readyz")).status_code == 200
        async with scim_env.client() as scim:
            await scim.get("/Users", params={"count": 1})
            await scim.get("/Users/does-not-exist")
        metrics = (await client.get("/metrics")).text
        # Labelled by route template (never by path, id or token).
        assert 'kubescim_gateway_requests_total{method="GET",route="/Users",status="200"}' in metrics
        assert 'route="/Users/{user_id}",status="404"' in metrics
        assert "kubescim_gateway_request_duration_seconds_bucket" in metrics
        assert scim_env.token not in metrics
        spec = (await client.get("/openapi.json")).json()
        assert "/scim/v2/Users" in spec["paths"]
        assert "/providers/{provider}/scim/v2/Groups/{group_id}" in spec["paths"]
        response = await client.get("/scim/v2/Users", headers={"X-Request-Id": "trace-me-42"})
        assert response.headers["x-request-id"] == "trace-me-42"


async def test_no_token_or_authorization_header_in_logs(scim_env: ScimEnv) -> None:
    async with scim_env.client() as client:
        await client.get("/Users", params={"filter": f'userName eq "{uuid.uuid4().hex}"'})
        await client.post("/Users", content=b"{broken")
    async with httpx.AsyncClient(base_url=scim_env.gateways[0].scim_url) as anonymous:
        await anonymous.get("/Users", headers={"Authorization": "Bearer wrong-token-value-123"})
    await asyncio.sleep(0.2)
    for gateway in scim_env.gateways:
        log = gateway.read_log()
        assert '"route": "/Users"' in log  # the access log is there...
        for secret in (scim_env.token, scim_env.other_token, "wrong-token-value-123"):
            assert secret not in log  # ...without any token in it
        assert "authorization" not in log.lower()


@pytest.mark.slow
async def test_api_server_outage_answers_503_with_retry_after_and_recovers() -> None:
    """An API server of its own: stopping it must not disturb the other tests."""
    plane = ControlPlane()
    await asyncio.to_thread(plane.start)
    gateway = None
    try:
        await asyncio.to_thread(install_crds, plane.kubeconfig)
        async with Kube(KubeConfig.from_file(plane.kubeconfig)) as kube:
            await kube.create(NAMESPACES, {"metadata": {"name": "outage"}})
            token = await make_provider(kube, "outage", "okta")
        gateway = await asyncio.to_thread(start_gateway, plane.kubeconfig, "outage")
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=gateway.scim_url, headers=headers, timeout=30) as client:
            created = await client.post("/Users", json={"userName": "before@example.com"})
            assert created.status_code == 201

            await asyncio.to_thread(plane.stop_process, "kube-apiserver")
            during = await client.post("/Users", json={"userName": "during@example.com"})
            assert during.status_code == 503, during.text
            assert during.headers["retry-after"].isdigit()
            assert during.json()["status"] == "503"
            # Reads of what is cached keep working.
            cached = await client.get(f"/Users/{created.json()['id']}")
            assert cached.status_code == 200, cached.text

            await asyncio.to_thread(plane.restart_apiserver)
            deadline = time.monotonic() + 30
            while True:
                after = await client.post("/Users", json={"userName": "during@example.com"})
                if after.status_code == 201:
                    break
                assert after.status_code == 503, after.text
                assert time.monotonic() < deadline, "the gateway did not recover"
                await asyncio.sleep(0.5)
            names = {r["userName"] for r in (await client.get("/Users")).json()["Resources"]}
            assert names == {"before@example.com", "during@example.com"}
    finally:
        if gateway is not None:
            gateway.stop()
        await asyncio.to_thread(plane.stop)
