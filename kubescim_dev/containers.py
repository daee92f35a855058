"""Run the project's image with podman exactly as the chart's rendered Deployments say: command, args,
env, ports, security context and mounts are read from `helm template` output, so a mismatch between
chart and code fails a test instead of a first install.

What a kubelet would add is stood in for: the service account's token, CA and namespace are mounted
where the in-cluster config reads them (a TokenRequest token of the chart's ServiceAccount, so the
API server's authorizer decides with the chart's RBAC), KUBERNETES_SERVICE_HOST/PORT point at the
API server, an emptyDir is a tmpfs, and the pod network is the host's (the ports the chart names).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = REPO_ROOT / ".cache" / "image" / "containers.conf"
IMAGE = "localhost/kubescim:dev"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def build_image(image: str = IMAGE) -> str:
    """`make image` (hack/image.sh): installs podman/runc/mmdebstrap when missing, builds once, reuses."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "image.sh")],
        env={**os.environ, "IMAGE": image},
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    if result.returncode != 0:
        raise RuntimeError(f"make image failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@dataclass(frozen=True)
class PodEnvironment:
    namespace: str
    api_host: str
    api_port: int
    service_account_dir: Path  # holds token, ca.crt, namespace


def _env(container: dict[str, Any], namespace: str) -> list[str]:
    out = []
    for item in container.get("env") or []:
        if "value" in item:
            value = str(item["value"])
        else:
            field = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if field != "metadata.namespace":
                raise ValueError(f"env {item['name']}: only metadata.namespace fieldRefs are stood in for")
            value = namespace
        out += ["--env", f"{item['name']}={value}"]
    return out


def podman_run_args(deployment: dict[str, Any], image: str, pod: PodEnvironment, name: str) -> list[str]:
    """`podman run` arguments for the Deployment's (single) container, as a kubelet would run it."""
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    pod_context = spec.get("securityContext") or {}
    context = {**pod_context, **(container.get("securityContext") or {})}
    args = ["run", "--detach", "--name", name, "--network", "host", "--pull", "never"]
    user = context.get("runAsUser")
    if user is not None:
        args += ["--user", f"{user}:{context.get('runAsGroup', user)}"]
    if context.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for capability in (context.get("capabilities") or {}).get("drop") or []:
        args += ["--cap-drop", str(capability)]
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            options = f"rw,mode=1777{',size=' + str(size).replace('Mi', 'm') if size else ''}"
            args += ["--tmpfs", f"{mount['mountPath']}:{options}"]
        else:
            raise ValueError(f"volume {mount['name']}: only emptyDir is stood in for")
    args += ["--volume", f"{pod.service_account_dir}:{SERVICE_ACCOUNT_DIR}:ro"]
    args += ["--env", f"KUBERNETES_SERVICE_HOST={pod.api_host}", "--env", f"KUBERNETES_SERVICE_PORT={pod.api_port}"]
    args += _env(container, pod.namespace)
    command = container.get("command") or []
    if command:
        args += ["--entrypoint", command[0]]
    args.append(image)
    args += [*command[1:], *(container.get("args") or [])]
    return args


def container_port(deployment: dict[str, Any], port: str | int) -> int:
    """A probe's port (named or numbered) as the container's port number."""
    if isinstance(port, int):
        return port
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return int(next(p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port))


def write_service_account(directory: Path, token: str, ca_file: Path, namespace: str) -> Path:
    """The files the kubelet projects into a pod, readable by the image's non-root user."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for name, content in (("token", token), ("ca.crt", ca_file.read_text()), ("namespace", namespace)):
        path = directory / name
        path.write_text(content)
        path.chmod(0o644)
    return directory
