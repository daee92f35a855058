"""The test control plane is a real Kubernetes API server: CRDs, CEL, status subresource, watch, /version."""

from __future__ import annotations

import asyncio
import os

import pytest

from kubescim.kube import CRDS, ApiError, Kube, Resource
from kubescim_dev.controlplane import read_versions
from tests.conftest import Cluster

WIDGETS = Resource("test.kubescim.dev", "v1", "widgets")
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.kubescim.dev"},
    "spec": {
        "group": "test.kubescim.dev",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                                "x-kubernetes-validations": [
                                    {"rule": "self.min <= self.max", "message": "min must not exceed max"}
                                ],
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


async def _ensure_widget_crd(kube: Kube) -> None:
    try:
        await kube.create(CRDS, WIDGET_CRD)
    except ApiError as error:
        if not error.conflict:
            raise
    for _ in range(100):
        crd = await kube.get(CRDS, "widgets.test.kubescim.dev")
        conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
        if conditions.get("Established") == "True":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("CRD never became Established")


async def test_version_is_the_pinned_release(kube: Kube) -> None:
    version = await kube.request("GET", "/version")
    if os.environ.get("KUBESCIM_TEST_CLUSTER") != "existing":
        assert version["gitVersion"] == read_versions()["KUBERNETES_VERSION"]
        assert version["minor"] == read_versions()["KUBERNETES_VERSION"].split(".")[1]
    assert version["major"] == "1"


async def test_cel_rule_rejects_invalid_object_with_its_message(kube: Kube, namespace: str) -> None:
    await _ensure_widget_crd(kube)
    with pytest.raises(ApiError) as info:
        await kube.create(
            WIDGETS,
            {
                "apiVersion": "test.kubescim.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "bad"},
                "spec": {"min": 5, "max": 1},
            },
            namespace,
        )
    assert info.value.status == 422
    assert "min must not exceed max" in info.value.message


async def test_create_patch_watch_and_status_subresource(kube: Kube, namespace: str) -> None:
    await _ensure_widget_crd(kube)
    created = await kube.create(
        WIDGETS,
        {
            "apiVersion": "test.kubescim.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"min": 1, "max": 2},
        },
        namespace,
    )
    events: list[dict[str, object]] = []

    async def watch() -> None:
        async for event in kube.watch(WIDGETS, namespace, resource_version=created["metadata"]["resourceVersion"]):
            if event["type"] == "MODIFIED":
                events.append(event["object"])
                return

    watcher = asyncio.create_task(watch())
    await kube.patch(WIDGETS, "w1", {"spec": {"max": 9}}, namespace)
    await asyncio.wait_for(watcher, 10)
    assert events[0]["spec"] == {"min": 1, "max": 9}  # type: ignore[index]

    # Status is ignored on the main resource and written only through the status subresource.
    await kube.patch(WIDGETS, "w1", {"status": {"phase": "Ignored"}}, namespace)
    assert "status" not in await kube.get(WIDGETS, "w1", namespace)
    await kube.patch(WIDGETS, "w1", {"status": {"phase": "Ready"}}, namespace, subresource="status")
    assert (await kube.get(WIDGETS, "w1", namespace))["status"] == {"phase": "Ready"}


def test_kubectl_talks_to_the_same_cluster(cluster: Cluster) -> None:
    result = cluster.kubectl("get", "namespaces", "-o", "name")
    assert "namespace/default" in result.stdout.split()
