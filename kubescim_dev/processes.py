"""kubescim's own processes (gateway, operator, Okta simulator) as subprocesses, for tests and the stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kubescim_dev.controlplane import REPO_ROOT, free_port

STARTED: list[ManagedProcess] = []  # every process this interpreter started (tests scan their logs)


@dataclass
class ManagedProcess:
    """A child process with its log in a file, stopped by stop() (SIGTERM, then SIGKILL)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="kubescim-", suffix=".log")[1]))
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        STARTED.append(self)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.alive:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive:
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_http_ok(url: str, process: ManagedProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive:
            raise RuntimeError(f"{process.name} exited early:\n{process.log()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{process.name} not ready at {url} after {timeout}s:\n{process.log()}")


@dataclass
class GatewayProcess(ManagedProcess):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def scim_url(self) -> str:
        return f"{self.url}/scim/v2"


def start_gateway(
    kubeconfig: Path, namespace: str, *, port: int | None = None, extra_env: dict[str, str] | None = None
) -> GatewayProcess:
    port = port or free_port()
    gateway = GatewayProcess(
        name=f"gateway:{port}",
        argv=[sys.executable, "-m", "scim_gateway.main"],
        env={
            "KUBESCIM_KUBECONFIG": str(kubeconfig),
            "KUBESCIM_NAMESPACE": namespace,
            "KUBESCIM_HOST": "127.0.0.1",
            "KUBESCIM_PORT": str(port),
            "KUBESCIM_LOG_LEVEL": "INFO",
            **(extra_env or {}),
        },
        port=port,
    )
    gateway.start()
    wait_http_ok(f"{gateway.url}/readyz", gateway)
    return gateway


def start_operator(
    kubeconfig: Path,
    namespace: str,
    *,
    priority: int = 100,
    standalone: bool = False,
    extra_env: dict[str, str] | None = None,
    wait: bool = True,
) -> ManagedProcess:
    port = free_port()
    operator = ManagedProcess(
        name=f"operator:{priority}",
        argv=[sys.executable, "-m", "identity_operator.main"],
        env={
            "KUBESCIM_KUBECONFIG": str(kubeconfig),
            "KUBESCIM_NAMESPACE": namespace,
            "KUBESCIM_PRIORITY": str(priority),
            "KUBESCIM_STANDALONE": str(standalone).lower(),
            "KUBESCIM_HEALTH_PORT": str(port),
            "KUBESCIM_METRICS_PORT": str(free_port()),
            "KUBESCIM_PEERING_LIFETIME_SECONDS": "6",
            "KUBESCIM_LOG_LEVEL": "INFO",
            **(extra_env or {}),
        },
    )
    operator.start()
    if wait:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", operator)
    return operator
