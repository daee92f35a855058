"""Shared fixtures: a real Kubernetes API server for the whole session.

By default the session starts its own etcd + kube-apiserver (kubescim_dev.controlplane). With
KUBESCIM_TEST_CLUSTER=existing, the tests run unchanged against the cluster that KUBECONFIG names
(kind, a real cluster): the tests only create namespaced objects in namespaces they make.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubescim.kube import NAMESPACES, ApiError, Kube, KubeConfig
from kubescim_dev.controlplane import ControlPlane, tool_path
from kubescim_dev.stack import install_crds


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    control_plane: ControlPlane | None  # None when testing an existing cluster

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tool_path("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            text=True,
            capture_output=True,
            input=input,
        )


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if os.environ.get("KUBESCIM_TEST_CLUSTER") == "existing":
        yield Cluster(Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config")), None)
        return
    control_plane = ControlPlane()
    control_plane.start()
    try:
        yield Cluster(control_plane.kubeconfig, control_plane)
    finally:
        failed = request.session.testsfailed > 0
        if failed and control_plane.workdir is not None:
            for name in ("kube-apiserver", "etcd"):
                print(f"\n--- {name} log (last lines) ---\n{control_plane.tail_log(name)}")
        control_plane.stop()


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    install_crds(cluster.kubeconfig)
    return cluster


@pytest.fixture(scope="session")
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    client = Kube(KubeConfig.from_file(cluster.kubeconfig))
    yield client
    await client.close()


@pytest.fixture
async def namespace(kube: Kube) -> AsyncIterator[str]:
    """A fresh namespace per test, deleted afterwards (no cross-test leakage)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await kube.create(NAMESPACES, {"metadata": {"name": name, "labels": {"kubescim.dev/test": "true"}}})
    yield name
    try:
        await kube.delete(NAMESPACES, name)
    except ApiError as error:
        if not error.not_found:
            raise
