"""kubeconfig `exec` credential plugins, `proxy-url` and contexts, as real laptops' kubeconfigs have
them (EKS, GKE, AKS, kubelogin): tested with a plugin of our own that prints an ExecCredential."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from kubescim.credentials import ExecCredentialError
from kubescim.kube import Kube, KubeConfig, Resource
from tests.unit.http_stub import serve

WIDGETS = Resource("example.com", "v1", "widgets")
PLUGIN = """#!{python}
import json, os, sys, datetime as dt
state = {state!r}
count = int(open(state).read()) + 1 if os.path.exists(state) else 1
open(state, "w").write(str(count))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
open(state + ".info", "w").write(json.dumps(info))
if os.environ.get("PLUGIN_FAIL"):
    print("login required: run `kubelogin`", file=sys.stderr)
    sys.exit(3)
expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds={lifetime})
print(json.dumps({{
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {{"token": f"tok-{{count}}", "expirationTimestamp": expires.isoformat().replace("+00:00", "Z")}},
}}))
"""


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    """An API server stand-in that records the bearer tokens it sees and refuses `tok-revoked`."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        seen.append(token)
        if token == "tok-1" and request.query.get("revoke") == "1":
            return web.json_response({"reason": "Unauthorized"}, status=401)
        return web.json_response({"metadata": {"name": "w"}, "path": request.path_qs, "host": request.host})

    async with serve(handle) as url:
        yield url, seen


def kubeconfig(tmp_path: Path, server: str, *, lifetime: int = 3600, cluster: dict[str, object] | None = None) -> Path:
    plugin = tmp_path / "bin" / "fake-login"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN.format(python=sys.executable, state=str(tmp_path / "count"), lifetime=lifetime))
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "laptop",
        "contexts": [
            {"name": "laptop", "context": {"cluster": "prod", "user": "me", "namespace": "identity"}},
            {"name": "other", "context": {"cluster": "prod", "user": "static", "namespace": "other-ns"}},
        ],
        "clusters": [{"name": "prod", "cluster": {"server": server, **(cluster or {})}}],
        "users": [
            {
                "name": "me",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "./bin/fake-login",  # relative to the kubeconfig, as kubectl resolves it
                        "args": ["get-token"],
                        "env": [{"name": "PLUGIN_ENV", "value": "1"}],
                        "provideClusterInfo": True,
                        "interactiveMode": "Never",
                    }
                },
            },
            {"name": "static", "user": {"token": "static-token"}},
        ],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_the_plugins_token_is_used_and_cached_until_it_expires(
    tmp_path: Path, server: tuple[str, list[str]]
) -> None:
    url, seen = server
    config = KubeConfig.from_file(kubeconfig(tmp_path, url))
    assert config.namespace == "identity"
    async with Kube(config) as kube:
        await kube.get(WIDGETS, "w", "identity")
        await kube.get(WIDGETS, "w", "identity")
    assert seen == ["tok-1", "tok-1"]  # run once, cached
    info = json.loads((tmp_path / "count.info").read_text())
    assert info["apiVersion"] == "client.authentication.k8s.io/v1"
    assert info["spec"]["cluster"]["server"] == url
    assert info["spec"]["interactive"] is False


async def test_an_expired_credential_is_refreshed(tmp_path: Path, server: tuple[str, list[str]]) -> None:
    url, seen = server
    config = KubeConfig.from_file(kubeconfig(tmp_path, url, lifetime=5))  # inside the refresh skew
    async with Kube(config) as kube:
        await kube.get(WIDGETS, "w", "identity")
        await kube.get(WIDGETS, "w", "identity")
    assert seen == ["tok-1", "tok-2"]


async def test_a_401_runs_the_plugin_again_once(tmp_path: Path, server: tuple[str, list[str]]) -> None:
    url, seen = server
    config = KubeConfig.from_file(kubeconfig(tmp_path, url))
    async with Kube(config) as kube:
        answer = await kube.request("GET", "/apis/example.com/v1/widgets/w", params={"revoke": "1"})
    assert answer["metadata"]["name"] == "w"
    assert seen == ["tok-1", "tok-2"]


def test_a_failing_plugin_says_what_it_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGIN_FAIL", "1")
    config = KubeConfig.from_file(kubeconfig(tmp_path, "http://127.0.0.1:1"))
    with pytest.raises(ExecCredentialError, match="exited 3: login required: run `kubelogin`"):
        config.bearer_token()


async def test_contexts_and_the_clusters_proxy_url(tmp_path: Path, server: tuple[str, list[str]]) -> None:
    url, seen = server
    # The "cluster" is unreachable by name; the proxy (our stand-in) is what the request goes to.
    path = kubeconfig(tmp_path, "http://kube.invalid:6443", cluster={"proxy-url": url})
    config = KubeConfig.from_file(path, "other")
    assert (config.namespace, config.token, config.proxy_url) == ("other-ns", "static-token", url)
    async with Kube(config) as kube:
        answer = await kube.get(WIDGETS, "w", "other-ns")
    assert answer["host"].startswith("kube.invalid")  # the proxy saw the request for the cluster
    assert seen == ["static-token"]
