"""The local stack behind `make up`, `make down` and `make demo`.

Everything runs on loopback: etcd + kube-apiserver (built from Go modules), the SCIM gateway, the
operator, and the Okta simulator, which pushes its generated org through the gateway the way Okta's
SCIM client does and serves the Management API the reconciler reads.

`up` starts a detached supervisor (`serve`) that runs the stack, writes `.local/stack.env` once
everything is ready, and tears it all down on SIGTERM. `down` signals it and waits. `demo` runs the
same stack in the foreground, tells the story, and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubescim.cli import rotate_token
from kubescim.constants import API_VERSION, IDENTITY_PROVIDERS
from kubescim.kube import NAMESPACES, SECRETS, ApiError, Kube, KubeConfig, Resource
from kubescim_dev.controlplane import REPO_ROOT, ControlPlane, free_port, kubectl, tool_path
from kubescim_dev.demo import run_demo
from kubescim_dev.oktasim.oidc import OidcIssuer
from kubescim_dev.oktasim.org import generate
from kubescim_dev.processes import ManagedProcess, start_gateway, start_operator

LOCAL = REPO_ROOT / ".local"
ENV_FILE = LOCAL / "stack.env"
OIDC_STATE = LOCAL / "oidc.json"  # the issuer's signing key, for `python -m kubescim_dev.oktasim.oidc token`
ORG_SEED = 7  # the simulator's default: both processes generate the same org
PID_FILE = LOCAL / "stack.pid"
LOG_FILE = LOCAL / "stack.log"
NAMESPACE = "kubescim"
PROVIDER = "okta"
KOPF_PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings")


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


async def _create(kube: Kube, resource: Resource, body: dict[str, object], namespace: str | None) -> None:
    try:
        await kube.create(resource, body, namespace)
    except ApiError as error:
        if not error.conflict:
            raise


async def create_provider(kube: Kube, namespace: str, name: str, spec: dict[str, object] | None = None) -> str:
    """An IdentityProvider and its first provisioning token (returned)."""
    await _create(
        kube,
        IDENTITY_PROVIDERS,
        {
            "apiVersion": API_VERSION,
            "kind": "IdentityProvider",
            "metadata": {"name": name},
            "spec": spec or {},
        },
        namespace,
    )
    return await rotate_token(kube, namespace, name)


# The example IdentityProvider's access settings (crds/examples/identityprovider-okta.yaml), and the
# chart's default allow-list plus admin: cluster-admin stays refused, to show the guard.
DEMO_ACCESS: dict[str, object] = {
    "username": {"attribute": "userName", "prefix": "okta:"},
    "roles": [
        {"name": "viewer", "rank": 10},
        {"name": "developer", "rank": 50},
        {"name": "lead", "rank": 80},
        {"name": "platform-admin", "rank": 100},
    ],
}
DEMO_ALLOWED_ROLES = ["ClusterRole/view", "ClusterRole/edit", "ClusterRole/admin"]


async def bootstrap(kubeconfig: Path) -> str:
    """The namespace, the operator's peering object, the IdentityProvider, and a provisioning token."""
    async with Kube(KubeConfig.from_file(kubeconfig)) as kube:
        await _create(kube, NAMESPACES, {"metadata": {"name": NAMESPACE}}, None)
        await _create(
            kube,
            KOPF_PEERINGS,
            {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "kubescim"}},
            NAMESPACE,
        )
        await _create(
            kube,
            IDENTITY_PROVIDERS,
            {
                "apiVersion": API_VERSION,
                "kind": "IdentityProvider",
                "metadata": {"name": PROVIDER},
                "spec": {"displayName": "Okta (local simulator)", "access": DEMO_ACCESS},
            },
            NAMESPACE,
        )
        return await rotate_token(kube, NAMESPACE, PROVIDER)


async def connect_okta(kubeconfig: Path, okta: dict[str, str]) -> None:
    """Point the IdentityProvider at the simulator's Management API (SSWS token in a Secret)."""
    async with Kube(KubeConfig.from_file(kubeconfig)) as kube:
        await _create(
            kube,
            SECRETS,
            {
                "metadata": {"name": "okta-api-token"},
                "data": {"token": base64.b64encode(okta["apiToken"].encode()).decode()},
            },
            NAMESPACE,
        )
        await kube.patch(
            IDENTITY_PROVIDERS,
            PROVIDER,
            {
                "spec": {
                    "okta": {
                        "orgUrl": okta["url"],
                        "appId": okta["appId"],
                        "auth": {"type": "ApiToken", "apiTokenSecretRef": {"name": "okta-api-token", "key": "token"}},
                    }
                }
            },
            NAMESPACE,
        )


