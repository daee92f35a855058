"""A real, local Kubernetes control plane (etcd + kube-apiserver) for tests, `make up` and the demo.

Like controller-runtime's envtest: the binaries are built from pinned Go modules by
hack/build-tools.sh; this module picks free loopback ports, makes a CA, a serving certificate,
service-account keys and an admin token in a temporary directory, starts both processes, waits
for /readyz and writes a kubeconfig. `stop()` terminates both and removes the directory (unless
asked to keep it, e.g. for a failed test's logs).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubescim_dev.pki import new_authority, serving_certificate, write_private

REPO_ROOT = Path(__file__).resolve().parent.parent


def read_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for line in (REPO_ROOT / "hack" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key] = value
    return versions


def tool_path(tool: str) -> Path:
    """Path of a Go-built tool in the versioned cache, building it first if it is missing."""
    versions = read_versions()
    kubernetes = f"kubernetes-{versions['KUBERNETES_VERSION']}"
    containerd = f"containerd-{versions['CONTAINERD_VERSION']}"
    folder = {
        "kube-apiserver": kubernetes,
        "kubectl": kubernetes,
        "kubelet": kubernetes,
        "kube-controller-manager": kubernetes,
        "kube-scheduler": kubernetes,
        "kube-proxy": kubernetes,
        "etcd": f"etcd-{versions['ETCD_VERSION']}",
        "helm": f"helm-{versions['HELM_VERSION']}",
        "containerd": containerd,
        "containerd-shim-runc-v2": containerd,
        "ctr": containerd,
    }[tool]
    path = REPO_ROOT / ".cache" / "bin" / folder / tool
    if not path.exists():
        subprocess.run(["bash", str(REPO_ROOT / "hack" / "build-tools.sh"), tool], check=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The `kubernetes` Service's ClusterIP in the service range below: pods reach the API server there.
KUBERNETES_SERVICE_IP = "10.96.0.1"


def _make_pki(directory: Path, ip_addresses: tuple[str, ...] = ()) -> None:
    """A CA, a serving certificate for 127.0.0.1/localhost (and the given IPs), and a service-account key pair."""
    authority = new_authority("kubescim-local-ca")
    certificate, key = serving_certificate(
        authority, "kube-apiserver", ("localhost", "kubernetes", "kubernetes.default.svc"), ip_addresses
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    write_private(directory / "ca.crt", authority.pem)
    write_private(directory / "server.crt", certificate)
    write_private(directory / "server.key", key)
    write_private(
        directory / "sa.key",
        sa_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    write_private(
        directory / "sa.pub", sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@dataclass
class ControlPlane:
    """etcd + kube-apiserver on loopback. Use as a context manager or call start()/stop()."""

    workdir: Path | None = None
    keep_workdir: bool = False
    etcd_port: int = 0
    apiserver_port: int = 0
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # A structured AuthenticationConfiguration (JWT issuers, e.g. the simulator's OIDC issuer).
    authentication_config: Path | None = None
    # For a cluster with a node (`make cluster`): the node's address. The API server then listens
    # there too, advertises it for the `kubernetes` Service (pods reach it through kube-proxy), and
    # its ServiceAccount admission gives pods their projected tokens.
    node_ip: str | None = None
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _owns_workdir: bool = False

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "pki" / "ca.crt"

    def log_path(self, name: str) -> Path:
        assert self.workdir is not None
        return self.workdir / f"{name}.log"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> None:
        etcd_bin, apiserver_bin = tool_path("etcd"), tool_path("kube-apiserver")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="kubescim-cp-"))
            self._owns_workdir = True
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        _make_pki(pki, (self.node_ip, KUBERNETES_SERVICE_IP) if self.node_ip else ())
        (pki / "tokens.csv").write_text(f'{self.admin_token},kubescim-admin,kubescim-admin,"system:masters"\n')
        (pki / "tokens.csv").chmod(0o600)
        self.etcd_port = self.etcd_port or free_port()
        peer_port = free_port()
        self.apiserver_port = self.apiserver_port or free_port()

        self._spawn(
            "etcd",
            [
                str(etcd_bin),
                "--name=kubescim",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=kubescim=http://127.0.0.1:{peer_port}",
                # Tests need speed, not durability across a machine crash; 8 GiB for 100k-user benches.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(apiserver_bin),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                # A node's pods reach it on the node's address, the host's clients on loopback.
                f"--bind-address={'0.0.0.0' if self.node_ip else '127.0.0.1'}",  # noqa: S104
                f"--advertise-address={self.node_ip or '127.0.0.1'}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'server.crt'}",
                f"--tls-private-key-file={pki / 'server.key'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                *([f"--authentication-config={self.authentication_config}"] if self.authentication_config else []),
                "--authorization-mode=RBAC",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16",
                *([] if self.node_ip else ["--disable-admission-plugins=ServiceAccount"]),
                # The node's name resolves nowhere: logs, exec and attach dial its InternalIP.
                *(["--kubelet-preferred-address-types=InternalIP,Hostname"] if self.node_ip else []),
                "--allow-privileged=true",
                # KUBESCIM_DEV_PROFILING=1 serves /debug/pprof (for profiling the API server under a benchmark).
                f"--profiling={'true' if os.environ.get('KUBESCIM_DEV_PROFILING') == '1' else 'false'}",
                # The kubernetes Service cannot point at loopback: do not try (and log) every 10 s.
                *([] if self.node_ip else ["--endpoint-reconciler-type=none"]),
                "--v=0",
            ],
        )
        self._write_kubeconfig()
        try:
            self._wait_ready(timeout)
        except Exception:
            self.stop(keep=True)
            raise

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.log_path(name).open("wb")
        self._processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            "clusters:\n- name: kubescim-local\n  cluster:\n"
            f"    server: {self.url}\n    certificate-authority: {self.ca_file}\n"
            "users:\n- name: kubescim-admin\n  user:\n"
            f"    token: {self.admin_token}\n"
            "contexts:\n- name: kubescim-local\n  context:\n"
            "    cluster: kubescim-local\n    user: kubescim-admin\n    namespace: default\n"
            "current-context: kubescim-local\n"
        )
        self.kubeconfig.chmod(0o600)

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + timeout
        last_error = "not started"
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; log:\n{self.tail_log(name)}")
            request = urllib.request.Request(
                f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
            )
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.2)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s ({last_error})")

    def pid(self, name: str) -> int | None:
        """The process id of "etcd" or "kube-apiserver" (for CPU accounting in benchmarks)."""
        process = self._processes.get(name)
        return process.pid if process is not None and process.poll() is None else None

    def tail_log(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        process = self._processes.get(name)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def restart_apiserver(self) -> None:
        """Start kube-apiserver again after stop_process('kube-apiserver') (fault tests)."""
        process = self._processes["kube-apiserver"]
        argv = [str(a) for a in process.args]  # type: ignore[union-attr]
        self._spawn("kube-apiserver", argv)
        self._wait_ready(60)

    def stop(self, keep: bool | None = None) -> None:
        for name in ("kube-apiserver", "etcd"):
            self.stop_process(name)
        self._processes.clear()
        keep = self.keep_workdir if keep is None else keep
        if self.workdir is not None and self._owns_workdir and not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool_path("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        check=check,
        text=True,
        capture_output=True,
    )
