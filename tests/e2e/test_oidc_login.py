"""Login end to end: an Okta user signs in to the cluster with an ID token from the simulator's OIDC
issuer, and gets exactly the access their team grants; after a SCIM deactivation, none.

A control plane of its own, started with the structured AuthenticationConfiguration docs/access.md
gives an Okta admin (username from preferred_username with the prefix okta:), trusting the issuer's CA.
No impersonation: the API server authenticates the token and its authorizer decides.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kubescim.constants import ACCESS_BINDINGS, API_VERSION
from kubescim.kube import NAMESPACES, Kube, KubeConfig, Resource
from kubescim_dev.controlplane import ControlPlane, tool_path
from kubescim_dev.oktasim.oidc import OidcIssuer
from kubescim_dev.oktasim.org import Org, generate
from kubescim_dev.oktasim.pusher import OktaPusher
from kubescim_dev.processes import ManagedProcess, start_gateway, start_operator
from kubescim_dev.stack import create_provider, install_crds
from tests.conftest import EXAMPLES, KOPF_PEERINGS
from tests.e2e.conftest import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
NAMESPACE = "kubescim"
APPS = "engineering-apps"
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False)
EDIT = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "team-edit"},
    "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
    ],
}


@dataclass
class Login:
    issuer: OidcIssuer
    plane: ControlPlane
    pusher: OktaPusher
    org: Org
    kube: Kube

    def kubectl(self, token: str, *args: str) -> tuple[int, str]:
        """kubectl as the token's bearer: the control plane's address and CA, no other credential."""
        result = subprocess.run(
            [
                str(tool_path("kubectl")),
                "--kubeconfig=/dev/null",
                f"--server={self.plane.url}",
                f"--certificate-authority={self.plane.ca_file}",
                f"--token={token}",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcIssuer]:
    org = generate(30, 4, seed=11)
    server = OidcIssuer(org)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def login(issuer: OidcIssuer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Login]:
    config = tmp_path_factory.mktemp("authn") / "authentication-config.yaml"
    config.write_text(issuer.authentication_config())
    plane = ControlPlane(authentication_config=config)
    await asyncio.to_thread(plane.start)
    processes: list[ManagedProcess] = []
    kube = Kube(KubeConfig.from_file(plane.kubeconfig))
    try:
        await asyncio.to_thread(install_crds, plane.kubeconfig)
        for name in (NAMESPACE, APPS):
            await kube.create(NAMESPACES, {"metadata": {"name": name}})
        await kube.create(
            KOPF_PEERINGS,
            {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "kubescim"}},
            NAMESPACE,
        )
        await kube.create(CLUSTER_ROLES, EDIT)
        token = await create_provider(
            kube, NAMESPACE, "okta", {"access": {"username": {"attribute": "userName", "prefix": "okta:"}}}
        )
        _kubectl(plane, "apply", "-n", NAMESPACE, "-f", str(EXAMPLES / "teammapping-department.yaml"))
        gateway = await asyncio.to_thread(start_gateway, plane.kubeconfig, NAMESPACE)
        processes.append(gateway)
        processes.append(
            await asyncio.to_thread(
                start_operator,
                plane.kubeconfig,
                NAMESPACE,
                extra_env={"KUBESCIM_ACCESS_ALLOWED_ROLES": json.dumps(["ClusterRole/team-edit"])},
            )
        )
        pusher = OktaPusher(issuer.org, gateway.scim_url, token)
        await pusher.push_everything()
        await kube.create(
            ACCESS_BINDINGS,
            {
                "apiVersion": API_VERSION,
                "kind": "AccessBinding",
                "metadata": {"name": "engineering-edit"},
                "spec": {
                    "subjects": {"teams": ["engineering"]},
                    "roleRef": {"name": "team-edit"},
                    "scope": {"namespaces": [APPS]},
                },
            },
            NAMESPACE,
        )
        yield Login(issuer, plane, pusher, issuer.org, kube)
        await pusher.close()
    finally:
        for process in processes:
            process.stop()
        await kube.close()
        plane.stop()


def _kubectl(plane: ControlPlane, *args: str) -> str:
    return subprocess.run(
        [str(tool_path("kubectl")), f"--kubeconfig={plane.kubeconfig}", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _engineer(org: Org, index: int = 0) -> str:
    engineers = sorted(u.id for u in org.users.values() if u.profile["department"] == "Engineering")
    return engineers[index]


async def test_an_okta_user_logs_in_and_gets_exactly_their_teams_access(login: Login) -> None:
    user_id = _engineer(login.org)
    user = login.org.users[user_id]
    token = login.issuer.id_token(user_id)

    # Authenticated by the API server's JWT authenticator, as docs/access.md maps the claims.
    async def whoami() -> dict[str, object]:
        code, out = await asyncio.to_thread(login.kubectl, token, "auth", "whoami", "-o", "json")
        assert code == 0, out
        return dict(json.loads(out)["status"]["userInfo"])

    info = await eventually(whoami, timeout=30)
    assert info["username"] == f"okta:{user.profile['login']}"
    okta_groups = sorted(f"okta:{g.name}" for g in login.org.groups.values() if user_id in g.members)
    assert sorted(g for g in info.get("groups", []) if str(g).startswith("okta:")) == okta_groups  # type: ignore[attr-defined]

    # Authorized by RBAC through the binding the operator made for the engineering team.
    async def can_create() -> None:
        code, out = await asyncio.to_thread(
            login.kubectl, token, "create", "configmap", f"hello-{int(time.time() * 1000)}", "-n", APPS
        )
        assert code == 0, out

    await eventually(can_create, timeout=30)
    code, out = login.kubectl(token, "get", "configmaps", "-n", NAMESPACE)
    assert code != 0
    assert "forbidden" in out.lower()
    code, out = login.kubectl(token, "get", "scimusers", "-n", NAMESPACE)
    assert code != 0

    # Someone not in the team: authenticated, and nothing more.
    outsider = next(u.id for u in login.org.users.values() if u.profile["department"] != "Engineering")
    code, out = login.kubectl(login.issuer.id_token(outsider), "get", "configmaps", "-n", APPS)
    assert code != 0
    assert "forbidden" in out.lower()

    # Offboarded in Okta: the push deactivates the user, and the same valid token is refused.
    started = time.monotonic()
    await login.pusher.deactivate_user(user_id)

    async def refused() -> None:
        code, out = await asyncio.to_thread(login.kubectl, token, "get", "configmaps", "-n", APPS)
        assert code != 0, out
        assert "forbidden" in out.lower()

    await eventually(refused, timeout=10, interval=0.05)
    print(f"\nOkta deactivation pushed -> the user's own token is refused: {time.monotonic() - started:.2f} s")


def test_the_authentication_config_is_what_the_docs_show(issuer: OidcIssuer) -> None:
    config = yaml.safe_load(issuer.authentication_config())
    jwt = config["jwt"][0]
    assert jwt["claimMappings"]["username"] == {"claim": "preferred_username", "prefix": "okta:"}
    docs = (Path(__file__).resolve().parents[2] / "docs" / "access.md").read_text()
    assert "claim: preferred_username" in docs
    assert 'prefix: "okta:"' in docs