class Stack:
    """Everything `make up` runs, in dependency order."""

    def __init__(self, users: int = 60, groups: int = 14) -> None:
        self.control_plane = ControlPlane()
        self.processes: list[ManagedProcess] = []
        self.users, self.groups = users, groups
        self.oidc: OidcIssuer | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    def start(self) -> dict[str, str]:
        # The org's OIDC issuer first: the API server starts trusting it (AuthenticationConfiguration),
        # so `kubectl --token $(python -m kubescim_dev.oktasim.oidc token <login>)` logs in as that
        # user. The simulator process generates the same org from the same seed.
        self.oidc = OidcIssuer(generate(self.users, self.groups, seed=ORG_SEED))
        self.oidc.start()
        authn = self.oidc.workdir / "authentication-config.yaml"
        authn.write_text(self.oidc.authentication_config())
        self.control_plane.authentication_config = authn
        self.control_plane.start()
        install_crds(self.kubeconfig)
        token = asyncio.run(bootstrap(self.kubeconfig))
        gateway = start_gateway(self.kubeconfig, NAMESPACE)
        self.processes.append(gateway)
        okta = self._start_simulator(gateway.scim_url, token)
        asyncio.run(connect_okta(self.kubeconfig, okta))
        operator = start_operator(
            self.kubeconfig,
            NAMESPACE,
            extra_env={
                "KUBESCIM_SCIM_PUBLIC_URL": gateway.url,
                "KUBESCIM_RECONCILE_FIRST_DELAY_SECONDS": "1",
                "KUBESCIM_ACCESS_ALLOWED_ROLES": json.dumps(DEMO_ALLOWED_ROLES),
            },
        )
        self.processes.append(operator)
        LOCAL.mkdir(exist_ok=True)
        self.oidc.save(OIDC_STATE, users=self.users, groups=self.groups, seed=ORG_SEED)
        return {
            "OIDC_ISSUER_URL": self.oidc.issuer,
            "OIDC_CLIENT_ID": self.oidc.client_id,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBESCIM_NAMESPACE": NAMESPACE,
            "SCIM_URL": gateway.scim_url,
            "SCIM_TOKEN": token,
            "OKTA_URL": okta["url"],
            "OKTA_API_TOKEN": okta["apiToken"],
            "OKTA_APP_ID": okta["appId"],
            "KUBECTL": str(tool_path("kubectl")),
        }

    def _start_simulator(self, scim_url: str, token: str) -> dict[str, str]:
        state = self.control_plane.workdir / "okta.json" if self.control_plane.workdir else LOCAL / "okta.json"
        simulator = ManagedProcess(
            name="okta-simulator",
            argv=[
                sys.executable,
                "-m",
                "kubescim_dev.oktasim.server",
                "--users",
                str(self.users),
                "--groups",
                str(self.groups),
                "--seed",
                str(ORG_SEED),
                "--port",
                str(free_port()),
                "--state",
                str(state),
                "--push-to",
                scim_url,
            ],
            env={"KUBESCIM_PUSH_TOKEN": token},
        )
        simulator.start()
        self.processes.append(simulator)
        deadline = time.monotonic() + 300
        while not state.exists():
            if not simulator.alive or time.monotonic() > deadline:
                raise RuntimeError(f"the Okta simulator did not start:\n{simulator.log()}")
            time.sleep(0.1)
        return dict(json.loads(state.read_text()))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self.control_plane.stop()
        if self.oidc is not None:
            self.oidc.stop()
        OIDC_STATE.unlink(missing_ok=True)


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
    deadline = time.monotonic() + 300
    while not ENV_FILE.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            print(LOG_FILE.read_text(errors="replace")[-4000:], file=sys.stderr)
            print("stack failed to start", file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"stack is up (pid {process.pid}). Use it with:\n  set -a; source {ENV_FILE.relative_to(REPO_ROOT)}; set +a")
    for line in ENV_FILE.read_text().splitlines():
        key = line.split("=", 1)[0]
        print(f"  {key}=..." if "TOKEN" in key else f"  {line}")
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
    stack = Stack()
    try:
        env = stack.start()
        return run_demo(stack.kubeconfig, stack.control_plane.url, env, NAMESPACE)
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m kubescim_dev.stack")
    parser.add_argument("command", choices=["up", "down", "serve", "demo"])
    command = parser.parse_args().command
    return {"up": up, "down": down, "serve": serve, "demo": demo}[command]()


if __name__ == "__main__":
    raise SystemExit(main())
