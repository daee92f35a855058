"""The local stack behind `make up`, `make down` and `make demo`.

`up` starts a detached supervisor (`serve`) that runs the control plane and kubescim's processes,
writes `.local/stack.env` once everything is ready, and tears it all down on SIGTERM. `down` signals
it and waits. `demo` runs the same stack in the foreground, tells the story, and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubescim.cli import rotate_token
from kubescim.constants import API_VERSION, IDENTITY_PROVIDERS
from kubescim.kube import NAMESPACES, ApiError, Kube, KubeConfig
from kubescim_dev.controlplane import REPO_ROOT, ControlPlane, tool_path
from kubescim_dev.processes import ManagedProcess, start_gateway

LOCAL = REPO_ROOT / ".local"
ENV_FILE = LOCAL / "stack.env"
PID_FILE = LOCAL / "stack.pid"
LOG_FILE = LOCAL / "stack.log"


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool_path("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        check=check,
        text=True,
        capture_output=True,
    )


def install_crds(kubeconfig: Path) -> None:
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
    kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=kubescim",
    )


NAMESPACE = "kubescim"
PROVIDER = "okta"


async def _bootstrap(kubeconfig: Path) -> str:
    """The demo namespace and IdentityProvider, and a provisioning token for it."""
    async with Kube(KubeConfig.from_file(kubeconfig)) as kube:
        try:
            await kube.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        except ApiError as error:
            if not error.conflict:
                raise
        try:
            await kube.create(
                IDENTITY_PROVIDERS,
                {
                    "apiVersion": API_VERSION,
                    "kind": "IdentityProvider",
                    "metadata": {"name": PROVIDER},
                    "spec": {"displayName": "Local Okta simulator"},
                },
                NAMESPACE,
            )
        except ApiError as error:
            if not error.conflict:
                raise
        return await rotate_token(kube, NAMESPACE, PROVIDER)


class Stack:
    """Everything `make up` runs, in dependency order."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.control_plane = ControlPlane(workdir=workdir)
        self.processes: list[ManagedProcess] = []

    def start(self) -> dict[str, str]:
        self.control_plane.start()
        kubeconfig = self.control_plane.kubeconfig
        install_crds(kubeconfig)
        token = asyncio.run(_bootstrap(kubeconfig))
        gateway = start_gateway(kubeconfig, NAMESPACE)
        self.processes.append(gateway)
        return {
            "KUBECONFIG": str(kubeconfig),
            "KUBESCIM_NAMESPACE": NAMESPACE,
            "SCIM_URL": gateway.scim_url,
            "SCIM_TOKEN": token,
        }

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self.control_plane.stop()


def write_env(values: dict[str, str]) -> None:
    lines = [f"{key}={value}" for key, value in values.items()]
    ENV_FILE.write_text("\n".join(lines) + "\n")
    ENV_FILE.chmod(0o600)


def serve() -> int:
    """Foreground supervisor for `up`: start, publish stack.env, wait for SIGTERM, stop."""
    LOCAL.mkdir(exist_ok=True)
    stack = Stack()
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        write_env(stack.start())
        print("stack ready", flush=True)
        while not stopping:
            time.sleep(0.2)
    finally:
        stack.stop()
        ENV_FILE.unlink(missing_ok=True)
        PID_FILE.unlink(missing_ok=True)
    return 0


def up() -> int:
    LOCAL.mkdir(exist_ok=True)
    if PID_FILE.exists() and _alive(int(PID_FILE.read_text())):
        print(f"already running (pid {PID_FILE.read_text().strip()}); env in {ENV_FILE}")
        return 0
    ENV_FILE.unlink(missing_ok=True)
    with LOG_FILE.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubescim_dev.stack", "serve"],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    PID_FILE.write_text(str(process.pid))
    deadline = time.monotonic() + 180
    while not ENV_FILE.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            print(LOG_FILE.read_text(errors="replace")[-4000:], file=sys.stderr)
            print("stack failed to start", file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"stack is up (pid {process.pid}). Use it with:\n  source {ENV_FILE.relative_to(Path.cwd())}")
    print(ENV_FILE.read_text(), end="")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def down() -> int:
    if not PID_FILE.exists():
        print("nothing running")
        return 0
    pid = int(PID_FILE.read_text())
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    ENV_FILE.unlink(missing_ok=True)
    print("stack stopped")
    return 0


def demo() -> int:
    from kubescim_dev.demo import run_demo

    stack = Stack()
    try:
        env = stack.start()
        return run_demo(stack, env)
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m kubescim_dev.stack")
    parser.add_argument("command", choices=["up", "down", "serve", "demo"])
    command = parser.parse_args().command
    return {"up": up, "down": down, "serve": serve, "demo": demo}[command]()


if __name__ == "__main__":
    raise SystemExit(main())
