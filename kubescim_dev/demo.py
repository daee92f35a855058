"""`make demo`: the main job on the embedded default, told step by step."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubescim_dev.stack import Stack


def run_demo(stack: Stack, env: dict[str, str]) -> int:
    from kubescim_dev.stack import kubectl

    kubeconfig = stack.control_plane.kubeconfig
    print(f"control plane up at {stack.control_plane.url} (kubeconfig {kubeconfig})")
    print(kubectl(kubeconfig, "get", "crds", "-l", "app.kubernetes.io/part-of=kubescim").stdout)
    return 0
