"""Credentials for development processes: a kubeconfig that authenticates as a ServiceAccount with a
token the API server issued (TokenRequest), so a process runs with exactly the chart's RBAC and the
API server's authorizer, not the test's admin, decides what it may do."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubescim.kube import Kube, KubeConfig


async def service_account_token(admin_kubeconfig: Path, namespace: str, service_account: str, hours: int = 6) -> str:
    """A token the API server issues for the ServiceAccount (TokenRequest), as the kubelet projects one."""
    async with Kube(KubeConfig.from_file(admin_kubeconfig)) as kube:
        response = await kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": hours * 3600},
            },
        )
    return str(response["status"]["token"])


async def service_account_kubeconfig(
    admin_kubeconfig: Path, namespace: str, service_account: str, out: Path, *, hours: int = 6
) -> Path:
    """Write a kubeconfig for system:serviceaccount:<namespace>:<service_account> to `out`."""
    config = KubeConfig.from_file(admin_kubeconfig)
    token = await service_account_token(admin_kubeconfig, namespace, service_account, hours)
    cluster: dict[str, object] = {"server": config.server}
    if config.ca_file:
        cluster["certificate-authority"] = str(config.ca_file)
    out.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": cluster}],
                "users": [{"name": service_account, "user": {"token": token}}],
                "contexts": [
                    {"name": "sa", "context": {"cluster": "local", "user": service_account, "namespace": namespace}}
                ],
                "current-context": "sa",
            }
        )
    )
    out.chmod(0o600)
    return out
